"""Outbox rows name the incident they are about, so a late alert can say it is already over.

Revision ID: 0003
Revises: 0002

- New nullable column `outbox.incident_key` (rows queued before it stay NULL: delivered unmarked).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    columns = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("outbox")}
    if "incident_key" not in columns:
        op.add_column("outbox", sa.Column("incident_key", sa.String(255), nullable=True))


def downgrade() -> None:
    op.drop_column("outbox", "incident_key")
