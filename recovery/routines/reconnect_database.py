"""`database`: drop the pooled connections and reconnect; the `database` check proves it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from recovery.base import FixOutcome, Routine, Target, requeue

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "reconnect_database"


def plan(ctx: MonitorContext, target: Target) -> str:
    """What fix() would do."""
    return "dispose of the database connection pool and reconnect"


def fix(ctx: MonitorContext, target: Target) -> FixOutcome:
    """Dispose of the pool; the next use opens fresh connections."""
    ctx.dispose_engine()
    return FixOutcome("fixed", "disposed of the connection pool" + requeue(ctx, target))


ROUTINE = Routine(NAME, fix, plan, verify_check="database")
