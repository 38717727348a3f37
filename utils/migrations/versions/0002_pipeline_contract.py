"""The `posts` contract a pipeline writing its own SQL can live with.

Revision ID: 0002
Revises: 0001

- `status`, `attempts` and `ambiguous_attempt` get database-side defaults ('scheduled', 0, false),
  so a pipeline's minimal INSERT works. On PostgreSQL and MariaDB only the default is added
  (`ALTER COLUMN … SET DEFAULT`, never a new type); SQLite cannot add a default without rebuilding
  the table, so it rebuilds only the table the monitor made itself and leaves a pipeline's as is.
- On MariaDB/MySQL `last_error` and `last_error_headers` hold 16 MB (MEDIUMTEXT; TEXT stops at
  64 KB and the pipeline's failure write would fail).
- New optional contract column `media_paths`: a JSON list of file paths the post needs.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

logger = logging.getLogger("utils.migrations")

_DEFAULTS: dict[str, Any] = {"status": sa.text("'scheduled'"), "attempts": sa.text("0"),
             "ambiguous_attempt": sa.false()}
_WIDE = ("last_error", "last_error_headers")
_NARROW_MYSQL = (mysql.TINYTEXT, mysql.TEXT, mysql.VARCHAR, mysql.CHAR)


def upgrade() -> None:
    bind = op.get_bind()
    columns: dict[str, Any] = {c["name"]: c for c in sa.inspect(bind).get_columns("posts")}
    lacking = [name for name in _DEFAULTS if columns[name]["default"] is None]
    media = sa.Column("media_paths", sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb"))
    if bind.dialect.name == "sqlite":
        _sqlite(columns, lacking, media)
        return
    if "media_paths" not in columns:  # a pipeline may have made it already
        op.add_column("posts", media)
    for name in lacking:
        op.alter_column("posts", name, server_default=_DEFAULTS[name],
                        existing_type=columns[name]["type"],
                        existing_nullable=columns[name]["nullable"])
    if bind.dialect.name in ("mysql", "mariadb"):
        for name in _WIDE:
            _widen(name, columns[name])


def _sqlite(columns: dict[str, dict], lacking: list[str], media: sa.Column) -> None:
    # Made by the monitor (0001 or the previous release) iff `ambiguous_attempt` has no default:
    # 0001 adds it to a pipeline's table with one.
    ours = columns["ambiguous_attempt"]["default"] is None
    if not ours:
        if "media_paths" not in columns:
            op.add_column("posts", media)
        for name in lacking:
            logger.warning("posts.%s has no default: SQLite cannot add one to your table without "
                           "rebuilding it; set it in your INSERTs or give it DEFAULT %s",
                           name, _DEFAULTS[name])
        return
    with op.batch_alter_table("posts", recreate="always") as batch:
        for name in lacking:
            batch.alter_column(name, server_default=_DEFAULTS[name])
        if "media_paths" not in columns:
            batch.add_column(media)


def _widen(name: str, column: dict) -> None:
    kind = column["type"]
    if not isinstance(kind, _NARROW_MYSQL):
        return
    logger.info("widening posts.%s from %s to MEDIUMTEXT", name, kind)
    op.alter_column("posts", name, type_=mysql.MEDIUMTEXT(charset=getattr(kind, "charset", None),
                                                            collation=getattr(kind, "collation", None)),
                    existing_type=kind, existing_nullable=column["nullable"],
                    existing_server_default=column["default"])
