"""The posting budget forecast (`daemon/budget_forecast.py`): what X reported, the tier's
allowance when nothing was reported, the posts due before the reset, on SQLite, PostgreSQL and
MariaDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from autonomiq_ledger.posting import post, schedule_post
from daemon.budget_forecast import Pending, Window, budget_window, fits, forecast, pending_posts
from daemon.slots import assess
from tests.support.databases import DATABASES, on_database
from tests.support.xapi_double import TWEETS, Reply
from utils.db import posts
from utils.state import put_state

NOW = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)


@pytest.fixture(params=DATABASES)
def ctx(request: Any, env: dict[str, str], make_ctx: Any, clock: Any) -> Any:
    """A context on each real database, its clock at NOW."""
    clock.current = NOW
    return make_ctx({**on_database(request, env), "POSTING_TIMES": "09:00,15:00", "MONITOR_TIMEZONE": "UTC"})


def add_rows(ctx: Any, *rows: dict[str, Any]) -> None:
    with ctx.engine.begin() as conn:
        conn.execute(insert(posts), [{"text": "t", "attempts": 1, "updated_at": NOW, "scheduled_at": None,
                                      "next_attempt_at": None, "posted_at": None, **row} for row in rows])


@pytest.mark.slow
def test_the_tightest_window_x_reported_is_the_budget(ctx: Any) -> None:
    reset = NOW + timedelta(hours=5)
    put_state(ctx.engine, "x_api:post", {
        "user_24h": {"limit": 17, "remaining": 2, "reset_at": reset.isoformat()},
        "app_24h": {"limit": 17, "remaining": 9, "reset_at": (reset + timedelta(hours=1)).isoformat()}}, NOW)
    window = budget_window(ctx, NOW)
    assert (window.remaining, window.limit, window.resets_at, window.source) == (2, 17, reset, "user_24h")


@pytest.mark.slow
def test_a_window_whose_reset_passed_is_refilled_less_the_posts_made_since(ctx: Any) -> None:
    reset = NOW - timedelta(hours=2)
    put_state(ctx.engine, "x_api:post", {"user_24h": {"limit": 17, "remaining": 0,
                                                      "reset_at": reset.isoformat()}}, NOW)
    add_rows(ctx, {"status": "posted", "posted_at": NOW - timedelta(hours=1)},
             {"status": "posted", "posted_at": NOW - timedelta(hours=3)})  # before the reset
    window = budget_window(ctx, NOW)
    assert (window.remaining, window.resets_at) == (16, None)


def test_without_any_header_the_free_tier_allowance_is_counted_against_the_ledger(ctx: Any) -> None:
    add_rows(ctx, {"status": "posted", "posted_at": NOW - timedelta(hours=20)},
             {"status": "posted", "posted_at": NOW - timedelta(hours=2)},
             {"status": "posted", "posted_at": NOW - timedelta(hours=30)})  # outside the 24 h
    window = budget_window(ctx, NOW)
    assert (window.remaining, window.limit) == (15, 17)
    assert window.resets_at == NOW + timedelta(hours=4)  # the oldest post leaves the window then
    assert "tier free" in window.source


def test_pay_per_use_without_headers_is_unknown_not_guessed(env: dict[str, str], make_ctx: Any,
                                                            clock: Any) -> None:
    clock.current = NOW
    ctx = make_ctx({**env, "TWITTER_API_TIER": "pay_per_use", "MONITOR_TIMEZONE": "UTC"})
    budget = assess(ctx, NOW).forecast.to_json()
    assert budget == {"posts_remaining": None, "resets_at": None, "posts_needed": 2, "enough": None}


def test_posts_needed_counts_retries_overdue_rows_and_slots_before_the_reset(ctx: Any) -> None:
    reset = NOW + timedelta(hours=6)  # 12:00: the 09:00 slot is before it, 15:00 after
    put_state(ctx.engine, "x_api:post", {"user_24h": {"limit": 17, "remaining": 2,
                                                      "reset_at": reset.isoformat()}}, NOW)
    add_rows(ctx, {"status": "retry_scheduled", "next_attempt_at": NOW + timedelta(minutes=30)},
             {"status": "failed"}, {"status": "scheduled", "scheduled_at": NOW - timedelta(hours=1)},
             {"status": "retry_scheduled", "next_attempt_at": reset + timedelta(hours=1)})  # after it
    assert pending_posts(ctx.engine, NOW, reset) == Pending(4, 3)  # one due after the reset
    found = assess(ctx, NOW)
    assert found.forecast.to_json() == {"posts_remaining": 2, "resets_at": reset.isoformat(),
                                        "posts_needed": 4, "enough": False}
    nine, three = found.slots[:2]
    assert [r.text for r in nine.reasons if "budget" in r.text] == ["X API budget short"]
    assert not [r for r in three.reasons if "budget" in r.text]  # a fresh window by then


def test_a_spent_window_after_real_posts_holds_every_slot_until_the_reset(ctx: Any, x_api: Any) -> None:
    reset = int((NOW + timedelta(hours=5)).timestamp())  # 11:00: after the 09:00 slot
    x_api.script(TWEETS, Reply(201, {"data": {"id": "1", "text": "t"}}, headers={
        "x-user-limit-24hour-limit": "17", "x-user-limit-24hour-remaining": "0",
        "x-user-limit-24hour-reset": str(reset)}))
    post_id = schedule_post(ctx.engine, "the day's last", NOW, now=NOW)
    assert post(ctx, post_id).status == "posted"  # through tweepy; the headers are stored
    found = assess(ctx, NOW)
    assert found.forecast.window.remaining == 0
    assert found.forecast.window.resets_at == datetime.fromtimestamp(reset, UTC)
    nine, three = found.slots[:2]
    assert "X API budget short" in [r.text for r in nine.reasons]
    assert "X API budget short" not in [r.text for r in three.reasons]


def test_fits_puts_pending_posts_first_and_starts_afresh_after_the_reset() -> None:
    window = Window(2, 3, NOW + timedelta(hours=4), "user_24h")
    slots = [(NOW + timedelta(hours=h), 1) for h in (1, 2, 5, 6, 7, 8)]
    assert fits(window, 1, slots) == [True, False, True, True, True, False]
    assert fits(Window(None, None, None, "unknown"), 9, slots) == [True] * 6
    assert forecast(window, Pending(1, 1), slots, NOW).posts_needed == 3
