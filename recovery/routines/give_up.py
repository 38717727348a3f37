"""`permission`, `invalid_request`, `not_found`: retrying cannot help; give up at once and say
what to change."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autonomiq_ledger.posting import transition
from recovery.base import FixOutcome, Routine, Target
from utils.redact import one_line

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "give_up"
WHAT_TO_CHANGE = {
    "permission": "X refused to let this account post. In the X developer portal set the app's "
                  "permissions to Read and Write, then regenerate the access token and secret and put "
                  "them in .env; make sure the app is attached to a Project and the account is not "
                  "suspended or locked",
    "invalid_request": "X rejected the post itself (e.g. text too long or malformed): fix the text "
                       "and schedule it again as a new post",
    "not_found": "X answered 404: check TWITTER_API_BASE_URL and any reply/quote target of the post",
}


def plan(ctx: MonitorContext, target: Target) -> str:
    """What fix() would do."""
    return f"give up {target.name} ({target.failure_class}): {WHAT_TO_CHANGE[target.failure_class]}"


def fix(ctx: MonitorContext, target: Target) -> FixOutcome:
    """Move the row to gave_up with the reason and the remedy."""
    status = (target.row or {}).get("status", "failed")
    if not transition(ctx.engine, target.post_id, status, "gave_up", ctx.now(), next_attempt_at=None):
        return FixOutcome("skipped", f"{target.name} changed meanwhile (another process has it)")
    why = one_line(target.reason, 200)
    return FixOutcome("gave_up", f"{target.failure_class}: {why}. {WHAT_TO_CHANGE[target.failure_class]}",
                      needs_human=True)


ROUTINE = Routine(NAME, fix, plan)
