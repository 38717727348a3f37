"""`database`: the monitor can connect and run a trivial query."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from checks.base import CheckFailed, Passed
from utils.failure_classes import FailureClass

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "database"


def driver_reason(exc: BaseException) -> str:
    """The driver's own first line of an error (SQLAlchemy wraps it in `orig`)."""
    inner = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(inner).splitlines() if line.strip()]
    return lines[0] if lines else type(inner).__name__


def check(ctx: MonitorContext) -> Passed:
    """Connect and `SELECT 1`; critical with the driver's reason when that fails."""
    from sqlalchemy import text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    url = make_url(ctx.settings.database_url)
    where = url.render_as_string(hide_password=True)
    started = time.perf_counter()
    try:
        with ctx.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        raise CheckFailed(f"{url.get_backend_name()} unreachable: {driver_reason(exc)}",
                          failure_class=FailureClass.DATABASE, data={"url": where}) from exc
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    return Passed(f"{url.get_backend_name()} answered in {latency_ms:g} ms",
                  {"backend": url.get_backend_name(), "url": where, "latency_ms": latency_ms})
