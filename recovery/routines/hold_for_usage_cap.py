"""`usage_cap`: stop retrying until the monthly cap resets or credits are added; tell a human once."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from autonomiq_ledger import PostStatus, transition
from recovery.base import FixOutcome, PostTarget, Routine, Target, changed_meanwhile, local_time, on_posts
from utils.state import get_state, put_state

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "hold_for_usage_cap"
STATE_KEY = "recovery:usage_cap_hold"
# How often one held post probes X (a blocked request is not charged): credits can be added at
# any time; a monthly cap resets with the billing cycle, which X does not tell us.
PROBE = {"credits": timedelta(hours=1), "monthly_cap": timedelta(hours=24)}
ADVICE = {
    "credits": "the pay-per-use account is out of credits (402 CreditsDepleted): add credits in the "
               "X developer portal (Billing); posts resume by themselves within an hour",
    "monthly_cap": "the monthly usage cap of the X API plan is reached (UsageCapExceeded): wait for "
                   "the billing cycle to reset or upgrade the plan in the X developer portal; posts "
                   "resume by themselves (probed once a day)",
}


def cap_kind(target: Target) -> str:
    """`credits` (402, pay-per-use) or `monthly_cap`, from the error X sent."""
    text = target.reason.lower()
    return "credits" if "credit" in text or text.startswith("402") else "monthly_cap"


def active_hold(ctx: MonitorContext) -> dict[str, Any] | None:
    """The current hold (`kind`, `until`) while it lasts, else None."""
    saved = get_state(ctx.engine, STATE_KEY)
    if not isinstance(saved, dict) or not saved.get("until"):
        return None
    return saved if datetime.fromisoformat(saved["until"]) > ctx.now() else None


def clear_hold(ctx: MonitorContext) -> None:
    """Forget the hold (a post went through)."""
    if get_state(ctx.engine, STATE_KEY):
        put_state(ctx.engine, STATE_KEY, {}, ctx.now())


def plan(ctx: MonitorContext, target: Target) -> str:
    """What fix() would do."""
    kind = cap_kind(target)
    until = ctx.now() + PROBE[kind]
    return f"hold {target.name} until {local_time(ctx, until)} and alert once: {ADVICE[kind]}"


def fix(ctx: MonitorContext, target: PostTarget) -> FixOutcome:
    """Hold the row until the next probe; the first hold of a kind asks a human."""
    kind = cap_kind(target)
    now = ctx.now()
    until = now + PROBE[kind]
    previous = get_state(ctx.engine, STATE_KEY) or {}
    alert = previous.get("kind") != kind
    if not transition(ctx.engine, target.post_id, PostStatus.FAILED, PostStatus.RETRY_SCHEDULED, now,
                      expect=target.row, next_attempt_at=until):
        return FixOutcome("skipped", changed_meanwhile(target))
    put_state(ctx.engine, STATE_KEY, {"kind": kind, "until": until.isoformat(),
                                      "since": previous.get("since") or now.isoformat()}, now)
    detail = f"no retries until {local_time(ctx, until)}: {ADVICE[kind]}"
    return FixOutcome("held", detail, needs_human=alert)


ROUTINE = Routine(NAME, on_posts(fix), plan)
