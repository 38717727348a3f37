"""`permission`, `invalid_request`, `not_found`: retrying cannot help; give up at once and say
what to change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autonomiq_ledger import PostStatus, transition
from recovery.base import FixOutcome, PostTarget, Routine, Target, changed_meanwhile, on_posts
from utils.redact import one_line

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "give_up"


def what_to_change(target: Target) -> str:
    """The playbook's remedy for this class and error (its record for the class, or a concrete
    one such as the fix for code 453)."""
    # Imported here: the playbook imports this routine to list it.
    from recovery.playbook import what_to_change as remedy

    return remedy(target.failure_class, target.reason)


def plan(ctx: MonitorContext, target: Target) -> str:
    """What fix() would do."""
    return f"give up {target.name} ({target.failure_class}): {what_to_change(target)}"


def fix(ctx: MonitorContext, target: PostTarget) -> FixOutcome:
    """Move the row to gave_up with the reason and the remedy."""
    if not transition(ctx.engine, target.post_id, PostStatus.FAILED, PostStatus.GAVE_UP, ctx.now(),
                      expect=target.row, next_attempt_at=None):
        return FixOutcome("skipped", changed_meanwhile(target))
    why = one_line(target.reason, 200)
    return FixOutcome("gave_up", f"{target.failure_class}: {why}. {what_to_change(target)}",
                      needs_human=True)


ROUTINE = Routine(NAME, on_posts(fix), plan)
