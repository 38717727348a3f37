"""The database: engine factory and every table the monitor and the pipeline share.

SQLAlchemy Core (not the ORM): it is all the monitor needs and costs less memory. Times are
stored as naive UTC and come back as aware UTC (`UTCDateTime`, whatever form a pipeline wrote on
SQLite); compare them in SQL through `instant()`, so SQLite, PostgreSQL and MySQL/MariaDB behave
the same. The schema is migrated by Alembic (`utils/migrations`) from `init_db`.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    create_engine,
    event,
    false,
    inspect,
    text,
)
from sqlalchemy.dialects.mysql import MEDIUMTEXT
from sqlalchemy.engine import make_url

from .timestamps import UTCDateTime, instant, unreadable_instants  # noqa: F401 - re-exported (relative: see autonomiq_ledger/_leaves.py)

logger = logging.getLogger(__name__)


metadata = MetaData()
# What a pipeline may write at length: MariaDB/MySQL TEXT stops at 64 KB, MEDIUMTEXT at 16 MB.
LongText = Text().with_variant(MEDIUMTEXT(), "mysql", "mariadb")

# The post ledger: a contract with the pipeline (column names are documented in the README).
posts = Table(
    "posts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("text", Text, nullable=False),
    Column("scheduled_at", UTCDateTime),
    Column("status", String(20), nullable=False, default="scheduled",
           server_default=text("'scheduled'")),
    Column("attempts", Integer, nullable=False, default=0, server_default=text("0")),
    Column("last_error", LongText),
    Column("failure_class", String(32)),
    Column("next_attempt_at", UTCDateTime),
    Column("tweet_id", String(64)),
    Column("posted_at", UTCDateTime),
    Column("updated_at", UTCDateTime),
    # Beyond the contract: what recovery needs to stay exactly-once and to honour resets.
    Column("last_error_headers", LongText),   # JSON of the x-rate-limit-* / 24-hour headers seen
    Column("ambiguous_attempt", Boolean, nullable=False, default=False, server_default=false()),
    Column("media_paths", LongText),          # optional: JSON list of the files the post needs
    Index("ix_posts_status_next_attempt", "status", "next_attempt_at"),
    Index("ix_posts_status_scheduled", "status", "scheduled_at"),
    # The sweep's `failed` and `posting` queries order by id; without this, SQLite with statistics
    # (ANALYZE) walks the whole table in id order (bench/bench_sweep_cost.py).
    Index("ix_posts_status_id", "status", "id"),
)

health_checks = Table(
    "health_checks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("detail", Text, nullable=False),
    Column("duration_ms", Float, nullable=False),
    Column("data", Text, nullable=False),          # JSON
    Column("trigger", String(32), nullable=False),  # manual, startup, pre_posting, sweep
    Column("checked_at", UTCDateTime, nullable=False),
    Index("ix_health_checks_name_checked", "name", "checked_at"),
    Index("ix_health_checks_name_id", "name", "id"),  # latest per check: one index probe each
)

actions = Table(
    "actions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("routine", String(64), nullable=False),
    Column("target", String(255), nullable=False),
    Column("reason", String(64), nullable=False),    # failure class or check that led to it
    Column("outcome", String(32), nullable=False),   # fixed, failed, skipped, dry_run, blocked …
    Column("detail", Text, nullable=False),
    Column("dry_run", Boolean, nullable=False, default=False),
    Column("started_at", UTCDateTime, nullable=False),
    Column("duration_ms", Float, nullable=False, default=0.0),
    Index("ix_actions_routine_started", "routine", "started_at"),
    Index("ix_actions_started_id", "started_at", "id"),  # `status`: the last actions, newest first
)

incidents = Table(
    "incidents", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("key", String(255), nullable=False),       # check:<name> or failure:<class>:<target>
    Column("status", String(16), nullable=False),     # open, resolved
    Column("severity", String(16), nullable=False),   # warning, critical, unknown
    Column("title", Text, nullable=False),
    Column("detail", Text, nullable=False),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("resolved_at", UTCDateTime),
    Column("last_notified_at", UTCDateTime),
    Column("failure_count", Integer, nullable=False, default=0),
    Column("success_streak", Integer, nullable=False, default=0),
    Column("actions_taken", Text, nullable=False, default=""),
    Column("flapping", Boolean, nullable=False, default=False),
    # notify/incidents.py: consecutive failing rounds, the severity last alerted (None: never), class
    Column("failure_streak", Integer, nullable=False, default=0),
    Column("notified_severity", String(16)),
    Column("failure_class", String(32)),
    Column("post_id", Integer),  # the ledger row of a `failure:<class>:post:<id>` incident, else NULL
    Index("ix_incidents_key_status", "key", "status"),
    Index("ix_incidents_status_opened", "status", "opened_at"),  # open incidents, oldest first
    Index("ix_incidents_status_post", "status", "post_id"),  # open incidents of posts that moved on
)

log_offsets = Table(
    "log_offsets", metadata,
    Column("path", String(512), primary_key=True),
    Column("inode", String(64), nullable=False),
    Column("offset", BigInteger, nullable=False),  # logs grow past 2 GiB (int4 on PostgreSQL)
    Column("head_hash", String(64), nullable=False, default=""),  # detects truncate+rewrite
    Column("updated_at", UTCDateTime, nullable=False),
)

outbox = Table(
    "outbox", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("channel", String(64), nullable=False),   # a stable id of the URL, never the URL
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("notify_type", String(16), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", UTCDateTime, nullable=False),
    Column("delivered_at", UTCDateTime),
    Column("last_error", Text),
    # The incident the message is about (None: a report): a late alert whose incident has
    # since ended is delivered marked as over (notify/outbox.py).
    Column("incident_key", String(255)),
    Index("ix_outbox_pending", "delivered_at", "next_attempt_at"),
)

# Small JSON values that must survive restarts: API budgets, silences, backoff windows …
monitor_state = Table(
    "monitor_state", metadata,
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)


def make_engine(url: str, *, connect_timeout: float = 10.0,
                statement_timeout: float | None = None) -> Engine:
    """An engine whose every call is bounded: connect, pool checkout, each statement and commit
    (`statement_timeout`, default three times `connect_timeout`); creates an SQLite file's folder."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    bound = statement_timeout or 3 * connect_timeout
    connect_args: dict[str, object] = {}
    if backend == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        connect_args["timeout"] = connect_timeout
        # Python keeps 128 prepared statements per connection; an IN list of each new length is a
        # new one, some tens of KB each: RSS grew ~1 MB a sweep on a bad day (bench_footprint.py).
        connect_args["cached_statements"] = SQLITE_STATEMENTS_CACHED
    elif backend == "postgresql":
        if parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")
        connect_args.update(_postgres_bounds(connect_timeout, bound))
    elif backend in ("mysql", "mariadb"):
        if "+" not in parsed.drivername:
            parsed = parsed.set(drivername=f"{backend}+pymysql")
        # PyMySQL's socket timeouts bound every read and write, a hung server included
        connect_args.update(connect_timeout=max(1, int(connect_timeout)),
                            read_timeout=max(1, int(connect_timeout)),
                            write_timeout=max(1, int(connect_timeout)))
    engine = create_engine(parsed, connect_args=connect_args, pool_pre_ping=True,
                           pool_recycle=1800, **_pool_bounds(parsed, connect_timeout))
    if backend == "sqlite":
        busy_ms = int(connect_timeout * 1000)
        event.listen(engine, "connect", functools.partial(_sqlite_pragmas, busy_ms=busy_ms))
    elif backend == "postgresql" and parsed.drivername == "postgresql+psycopg":
        key = parsed.render_as_string(hide_password=True)
        event.listen(engine, "do_connect", _bounded_psycopg(bound, _HUNG.setdefault(key, _Hung())))
    return engine


def _pool_bounds(parsed: Any, connect_timeout: float) -> dict[str, Any]:
    # A checkout waits for a free connection at most one connect time; an in-memory SQLite
    # database has one connection per thread and no queue to wait in.
    # LIFO: the connection used last is used again, so a quiet pool keeps one warm connection
    # (and one SQLite page cache) instead of rotating through all of them.
    in_memory = parsed.get_backend_name() == "sqlite" and parsed.database in (None, "", ":memory:")
    return {} if in_memory else {"pool_timeout": connect_timeout, "pool_use_lifo": True}


def _postgres_bounds(connect_timeout: float, bound: float) -> dict[str, object]:
    """libpq settings: the server ends a statement after `bound`; TCP keepalives and
    tcp_user_timeout end a connection whose peer vanished (a partition, a dead host)."""
    idle = max(1, int(connect_timeout))
    return {"connect_timeout": max(1, int(connect_timeout)),
            "options": f"-c statement_timeout={int(bound * 1000)}",
            "keepalives": 1, "keepalives_idle": idle, "keepalives_interval": max(1, idle // 3),
            "keepalives_count": 3, "tcp_user_timeout": int(bound * 1000)}


class _Hung:
    """When an engine's server last failed to answer in time (monotonic seconds), if it did."""

    def __init__(self) -> None:
        self.since: float | None = None

    def wait_limit(self, bound: float) -> float:
        return bound if self.since is None else min(bound, SUSPECT_WAIT_S)

    def fail_fast(self) -> bool:
        return self.since is not None and time.monotonic() - self.since < FAIL_FAST_S


def _bounded_psycopg(bound: float, hung: _Hung) -> Callable[..., object]:
    """A `do_connect` hook making psycopg connections wait at most `bound` for any answer.

    A server that hangs (SIGSTOP, a frozen VM) keeps its kernel answering TCP, so neither
    statement_timeout nor keepalives fire; only the client can give up. After one such timeout
    waits are cut to SUSPECT_WAIT_S and new connections are refused for FAIL_FAST_S, so a round of
    many small queries does not wait `bound` for each; the first answer ends that. `hung` is
    shared by every engine on the same server, so a rebuilt engine remembers.
    """
    import psycopg

    class BoundedConnection(psycopg.Connection):  # type: ignore[type-arg]
        def wait(self, gen: Any, interval: float = 0.1, timeout: float | None = None) -> Any:
            limit = min(timeout or bound, hung.wait_limit(bound))
            try:
                answer = super().wait(gen, interval=interval, timeout=limit)
            except psycopg.errors._WaitTimeout:
                hung.since = time.monotonic()
                self.pgconn.finish()  # the connection's state is unknown: never reuse it
                raise psycopg.OperationalError(
                    f"the database server did not answer within {limit:g}s") from None
            hung.since = None
            return answer

    def connect(_dialect: object, _record: object, cargs: tuple[Any, ...],
                cparams: dict[str, Any]) -> object:
        if hung.fail_fast():
            raise psycopg.OperationalError("the database server did not answer moments ago "
                                           f"(not asked again for {FAIL_FAST_S:g}s)")
        if hung.since is not None:
            cparams = {**cparams, "connect_timeout": 2}  # libpq's minimum
        try:
            return BoundedConnection.connect(*cargs, **cparams)
        except psycopg.errors.ConnectionTimeout:
            hung.since = time.monotonic()
            raise

    return connect


SQLITE_STATEMENTS_CACHED = 8
SQLITE_PAGE_CACHE_KIB = 512
SUSPECT_WAIT_S = 1.0
FAIL_FAST_S = 5.0
_HUNG: dict[str, _Hung] = {}


def _sqlite_pragmas(dbapi_connection: object, _record: object, busy_ms: int = 10000) -> None:
    cursor = dbapi_connection.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")   # the pipeline and the monitor write concurrently
    cursor.execute(f"PRAGMA busy_timeout={int(busy_ms)}")  # a lock held too long is an error, not a hang
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_PAGE_CACHE_KIB}")
    cursor.close()


def init_db(engine: Engine) -> None:
    """Bring the schema to the newest migration (an empty database gets every table); never
    drops or retypes a column the pipeline made (`utils/migrations`)."""
    from .migrations import upgrade  # relative: see autonomiq_ledger/_leaves.py

    upgrade(engine, metadata)
    # A table declared above whose revision is not written yet still gets created, with a warning.
    missing = set(metadata.tables) - set(inspect(engine).get_table_names())
    if missing:
        logger.warning("tables without a migration, created directly: %s", ", ".join(sorted(missing)))
        metadata.create_all(engine, tables=[metadata.tables[name] for name in sorted(missing)])


def utc_now() -> datetime:
    """The current time, aware, in UTC (the default clock)."""
    return datetime.now(UTC)
