"""A row stuck in `posting` (the poster crashed or hung mid-call): release it as an ambiguous
failure, so the retry stays exactly-once (a duplicate answer then means it went out)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autonomiq_ledger import PostStatus, transition
from recovery.base import FixOutcome, PostTarget, Routine, Target, changed_meanwhile, on_posts

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "release_stuck_post"


def plan(ctx: MonitorContext, target: Target) -> str:
    """What fix() would do."""
    return f"mark {target.name} failed (ambiguous: it may have reached X) so it is retried safely"


def fix(ctx: MonitorContext, target: PostTarget) -> FixOutcome:
    """posting → failed with ambiguous_attempt, class timeout."""
    if not transition(ctx.engine, target.post_id, PostStatus.POSTING, PostStatus.FAILED, ctx.now(),
                      expect=target.row, ambiguous_attempt=True, failure_class="timeout",
                      last_error=target.reason):
        return FixOutcome("skipped", changed_meanwhile(target))
    return FixOutcome("released", f"{target.reason}; released for a safe retry")


ROUTINE = Routine(NAME, on_posts(fix), plan)
