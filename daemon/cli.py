"""The `run` and `status` subcommands (handlers stay thin; the work lives in daemon/status_report)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from utils.redact import redact

if TYPE_CHECKING:
    from autonomous_monitor import AutonomousMonitor


def cmd_run(monitor: AutonomousMonitor, args: argparse.Namespace) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT; 0 after a clean stop."""
    from daemon.service import run_daemon

    return run_daemon(monitor)


def args_run(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("Stops cleanly on SIGTERM or SIGINT (a second signal exits at once). Under systemd "
                     "it speaks sd_notify (Type=notify, WatchdogSec).")


def cmd_status(monitor: AutonomousMonitor, args: argparse.Namespace) -> int:
    """Print what the monitor is doing (from the database; the daemon need not run)."""
    from daemon.status_report import gather_status
    from daemon.status_text import render

    report = gather_status(monitor.ctx)
    if args.json:
        print(redact(json.dumps(report, default=str)))
    else:
        print(redact(render(report, monitor.ctx.settings.monitor_timezone)))
    return 0


def args_status(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
