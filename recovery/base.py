"""The recovery routine contract and the guard every routine runs through.

A routine is a `Routine`: a name, `fix(ctx, target) -> FixOutcome` that repairs, `plan(ctx, target)
-> str` that says (changing nothing) what `fix` would do, and optionally the check that proves the
repair. Routines never call each other's guards; only `run_routine` runs them, and it adds:

- a circuit breaker per routine and target: at most CIRCUIT_BREAKER_MAX_RUNS runs per
  CIRCUIT_BREAKER_WINDOW, counted in the `actions` table (so it survives restarts); when open the
  outcome is `blocked` and a human is asked to look;
- one global action budget (`recovery/action_budget.py`): past ACTION_BUDGET_PER_HOUR actions
  the monitor is in safe mode and the outcome is `safe_mode` (nothing runs, nothing is recorded);
- DRY_RUN: the outcome is `dry_run` and the detail is the plan;
- timing, verification (re-running the check that proves the repair) and recording every action
  to the `actions` table and to `logs/post_failures.log` with the full failure detail.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, select
from sqlalchemy.exc import SQLAlchemyError

from autonomiq_ledger import PostStatus, transition
from autonomiq_ledger.excerpt import excerpt
from checks import CHECKS
from checks.base import Status, run_one
from recovery.action_budget import SAFE_MODE, hold
from recovery.report import ActionRecord
from utils.db import actions
from utils.logging_setup import FAILURE_LOGGER, OutageLog, log_failure
from utils.redact import one_line, redact

if TYPE_CHECKING:
    from checks.base import CheckFn, CheckResult
    from utils.context import MonitorContext

logger = logging.getLogger(__name__)
failure_log = logging.getLogger(FAILURE_LOGGER)
_counting = OutageLog(logger, "counting recent runs for the circuit breaker")
_recording = OutageLog(logger, "recording actions in the database")
# The check results routines looked at in the running sweep (see `sweep_scope`).
_sweep_results: ContextVar[dict[str, CheckResult] | None] = ContextVar("sweep_results", default=None)

# Outcomes that did not act, so they do not count towards the circuit breaker.
NOT_COUNTED = ("blocked", "dry_run", "waiting", "skipped", "not_configured", SAFE_MODE)
# Outcomes that repeat every sweep while they last: recorded (table and log) once per window.
RECORD_ONCE = ("blocked", "not_configured")


@dataclass(frozen=True)
class Target:
    """What a routine works on: a check or the scheduler (`Target`), or a ledger row
    (`PostTarget`, which always has its id and the row as the sweep read it)."""

    name: str                 # "post:12", "check:disk_space" …
    failure_class: str
    reason: str               # the full (redacted) failure detail that led here
    post_id: int | None = None
    row: dict[str, Any] | None = field(default=None, repr=False)

    @classmethod
    def for_row(cls, row: dict[str, Any], failure_class: str, reason: str | None = None) -> PostTarget:
        """The target for one ledger row (its `last_error` as the reason unless one is given)."""
        return PostTarget(f"post:{row['id']}", failure_class,
                          redact(excerpt(row.get("last_error"))) if reason is None else reason,
                          int(row["id"]), row)


@dataclass(frozen=True)
class PostTarget(Target):
    """A ledger row as the sweep read it; routines change it only if it is still so."""

    post_id: int = 0
    row: dict[str, Any] = field(default_factory=dict, repr=False)


@dataclass(frozen=True)
class FixOutcome:
    """What a routine did: `outcome` is a short word (posted, retry_scheduled, gave_up, fixed …)."""

    outcome: str
    detail: str
    needs_human: bool = False


def on_posts(fix: Callable[[MonitorContext, PostTarget], FixOutcome]
             ) -> Callable[[MonitorContext, Target], FixOutcome]:
    """`fix` for ledger rows only: any other target is answered `skipped`, untouched."""
    @functools.wraps(fix)
    def for_posts_only(ctx: MonitorContext, target: Target) -> FixOutcome:
        if not isinstance(target, PostTarget):
            return FixOutcome("skipped", f"{target.name} is not a post: nothing for this routine to do")
        return fix(ctx, target)
    return for_posts_only


@dataclass(frozen=True)
class Routine:
    """One recovery routine; `verify_check` names the check re-run after a `fixed` outcome."""

    name: str
    fix: Callable[[MonitorContext, Target], FixOutcome]
    plan: Callable[[MonitorContext, Target], str]
    verify_check: str | None = None
    settle_s: float = 0.0     # how long the check may take to pass after the fix (a restart)
    # Runs once per failed attempt of one post, which MAX_POST_ATTEMPTS already bounds: the
    # breaker must not stop it before the post's own limit (fast sweeps would hit it first).
    per_post_attempt: bool = False

    def __call__(self, ctx: MonitorContext, target: Target) -> ActionRecord:
        """Run through the guard (so a registered fixer is always guarded)."""
        return run_routine(ctx, self, target)


def run_routine(ctx: MonitorContext, routine: Routine, target: Target,
                checks: Mapping[str, CheckFn] | None = None) -> ActionRecord:
    """Run `routine` on `target` behind the breaker and DRY_RUN, verify with `checks` (the
    built-in ones when None), record; never raises."""
    started_at = ctx.now()
    started = time.perf_counter()
    runs = recent_runs(ctx, routine.name, target.name)
    settings = ctx.settings
    verified = None
    limit = settings.circuit_breaker_max_runs
    if routine.per_post_attempt:
        limit = max(limit, settings.max_post_attempts)
    held = None if settings.dry_run or runs >= limit else hold(ctx, NOT_COUNTED)
    if held is not None:  # not written to `actions`: a held routine did nothing
        return ActionRecord(routine.name, target.name, SAFE_MODE, held.detail, target.failure_class,
                            None, held.entered, 0.0, target.post_id)
    if runs >= limit:
        outcome = FixOutcome("blocked", f"{routine.name} already ran {runs} time(s) on {target.name} "
                             f"in the last {settings.circuit_breaker_window} without fixing it, so it "
                             "is not run again until that window has passed (circuit breaker). Look at "
                             f"the cause: {one_line(target.reason, 200)}", needs_human=True)
    elif settings.dry_run:
        outcome = FixOutcome("dry_run", f"would {_safe_plan(ctx, routine, target)}")
    else:
        outcome = _safe_fix(ctx, routine, target)
        if outcome.outcome == "fixed" and routine.verify_check:
            outcome, verified = _verify(ctx, routine, outcome, checks)
    record = ActionRecord(routine.name, target.name, outcome.outcome, one_line(outcome.detail, 1000),
                          target.failure_class, verified, outcome.needs_human,
                          round((time.perf_counter() - started) * 1000, 1), target.post_id)
    if record.outcome not in RECORD_ONCE or not _recorded_in_window(ctx, record):
        _record(ctx, record, target, started_at)
    return record


def _recorded_in_window(ctx: MonitorContext, record: ActionRecord) -> bool:
    """True when this routine, target and outcome were already recorded in the breaker window."""
    since = ctx.now() - ctx.settings.circuit_breaker_window
    query = (select(func.count()).select_from(actions)
             .where(actions.c.routine == record.routine, actions.c.target == record.target[:255],
                    actions.c.outcome == record.outcome, actions.c.started_at >= since))
    try:
        with ctx.engine.connect() as conn:
            return bool(conn.execute(query).scalar())
    except SQLAlchemyError:  # cannot tell: record it (once too often beats never)
        return False


def recent_runs(ctx: MonitorContext, routine: str, target: str) -> int:
    """How many counted runs of `routine` on `target` the actions table holds in the window."""
    since = ctx.now() - ctx.settings.circuit_breaker_window
    query = (select(func.count()).select_from(actions)
             .where(actions.c.routine == routine, actions.c.target == target,
                    actions.c.started_at >= since, actions.c.dry_run.is_(False),
                    actions.c.outcome.not_in(NOT_COUNTED)))
    try:
        with ctx.engine.connect() as conn:
            return int(conn.execute(query).scalar() or 0)
    except SQLAlchemyError as exc:  # a broken database must not stop reconnect_database from running
        _counting.failed(exc)
        return 0


def _safe_plan(ctx: MonitorContext, routine: Routine, target: Target) -> str:
    try:
        return routine.plan(ctx, target)
    except Exception as exc:  # the guard is the one place that catches broadly
        logger.exception("plan of %s raised", routine.name)
        return f"run {routine.name} (its plan could not be computed: {type(exc).__name__}: {exc})"


def _safe_fix(ctx: MonitorContext, routine: Routine, target: Target) -> FixOutcome:
    try:
        return routine.fix(ctx, target)
    except Exception as exc:  # the guard is the one place that catches broadly
        # an outage (database, disk) is one line, a bug keeps its traceback
        log_failure(logger, exc, "routine %s raised on %s", routine.name, target.name)
        return FixOutcome("failed", f"{routine.name} raised {type(exc).__name__}: {exc}")


def _verify(ctx: MonitorContext, routine: Routine, outcome: FixOutcome,
            checks: Mapping[str, CheckFn] | None) -> tuple[FixOutcome, bool]:
    """Re-run the check that proves the fix (polling up to `settle_s`); a failing check is
    reported as unverified and handed to a human."""
    result = run_check(ctx, routine.verify_check or "", checks)
    deadline = time.monotonic() + routine.settle_s
    while not _passes(result) and time.monotonic() < deadline:
        time.sleep(0.25)
        result = run_check(ctx, routine.verify_check or "", checks)
    if _passes(result):
        return replace(outcome, detail=f"{outcome.detail}; verified: {result.detail}"), True
    return replace(outcome, outcome="unverified", needs_human=True,
                   detail=f"{outcome.detail}; but the {result.name} check still says "
                          f"{result.status.value}: {result.detail}"), False


def run_check(ctx: MonitorContext, name: str, checks: Mapping[str, CheckFn] | None = None) -> CheckResult:
    """Run the check `name` of `checks` (the built-in ones when None) now, in this thread."""
    if checks is None:
        checks = CHECKS
    return run_one(name, checks[name], ctx)


def sweep_check(ctx: MonitorContext, name: str) -> CheckResult:
    """The built-in check `name` as a routine's precondition: run once per sweep (inside
    `sweep_scope`) and shared by every row after the first, run now outside a sweep.
    A fix's verification never uses this: it must see the state after the fix."""
    seen = _sweep_results.get()
    if seen is None:
        return run_check(ctx, name)
    if name not in seen:
        seen[name] = run_check(ctx, name)
    return seen[name]


@contextmanager
def sweep_scope() -> Iterator[None]:
    """Within it, `sweep_check` runs each check once (100 retries need one internet check)."""
    token = _sweep_results.set({})
    try:
        yield
    finally:
        _sweep_results.reset(token)


def _passes(result: CheckResult) -> bool:
    return result.status in (Status.OK, Status.WARNING)


def _record(ctx: MonitorContext, record: ActionRecord, target: Target, started_at: datetime) -> None:
    """Write the action to the actions table and, in full, to the post-failures log."""
    log = failure_log.warning if record.needs_human or record.outcome in ("failed", "blocked") \
        else failure_log.info
    log("action %s on %s (%s): %s%s in %.0f ms - %s | failure detail: %s", record.routine,
        record.target, record.reason, record.outcome,
        "" if record.verified is None else f" verified={record.verified}", record.duration_ms,
        record.detail, redact(target.reason) or "-")
    try:
        with ctx.engine.begin() as conn:
            conn.execute(insert(actions).values(
                routine=record.routine, target=record.target[:255], reason=record.reason[:64],
                outcome=record.outcome, detail=redact(record.detail), dry_run=ctx.settings.dry_run,
                started_at=started_at, duration_ms=record.duration_ms))
    except SQLAlchemyError as exc:  # the log line above still holds the action
        _recording.failed(exc)  # the log line above still holds the action


def requeue(ctx: MonitorContext, target: Target) -> str:
    """After an infrastructure repair, put the row the failure hit back in line (now). The
    failed attempt may have reached X, so a later duplicate answer counts as posted."""
    if target.post_id is None:
        return ""

    done = transition(ctx.engine, target.post_id, PostStatus.FAILED, PostStatus.RETRY_SCHEDULED,
                      ctx.now(), expect=target.row, next_attempt_at=ctx.now(), ambiguous_attempt=True)
    return f"; {target.name} queued for a retry" if done else f"; {changed_meanwhile(target)}"


def changed_meanwhile(target: Target) -> str:
    """The detail for a row the pipeline (or another sweep) changed after the sweep read it."""
    return (f"{target.name} changed since the sweep read it (another process moved it); left "
            "alone, looked at afresh next sweep")


def backoff_delay(ctx: MonitorContext, attempts: int) -> timedelta:
    """Exponential backoff for the `attempts`-th failure: base·2^(n-1), ±20 % jitter, capped."""
    settings = ctx.settings
    raw = settings.backoff_base_seconds * 2 ** max(0, min(attempts - 1, 30))
    jittered = raw * random.uniform(0.8, 1.2)
    return timedelta(seconds=min(settings.backoff_max_seconds, jittered))


def local_time(ctx: MonitorContext, moment: datetime) -> str:
    """`moment` as the person reads it (MONITOR_TIMEZONE) for details."""
    return moment.astimezone(ctx.settings.monitor_timezone).strftime("%Y-%m-%d %H:%M:%S %Z")
