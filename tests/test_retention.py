"""Retention: old history goes, in batches; open incidents, their flip history and posts stay."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from checks.history import latest_results
from recovery.retention import prune
from utils.db import actions, health_checks, incidents, monitor_state, posts
from utils.state import put_state


def fill(ctx, days_ago: float, count: int, tag: str) -> None:
    """`count` check results and actions, one ended and one open incident with flip rows."""
    at = ctx.now() - timedelta(days=days_ago)
    with ctx.engine.begin() as conn:
        conn.execute(insert(health_checks), [
            {"name": f"check_{i % 3}", "status": "ok", "detail": tag, "duration_ms": 1.0, "data": "{}",
             "trigger": "sweep", "checked_at": at} for i in range(count)])
        conn.execute(insert(actions), [
            {"routine": "retry_transient", "target": f"post:{i}", "reason": "network", "outcome": "waiting",
             "detail": tag, "dry_run": False, "started_at": at, "duration_ms": 1.0} for i in range(count)])
        for status in ("resolved", "open"):
            conn.execute(insert(incidents).values(
                key=f"{tag}:{status}", status=status, severity="critical", title=tag, detail=tag,
                opened_at=at, updated_at=at, resolved_at=at if status == "resolved" else None,
                failure_count=1, success_streak=0, actions_taken="", flapping=False, failure_streak=1))
        conn.execute(insert(posts).values(text=f"{tag} post", scheduled_at=at, status="posted",
                                          attempts=1, updated_at=at, ambiguous_attempt=False))
    for status in ("resolved", "open"):
        flips = {"failing": status == "open", "times": []}
        put_state(ctx.engine, f"incident:flips:{tag}:{status}", flips, at)
    put_state(ctx.engine, f"x_api:{tag}", {"kept": True}, at)  # other state is not history


def count(ctx, table, where=None) -> int:
    query = select(func.count()).select_from(table)
    with ctx.engine.connect() as conn:
        return conn.execute(query if where is None else query.where(where)).scalar()


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgres_url", "mysql_url"])
def test_prune_deletes_old_history_in_batches_and_keeps_open_incidents(env, make_ctx, request, database):
    if database != "sqlite":
        env = {**env, "DATABASE_URL": request.getfixturevalue(database)}
    ctx = make_ctx({**env, "RETENTION_DAYS": "30"})
    fill(ctx, 31, 20, "old")
    fill(ctx, 29, 5, "recent")

    result = prune(ctx, batch=7)  # several batches per table

    assert result.deleted == {"health_checks": 20, "actions": 20, "incidents": 1, "incident_flips": 1}
    assert not result.unfinished
    assert count(ctx, health_checks) == 5 and count(ctx, actions) == 5
    keys = {row for row in _all(ctx, incidents.c.key)}
    assert keys == {"old:open", "recent:resolved", "recent:open"}
    state = set(_all(ctx, monitor_state.c.key))
    assert "incident:flips:old:resolved" not in state
    assert {"incident:flips:old:open", "incident:flips:recent:resolved", "x_api:old"} <= state
    assert count(ctx, posts) == 2  # the ledger is the pipeline's: never pruned
    assert {row["name"] for row in latest_results(ctx.engine)} == {"check_0", "check_1", "check_2"}
    assert prune(ctx).deleted == dict.fromkeys(result.deleted, 0)


def test_prune_stops_at_its_time_bound_and_finishes_on_the_next_run(env, make_ctx):
    ctx = make_ctx(env)
    fill(ctx, 40, 12, "old")
    first = prune(ctx, max_seconds=0, batch=5)
    assert first.unfinished and "more left" in first.summary()
    assert prune(ctx, batch=5).deleted["health_checks"] == 12 and count(ctx, health_checks) == 0


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgres_url", "mysql_url"])
def test_latest_results_is_the_newest_row_of_each_check(env, make_ctx, request, database):
    if database != "sqlite":
        env = {**env, "DATABASE_URL": request.getfixturevalue(database)}
    ctx = make_ctx(env)
    assert latest_results(ctx.engine) == []
    fill(ctx, 2, 6, "older")
    fill(ctx, 1, 6, "newer")
    latest = latest_results(ctx.engine)
    assert [row["name"] for row in latest] == ["check_0", "check_1", "check_2"]
    assert {row["detail"] for row in latest} == {"newer"}
    with ctx.engine.connect() as conn:
        newest = dict(conn.execute(select(health_checks.c.name, func.max(health_checks.c.id))
                                   .group_by(health_checks.c.name)).all())
    assert {row["name"]: row["id"] for row in latest} == newest


def _all(ctx, column) -> list:
    with ctx.engine.connect() as conn:
        return list(conn.execute(select(column)).scalars())
