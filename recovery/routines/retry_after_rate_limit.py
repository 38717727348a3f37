"""`rate_limit`: retry the post when X's window resets (persisted, never slept on)."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from autonomiq_ledger.posting import transition
from recovery.base import FixOutcome, Routine, Target, backoff_delay, local_time

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "retry_after_rate_limit"
# The 24-hour posting budgets first: when one is spent, its reset is the one that matters.
_WINDOWS = ("x-user-limit-24hour", "x-app-limit-24hour")


def _stored_headers(target: Target) -> dict[str, int]:
    try:
        headers = json.loads((target.row or {}).get("last_error_headers") or "{}")
    except ValueError:
        return {}
    return headers if isinstance(headers, dict) else {}


def next_attempt(ctx: MonitorContext, target: Target) -> tuple[datetime, str]:
    """When to retry and why: a spent 24-hour window's reset, else x-rate-limit-reset, else backoff."""
    headers = _stored_headers(target)
    now = ctx.now()
    spent = [prefix for prefix in _WINDOWS if headers.get(f"{prefix}-remaining") == 0
             and headers.get(f"{prefix}-reset")]
    candidates = [(prefix, headers[f"{prefix}-reset"]) for prefix in spent]
    if not candidates and headers.get("x-rate-limit-reset"):
        candidates = [("x-rate-limit", headers["x-rate-limit-reset"])]
    resets = [(datetime.fromtimestamp(int(epoch), UTC), prefix) for prefix, epoch in candidates]
    resets = [(moment, prefix) for moment, prefix in resets if moment > now]
    if resets:
        moment, prefix = max(resets)
        return moment + timedelta(seconds=random.uniform(1, 15)), f"{prefix}-reset"
    attempts = int((target.row or {}).get("attempts") or 1)
    return now + backoff_delay(ctx, attempts), f"backoff after {attempts} attempt(s), no reset known"


def plan(ctx: MonitorContext, target: Target) -> str:
    """What fix() would do."""
    moment, why = next_attempt(ctx, target)
    return f"schedule {target.name} for {local_time(ctx, moment)} ({why})"


def fix(ctx: MonitorContext, target: Target) -> FixOutcome:
    """Move the row to retry_scheduled at the reset time (plus jitter)."""
    moment, why = next_attempt(ctx, target)
    status = (target.row or {}).get("status", "failed")
    if not transition(ctx.engine, target.post_id, status, "retry_scheduled", ctx.now(),
                      next_attempt_at=moment):
        return FixOutcome("skipped", f"{target.name} changed meanwhile (another process has it)")
    return FixOutcome("retry_scheduled", f"rate limited; retry at {local_time(ctx, moment)} ({why})")


ROUTINE = Routine(NAME, fix, plan, per_post_attempt=True)
