#!/usr/bin/env python3
"""Autonomiq Monitor: health checks, failure recovery and alerts for an X posting pipeline.

This file is the composition root and the command line: it loads settings, builds the registry
of checks and fixers and the notification channels, and hands each subcommand to plain functions.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Callable, Iterable
from dataclasses import replace
from datetime import datetime

from checks import CHECKS
from checks.base import CheckFn, CheckResult, Status
from checks.round import run_round
from daemon.cli import args_run, args_status, cmd_run, cmd_status
from daemon.digest import args_digest, cmd_digest
from notify.cli import args_notify_test, args_silence, cmd_notify_test, cmd_silence
from notify.service import NotificationService
from recovery.base import Routine
from recovery.playbook import ROUTINES
from recovery.registry import Registry
from recovery.report import SweepReport
from recovery.sweep import render_report, run_sweep, sweep_exit_code
from utils.config import EX_CONFIG, ConfigError, Settings, load_settings
from utils.context import MonitorContext
from utils.db import utc_now
from utils.env_file import config_warnings
from utils.logging_setup import setup_logging
from utils.redact import redact, register_secrets
from utils.safe_mode import leave_safe_mode

logger = logging.getLogger("autonomiq")
MAX_ERRORS_LOGGED = 1000  # distinct sweep errors remembered, so the memory stays bounded


class AutonomousMonitor:
    """The registry of checks and fixers, and what runs them against one context: health rounds,
    sweeps (and their fix verification) and the daemon all use what is registered here."""

    def __init__(self, ctx: MonitorContext) -> None:
        self.ctx = ctx
        self.registry = Registry()
        self.notifications = NotificationService(ctx)
        self._errors_logged: set[str] = set()  # each sweep error is logged once, not every sweep

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], datetime] | None = None
                      ) -> AutonomousMonitor:
        """A monitor on `settings` (and `clock`, the real one when None) with every built-in
        check and fixer registered."""
        monitor = cls(MonitorContext(settings, clock=clock or utc_now))
        for name, check in CHECKS.items():
            monitor.register_check(name, check)
        for name, routine in ROUTINES.items():
            monitor.register_fixer(name, routine)
        return monitor

    @property
    def checks(self) -> dict[str, CheckFn]:
        """The registered checks by name, in registration order."""
        return self.registry.checks

    @property
    def fixers(self) -> dict[str, Routine]:
        """The registered fixers (recovery routines) by name."""
        return self.registry.fixers

    def register_check(self, name: str, check: CheckFn) -> None:
        """Add (or replace) the check run under `name`; a plain function runs in health rounds,
        a `Check(..., every_sweep=True)` on every sweep too."""
        self.registry.add_check(name, check)

    def register_fixer(self, name: str, fixer: Routine, failure_classes: Iterable[str] = ()) -> None:
        """Add (or replace) the fixer run under `name`: it replaces the playbook's routine of
        that name, and also runs for each of `failure_classes`."""
        self.registry.add_fixer(fixer if fixer.name == name else replace(fixer, name=name),
                                failure_classes)

    def run_health_round(self, trigger: str = "manual",
                         names: list[str] | None = None) -> list[CheckResult]:
        """Run the checks (all, or those in `names`) at once, store the results, hand them to
        `after_round` with dependent failures folded into their cause, and return them as run."""
        selected = {n: c for n, c in self.checks.items() if names is None or n in names}
        checks = run_round(selected, self.checks, self.ctx, trigger)
        for result in checks.results:
            log = logger.info if result.status is Status.OK else logger.warning
            log("check %s: %s - %s (%.0f ms)", result.name, result.status.value, result.detail,
                result.duration_ms)
        self.after_round(checks.shown, trigger)
        return checks.results

    def run_sweep(self) -> SweepReport:
        """One pipeline sweep (checks, ledger, logs → recovery); logged and handed to after_sweep."""
        report = run_sweep(self.ctx, self.registry)
        logger.info("sweep: %s", report.summary())
        for error in report.errors:
            if error not in self._errors_logged and len(self._errors_logged) < MAX_ERRORS_LOGGED:
                self._errors_logged.add(error)
                logger.warning("sweep: %s", error)
        self.after_sweep(report)
        return report

    def after_round(self, results: list[CheckResult], trigger: str) -> None:
        """Extension point called after every stored health round (incidents plug in here)."""
        self.notifications.observe_round(results, trigger)

    def after_sweep(self, report: SweepReport) -> None:
        """Extension point called after every sweep (incidents plug in here)."""
        self.notifications.observe_sweep(report)

    def start_services(self) -> None:
        """Start background services the daemon needs (notification delivery)."""
        self.notifications.start()

    def stop_services(self, timeout_s: float = 5.0) -> None:
        """Stop what `start_services` started, waiting at most `timeout_s`."""
        self.notifications.stop(timeout_s)

    def close(self) -> None:
        """Release connections and sessions."""
        self.ctx.close()


# --- subcommands -------------------------------------------------------------------------------

def render_table(results: list[CheckResult]) -> str:
    """A fixed-width table: status, name, detail, time."""
    lines = [f"{'STATUS':<9} {'CHECK':<12} {'TIME':>8}  DETAIL"]
    for r in results:
        lines.append(f"{r.status.value.upper():<9} {r.name:<12} {r.duration_ms:>6.0f}ms  {r.detail}")
    worst = Status.worst(r.status for r in results)
    lines.append(f"overall: {worst.value}")
    return "\n".join(lines)


def cmd_check(monitor: AutonomousMonitor, args: argparse.Namespace) -> int:
    """Run every check once; print a table or JSON; exit with the Nagios code of the worst."""
    results = monitor.run_health_round("manual")
    worst = Status.worst(r.status for r in results)
    warnings = config_warnings(monitor.ctx.settings)
    if args.json:
        payload = {"status": worst.value, "checked_at": monitor.ctx.now().isoformat(),
                   "checks": [r.to_json() for r in results], "warnings": warnings}
        print(redact(json.dumps(payload, default=str)))
    else:
        print(redact("\n".join([render_table(results), *(f"warning: {w}" for w in warnings)])))
    return worst.exit_code


def args_check(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.epilog = "Exit status (Nagios convention): 0 ok, 1 warning, 2 critical, 3 unknown."


def cmd_sweep(monitor: AutonomousMonitor, args: argparse.Namespace) -> int:
    """Run one sweep; print a summary or JSON; exit 0 healthy, 1 acted, 2 a human is needed."""
    report = monitor.run_sweep()
    print(redact(json.dumps(report.to_json(), default=str) if args.json else render_report(report)))
    return sweep_exit_code(report)


def args_sweep(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true",
                        help='print {"detected": [...], "actions": [...], "errors": [...]}')
    parser.epilog = ("Exit status: 0 nothing wrong, 1 something was detected or fixed, "
                     "2 a human is needed (a routine asked for one, was blocked, or part of the "
                     "sweep could not run).")


def cmd_resume(monitor: AutonomousMonitor, args: argparse.Namespace) -> int:
    """Leave safe mode (automatic fixes and post retries run again); say what was left. Exit 0."""
    left = leave_safe_mode(monitor.ctx.engine, monitor.ctx.now())
    if left.active:
        since = left.since.isoformat() if left.since else "an unknown time"
        print(f"left safe mode (active since {since}: {left.reason}); automatic fixes and post "
              "retries run again, and the hour's action budget counts from now")
    else:
        print("not in safe mode: automatic fixes and post retries were already allowed")
    return 0


def args_resume(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "Exit status: 0 (also when the monitor was not in safe mode)."


Handler = Callable[[AutonomousMonitor, argparse.Namespace], int]
# One line per subcommand: name -> (handler, help, adds its arguments).
COMMANDS: dict[str, tuple[Handler, str, Callable[[argparse.ArgumentParser], None]]] = {
    "check": (cmd_check, "run every health check once and print the results", args_check),
    "sweep": (cmd_sweep, "run one pipeline sweep (ledger, logs, scheduler), recover, summarise", args_sweep),
    "run": (cmd_run, "run the daemon in the foreground (the default)", args_run),
    "status": (cmd_status, "show jobs, latest checks, incidents, actions, retries, API budget",
               args_status),
    "notify-test": (cmd_notify_test, "send a test message to every notification channel", args_notify_test),
    "resume": (cmd_resume, "leave safe mode: let automatic fixes and post retries run again", args_resume),
    "silence": (cmd_silence, "silence a check's alerts for a while (still recorded)", args_silence),
    "digest": (cmd_digest, "print the daily digest: last 24 h of posts, budget, DST", args_digest),
}


def build_parser() -> argparse.ArgumentParser:
    """The command line: one subparser per entry of COMMANDS."""
    parser = argparse.ArgumentParser(
        prog="autonomous_monitor.py",
        description="Autonomiq Monitor: health checks, failure recovery and alerts for an X "
                    "posting pipeline. Settings come from the environment and .env (ENV_FILE). "
                    "With no command it runs the daemon in the foreground (same as `run`).")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_handler, help_text, add_arguments) in COMMANDS.items():
        add_arguments(sub.add_parser(name, help=help_text, description=help_text))
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, load settings (exit 78 on a bad one) and run the subcommand."""
    args = build_parser().parse_args(argv)
    command = args.command or "run"
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return EX_CONFIG
    register_secrets(settings.secret_values)

    setup_logging(settings.log_dir, settings.log_level,
                  stderr_level=None if command == "run" else "WARNING", zone=settings.monitor_timezone)

    for warning in config_warnings(settings):  # `check` and `status` also print them
        (logger.info if command in ("check", "status") else logger.warning)("%s", warning)
    monitor = AutonomousMonitor.from_settings(settings)
    try:
        return COMMANDS[command][0](monitor, args)
    finally:
        monitor.close()


if __name__ == "__main__":
    sys.exit(main())
