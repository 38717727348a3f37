"""The `run` and `status` subcommands (handlers stay thin; the work lives in daemon/status_report)."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING

from daemon.status_report import gather_status
from daemon.status_text import render
from utils.redact import redact

if TYPE_CHECKING:
    from daemon.monitor_view import RunnableMonitor


def cmd_run(monitor: RunnableMonitor, args: argparse.Namespace) -> int:
    """Run the daemon in the foreground until SIGTERM/SIGINT; 0 after a clean stop."""
    from daemon.service import run_daemon

    return run_daemon(monitor)


def args_run(parser: argparse.ArgumentParser) -> None:
    parser.epilog = ("Stops cleanly on SIGTERM or SIGINT (a second signal exits at once); SIGHUP re-reads "
                     ".env and applies it if valid. Under systemd "
                     "it speaks sd_notify (Type=notify, WatchdogSec). One daemon per ledger: a second "
                     "one exits with 75 naming the holder.")


EXIT_UNKNOWN = 3  # Nagios "unknown": what status printed is not the current truth


def cmd_status(monitor: RunnableMonitor, args: argparse.Namespace) -> int:
    """Print what the monitor is doing (from the database; the daemon need not run); exit 3
    (unknown) when the database, or part of it, could not be read."""
    report = gather_status(monitor.ctx)
    if args.json:
        print(redact(json.dumps(report, default=str)))
    else:
        print(redact(render(report, monitor.ctx.settings.monitor_timezone)))
    return EXIT_UNKNOWN if report["errors"] else 0


def args_status(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.epilog = "Exit status: 0, or 3 (unknown) when the database could not be read."
