"""One sweep: cheap checks, the post ledger, the pipeline's logs → detections → routines.

Each part runs on its own (one that fails is reported in `errors`, the others still run); each
ledger row is handled on its own (a bad row is reported and skipped). Rows are found with indexed
queries in bounded batches, and every change to a row is a compare-and-set, so two sweeps at once
never post a row twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.exc import SQLAlchemyError

from autonomiq_ledger.ambiguity import text_may_have_reached_x
from autonomiq_ledger.excerpt import excerpt
from autonomiq_ledger.posting import get_post, get_posts, row_problem, unchanged
from autonomiq_ledger.status import ACTED_ON, PostStatus, odd_status_rows, status_in
from checks.base import Status
from checks.round import run_round
from recovery.action_budget import SAFE_MODE
from recovery.base import Routine, Target, run_routine, sweep_scope
from recovery.classify import classify
from recovery.logs.reader import scan_logs
from recovery.post_budget import POSTING_ROUTINES, allowance, note_failure
from recovery.registry import Registry
from recovery.report import ActionRecord, Detection, SweepReport
from utils.db import instant, posts, unreadable_instants
from utils.failure_classes import FailureClass
from utils.logging_setup import log_failure
from utils.redact import one_line
from utils.safe_mode import load_safe_mode

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from utils.context import MonitorContext

logger = logging.getLogger(__name__)
S = PostStatus

BATCH = 100               # rows of each kind handled per sweep; the rest wait for the next one
FOLLOW_UPS = 1            # a retry that fails again is classified and routed once more, same sweep


@dataclass
class _Run(SweepReport):
    """The report being built, with the registry the sweep runs from and the rows it skipped
    (the latter also in `errors`; neither is part of the `sweep --json` result)."""

    registry: Registry = field(default_factory=Registry, repr=False, compare=False)
    skipped_rows: list[str] = field(default_factory=list, repr=False, compare=False)

    def skip_row(self, post_id: object, why: str) -> None:
        """Report a ledger row this sweep cannot handle: it is skipped, the others go on."""
        error = f"post {post_id}: {why}"
        self.errors.append(error)
        self.skipped_rows.append(error)


def run_sweep(ctx: MonitorContext, registry: Registry | None = None) -> SweepReport:
    """Run one sweep with `registry`'s checks and fixers (the built-in ones when None) and return
    everything it detected and did."""
    report = _Run(registry=registry or Registry.built_in())
    with sweep_scope():
        for name, part in (("checks", _sweep_checks), ("ledger", _sweep_ledger), ("logs", _sweep_logs)):
            try:
                part(ctx, report)
            except Exception as exc:  # one broken part must not hide the others
                log_failure(logger, exc, "sweep part %s failed", name)
                report.errors.append(f"{name}: {one_line(f'{type(exc).__name__}: {exc}', 300)}")
    _note_bad_rows(report)
    _note_safe_mode(ctx, report)
    return report


def _note_bad_rows(report: _Run) -> None:
    """Rows skipped as unreadable are one detection, so a person hears of a post that never goes
    out (its incident resolves once no sweep meets such a row)."""
    rows = report.skipped_rows
    if rows:
        detail = "; ".join(rows[:3]) + (f"; and {len(rows) - 3} more" if len(rows) > 3 else "")
        report.detected.append(Detection("ledger", FailureClass.BAD_ROW, detail, "ledger"))


def _note_safe_mode(ctx: MonitorContext, report: _Run) -> None:
    """While safe mode lasts, every sweep detects it: one incident, resolved after `resume`."""
    entered = next((a for a in report.actions if a.outcome == SAFE_MODE and a.needs_human), None)
    try:
        state = load_safe_mode(ctx.engine)
    except SQLAlchemyError:  # the database check reports the database
        return
    if entered is not None or state.active:
        detail = entered.detail if entered is not None else (
            f"safe mode since {state.since:%Y-%m-%d %H:%M} UTC: {state.reason}; automatic fixes and "
            f"post retries are stopped until `python autonomous_monitor.py resume`")
        report.detected.append(Detection("monitor", FailureClass.SAFE_MODE, detail, "monitor"))


# --- checks ------------------------------------------------------------------------------------

def _sweep_checks(ctx: MonitorContext, report: _Run) -> None:
    checks = run_round(report.registry.sweep_checks(), report.registry.checks, ctx, "sweep")
    for result in checks.shown:  # a failure another check explains is left to that one's fixers
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

def _ids(ctx: MonitorContext, where: ColumnElement[bool], order: Any, limit: int = BATCH) -> list[int]:
    if limit <= 0:
        return []
    with ctx.engine.connect() as conn:
        return list(conn.execute(select(posts.c.id).where(where).order_by(order).limit(limit)).scalars())


def _due_retries(ctx: MonitorContext, due: ColumnElement[bool], limit: int) -> list[int]:
    """Due retries, posts scheduled within the last day first (by scheduled_at), then older ones."""
    today = instant(posts.c.scheduled_at) >= instant(ctx.now() - timedelta(days=1))
    retry = _is(S.RETRY_SCHEDULED) & due
    first = _ids(ctx, retry & today, posts.c.scheduled_at, limit)
    older = posts.c.scheduled_at.is_(None) | ~today
    return first + _ids(ctx, retry & older, posts.c.next_attempt_at, limit - len(first))


def _sweep_ledger(ctx: MonitorContext, report: _Run) -> None:
    now = ctx.now()
    due = posts.c.next_attempt_at.is_(None) | (instant(posts.c.next_attempt_at) <= instant(now))
    grace = now - timedelta(minutes=ctx.settings.missed_post_grace_minutes)
    failed = _ids(ctx, _is(S.FAILED) & due, posts.c.id)
    budget = allowance(ctx)  # account-wide: nothing that posts is even loaded while it is spent
    posting = BATCH if budget.posts is None else min(BATCH, budget.posts)
    retries = _due_retries(ctx, due, posting)
    # A table the pipeline created itself may hold NULL where ours holds defaults.
    never_tried = (posts.c.attempts == 0) | posts.c.attempts.is_(None)
    missed = _ids(ctx, _is(S.SCHEDULED) & (instant(posts.c.scheduled_at) <= instant(grace))
                  & never_tried,
                  posts.c.scheduled_at)  # still reported while posting is held: the scheduler missed them
    stuck = _ids(ctx, _is(S.POSTING) & (instant(posts.c.updated_at) <= instant(grace)),
                 posts.c.id)
    for post_id in _ids(ctx, _is(S.POSTING) & posts.c.updated_at.is_(None), posts.c.id):
        report.skip_row(post_id, "`posting` with no updated_at, so it cannot be told stuck or in "
                                 "progress; skipped (set updated_at or fix the row)")
    skip = _unreadable_times(ctx, report)
    stuck, failed, retries, missed = ([i for i in ids if i not in skip]
                                      for ids in (stuck, failed, retries, missed))
    _report_odd_statuses(ctx, report)
    _each(ctx, report, stuck, _handle_stuck, S.POSTING)
    _classify_batch(ctx, failed)
    _each(ctx, report, failed, _handle_failed, S.FAILED)
    _each(ctx, report, missed, _handle_missed, S.SCHEDULED)  # today's posts before old retries
    _each(ctx, report, retries, _handle_due, S.RETRY_SCHEDULED)


def _is(status: PostStatus) -> ColumnElement[bool]:
    return status_in(posts.c.status, [status])


def _report_odd_statuses(ctx: MonitorContext, report: _Run) -> None:
    """Rows whose status is none of PostStatus (`queued`, `FAILED`, `'failed '`), by id, exactly
    on every backend: never recovered by guesswork, never ignored silently."""
    with ctx.engine.connect() as conn:
        odd = odd_status_rows(conn, posts, BATCH)
    for post_id, status in odd:
        report.skip_row(post_id, f"status {status!r} is not one of {', '.join(S)}; skipped (fix the row)")


def _unreadable_times(ctx: MonitorContext, report: _Run) -> set[int]:
    """Rows whose timestamp names no instant (SQLite): reported with the value, then skipped."""
    with ctx.engine.connect() as conn:  # one status at a time: an index equality each
        found = sorted((bad for status in ACTED_ON for bad in unreadable_instants(conn, posts, _is(status))),
                       key=lambda bad: bad[0])
    for post_id, column, value in found:
        report.skip_row(post_id, f"{column} = {value!r:.80} is not a timestamp; "
                                 "skipped (write naive UTC, e.g. 2026-12-01 09:00:00)")
    return {post_id for post_id, _, _ in found}


def _each(ctx: MonitorContext, report: _Run, ids: list[int],
          handle: Callable[[MonitorContext, dict[str, Any], _Run], None],
          selected: PostStatus) -> None:
    """Handle each row still in the state it was `selected` in; the routines then move it only
    if it is unchanged since this read (optimistic concurrency)."""
    for post_id in ids:
        try:
            row = get_post(ctx.engine, post_id)
            problem = row_problem(row) if row is not None else None
            if row is None or row["status"] != selected:
                continue  # the pipeline (or another sweep) moved it: looked at afresh next sweep
            if problem:
                report.skip_row(post_id, f"{problem}; skipped (fix or delete the row)")
            elif row is not None:
                handle(ctx, row, report)
        except Exception as exc:  # a bad row is reported and skipped, never crashes the sweep
            logger.exception("post %s could not be handled", post_id)
            report.skip_row(post_id, one_line(f"{type(exc).__name__}: {exc}", 300))


def _classification(row: dict[str, Any]) -> dict[str, Any]:
    """What the row lacks: its failure class (an empty or `unknown` one is (re)classified) and,
    when the failure may have reached X (a pipeline's own timeout, dropped connection, 5xx), its
    attempt marked ambiguous. Empty when the row has both."""
    failure_class = row.get("failure_class")
    if not failure_class or failure_class == "unknown":
        failure_class = classify(row.get("last_error")).failure_class.value
    values: dict[str, Any] = {"failure_class": failure_class}
    if not row.get("ambiguous_attempt") and text_may_have_reached_x(failure_class, row.get("last_error")):
        values["ambiguous_attempt"] = True  # so a later duplicate answer means posted, not skipped
    return {} if all(row.get(key) == value for key, value in values.items()) else values


def _classify_batch(ctx: MonitorContext, ids: list[int]) -> None:
    """Classify the batch's failed rows in one transaction (one commit, not one per row), each
    written only if unchanged since read; a row that cannot be is classified again by its handler."""
    try:
        with ctx.engine.begin() as conn:
            for row in get_posts(conn, ids):
                values = _classification(row) if row["status"] == S.FAILED else {}
                if values:  # updated_at untouched: the pipeline did not change the row
                    conn.execute(update(posts).where(*unchanged(row)).values(**values))
    except Exception as exc:  # a bad row fails the batch: each row is then classified on its own
        log_failure(logger, exc, "could not classify the failed rows together")


def _classified(ctx: MonitorContext, row: dict[str, Any]) -> dict[str, Any] | None:
    """The row classified (see `_classification`), written only if it is unchanged since it was
    read (None if it is not)."""
    values = _classification(row)
    if not values:
        return row
    with ctx.engine.begin() as conn:  # updated_at untouched: the pipeline did not change the row
        done = conn.execute(update(posts).where(*unchanged(row)).values(**values)).rowcount
    return {**row, **values} if done == 1 else None


def _handle_failed(ctx: MonitorContext, row: dict[str, Any], report: _Run,
                   depth: int = 0) -> None:
    classified = _classified(ctx, row)
    if classified is None:
        return  # changed since the sweep read it: looked at afresh next sweep
    failure_class = str(classified["failure_class"])
    detail = one_line(excerpt(row.get("last_error") or "no error recorded", 280), 300)
    target = f"post:{row['id']}"
    if not any(d.target == target for d in report.detected):  # a released stuck row: once
        report.detected.append(Detection("ledger", failure_class, detail, target, row["id"]))
    for routine in report.registry.routines_for(failure_class):
        _act(ctx, report, _run(ctx, report, routine, Target.for_row(classified, failure_class)), depth)


def _run(ctx: MonitorContext, report: _Run, routine: Routine | str,
         target: Target) -> ActionRecord:
    """Run a registered routine (given, or by name) through the guard, verifying with the
    registry's checks; one that is not registered is reported as skipped."""
    found = report.registry.routine(routine) if isinstance(routine, str) else routine
    if found is None:
        return ActionRecord(str(routine), target.name, "skipped", "not registered", target.failure_class,
                            None, False, 0.0, target.post_id)
    budget = allowance(ctx) if found.name in POSTING_ROUTINES else None
    if budget is not None and not budget.open:  # the budget is the account's: no row may post
        return ActionRecord(found.name, target.name, "waiting", f"posting held until "
                            f"{budget.held_until.isoformat() if budget.held_until else '?'}: {budget.reason}",
                            target.failure_class, None, False, 0.0, target.post_id)
    return run_routine(ctx, found, target, report.registry.checks)


def _act(ctx: MonitorContext, report: _Run, record: ActionRecord, depth: int) -> None:
    """Keep the record; a post that was retried and failed again is handled once more."""
    report.actions.append(record)
    if record.outcome not in ("retried", "released") or record.post_id is None:
        return
    row = get_post(ctx.engine, record.post_id)
    if row is not None and record.outcome == "retried":
        note_failure(ctx, row)  # a 429 or a cap stops every later post, not just this row's
    if row is not None and row["status"] == "failed" and depth < FOLLOW_UPS:
        _handle_failed(ctx, row, report, depth + 1)


def _handle_due(ctx: MonitorContext, row: dict[str, Any], report: _Run) -> None:
    if not allowance(ctx).open:  # one probe per hold: every post would hit the same cap
        return
    target = Target.for_row(row, row.get("failure_class") or "retry")
    _act(ctx, report, _run(ctx, report, "retry_due_post", target), 0)


def _handle_stuck(ctx: MonitorContext, row: dict[str, Any], report: _Run) -> None:
    detail = (f"attempt interrupted: the row has been `posting` since {row['updated_at'].isoformat()} "
              "(the poster crashed or hung); it may have reached X")
    report.detected.append(Detection("ledger", "timeout", detail, f"post:{row['id']}", row["id"]))
    target = Target.for_row(row, "timeout", detail)
    _act(ctx, report, _run(ctx, report, "release_stuck_post", target), 0)


def _handle_missed(ctx: MonitorContext, row: dict[str, Any], report: _Run) -> None:
    late = ctx.now() - row["scheduled_at"]
    detail = (f"scheduled for {row['scheduled_at'].isoformat()}, not attempted "
              f"{late.total_seconds() / 60:.0f} min later: the pipeline's scheduler missed it")
    report.detected.append(Detection("ledger", "scheduler", detail, f"post:{row['id']}", row["id"]))
    target = Target.for_row(row, "scheduler", detail)
    _act(ctx, report, _run(ctx, report, "post_missed", target), 0)


# --- logs --------------------------------------------------------------------------------------

def _sweep_logs(ctx: MonitorContext, report: _Run) -> None:
    """Classify new error lines of PIPELINE_LOG_FILES; the ledger is what gets repaired."""
    if not ctx.settings.pipeline_log_files:
        return

    for event in scan_logs(ctx):
        detail = (f"{event.count} line(s) like: {one_line(event.first_line, 240)}" if event.count
                  else one_line(event.first_line, 240))  # already says "cannot read log file: …"
        report.detected.append(Detection("log", str(event.failure_class), detail, str(event.path)))


# --- output ------------------------------------------------------------------------------------

def sweep_exit_code(report: SweepReport) -> int:
    """0 healthy, 1 something was detected or fixed, 2 a human is needed."""
    if report.errors or any(a.needs_human or a.outcome in ("blocked", "failed") for a in report.actions):
        return 2
    if any(d.source == "ledger" and d.failure_class == "unknown" for d in report.detected):
        return 2  # no routine acts on an unknown failure: only a human can
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
