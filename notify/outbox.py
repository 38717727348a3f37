"""The persistent outbox: one row per (message, channel), delivered off the caller's thread.

A failed send is retried with backoff (5 s, doubling, capped by NOTIFY_RETRY_MAX_SECONDS); a
message still undelivered after a day is dropped with a log line. A row is claimed (its next
attempt pushed out by a lease) before it is sent, so a daemon and a cron `check` never both send it.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, func, insert, select, update

from notify.channel_health import ChannelHealth
from notify.channels import Channel, Sender
from utils.db import outbox
from utils.redact import one_line, redact

if TYPE_CHECKING:
    from notify.messages import Message
    from utils.context import MonitorContext

logger = logging.getLogger(__name__)
FIRST_RETRY = timedelta(seconds=5)
MAX_AGE = timedelta(days=1)
KEEP_DELIVERED = timedelta(days=7)
LEASE = timedelta(minutes=2)
BATCH = 50


class Outbox:
    """Queue messages in the database and deliver them, in a background thread or on demand."""

    def __init__(self, ctx: MonitorContext, channels: list[Channel], sender: Sender) -> None:
        self.ctx = ctx
        self.channels = {channel.id: channel for channel in channels}
        self.sender = sender
        self.health = ChannelHealth(lambda: ctx.engine, list(self.channels))
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def running(self) -> bool:
        """True while the delivery thread is alive."""
        return self._thread is not None and self._thread.is_alive()

    def enqueue(self, conn: Connection, message: Message, now: datetime) -> int:
        """Add one row per channel inside the caller's transaction; returns the number of rows."""
        rows = [{"channel": cid, "title": redact(message.title), "body": redact(message.body),
                 "notify_type": message.notify_type, "created_at": now, "attempts": 0,
                 "next_attempt_at": now} for cid in self.channels]
        if rows:
            conn.execute(insert(outbox), rows)
        return len(rows)

    def wake(self) -> None:
        """Ask the delivery thread to look at the outbox now."""
        self._wake.set()

    def deliver_due(self, deadline: float | None = None) -> int:
        """Send every row that is due (until the monotonic `deadline`); returns how many were delivered."""
        now = self.ctx.now()
        self._expire(now)
        with self.ctx.engine.connect() as conn:
            due = conn.execute(select(outbox).where(outbox.c.delivered_at.is_(None),
                                                    outbox.c.next_attempt_at <= now)
                               .order_by(outbox.c.id).limit(BATCH)).fetchall()
        delivered = 0
        for row in due:
            if deadline is not None and time.monotonic() >= deadline:
                break
            delivered += self._attempt(row)
        return delivered

    def _claim(self, row: Any) -> bool:
        with self.ctx.engine.begin() as conn:
            return conn.execute(update(outbox).where(
                outbox.c.id == row.id, outbox.c.delivered_at.is_(None),
                outbox.c.next_attempt_at == row.next_attempt_at,
            ).values(next_attempt_at=self.ctx.now() + LEASE)).rowcount == 1

    def _attempt(self, row: Any) -> int:
        channel = self.channels.get(row.channel)
        if channel is None:  # the URL was removed from NOTIFY_URLS since the row was queued
            with self.ctx.engine.begin() as conn:
                conn.execute(delete(outbox).where(outbox.c.id == row.id))
            logger.warning("dropped notification %r: channel %s is no longer configured",
                           row.title, row.channel)
            return 0
        if not self._claim(row):
            return 0
        error = self.sender.send(channel, row.title, row.body, row.notify_type)
        now = self.ctx.now()
        values: dict[str, Any] = {"attempts": row.attempts + 1, "last_error": error}
        if error is None:
            values["delivered_at"] = now
        else:
            delay = min(FIRST_RETRY * 2 ** row.attempts,
                        timedelta(seconds=self.ctx.settings.notify_retry_max_seconds))
            values["next_attempt_at"] = now + delay
            logger.warning("notification %r to %s failed (attempt %d, next in %ds): %s",
                           row.title, row.channel, row.attempts + 1, delay.total_seconds(), error)
        with self.ctx.engine.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.id == row.id).values(**values))
        self.health.record(channel.id, self.sender.describe(channel), error, now)
        return int(error is None)

    def _expire(self, now: datetime) -> None:
        with self.ctx.engine.begin() as conn:
            stale = conn.execute(select(outbox.c.id, outbox.c.channel, outbox.c.title,
                                        outbox.c.attempts, outbox.c.last_error)
                                 .where(outbox.c.delivered_at.is_(None),
                                        outbox.c.created_at < now - MAX_AGE)).fetchall()
            for row in stale:
                logger.error("dropped notification %r to %s: undelivered for a day after %d "
                             "attempt(s), last error: %s", row.title, row.channel, row.attempts,
                             one_line(row.last_error or "none"))
            if stale:
                conn.execute(delete(outbox).where(outbox.c.id.in_([row.id for row in stale])))
            conn.execute(delete(outbox).where(outbox.c.delivered_at < now - KEEP_DELIVERED))

    def pending(self) -> int:
        """How many rows wait for delivery (due or not)."""
        with self.ctx.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(outbox)
                                .where(outbox.c.delivered_at.is_(None))).scalar_one()

    def flush(self, timeout_s: float) -> int:
        """Deliver what is due now, synchronously, for at most about `timeout_s` seconds."""
        return self.deliver_due(deadline=time.monotonic() + timeout_s)

    def start(self) -> None:
        """Start the background delivery thread (idempotent)."""
        if self.running:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="notify-outbox", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float) -> None:
        """Stop the delivery thread, waiting at most `timeout_s` (undelivered rows stay queued)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                logger.warning("notification delivery did not stop within %.1fs", timeout_s)
        self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.deliver_due()
            except Exception:  # the database may be down: try again on the next wake-up
                logger.exception("notification delivery failed; retrying later")
            self._wake.wait(self._idle_seconds())
            self._wake.clear()

    def _idle_seconds(self) -> float:
        try:
            with self.ctx.engine.connect() as conn:
                due = conn.execute(select(func.min(outbox.c.next_attempt_at))
                                   .where(outbox.c.delivered_at.is_(None))).scalar()
        except Exception:
            return 30.0
        if due is None:
            return 30.0
        return min(30.0, max(0.5, (due - self.ctx.now()).total_seconds()))
