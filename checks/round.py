"""One round of checks as sweeps and health rounds run it: run, re-check the children of a parent
that passes again, store every result, and fold dependent failures into their cause."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

from checks.base import CheckFn, CheckResult, run_checks
from checks.dependencies import children_to_recheck, fold
from checks.history import latest_results, save_results
from utils.logging_setup import OutageLog

if TYPE_CHECKING:
    from utils.context import MonitorContext

logger = logging.getLogger(__name__)
_storing = OutageLog(logger, "storing check results")


@dataclass(frozen=True)
class Round:
    """`results` as run and stored; `shown` as incidents and fixers see them (dependent failures
    folded into their parent); `folded` maps each folded child to its parent."""

    results: list[CheckResult]
    shown: list[CheckResult]
    folded: dict[str, str]


def run_round(selected: Mapping[str, CheckFn], registered: Mapping[str, CheckFn],
              ctx: MonitorContext, trigger: str) -> Round:
    """Run `selected` at once (bounded by CHECK_TIMEOUT_SECONDS), then any registered child whose
    parent passes again while its stored result was failing; store all; fold dependencies."""
    timeout = ctx.settings.check_timeout_seconds
    results = run_checks(selected, ctx, timeout)
    recheck = children_to_recheck(results, _stored_failing(ctx), ctx.settings) & set(registered)
    if recheck:
        logger.info("re-checking %s at once: what it depends on passes again", ", ".join(sorted(recheck)))
        results += run_checks({name: registered[name] for name in sorted(recheck)}, ctx, timeout)
    try:
        save_results(ctx.engine, results, trigger)
        _storing.worked()
    except SQLAlchemyError as exc:  # the database check reports a broken database
        _storing.failed(exc)
    shown, folded = fold(results, ctx.settings)
    return Round(results, shown, folded)


def _stored_failing(ctx: MonitorContext) -> list[str]:
    try:
        return [row["name"] for row in latest_results(ctx.engine)
                if row["status"] in ("warning", "critical")]
    except SQLAlchemyError:  # nothing stored can be read: nothing to re-check
        return []
