"""The schema of the previous release (round 1), created or adopted.

Revision ID: 0001
Revises: (none)

Frozen: the tables are spelt out here, never taken from `utils.db`, so later edits of the metadata
never change what this revision does. It handles three databases: an empty one (creates every
table), one made by the previous release without a version table (adopts it: creates what is
missing), and one where the pipeline made `posts` itself (adds the columns the monitor needs,
nullable or with a database-side default; never drops or retypes the pipeline's).
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

logger = logging.getLogger("utils.migrations")

# Added to an existing table, a NOT NULL column needs a value for the rows already there.
_ADDED_DEFAULTS: dict[str, Any] = {"status": sa.text("'scheduled'"), "attempts": sa.text("0"),
                   "ambiguous_attempt": sa.false(), "failure_count": sa.text("0"),
                   "success_streak": sa.text("0"), "failure_streak": sa.text("0"),
                   "flapping": sa.false(), "actions_taken": sa.text("''"),
                   "head_hash": sa.text("''"), "dry_run": sa.false(),
                   "duration_ms": sa.text("0")}


def round1_metadata() -> sa.MetaData:
    """The tables exactly as the previous release's `utils/db.py` declared them."""
    m = sa.MetaData()
    c, t, ix, dt = sa.Column, sa.Table, sa.Index, sa.DateTime
    t("posts", m,
      c("id", sa.Integer, primary_key=True, autoincrement=True),
      c("text", sa.Text, nullable=False),
      c("scheduled_at", dt),
      c("status", sa.String(20), nullable=False),
      c("attempts", sa.Integer, nullable=False),
      c("last_error", sa.Text),
      c("failure_class", sa.String(32)),
      c("next_attempt_at", dt),
      c("tweet_id", sa.String(64)),
      c("posted_at", dt),
      c("updated_at", dt),
      c("last_error_headers", sa.Text),
      c("ambiguous_attempt", sa.Boolean, nullable=False),
      ix("ix_posts_status_next_attempt", "status", "next_attempt_at"),
      ix("ix_posts_status_scheduled", "status", "scheduled_at"),
      ix("ix_posts_status_id", "status", "id"))
    t("health_checks", m,
      c("id", sa.Integer, primary_key=True, autoincrement=True),
      c("name", sa.String(64), nullable=False),
      c("status", sa.String(16), nullable=False),
      c("detail", sa.Text, nullable=False),
      c("duration_ms", sa.Float, nullable=False),
      c("data", sa.Text, nullable=False),
      c("trigger", sa.String(32), nullable=False),
      c("checked_at", dt, nullable=False),
      ix("ix_health_checks_name_checked", "name", "checked_at"))
    t("actions", m,
      c("id", sa.Integer, primary_key=True, autoincrement=True),
      c("routine", sa.String(64), nullable=False),
      c("target", sa.String(255), nullable=False),
      c("reason", sa.String(64), nullable=False),
      c("outcome", sa.String(32), nullable=False),
      c("detail", sa.Text, nullable=False),
      c("dry_run", sa.Boolean, nullable=False),
      c("started_at", dt, nullable=False),
      c("duration_ms", sa.Float, nullable=False),
      ix("ix_actions_routine_started", "routine", "started_at"))
    t("incidents", m,
      c("id", sa.Integer, primary_key=True, autoincrement=True),
      c("key", sa.String(255), nullable=False),
      c("status", sa.String(16), nullable=False),
      c("severity", sa.String(16), nullable=False),
      c("title", sa.Text, nullable=False),
      c("detail", sa.Text, nullable=False),
      c("opened_at", dt, nullable=False),
      c("updated_at", dt, nullable=False),
      c("resolved_at", dt),
      c("last_notified_at", dt),
      c("failure_count", sa.Integer, nullable=False),
      c("success_streak", sa.Integer, nullable=False),
      c("actions_taken", sa.Text, nullable=False),
      c("flapping", sa.Boolean, nullable=False),
      c("failure_streak", sa.Integer, nullable=False),
      c("notified_severity", sa.String(16)),
      c("failure_class", sa.String(32)),
      ix("ix_incidents_key_status", "key", "status"))
    t("log_offsets", m,
      c("path", sa.String(512), primary_key=True),
      c("inode", sa.String(64), nullable=False),
      c("offset", sa.BigInteger, nullable=False),
      c("head_hash", sa.String(64), nullable=False),
      c("updated_at", dt, nullable=False))
    t("outbox", m,
      c("id", sa.Integer, primary_key=True, autoincrement=True),
      c("channel", sa.String(64), nullable=False),
      c("title", sa.Text, nullable=False),
      c("body", sa.Text, nullable=False),
      c("notify_type", sa.String(16), nullable=False),
      c("created_at", dt, nullable=False),
      c("attempts", sa.Integer, nullable=False),
      c("next_attempt_at", dt, nullable=False),
      c("delivered_at", dt),
      c("last_error", sa.Text),
      ix("ix_outbox_pending", "delivered_at", "next_attempt_at"))
    t("monitor_state", m,
      c("key", sa.String(255), primary_key=True),
      c("value", sa.Text, nullable=False),
      c("updated_at", dt, nullable=False))
    return m


def upgrade() -> None:
    bind = op.get_bind()
    existing = set(sa.inspect(bind).get_table_names())
    for table in round1_metadata().sorted_tables:
        if table.name not in existing:
            table.create(bind)
        else:
            _complete(bind, table)


def _complete(bind: sa.Connection, table: sa.Table) -> None:
    """Add the columns and indexes an existing table lacks; touch nothing it has."""
    inspector = sa.inspect(bind)
    columns: dict[str, Any] = {c["name"]: c for c in inspector.get_columns(table.name)}
    for column in table.columns:
        if column.name not in columns:
            default = _ADDED_DEFAULTS.get(column.name)
            logger.info("adding column %s.%s", table.name, column.name)
            op.add_column(table.name, sa.Column(column.name, column.type,
                                                nullable=column.nullable or default is None,
                                                server_default=default))
    indexes = {i["name"] for i in inspector.get_indexes(table.name)}
    for index in table.indexes:
        if index.name in indexes:
            continue
        if bind.dialect.name in ("mysql", "mariadb") and any(
                isinstance(columns.get(c.name, {}).get("type"), sa.Text) for c in index.columns):
            # MariaDB cannot index a TEXT column without a prefix length: the pipeline's choice.
            logger.warning("index %s not created: %s has a TEXT column", index.name, table.name)
            continue
        op.create_index(index.name, table.name, [c.name for c in index.columns])
