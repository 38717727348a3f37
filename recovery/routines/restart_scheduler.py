"""Scheduler down: restart it (systemd unit, or SCHEDULER_RESTART_COMMAND as an argument list,
never a shell); the `scheduler` check proves it came back."""

from __future__ import annotations

import subprocess
from typing import TYPE_CHECKING

from recovery.base import FixOutcome, Routine, Target
from utils.redact import one_line

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "restart_scheduler"
SETTLE_SECONDS = 5.0  # a restarted scheduler needs a moment to write its first heartbeat


def command(ctx: MonitorContext) -> list[str] | None:
    """The argument list that restarts the scheduler, or None when none is configured."""
    settings = ctx.settings
    if settings.scheduler_restart_command:
        return list(settings.scheduler_restart_command)
    if settings.scheduler_service:
        return ["systemctl", "restart", settings.scheduler_service]
    return None


def plan(ctx: MonitorContext, target: Target) -> str:
    """What fix() would do."""
    argv = command(ctx)
    return f"run {argv!r}" if argv else "nothing: no SCHEDULER_SERVICE or SCHEDULER_RESTART_COMMAND"


def fix(ctx: MonitorContext, target: Target) -> FixOutcome:
    """Run the restart command once with a timeout."""
    argv = command(ctx)
    if argv is None:
        return FixOutcome("not_configured", "the scheduler is down and no restart is configured: set "
                          "SCHEDULER_SERVICE (systemd) or SCHEDULER_RESTART_COMMAND, or restart it by "
                          "hand", needs_human=True)
    try:
        proc = ctx.command_runner(argv, max(30.0, ctx.settings.check_timeout_seconds))
    except (OSError, subprocess.TimeoutExpired) as exc:
        return FixOutcome("failed", f"{argv[0]} could not run: {exc}", needs_human=True)
    if proc.returncode != 0:
        output = one_line((proc.stderr or proc.stdout or "").strip(), 300)
        return FixOutcome("failed", f"{' '.join(argv)} exited {proc.returncode}: {output}",
                          needs_human=True)
    return FixOutcome("fixed", f"ran {' '.join(argv)}")


ROUTINE = Routine(NAME, fix, plan, verify_check="scheduler", settle_s=SETTLE_SECONDS)
