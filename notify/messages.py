"""The three kinds of message (status report, failure alert, recovery/resolved), phone-sized.

Every title and body passes through `redact`: no secret ever leaves in a message.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from utils.redact import one_line, redact

if TYPE_CHECKING:
    from checks.base import CheckResult

TITLE_MAX = 80
BODY_MAX = 600
_TYPE_OF = {"critical": "failure", "warning": "warning", "unknown": "warning", "ok": "success"}

# What a person must do when the monitor cannot fix it, by failure class.
HUMAN_STEPS = {
    "auth": "regenerate the X access token and secret in the developer portal, put them in .env "
            "and restart the monitor.",
    "permission": "set the X app to Read and Write, then regenerate the access token.",
    "usage_cap": "the X API cap or credits are used up: wait for the reset or raise the plan.",
    "disk": "free space on that disk (old logs, caches) or enlarge it.",
    "database": "check the database server is up and DATABASE_URL is right.",
    "network": "check this machine's internet connection and DNS.",
    "scheduler": "check the pipeline's scheduler (its service status and logs) and start it.",
    "duplicate": "change the post text: X refuses identical content.",
    "invalid_request": "fix the post in the ledger (too long or invalid).",
}
# What the monitor itself does next, by failure class (the default: it keeps checking).
MONITOR_STEPS = {
    "rate_limit": "waits for X's rate-limit reset, then retries the post",
    "server_error": "retries with backoff",
    "timeout": "checks whether the post went out, then retries with backoff",
    "network": "retries with backoff",
    "scheduler": "tries to restart the scheduler",
    "disk": "cleans old rotated logs and temp files",
}


@dataclass(frozen=True)
class Message:
    """One notification: title, body and the Apprise notify type (info/success/warning/failure)."""

    title: str
    body: str
    notify_type: str


@dataclass(frozen=True)
class IncidentFacts:
    """What a message needs to know about one incident."""

    label: str
    severity: str
    failure_class: str | None
    detail: str
    opened_at: datetime
    failures: int
    actions: str = ""
    human_step: str | None = None
    next_check: datetime | None = None
    repeat_hours: float = 6.0


def make(title: str, lines: Iterable[str], notify_type: str) -> Message:
    """A redacted message cut to phone size (title ≤ 80, body ≤ 600 characters)."""
    body = "\n".join(redact(line) for line in lines if line)
    if len(body) > BODY_MAX:
        body = body[: BODY_MAX - 1] + "…"
    return Message(one_line(title, TITLE_MAX), body, notify_type)


def duration(span: timedelta) -> str:
    """`2d 3h`, `2h 5m`, `12m` or `under a minute`."""
    minutes = int(span.total_seconds() // 60)
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins}m"
    return f"{mins}m" if mins else "under a minute"


def clock(moment: datetime, tz: tzinfo) -> str:
    """`HH:MM ZONE` in the monitor's timezone."""
    return moment.astimezone(tz).strftime("%H:%M %Z")


def human_step(failure_class: str | None) -> str | None:
    """What a person must do for this class, if the monitor cannot do it alone."""
    return HUMAN_STEPS.get(failure_class or "")


def alert(facts: IncidentFacts, kind: str, tz: tzinfo, previous: str | None = None) -> Message:
    """A failure alert; `kind` is alert, reminder, escalation or flapping."""
    level = facts.severity.upper()
    title = {"alert": f"{level}: {facts.label} failing",
             "reminder": f"Still {level}: {facts.label}",
             "escalation": f"Now {level}: {facts.label} (was {previous})",
             "flapping": f"FLAPPING: {facts.label} keeps failing and recovering"}[kind]
    plan = MONITOR_STEPS.get(facts.failure_class or "", "keeps checking")
    when = f", next check by {clock(facts.next_check, tz)}" if facts.next_check else ""
    lines = [one_line(facts.detail, 280),
             f"Class: {facts.failure_class or 'n/a'} · since {clock(facts.opened_at, tz)}"
             f" ({facts.failures} failed round(s))",
             f"Monitor: {plan}{when}. Reminder every {facts.repeat_hours:g}h while it lasts.",
             f"Done so far: {facts.actions}" if facts.actions else "",
             f"You: {facts.human_step}" if facts.human_step else ""]
    return make(title, lines, _TYPE_OF.get(facts.severity, "warning"))


def unrecorded(problems: list[tuple[str, str]], why: str) -> Message:
    """An urgent alert sent straight to the channels while the monitor's own database cannot be
    written (so no incident, no outbox): each problem as its class and detail."""
    lines = [f"Class: {failure_class} · {one_line(detail, 200)}" for failure_class, detail in problems[:4]]
    lines += [f"The monitor cannot record incidents: {one_line(why, 160)}",
              "You: free the disk or bring the database back; alerts resume normally then."]
    return make(f"CRITICAL: {', '.join(sorted({c for c, _ in problems}))} (monitor database unwritable)",
                lines, "failure")


def resolved(facts: IncidentFacts, now: datetime, how: str, tz: tzinfo) -> Message:
    """The one all-clear for an alerted incident: what happened, what was done, how long."""
    lasted = duration(now - facts.opened_at)
    lines = [f"Was: {one_line(facts.detail, 240)}",
             f"Fixed: {how}",
             f"Monitor did: {facts.actions}" if facts.actions else "Monitor did: no action needed",
             f"Lasted {lasted} ({clock(facts.opened_at, tz)} to {clock(now, tz)})."]
    return make(f"Resolved: {facts.label} (after {lasted})", lines, "success")


def status_report(results: list[CheckResult], now: datetime, tz: tzinfo) -> Message:
    """The compact health summary sent after a pre-posting round."""
    from checks.base import Status

    worst = Status.worst(r.status for r in results)
    bad = [r for r in results if r.status is not Status.OK]
    lines = [f"{r.status.value.upper()} {r.name}: {one_line(r.detail, 120)}" for r in bad]
    ok_names = ", ".join(r.name for r in results if r.status is Status.OK)
    lines.append(f"OK: {ok_names}" if ok_names else "")
    title = f"Pre-posting health at {clock(now, tz)}: {worst.value.upper()}"
    return make(title, lines, "info" if worst is Status.OK else _TYPE_OF[worst.value])


def test_message(now: datetime, tz: tzinfo) -> Message:
    """The `notify-test` message."""
    return make("Autonomiq Monitor: test notification",
                [f"Sent at {clock(now, tz)}. If you can read this, this channel works."], "info")
