"""Messages about posting slots: the verdict before a slot, a change of verdict, what happened
after it, the budget warning and the daily digest. Plain values in, a phone-sized `Message` out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, tzinfo

from notify.messages import Message, clock, duration, make

_TYPES = {"GO": "success", "DEGRADED": "warning", "NO-GO": "failure"}
_LEVELS = {"GO": "INFO", "DEGRADED": "WARNING", "NO-GO": "CRITICAL"}


@dataclass(frozen=True)
class SlotFacts:
    """What a verdict message says: the slot, its verdict label and each reason."""

    at: datetime
    label: str                                   # GO, DEGRADED, NO-GO
    reasons: Sequence[tuple[str, str, str]]      # (short text, evidence, what the monitor does)
    posts: Sequence[int] = ()


def reason_text(text: str, detail: str) -> str:
    """`text: detail`, without the words the detail repeats (`X API credentials rejected: 401 …`,
    not `…: credentials rejected: 401 …`; `post 1 failing`, not `post 1 failing: post 1`)."""
    if not detail or detail.lower() in text.lower():
        return text
    lead, colon, rest = detail.partition(":")
    if colon and rest.strip() and lead.strip().lower() in text.lower():
        detail = rest.strip()
    return f"{text}: {detail}"


def _reason_lines(facts: SlotFacts) -> list[str]:
    lines = []
    for text, detail, doing in facts.reasons[:4]:
        lines.append(f"- {reason_text(text, detail)}")
        if doing:
            lines.append(f"  Monitor: {doing}")
    return lines


def _when(facts: SlotFacts, now: datetime, tz: tzinfo) -> str:
    posts = f"; post(s) {', '.join(f'#{p}' for p in facts.posts)}" if facts.posts else ""
    left = timedelta(minutes=round((facts.at - now).total_seconds() / 60))  # a job starts late by ms
    return f"Slot {clock(facts.at, tz)}, in {duration(left)}{posts}."


def verdict(facts: SlotFacts, now: datetime, tz: tzinfo,
            silenced: Mapping[str, datetime] | None = None) -> Message:
    """`NO-GO for the 09:00 CET post: X API credentials rejected` and why, what is being done;
    what is silenced is named (its alerts are held back, the verdict still counts it)."""
    first = facts.reasons[0][0] if facts.reasons else "all checks pass"
    title = f"{facts.label} for the {clock(facts.at, tz)} post: {first}"
    quiet = [f"Silenced (alerts held back, still checked): {name.removeprefix('check:')} until "
             f"{clock(until, tz, now)}" for name, until in sorted((silenced or {}).items())]
    return make(title, [_when(facts, now, tz), *_reason_lines(facts), *quiet], _TYPES[facts.label],
                _LEVELS[facts.label])


def change(facts: SlotFacts, was: str, now: datetime, tz: tzinfo) -> Message:
    """A re-check changed the verdict: `GO for the 09:00 CET post (was NO-GO)`."""
    title = f"{facts.label} for the {clock(facts.at, tz)} post (was {was})"
    body = _reason_lines(facts) or ["Every check passes now."]
    return make(title, [_when(facts, now, tz), *body], _TYPES[facts.label], _LEVELS[facts.label])


def outcome(at: datetime, summary: str, lines: Sequence[str], good: bool, tz: tzinfo) -> Message:
    """After the slot: `09:00 CET post: posted on time` / `… 12m late` / `… not posted`."""
    return make(f"{clock(at, tz)} post: {summary}", lines, "success" if good else "warning",
                "INFO" if good else "WARNING")


def budget_warning(remaining: int, needed: int, resets_at: datetime | None, source: str,
                   tz: tzinfo) -> Message:
    """The once-per-window warning that the X posting budget will not cover the posts due."""
    when = clock(resets_at, tz) if resets_at else "its reset"
    return make(f"X API budget short: {remaining} post(s) left, {needed} due before {when}",
                [f"Budget: {source}.",
                 "Monitor: the posts that do not fit wait for the reset; slots they fall in are "
                 "marked degraded.",
                 "You: space the posts out, or raise the plan (TWITTER_API_TIER)."], "warning", "WARNING")


def digest(lines: Sequence[str], now: datetime, tz: tzinfo) -> Message:
    """The daily digest."""
    return make(f"Daily digest {now.astimezone(tz):%a %d %b}, {clock(now, tz)}", lines, "info")
