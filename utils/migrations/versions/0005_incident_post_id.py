"""Incidents about a post name its ledger row, so a sweep finds the few whose post moved on.

Revision ID: 0005
Revises: 0004

- New nullable column `incidents.post_id` and the index `(status, post_id)`: a sweep joins the
  open incidents to `posts` in the database instead of loading every open incident of a bad day.
- Open incidents of posts (`failure:<class>:post:<id>`) get their id; ended ones keep NULL
  (nothing reads it for them, and retention deletes them).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _post_id(key: str) -> int | None:
    head, _, tail = key.rpartition(":post:")
    return int(tail) if head.startswith("failure:") and tail.isdigit() else None


def upgrade() -> None:
    bind = op.get_bind()
    inspector = sa.inspect(bind)
    if "post_id" not in {c["name"] for c in inspector.get_columns("incidents")}:
        op.add_column("incidents", sa.Column("post_id", sa.Integer(), nullable=True))
    if "ix_incidents_status_post" not in {i["name"] for i in inspector.get_indexes("incidents")}:
        op.create_index("ix_incidents_status_post", "incidents", ["status", "post_id"])
    incidents = sa.table("incidents", sa.column("id", sa.Integer), sa.column("key", sa.String),
                         sa.column("status", sa.String), sa.column("post_id", sa.Integer))
    rows = bind.execute(sa.select(incidents.c.id, incidents.c.key).where(
        incidents.c.status == "open", incidents.c.post_id.is_(None))).all()
    found = [{"row_id": row_id, "post": _post_id(str(key))} for row_id, key in rows
             if _post_id(str(key)) is not None]
    if found:
        bind.execute(incidents.update().where(incidents.c.id == sa.bindparam("row_id"))
                     .values(post_id=sa.bindparam("post")), found)


def downgrade() -> None:
    op.drop_index("ix_incidents_status_post", table_name="incidents")
    op.drop_column("incidents", "post_id")
