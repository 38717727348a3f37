"""One conformance table for every registered recovery routine: DRY_RUN changes nothing, an open
circuit breaker stops it, and a hostile target (a row that vanished, a secret in the reason, a
NULL-filled row) is answered with a recorded outcome — never an exception past the guard, never a
secret in what is stored. A new routine is covered by adding it to `recovery.playbook`.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, insert, select

from autonomiq_ledger.posting import get_post, schedule_post
from recovery.base import PostTarget, Target, run_routine
from recovery.playbook import ROUTINES
from tests.conftest import FAKE_SECRETS, assert_no_secret
from utils.db import actions, posts

NAMES = sorted(ROUTINES)
SECRET = FAKE_SECRETS["TWITTER_ACCESS_TOKEN_SECRET"]


def _post_target(ctx, name: str) -> Target:
    """A failed row the routine may act on; check-level routines get a check target."""
    post_id = schedule_post(ctx.engine, f"conformance {name}", ctx.now() - timedelta(hours=2))
    with ctx.engine.begin() as conn:
        conn.execute(posts.update().where(posts.c.id == post_id).values(
            status="failed", attempts=1, last_error="503 Service Unavailable", updated_at=ctx.now()))
    return Target.for_row(get_post(ctx.engine, post_id), "server_error")


def _ledger_snapshot(ctx) -> list[tuple]:
    with ctx.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(posts).order_by(posts.c.id))]


def _counted(ctx, name: str) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(actions)
                                .where(actions.c.routine == name)).scalar() or 0)


@pytest.mark.parametrize("name", NAMES)
def test_dry_run_plans_and_changes_nothing(name, env, make_ctx, x_api):
    ctx = make_ctx({**env, "DRY_RUN": "true"})
    target = _post_target(ctx, name)
    before = _ledger_snapshot(ctx)
    record = run_routine(ctx, ROUTINES[name], target)
    assert record.outcome == "dry_run" and record.detail.startswith("would ")
    assert _ledger_snapshot(ctx) == before
    assert x_api.calls.get("POST /2/tweets", 0) == 0 and len(x_api.tweets) == 0


@pytest.mark.parametrize("name", NAMES)
def test_an_open_breaker_blocks_the_routine_and_asks_for_a_human(name, env, make_ctx, x_api):
    ctx = make_ctx({**env, "CIRCUIT_BREAKER_MAX_RUNS": "2", "MAX_POST_ATTEMPTS": "2"})
    target = _post_target(ctx, name)
    with ctx.engine.begin() as conn:
        for _ in range(2):
            conn.execute(insert(actions).values(
                routine=name, target=target.name, reason="server_error", outcome="failed", detail="x",
                dry_run=False, started_at=ctx.now() - timedelta(minutes=1), duration_ms=1.0))
    before = _ledger_snapshot(ctx)
    record = run_routine(ctx, ROUTINES[name], target)
    assert record.outcome == "blocked" and record.needs_human
    assert _ledger_snapshot(ctx) == before and len(x_api.tweets) == 0


@pytest.mark.parametrize("name", NAMES)
def test_a_hostile_target_gets_a_recorded_outcome_and_no_secret(name, env, make_ctx, x_api):
    ctx = make_ctx(env)
    vanished = PostTarget("post:4040", "server_error", f"token {SECRET} rejected <script>", 4040,
                      {"id": 4040, "text": None, "status": None, "attempts": None,
                       "scheduled_at": None, "updated_at": None, "last_error": None})
    record = run_routine(ctx, ROUTINES[name], vanished)
    assert record.outcome and "raised" not in record.detail, record.detail
    assert _counted(ctx, name) == 1
    with ctx.engine.connect() as conn:
        stored = " ".join(str(v) for row in conn.execute(select(actions)) for v in row)
    assert_no_secret(stored, record.detail)
    assert len(x_api.tweets) == 0
