"""`server_error`, `network`, `timeout`: wait while the box is offline, else back off and retry,
at most MAX_POST_ATTEMPTS attempts, then give up."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from autonomiq_ledger import PostStatus, transition
from recovery.base import (
    FixOutcome,
    PostTarget,
    Routine,
    Target,
    backoff_delay,
    changed_meanwhile,
    local_time,
    on_posts,
    sweep_check,
)

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "retry_transient"


def _attempts(target: Target) -> int:
    return int((target.row or {}).get("attempts") or 0)


def plan(ctx: MonitorContext, target: Target) -> str:
    """What fix() would do."""
    if _attempts(target) >= ctx.settings.max_post_attempts:
        return f"give up {target.name} after {_attempts(target)} attempts"
    return (f"check the internet, then schedule {target.name} for a retry in about "
            f"{backoff_delay(ctx, _attempts(target)).total_seconds():.0f}s")


def fix(ctx: MonitorContext, target: PostTarget) -> FixOutcome:
    """Offline → re-check soon without spending an attempt; else retry later or give up."""
    now = ctx.now()
    move = functools.partial(transition, ctx.engine, target.post_id, PostStatus.FAILED, now=now,
                             expect=target.row)
    internet = sweep_check(ctx, "internet")
    if internet.status.value == "critical":
        recheck = now + backoff_delay(ctx, 1)
        # Stays `failed` so no attempt is spent; the sweep looks again after `recheck`.
        if move(PostStatus.FAILED, next_attempt_at=recheck):
            return FixOutcome("waiting", f"offline ({internet.detail}); re-check at "
                                         f"{local_time(ctx, recheck)} before retrying")
    elif _attempts(target) >= ctx.settings.max_post_attempts:
        if move(PostStatus.GAVE_UP, next_attempt_at=None):
            return FixOutcome("gave_up", f"{target.failure_class} on all {_attempts(target)} attempts "
                                         f"(MAX_POST_ATTEMPTS); last error: {target.reason}. Check X's "
                                         "status and the pipeline's network, then schedule it again",
                              needs_human=True)
    else:
        moment = now + backoff_delay(ctx, _attempts(target))
        if move(PostStatus.RETRY_SCHEDULED, next_attempt_at=moment):
            return FixOutcome("retry_scheduled", f"{target.failure_class}; attempt "
                              f"{_attempts(target) + 1} of {ctx.settings.max_post_attempts} at "
                              f"{local_time(ctx, moment)}")
    return FixOutcome("skipped", changed_meanwhile(target))


ROUTINE = Routine(NAME, on_posts(fix), plan, per_post_attempt=True)
