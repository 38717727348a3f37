"""Indexes for the queries a sweep and `status` run on the monitor's own tables.

Revision ID: 0004
Revises: 0003

- `health_checks (name, id)`: the latest result of each check is one index probe per check,
  not a grouping of the whole history (checks/history.py).
- `incidents (status, opened_at)`: `WHERE status = 'open' ORDER BY opened_at` without a scan
  (the `(key, status)` index cannot serve it).
- `actions (started_at, id)`: `status` lists the last actions, newest first.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

INDEXES = {
    "ix_health_checks_name_id": ("health_checks", ["name", "id"]),
    "ix_incidents_status_opened": ("incidents", ["status", "opened_at"]),
    "ix_actions_started_id": ("actions", ["started_at", "id"]),
}


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for name, (table, columns) in INDEXES.items():
        if name not in {index["name"] for index in inspector.get_indexes(table)}:
            op.create_index(name, table, columns)


def downgrade() -> None:
    for name, (table, _columns) in INDEXES.items():
        op.drop_index(name, table_name=table)
