"""The posting budget is the account's: a 429 or a spent window stops every post, today's posts
go first, and a sweep never sends more posts than X said remain."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import insert

from autonomiq_ledger.posting import get_post, post, schedule_post
from recovery.post_budget import allowance
from recovery.sweep import run_sweep
from tests.support.xapi_double import BODY_402_CREDITS, BODY_429, BODY_429_USAGE_CAP, TWEETS, Reply
from utils.db import posts


@pytest.fixture
def synced(x_api, clock):
    """The X double on the test's clock, so its resets and ours agree."""
    x_api.clock = lambda: clock().timestamp()
    return x_api


def due_retries(ctx, count: int, *, scheduled_ago: timedelta, label: str) -> list[int]:
    """`count` retry_scheduled rows whose retry time has come (10 minutes ago)."""
    now = ctx.now()
    ids = []
    with ctx.engine.begin() as conn:
        for i in range(count):
            ids.append(conn.execute(insert(posts).values(
                text=f"{label} {i}", scheduled_at=now - scheduled_ago, status="retry_scheduled",
                attempts=1, last_error="503 Service Unavailable\nService Unavailable",
                failure_class="server_error", next_attempt_at=now - timedelta(minutes=10) - scheduled_ago,
                updated_at=now - timedelta(minutes=10), ambiguous_attempt=False)).inserted_primary_key[0])
    return ids


def statuses(ctx, ids: list[int]) -> list[str]:
    return [get_post(ctx.engine, i)["status"] for i in ids]


@pytest.mark.parametrize("reply", [Reply(429, BODY_429), Reply(429, BODY_429_USAGE_CAP),
                                   Reply(402, BODY_402_CREDITS)], ids=["429", "usage_cap", "credits"])
@pytest.mark.slow
def test_one_429_or_cap_stops_every_post_of_the_sweep_and_survives_a_restart(env, make_ctx, synced, clock,
                                                                           reply):
    ctx = make_ctx(env)
    ids = due_retries(ctx, 5, scheduled_ago=timedelta(hours=2), label="retry")
    synced.script(TWEETS, reply)
    run_sweep(ctx)
    assert synced.calls[TWEETS] == 1  # no second POST after the first said no
    assert statuses(ctx, ids[1:]) == ["retry_scheduled"] * 4
    assert all(get_post(ctx.engine, i)["attempts"] == 1 for i in ids[1:])
    ctx.close()

    restarted = make_ctx(env)  # the hold is stored, not remembered in memory
    assert not allowance(restarted).open
    run_sweep(restarted)
    assert synced.calls[TWEETS] == 1
    clock.advance(hours=25)  # past the 15-minute hold, the usage-cap probe and any backoff
    run_sweep(restarted)
    assert synced.calls[TWEETS] == 6 and statuses(restarted, ids) == ["posted"] * 5


def test_a_spent_24_hour_window_holds_posting_until_its_reset(env, make_ctx, synced, clock):
    ctx = make_ctx(env)
    synced.post_budget.limit = 1
    first = schedule_post(ctx.engine, "the pipeline's own post", ctx.now())
    assert post(ctx, first).status == "posted"  # X answers x-user-limit-24hour-remaining: 0
    ids = due_retries(ctx, 3, scheduled_ago=timedelta(hours=1), label="retry")
    held = allowance(ctx)
    assert held.posts == 0 and held.held_until == ctx.now() + timedelta(days=1)
    run_sweep(ctx)
    clock.advance(hours=23, minutes=59)
    run_sweep(ctx)
    assert synced.calls[TWEETS] == 1 and statuses(ctx, ids) == ["retry_scheduled"] * 3
    clock.advance(minutes=2)
    run_sweep(ctx)  # a new window of one post: exactly one goes, the others wait for the next reset
    assert synced.calls[TWEETS] == 2
    assert sorted(statuses(ctx, ids)) == ["posted", "retry_scheduled", "retry_scheduled"]


@pytest.mark.slow
@pytest.mark.parametrize("database", ["sqlite", "postgres_url", "mysql_url"])
def test_todays_posts_go_before_old_retries_and_never_past_the_remaining_budget(
        env, make_ctx, synced, request, database):
    if database != "sqlite":
        env = {**env, "DATABASE_URL": request.getfixturevalue(database)}
    ctx = make_ctx(env)
    synced.post_budget.limit = 3
    first = schedule_post(ctx.engine, "the pipeline's own post", ctx.now())
    assert post(ctx, first).status == "posted"  # X says: 2 remain
    old = due_retries(ctx, 4, scheduled_ago=timedelta(days=3), label="old retry")
    today = due_retries(ctx, 2, scheduled_ago=timedelta(hours=3), label="today's retry")
    run_sweep(ctx)
    assert synced.calls[TWEETS] == 3  # 1 + the 2 that remained: no 429 was ever provoked
    assert statuses(ctx, today) == ["posted", "posted"]
    assert statuses(ctx, old) == ["retry_scheduled"] * 4
    assert allowance(ctx).posts == 0


def test_status_and_metrics_show_the_hold_and_the_waiting_retries(env, make_ctx, synced):
    from daemon.metrics import metrics_renderer
    from daemon.scheduling import JobStats
    from daemon.status_report import gather_status

    ctx = make_ctx(env)
    due_retries(ctx, 3, scheduled_ago=timedelta(hours=2), label="retry")
    synced.script(TWEETS, Reply(429, BODY_429))
    run_sweep(ctx)
    report = gather_status(ctx)
    assert report["posting"]["posts"] == 0
    assert report["posting"]["held_until"] == (ctx.now() + timedelta(minutes=15)).isoformat()
    page = metrics_renderer(lambda: report, JobStats())().decode()
    held = [line for line in page.splitlines() if line.startswith("autonomiq_posting_held_until")]
    assert [float(line.split()[-1]) for line in held] == [(ctx.now() + timedelta(minutes=15)).timestamp()]
    assert "autonomiq_posting_allowed_posts 0.0" in page
    assert "autonomiq_posts_waiting_retry 3.0" in page
