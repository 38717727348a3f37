"""Turn check results and sweep reports into incident observations (data in, data out).

A post waiting for its retry is no evidence either way (never "passing", never a flip); a post
that went out resolves its incident with "Posted …". An incident found in a pipeline log takes the
severity of its class (a single line of a class that needs a person alerts at once) and resolves on
evidence: a post that went out after it, or LOG_QUIET without another such line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from checks.base import Status
from notify.incidents import WAITING, Observation, post_id_of
from notify.messages import PostFacts
from recovery import playbook
from recovery.report import WHOLE_SWEEP_TARGETS

if TYPE_CHECKING:
    from checks.base import CheckResult
    from recovery.report import ActionRecord, Detection, SweepReport

_GRAVE_OUTCOMES = ("gave_up", "failed", "blocked")
LOG_QUIET = timedelta(hours=2)   # a log incident with no new line for this long is over
# An action's outcome in words a person reads at 3 a.m.
_OUTCOME_WORDS = {"blocked": "held back (it ran too often lately)", "dry_run": "only planned (DRY_RUN)",
                  "retry_scheduled": "retry scheduled", "gave_up": "gave up", "safe_mode":
                  "held back (too many actions this hour)", "waiting": "waiting for the internet"}


def from_checks(results: Iterable[CheckResult], trigger: str) -> list[Observation]:
    """One observation per check; `unknown` (not configured, cannot tell) is no evidence either way."""
    found = []
    for result in results:
        if result.status is Status.UNKNOWN or (result.data or {}).get("skipped"):
            continue  # a check that did not look (budget kept for posting) proves nothing
        failing = result.status is not Status.OK
        found.append(Observation(
            key=f"check:{result.name}", label=f"{result.name} check", failing=failing,
            severity=result.status.value if failing else "warning",
            detail=result.detail if failing else f"check passes again: {result.detail}",
            failure_class=result.failure_class,
            urgent=result.status is Status.CRITICAL and trigger == "pre_posting"))
    return found


def describe(action: ActionRecord) -> str:
    """`restart scheduler: held back (…)`: an action as an incident lists it."""
    return f"{action.routine.replace('_', ' ')}: {_OUTCOME_WORDS.get(action.outcome, action.outcome)}"


def _severity(item: Detection, latest: Mapping[str, Mapping[str, Any]]) -> str | None:
    """A check detection's severity, from the result the sweep stored (critical if unknown)."""
    stored = latest.get(item.target.removeprefix("check:"), {})
    return stored.get("status") if stored.get("status") in ("warning", "critical") else None


def _detected(report: SweepReport, latest: Mapping[str, Mapping[str, Any]],
              posts: Mapping[int, PostFacts]) -> dict[str, Observation]:
    found: dict[str, Observation] = {}
    for item in report.detected:
        is_check = item.source == "check"
        key = item.target if is_check else f"failure:{item.failure_class}:{item.target}"
        if key in found:
            continue
        acts = [a for a in report.actions if a.target == item.target
                and a.reason in ("", item.failure_class)]
        needs_human = [a for a in acts if a.needs_human]
        # A routine's own words are advice unless the guard merely held it back.
        advice = next((a.detail for a in needs_human if a.outcome not in ("blocked", "safe_mode")), None)
        grave = bool(needs_human) or any(a.outcome in _GRAVE_OUTCOMES for a in acts)
        play = playbook.play(item.failure_class)
        class_severity = play.severity
        severity = (_severity(item, latest) if is_check else None) or (
            "critical" if grave or is_check or class_severity == "critical" else "warning")
        gave_up = next((a for a in acts if a.outcome == "gave_up"), None)
        post = posts.get(item.post_id) if item.post_id is not None else None
        label = f"{key.removeprefix('check:')} check" if is_check else \
            (f"post {item.post_id}" if item.post_id is not None else
             play.title or f"{item.failure_class} in {item.target}")
        found[key] = Observation(
            key=key, label=label, failing=True, severity=severity, detail=item.detail,
            failure_class=item.failure_class,
            urgent=bool(needs_human) or (item.source in ("log", "monitor") and class_severity == "critical"),
            human_step=advice, actions=tuple(describe(a) for a in acts),
            held_back=tuple(a.routine for a in acts if a.outcome in ("blocked", "safe_mode")),
            post=post, gave_up=item.detail if gave_up is not None else None)
    return found


def _fixed(report: SweepReport, keys_seen: set[str],
           posts: Mapping[int, PostFacts]) -> dict[str, Observation]:
    """Keys a routine fixed and whose check then passed (`verified`), even if detected before;
    a post's keys once it went out."""
    found: dict[str, Observation] = {}
    for action in report.actions:
        post = posts.get(action.post_id) if action.post_id is not None else None
        if post is not None and post.status == "posted":
            for key in sorted(k for k in keys_seen if k.endswith(f":{action.target}")):
                found[key] = Observation(key=key, label=key, failing=False, actions=(describe(action),),
                                         post=post, posted=True)
            continue
        if action.verified is not True:
            continue
        keys = {action.target, f"failure:{action.reason}:{action.target}", f"check:{action.reason}"}
        for key in sorted(keys & keys_seen):
            found[key] = Observation(key=key, label=key, failing=False, actions=(describe(action),),
                                     fixed_by=f"{action.routine}: {action.detail} (re-check passed)")
    return found


def _not_seen(key: str, latest: Mapping[str, Mapping[str, Any]], posts: Mapping[int, PostFacts],
              evidence: str | None) -> Observation | None:
    """An open incident the sweep did not detect again: a pass, if there is evidence."""
    post_id = post_id_of(key)
    if post_id is not None:
        post = posts.get(post_id)
        if post is not None and post.status in WAITING:
            return None  # waiting for its retry: neither passing nor failing
        if post is not None and post.status == "posted":
            return Observation(key=key, label=key, failing=False, post=post, posted=True)
        return Observation(key=key, label=key, failing=False,
                           detail=f"the post is now {post.status}" if post else "the post is gone")
    if key.startswith("failure:") and key.rsplit(":", 1)[-1] in WHOLE_SWEEP_TARGETS:
        # About the ledger or the monitor as a whole: a sweep that ran everywhere is the evidence.
        return Observation(key=key, label=key, failing=False, detail="no longer detected by the sweep")
    if key.startswith("failure:"):  # found in a pipeline log
        return None if evidence is None else Observation(key=key, label=key, failing=False,
                                                         detail=evidence)
    stored = latest.get(key.removeprefix("check:"), {})
    if stored.get("trigger") != "sweep" or stored.get("status") not in ("ok", "warning", "critical"):
        return None  # the sweep did not run this check, or it could not tell
    failing = stored["status"] != "ok"
    detail = str(stored.get("detail", ""))
    return Observation(key=key, label=key, failing=failing, severity=stored["status"],
                       detail=detail if failing else f"check passes again: {detail}")


def _log_evidence(failed: datetime | None, now: datetime | None,
                  last_posted: datetime | None) -> str | None:
    """Why a log incident is over: a post went out after its last line, or LOG_QUIET passed."""
    if failed is None or now is None:
        return "no longer detected by the sweep"
    if last_posted is not None and last_posted > failed:
        return "a post went out since the last such line"
    if now - failed >= LOG_QUIET:
        return f"no such line in the log for {int(LOG_QUIET.total_seconds() // 3600)}h"
    return None


def from_sweep(report: SweepReport, open_keys: Mapping[str, datetime | None] | set[str],
               latest: Mapping[str, Mapping[str, Any]] | None = None,
               posts: Mapping[int, PostFacts] | None = None, now: datetime | None = None,
               last_posted: datetime | None = None) -> list[Observation]:
    """Detections fail their key; verified fixes and posts that went out resolve theirs; open keys
    not seen again pass when there is evidence.

    `open_keys` maps each open incident to its last failure; `latest` is the newest stored check
    result per check name; `posts` the ledger rows the report and the open incidents name;
    `last_posted` when the ledger last had a post go out.
    """
    latest, posts = latest or {}, posts or {}
    last_failed = open_keys if isinstance(open_keys, Mapping) else dict.fromkeys(open_keys)
    detected = _detected(report, latest, posts)
    # A fix verified in the same sweep outweighs the detection made before it ran.
    found = {**detected, **_fixed(report, set(last_failed) | set(detected), posts)}
    if not report.errors:  # a sweep that could not look everywhere proves nothing by silence
        for key in sorted(set(last_failed) - set(found)):
            evidence = _log_evidence(last_failed[key], now, last_posted)
            observation = _not_seen(key, latest, posts, evidence)
            if observation is not None:
                found[key] = observation
    return list(found.values())
