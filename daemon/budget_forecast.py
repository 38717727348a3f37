"""Does the X posting budget cover the posts still to come before it resets?

Reads the 24-hour posting windows X last reported (`x-user-limit-24hour-*`, `x-app-limit-24hour-*`,
stored under `x_api:post` by `autonomiq_ledger.posting`), falls back to the tier's published
allowance counted against the ledger when no header was seen, and sets against it the posts due
before the reset: pending retries, overdue rows and the coming posting slots. Plain functions over
stored data and a `now`; nothing here calls X.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select

from autonomiq_ledger.posting import BUDGET_STATE_KEY
from recovery.post_budget import _DAY_WINDOWS, _window, allowance
from utils.db import posts
from utils.state import get_state
from utils.timestamps import instant

if TYPE_CHECKING:
    from utils.context import MonitorContext

logger = logging.getLogger(__name__)

POST_STATE_KEY = BUDGET_STATE_KEY  # written by autonomiq_ledger.posting._remember_budget
WINDOW = timedelta(hours=24)
# POST /2/tweets per 24 h before any header was seen (shared/X_API_NOTES.md §1a). Pro counts in
# 15-minute windows and pay-per-use in credits: no 24-hour number to forecast with.
TIER_POSTS_24H: dict[str, int | None] = {"free": 17, "basic": 100, "pro": None, "pay_per_use": None}
PENDING = ("failed", "retry_scheduled")


@dataclass(frozen=True)
class Window:
    """The binding 24-hour posting window: calls left, the allowance, when it resets."""

    remaining: int | None
    limit: int | None
    resets_at: datetime | None
    source: str  # "x-user-limit-24hour", "tier free (no header seen yet)", "unknown" …


@dataclass(frozen=True)
class Forecast:
    """The budget against the posts still due in its window."""

    window: Window
    posts_needed: int
    retries: int

    @property
    def enough(self) -> bool | None:
        """True when the budget covers every post due before the reset; None when unknown."""
        if self.window.remaining is None:
            return None
        return self.window.remaining >= self.posts_needed

    def to_json(self) -> dict[str, Any]:
        """The `status --json` `budget` contract."""
        resets = self.window.resets_at
        return {"posts_remaining": self.window.remaining,
                "resets_at": resets.isoformat() if resets else None,
                "posts_needed": self.posts_needed, "enough": self.enough}


def seen_window(saved: Any, now: datetime, posted_since: Callable[[datetime], int]) -> Window | None:
    """The tightest 24-hour window X reported, or None if none was seen; a window whose reset has
    passed counts as refilled, less the posts made since. Each window is read by
    `recovery.post_budget` (the sweep's posting hold), so both agree on what X said."""
    found: list[Window] = []
    for name in _DAY_WINDOWS:
        data = saved.get(name) if isinstance(saved, dict) else None
        limit = _limit(data)
        current = _window(data, now)
        if current is not None:
            found.append(Window(current[0], limit, current[1], name))
        elif limit is not None and _reset(data) is not None:  # reset since: a fresh window
            found.append(Window(max(0, limit - posted_since(_reset(data))), limit, None, name))
    return min(found, key=lambda window: window.remaining or 0, default=None)


def _limit(data: Any) -> int | None:
    try:
        return int(data["limit"]) if isinstance(data, dict) and data.get("limit") is not None else None
    except (TypeError, ValueError):
        return None


def _reset(data: Any) -> datetime:
    return datetime.fromisoformat(data["reset_at"])


def tier_window(tier: str, posted: Sequence[datetime], now: datetime) -> Window:
    """The tier's allowance less the posts the ledger shows in the last 24 h."""
    limit = TIER_POSTS_24H.get(tier)
    if limit is None:
        return Window(None, None, None, f"tier {tier} (no 24-hour allowance to count)")
    recent = sorted(moment for moment in posted if moment > now - WINDOW)
    return Window(max(0, limit - len(recent)), limit, recent[0] + WINDOW if recent else None,
                  f"tier {tier} (no header seen yet)")


def posted_times(engine: Engine, since: datetime) -> list[datetime]:
    """When each post of the ledger went out since `since`."""
    query = select(posts.c.posted_at).where(posts.c.status == "posted",
                                            instant(posts.c.posted_at) > instant(since))
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(query)]


@dataclass(frozen=True)
class Pending:
    """Posts that will be sent before any new slot (retries and overdue rows): how many in all,
    and how many are due by the end of the budget window."""

    total: int
    due: int


def window_end(window: Window, now: datetime) -> datetime:
    """When the window's posts are counted up to: its reset, else 24 hours from now."""
    return window.resets_at or now + WINDOW


def pending_posts(engine: Engine, now: datetime, until: datetime) -> Pending:
    """Count the retries and overdue rows, and those of them due by `until` (counted by the
    database: a bad day's backlog is 100,000 rows)."""
    overdue = (posts.c.status == "scheduled") & (instant(posts.c.scheduled_at) <= instant(now))
    waiting = posts.c.status.in_(PENDING) | overdue
    due = posts.c.next_attempt_at.is_(None) | (instant(posts.c.next_attempt_at) <= instant(until))
    count = select(func.count()).select_from(posts)
    with engine.connect() as conn:
        return Pending(conn.execute(count.where(waiting)).scalar_one(),
                       conn.execute(count.where(waiting & due)).scalar_one())


def budget_window(ctx: MonitorContext, now: datetime) -> Window:
    """A posting hold (429, usage cap) first, then X's last word while it holds, else the tier's
    allowance counted against the ledger."""
    allowed = allowance(ctx)
    if allowed.posts == 0 and allowed.held_until is not None:
        return Window(0, None, allowed.held_until, f"posting held: {allowed.reason}")
    engine, saved = ctx.engine, get_state(ctx.engine, POST_STATE_KEY)
    posted = posted_times(engine, now - WINDOW)

    def posted_since(moment: datetime) -> int:
        return sum(1 for at in posted if at > moment)

    return seen_window(saved, now, posted_since) or tier_window(ctx.settings.twitter_api_tier,
                                                                 posted, now)


def forecast(window: Window, pending: Pending, slots: Iterable[tuple[datetime, int]],
             now: datetime) -> Forecast:
    """Posts due before the reset (or in the next 24 h) against what the window has left;
    `pending` counted up to `window_end`."""
    end = window_end(window, now)
    scheduled = sum(count for at, count in slots if now < at <= end)
    return Forecast(window, pending.due + scheduled, pending.due)


def fits(window: Window, pending: int, slots: Sequence[tuple[datetime, int]]) -> list[bool]:
    """For each slot (in time order), whether its posts still fit, the pending ones going first;
    a slot after the reset draws on a fresh window."""
    if window.remaining is None:
        return [True] * len(slots)
    used, fresh, answers = pending, 0, []
    for at, count in slots:
        if window.resets_at is not None and at > window.resets_at:
            fresh += count
            answers.append(window.limit is None or fresh <= window.limit)
        else:
            used += count
            answers.append(used <= window.remaining)
    return answers

