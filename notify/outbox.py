"""The persistent outbox: one row per (message, channel), delivered off the caller's thread.

Each channel's queue is FIFO: only its oldest undelivered row is ever attempted, so a newer
message never overtakes an older one to the same channel; while that row waits for its retry the
rows behind it wait too. A failed send is retried with backoff (5 s, doubling, capped by
NOTIFY_RETRY_MAX_SECONDS; the exponent is capped so no arithmetic overflows) and the failure is
always written back; a message still undelivered after a day is dropped with a log line. Each
channel has its own worker, so a slow or hung channel never delays another. A row is claimed (its
next attempt pushed out by a lease) before it is sent, so a daemon and a cron `check` never both
send it. A message delivered late says so and when it happened; an alert whose incident ended
meanwhile is still delivered, marked as over (the resolution follows it on the same channel).
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from notify.channel_health import ChannelHealth
from notify.channels import Channel, Sender
from notify.messages import late_line
from utils.db import incidents, outbox
from utils.logging_setup import log_failure
from utils.redact import one_line, redact

if TYPE_CHECKING:
    from notify.messages import Message
    from utils.context import MonitorContext

logger = logging.getLogger(__name__)
FIRST_RETRY = timedelta(seconds=5)
# 5 s × 2**16 is about 3.8 days: past any NOTIFY_RETRY_MAX_SECONDS (≤ 1 day), far from overflow.
MAX_EXPONENT = 16
LATE_AFTER = timedelta(minutes=1)   # delivered this long after it was written: the message says so
MAX_AGE = timedelta(days=1)
KEEP_DELIVERED = timedelta(days=7)
LEASE = timedelta(minutes=2)
BATCH = 50


def retry_delay(attempts: int, cap_seconds: float) -> timedelta:
    """The wait after `attempts` failed sends: 5 s doubling, at most `cap_seconds`; never overflows."""
    return min(FIRST_RETRY * 2 ** min(max(attempts, 0), MAX_EXPONENT), timedelta(seconds=cap_seconds))


class Outbox:
    """Queue messages in the database and deliver them, one worker per channel or on demand."""

    def __init__(self, ctx: MonitorContext, channels: list[Channel], sender: Sender) -> None:
        self.ctx = ctx
        self.channels = {channel.id: channel for channel in channels}
        self.sender = sender
        self.health = ChannelHealth(lambda: ctx.engine, list(self.channels))
        self._wake = {cid: threading.Event() for cid in self.channels}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    @property
    def running(self) -> bool:
        """True while a delivery worker is alive."""
        return any(thread.is_alive() for thread in self._threads)

    def enqueue(self, conn: Connection, message: Message, now: datetime) -> int:
        """Add one row per channel inside the caller's transaction; returns the number of rows."""
        rows = [{"channel": cid, "title": redact(message.title), "body": redact(message.body),
                 "notify_type": message.notify_type, "created_at": now, "attempts": 0,
                 "next_attempt_at": now, "incident_key": message.key} for cid in self.channels]
        if rows:
            conn.execute(insert(outbox), rows)
        return len(rows)

    def requeue(self, removed: list[str], now: datetime) -> int:
        """Move the undelivered messages of `removed` channels to this outbox's channels (a
        reload that fixed a channel's URL gives it a new id); returns how many were moved."""
        columns = (outbox.c.title, outbox.c.body, outbox.c.notify_type, outbox.c.created_at,
                   outbox.c.incident_key)
        with self.ctx.engine.begin() as conn:
            waiting = conn.execute(select(*columns).where(
                outbox.c.delivered_at.is_(None), outbox.c.channel.in_(removed))
                .order_by(outbox.c.created_at, outbox.c.id)).all()
            rows = [{**row._asdict(), "channel": cid, "attempts": 0, "next_attempt_at": now}
                    for row in waiting for cid in self.channels]
            if rows:
                conn.execute(insert(outbox), rows)
            conn.execute(delete(outbox).where(outbox.c.delivered_at.is_(None),
                                              outbox.c.channel.in_(removed)))
        return len(waiting)

    def wake(self) -> None:
        """Ask every delivery worker to look at the outbox now."""
        for event in self._wake.values():
            event.set()

    def deliver_due(self, deadline: float | None = None) -> int:
        """Send what is due on every channel, channels in parallel, each in order (until the
        monotonic `deadline`); returns how many were delivered."""
        self._expire(self.ctx.now())
        if not self.channels:
            return 0
        with ThreadPoolExecutor(len(self.channels), thread_name_prefix="notify-flush") as pool:
            counts = pool.map(lambda cid: self.deliver_channel(cid, deadline), list(self.channels))
            return sum(counts)

    def deliver_channel(self, cid: str, deadline: float | None = None) -> int:
        """Send the channel's queue oldest first, stopping at the first row that is not due or
        fails (FIFO: nothing overtakes it); returns how many were delivered."""
        delivered = 0
        while True:
            with self.ctx.engine.connect() as conn:
                queue = conn.execute(select(outbox).where(outbox.c.channel == cid,
                                                          outbox.c.delivered_at.is_(None))
                                     .order_by(outbox.c.id).limit(BATCH)).fetchall()
            for row in queue:
                if deadline is not None and time.monotonic() >= deadline:
                    return delivered
                if row.next_attempt_at > self.ctx.now() or not self._attempt(self.channels[cid], row):
                    return delivered
                delivered += 1
            if len(queue) < BATCH:
                return delivered

    def _claim(self, row: Any) -> bool:
        with self.ctx.engine.begin() as conn:
            return conn.execute(update(outbox).where(
                outbox.c.id == row.id, outbox.c.delivered_at.is_(None),
                outbox.c.next_attempt_at == row.next_attempt_at,
            ).values(next_attempt_at=self.ctx.now() + LEASE)).rowcount == 1

    def _attempt(self, channel: Channel, row: Any) -> bool:
        """One send of `row`; its outcome is always written back. True when delivered."""
        if not self._claim(row):
            return False
        try:
            error = self.sender.send(channel, row.title, self._body(row), row.notify_type, row.created_at)
        except Exception as exc:  # a bug in a plug-in must still leave a retry on the row
            error = one_line(f"{type(exc).__name__}: {exc}")
        now = self.ctx.now()
        values: dict[str, Any] = {"attempts": row.attempts + 1, "last_error": error}
        if error is None:
            values["delivered_at"] = now
        else:
            delay = retry_delay(row.attempts, self.ctx.settings.notify_retry_max_seconds)
            values["next_attempt_at"] = now + delay
            logger.warning("notification %r to %s failed (attempt %d, next in %ds): %s",
                           row.title, row.channel, row.attempts + 1, delay.total_seconds(), error)
        with self.ctx.engine.begin() as conn:
            conn.execute(update(outbox).where(outbox.c.id == row.id).values(**values))
        self.health.record(channel.id, self.sender.describe(channel), error, now)
        return error is None

    def _body(self, row: Any) -> str:
        """The stored body, headed by a line when it is late or its incident is already over."""
        late = self.ctx.now() - row.created_at
        over = row.notify_type in ("failure", "warning") and self._over(row.incident_key)
        head = late_line(row.created_at, self.ctx.now(), self.ctx.settings.monitor_timezone, over,
                         late >= LATE_AFTER)
        return f"{head}\n{row.body}" if head else row.body

    def _over(self, key: str | None) -> bool:
        """True when the incident `key` has no open row any more (it resolved or closed)."""
        if not key:
            return False
        with self.ctx.engine.connect() as conn:
            return conn.execute(select(func.count()).select_from(incidents).where(
                incidents.c.key == key, incidents.c.status == "open")).scalar_one() == 0

    def _expire(self, now: datetime) -> None:
        with self.ctx.engine.begin() as conn:
            stale = conn.execute(select(outbox.c.id, outbox.c.channel, outbox.c.title,
                                        outbox.c.attempts, outbox.c.last_error, outbox.c.created_at)
                                 .where(outbox.c.delivered_at.is_(None))
                                 .where((outbox.c.created_at < now - MAX_AGE)
                                        | outbox.c.channel.not_in(list(self.channels) or [""]))
                                 ).fetchall()
            for row in stale:
                if row.channel not in self.channels:  # removed from NOTIFY_URLS since it was queued
                    logger.warning("dropped notification %r: channel %s is no longer configured",
                                   row.title, row.channel)
                    continue
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
        """Start one background delivery worker per channel (idempotent)."""
        if self.running:
            return
        self._stop.clear()
        self._threads = [threading.Thread(target=self._run, args=(cid,), name=f"notify-{cid}",
                                          daemon=True) for cid in self.channels]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout_s: float) -> None:
        """Stop the delivery workers, waiting at most `timeout_s` (undelivered rows stay queued)."""
        self._stop.set()
        self.wake()
        end = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, end - time.monotonic()))
        if self.running:
            logger.warning("notification delivery did not stop within %.1fs", timeout_s)
        self._threads = []

    def _run(self, cid: str) -> None:
        wake = self._wake[cid]
        failing = False  # one line per outage, not one per wake-up
        while not self._stop.is_set():
            try:
                if cid == next(iter(self.channels)):  # one worker does the housekeeping
                    self._expire(self.ctx.now())
                self.deliver_channel(cid)
                if failing:
                    logger.info("notification delivery to %s works again", cid)
                failing = False
            except Exception as exc:  # the database may be down: try again on the next wake-up
                if not failing:
                    log_failure(logger, exc, "notification delivery to %s failed; retrying quietly "
                                "until it works", cid)
                failing = True
            wake.wait(self._idle_seconds(cid))
            wake.clear()

    def _idle_seconds(self, cid: str) -> float:
        """Until the channel's oldest undelivered row is due (between 0.5 and 30 s)."""
        try:
            with self.ctx.engine.connect() as conn:
                due = conn.execute(select(outbox.c.next_attempt_at)
                                   .where(outbox.c.channel == cid, outbox.c.delivered_at.is_(None))
                                   .order_by(outbox.c.id).limit(1)).scalar()
        except SQLAlchemyError:
            return 30.0
        if due is None:
            return 30.0
        return min(30.0, max(0.5, (due - self.ctx.now()).total_seconds()))
