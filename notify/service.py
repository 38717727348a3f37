"""What `AutonomousMonitor` holds: incidents in, messages out, delivery in the background.

Nothing here raises into a check round or a sweep: a broken notification path is logged. With
the delivery thread running (the daemon) messages go out in the background; without it (a cron
`check` or `sweep`) they are flushed before the call returns, bounded by FLUSH_TIMEOUT_S.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import SQLAlchemyError

from checks.history import latest_results
from notify import messages
from notify.channels import LOG_CHANNEL, Sender, log_message, parse_channels
from notify.incidents import (
    IncidentBook,
    IncidentsUnrecorded,
    open_check_names,
    open_keys_to_judge,
    post_id_of,
)
from notify.observe import from_checks, from_sweep
from notify.outbox import Outbox
from notify.silence import ended_quiet_times
from utils.db import health_checks, posts
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


def given_up_keys(ctx: MonitorContext, keys: Iterable[str]) -> set[str]:
    """The `failure:<class>:post:<id>` keys whose post is `gave_up`. The sweep stops looking at
    such a post, which is no recovery: its incident is closed, never "resolved"."""
    ids = {post_id: key for key in keys if (post_id := post_id_of(key)) is not None}
    if not ids:
        return set()
    with ctx.engine.connect() as conn:
        found: list[int] = list(conn.execute(select(posts.c.id).where(
            posts.c.id.in_(list(ids)), posts.c.status == "gave_up")).scalars())
        return {ids[post_id] for post_id in found}


def post_facts(ctx: MonitorContext, ids: set[int]) -> dict[int, messages.PostFacts]:
    """The ledger rows `ids` as messages show them."""
    if not ids:
        return {}
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(posts.c.id, posts.c.text, posts.c.scheduled_at, posts.c.status,
                                   posts.c.attempts, posts.c.tweet_id)
                            .where(posts.c.id.in_(sorted(ids)))).fetchall()
    return {row.id: messages.PostFacts(row.id, row.text or "", row.scheduled_at, row.status,
                                       int(row.attempts or 0), row.tweet_id) for row in rows}


def _report_post_ids(report: SweepReport) -> set[int]:
    ids = {d.post_id for d in report.detected} | {a.post_id for a in report.actions}
    return {post_id for post_id in ids if post_id is not None}


class NotificationService:
    """Incidents, the outbox and the channels of one monitor."""

    def __init__(self, ctx: MonitorContext) -> None:
        self.ctx = ctx
        self._unrecorded_sent: dict[str, datetime] = {}  # class set → when its direct alert went
        self._handle: str | None = None
        self.channels = parse_channels(ctx.settings.notify_urls)
        self.sender = Sender()
        self.outbox = Outbox(ctx, self.channels, self.sender)
        self.incidents = IncidentBook(ctx, self._enqueue)

    def who(self) -> messages.Who:
        """This monitor's name (MONITOR_NAME, else the host name) and X account, once known."""
        if self._handle is None:
            self._handle = self._stored_handle()
        return messages.Who(self.ctx.settings.monitor_name or socket.gethostname(), self._handle)

    def _stored_handle(self) -> str | None:
        """The @handle the twitter_api check last authenticated as."""
        try:
            with self.ctx.engine.connect() as conn:
                data = conn.execute(select(health_checks.c.data).where(
                    health_checks.c.name == "twitter_api", health_checks.c.status == "ok")
                    .order_by(health_checks.c.id.desc()).limit(1)).scalar()
            return _username(json.loads(data)) if data else None
        except (SQLAlchemyError, ValueError):
            return None

    def _enqueue(self, conn: Connection, message: messages.Message, now: datetime) -> int:
        message = messages.sign(message, self.who())
        log_message(message.title, message.body, message.notify_type)
        self.outbox.enqueue(conn, message, now)
        return 1

    def observe_round(self, results: list[CheckResult], trigger: str) -> None:
        """Feed a health round to the incidents (the pre-posting message is the slot's verdict:
        `daemon/slot_watch.py`)."""
        for result in results:
            self._handle = _username(result.data) or self._handle
        try:
            self.incidents.observe(from_checks(results, trigger))
            self._quiet_time_summaries()
        except IncidentsUnrecorded as exc:
            self._alert_unrecorded(exc)
        except Exception as exc:  # the notification boundary: a round is never lost to a bug here
            log_failure(logger, exc, "could not process the health round for notifications")
        self._deliver()

    def observe_sweep(self, report: SweepReport) -> None:
        """Feed a sweep's detections and actions to the incidents."""
        try:
            swept = _report_post_ids(report)
            try:
                judged = open_keys_to_judge(self.ctx, swept)
                ended = given_up_keys(self.ctx, judged)
                open_rows = {key: failed for key, failed in judged.items() if key not in ended}
                latest = {row["name"]: row for row in latest_results(self.ctx.engine)}
                ids = swept | {i for key in open_rows if (i := post_id_of(key)) is not None}
                facts = post_facts(self.ctx, ids)
                last_posted = self._last_posted()
            except SQLAlchemyError:  # down or hung: judge what the sweep saw, so an urgent problem
                judged, open_rows, latest, facts, last_posted = {}, {}, {}, {}, None  # still goes out
            observations = from_sweep(report, open_rows, latest, facts, self.ctx.now(), last_posted)
            self.incidents.observe(observations)
            # The give-up alert (just queued) is the last word on such a post: close its incident
            # (one judged above, or one this sweep just opened or updated).
            self.incidents.close(given_up_keys(self.ctx, set(judged) | {o.key for o in observations}))
            self._quiet_time_summaries()
        except IncidentsUnrecorded as exc:
            self._alert_unrecorded(exc)
        except Exception as exc:  # the notification boundary: a sweep is never lost to a bug here
            log_failure(logger, exc, "could not process the sweep for notifications")
        self._deliver()

    def open_checks(self) -> list[str]:
        """The checks with an open incident (for the daemon's re-check while it lasts)."""
        try:
            return open_check_names(self.ctx)
        except SQLAlchemyError as exc:
            logger.warning("could not read open incidents: %s", exc)
            return []

    def _last_posted(self) -> datetime | None:
        with self.ctx.engine.connect() as conn:
            return conn.execute(select(func.max(posts.c.posted_at))
                                .where(posts.c.status == "posted")).scalar()

    def _quiet_time_summaries(self) -> None:
        """One message per silence or maintenance window that ended having held something back."""
        for name, started, events in ended_quiet_times(self.ctx):
            self.notify(messages.silence_summary(name, started, self.ctx.now(), events,
                                                 self.ctx.settings.monitor_timezone), deliver=False)

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
        message = messages.sign(messages.unrecorded(problems, str(exc)), self.who())
        log_message(message.title, message.body, message.notify_type)
        delivered = [self.sender.send(channel, message.title, message.body, message.notify_type) is None
                     for channel in self.channels]
        if any(delivered):
            self._unrecorded_sent[key] = now

    def notify(self, message: messages.Message, deliver: bool = True) -> None:
        """Queue one message for the log and every channel, and get it delivered."""
        with self.ctx.engine.begin() as conn:
            self._enqueue(conn, message, self.ctx.now())
        if deliver:
            self._deliver()

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
        except Exception:  # the outbox boundary for commands: what stays queued is sent later
            logger.exception("could not deliver queued notifications")
            return 0

    def start(self) -> None:
        """Start background delivery (only when a channel besides the log is configured)."""
        if self.channels:
            self.outbox.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop background delivery; what is undelivered stays queued for the next start."""
        self.outbox.stop(timeout_s)

    def rebuild_channels(self, *, background: bool, timeout_s: float = 5.0) -> bool:
        """Rebuild the channels from the current NOTIFY_URLS (a reload); True when they changed.
        A channel kept keeps its queue (ids come from the URL); what waited for a removed channel
        goes to the added ones (a fixed URL is a new id); `background` restarts delivery."""
        channels = parse_channels(self.ctx.settings.notify_urls)
        if [c.id for c in channels] == [c.id for c in self.channels]:
            return False
        self.outbox.stop(timeout_s)
        kept = {c.id for c in channels}
        removed = [c.id for c in self.channels if c.id not in kept]
        added = [c for c in channels if c.id not in {old.id for old in self.channels}]
        self.channels, self.outbox = channels, Outbox(self.ctx, channels, self.sender)
        if removed and added:
            try:
                moved = Outbox(self.ctx, added, self.sender).requeue(removed, self.ctx.now())
                if moved:
                    logger.info("moved %d queued notification(s) from the removed channel(s) to the "
                                "new one(s)", moved)
            except SQLAlchemyError as exc:  # they stay queued for the removed channel and expire
                logger.warning("could not move queued notifications to the new channels: %s", exc)
        if background:
            self.start()
        return True

    def test(self) -> list[ChannelResult]:
        """Send a test message to the log and every channel now, bypassing the outbox."""
        now = self.ctx.now()
        message = messages.sign(messages.test_message(now, self.ctx.settings.monitor_timezone), self.who())
        log_message(message.title, message.body, message.notify_type)
        results = [ChannelResult(LOG_CHANNEL, "log (autonomous_monitor.log)", None)]
        for channel in self.channels:
            error = self.sender.send(channel, message.title, message.body, message.notify_type)
            name = self.sender.describe(channel)
            try:
                self.outbox.health.record(channel.id, name, error, now)
            except SQLAlchemyError as exc:  # a test must report the channel even with no database
                logger.warning("could not record channel health: %s", exc)
            results.append(ChannelResult(channel.id, name, error))
        return results


def _username(data: Any) -> str | None:
    """The account name in a twitter_api check's data, if it holds one."""
    name = data.get("username") if isinstance(data, dict) else None
    return str(name) if name else None
