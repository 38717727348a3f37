"""The circuit breaker: it counts only runs that acted, and a tripped breaker (or a routine that
cannot run) is recorded once per window, not on every sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from recovery.sweep import run_sweep
from utils.db import actions


def recorded(ctx: Any) -> list[str]:
    with ctx.engine.connect() as conn:
        return list(conn.execute(select(actions.c.outcome).where(actions.c.routine == "restart_scheduler")
                                 .order_by(actions.c.id)).scalars())


def failure_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "autonomiq.post_failures" and "restart_scheduler" in r.getMessage()]


def test_a_tripped_breaker_is_recorded_once_per_window(env: dict[str, str], make_ctx: Any, clock: Any,
                                                       tmp_path: Path, caplog: pytest.LogCaptureFixture
                                                       ) -> None:
    environ = {**env, "SCHEDULER_HEARTBEAT_FILE": str(tmp_path / "missing"),
               "SCHEDULER_RESTART_COMMAND": "false", "CIRCUIT_BREAKER_MAX_RUNS": "2"}
    ctx = make_ctx(environ)
    seen = []
    for _ in range(6):
        seen.append(run_sweep(ctx).actions[0])
        clock.advance(minutes=1)
    assert [a.outcome for a in seen] == ["failed", "failed", "blocked", "blocked", "blocked", "blocked"]
    assert "already ran 2 time(s)" in seen[2].detail and "without fixing it" in seen[2].detail
    assert recorded(ctx) == ["failed", "failed", "blocked"]  # not one "blocked" row per sweep
    assert len(failure_lines(caplog)) == 3
    clock.advance(hours=1)
    assert run_sweep(ctx).actions[0].outcome == "failed"  # the window passed: it runs again


def test_a_restart_that_is_not_configured_never_trips_the_breaker(
        env: dict[str, str], make_ctx: Any, clock: Any, tmp_path: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    environ = {**env, "SCHEDULER_HEARTBEAT_FILE": str(tmp_path / "missing"), "CIRCUIT_BREAKER_MAX_RUNS": "2"}
    ctx = make_ctx(environ)
    seen = []
    for _ in range(5):
        seen.append(run_sweep(ctx).actions[0])
        clock.advance(minutes=1)
    assert {a.outcome for a in seen} == {"not_configured"}  # never "stopped to avoid a loop"
    assert all(a.needs_human and "no restart is configured" in a.detail for a in seen)
    assert recorded(ctx) == ["not_configured"] and len(failure_lines(caplog)) == 1
