"""Turn check results and sweep reports into incident observations (data in, data out)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from checks.base import Status
from notify.incidents import Observation

if TYPE_CHECKING:
    from checks.base import CheckResult
    from recovery.report import ActionRecord, Detection, SweepReport

_GRAVE_OUTCOMES = ("gave_up", "failed", "blocked")


def from_checks(results: Iterable[CheckResult], trigger: str) -> list[Observation]:
    """One observation per check; `unknown` (not configured, cannot tell) is no evidence either way."""
    found = []
    for result in results:
        if result.status is Status.UNKNOWN:
            continue
        failing = result.status is not Status.OK
        found.append(Observation(
            key=f"check:{result.name}", label=f"{result.name} check", failing=failing,
            severity=result.status.value if failing else "warning",
            detail=result.detail if failing else f"check passes again: {result.detail}",
            failure_class=result.failure_class,
            urgent=result.status is Status.CRITICAL and trigger == "pre_posting"))
    return found


def describe(action: ActionRecord) -> str:
    """`routine: outcome` as an incident lists it."""
    return f"{action.routine}: {action.outcome}"


def _severity(item: Detection, latest: Mapping[str, Mapping[str, Any]]) -> str | None:
    """A check detection's severity, from the result the sweep stored (critical if unknown)."""
    stored = latest.get(item.target.removeprefix("check:"), {})
    return stored.get("status") if stored.get("status") in ("warning", "critical") else None


def _detected(report: SweepReport, latest: Mapping[str, Mapping[str, Any]]) -> dict[str, Observation]:
    found: dict[str, Observation] = {}
    for item in report.detected:
        is_check = item.source == "check"
        key = item.target if is_check else f"failure:{item.failure_class}:{item.target}"
        if key in found:
            continue
        acts = [a for a in report.actions if a.target == item.target
                and a.reason in ("", item.failure_class)]
        human = next((a.detail for a in acts if a.needs_human), None)
        grave = bool(human) or any(a.outcome in _GRAVE_OUTCOMES for a in acts)
        severity = (_severity(item, latest) if is_check else None) or ("critical" if grave or is_check
                                                                         else "warning")
        label = f"{key.removeprefix('check:')} check" if is_check else \
            f"{item.failure_class} on {item.target}"
        found[key] = Observation(
            key=key, label=label, failing=True, severity=severity, detail=item.detail,
            failure_class=item.failure_class, urgent=bool(human), human_step=human,
            actions=tuple(describe(a) for a in acts))
    return found


def _fixed(report: SweepReport, keys_seen: set[str]) -> dict[str, Observation]:
    """Keys a routine fixed and whose check then passed (`verified`), even if detected before."""
    found: dict[str, Observation] = {}
    for action in report.actions:
        if action.verified is not True:
            continue
        keys = {action.target, f"failure:{action.reason}:{action.target}", f"check:{action.reason}"}
        for key in sorted(keys & keys_seen):
            found[key] = Observation(key=key, label=key, failing=False, actions=(describe(action),),
                                     fixed_by=f"{action.routine}: {action.detail} (re-check passed)")
    return found


def _not_seen(key: str, latest: Mapping[str, Mapping[str, Any]]) -> Observation | None:
    """An open incident the sweep did not detect again: a pass, if the sweep looked at it."""
    if key.startswith("failure:"):
        return Observation(key=key, label=key, failing=False, detail="no longer detected by the sweep")
    stored = latest.get(key.removeprefix("check:"), {})
    if stored.get("trigger") != "sweep" or stored.get("status") not in ("ok", "warning", "critical"):
        return None  # the sweep did not run this check, or it could not tell
    failing = stored["status"] != "ok"
    detail = str(stored.get("detail", ""))
    return Observation(key=key, label=key, failing=failing, severity=stored["status"],
                       detail=detail if failing else f"check passes again: {detail}")


def from_sweep(report: SweepReport, open_keys: set[str],
               latest: Mapping[str, Mapping[str, Any]] | None = None) -> list[Observation]:
    """Detections fail their key; verified fixes resolve theirs; open keys not seen again pass.

    `latest` is the newest stored check result per check name (what the sweep's checks said).
    """
    latest = latest or {}
    detected = _detected(report, latest)
    # A fix verified in the same sweep outweighs the detection made before it ran.
    found = {**detected, **_fixed(report, open_keys | set(detected))}
    if not report.errors:  # a sweep that could not look everywhere proves nothing by silence
        for key in sorted(open_keys - set(found)):
            observation = _not_seen(key, latest)
            if observation is not None:
                found[key] = observation
    return list(found.values())
