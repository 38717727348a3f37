"""Check results in the `health_checks` table: write each round, read the latest per check."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, insert, select

from utils.db import health_checks
from utils.redact import redact

if TYPE_CHECKING:
    from checks.base import CheckResult


def save_results(engine: Engine, results: list[CheckResult], trigger: str) -> None:
    """Append one row per result (detail and data redacted)."""
    rows = [{"name": r.name, "status": r.status.value, "detail": redact(r.detail),
             "duration_ms": r.duration_ms, "data": redact(json.dumps(r.data, default=str)),
             "trigger": trigger, "checked_at": r.checked_at} for r in results]
    if rows:
        with engine.begin() as conn:
            conn.execute(insert(health_checks), rows)


def latest_results(engine: Engine) -> list[dict[str, Any]]:
    """The newest stored result of every check, oldest name first."""
    newest = (select(health_checks.c.name, func.max(health_checks.c.id).label("id"))
              .group_by(health_checks.c.name).subquery())
    query = (select(health_checks).join(newest, health_checks.c.id == newest.c.id)
             .order_by(health_checks.c.name))
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]
