"""Whole sweeps: ledger rows from failure to end state, exactly-once, restarts, the CLI."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from autonomiq_ledger.posting import get_post, schedule_post
from recovery.sweep import run_sweep, sweep_exit_code
from tests.conftest import assert_no_secret, run_cli
from tests.support.ledger import failed_row
from tests.support.xapi_double import BODY_403_DUPLICATE, BODY_429, BODY_503, TWEETS, Reply
from utils.db import actions, make_engine, posts
from utils.redact import redact


def test_restart_between_429_and_its_reset_keeps_the_wait(env, make_ctx, x_api, clock):
    ctx = make_ctx(env)
    reset = ctx.now() + timedelta(minutes=40)
    post_id = failed_row(ctx, x_api, Reply(429, BODY_429, {
        "x-rate-limit-remaining": "98", "x-rate-limit-reset": str(int((ctx.now()).timestamp()) + 60),
        "x-user-limit-24hour-remaining": "0",
        "x-user-limit-24hour-reset": str(int(reset.timestamp()))}))
    report = run_sweep(ctx)
    row = get_post(ctx.engine, post_id)
    assert [d.failure_class for d in report.detected] == ["rate_limit"]
    assert [a.outcome for a in report.actions] == ["retry_scheduled"]
    assert row["status"] == "retry_scheduled" and row["failure_class"] == "rate_limit"
    # the 24-hour window is spent, so its reset wins over x-rate-limit-reset; jitter is small
    assert reset < row["next_attempt_at"] <= reset + timedelta(seconds=15)
    ctx.close()

    restarted = make_ctx(env)  # a new process on the same database
    clock.advance(minutes=39)
    run_sweep(restarted)
    assert x_api.calls[TWEETS] == 1 and get_post(restarted.engine, post_id)["status"] == "retry_scheduled"
    clock.advance(minutes=2)
    report = run_sweep(restarted)
    assert [a.outcome for a in report.actions] == ["posted"]
    assert get_post(restarted.engine, post_id)["status"] == "posted"
    assert x_api.calls[TWEETS] == 2 and len(x_api.tweets) == 1


@pytest.mark.slow
def test_ambiguous_timeout_that_went_out_ends_posted_without_a_second_tweet(env, make_ctx, x_api, clock):
    ctx = make_ctx({**env, "CHECK_TIMEOUT_SECONDS": "1"})
    post_id = failed_row(ctx, x_api, Reply(mode="post_then_hang"), "only once please")
    report = run_sweep(ctx)
    assert [a.routine for a in report.actions] == ["retry_transient"]
    assert get_post(ctx.engine, post_id)["status"] == "retry_scheduled"
    clock.advance(seconds=ctx.settings.backoff_max_seconds)
    report = run_sweep(ctx)  # the retry gets X's duplicate answer: the first attempt went through
    assert [(a.routine, a.outcome) for a in report.actions] == [("retry_due_post", "retried"),
                                                               ("resolve_duplicate", "posted")]
    assert get_post(ctx.engine, post_id)["status"] == "posted"
    assert len(x_api.tweets) == 1 and x_api.calls[TWEETS] == 2


def test_duplicate_without_ambiguity_is_skipped_and_never_retried(env, make_ctx, x_api, clock):
    ctx = make_ctx(env)
    post_id = failed_row(ctx, x_api, Reply(403, BODY_403_DUPLICATE))
    report = run_sweep(ctx)
    assert [a.outcome for a in report.actions] == ["skipped"]
    clock.advance(hours=3)
    assert run_sweep(ctx).actions == []
    assert get_post(ctx.engine, post_id)["status"] == "skipped" and x_api.calls[TWEETS] == 1


@pytest.mark.slow
def test_sweeping_twice_in_a_row_posts_nothing_twice(env, make_ctx, x_api, clock):
    ctx = make_ctx(env)
    ids = [failed_row(ctx, x_api, Reply(503, BODY_503), f"post {n}") for n in range(3)]
    run_sweep(ctx)
    clock.advance(hours=2)
    first, second = run_sweep(ctx), run_sweep(ctx)
    assert [a.outcome for a in first.actions] == ["posted"] * 3
    assert second.actions == [] and second.healthy
    assert sorted(t["text"] for t in x_api.tweets) == ["post 0", "post 1", "post 2"]
    assert all(get_post(ctx.engine, i)["status"] == "posted" for i in ids)


def _due_rows(ctx, count: int) -> None:
    """Rows due by the real clock (the CLI processes run on it)."""
    now = datetime.now(UTC)
    with ctx.engine.begin() as conn:
        conn.execute(insert(posts), [{"text": f"concurrent {n}", "status": "retry_scheduled",
                                      "attempts": 1, "next_attempt_at": now - timedelta(minutes=1),
                                      "updated_at": now, "ambiguous_attempt": False}
                                     for n in range(count)])


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_two_sweep_processes_at_once_never_post_twice(backend, env, make_ctx, x_api, request):
    if backend == "postgres":
        env = {**env, "DATABASE_URL": request.getfixturevalue("postgres_url")}
    ctx = make_ctx(env)
    _due_rows(ctx, 6)
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda _: run_cli(["sweep", "--json"], env), range(2)))
    payloads = [json.loads(run.stdout) for run in runs]
    posted = [a for p in payloads for a in p["actions"] if a["outcome"] == "posted"]
    assert len(posted) == 6, [run.stderr[-2000:] for run in runs]
    assert sorted(t["text"] for t in x_api.tweets) == sorted(f"concurrent {n}" for n in range(6))
    assert x_api.calls[TWEETS] == 6
    with ctx.engine.connect() as conn:
        assert set(conn.execute(select(posts.c.status)).scalars()) == {"posted"}


@pytest.mark.slow
def test_sweep_json_shape_and_exit_codes(env, make_ctx, x_api):
    ctx = make_ctx(env)
    healthy = run_cli(["sweep", "--json"], env)
    assert healthy.returncode == 0, healthy.stderr
    assert json.loads(healthy.stdout) == {"detected": [], "actions": [], "errors": []}
    rate_id = failed_row(ctx, x_api, Reply(429, BODY_429))
    gone_id = failed_row(ctx, x_api, Reply(400, {"errors": [{"message": "Your Tweet text is too long."}],
                                               "title": "Invalid Request", "detail": "invalid",
                                               "type": "https://api.twitter.com/2/problems/invalid-request"}),
                         "too long")
    run = run_cli(["sweep", "--json"], env)
    out = json.loads(run.stdout)
    assert run.returncode == 2  # gave_up asks for a human
    assert {(d["source"], d["post_id"], d["failure_class"]) for d in out["detected"]} == {
        ("ledger", rate_id, "rate_limit"), ("ledger", gone_id, "invalid_request")}
    assert all({"source", "post_id", "failure_class", "detail"} <= set(d) for d in out["detected"])
    by_target = {a["target"]: a for a in out["actions"]}
    assert by_target[f"post:{rate_id}"]["routine"] == "retry_after_rate_limit"
    assert by_target[f"post:{gone_id}"]["outcome"] == "gave_up"
    assert "fix the text" in by_target[f"post:{gone_id}"]["detail"]
    assert all({"routine", "target", "outcome", "detail"} <= set(a) for a in out["actions"])
    text = run_cli(["sweep"], env)
    assert text.returncode == 0 and "summary: 0 problem(s)" in text.stdout
    assert_no_secret(run.stdout, run.stderr, text.stdout)


@pytest.mark.slow
def test_bad_rows_are_reported_and_skipped(env, make_ctx, x_api):
    ctx = make_ctx(env)
    with ctx.engine.begin() as conn:
        for row in ({"text": "y" * 100_000, "status": "failed", "last_error": "e" * 100_000},
                    {"text": "", "status": "retry_scheduled"},
                    {"text": "fine", "status": "failed", "last_error": None}):
            conn.execute(insert(posts).values(attempts=1, ambiguous_attempt=False, **row))
    good = failed_row(ctx, x_api, Reply(503, BODY_503), "good one")
    report = run_sweep(ctx)
    assert len(report.errors) == 2 and "100000 characters" in report.errors[0]
    assert {d.post_id: d.failure_class for d in report.detected} == {
        3: "unknown", good: "server_error", None: "bad_row"}  # the skipped rows: one detection
    assert sweep_exit_code(report) == 2
    assert get_post(ctx.engine, 3)["failure_class"] == "unknown"
    assert x_api.calls[TWEETS] == 1


def test_missed_post_is_a_scheduler_failure_then_posted(env, make_ctx, x_api, clock):
    ctx = make_ctx(env)
    late = schedule_post(ctx.engine, "missed it", ctx.now() - timedelta(minutes=20))
    fresh = schedule_post(ctx.engine, "not yet late", ctx.now() - timedelta(minutes=5))
    report = run_sweep(ctx)
    assert [(d.failure_class, d.post_id) for d in report.detected] == [("scheduler", late)]
    assert "set SCHEDULER_SERVICE or SCHEDULER_HEARTBEAT_FILE" in report.actions[0].detail
    assert [a.outcome for a in report.actions] == ["posted"]
    assert get_post(ctx.engine, late)["status"] == "posted"
    assert get_post(ctx.engine, fresh)["status"] == "scheduled"
    assert [t["text"] for t in x_api.tweets] == ["missed it"]


def test_dry_run_classifies_but_changes_nothing(env, make_ctx, x_api, clock):
    ctx = make_ctx({**env, "DRY_RUN": "true"})
    post_id = failed_row(ctx, x_api, Reply(429, BODY_429))
    late = schedule_post(ctx.engine, "missed", ctx.now() - timedelta(hours=1))
    report = run_sweep(ctx)
    row = get_post(ctx.engine, post_id)
    assert row["failure_class"] == "rate_limit" and row["status"] == "failed"
    assert row["next_attempt_at"] is None
    assert get_post(ctx.engine, late)["status"] == "scheduled"
    assert [a.outcome for a in report.actions] == ["dry_run", "dry_run"]
    assert report.actions[0].detail.startswith("would schedule post:")
    with ctx.engine.connect() as conn:
        stored = conn.execute(select(actions.c.outcome, actions.c.dry_run)).all()
    assert stored == [("dry_run", True), ("dry_run", True)]
    assert x_api.calls[TWEETS] == 1


@pytest.mark.slow
def test_every_action_reaches_the_failure_log_with_its_detail(env, make_ctx, x_api, tmp_path):
    failed_row(make_ctx(env), x_api, Reply(429, BODY_429))
    run = run_cli(["sweep"], env)
    log = (tmp_path / "logs" / "post_failures.log").read_text()
    assert "retry_after_rate_limit on post:1 (rate_limit): retry_scheduled" in log
    assert "429 Too Many Requests" in log
    assert_no_secret(log, run.stdout, redact(run.stderr))


def test_log_errors_become_log_detections(env, make_ctx, tmp_path):
    log = tmp_path / "pipeline.log"
    log.write_text("2026-11-28 06:00:01 ERROR post failed: 429 Too Many Requests\n"
                   "2026-11-28 06:00:02 INFO all good\n")
    report = run_sweep(make_ctx({**env, "PIPELINE_LOG_FILES": str(log)}))
    assert [(d.source, d.failure_class, d.target) for d in report.detected] == [
        ("log", "rate_limit", str(log))]
    assert report.actions == []


@pytest.mark.slow
def test_a_row_stuck_in_posting_is_released_and_resolved_exactly_once(env, make_ctx, x_api, clock):
    ctx = make_ctx(env)
    with ctx.engine.begin() as conn:  # a poster crashed mid-call after X accepted the tweet
        conn.execute(insert(posts).values(text="crashed mid-call", status="posting", attempts=1,
                                          updated_at=ctx.now() - timedelta(minutes=20),
                                          ambiguous_attempt=False))
        conn.execute(insert(posts).values(text="in flight", status="posting", attempts=1,
                                          updated_at=ctx.now() - timedelta(seconds=5),
                                          ambiguous_attempt=False))
    x_api.tweets.append({"id": "1859999999999999999", "text": "crashed mid-call"})
    report = run_sweep(ctx)
    assert [(a.routine, a.outcome) for a in report.actions] == [
        ("release_stuck_post", "released"), ("retry_transient", "retry_scheduled")]
    assert get_post(ctx.engine, 2)["status"] == "posting"  # a live attempt is left alone
    clock.advance(hours=2)
    report = run_sweep(ctx)
    assert [a.outcome for a in report.actions if a.target == "post:1"] == ["retried", "posted"]
    assert get_post(ctx.engine, 1)["status"] == "posted"
    assert len(x_api.tweets) == 1 and x_api.calls[TWEETS] == 1


def test_monitor_registers_the_routines_and_hands_each_sweep_to_after_sweep(env, make_ctx):
    from autonomous_monitor import AutonomousMonitor
    from recovery.playbook import ROUTINES

    seen = []

    class Watching(AutonomousMonitor):
        def after_sweep(self, report):
            seen.append(report)

    monitor = Watching.from_settings(make_ctx(env).settings)
    try:
        assert set(ROUTINES) <= set(monitor.fixers)
        report = monitor.run_sweep()
    finally:
        monitor.close()
    assert seen == [report] and report.healthy


# --- the pipeline's own rows: ambiguity, odd statuses, unknown, huge errors (issue 10) ---------

def _pipeline_failed(ctx, text: str, last_error: str, **extra) -> int:
    """A row the pipeline posted and failed by itself (plain SQL: no ambiguous flag, no class)."""
    with ctx.engine.begin() as conn:
        return conn.execute(insert(posts).values(
            text=text, status="failed", attempts=1, last_error=last_error,
            updated_at=ctx.now(), **extra)).inserted_primary_key[0]


BACKENDS = ["sqlite", "postgres", "mysql"]


def _backend_env(backend, env, request):
    if backend == "sqlite":
        return env
    return {**env, "DATABASE_URL": request.getfixturevalue(f"{backend}_url")}


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_pipeline_error_that_may_have_reached_x_ends_posted_on_a_duplicate_answer(
        backend, env, make_ctx, x_api, clock, request):
    ctx = make_ctx(_backend_env(backend, env, request))
    errors = {"503": "503 Service Unavailable\nService Unavailable",
              "read timeout": "HTTPSConnectionPool(host='api.twitter.com', port=443): Read timed out. "
                              "(read timeout=10)",
              "aborted": "('Connection aborted.', RemoteDisconnected('Remote end closed connection "
                         "without response'))",
              "unreadable 2xx": "Failed to parse JSON payload: HTTP 201 (text/html) without a tweet id"}
    ids = {name: _pipeline_failed(ctx, f"went out: {name}", error) for name, error in errors.items()}
    refused = _pipeline_failed(ctx, "never sent", "HTTPSConnectionPool(host='api.twitter.com', port=443): "
                               "Max retries exceeded (Caused by NewConnectionError('Connection refused'))")
    for name in errors:  # each of those calls did reach X
        x_api.tweets.append({"id": str(1850000000000000000 + len(x_api.tweets)), "text": f"went out: {name}"})
    run_sweep(ctx)
    assert {name: get_post(ctx.engine, i)["ambiguous_attempt"] for name, i in ids.items()} == \
        dict.fromkeys(errors, True)
    assert get_post(ctx.engine, refused)["ambiguous_attempt"] is False
    clock.advance(seconds=ctx.settings.backoff_max_seconds + 60)
    run_sweep(ctx)  # the retries: X says duplicate for the four, posts the refused one
    for i in ids.values():
        row = get_post(ctx.engine, i)
        assert row["status"] == "posted", row
        assert "confirmed by X's duplicate answer" in row["last_error"]
    assert get_post(ctx.engine, refused)["status"] == "posted"
    assert sorted(t["text"] for t in x_api.tweets) == sorted([*(f"went out: {n}" for n in errors),
                                                              "never sent"])


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_statuses_outside_the_set_are_reported_by_id_the_same_on_every_backend(
        backend, env, make_ctx, x_api, request):
    env = _backend_env(backend, env, request)
    ctx = make_ctx(env)
    with ctx.engine.begin() as conn:
        ids = [conn.execute(insert(posts).values(text=f"odd {status!r}", status=status, attempts=1,
                                                 last_error="503 Service Unavailable",
                                                 updated_at=ctx.now())).inserted_primary_key[0]
               for status in ("queued", "FAILED", "failed ")]
    report = run_sweep(ctx)
    assert [e.split(":")[0] for e in report.errors] == [f"post {i}" for i in ids]
    assert all("is not one of" in e for e in report.errors)
    assert report.actions == [] and x_api.calls[TWEETS] == 0
    assert [(d.failure_class, d.target) for d in report.detected] == [("bad_row", "ledger")]
    assert sweep_exit_code(report) == 2
    status = run_cli(["status"], env)
    assert all(f"post {i}: status" in status.stdout for i in ids), status.stdout
    counts = json.loads(run_cli(["status", "--json"], env).stdout)
    assert {r["status"] for r in counts["odd_posts"]} == {"queued", "FAILED", "failed "}
    with ctx.engine.connect() as conn:
        assert set(conn.execute(select(posts.c.status)).scalars()) == {"queued", "FAILED", "failed "}


@pytest.mark.slow
@pytest.mark.parametrize("backend", BACKENDS)
def test_a_null_status_in_a_pipeline_table_that_allows_it_is_reported(backend, env, make_ctx, x_api, request):
    env = _backend_env(backend, env, request)
    ddl = ("CREATE TABLE posts (id INTEGER PRIMARY KEY {auto}, text TEXT NOT NULL, scheduled_at {ts}, "
           "status VARCHAR(32), attempts INTEGER, last_error TEXT, failure_class VARCHAR(64), "
           "next_attempt_at {ts}, tweet_id VARCHAR(32), posted_at {ts}, updated_at {ts})")
    kinds = {"sqlite": ("AUTOINCREMENT", "TIMESTAMP"), "postgres": ("GENERATED BY DEFAULT AS IDENTITY",
                                                                  "TIMESTAMP"), "mysql": ("AUTO_INCREMENT",
                                                                                          "DATETIME(6)")}
    auto, ts = kinds[backend]
    engine = make_engine(env["DATABASE_URL"])
    with engine.begin() as conn:  # the pipeline's own table: status may be NULL there
        conn.exec_driver_sql(ddl.format(auto=auto, ts=ts))
    engine.dispose()
    ctx = make_ctx(env)
    with ctx.engine.begin() as conn:
        conn.execute(insert(posts).values(text="no status", status=None, attempts=0))
        post_id = conn.execute(insert(posts).values(text="queued", status="queued", attempts=0)
                               ).inserted_primary_key[0]
    report = run_sweep(ctx)
    assert [e.split(": status")[0] for e in report.errors] == ["post 1", f"post {post_id}"], report.errors
    assert "status None is not one of" in report.errors[0]


def test_an_unknown_failure_asks_for_a_human(env, make_ctx, x_api):
    ctx = make_ctx(env)
    _pipeline_failed(ctx, "mystery", "the flux capacitor refused")
    report = run_sweep(ctx)
    assert [d.failure_class for d in report.detected] == ["unknown"] and not report.errors
    assert sweep_exit_code(report) == 2


def test_a_released_stuck_row_is_detected_once(env, make_ctx, x_api, clock):
    ctx = make_ctx(env)
    with ctx.engine.begin() as conn:
        conn.execute(insert(posts).values(text="stuck", status="posting", attempts=1,
                                          updated_at=ctx.now() - timedelta(hours=1)))
    report = run_sweep(ctx)
    assert [d.target for d in report.detected] == ["post:1"]
    assert [a.routine for a in report.actions] == ["release_stuck_post", "retry_transient"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "mysql"])
def test_a_huge_error_is_classified_by_its_tail_and_logged_in_a_few_kb(
        backend, env, make_ctx, x_api, tmp_path, request):
    env = _backend_env(backend, env, request)
    ctx = make_ctx(env)
    error = "Traceback (most recent call last):\n" + "  frame line\n" * 90_000 + \
        "tweepy.errors.TwitterServerError: 503 Service Unavailable"
    assert len(error) > 1_000_000
    post_id = _pipeline_failed(ctx, "huge error", error)
    assert len(get_post(ctx.engine, post_id)["last_error"]) == len(error)  # held whole
    run = run_cli(["sweep", "--json"], env)
    out = json.loads(run.stdout)
    assert [d["failure_class"] for d in out["detected"]] == ["server_error"]
    assert get_post(ctx.engine, post_id)["ambiguous_attempt"] is True
    logs = {path.name: path.read_text() for path in (tmp_path / "logs").glob("*.log")}
    assert "503 Service Unavailable" in logs["post_failures.log"]
    assert "characters left out" in logs["post_failures.log"]
    assert all(len(text) < 16_000 for text in logs.values()), {k: len(v) for k, v in logs.items()}
    assert len(run.stdout) + len(run.stderr) < 16_000
