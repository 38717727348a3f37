"""SIGHUP: re-read `.env` and the environment; apply a good configuration, keep the old on a bad one.

The signal handler only raises a flag; the daemon's main loop calls `apply_pending`, so the work
never runs inside a signal handler (which could interrupt a thread holding the logging lock).
Applying means: the new settings everywhere the daemon and its jobs read them, every job planned
again from them (a job's own bookkeeping kept), the notification channels rebuilt, and one log
line naming what changed — secrets by name only. Settings whose resources are built once at
start-up (database, log folder, HTTP endpoint, zone) keep their running value and say so.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from types import FrameType
from typing import TYPE_CHECKING

from daemon.scheduling import BoundedJob
from daemon.sdnotify import notify, status_line
from utils.config import SPECS, ConfigError, Settings, load_settings
from utils.redact import register_secrets

if TYPE_CHECKING:
    from daemon.service import Daemon

logger = logging.getLogger(__name__)

# Built once at start-up (engine and ledger lock, log files, HTTP socket, log times): a restart.
NEEDS_RESTART = ("DATABASE_URL", "DATA_DIR", "LOG_DIR", "MONITOR_HTTP_PORT", "MONITOR_HTTP_HOST",
                 "MONITOR_TIMEZONE")
_SECRET = {spec.env for spec in SPECS if spec.secret}


def changed_settings(old: Settings, new: Settings) -> list[str]:
    """The variables whose typed value differs, in SPECS order."""
    before, after = old.values, new.values
    return [spec.env for spec in SPECS if before[spec.env] != after[spec.env]]


def describe(names: list[str], settings: Settings) -> str:
    """`A=1, B=x, TWITTER_API_SECRET (secret)`: new values, secrets by name only."""
    view = settings.public_view()
    return ", ".join(f"{name} (secret)" if name in _SECRET else f"{name}={view[name]}" for name in names)


class Reloader:
    """Owns SIGHUP for one daemon: `request` from the handler, `apply_pending` from the main loop."""

    def __init__(self, daemon: Daemon, load: Callable[[Mapping[str, str]], Settings] = load_settings) -> None:
        self.daemon, self.load = daemon, load
        self.pending = threading.Event()

    def request(self, _signum: int, _frame: FrameType | None) -> None:
        """The SIGHUP handler: only note the request."""
        self.pending.set()

    def apply_pending(self) -> None:
        """Reload once if SIGHUP arrived since the last call."""
        if self.pending.is_set():
            self.pending.clear()
            self.reload()

    def reload(self) -> bool:
        """Read, validate and apply the configuration; True when it was applied (or unchanged)."""
        daemon = self.daemon
        notify(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}",
               daemon.environ)
        try:
            applied = self._reload(daemon)
        except ConfigError as exc:  # str(exc) names the variable, never its value
            logger.error("SIGHUP: reload refused, the running configuration is kept: %s", exc)
            applied = False
        except Exception:  # a reload must never take the daemon down: it keeps the running one
            logger.exception("SIGHUP: reload failed, the running configuration is kept")
            applied = False
        notify("READY=1\n" + status_line("running; reloaded" if applied else
                                         "running; reload refused (see the log)"), daemon.environ)
        return applied

    def _reload(self, daemon: Daemon) -> bool:
        old = daemon.settings
        fresh = self.load(dict(daemon.environ))
        register_secrets(fresh.secret_values)  # before anything could log them
        names = changed_settings(old, fresh)
        if not names:
            logger.info("SIGHUP: configuration reloaded, nothing changed")
            return True
        kept = [name for name in names if name in NEEDS_RESTART]
        new = fresh.with_overrides(**{name: old.values[name] for name in kept})
        jobs = apply(daemon, new)
        applied = [name for name in names if name not in kept]
        parts = [f"applied {describe(applied, new)}" if applied else "nothing applied"]
        if jobs:
            parts.append(f"jobs replanned: {', '.join(jobs)}")
        if kept:
            parts.append(f"needs a restart: {', '.join(kept)} (running value kept)")
        logger.info("SIGHUP: configuration reloaded: %s", "; ".join(parts))
        return True


def apply(daemon: Daemon, settings: Settings) -> list[str]:
    """Put `settings` in force in `daemon`; returns the ids of jobs added, removed or retimed."""
    daemon.ctx.reset_x_client(settings)  # swaps ctx.settings; the next X call uses new credentials
    daemon.settings = settings
    _apply_log_level(settings.log_level)
    daemon.monitor.notifications.rebuild_channels(background=True)
    jobs = replan(daemon)
    daemon.persist()  # `status` shows the new plan at once
    return jobs


def _apply_log_level(level: str) -> None:
    root = logging.getLogger()
    root.setLevel(level)
    for handler in root.handlers:
        if handler.level:  # the daemon's handlers follow LOG_LEVEL (NOTSET ones follow the root)
            handler.setLevel(level)


def replan(daemon: Daemon) -> list[str]:
    """Plan every job again from `daemon.settings` with the daemon's own `schedule()`, scheduler
    paused; a job that keeps its id keeps its BoundedJob (counters, a busy worker stays known)."""
    scheduler = daemon.scheduler
    before = {job.id: str(job.trigger) for job in scheduler.get_jobs()}
    old = {job.job_id: job for job in daemon.bounded}
    scheduler.pause()
    try:
        scheduler.remove_all_jobs()
        daemon.bounded = []
        daemon.schedule()
        if "startup" not in before:  # the start-up round ran already: not again
            scheduler.remove_job("startup")
        bounded: list[BoundedJob] = []
        for job in scheduler.get_jobs():
            if isinstance(job.func, BoundedJob) and job.id in old:
                kept = old.pop(job.id)
                kept.timeout_s = job.func.timeout_s
                scheduler.modify_job(job.id, func=kept)
                bounded.append(kept)
            elif isinstance(job.func, BoundedJob):
                bounded.append(job.func)
        # jobs no longer planned but still busy: shutdown still waits for them
        daemon.bounded = bounded + [job for job in old.values() if job.running]
    finally:
        scheduler.resume()
    after = {job.id: str(job.trigger) for job in scheduler.get_jobs()}
    return sorted(job_id for job_id in before.keys() | after.keys()
                  if before.get(job_id) != after.get(job_id) and job_id != "startup")
