"""The playbook: failure class → the routines that handle it, and every routine by name."""

from __future__ import annotations

from recovery.base import Routine
from recovery.routines import (
    cleanup_disk,
    give_up,
    hold_for_usage_cap,
    post_missed,
    reconnect_database,
    refresh_credentials,
    release_stuck_post,
    resolve_duplicate,
    restart_scheduler,
    retry_after_rate_limit,
    retry_due_post,
    retry_transient,
)
from utils.failure_classes import FailureClass

# Failure class → the routines that handle it, in order. `unknown` has none on purpose: an
# honest "don't know" is reported, never retried blindly.
PLAYBOOK: dict[str, tuple[Routine, ...]] = {
    FailureClass.RATE_LIMIT: (retry_after_rate_limit.ROUTINE,),
    FailureClass.USAGE_CAP: (hold_for_usage_cap.ROUTINE,),
    FailureClass.AUTH: (refresh_credentials.ROUTINE,),
    FailureClass.DUPLICATE: (resolve_duplicate.ROUTINE,),
    FailureClass.SERVER_ERROR: (retry_transient.ROUTINE,),
    FailureClass.NETWORK: (retry_transient.ROUTINE,),
    FailureClass.TIMEOUT: (retry_transient.ROUTINE,),
    FailureClass.PERMISSION: (give_up.ROUTINE,),
    FailureClass.INVALID_REQUEST: (give_up.ROUTINE,),
    FailureClass.NOT_FOUND: (give_up.ROUTINE,),
    FailureClass.DATABASE: (reconnect_database.ROUTINE,),
    FailureClass.DISK: (cleanup_disk.ROUTINE,),
    FailureClass.SCHEDULER: (restart_scheduler.ROUTINE,),
    FailureClass.UNKNOWN: (),
}
# Ledger states that are not failures but still need a routine.
MISSED_POST = post_missed.ROUTINE
DUE_RETRY = retry_due_post.ROUTINE
STUCK_POST = release_stuck_post.ROUTINE

# Every routine by name (registered as the monitor's fixers).
ROUTINES: dict[str, Routine] = {
    routine.name: routine
    for routine in (*(r for routines in PLAYBOOK.values() for r in routines), MISSED_POST, DUE_RETRY,
                    STUCK_POST)
}
