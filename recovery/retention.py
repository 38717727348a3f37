"""Retention: the monitor's own history is deleted after RETENTION_DAYS, in small batches.

Check results, recovery actions, ended incidents (`resolved`, `closed`) and the flip history of
keys with no open incident (`incident:flips:` rows of `monitor_state`). Open incidents and the
post ledger are never touched. Each batch is its own short transaction, found through an index,
so a daily job never holds a lock a sweep or the pipeline waits on for long.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from datetime import time as clock_time
from typing import TYPE_CHECKING

from sqlalchemy import Engine, delete, select

from utils.db import actions, health_checks, incidents, instant, monitor_state
from utils.state import prefix_range

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from utils.context import MonitorContext

logger = logging.getLogger(__name__)

BATCH = 1000                       # rows per transaction
DAILY_AT = clock_time(3, 17)       # local time of the daemon's daily run: away from posts and sweeps
ENDED = ("resolved", "closed")
FLIPS_PREFIX = "incident:flips:"


@dataclass
class Pruned:
    """Rows deleted per table by one run, and whether it stopped at its time bound."""

    deleted: dict[str, int] = field(default_factory=dict)
    unfinished: bool = False

    def summary(self) -> str:
        """One line for the job log."""
        done = ", ".join(f"{table} {count}" for table, count in self.deleted.items() if count)
        return (f"pruned {done or 'nothing'} older than the retention age"
                + ("; more left for the next run (time bound)" if self.unfinished else ""))


def prune(ctx: MonitorContext, *, max_seconds: float = 60.0, batch: int = BATCH) -> Pruned:
    """Delete what is older than RETENTION_DAYS, `batch` rows per transaction, for at most
    `max_seconds`."""
    cutoff = ctx.now() - timedelta(days=ctx.settings.retention_days)
    deadline = time.monotonic() + max_seconds
    result = Pruned()
    engine = ctx.engine
    jobs: dict[str, Callable[[], int]] = {
        "health_checks": lambda: _batch(engine, health_checks.c.id,
                                        instant(health_checks.c.checked_at) < instant(cutoff), batch),
        "actions": lambda: _batch(engine, actions.c.id, instant(actions.c.started_at) < instant(cutoff),
                                  batch),
        "incidents": lambda: _batch(engine, incidents.c.id, incidents.c.status.in_(ENDED)
                                    & (instant(incidents.c.updated_at) < instant(cutoff)), batch),
        "incident_flips": lambda: _flips_batch(engine, cutoff, batch),
    }
    for table, job in jobs.items():
        result.deleted[table] = 0
        while True:
            if time.monotonic() > deadline:
                result.unfinished = True
                return result
            count = job()
            result.deleted[table] += count
            if count < batch:
                break
    logger.info("retention: %s", result.summary())
    return result


def _batch(engine: Engine, key: ColumnElement[int], old: ColumnElement[bool], batch: int) -> int:
    """Delete up to `batch` old rows, oldest ids first; the number deleted."""
    with engine.begin() as conn:
        ids = list(conn.execute(select(key).where(old).order_by(key).limit(batch)).scalars())
        if ids:
            conn.execute(delete(key.table).where(key.in_(ids)))
    return len(ids)


def _flips_batch(engine: Engine, cutoff: datetime, batch: int) -> int:
    """Delete up to `batch` old flip histories whose key has no open incident."""
    key = monitor_state.c.key
    with engine.begin() as conn:
        found: list[str] = list(conn.execute(select(key).where(
            prefix_range(FLIPS_PREFIX),
            instant(monitor_state.c.updated_at) < instant(cutoff)).order_by(key).limit(batch)).scalars())
        if not found:
            return 0
        names = {k[len(FLIPS_PREFIX):]: k for k in found}
        still_open: set[str] = set(conn.execute(select(incidents.c.key).where(
            incidents.c.key.in_(list(names)), incidents.c.status == "open")).scalars())
        gone = [k for name, k in names.items() if name not in still_open]
        if gone:
            conn.execute(delete(monitor_state).where(key.in_(gone)))
    return len(gone)  # keys kept for open incidents end the run: the next one goes on
