"""`scheduler`: is the pipeline's own scheduler alive (systemd unit and/or heartbeat file)?"""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING, Any

from checks.base import CheckFailed, CheckUnknown, CheckWarning, Passed, Status
from utils.failure_classes import FailureClass

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "scheduler"
FAILURE_CLASS = FailureClass.SCHEDULER
_NO_SYSTEMD_MARKERS = ("not been booted with systemd", "Failed to connect to bus",
                       "System has not been booted")


def unit_state(ctx: MonitorContext, unit: str) -> tuple[Status, str]:
    """`systemctl is-active UNIT` as a verdict; unknown where the machine has no systemd."""
    try:
        proc = ctx.command_runner(["systemctl", "is-active", unit],
                                  ctx.settings.check_timeout_seconds)
    except FileNotFoundError:
        return Status.UNKNOWN, "systemctl is not installed: cannot see the unit"
    except subprocess.TimeoutExpired:
        return Status.UNKNOWN, "systemctl is-active did not answer in time"
    answer = (proc.stdout or "").strip()
    if any(marker in proc.stderr for marker in _NO_SYSTEMD_MARKERS):
        return Status.UNKNOWN, f"no systemd on this machine (a container?): cannot see {unit}"
    if answer == "active":
        return Status.OK, f"{unit} is active"
    if answer in ("activating", "reloading", "deactivating"):
        return Status.WARNING, f"{unit} is {answer}"
    return Status.CRITICAL, f"{unit} is {answer or 'not active'}"


def heartbeat_state(ctx: MonitorContext) -> tuple[Status, str, dict[str, Any]]:
    """The heartbeat file's age against SCHEDULER_HEARTBEAT_MAX_AGE_SECONDS."""
    path = ctx.settings.scheduler_heartbeat_file
    max_age = ctx.settings.scheduler_heartbeat_max_age_seconds
    if path is None:
        return Status.UNKNOWN, "no SCHEDULER_HEARTBEAT_FILE configured", {}
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return Status.CRITICAL, f"heartbeat file {path} is missing", {}
    except OSError as exc:
        return Status.CRITICAL, f"heartbeat file {path}: {exc.strerror or exc}", {}
    age = round(ctx.now().timestamp() - mtime, 1)
    data = {"heartbeat_age_seconds": age}
    if age > max_age:
        return Status.CRITICAL, f"heartbeat is {age:.0f}s old (max {max_age:g}s)", data
    return Status.OK, f"heartbeat {max(age, 0):.0f}s old", data


def check(ctx: MonitorContext) -> Passed:
    """Worst of the unit state and the heartbeat age; unknown when neither is configured."""
    settings = ctx.settings
    verdicts: list[tuple[Status, str]] = []
    data: dict[str, Any] = {}
    if settings.scheduler_service:
        status, text = unit_state(ctx, settings.scheduler_service)
        verdicts.append((status, text))
        data["unit"] = {"name": settings.scheduler_service, "status": status.value}
    if settings.scheduler_heartbeat_file:
        status, text, measured = heartbeat_state(ctx)
        verdicts.append((status, text))
        data.update(measured)
    if not verdicts:
        raise CheckUnknown("not configured: set SCHEDULER_SERVICE and/or SCHEDULER_HEARTBEAT_FILE")
    # A definite answer from one source beats "cannot tell" from the other.
    definite = [status for status, _ in verdicts if status is not Status.UNKNOWN]
    worst = Status.worst(definite or [Status.UNKNOWN])
    detail = "; ".join(text for _, text in verdicts)
    if worst is Status.CRITICAL:
        raise CheckFailed(detail, failure_class=FAILURE_CLASS, data=data)
    if worst is Status.WARNING:
        raise CheckWarning(detail, data=data)
    if worst is Status.UNKNOWN:
        raise CheckUnknown(detail, data=data)
    return Passed(detail, data)
