"""The account-wide posting budget: how many posts may go now, and until when posting is held.

X counts `POST /2/tweets` per account, not per row: after a 429, a spent 24-hour window
(`x-user-limit-24hour-remaining: 0`) or a usage cap every further post fails the same way until
the reset. The sweep asks `allowance()` before it posts and calls `note_failure()` after a post
failed; both read and write `monitor_state`, so a hold survives restarts. The budget X reported
with the last answer is the one `autonomiq_ledger.posting` stores under `x_api:post`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from autonomiq_ledger.posting import BUDGET_STATE_KEY
from recovery.base import Target
from recovery.classify import classify
from recovery.routines.hold_for_usage_cap import PROBE, active_hold
from recovery.routines.retry_after_rate_limit import next_attempt
from utils.failure_classes import FailureClass
from utils.state import get_state, put_state

if TYPE_CHECKING:
    from utils.context import MonitorContext

logger = logging.getLogger(__name__)

STATE_KEY = "recovery:post_hold"
# Routines that send `POST /2/tweets`: they run only while the budget allows.
POSTING_ROUTINES = frozenset({"retry_due_post", "post_missed", "refresh_credentials"})
# A 429 that names no reset: X's rate windows are 15 minutes long.
DEFAULT_HOLD = timedelta(minutes=15)
_DAY_WINDOWS = ("user_24h", "app_24h")  # as posting._remember_budget stores them
_HOLDING = {FailureClass.RATE_LIMIT.value, FailureClass.USAGE_CAP.value}


@dataclass(frozen=True)
class Allowance:
    """How many posts may go now (`posts`; None: X has told no limit) and, when none may, until
    when (`held_until`) and why."""

    posts: int | None
    held_until: datetime | None = None
    reason: str = ""

    @property
    def open(self) -> bool:
        """True while at least one post may go."""
        return self.posts is None or self.posts > 0

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict for `status` and `/metrics`."""
        return {"posts": self.posts, "reason": self.reason,
                "held_until": self.held_until.isoformat() if self.held_until else None}


def allowance(ctx: MonitorContext) -> Allowance:
    """The posts that may go now: none during a hold (429, usage cap) or with a spent window,
    else the smallest remaining 24-hour budget X reported (None when it reported none)."""
    now = ctx.now()
    holds = [(until, reason) for until, reason in (_usage_cap_hold(ctx), _own_hold(ctx))
             if until is not None and until > now]
    saved = get_state(ctx.engine, BUDGET_STATE_KEY)
    saved = saved if isinstance(saved, dict) else {}
    rate = _window(saved.get("rate"), now)
    if rate is not None and rate[0] == 0:
        holds.append((rate[1], "x-rate-limit window spent"))
    remaining: int | None = None
    for name in _DAY_WINDOWS:
        window = _window(saved.get(name), now)
        if window is None:
            continue
        if window[0] == 0:
            holds.append((window[1], f"24-hour posting budget spent ({name})"))
        remaining = window[0] if remaining is None else min(remaining, window[0])
    if holds:
        until, reason = max(holds, key=lambda hold: hold[0])
        return Allowance(0, until, reason)
    return Allowance(remaining, None, "" if remaining is None else "24-hour posting budget")


def note_failure(ctx: MonitorContext, row: dict[str, Any]) -> Allowance | None:
    """After a post of `row` failed: a rate limit or usage cap holds every post until the reset
    X gave (else DEFAULT_HOLD / the usage-cap probe interval); returns the hold, or None."""
    failure_class = classify(row.get("last_error")).failure_class.value
    if failure_class not in _HOLDING:
        return None
    now = ctx.now()
    if failure_class == FailureClass.USAGE_CAP.value:
        until = now + min(PROBE.values())
    else:
        until = _rate_limit_reset(ctx, Target.for_row(row, failure_class))
    reason = f"{failure_class} on post {row['id']}"
    put_state(ctx.engine, STATE_KEY, {"until": until.isoformat(), "reason": reason}, now)
    logger.warning("posting held until %s: %s", until.isoformat(), reason)
    return Allowance(0, until, reason)


def _rate_limit_reset(ctx: MonitorContext, target: Target) -> datetime:
    """The reset X named for a spent window (24-hour first), else DEFAULT_HOLD from now."""
    moment, why = next_attempt(ctx, target)
    return moment if why.endswith("-reset") else ctx.now() + DEFAULT_HOLD


def _usage_cap_hold(ctx: MonitorContext) -> tuple[datetime | None, str]:
    hold = active_hold(ctx)
    if hold is None:
        return None, ""
    return datetime.fromisoformat(hold["until"]), f"usage cap ({hold.get('kind', '?')})"


def _own_hold(ctx: MonitorContext) -> tuple[datetime | None, str]:
    saved = get_state(ctx.engine, STATE_KEY)
    if not isinstance(saved, dict) or not saved.get("until"):
        return None, ""
    try:
        return datetime.fromisoformat(saved["until"]), str(saved.get("reason") or "rate limited")
    except (TypeError, ValueError):
        return None, ""


def _window(data: Any, now: datetime) -> tuple[int, datetime] | None:
    """(remaining, reset) of one stored window while it lasts; None once reset or unreadable."""
    if not isinstance(data, dict) or data.get("remaining") is None:
        return None
    try:
        reset = datetime.fromisoformat(data["reset_at"]) if data.get("reset_at") else None
        remaining = int(data["remaining"])
    except (TypeError, ValueError):
        return None
    if reset is None or reset <= now:  # a window without a known reset is not trusted
        return None
    return max(0, remaining), reset
