"""One sweep: cheap checks, the post ledger, the pipeline's logs → detections → routines.

Each part runs on its own (one that fails is reported in `errors`, the others still run); each
ledger row is handled on its own (a bad row is reported and skipped). Rows are found with indexed
queries in bounded batches, and every change to a row is a compare-and-set, so two sweeps at once
never post a row twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update

from autonomiq_ledger.posting import get_post, row_problem
from checks.base import Status, run_checks
from recovery.base import Routine, Target, run_routine
from recovery.registry import Registry
from recovery.report import ActionRecord, Detection, SweepReport
from recovery.routines.hold_for_usage_cap import active_hold
from utils.db import posts
from utils.logging_setup import log_failure
from utils.redact import one_line

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from utils.context import MonitorContext

logger = logging.getLogger(__name__)

BATCH = 100               # rows of each kind handled per sweep; the rest wait for the next one
FOLLOW_UPS = 1            # a retry that fails again is classified and routed once more, same sweep


def run_sweep(ctx: MonitorContext, registry: Registry | None = None) -> SweepReport:
    """Run one sweep with `registry`'s checks and fixers (the built-in ones when None) and return
    everything it detected and did."""
    report = SweepReport(registry=registry or Registry.built_in())
    for name, part in (("checks", _sweep_checks), ("ledger", _sweep_ledger), ("logs", _sweep_logs)):
        try:
            part(ctx, report)
        except Exception as exc:  # one broken part must not hide the others
            log_failure(logger, exc, "sweep part %s failed", name)
            report.errors.append(f"{name}: {one_line(f'{type(exc).__name__}: {exc}', 300)}")
    return report


# --- checks ------------------------------------------------------------------------------------

def _sweep_checks(ctx: MonitorContext, report: SweepReport) -> None:
    results = run_checks(report.registry.sweep_checks(), ctx, ctx.settings.check_timeout_seconds)
    try:
        from checks.history import save_results

        save_results(ctx.engine, results, "sweep")
    except Exception as exc:  # the database check reports a broken database
        logger.warning("could not store sweep check results: %s", exc)
    for result in results:
        failure_class = result.failure_class
        # Unknown is "not configured / cannot tell"; of the warnings only low disk is worth acting on.
        acting = result.status is Status.CRITICAL or (result.status is Status.WARNING
                                                      and failure_class == "disk")
        if not acting or not failure_class:
            continue
        target = Target(f"check:{result.name}", failure_class, result.detail)
        report.detected.append(Detection("check", failure_class, result.detail, target.name))
        for routine in report.registry.routines_for(failure_class):
            report.actions.append(_run(ctx, report, routine, target))


# --- ledger ------------------------------------------------------------------------------------

def _ids(ctx: MonitorContext, where: ColumnElement[bool], order: Any) -> list[int]:
    with ctx.engine.connect() as conn:
        return list(conn.execute(select(posts.c.id).where(where).order_by(order).limit(BATCH)).scalars())


def _sweep_ledger(ctx: MonitorContext, report: SweepReport) -> None:
    now = ctx.now()
    due = posts.c.next_attempt_at.is_(None) | (posts.c.next_attempt_at <= now)
    grace = now - timedelta(minutes=ctx.settings.missed_post_grace_minutes)
    failed = _ids(ctx, (posts.c.status == "failed") & due, posts.c.id)
    retries = _ids(ctx, (posts.c.status == "retry_scheduled") & due, posts.c.next_attempt_at)
    # A table the pipeline created itself may hold NULL where ours holds defaults.
    never_tried = (posts.c.attempts == 0) | posts.c.attempts.is_(None)
    missed = _ids(ctx, (posts.c.status == "scheduled") & (posts.c.scheduled_at <= grace) & never_tried,
                  posts.c.scheduled_at)
    stuck = _ids(ctx, (posts.c.status == "posting") & (posts.c.updated_at <= grace), posts.c.id)
    for post_id in _ids(ctx, (posts.c.status == "posting") & posts.c.updated_at.is_(None), posts.c.id):
        report.errors.append(f"post {post_id}: `posting` with no updated_at, so it cannot be told "
                             "stuck or in progress; skipped (set updated_at or fix the row)")
    _each(ctx, report, stuck, _handle_stuck)
    _each(ctx, report, failed, _handle_failed)
    _each(ctx, report, retries, _handle_due)
    _each(ctx, report, missed, _handle_missed)


def _each(ctx: MonitorContext, report: SweepReport, ids: list[int],
          handle: Callable[[MonitorContext, dict[str, Any], SweepReport], None]) -> None:
    for post_id in ids:
        try:
            row = get_post(ctx.engine, post_id)
            problem = row_problem(row) if row is not None else None
            if problem:
                report.errors.append(f"post {post_id}: {problem}; skipped (fix or delete the row)")
            elif row is not None:
                handle(ctx, row, report)
        except Exception as exc:  # a bad row is reported and skipped, never crashes the sweep
            logger.exception("post %s could not be handled", post_id)
            report.errors.append(f"post {post_id}: {one_line(f'{type(exc).__name__}: {exc}', 300)}")


def _classified(ctx: MonitorContext, row: dict[str, Any]) -> str:
    """The row's failure class; an empty or `unknown` one is (re)classified and written."""
    if row.get("failure_class") and row["failure_class"] != "unknown":
        return str(row["failure_class"])
    from recovery.classify import classify

    failure_class = classify(row.get("last_error")).failure_class.value
    with ctx.engine.begin() as conn:
        conn.execute(update(posts).where(posts.c.id == row["id"], posts.c.status == "failed")
                     .values(failure_class=failure_class))
    return failure_class


def _handle_failed(ctx: MonitorContext, row: dict[str, Any], report: SweepReport,
                   depth: int = 0) -> None:
    failure_class = _classified(ctx, row)
    detail = one_line(row.get("last_error") or "no error recorded", 300)
    report.detected.append(Detection("ledger", failure_class, detail, f"post:{row['id']}", row["id"]))
    for routine in report.registry.routines_for(failure_class):
        _act(ctx, report, _run(ctx, report, routine, Target.for_row(row, failure_class)), depth)


def _run(ctx: MonitorContext, report: SweepReport, routine: Routine | str,
         target: Target) -> ActionRecord:
    """Run a registered routine (given, or by name) through the guard, verifying with the
    registry's checks; one that is not registered is reported as skipped."""
    found = report.registry.routine(routine) if isinstance(routine, str) else routine
    if found is None:
        return ActionRecord(str(routine), target.name, "skipped", "not registered", target.failure_class,
                            None, False, 0.0, target.post_id)
    return run_routine(ctx, found, target, report.registry.checks)


def _act(ctx: MonitorContext, report: SweepReport, record: ActionRecord, depth: int) -> None:
    """Keep the record; a post that was retried and failed again is handled once more."""
    report.actions.append(record)
    if record.outcome not in ("retried", "released") or depth >= FOLLOW_UPS or record.post_id is None:
        return
    row = get_post(ctx.engine, record.post_id)
    if row is not None and row["status"] == "failed":
        _handle_failed(ctx, row, report, depth + 1)


def _handle_due(ctx: MonitorContext, row: dict[str, Any], report: SweepReport) -> None:
    hold = active_hold(ctx)
    if hold is not None:  # one probe per hold: every post would hit the same cap
        return
    target = Target.for_row(row, row.get("failure_class") or "retry")
    _act(ctx, report, _run(ctx, report, "retry_due_post", target), 0)


def _handle_stuck(ctx: MonitorContext, row: dict[str, Any], report: SweepReport) -> None:
    detail = (f"attempt interrupted: the row has been `posting` since {row['updated_at'].isoformat()} "
              "(the poster crashed or hung); it may have reached X")
    report.detected.append(Detection("ledger", "timeout", detail, f"post:{row['id']}", row["id"]))
    target = Target(f"post:{row['id']}", "timeout", detail, row["id"], row)
    _act(ctx, report, _run(ctx, report, "release_stuck_post", target), 0)


def _handle_missed(ctx: MonitorContext, row: dict[str, Any], report: SweepReport) -> None:
    late = ctx.now() - row["scheduled_at"]
    detail = (f"scheduled for {row['scheduled_at'].isoformat()}, not attempted "
              f"{late.total_seconds() / 60:.0f} min later: the pipeline's scheduler missed it")
    report.detected.append(Detection("ledger", "scheduler", detail, f"post:{row['id']}", row["id"]))
    target = Target(f"post:{row['id']}", "scheduler", detail, row["id"], row)
    _act(ctx, report, _run(ctx, report, "post_missed", target), 0)


# --- logs --------------------------------------------------------------------------------------

def _sweep_logs(ctx: MonitorContext, report: SweepReport) -> None:
    """Classify new error lines of PIPELINE_LOG_FILES; the ledger is what gets repaired."""
    if not ctx.settings.pipeline_log_files:
        return
    from recovery.logs.reader import scan_logs

    for event in scan_logs(ctx):
        detail = (f"{event.count} line(s) like: {one_line(event.first_line, 240)}" if event.count
                  else one_line(event.first_line, 240))  # already says "cannot read log file: …"
        report.detected.append(Detection("log", str(event.failure_class), detail, str(event.path)))


# --- output ------------------------------------------------------------------------------------

def sweep_exit_code(report: SweepReport) -> int:
    """0 healthy, 1 something was detected or fixed, 2 a human is needed."""
    if report.errors or any(a.needs_human or a.outcome in ("blocked", "failed") for a in report.actions):
        return 2
    return 1 if report.detected or report.actions else 0


def render_report(report: SweepReport) -> str:
    """The readable summary `sweep` prints."""
    lines = [f"DETECTED ({len(report.detected)})"]
    lines += [f"  {d.source:<6} {d.target:<18} {d.failure_class:<15} {d.detail}" for d in report.detected]
    lines.append(f"ACTIONS ({len(report.actions)})")
    for a in report.actions:
        flags = (" [verified]" if a.verified else " [NOT verified]" if a.verified is False else "") \
            + (" [NEEDS HUMAN]" if a.needs_human else "")
        lines.append(f"  {a.routine:<22} {a.target:<18} {a.outcome:<15}{flags} {a.detail}")
    lines += [f"ERROR  {error}" for error in report.errors]
    lines.append(f"summary: {report.summary()}")
    return "\n".join(lines)
