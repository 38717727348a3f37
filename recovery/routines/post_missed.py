"""Missed posts (`scheduled`, past scheduled_at + MISSED_POST_GRACE_MINUTES, never attempted):
a scheduler failure first — look at the scheduler — then post them if still unposted."""

from __future__ import annotations

from typing import TYPE_CHECKING

from autonomiq_ledger import post
from recovery.base import FixOutcome, PostTarget, Routine, Target, on_posts, sweep_check
from utils.redact import one_line

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "post_missed"


def scheduler_note(ctx: MonitorContext) -> str:
    """What the scheduler check says now (the sweep restarts it earlier when it is down)."""
    if not (ctx.settings.scheduler_service or ctx.settings.scheduler_heartbeat_file):
        return "scheduler not monitored (set SCHEDULER_SERVICE or SCHEDULER_HEARTBEAT_FILE)"
    result = sweep_check(ctx, "scheduler")
    return f"scheduler {result.status.value}: {result.detail}"


def plan(ctx: MonitorContext, target: Target) -> str:
    """What fix() would do."""
    return f"post {target.name}, missed since {(target.row or {}).get('scheduled_at')}"


def fix(ctx: MonitorContext, target: PostTarget) -> FixOutcome:
    """Post the row now (the claim fails harmlessly if the pipeline got to it first)."""
    note = scheduler_note(ctx)
    result = post(ctx, target.post_id, expect=target.row)
    if result.status == "posted":
        return FixOutcome("posted", f"missed post sent as tweet {result.tweet_id} ({note})")
    if result.status == "not_claimed":
        return FixOutcome("skipped", f"{target.name} was taken meanwhile: {result.error} ({note})")
    return FixOutcome("retried", f"missed post failed: {one_line(result.error or '', 200)} ({note})")


ROUTINE = Routine(NAME, on_posts(fix), plan)
