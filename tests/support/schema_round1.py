"""The schema the previous release (round 1) created, frozen: `git show 61ad859:utils/db.py`.

Used to build a database "as the previous release left it" for the migration tests; never edit.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    DateTime,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
)


class UTCDateTime(TypeDecorator):
    """The previous release's type: naive UTC in the column."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        return None if value is None else value.astimezone(UTC).replace(tzinfo=None)


metadata = MetaData()

# The post ledger: a contract with the pipeline (column names are documented in the README).
POST_STATUSES = ("scheduled", "posting", "posted", "failed", "retry_scheduled", "gave_up", "skipped")
posts = Table(
    "posts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("text", Text, nullable=False),
    Column("scheduled_at", UTCDateTime),
    Column("status", String(20), nullable=False, default="scheduled"),
    Column("attempts", Integer, nullable=False, default=0),
    Column("last_error", Text),
    Column("failure_class", String(32)),
    Column("next_attempt_at", UTCDateTime),
    Column("tweet_id", String(64)),
    Column("posted_at", UTCDateTime),
    Column("updated_at", UTCDateTime),
    # Beyond the contract: what recovery needs to stay exactly-once and to honour resets.
    Column("last_error_headers", Text),       # JSON of the x-rate-limit-* / 24-hour headers seen
    Column("ambiguous_attempt", Boolean, nullable=False, default=False),
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
    Index("ix_incidents_key_status", "key", "status"),
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
    Index("ix_outbox_pending", "delivered_at", "next_attempt_at"),
)

# Small JSON values that must survive restarts: API budgets, silences, backoff windows …
monitor_state = Table(
    "monitor_state", metadata,
    Column("key", String(255), primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
