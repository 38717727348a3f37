"""`rate_limit`: retry the post when X's window resets (persisted, never slept on)."""

from __future__ import annotations

import json
import random
import re
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from autonomiq_ledger import PostStatus, transition
from recovery.base import FixOutcome, PostTarget, Routine, Target, changed_meanwhile, local_time, on_posts

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "retry_after_rate_limit"
# The 24-hour posting budgets first: when one is spent, its reset is the one that matters.
_WINDOWS = ("x-user-limit-24hour", "x-app-limit-24hour")
WINDOW = timedelta(minutes=15)
_RESET_IN_TEXT = re.compile(r"reset\w*(?:[ _-](?:at|time|on))?[\"'\s:=]+"
                            r"(\d{10}|\d{4}-\d\d-\d\d[T ]\d\d:\d\d(?::\d\d(?:\.\d+)?)?(?:Z|[+-]\d\d:?\d\d)?)",
                            re.IGNORECASE)
_RETRY_AFTER = re.compile(r"retry[ _-]after[\"'\s:=]+(\d{1,7})\b", re.IGNORECASE)


def _stored_headers(target: Target) -> dict[str, int]:
    """last_error_headers (JSON object, header → number; names any case, numbers or digit strings)."""
    try:
        headers = json.loads((target.row or {}).get("last_error_headers") or "{}")
    except (TypeError, ValueError):
        return {}
    if not isinstance(headers, dict):
        return {}
    found: dict[str, int] = {}
    for name, value in headers.items():
        try:
            found[str(name).lower()] = int(str(value).strip())
        except ValueError:
            continue
    return found


def _header_resets(headers: dict[str, int], now: datetime) -> list[tuple[datetime, str]]:
    """A spent 24-hour window's reset, else x-rate-limit-reset (one already past: now)."""
    spent = [prefix for prefix in _WINDOWS if headers.get(f"{prefix}-remaining") == 0
             and headers.get(f"{prefix}-reset")]
    candidates = [(prefix, headers[f"{prefix}-reset"]) for prefix in spent]
    if not candidates and headers.get("x-rate-limit-reset"):
        candidates = [("x-rate-limit", headers["x-rate-limit-reset"])]
    resets = [(_epoch(value), f"{prefix}-reset") for prefix, value in candidates]
    return [(max(moment, now), why) for moment, why in resets if moment is not None]


def _text_resets(error: str, now: datetime) -> list[tuple[datetime, str]]:
    """Resets a pipeline wrote into its error text: `x-…-reset: <epoch>`, `reset at <epoch or
    ISO time>`, `retry-after: <seconds>`; only those still ahead."""
    text = error[:8192] + "\n" + error[-8192:]
    found = [(_epoch(match.group(1)) or _iso(match.group(1)), "reset in the error text")
             for match in _RESET_IN_TEXT.finditer(text)]
    found += [(now + timedelta(seconds=int(match.group(1))), "retry-after in the error text")
              for match in _RETRY_AFTER.finditer(text) if int(match.group(1)) < 86400 * 8]
    return [(moment, why) for moment, why in found if moment is not None and moment > now]


def _epoch(value: object) -> datetime | None:
    try:
        seconds = int(str(value))
    except ValueError:
        return None
    return datetime.fromtimestamp(seconds, UTC) if 10**9 <= seconds < 10**10 else None


def _iso(value: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(value.replace(" ", "T"))
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def next_attempt(ctx: MonitorContext, target: Target) -> tuple[datetime, str]:
    """When to retry and why, never before the reset: the stored headers' reset, else one in the
    error text, else the end of the 15-minute window the failure happened in."""
    now = ctx.now()
    row = target.row or {}
    resets = (_header_resets(_stored_headers(target), now)
              or _text_resets(str(row.get("last_error") or ""), now))
    if resets:
        moment, why = max(resets)
        return moment + timedelta(seconds=random.uniform(1, 15)), why
    # No reset known: X's windows last 15 minutes and this one began at the latest at the failure.
    failed_at = row.get("updated_at") or now
    moment = max(now, min(failed_at, now) + WINDOW)
    return moment + timedelta(seconds=random.uniform(1, 15)), "end of the 15-minute window, no reset known"


def plan(ctx: MonitorContext, target: Target) -> str:
    """What fix() would do."""
    moment, why = next_attempt(ctx, target)
    return f"schedule {target.name} for {local_time(ctx, moment)} ({why})"


def fix(ctx: MonitorContext, target: PostTarget) -> FixOutcome:
    """Move the row to retry_scheduled at the reset time (plus jitter)."""
    moment, why = next_attempt(ctx, target)
    if not transition(ctx.engine, target.post_id, PostStatus.FAILED, PostStatus.RETRY_SCHEDULED,
                      ctx.now(), expect=target.row, next_attempt_at=moment):
        return FixOutcome("skipped", changed_meanwhile(target))
    return FixOutcome("retry_scheduled", f"rate limited; retry at {local_time(ctx, moment)} ({why})")


ROUTINE = Routine(NAME, on_posts(fix), plan, per_post_attempt=True)
