"""What `AutonomousMonitor` holds: incidents in, messages out, delivery in the background.

Nothing here raises into a check round or a sweep: a broken notification path is logged. With
the delivery thread running (the daemon) messages go out in the background; without it (a cron
`check` or `sweep`) they are flushed before the call returns, bounded by FLUSH_TIMEOUT_S.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select

from checks.base import Status
from checks.history import latest_results
from notify import messages
from notify.channels import LOG_CHANNEL, Sender, log_message, parse_channels
from notify.incidents import IncidentBook, IncidentsUnrecorded, open_incidents
from notify.observe import from_checks, from_sweep
from notify.outbox import Outbox
from notify.silence import in_maintenance
from utils.db import posts
from utils.logging_setup import log_failure

if TYPE_CHECKING:
    from checks.base import CheckResult
    from recovery.report import SweepReport
    from utils.context import MonitorContext

logger = logging.getLogger(__name__)
FLUSH_TIMEOUT_S = 20.0


@dataclass(frozen=True)
class ChannelResult:
    """One channel's answer to `notify-test`."""

    channel_id: str
    name: str
    error: str | None

    @property
    def delivered(self) -> bool:
        return self.error is None


def given_up_keys(ctx: MonitorContext, keys: set[str]) -> set[str]:
    """The `failure:<class>:post:<id>` keys whose post is `gave_up`. The sweep stops looking at
    such a post, which is no recovery: its incident is closed, never "resolved"."""
    ids: dict[int, str] = {}
    for key in keys:
        head, _, post_id = key.rpartition(":post:")
        if head.startswith("failure:") and post_id.isdigit():
            ids[int(post_id)] = key
    if not ids:
        return set()
    with ctx.engine.connect() as conn:
        found = conn.execute(select(posts.c.id).where(posts.c.id.in_(list(ids)),
                                                      posts.c.status == "gave_up")).scalars()
        return {ids[post_id] for post_id in found}


class NotificationService:
    """Incidents, the outbox and the channels of one monitor."""

    def __init__(self, ctx: MonitorContext) -> None:
        self.ctx = ctx
        self._unrecorded_sent: dict[str, datetime] = {}  # class set → when its direct alert went
        self.channels = parse_channels(ctx.settings.notify_urls)
        self.sender = Sender()
        self.outbox = Outbox(ctx, self.channels, self.sender)
        self.incidents = IncidentBook(ctx, self._enqueue)

    def _enqueue(self, conn: Connection, message: messages.Message, now: datetime) -> int:
        log_message(message.title, message.body, message.notify_type)
        self.outbox.enqueue(conn, message, now)
        return 1

    def observe_round(self, results: list[CheckResult], trigger: str) -> None:
        """Feed a health round to the incidents; after a pre-posting round, the status report."""
        try:
            self.incidents.observe(from_checks(results, trigger))
            if trigger == "pre_posting":
                self._status_report(results)
        except IncidentsUnrecorded as exc:
            self._alert_unrecorded(exc)
        except Exception as exc:
            log_failure(logger, exc, "could not process the health round for notifications")
        self._deliver()

    def observe_sweep(self, report: SweepReport) -> None:
        """Feed a sweep's detections and actions to the incidents."""
        try:
            open_keys = {row["key"] for row in open_incidents(self.ctx)}
            latest = {row["name"]: row for row in latest_results(self.ctx.engine)}
            open_keys -= given_up_keys(self.ctx, open_keys)
            self.incidents.observe(from_sweep(report, open_keys, latest))
            # The give-up alert (just queued) is the last word on such a post: close its incident.
            now_open = {row["key"] for row in open_incidents(self.ctx)}
            self.incidents.close(given_up_keys(self.ctx, now_open))
        except IncidentsUnrecorded as exc:
            self._alert_unrecorded(exc)
        except Exception as exc:
            log_failure(logger, exc, "could not process the sweep for notifications")
        self._deliver()

    def _alert_unrecorded(self, exc: IncidentsUnrecorded) -> None:
        """Without a writable database there is no incident and no outbox: send one urgent alert
        straight to the channels, at most once per ALERT_REPEAT_HOURS for the same classes."""
        problems = [(obs.failure_class or obs.label, f"{obs.label}: {obs.detail}") for obs in exc.urgent]
        if not self.channels:
            return
        now = self.ctx.now()
        key = ",".join(sorted({failure_class for failure_class, _ in problems}))
        last = self._unrecorded_sent.get(key)
        if last is not None and now - last < timedelta(hours=self.ctx.settings.alert_repeat_hours):
            return
        message = messages.unrecorded(problems, str(exc))
        log_message(message.title, message.body, message.notify_type)
        delivered = [self.sender.send(channel, message.title, message.body, message.notify_type) is None
                     for channel in self.channels]
        if any(delivered):
            self._unrecorded_sent[key] = now

    def notify(self, message: messages.Message) -> None:
        """Queue one message for the log and every channel, and get it delivered."""
        with self.ctx.engine.begin() as conn:
            self._enqueue(conn, message, self.ctx.now())
        self._deliver()

    def _status_report(self, results: list[CheckResult]) -> None:
        now = self.ctx.now()
        troubled = any(r.status in (Status.WARNING, Status.CRITICAL) for r in results)
        if in_maintenance(self.ctx, now) or not (troubled or self.ctx.settings.report_when_healthy):
            return
        self.notify(messages.status_report(results, now, self.ctx.settings.monitor_timezone))

    def _deliver(self) -> None:
        if not self.channels:
            return
        if self.outbox.running:
            self.outbox.wake()
        else:
            self.flush()

    def flush(self, timeout_s: float = FLUSH_TIMEOUT_S) -> int:
        """Deliver what is due now, in this thread, for about `timeout_s` at most."""
        try:
            return self.outbox.flush(timeout_s)
        except Exception:
            logger.exception("could not deliver queued notifications")
            return 0

    def start(self) -> None:
        """Start background delivery (only when a channel besides the log is configured)."""
        if self.channels:
            self.outbox.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop background delivery; what is undelivered stays queued for the next start."""
        self.outbox.stop(timeout_s)

    def test(self) -> list[ChannelResult]:
        """Send a test message to the log and every channel now, bypassing the outbox."""
        now = self.ctx.now()
        message = messages.test_message(now, self.ctx.settings.monitor_timezone)
        log_message(message.title, message.body, message.notify_type)
        results = [ChannelResult(LOG_CHANNEL, "log (autonomous_monitor.log)", None)]
        for channel in self.channels:
            error = self.sender.send(channel, message.title, message.body, message.notify_type)
            name = self.sender.describe(channel)
            try:
                self.outbox.health.record(channel.id, name, error, now)
            except Exception as exc:  # a test must report the channel even with no database
                logger.warning("could not record channel health: %s", exc)
            results.append(ChannelResult(channel.id, name, error))
        return results
