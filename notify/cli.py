"""The `notify-test` and `silence` subcommands (handlers for autonomous_monitor.COMMANDS)."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from notify.messages import clock
from notify.silence import active_silences, clear_silence, set_silence
from utils.config import parse_duration
from utils.failure_classes import FailureClass
from utils.redact import redact

if TYPE_CHECKING:
    from notify.monitor_view import MonitorView

EX_USAGE = 2


def cmd_notify_test(monitor: MonitorView, args: argparse.Namespace) -> int:
    """Send a test message to every channel now; exit 1 when any channel did not take it."""
    results = monitor.notifications.test()
    for result in results:
        verdict = "delivered" if result.delivered else "FAILED"
        reason = f": {result.error}" if result.error else ""
        print(redact(f"{verdict:<10} {result.name} [{result.channel_id}]{reason}"))
    if len(results) == 1:
        print("NOTIFY_URLS is empty: only the log receives notifications "
              "(see the README for Telegram, Discord, e-mail and ntfy URLs)")
    return 0 if all(result.delivered for result in results) else 1


def args_notify_test(parser: argparse.ArgumentParser) -> None:
    parser.epilog = "Exit status: 0 when every channel accepted the message, 1 otherwise."


def _known(monitor: MonitorView, name: str) -> bool:
    return (name in monitor.checks or name in {c.value for c in FailureClass}
            or name.startswith(("check:", "failure:")))


def cmd_silence(monitor: MonitorView, args: argparse.Namespace) -> int:
    """Silence, list or clear alert silences; incidents are recorded all the same."""
    ctx = monitor.ctx
    tz = ctx.settings.monitor_timezone
    if args.list:
        found = active_silences(ctx)
        for name, until in sorted(found.items()):
            print(f"{name:<24} until {until.astimezone(tz):%Y-%m-%d %H:%M %Z}")
        if not found:
            print("no active silences")
        return 0
    if not args.name:
        print("silence: name a check (e.g. disk_space), or use --list", file=sys.stderr)
        return EX_USAGE
    if args.clear:
        print(f"silence for {args.name} cleared" if clear_silence(ctx, args.name)
              else f"{args.name} was not silenced")
        return 0
    if not _known(monitor, args.name):
        print(f"silence: unknown check or failure class {args.name!r} (checks: "
              f"{', '.join(monitor.checks)})", file=sys.stderr)
        return EX_USAGE
    try:
        span = parse_duration(args.duration or "")
    except ValueError:
        print("silence: --for needs a duration such as 30m, 2h or 1d", file=sys.stderr)
        return EX_USAGE
    until = ctx.now() + span
    set_silence(ctx, args.name, until)
    print(f"{args.name} silenced until {clock(until, tz)} on {until.astimezone(tz):%Y-%m-%d}: "
          "alerts suppressed, incidents still recorded")
    return 0


def args_silence(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", nargs="?", metavar="CHECK",
                        help="a check name, a failure class, or an incident key")
    parser.add_argument("--for", dest="duration", metavar="DURATION", help="e.g. 30m, 2h, 1d")
    parser.add_argument("--list", action="store_true", help="show the silences in force")
    parser.add_argument("--clear", action="store_true", help="end the silence on CHECK now")
