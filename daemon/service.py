"""The daemon: one process, an in-process APScheduler, systemd notify + watchdog, clean shutdown.

Jobs: one health round at start-up, a round PRECHECK_LEAD_MINUTES before each posting time, the
pipeline sweep every SWEEP_INTERVAL, and the watchdog tick, which proves the scheduler loop is
alive and touches neither X nor the database. Each job's next run time and last outcome are
stored under `daemon:jobs` for `status`.
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
from datetime import timedelta
from types import FrameType
from typing import TYPE_CHECKING, Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger

from checks.base import Status
from daemon.scheduling import BoundedJob, DailyTrigger, JobStats, precheck_times, watch_job_events
from daemon.sdnotify import notify, status_line, watchdog_interval
from daemon.status_report import DAEMON_STATE_KEY
from utils.config import EX_CONFIG
from utils.state import put_state

if TYPE_CHECKING:
    from autonomous_monitor import AutonomousMonitor
    from checks.base import CheckResult

logger = logging.getLogger(__name__)

STOP_JOBS_WAIT_S = 5.0      # a running job may finish within this on SIGTERM …
STOP_SERVICES_S = 2.0       # … then services stop; the whole stop stays under 10 s
DEFAULT_TICK_S = 10.0       # watchdog tick when systemd set no WatchdogSec
HEARTBEAT_TIMEOUT_S = 10.0


def round_summary(trigger: str, results: list[CheckResult]) -> str:
    """`startup round: 4 ok, 1 unknown` for logs and STATUS=."""
    counts = Counter(result.status.value for result in results)
    return f"{trigger} round: " + (", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no checks")


class Daemon:
    """Owns the scheduler, the job bookkeeping and the shutdown sequence of one monitor."""

    def __init__(self, monitor: AutonomousMonitor, environ: Mapping[str, str]) -> None:
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
        self.scheduler = BackgroundScheduler(timezone=self.settings.monitor_timezone, job_defaults={
            "max_instances": 1, "coalesce": True, "misfire_grace_time": None})
        watch_job_events(self.scheduler, self.stats)

    # --- the work of each job -----------------------------------------------------------------
    def health_round(self, trigger: str) -> str:
        """Run one health round; count what failed, by check and failure class."""
        results = self.monitor.run_health_round(trigger)
        self.stats.count_failures((r.name, r.failure_class or r.status.value)
                                  for r in results if r.status is not Status.OK)
        return round_summary(trigger, results)

    def sweep(self) -> str:
        """Run one pipeline sweep between heartbeat pings (`/start`, then plain or `/fail`)."""
        self.ping_heartbeat("/start")
        try:
            report = self.monitor.run_sweep()
        except Exception:
            self.ping_heartbeat("/fail")
            raise
        self.stats.count_failures((d.source, d.failure_class) for d in report.detected)
        self.ping_heartbeat("" if report.healthy else "/fail")
        return report.summary()

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

    def tick(self) -> None:
        """The watchdog job: proves the scheduler loop runs (no X, no database)."""
        self.last_tick = time.monotonic()
        if self.watchdog_s:
            notify("WATCHDOG=1", self.environ)

    def alive(self) -> tuple[bool, str]:
        """For /healthz: the scheduler loop ticked recently and no stop is under way."""
        age = time.monotonic() - self.last_tick
        if self.stopping.is_set():
            return False, "stopping"
        if age > 3 * self.tick_s:
            return False, f"scheduler loop silent for {age:.0f}s"
        return True, f"scheduler loop ticked {age:.0f}s ago"

    # --- wiring -------------------------------------------------------------------------------
    def add_bounded(self, job_id: str, work: Callable[[], str], trigger: Any,
                    grace_s: int | None = None) -> None:
        job = BoundedJob(job_id, work, stats=self.stats, timeout_s=self.settings.job_timeout_seconds,
                         clock=self.ctx.now, abandon=self.abandon, on_done=self.job_done)
        self.bounded.append(job)
        self.scheduler.add_job(job, trigger, id=job_id, name=job_id, misfire_grace_time=grace_s)

    def schedule(self) -> None:
        """Add every job: start-up round, pre-posting rounds, sweep, watchdog tick."""
        settings, zone = self.settings, self.settings.monitor_timezone
        self.add_bounded("startup", lambda: self.health_round("startup"), DateTrigger(timezone=zone))
        # A pre-posting round later than the post itself is pointless: its grace is the lead time.
        grace = max(60, settings.precheck_lead_minutes * 60)
        for at in precheck_times(settings.posting_times, settings.precheck_lead_minutes):
            self.add_bounded(f"pre_posting_{at:%H%M}", lambda: self.health_round("pre_posting"),
                             DailyTrigger(at, zone), grace)
        self.add_bounded("sweep", self.sweep, IntervalTrigger(
            seconds=settings.sweep_interval.total_seconds(), timezone=zone))
        self.scheduler.add_job(self.tick, IntervalTrigger(seconds=self.tick_s, timezone=zone),
                               id="watchdog", name="watchdog")

    def job_done(self, job_id: str, outcome: str, detail: str) -> None:
        """After each job: one-line STATUS= for systemd, and the job table for `status`."""
        notify(status_line(f"{job_id}: {outcome} - {detail}"), self.environ)
        self.persist()

    def persist(self, *, stopped: bool = False, jobs: list[Any] | None = None) -> None:
        """Store pid, start time and every job's next run + last outcome under `daemon:jobs`."""
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
            try:
                put_state(self.ctx.engine, DAEMON_STATE_KEY, state, now)
            except Exception as exc:  # the database check reports the database itself
                logger.warning("could not store the job table: %s", exc)

    def start_http(self) -> Any:
        """The /healthz + /metrics endpoint when MONITOR_HTTP_PORT is set (else None)."""
        if not self.settings.monitor_http_port:
            return None
        from daemon.http_endpoint import start_http_endpoint
        from daemon.metrics import metrics_renderer
        from daemon.status_report import gather_status

        return start_http_endpoint(self.settings.monitor_http_host, self.settings.monitor_http_port,
                                   self.alive, metrics_renderer(lambda: gather_status(self.ctx), self.stats))

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
        logging.getLogger("apscheduler.scheduler").setLevel(logging.WARNING)  # we log the jobs
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.on_signal)
        try:
            http = self.start_http()
        except OSError as exc:
            logger.error("MONITOR_HTTP_PORT %s on %s cannot be served: %s", self.settings.monitor_http_port,
                         self.settings.monitor_http_host, exc)
            return EX_CONFIG
        self.monitor.start_services()
        self.schedule()
        self.scheduler.start()
        self.tick()
        for job in self.scheduler.get_jobs():
            logger.info("job %s (%s): next run at %s", job.id, job.trigger, job.next_run_time)
        self.persist()
        notify("READY=1\n" + status_line(f"running; sweep every {self.settings.sweep_interval}"),
               self.environ)
        while not self.stopping.wait(1.0):
            pass
        return self.stop(http)

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
        if http is not None:
            http.shutdown()
            http.server_close()
        try:
            self.monitor.stop_services(STOP_SERVICES_S)
        except Exception:
            logger.exception("stopping services failed")
        self.persist(stopped=True, jobs=jobs)
        self.monitor.close()
        logger.info("stopped after %s", timedelta(seconds=round((self.ctx.now() - self.started_at)
                                                                .total_seconds())))
        return 0


def run_daemon(monitor: AutonomousMonitor, environ: Mapping[str, str] | None = None) -> int:
    """Run the monitor as a foreground daemon until SIGTERM/SIGINT; returns the exit code."""
    return Daemon(monitor, os.environ if environ is None else environ).run()
