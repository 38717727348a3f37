"""`duplicate`: never retried — unless an earlier attempt of this row was ambiguous, in which
case X's duplicate answer proves that attempt went through, so the row is `posted`."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autonomiq_ledger.posting import transition
from recovery.base import FixOutcome, Routine, Target

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "resolve_duplicate"


def _went_through(target: Target) -> bool:
    return bool((target.row or {}).get("ambiguous_attempt"))


def plan(ctx: MonitorContext, target: Target) -> str:
    """What fix() would do."""
    if _went_through(target):
        return f"mark {target.name} posted (an earlier ambiguous attempt went through)"
    return f"mark {target.name} skipped (X already has this text; never retried)"


def fix(ctx: MonitorContext, target: Target) -> FixOutcome:
    """`posted` after an ambiguous attempt, else `skipped`."""
    status = (target.row or {}).get("status", "failed")
    now = ctx.now()
    if _went_through(target):
        if transition(ctx.engine, target.post_id, status, "posted", now, posted_at=now):
            return FixOutcome("posted", "X rejected the retry as a duplicate, so the earlier attempt "
                                        "that timed out or lost its connection did post it (tweet id "
                                        "unknown); marked posted, nothing posted twice")
    elif transition(ctx.engine, target.post_id, status, "skipped", now):
        return FixOutcome("skipped", "X already has a post with this exact text (403 duplicate "
                                     "content); not retried. Change the text to post it again")
    return FixOutcome("skipped", f"{target.name} changed meanwhile (another process has it)")


ROUTINE = Routine(NAME, fix, plan)
