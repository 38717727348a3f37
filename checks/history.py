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
    """The newest stored result of every check, oldest name first.

    Index probes only (`ix_health_checks_name_id`), so the cost does not grow with the history:
    a recursive skip scan finds the distinct names (each next one is the smallest above the
    last), then the highest id of each; one round trip.
    """
    step = health_checks.alias("step")
    names = select(func.min(health_checks.c.name).label("name")).cte("names", recursive=True)
    names = names.union_all(
        select(select(func.min(step.c.name)).where(step.c.name > names.c.name).scalar_subquery())
        .where(names.c.name.is_not(None)))
    newest = health_checks.alias("newest")
    latest_id = select(func.max(newest.c.id)).where(newest.c.name == names.c.name).scalar_subquery()
    query = (select(health_checks).select_from(names).join(health_checks, health_checks.c.id == latest_id)
             .order_by(health_checks.c.name))
    with engine.connect() as conn:
        return [dict(row._mapping) for row in conn.execute(query)]
