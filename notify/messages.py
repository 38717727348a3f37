"""The kinds of message (alert, post given up, posted, resolved, status report, silence summary),
phone-sized, in plain text. Every title starts with the severity and the monitor's name; every body
ends with the monitor's name and the X account. Every title and body passes through `redact`: no
secret ever leaves in a message. What the monitor does and what a person must do come from the
playbook (recovery/playbook.py), never from a table here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, tzinfo
from typing import TYPE_CHECKING

from utils.redact import one_line, redact

if TYPE_CHECKING:
    pass

TITLE_MAX = 80
BODY_MAX = 800  # a grouped alert names up to five posts and still says what to do
POST_TEXT_MAX = 80
_TYPE_OF = {"critical": "failure", "warning": "warning", "unknown": "warning", "ok": "success"}
_LEVEL_OF = {"failure": "CRITICAL", "warning": "WARNING", "success": "RESOLVED", "info": "INFO"}


@dataclass(frozen=True)
class Message:
    """One notification: title, body, the Apprise notify type (info/success/warning/failure), the
    severity word its title starts with, and the incident it is about (None: a report)."""

    title: str
    body: str
    notify_type: str
    level: str = "INFO"
    key: str | None = None


@dataclass(frozen=True)
class Who:
    """Which monitor speaks, and for which X account (None until the twitter_api check knew it)."""

    name: str
    handle: str | None = None

    def line(self) -> str:
        return f"— {self.name}" + (f" · X account @{self.handle}" if self.handle else "")


@dataclass(frozen=True)
class PostFacts:
    """A ledger row as a person thinks of it."""

    id: int
    text: str
    scheduled_at: datetime | None
    status: str
    attempts: int = 0
    tweet_id: str | None = None

    def line(self, tz: tzinfo, now: datetime) -> str:
        """`Post 6 “text…” for 09:00 UTC: retry_scheduled (2 attempts)`."""
        when = f" for {clock(self.scheduled_at, tz, now)}" if self.scheduled_at else ""
        return (f"Post {self.id} “{one_line(self.text, POST_TEXT_MAX)}”{when}: {self.status}"
                f" ({self.attempts} attempt(s))")


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
    since: datetime | None = None        # since when the current cause holds (restarts with it)
    human_step: str | None = None
    monitor_step: str | None = None      # what the monitor does now (None: it cannot act alone)
    repeat_hours: float = 6.0
    post: PostFacts | None = None
    key: str | None = None


def make(title: str, lines: Iterable[str], notify_type: str, level: str | None = None,
         key: str | None = None) -> Message:
    """A redacted message cut to phone size (title ≤ 80, body ≤ 800 characters); `level` is the
    severity word its title will start with (by default the one of `notify_type`)."""
    body = "\n".join(redact(line) for line in lines if line)
    if len(body) > BODY_MAX:
        body = body[: BODY_MAX - 1] + "…"
    return Message(one_line(title, TITLE_MAX), body, notify_type,
                   level or _LEVEL_OF.get(notify_type, "INFO"), key)


def sign(message: Message, who: Who) -> Message:
    """The message as sent: `LEVEL name: title`, and the name and X account as the last line."""
    title = one_line(f"{message.level} {who.name}: {message.title}", TITLE_MAX)
    tail = redact(who.line())
    body = message.body[: BODY_MAX - len(tail) - 2] if len(message.body) > BODY_MAX - len(tail) - 1 \
        else message.body
    return replace(message, title=title, body=f"{body}\n{tail}" if body else tail)


def duration(span: timedelta) -> str:
    """`2d 3h`, `2h 5m`, `12m` or `under a minute`."""
    minutes = int(span.total_seconds() // 60)
    days, hours, mins = minutes // 1440, minutes // 60 % 24, minutes % 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {mins}m"
    return f"{mins}m" if mins else "under a minute"


def clock(moment: datetime, tz: tzinfo, now: datetime | None = None) -> str:
    """`HH:MM ZONE` in the monitor's timezone, with the date (`Sat 28 Nov HH:MM ZONE`) when it is
    not the day of `now`."""
    local = moment.astimezone(tz)
    if now is not None and local.date() != now.astimezone(tz).date():
        return local.strftime("%a %d %b %H:%M %Z")
    return local.strftime("%H:%M %Z")


def late_line(written: datetime, now: datetime, tz: tzinfo, over: bool, late: bool) -> str:
    """The first line of a message delivered late or after its incident ended ("" if neither)."""
    parts = []
    if late:
        parts.append(f"Sent {duration(now - written)} late: this happened at {clock(written, tz, now)}.")
    if over:
        parts.append("Already over: this incident has since ended (see the next message).")
    return " ".join(parts)


_TITLES = {"alert": "{label} failing", "reminder": "still: {label}",
           "escalation": "now critical: {label} (was {previous})",
           "flapping": "{label} keeps failing and recovering"}


def alert(facts: IncidentFacts, kind: str, tz: tzinfo, now: datetime,
          previous: str | None = None) -> Message:
    """A failure alert; `kind` is alert, reminder, escalation or flapping."""
    plan = facts.monitor_step or "cannot fix this by itself; it re-checks on every sweep"
    lines = [facts.post.line(tz, now) if facts.post else "",
             one_line(facts.detail, 280),
             f"Class: {facts.failure_class or 'n/a'} · since {clock(facts.since or facts.opened_at, tz, now)}"
             f" ({facts.failures} failed round(s))",
             f"Monitor: {plan}. Reminder every {facts.repeat_hours:g}h while it lasts.",
             f"Done so far: {facts.actions}" if facts.actions else "",
             f"You: {facts.human_step}" if facts.human_step else ""]
    title = _TITLES[kind].format(label=facts.label, previous=previous)
    level = "FLAPPING" if kind == "flapping" else facts.severity.upper()
    return make(title, lines, _TYPE_OF.get(facts.severity, "warning"), level, facts.key)


def gave_up(facts: IncidentFacts, reason: str, to_change: str, tz: tzinfo, now: datetime) -> Message:
    """The one alert for a post the monitor stopped trying: why, and what to change."""
    post = facts.post
    attempts = post.attempts if post else facts.failures
    lines = [post.line(tz, now) if post else one_line(facts.detail, 280),
             f"Gave up after {attempts} attempt(s): {one_line(reason, 120)}; to post it, "
             f"{to_change.rstrip('.')} and reschedule it.",
             f"Done: {facts.actions}" if facts.actions else ""]
    title = f"post {post.id} given up ({facts.failure_class})" if post else f"{facts.label} given up"
    return make(title, lines, "failure", "CRITICAL", facts.key)


def unrecorded(problems: list[tuple[str, str]], why: str) -> Message:
    """An urgent alert sent straight to the channels while the monitor's own database cannot be
    written (so no incident, no outbox): each problem as its class and detail."""
    lines = [f"Class: {failure_class} · {one_line(detail, 200)}" for failure_class, detail in problems[:4]]
    lines += [f"The monitor cannot record incidents: {one_line(why, 160)}",
              "You: free the disk or bring the database back; alerts resume normally then."]
    return make(f"{', '.join(sorted({c for c, _ in problems}))} (monitor database unwritable)",
                lines, "failure", "CRITICAL")


def resolved(facts: IncidentFacts, now: datetime, how: str, tz: tzinfo,
             end: datetime | None = None) -> Message:
    """The one all-clear for an alerted incident: what happened, what was done, how long (until
    `end`, the last failure of a flapping incident, else now)."""
    end = end or now
    lasted = duration(end - facts.opened_at)
    lines = [f"Was: {one_line(facts.detail, 240)}",
             f"Fixed: {how}",
             f"Monitor did: {facts.actions}" if facts.actions else "Monitor did: no action needed",
             f"Lasted {lasted} ({clock(facts.opened_at, tz, now)} to {clock(end, tz, now)})."]
    return make(f"{facts.label} (after {lasted})", lines, "success", "RESOLVED", facts.key)


def posted(facts: IncidentFacts, post: PostFacts, now: datetime, tz: tzinfo) -> Message:
    """A post that failed and then went out: what, as which tweet, how late, after what."""
    late = f", {duration(now - post.scheduled_at)} late" if post.scheduled_at else ""
    lines = [f"Posted: “{one_line(post.text, POST_TEXT_MAX)}” as tweet {post.tweet_id}{late}, "
             f"after {facts.failure_class or 'a failure'} ({one_line(facts.detail, 160)}).",
             f"Scheduled for {clock(post.scheduled_at, tz, now)}; {post.attempts} attempt(s)."
             if post.scheduled_at else "",
             f"Monitor did: {facts.actions}" if facts.actions else ""]
    return make(f"post {post.id} posted", lines, "success", "RESOLVED", facts.key)


def grouped(alerts: list[Message], failure_class: str) -> Message:
    """Alerts about several posts failing for one cause in one sweep, as one message."""
    first = alerts[0]
    worst = next((m for m in alerts if m.level == "CRITICAL"), first)
    posts = [one_line(m.body.splitlines()[0], 100) for m in alerts[:5]]
    if len(alerts) > 5:
        posts.append(f"…and {len(alerts) - 5} more")
    rest = first.body.splitlines()[1:]  # the cause and what to do are shared
    return make(f"{len(alerts)} posts failed: {failure_class}", [*posts, *rest], worst.notify_type,
                worst.level)


def silence_summary(name: str, started: datetime, now: datetime, events: list[str],
                    tz: tzinfo) -> Message:
    """Once, when a silence ends: what happened while it lasted."""
    lines = [f"Quiet time ({name}) from {clock(started, tz, now)} to {clock(now, tz, now)} is over.",
             *(events[:8] or ["Nothing was held back."]),
             f"…and {len(events) - 8} more" if len(events) > 8 else ""]
    during = "the maintenance window" if name == "maintenance window" else f"the silence on {name}"
    return make(f"during {during}: {len(events)} message(s) held back", lines, "info")


def test_message(now: datetime, tz: tzinfo) -> Message:
    """The `notify-test` message."""
    return make("test notification",
                [f"Sent at {clock(now, tz, now)}. If you can read this, this channel works."], "info")
