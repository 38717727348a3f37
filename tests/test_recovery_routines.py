"""Each failure class from a failed row (or a failing check) to its end state, through sweeps."""

from __future__ import annotations

import json
import stat
import sys
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, update

from autonomiq_ledger.posting import get_post
from recovery.base import Target, run_routine
from recovery.credentials import OAUTH2_STATE_KEY, ROTATED_TOKEN_FILE
from recovery.sweep import run_sweep
from tests.conftest import FAKE_SECRETS, assert_no_secret
from tests.support.ledger import failed_row
from tests.support.xapi_double import (
    BODY_401,
    BODY_402_CREDITS,
    BODY_403_OAUTH1_PERMISSIONS,
    BODY_429_USAGE_CAP,
    BODY_503,
    ME,
    OAUTH2_TOKEN,
    TWEETS,
    Reply,
)
from utils.db import posts
from utils.state import get_state


def outcomes(report) -> list[tuple[str, str]]:
    return [(a.routine, a.outcome) for a in report.actions]


# --- usage_cap ---------------------------------------------------------------------------------

@pytest.mark.slow
def test_usage_cap_holds_every_post_alerts_once_and_probes_once_per_period(env, make_ctx, x_api, clock):
    ctx = make_ctx(env)
    cap = Reply(429, BODY_429_USAGE_CAP, {"x-rate-limit-remaining": "39999"})
    first = failed_row(ctx, x_api, cap, "one")
    report = run_sweep(ctx)
    assert outcomes(report) == [("hold_for_usage_cap", "held")]
    assert report.actions[0].needs_human and "monthly usage cap" in report.actions[0].detail
    second = failed_row(ctx, x_api, cap, "two")
    report = run_sweep(ctx)
    assert outcomes(report) == [("hold_for_usage_cap", "held")] and not report.actions[0].needs_human
    assert run_sweep(ctx).actions == []  # nothing retried while held
    clock.advance(hours=24, minutes=1)
    x_api.script(TWEETS, cap)
    report = run_sweep(ctx)  # one probe for all held posts: still capped
    assert outcomes(report) == [("retry_due_post", "retried"), ("hold_for_usage_cap", "held")]
    assert x_api.calls[TWEETS] == 3
    clock.advance(hours=24, minutes=1)
    report = run_sweep(ctx)  # the cap reset: everything goes out
    assert [a.outcome for a in report.actions] == ["posted", "posted"]
    assert {get_post(ctx.engine, i)["status"] for i in (first, second)} == {"posted"}
    assert x_api.calls[TWEETS] == 5


def test_out_of_credits_says_add_credits(env, make_ctx, x_api):
    ctx = make_ctx(env)
    failed_row(ctx, x_api, Reply(402, BODY_402_CREDITS))
    action = run_sweep(ctx).actions[0]
    assert action.outcome == "held" and action.needs_human and "add credits" in action.detail


# --- auth --------------------------------------------------------------------------------------

def _env_file(tmp_path, api_key: str) -> str:
    path = tmp_path / "app.env"
    path.write_text(f"TWITTER_API_KEY={api_key}\n")
    return str(path)


@pytest.mark.slow
def test_new_credentials_in_env_file_are_verified_once_then_the_post_is_retried(
        env, make_ctx, x_api, tmp_path):
    base = {k: v for k, v in env.items() if k != "TWITTER_API_KEY"}
    ctx = make_ctx({**base, "ENV_FILE": _env_file(tmp_path, "revoked-consumer-key")})
    ids = [failed_row(ctx, x_api, None, f"post {n}") for n in range(3)]
    assert "401 Unauthorized" in get_post(ctx.engine, ids[0])["last_error"]
    _env_file(tmp_path, FAKE_SECRETS["TWITTER_API_KEY"])  # the person pastes the new key
    report = run_sweep(ctx)
    assert outcomes(report) == [("refresh_credentials", "posted")] * 3
    assert "verified as @autonomiq_bot" in report.actions[0].detail
    assert {get_post(ctx.engine, i)["status"] for i in ids} == {"posted"}
    assert x_api.calls[ME] == 1 and x_api.calls[TWEETS] == 6  # one verification for all rows


def test_still_rejected_credentials_stay_failed_and_ask_a_human_once(env, make_ctx, x_api, tmp_path):
    base = {k: v for k, v in env.items() if k != "TWITTER_API_KEY"}
    ctx = make_ctx({**base, "ENV_FILE": _env_file(tmp_path, "revoked-consumer-key")})
    post_id = failed_row(ctx, x_api, None)
    action = run_sweep(ctx).actions[0]
    assert action.outcome == "failed" and action.needs_human
    assert "regenerate the Access Token and Secret" in action.detail and "app.env" in action.detail
    assert get_post(ctx.engine, post_id)["status"] == "failed"  # not gave_up
    again = run_sweep(ctx).actions[0]
    assert again.outcome == "waiting" and not again.needs_human
    assert x_api.calls[ME] == 1  # unchanged .env: no second verification call


@pytest.mark.slow
def test_oauth2_refresh_rotates_and_the_new_refresh_token_is_used_next_time(env, make_ctx, x_api, caplog):
    oauth2 = {"TWITTER_CLIENT_ID": "client-abc", "TWITTER_CLIENT_SECRET": "SECRETclientsecretZZ",
              "TWITTER_OAUTH2_REFRESH_TOKEN": "refresh-0-SECRETZZ"}
    x_api.enable_oauth2("client-abc", "SECRETclientsecretZZ", "refresh-0-SECRETZZ")
    ctx = make_ctx({**env, **oauth2, "TWITTER_API_KEY": "", "TWITTER_API_SECRET": "",
                    "TWITTER_ACCESS_TOKEN": "", "TWITTER_ACCESS_TOKEN_SECRET": ""})
    first = failed_row(ctx, x_api, None, "oauth2 one")  # app-only bearer: 401
    report = run_sweep(ctx)
    assert outcomes(report) == [("refresh_credentials", "posted")]
    token_file = ctx.settings.data_dir / ROTATED_TOKEN_FILE
    assert json.loads(token_file.read_text())["refresh_token"] == x_api.oauth2_refresh_token
    assert x_api.oauth2_refresh_token == "oauth2-refresh-1-rotatedSECRETZZ"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert "rotatedSECRET" not in json.dumps(get_state(ctx.engine, OAUTH2_STATE_KEY))  # not in the DB
    second = failed_row(ctx, x_api, Reply(401, BODY_401), "oauth2 two")
    report = run_sweep(ctx)  # the .env token is spent: only the stored rotated one works
    assert outcomes(report) == [("refresh_credentials", "posted")]
    assert x_api.oauth2_refreshes == 2 and x_api.calls[OAUTH2_TOKEN] == 2
    assert {get_post(ctx.engine, i)["status"] for i in (first, second)} == {"posted"}
    basic = next(r for r in x_api.requests if r["route"] == OAUTH2_TOKEN)["headers"]["Authorization"]
    assert basic.startswith("Basic ")
    texts = [caplog.text, *(a.detail for a in report.actions)]
    assert all("rotatedSECRET" not in text and "refresh-0-SECRET" not in text for text in texts)


# --- server_error / network / timeout ----------------------------------------------------------

def test_transient_errors_back_off_then_give_up_after_max_attempts(env, make_ctx, x_api, clock):
    ctx = make_ctx({**env, "MAX_POST_ATTEMPTS": "2"})
    post_id = failed_row(ctx, x_api, Reply(503, BODY_503))
    report = run_sweep(ctx)
    assert outcomes(report) == [("retry_transient", "retry_scheduled")]
    assert "attempt 2 of 2" in report.actions[0].detail
    clock.advance(hours=2)
    x_api.script(TWEETS, Reply(503, BODY_503))
    report = run_sweep(ctx)
    assert outcomes(report) == [("retry_due_post", "retried"), ("retry_transient", "gave_up")]
    assert report.actions[1].needs_human
    assert get_post(ctx.engine, post_id)["status"] == "gave_up" and x_api.calls[TWEETS] == 2


def test_offline_box_waits_without_spending_attempts(env, make_ctx, x_api, clock):
    ctx = make_ctx({**env, "CONNECTIVITY_URLS": "http://127.0.0.1:9/"})
    post_id = failed_row(ctx, x_api, Reply(503, BODY_503))
    report = run_sweep(ctx)
    assert outcomes(report) == [("retry_transient", "waiting")] and "offline" in report.actions[0].detail
    row = get_post(ctx.engine, post_id)
    assert row["status"] == "failed" and row["attempts"] == 1 and row["next_attempt_at"] > ctx.now()
    assert run_sweep(ctx).actions == []  # re-check not due yet
    assert x_api.calls[TWEETS] == 1


# --- permission / invalid_request / not_found -------------------------------------------------

def test_permission_gives_up_at_once_and_says_what_to_change(env, make_ctx, x_api, clock):
    ctx = make_ctx(env)
    post_id = failed_row(ctx, x_api, Reply(403, BODY_403_OAUTH1_PERMISSIONS))
    action = run_sweep(ctx).actions[0]
    assert (action.routine, action.outcome, action.needs_human) == ("give_up", "gave_up", True)
    assert "Read and Write" in action.detail
    clock.advance(days=1)
    assert run_sweep(ctx).actions == []
    assert get_post(ctx.engine, post_id)["status"] == "gave_up" and x_api.calls[TWEETS] == 1


# --- database ----------------------------------------------------------------------------------

def test_database_error_reconnects_verifies_and_requeues_the_row(env, make_ctx, x_api):
    ctx = make_ctx(env)
    with ctx.engine.begin() as conn:
        conn.execute(insert(posts).values(
            text="db hiccup", status="failed", attempts=1, ambiguous_attempt=False,
            last_error="(psycopg.OperationalError) server closed the connection unexpectedly"))
    report = run_sweep(ctx)
    action = report.actions[0]
    assert (action.routine, action.outcome, action.verified) == ("reconnect_database", "fixed", True)
    row = get_post(ctx.engine, 1)
    assert row["status"] == "retry_scheduled" and row["ambiguous_attempt"] is True
    assert outcomes(run_sweep(ctx)) == [("retry_due_post", "posted")]


# --- secrets never leak through any routine ------------------------------------------------------

def test_no_secret_in_any_action_detail(env, make_ctx, x_api):
    ctx = make_ctx(env)
    failed_row(ctx, x_api, Reply(401, {**BODY_401, "detail": FAKE_SECRETS["TWITTER_API_SECRET"]}))
    report = run_sweep(ctx)
    assert_no_secret(*(a.detail for a in report.actions), *(d.detail for d in report.detected))


def test_scheduler_restart_with_a_real_child_process_is_verified(env, make_ctx, tmp_path, clock):
    import os

    clock.current = datetime.now(UTC)  # the heartbeat file's age is measured against real mtimes
    heartbeat = tmp_path / "heartbeat"
    heartbeat.write_text("old")
    stale = clock.current.timestamp() - 7200
    os.utime(heartbeat, (stale, stale))
    script = tmp_path / "scheduler.py"
    script.write_text("import pathlib, sys\npathlib.Path(sys.argv[1]).write_text('alive')\n")
    ctx = make_ctx({**env, "SCHEDULER_HEARTBEAT_FILE": str(heartbeat),
                    "SCHEDULER_HEARTBEAT_MAX_AGE_SECONDS": "600",
                    "SCHEDULER_RESTART_COMMAND": f"{sys.executable} {script} {heartbeat}"})
    report = run_sweep(ctx)
    assert [(d.source, d.failure_class) for d in report.detected] == [("check", "scheduler")]
    action = report.actions[0]
    assert (action.routine, action.outcome, action.verified) == ("restart_scheduler", "fixed", True)
    assert heartbeat.read_text() == "alive"
    assert run_sweep(ctx).healthy


def test_circuit_breaker_blocks_the_next_run_and_survives_a_restart(env, make_ctx, tmp_path, clock):
    heartbeat = tmp_path / "missing-heartbeat"
    scheduler_env = {**env, "SCHEDULER_HEARTBEAT_FILE": str(heartbeat),
                     "SCHEDULER_RESTART_COMMAND": "false", "CIRCUIT_BREAKER_MAX_RUNS": "2"}
    ctx = make_ctx(scheduler_env)
    runs = [run_sweep(ctx).actions[0] for _ in range(3)]
    assert [a.outcome for a in runs] == ["failed", "failed", "blocked"]
    assert runs[2].needs_human and "already ran 2 time(s)" in runs[2].detail
    restarted = make_ctx(scheduler_env)
    assert run_sweep(restarted).actions[0].outcome == "blocked"
    clock.advance(hours=1, minutes=1)
    assert run_sweep(restarted).actions[0].outcome == "failed"  # the window has passed


@pytest.mark.slow
def test_fast_sweeps_reach_max_post_attempts_not_the_circuit_breaker(env, make_ctx, x_api, clock):
    # Sweeps every 2 minutes against an X that keeps answering 503: the post's own limit
    # (MAX_POST_ATTEMPTS) ends it with `gave_up`, not a misleading "blocked to avoid a loop".
    ctx = make_ctx({**env, "MAX_POST_ATTEMPTS": "5", "CIRCUIT_BREAKER_MAX_RUNS": "3",
                    "BACKOFF_BASE_SECONDS": "1", "BACKOFF_MAX_SECONDS": "60"})
    post_id = failed_row(ctx, x_api, Reply(503, BODY_503))
    seen = []
    for _ in range(10):
        x_api.script(TWEETS, Reply(503, BODY_503))
        seen += [(a.routine, a.outcome) for a in run_sweep(ctx).actions]
        clock.advance(minutes=2)
        if get_post(ctx.engine, post_id)["status"] == "gave_up":
            break
    assert all(outcome != "blocked" for _, outcome in seen), seen
    assert seen[-1] == ("retry_transient", "gave_up"), seen
    assert get_post(ctx.engine, post_id)["attempts"] == 5 and x_api.calls[TWEETS] == 5


# --- optimistic concurrency: a row the pipeline touched after the sweep read it is left alone ---

def _stale_cases():
    """(routine, status the sweep selected the row in, failure class, how to run it)."""
    from recovery.base import requeue
    from recovery.playbook import ROUTINES

    def guarded(name):
        return lambda ctx, target: run_routine(ctx, ROUTINES[name], target).detail

    return [
        ("retry_transient", "failed", "server_error", guarded("retry_transient")),
        ("give_up", "failed", "permission", guarded("give_up")),
        ("resolve_duplicate", "failed", "duplicate", guarded("resolve_duplicate")),
        ("retry_after_rate_limit", "failed", "rate_limit", guarded("retry_after_rate_limit")),
        ("hold_for_usage_cap", "failed", "usage_cap", guarded("hold_for_usage_cap")),
        ("release_stuck_post", "posting", "timeout", guarded("release_stuck_post")),
        ("retry_due_post", "retry_scheduled", "server_error", guarded("retry_due_post")),
        ("post_missed", "scheduled", "scheduler", guarded("post_missed")),
        ("requeue", "failed", "database", requeue),
    ]


STALE = {case[0]: case for case in _stale_cases()}


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
@pytest.mark.parametrize("name", sorted(STALE))
def test_a_routine_leaves_alone_a_row_the_pipeline_touched_after_the_sweep_read_it(
        name, backend, env, make_ctx, x_api, clock, request):
    if backend != "sqlite":
        env = {**env, "DATABASE_URL": request.getfixturevalue(f"{backend}_url")}
    ctx = make_ctx(env)
    _, status, failure_class, run = STALE[name]
    with ctx.engine.begin() as conn:
        post_id = conn.execute(insert(posts).values(
            text=f"{name} race", status=status, attempts=1, ambiguous_attempt=True,
            last_error="503 Service Unavailable", failure_class=failure_class,
            scheduled_at=ctx.now() - timedelta(hours=1), next_attempt_at=ctx.now() - timedelta(minutes=1),
            updated_at=ctx.now() - timedelta(hours=1))).inserted_primary_key[0]
    seen = get_post(ctx.engine, post_id)  # what the sweep read
    with ctx.engine.begin() as conn:  # the pipeline tried again meanwhile: same status, new attempt
        conn.execute(update(posts).where(posts.c.id == post_id).values(
            attempts=2, updated_at=ctx.now() - timedelta(seconds=1)))
    after_pipeline = get_post(ctx.engine, post_id)
    detail = run(ctx, Target.for_row(seen, failure_class))
    assert "changed since" in detail, detail
    assert get_post(ctx.engine, post_id) == after_pipeline
    assert x_api.calls[TWEETS] == 0
    # the control: the same routine on a fresh read does move the row
    run(ctx, Target.for_row(after_pipeline, failure_class))
    assert get_post(ctx.engine, post_id) != after_pipeline


def test_a_row_the_pipeline_posted_after_the_sweep_read_it_is_never_taken_back(env, make_ctx, x_api):
    ctx = make_ctx(env)
    post_id = failed_row(ctx, x_api, Reply(503, BODY_503), "the pipeline finishes it")
    seen = get_post(ctx.engine, post_id)
    with ctx.engine.begin() as conn:  # the pipeline posts it itself (tweet 1234)
        conn.execute(update(posts).where(posts.c.id == post_id).values(
            status="posted", tweet_id="1234", updated_at=ctx.now()))
    for name in ("retry_transient", "resolve_duplicate", "retry_after_rate_limit", "give_up"):
        _, _, failure_class, run = STALE[name]
        assert "changed since" in run(ctx, Target.for_row(seen, failure_class))
    row = get_post(ctx.engine, post_id)
    assert row["status"] == "posted" and row["tweet_id"] == "1234" and x_api.calls[TWEETS] == 1
