"""`duplicate`: never retried — unless an earlier attempt of this row was ambiguous, in which
case X's duplicate answer proves that attempt went through, so the row is `posted`."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from autonomiq_ledger import PostStatus, transition
from recovery.base import FixOutcome, PostTarget, Routine, Target, changed_meanwhile, on_posts
from utils.redact import one_line

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "resolve_duplicate"
# Written into the row's last_error: the tweet id is unknown, X's duplicate answer is the proof.
CONFIRMED = "posted: confirmed by X's duplicate answer to a retry (tweet id unknown)"


def _went_through(target: Target) -> bool:
    return bool((target.row or {}).get("ambiguous_attempt"))


def plan(ctx: MonitorContext, target: Target) -> str:
    """What fix() would do."""
    if _went_through(target):
        return f"mark {target.name} posted (an earlier ambiguous attempt went through)"
    return f"mark {target.name} skipped (X already has this text; never retried)"


def fix(ctx: MonitorContext, target: PostTarget) -> FixOutcome:
    """`posted` after an ambiguous attempt (the row says X's duplicate answer confirmed it),
    else `skipped`."""
    now = ctx.now()
    move = functools.partial(transition, ctx.engine, target.post_id, PostStatus.FAILED, now=now,
                             expect=target.row)
    if _went_through(target):
        if move(PostStatus.POSTED, posted_at=now, next_attempt_at=None,
                last_error=f"{CONFIRMED}; X answered: {one_line(target.reason, 300)}"):
            return FixOutcome("posted", f"{CONFIRMED}: the earlier attempt that timed out, lost its "
                                        "connection or got a 5xx did post it; nothing posted twice")
    elif move(PostStatus.SKIPPED, next_attempt_at=None):
        return FixOutcome("skipped", "X already has a post with this exact text (403 duplicate "
                                     "content) and no attempt of this row may have reached X; not "
                                     "retried. Change the text to post it again")
    return FixOutcome("skipped", changed_meanwhile(target))


ROUTINE = Routine(NAME, on_posts(fix), plan)
