"""Scheduling pieces the daemon wires together: DST-safe daily triggers, bounded jobs, job events.

APScheduler 3.x has no job timeout, and with `max_instances=1` one hung job turns every later run
into a silent "skipped". Here each job's work runs on its own worker thread that the job waits
for at most JOB_TIMEOUT_SECONDS; overruns, errors, misfires and skipped runs are logged at error
level and counted in `JobStats`, which `status` and `/metrics` show.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from datetime import time as clock_time
from typing import Any

from apscheduler.events import (
    EVENT_JOB_ERROR,
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.triggers.base import BaseTrigger

from utils.redact import one_line

logger = logging.getLogger(__name__)


def precheck_times(posting_times: Iterable[clock_time], lead_minutes: int) -> list[clock_time]:
    """The wall-clock times `lead_minutes` before each posting time, wrapping past midnight
    (names and display only: the trigger counts the lead in real elapsed time)."""
    found = set()
    for at in posting_times:
        minutes = (at.hour * 60 + at.minute - lead_minutes) % (24 * 60)
        found.add(clock_time(minutes // 60, minutes % 60))
    return sorted(found)


class DailyTrigger(BaseTrigger):
    """Fires once per local calendar day, `lead` (real elapsed time) before a wall-clock time.

    On a DST change the time is neither skipped nor doubled: a time the clock jumps over counts
    at the same UTC offset as before the jump (02:30 → 03:30 summer time), and a time the clock
    passes twice counts on its first pass. The lead is subtracted from that instant, so a
    one-hour lead is one hour even across the change. Instants are compared in UTC: Python
    compares two times of one zone by wall clock, which in the repeated hour would call a past
    instant future and fire at once. (APScheduler 3.11's CronTrigger fires such a time twice.)
    """

    def __init__(self, at: clock_time, timezone: tzinfo, lead: timedelta = timedelta(0)) -> None:
        self.at = at.replace(tzinfo=None, fold=0)
        self.timezone, self.lead = timezone, lead

    def instant(self, day: date) -> datetime:
        """The moment this trigger fires for the wall time on local calendar day `day`."""
        wall = datetime.combine(day, self.at, tzinfo=self.timezone)  # fold=0: the first pass
        return (wall.astimezone(UTC) - self.lead).astimezone(self.timezone)

    def get_next_fire_time(self, previous_fire_time: datetime | None,
                           now: datetime) -> datetime | None:
        start = now.astimezone(UTC)
        if previous_fire_time is not None:
            previous_fire_time = previous_fire_time.astimezone(UTC)
            start = min(start, previous_fire_time + timedelta(microseconds=1))
        day = start.astimezone(self.timezone).date() - timedelta(days=1)
        for offset in range(5):
            candidate = self.instant(day + timedelta(days=offset))
            utc = candidate.astimezone(UTC)
            if utc >= start and (previous_fire_time is None or utc > previous_fire_time):
                return candidate
        return None  # unreachable: one of five consecutive days always qualifies

    def __str__(self) -> str:
        if self.lead:
            return f"daily {self.lead.total_seconds() / 60:g} min before {self.at:%H:%M} {self.timezone}"
        return f"daily at {self.at:%H:%M} {self.timezone}"

    def __repr__(self) -> str:
        return f"<DailyTrigger ({self})>"


@dataclass
class JobRecord:
    """One job's counters and its last outcome."""

    succeeded: int = 0
    errors: int = 0
    timeouts: int = 0
    missed: int = 0
    skipped: int = 0
    last_outcome: str | None = None   # ok, error, timeout, skipped, missed, abandoned
    last_detail: str = ""
    last_run_at: str | None = None
    last_duration_s: float | None = None


class JobStats:
    """Thread-safe per-job counters, last outcomes and failure counts by class."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: dict[str, JobRecord] = {}
        self.failures: Counter[tuple[str, str]] = Counter()  # (source, failure class) -> count

    def record(self, job_id: str, outcome: str, detail: str = "", *, at: datetime | None = None,
               duration_s: float | None = None, counter: str | None = None) -> None:
        """Note one outcome of `job_id`, bumping `counter` (succeeded, errors, timeouts, missed …)."""
        with self._lock:
            job = self._jobs.setdefault(job_id, JobRecord())
            if counter:
                setattr(job, counter, getattr(job, counter) + 1)
            job.last_outcome, job.last_detail = outcome, one_line(detail, 300)
            if at is not None:
                job.last_run_at = at.isoformat()
            if duration_s is not None:
                job.last_duration_s = round(duration_s, 3)

    def count_failures(self, pairs: Iterable[tuple[str, str]]) -> None:
        """Add failures seen, as (source, failure class) pairs."""
        with self._lock:
            self.failures.update(pairs)

    def snapshot(self) -> dict[str, dict[str, Any]]:
        """Every job's record as plain JSON-ready dicts."""
        with self._lock:
            return {job_id: asdict(job) for job_id, job in self._jobs.items()}

    def failure_counts(self) -> dict[tuple[str, str], int]:
        """A copy of the failure counts."""
        with self._lock:
            return dict(self.failures)


OnDone = Callable[[str, str, str], None]


class BoundedJob:
    """A job whose work runs on a worker thread awaited at most `timeout_s`.

    The job itself always returns, so APScheduler's instance slot is freed and the next run is
    not silently skipped; while an overrun worker is still busy, later runs are skipped loudly.
    """

    def __init__(self, job_id: str, work: Callable[[], str], *, stats: JobStats, timeout_s: float,
                 clock: Callable[[], datetime], abandon: threading.Event, on_done: OnDone,
                 log_success: bool = True) -> None:
        self.job_id, self.work, self.stats, self.timeout_s = job_id, work, stats, timeout_s
        self.clock, self.abandon, self.on_done = clock, abandon, on_done
        self.log_success = log_success  # False when the work logs its own one-line result
        self._started = 0.0
        self._worker: threading.Thread | None = None
        self._finished = threading.Event()
        self._outcome: tuple[str, BaseException | None] = ("", None)

    @property
    def running(self) -> bool:
        """True while a worker of this job is busy."""
        return self._worker is not None and self._worker.is_alive()

    def stuck_for(self) -> float | None:
        """Seconds a busy worker has run past its bound, or None when it is within it or idle."""
        if not self.running:
            return None
        over = time.monotonic() - self._started - self.timeout_s
        return over if over > 0 else None

    def wait(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` for a busy worker; True when none is busy any more."""
        return not self.running or self._finished.wait(max(0.0, timeout_s))

    def _target(self) -> None:
        try:
            self._outcome = (self.work() or "done", None)
        except Exception as exc:  # the job boundary: a failing job is a recorded outcome
            self._outcome = ("", exc)
        finally:
            self._finished.set()

    def __call__(self) -> None:
        started_at = self.clock()
        if self.running:
            logger.error("job %s: the run started before is still busy past its %gs bound; this run "
                         "is skipped", self.job_id, self.timeout_s)
            self._finish("skipped", "previous run still busy", started_at, None, "skipped")
            return
        self._finished.clear()
        self._worker = threading.Thread(target=self._target, name=f"job-{self.job_id}", daemon=True)
        started = self._started = time.monotonic()
        self._worker.start()
        deadline = started + self.timeout_s
        while not self._finished.is_set() and time.monotonic() < deadline and not self.abandon.is_set():
            self._finished.wait(min(0.25, max(0.0, deadline - time.monotonic())))
        self._conclude(started_at, time.monotonic() - started)

    def _conclude(self, started_at: datetime, duration_s: float) -> None:
        if not self._finished.is_set():
            if self.abandon.is_set():
                logger.warning("job %s abandoned at shutdown after %.1fs", self.job_id, duration_s)
                self._finish("abandoned", "stopped while running", started_at, duration_s, None)
                return
            logger.error("job %s overran its %gs bound (JOB_TIMEOUT_SECONDS); left running, later "
                         "runs are skipped until it ends", self.job_id, self.timeout_s)
            self._finish("timeout", f"no result within {self.timeout_s:g}s", started_at, duration_s,
                         "timeouts")
            return
        summary, error = self._outcome
        if error is not None:
            logger.error("job %s failed: %s: %s", self.job_id, type(error).__name__, error,
                         exc_info=error)
            self._finish("error", f"{type(error).__name__}: {error}", started_at, duration_s, "errors")
            return
        (logger.info if self.log_success else logger.debug)("job %s done in %.1fs: %s", self.job_id,
                                                            duration_s, summary)
        self._finish("ok", summary, started_at, duration_s, "succeeded")

    def _finish(self, outcome: str, detail: str, at: datetime, duration_s: float | None,
                counter: str | None) -> None:
        self.stats.record(self.job_id, outcome, detail, at=at, duration_s=duration_s, counter=counter)
        try:
            self.on_done(self.job_id, outcome, detail)
        except Exception:  # reporting an outcome must not turn it into another failure
            logger.exception("job %s: reporting its outcome failed", self.job_id)


def watch_job_events(scheduler: Any, stats: JobStats,
                     on_missed: Callable[[str, datetime], None] | None = None) -> None:
    """Log at error and count every job error, missed run and run skipped for max_instances;
    `on_missed(job_id, scheduled_at)` hears of each missed run (it must not block)."""

    def listener(event: JobExecutionEvent | JobSubmissionEvent) -> None:
        if event.code == EVENT_JOB_ERROR:
            logger.error("job %s raised %s", event.job_id, one_line(repr(event.exception)))
            stats.record(event.job_id, "error", repr(event.exception), counter="errors")
        elif event.code == EVENT_JOB_MISSED:
            logger.error("job %s missed its run at %s (later than its grace time)", event.job_id,
                         event.scheduled_run_time)
            stats.record(event.job_id, "missed", f"missed run at {event.scheduled_run_time}",
                         counter="missed")
            if on_missed is not None:
                on_missed(event.job_id, event.scheduled_run_time)
        elif event.code == EVENT_JOB_MAX_INSTANCES:
            # one error line per streak of skipped runs, not one per run
            already = stats.snapshot().get(event.job_id, {}).get("last_outcome") == "skipped"
            (logger.debug if already else logger.error)(
                "job %s: run at %s skipped, the previous run is still going%s", event.job_id,
                ", ".join(str(t) for t in event.scheduled_run_times),
                "" if already else " (further skips are not logged until it ends)")
            stats.record(event.job_id, "skipped", "previous run still going", counter="skipped")

    scheduler.add_listener(listener, EVENT_JOB_ERROR | EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
