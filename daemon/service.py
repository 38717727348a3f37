"""The daemon: one process, an in-process APScheduler, systemd notify + watchdog, clean shutdown.

Jobs: one health round at start-up, a round PRECHECK_LEAD_MINUTES before each posting time (through
the slot watch, which judges the slot), the slot watch every minute (ledger slots, re-checks at
T-15 / T-5, after-slot reports, the digest), the pipeline sweep every SWEEP_INTERVAL, and the
watchdog tick, which proves the scheduler loop is
alive and touches neither X nor the database (and withholds the ping while a job is stuck past
its bound). Each job's next run time and last outcome are stored under `daemon:jobs` for
`status`, by a writer thread: a database that hangs never holds up a job, READY or SIGTERM.
One daemon per ledger: `daemon/instance_lock.py`.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy.exc import SQLAlchemyError

from checks.base import Status
from daemon.allocator import limit_malloc_arenas, trim_free_memory
from daemon.instance_lock import LockKeeper
from daemon.latest import LatestWorker
from daemon.reload import Reloader
from daemon.scheduling import BoundedJob, DailyTrigger, JobStats, precheck_times, watch_job_events
from daemon.sdnotify import notify, status_line, watchdog_interval
from daemon.slot_watch import SlotWatch
from daemon.status_report import DAEMON_STATE_KEY, empty_report, gather_status
from notify import messages
from recovery.retention import DAILY_AT, prune
from utils.config import EX_CONFIG
from utils.state import put_state

if TYPE_CHECKING:
    from checks.base import CheckResult
    from daemon.monitor_view import RunnableMonitor

logger = logging.getLogger(__name__)

STOP_JOBS_WAIT_S = 4.0      # a running job may finish within this on SIGTERM …
STOP_SERVICES_S = 2.0       # … then services stop, the last state is written (STOP_STATE_S)
STOP_STATE_S = 1.5          # and the database closed (STOP_CLOSE_S): the whole stop stays under 10 s
STOP_CLOSE_S = 1.0
LOCK_WAIT_S = 0.5           # READY is not held up longer by a database that does not answer;
LOCK_DECIDE_S = 60.0        # jobs wait (bounded) for the lock's first answer before their work
EX_LOCKED = 75              # EX_TEMPFAIL: another daemon holds this ledger
DEFAULT_TICK_S = 10.0       # watchdog tick when systemd set no WatchdogSec
HEARTBEAT_TIMEOUT_S = 10.0
# An open incident of a check the sweep does not run (twitter_api) is re-run this often: on the
# Free tier's 25 calls/24 h about 4 calls an hour of outage, and the check never spends the reserve.
RECHECK_EVERY_S = 15 * 60


def round_summary(trigger: str, results: list[CheckResult]) -> str:
    """`startup round: 4 ok, 1 unknown` for logs and STATUS=."""
    counts = Counter(result.status.value for result in results)
    return f"{trigger} round: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no checks")


class Daemon:
    """Owns the scheduler, the job bookkeeping and the shutdown sequence of one monitor."""

    def __init__(self, monitor: RunnableMonitor, environ: Mapping[str, str]) -> None:
        self.monitor, self.ctx, self.environ = monitor, monitor.ctx, environ
        self.settings = monitor.ctx.settings
        self.stats = JobStats()
        self.stopping, self.abandon = threading.Event(), threading.Event()
        self.watchdog_s = watchdog_interval(environ)
        self.tick_s = self.watchdog_s or DEFAULT_TICK_S
        self.last_tick = time.monotonic()
        self.bounded: list[BoundedJob] = []
        self.started_at = self.ctx.now()
        self._persist_lock = threading.Lock()
        self.slot_watch = SlotWatch(self.ctx, self.checked_round, monitor.notifications.notify)
        self.exit_code = 0
        self._withheld = False  # the watchdog ping is being withheld (logged once)
        self.state_writer = LatestWorker("storing the job table",
                                         lambda state: put_state(self.ctx.engine, DAEMON_STATE_KEY, state,
                                                                 self.ctx.now()))
        self.report: dict[str, Any] | None = None  # the last status report, what /metrics serves
        self.reloader = Reloader(self)
        self.report_worker = LatestWorker("reading the status for /metrics", self.refresh_report)
        self.lock = LockKeeper(self.ctx, self.refuse)
        self.scheduler = BackgroundScheduler(timezone=self.settings.monitor_timezone, job_defaults={
            "max_instances": 1, "coalesce": True, "misfire_grace_time": None})
        watch_job_events(self.scheduler, self.stats, self.missed)

    # --- the work of each job -----------------------------------------------------------------
    def health_round(self, trigger: str) -> str:
        """Run one health round; count what failed, by check and failure class."""
        return round_summary(trigger, self.checked_round(trigger))

    def checked_round(self, trigger: str) -> list[CheckResult]:
        """Run one health round, count its failures and return its results."""
        results = self.monitor.run_health_round(trigger)
        self.stats.count_failures((r.name, r.failure_class or r.status.value)
                                  for r in results if r.status is not Status.OK)
        return results

    def slot_tick(self) -> str:
        """Posting slots: verdict rounds, re-checks, outcomes, budget warning, digest."""
        return self.slot_watch.tick()

    def sweep(self) -> str:
        """Run one pipeline sweep between heartbeat pings (`/start`, then plain or `/fail`)."""
        self.ping_heartbeat("/start")
        try:
            report = self.monitor.run_sweep()
        except Exception:  # tell the outside watcher, then let the job wrapper record it
            self.ping_heartbeat("/fail")
            raise
        self.stats.count_failures((d.source, d.failure_class) for d in report.detected)
        self.ping_heartbeat("" if report.healthy else "/fail")
        trim_free_memory()  # a bad day's sweep frees MBs of rows: give the pages back (~5 ms)
        return report.summary()

    def recheck_incidents(self) -> str:
        """While a check not run by every sweep (twitter_api) has an open incident, run just that
        check, so its "resolved" comes when the service is back (the check keeps its budget)."""
        sweep = set(self.monitor.registry.sweep_checks())
        names = [n for n in self.monitor.notifications.open_checks() if n in self.monitor.checks
                 and n not in sweep]
        if not names:
            return "no open incident to re-check"
        return round_summary("recheck", self.monitor.run_health_round("recheck", names))

    def retention(self) -> str:
        """Delete check results, actions and ended incidents older than RETENTION_DAYS."""
        return prune(self.ctx, max_seconds=self.settings.job_timeout_seconds / 2).summary()

    def ping_heartbeat(self, suffix: str) -> None:
        """Ping HEARTBEAT_URL + suffix (healthchecks.io convention); a failure is only logged."""
        url = self.settings.heartbeat_url
        if not url:
            return
        try:
            answer = self.ctx.http.get(url + suffix, timeout=min(HEARTBEAT_TIMEOUT_S,
                                                                 self.settings.check_timeout_seconds))
            if answer.status_code >= 400:
                logger.warning("heartbeat ping %s answered HTTP %s", suffix or "(ok)", answer.status_code)
        except Exception as exc:  # the outside watcher being down must not fail the sweep
            logger.warning("heartbeat ping %s failed: %s", suffix or "(ok)", type(exc).__name__)

    def stuck(self) -> str | None:
        """Why the scheduler cannot do its work (a job busy past its bound, so its runs are
        skipped), or None. A watched dependency being down is not this: checks report that."""
        for job in self.bounded:
            over = job.stuck_for()
            if over is not None:
                return (f"job {job.job_id} busy {over:.0f}s past its {job.timeout_s:g}s bound "
                        "(JOB_TIMEOUT_SECONDS); its runs are skipped")
        return None

    def tick(self) -> None:
        """The watchdog job: pings systemd while the scheduler loop runs and no job is stuck
        (no X, no database); withholding the ping makes systemd restart the daemon."""
        self.last_tick = time.monotonic()
        why = self.stuck()
        if why is None:
            if self.watchdog_s:
                notify("WATCHDOG=1", self.environ)
            self._withheld = False
        elif not self._withheld:
            self._withheld = True
            logger.error("%s; %s", why, "no watchdog ping, systemd will restart the daemon"
                         if self.watchdog_s else "/healthz reports unhealthy")

    def alive(self) -> tuple[bool, str]:
        """For /healthz: the scheduler loop ticked recently, no job is stuck, no stop under way."""
        age = time.monotonic() - self.last_tick
        if self.stopping.is_set():
            return False, "stopping"
        if age > 3 * self.tick_s:
            return False, f"scheduler loop silent for {age:.0f}s"
        why = self.stuck()
        if why is not None:
            return False, why
        return True, f"scheduler loop ticked {age:.0f}s ago"

    def missed(self, job_id: str, scheduled_at: datetime) -> None:
        """A pre-posting round that did not run (a suspend, a stuck scheduler) is told to a person."""
        if not job_id.startswith("pre_posting"):
            return
        zone = self.settings.monitor_timezone
        message = messages.make(
            f"pre-posting check of {scheduled_at.astimezone(zone):%H:%M} missed",
            [f"The health round due at {scheduled_at.astimezone(zone):%Y-%m-%d %H:%M %Z} did not run "
             "(the machine was asleep or the daemon busy); the post it was to check may go out "
             "unchecked.", "The monitor runs the next round as scheduled."], "warning")
        threading.Thread(target=self._send, args=(message,), name="missed-round", daemon=True).start()

    def _send(self, message: Any) -> None:
        try:
            self.monitor.notifications.notify(message)
        except SQLAlchemyError as exc:  # the database is down: the log line above stays
            logger.warning("could not queue %r: %s", message.title, exc)

    # --- wiring -------------------------------------------------------------------------------
    def add_bounded(self, job_id: str, work: Callable[[], str], trigger: Any,
                    grace_s: int | None = None, *, log_success: bool = True) -> None:
        job = BoundedJob(job_id, self.gated(work), stats=self.stats,
                         timeout_s=self.settings.job_timeout_seconds,
                         clock=self.ctx.now, abandon=self.abandon, on_done=self.job_done,
                         log_success=log_success)
        self.bounded.append(job)
        self.scheduler.add_job(job, trigger, id=job_id, name=job_id, misfire_grace_time=grace_s)

    def gated(self, work: Callable[[], str]) -> Callable[[], str]:
        """`work` run only once the ledger lock answered: held (or cannot be told: a database that
        hangs must not stop the monitoring), never while another daemon holds it."""
        def run() -> str:
            self.lock.decided.wait(LOCK_DECIDE_S)
            if self.lock.refused:
                return "not run: another daemon holds this ledger"
            return work()
        return run

    def schedule(self) -> None:
        """Add every job: start-up round, pre-posting rounds, sweep, watchdog tick."""
        settings, zone = self.settings, self.settings.monitor_timezone
        self.add_bounded("startup", lambda: self.health_round("startup"), DateTrigger(timezone=zone))
        # A pre-posting round later than the post itself is pointless: its grace is the lead time.
        grace, lead = max(60, settings.precheck_lead_minutes * 60), settings.precheck_lead_minutes
        for posting_at in sorted(set(settings.posting_times)):
            at = precheck_times([posting_at], lead)[0]
            if self.scheduler.get_job(f"pre_posting_{at:%H%M}") is None:
                self.add_bounded(f"pre_posting_{at:%H%M}", self.slot_tick,  # runs the round
                                 DailyTrigger(posting_at, zone, timedelta(minutes=lead)), grace)
        # ledger-only slots, re-checks at T-15 / T-5, after-slot outcomes, the digest
        self.add_bounded("slots", self.slot_tick, IntervalTrigger(seconds=60, timezone=zone),
                         log_success=False)
        # the sweep logs its own one-line result: the job line would repeat it
        self.add_bounded("sweep", self.sweep, IntervalTrigger(
            seconds=settings.sweep_interval.total_seconds(), timezone=zone), log_success=False)
        # an open X API incident is re-checked on its own schedule (RECHECK_EVERY_S)
        self.add_bounded("recheck", self.recheck_incidents,
                         IntervalTrigger(seconds=RECHECK_EVERY_S, timezone=zone), log_success=False)

        self.add_bounded("retention", self.retention, DailyTrigger(DAILY_AT, zone), 3600)
        self.scheduler.add_job(self.tick, IntervalTrigger(seconds=self.tick_s, timezone=zone),
                               id="watchdog", name="watchdog")

    def job_done(self, job_id: str, outcome: str, detail: str) -> None:
        """After each job: one-line STATUS= for systemd, and the job table for `status`."""
        notify(status_line(f"{job_id}: {outcome} - {detail}"), self.environ)
        self.persist()
        self.report_worker.submit()

    def refresh_report(self, _: Any = None) -> None:
        """Re-read the status for /metrics; parts the database cannot give keep their last value."""
        fresh = gather_status(self.ctx)
        if fresh["errors"] and self.report is not None:
            fresh = {**self.report, "errors": fresh["errors"], "generated_at": fresh["generated_at"]}
        self.report = fresh

    def persist(self, *, stopped: bool = False, jobs: list[Any] | None = None) -> None:
        """Hand pid, start time and every job's next run + last outcome to the state writer
        (stored under `daemon:jobs`); never waits on the database."""
        now = self.ctx.now()
        with self._persist_lock:
            records = self.stats.snapshot()
            table = {job_id: {**record, "next_run_at": None} for job_id, record in records.items()}
            for job in self.scheduler.get_jobs() if jobs is None else jobs:
                if job.id != "watchdog":
                    table[job.id] = {**records.get(job.id, {}), "trigger": str(job.trigger),
                                     "next_run_at": None if stopped or job.next_run_time is None
                                     else job.next_run_time.isoformat()}
            state = {"pid": os.getpid(), "host": socket.gethostname(),
                     "started_at": self.started_at.isoformat(), "updated_at": now.isoformat(),
                     "stopped_at": now.isoformat() if stopped else None, "jobs": table}
            self.state_writer.submit(state, last=stopped)

    def start_http(self) -> Any:
        """The /healthz, /metrics and status page endpoint when MONITOR_HTTP_PORT is set (else None)."""
        if not self.settings.monitor_http_port:
            return None
        from daemon.http_endpoint import start_http_endpoint
        from daemon.metrics import metrics_renderer
        from daemon.status_page import status_pages

        def report() -> dict[str, Any]:
            return self.report or empty_report(self.ctx)

        pages = status_pages(report, self.settings.monitor_timezone,
                             self.settings.monitor_name or socket.gethostname())
        return start_http_endpoint(
            self.settings.monitor_http_host, self.settings.monitor_http_port, self.alive,
            metrics_renderer(report, self.stats, started_at=self.started_at), pages=pages)

    # --- life cycle ---------------------------------------------------------------------------
    def on_signal(self, signum: int, _frame: FrameType | None) -> None:
        if self.stopping.is_set():
            os._exit(128 + signum)  # second signal: the person means it
        logger.info("%s received: stopping", signal.Signals(signum).name)
        self.stopping.set()

    def run(self) -> int:
        """Start everything, wait for SIGTERM/SIGINT, stop cleanly; the process exit code."""
        view = self.settings.public_view()
        logger.info("starting: pid %s; configuration: %s", os.getpid(),
                    ", ".join(f"{key}={value}" for key, value in view.items()))
        logging.getLogger("apscheduler.scheduler").setLevel(logging.ERROR)  # we log the jobs, and skips
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.on_signal)
        signal.signal(signal.SIGHUP, self.reloader.request)  # reload .env (daemon/reload.py)
        try:
            http = self.start_http()
        except OSError as exc:
            logger.error("MONITOR_HTTP_PORT %s on %s cannot be served: %s", self.settings.monitor_http_port,
                         self.settings.monitor_http_host, exc)
            return EX_CONFIG
        if self.lock.start(LOCK_WAIT_S):
            self._close_http(http)
            return self.exit_code
        self.monitor.start_services()
        self.schedule()
        self.scheduler.start()
        self.tick()
        for job in self.scheduler.get_jobs():
            logger.info("job %s (%s): next run at %s", job.id, job.trigger, job.next_run_time)
        self.persist()
        self.report_worker.submit()
        notify("READY=1\n" + status_line(f"running; sweep every {self.settings.sweep_interval}"),
               self.environ)
        while not self.stopping.wait(1.0):
            self.reloader.apply_pending()
        return self.stop(http)

    def refuse(self, line: str) -> None:
        """Another daemon holds this ledger: say who in one line and stop with EX_LOCKED."""
        logger.error("%s; this one exits (one daemon per ledger)", line)
        self.exit_code = EX_LOCKED
        self.stopping.set()

    @staticmethod
    def _close_http(http: Any) -> None:
        if http is not None:
            http.shutdown()
            http.server_close()

    def stop(self, http: Any) -> int:
        """Stop scheduling, give running jobs a bound to finish, stop services, close the database."""
        notify("STOPPING=1", self.environ)
        jobs = self.scheduler.get_jobs()  # a stopped scheduler lists none
        self.scheduler.shutdown(wait=False)
        deadline = time.monotonic() + STOP_JOBS_WAIT_S
        for job in self.bounded:
            if not job.wait(deadline - time.monotonic()):
                logger.warning("job %s still running at shutdown; abandoned", job.job_id)
        self.abandon.set()
        self._close_http(http)
        try:
            self.monitor.stop_services(STOP_SERVICES_S)
        except Exception:  # shutting down: whatever failed, the rest of the stop must run
            logger.exception("stopping services failed")
        if self.exit_code != EX_LOCKED:  # the job table belongs to the daemon holding the lock
            self.persist(stopped=True, jobs=jobs)
        if not self.state_writer.wait_idle(STOP_STATE_S):
            logger.warning("the database did not take the final job table within %gs", STOP_STATE_S)
        self.lock.stop()
        closer = threading.Thread(target=self.monitor.close, name="close-database", daemon=True)
        closer.start()
        closer.join(STOP_CLOSE_S)  # a hung database must not hold the exit
        logger.info("stopped after %s", timedelta(seconds=round((self.ctx.now() - self.started_at)
                                                                .total_seconds())))
        return self.exit_code


def run_daemon(monitor: RunnableMonitor, environ: Mapping[str, str] | None = None) -> int:
    """Run the monitor as a foreground daemon until SIGTERM/SIGINT; returns the exit code."""
    environ = os.environ if environ is None else environ
    limit_malloc_arenas(environ)  # before the scheduler starts its threads
    return Daemon(monitor, environ).run()
