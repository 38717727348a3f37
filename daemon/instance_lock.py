"""One daemon per ledger: a lock held for the daemon's whole life.

PostgreSQL: a session advisory lock on a dedicated connection; MariaDB/MySQL: `GET_LOCK` on a
dedicated connection; SQLite: an fcntl lock on `<database>.lock` next to the file. The lock dies
with its holder (process, connection), so a crashed daemon never blocks the next one. Who holds
it (host, pid, since when) is written into the lock file for SQLite and under `daemon:instance`
in monitor_state for all backends, so a refused daemon and `status` can name the holder.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError

from utils.redact import one_line
from utils.state import get_state, put_state

logger = logging.getLogger(__name__)

INSTANCE_STATE_KEY = "daemon:instance"
LOCK_NAME = "autonomiq_monitor_daemon"
CHECK_EVERY_S = 5.0      # how often a held lock's connection is checked, or a missing one asked for
RELEASE_WAIT_S = 1.0


def holder_record(now: datetime) -> dict[str, Any]:
    """This process as a lock holder: host, pid and since when."""
    return {"host": socket.gethostname(), "pid": os.getpid(), "since": now.isoformat()}


def describe_holder(record: Any) -> str:
    """`pid 123 on host-a since 2026-11-30T09:00:00+00:00`, or `an unknown process`."""
    if not isinstance(record, dict) or not record.get("pid"):
        return "an unknown process (it has not recorded itself)"
    return f"pid {record['pid']} on {record.get('host') or '?'} since {record.get('since') or '?'}"


def _advisory_key() -> int:
    """A stable signed 64-bit key for pg_try_advisory_lock."""
    return int.from_bytes(hashlib.sha256(LOCK_NAME.encode()).digest()[:8], "big") >> 2


@dataclass
class InstanceLock:
    """The lock of one ledger; `acquire()` is True when this process now holds it."""

    engine: Engine
    _conn: Connection | None = None
    _file: Any = None

    @property
    def backend(self) -> str:
        return self.engine.url.get_backend_name()

    @property
    def lock_path(self) -> Path | None:
        """The SQLite lock file next to the database (None for `:memory:` and servers)."""
        database = make_url(self.engine.url).database
        if self.backend != "sqlite" or not database or database == ":memory:":
            return None
        return Path(database + ".lock")

    def acquire(self, record: dict[str, Any]) -> bool:
        """Take the lock without waiting; raises SQLAlchemyError/OSError when it cannot be asked."""
        if self.backend == "sqlite":
            return self._acquire_file(record)
        conn = self.engine.connect()
        try:
            if self.backend == "postgresql":
                got = conn.execute(text("SELECT pg_try_advisory_lock(:key)"),
                                   {"key": _advisory_key()}).scalar()
            else:
                got = conn.execute(text("SELECT GET_LOCK(:name, 0)"),
                                   {"name": _mysql_lock_name(self.engine)}).scalar() == 1
            conn.commit()
        except BaseException:
            conn.invalidate()
            conn.close()
            raise
        if not got:
            conn.close()
            return False
        self._conn = conn
        return True

    def _acquire_file(self, record: dict[str, Any]) -> bool:
        path = self.lock_path
        if path is None:
            return True
        handle = path.open("a+")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            return False
        handle.seek(0)
        handle.truncate()
        handle.write(describe_holder(record) + "\n")
        handle.flush()
        self._file = handle
        return True

    def still_held(self) -> bool:
        """False when the lock's connection was lost (a database restart ends the session)."""
        if self.backend == "sqlite":  # a file lock lasts; an in-memory database has nothing to share
            return self._file is not None or self.lock_path is None
        if self._conn is None:
            return False
        try:
            self._conn.execute(text("SELECT 1")).scalar()
            self._conn.commit()
        except Exception:  # any failure means the session, and with it the lock, may be gone
            self._drop()
            return False
        return True

    def file_holder(self) -> str | None:
        """What the SQLite lock file says about its holder, if anything."""
        path = self.lock_path
        with contextlib.suppress(OSError):
            return path.read_text().strip() or None if path else None
        return None

    def _drop(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(Exception):  # the connection is already broken
                self._conn.invalidate()
                self._conn.close()
        self._conn = None

    def release(self) -> None:
        """Give the lock back: the file is unlocked, the connection closed for good (not returned
        to the pool, where its session would keep the lock)."""
        if self._file is not None:
            with contextlib.suppress(OSError):
                fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None
        self._drop()


def _mysql_lock_name(engine: Engine) -> str:
    """GET_LOCK names are server-wide: one per database (at most 64 characters)."""
    return f"{LOCK_NAME}:{engine.url.database or ''}"[:64]


def lock_is_held(engine: Engine) -> bool | None:
    """Whether some daemon holds the ledger's lock now (None when it cannot be told)."""
    backend = engine.url.get_backend_name()
    try:
        if backend == "sqlite":
            path = InstanceLock(engine).lock_path
            if path is None or not path.exists():
                return False if path is not None else None
            with path.open("a") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                return False
        with engine.connect() as conn:
            if backend == "postgresql":
                key = _advisory_key()
                return bool(conn.execute(text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND "
                    "database = (SELECT oid FROM pg_database WHERE datname = current_database()) AND "
                    "((classid::bigint << 32) | objid::bigint) = (:key)::bigint"), {"key": key}).scalar())
            return conn.execute(text("SELECT IS_USED_LOCK(:name)"),
                                {"name": _mysql_lock_name(engine)}).scalar() is not None
    except SQLAlchemyError:  # a status read must not fail on this
        return None


class LockKeeper:
    """Takes the ledger lock on its own thread and keeps checking it for the daemon's life.

    The database may hang or be down at start-up: the daemon then starts without the lock and
    this thread keeps asking. Whenever the answer is "held by another daemon" (at start, or after
    a database restart ended our session and the other one took it), `on_refused` is called with
    one line naming the holder, and the daemon stops.
    """

    def __init__(self, ctx: Any, on_refused: Callable[[str], None]) -> None:
        self.ctx, self.on_refused = ctx, on_refused
        self.lock: InstanceLock | None = None
        self.held = False
        self.refused: str | None = None
        self._first = threading.Event()
        self.decided = self._first  # set after the first answer: taken, refused or cannot tell
        self._stop = threading.Event()
        self._complained = False
        self._thread = threading.Thread(target=self._run, name="instance-lock", daemon=True)

    def start(self, wait_s: float) -> str | None:
        """Start keeping the lock; after at most `wait_s`, the refusal line if refused (else None)."""
        self._thread.start()
        self._first.wait(wait_s)
        if not self._first.is_set():
            logger.warning("instance lock: the database did not answer within %gs; running without "
                           "it until it does", wait_s)
        return self.refused

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except (SQLAlchemyError, OSError) as exc:  # the database is down or hangs: ask again later
                if not self._complained:
                    logger.warning("instance lock: cannot ask the database: %s",
                                   one_line(f"{type(exc).__name__}: {exc}", 200))
                    self._complained = True
            if self.refused:
                self.on_refused(self.refused)
                self._first.set()
                return
            self._first.set()
            self._stop.wait(CHECK_EVERY_S)

    def _step(self) -> None:
        if self.held:
            if self.lock is not None and self.lock.still_held():
                return
            logger.warning("instance lock lost (the database session ended); taking it again")
            self.held = False
        self.lock = self.lock or InstanceLock(self.ctx.engine)
        now = self.ctx.now()
        record = holder_record(now)
        if self.lock.acquire(record):
            self.held, self._complained = True, False
            logger.info("instance lock taken (%s)", self.lock.lock_path or self.lock.backend)
            put_state(self.ctx.engine, INSTANCE_STATE_KEY, record, now)
            return
        holder = self.lock.file_holder() or describe_holder(get_state(self.ctx.engine, INSTANCE_STATE_KEY))
        self.refused = f"another daemon already runs on this ledger: {holder}"

    def stop(self) -> None:
        """Stop checking and give the lock back (never waits on a hung database for long)."""
        self._stop.set()
        if self.lock is not None:
            closer = threading.Thread(target=self.lock.release, name="instance-unlock", daemon=True)
            closer.start()
            closer.join(RELEASE_WAIT_S)
