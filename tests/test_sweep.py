"""Whole sweeps: ledger rows from failure to end state, exactly-once, restarts, the CLI."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import insert, select

from autonomiq_ledger.posting import get_post, post, schedule_post
from recovery.sweep import run_sweep, sweep_exit_code
from tests.conftest import assert_no_secret, run_cli
from tests.support.xapi_double import BODY_403_DUPLICATE, BODY_429, BODY_503, TWEETS, Reply
from utils.db import actions, posts
from utils.redact import redact


def failed_row(ctx, x_api, reply: Reply | None, text: str = "hello world") -> int:
    """A row that failed the real way: the pipeline's post() got `reply` (or X's own answer)."""
    post_id = schedule_post(ctx.engine, text, ctx.now())
    if reply is not None:
        x_api.script(TWEETS, reply)
    assert post(ctx, post_id).status == "failed"
    return post_id


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
    assert {d.post_id: d.failure_class for d in report.detected} == {3: "unknown", good: "server_error"}
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
