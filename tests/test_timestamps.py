"""Timestamps as pipelines write them (utils/timestamps.py), through the sweep and the claim.

SQLite rows are written the way a pipeline writes them: plain `sqlite3`, whatever text or number
it chose. The sweep's due / missed / stuck queries must compare the instants those name.
"""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from sqlalchemy import select, text

from autonomiq_ledger.posting import get_post, post
from recovery.sweep import run_sweep
from tests.support.xapi_double import TWEETS
from utils.db import instant, posts
from utils.timestamps import parse_instant

NINE = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@pytest.mark.parametrize("stored", [
    "2026-11-30 09:00:00", "2026-11-30 09:00:00.000000", "2026-11-30T09:00:00", "2026-11-30T09:00:00Z",
    "2026-11-30T09:00:00+00:00", "2026-11-30T11:00:00+02:00", "2026-11-30T04:00:00-05:00",
    "2026-11-30 11:00:00 +02:00", int(NINE.timestamp()), float(NINE.timestamp()),
    str(int(NINE.timestamp())), datetime(2026, 11, 30, 9, 0), NINE.astimezone(timezone(timedelta(hours=2)))])
def test_every_form_a_pipeline_writes_names_its_instant(stored: object) -> None:
    assert parse_instant(stored) == NINE


@pytest.mark.parametrize("stored", ["garbage", "", "2026-13-01 00:00:00", "30/11/2026 09:00", 10**20])
def test_a_value_naming_no_instant_is_refused(stored: object) -> None:
    with pytest.raises(ValueError):
        parse_instant(stored)


def _pipeline_sqlite(env: dict[str, str]) -> sqlite3.Connection:
    return sqlite3.connect(env["DATABASE_URL"].removeprefix("sqlite:///"), isolation_level=None)


def _write(env: dict[str, str], sql: str, *params: object) -> None:
    with _pipeline_sqlite(env) as conn:
        conn.execute(sql, params)


@pytest.mark.parametrize("stored", ["2026-11-30T09:00:00Z", "2026-11-30T11:00:00+02:00",
                                    int(NINE.timestamp()), NINE.timestamp() + 0.25])
def test_sqlite_comparisons_are_between_instants(env: dict[str, str], make_ctx: Any, stored: object) -> None:
    ctx = make_ctx(env)
    ctx.engine  # noqa: B018 - creates the schema
    _write(env, "INSERT INTO posts (text, scheduled_at) VALUES ('p', ?)", stored)
    with ctx.engine.connect() as conn:
        def before(when: datetime) -> bool:
            return conn.execute(select(posts.c.id).where(
                instant(posts.c.scheduled_at) <= instant(when))).first() is not None
        read = conn.execute(select(posts.c.scheduled_at)).scalar()
        # As stored values, 'T' sorts after ' ' and a number sorts before any text: both fail here.
        assert before(NINE + timedelta(seconds=1)) and not before(NINE - timedelta(seconds=1))
    assert abs(read - NINE) < timedelta(seconds=1)


def test_row_written_with_plus_two_hours_is_missed_at_the_right_instant(env, make_ctx, x_api, clock):
    ctx = make_ctx(env)
    ctx.engine  # noqa: B018
    grace = timedelta(minutes=ctx.settings.missed_post_grace_minutes)
    due = clock.current.replace(microsecond=0)  # 07:00Z, written as 09:00 at +02:00
    _write(env, "INSERT INTO posts (text, scheduled_at) VALUES ('offset post', ?)",
           due.astimezone(timezone(timedelta(hours=2))).isoformat())
    clock.current = due + grace - timedelta(minutes=1)
    assert run_sweep(ctx).detected == [] and x_api.calls[TWEETS] == 0
    clock.current = due + grace + timedelta(minutes=1)  # with the offset dropped: 2 h too early
    report = run_sweep(ctx)
    assert [(d.failure_class, d.post_id) for d in report.detected] == [("scheduler", 1)]
    assert get_post(ctx.engine, 1)["status"] == "posted"
    assert [t["text"] for t in x_api.tweets] == ["offset post"]


def test_posting_row_written_with_z_three_hours_ago_is_released(env, make_ctx, x_api, clock):
    ctx = make_ctx(env)
    ctx.engine  # noqa: B018
    # Same day, so as text 'YYYY-MM-DDT…' sorts after the grace 'YYYY-MM-DD …' and looks fresh.
    clock.current = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
    _write(env, "INSERT INTO posts (text, status, attempts, updated_at) "
                "VALUES ('claimed then died', 'posting', 1, '2026-11-28T09:00:00Z')")
    _write(env, "INSERT INTO posts (text, status, attempts, updated_at) "
                "VALUES ('in flight', 'posting', 1, '2026-11-28T11:59:50Z')")
    report = run_sweep(ctx)
    assert [(a.routine, a.target) for a in report.actions][:1] == [("release_stuck_post", "post:1")]
    assert get_post(ctx.engine, 1)["status"] != "posting"
    assert get_post(ctx.engine, 2)["status"] == "posting"


def test_epoch_integer_rows_are_handled_without_raising(env, make_ctx, x_api, clock):
    ctx = make_ctx(env)
    ctx.engine  # noqa: B018
    three_hours_ago = int((clock.current - timedelta(hours=3)).timestamp())
    _write(env, "INSERT INTO posts (text, scheduled_at) VALUES ('epoch post', ?)", three_hours_ago)
    _write(env, "INSERT INTO posts (text, status, attempts, last_error, next_attempt_at, updated_at) "
                "VALUES ('epoch retry', 'failed', 1, '503 Service Unavailable', ?, ?)",
           three_hours_ago, float(three_hours_ago))
    report = run_sweep(ctx)
    assert report.errors == []
    assert get_post(ctx.engine, 1)["scheduled_at"] == datetime.fromtimestamp(three_hours_ago, UTC)
    assert get_post(ctx.engine, 1)["status"] == "posted"
    assert {d.post_id for d in report.detected} == {1, 2}


def test_garbage_timestamp_is_reported_once_and_skipped_while_others_go_on(env, make_ctx, x_api, clock):
    ctx = make_ctx(env)
    ctx.engine  # noqa: B018
    _write(env, "INSERT INTO posts (text, scheduled_at) VALUES ('bad time', 'next tuesday')")
    _write(env, "INSERT INTO posts (text, status, attempts, last_error, posted_at) "
                "VALUES ('bad other column', 'failed', 1, '503 Service Unavailable', 'yesterday-ish')")
    _write(env, "INSERT INTO posts (text, scheduled_at) VALUES ('good', ?)",
           (clock.current - timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ"))
    report = run_sweep(ctx)
    assert report.errors == [
        "post 1: scheduled_at = 'next tuesday' is not a timestamp; skipped "
        "(write naive UTC, e.g. 2026-12-01 09:00:00)",
        "post 2: posted_at = 'yesterday-ish' is not a timestamp; skipped "
        "(write naive UTC, e.g. 2026-12-01 09:00:00)"]
    assert [(d.post_id, d.failure_class) for d in report.detected] == [(3, "scheduler"), (None, "bad_row")]
    assert [t["text"] for t in x_api.tweets] == ["good"]
    assert get_post(ctx.engine, 1)["scheduled_at"] is None  # reading it never raises
    assert get_post(ctx.engine, 2)["status"] == "failed"


def test_claim_compares_next_attempt_at_as_an_instant(env, make_ctx, x_api, clock):
    ctx = make_ctx(env)
    ctx.engine  # noqa: B018
    later_today = (clock.current + timedelta(hours=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
    _write(env, "INSERT INTO posts (text, status, attempts, next_attempt_at) "
                "VALUES ('not yet', 'retry_scheduled', 1, ?)", later_today)
    assert post(ctx, 1).status == "not_claimed" and x_api.calls[TWEETS] == 0
    clock.advance(hours=2, seconds=1)
    assert post(ctx, 1).status == "posted"


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def any_db(request: pytest.FixtureRequest, env: dict[str, str]) -> dict[str, str]:
    if request.param == "sqlite":
        return env
    url = request.getfixturevalue("postgres_url" if request.param == "postgres" else "mysql_url")
    return {**env, "DATABASE_URL": url}


@pytest.mark.slow
def test_aware_values_mean_the_same_instant_on_every_backend(any_db, make_ctx, x_api, clock):
    ctx = make_ctx(any_db)
    plus_two = timezone(timedelta(hours=2))
    with ctx.engine.begin() as conn:  # a naive-UTC string written by a pipeline, and ours (aware)
        conn.execute(text("INSERT INTO posts (text, scheduled_at) VALUES ('naive', '2026-11-28 06:00:00')"))
        conn.execute(posts.insert().values(text="aware", scheduled_at=datetime(2026, 11, 28, 8, 0,
                                                                                tzinfo=plus_two)))
    with ctx.engine.connect() as conn:
        rows = dict(conn.execute(select(posts.c.text, posts.c.scheduled_at)).all())
    assert rows == {"naive": datetime(2026, 11, 28, 6, 0, tzinfo=UTC),
                    "aware": datetime(2026, 11, 28, 6, 0, tzinfo=UTC)}
    clock.current = datetime(2026, 11, 28, 6, 30, tzinfo=UTC)
    report = run_sweep(ctx)  # 30 min late with a 15 min grace: both missed, both posted once
    assert sorted(d.post_id for d in report.detected) == [1, 2]
    assert sorted(t["text"] for t in x_api.tweets) == ["aware", "naive"]
