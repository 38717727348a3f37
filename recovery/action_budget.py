"""One global budget for automatic actions: past ACTION_BUDGET_PER_HOUR the monitor enters safe
mode and stops acting until a person runs `autonomous_monitor.py resume`.

Each routine's own circuit breaker bounds one fix on one target; this bounds them all together,
so a bad day of many different fixes cannot turn into a storm. Counted are the actions that acted
on the world — a fix that ran, a post sent again — since the later of an hour ago and the last
`resume`; bookkeeping on a row (scheduling its retry, releasing it, holding it, giving it up) and
blocked, dry-run, waiting or skipped runs are not, so one failed post costs one unit per attempt.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from utils.db import actions
from utils.logging_setup import OutageLog
from utils.safe_mode import enter_safe_mode, load_safe_mode

if TYPE_CHECKING:
    from utils.context import MonitorContext

logger = logging.getLogger(__name__)
_reading = OutageLog(logger, "reading the action budget")

SAFE_MODE = "safe_mode"  # the outcome of a routine that safe mode kept from running
RESUME_HINT = "run `python autonomous_monitor.py resume` once the cause is dealt with"
BOOKKEEPING = ("retry_scheduled", "released", "held", "gave_up")  # a row moved, nothing else done


@dataclass(frozen=True)
class Held:
    """Why automatic actions may not run now; `entered` is True for the call that spent the budget."""

    detail: str
    entered: bool = False


def hold(ctx: MonitorContext, not_counted: tuple[str, ...]) -> Held | None:
    """None when an automatic action may run now; otherwise why not (entering safe mode when the
    hour's budget has just been spent). A database that cannot be read holds nothing back."""
    budget, now = ctx.settings.action_budget_per_hour, ctx.now()
    try:
        state = load_safe_mode(ctx.engine)
        ran = 0 if state.active else _actions_since(
            ctx, max(now - timedelta(hours=1), state.resumed_at or now - timedelta(hours=1)),
            (*not_counted, *BOOKKEEPING))
        reason = f"{ran} automatic actions in the last hour reached ACTION_BUDGET_PER_HOUR={budget}"
        if not state.active and ran >= budget:
            enter_safe_mode(ctx.engine, reason, now)
        _reading.worked()
    except SQLAlchemyError as exc:  # the database check and reconnect_database deal with it
        _reading.failed(exc)
        return None
    if state.active:
        return Held(f"safe mode since {state.since:%Y-%m-%d %H:%M} UTC ({state.reason}); "
                    f"automatic fixes and post retries are stopped: {RESUME_HINT}")
    if ran < budget:
        return None
    logger.error("entering safe mode: %s", reason)
    return Held(f"entered safe mode: {reason}; checks, recording and alerts go on, automatic fixes "
                f"and post retries are stopped: {RESUME_HINT}", entered=True)


def _actions_since(ctx: MonitorContext, since: object, not_counted: tuple[str, ...]) -> int:
    query = (select(func.count()).select_from(actions)
             .where(actions.c.started_at >= since, actions.c.dry_run.is_(False),
                    actions.c.outcome.not_in(not_counted)))
    with ctx.engine.connect() as conn:
        return int(conn.execute(query).scalar() or 0)
