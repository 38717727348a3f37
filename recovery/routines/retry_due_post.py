"""Due `retry_scheduled` rows: post them again through the ledger (exactly-once claim)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autonomiq_ledger import post
from recovery.base import FixOutcome, PostTarget, Routine, Target, on_posts
from recovery.routines.hold_for_usage_cap import clear_hold
from utils.redact import one_line

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "retry_due_post"


def plan(ctx: MonitorContext, target: Target) -> str:
    """What fix() would do."""
    attempts = int((target.row or {}).get("attempts") or 0)
    return f"post {target.name} again (attempt {attempts + 1})"


def fix(ctx: MonitorContext, target: PostTarget) -> FixOutcome:
    """Claim and post the row; a failure is left `failed` for the sweep to classify."""
    result = post(ctx, target.post_id, expect=target.row)
    if result.status == "posted":
        clear_hold(ctx)
        return FixOutcome("posted", f"posted as tweet {result.tweet_id}")
    if result.status == "not_claimed":
        return FixOutcome("skipped", f"{target.name} was taken meanwhile: {result.error}")
    return FixOutcome("retried", f"the retry failed: {one_line(result.error or '', 200)}")


ROUTINE = Routine(NAME, on_posts(fix), plan, per_post_attempt=True)
