"""`status` and `status --json`: from the database alone, on an empty one too."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert

from daemon.status_report import DAEMON_STATE_KEY
from tests.conftest import assert_no_secret, run_cli
from utils.db import actions, incidents, posts
from utils.state import put_state

STATUS_KEYS = {"generated_at", "timezone", "daemon", "jobs", "checks", "incidents", "actions", "retries",
               "posts_by_status", "actions_by_outcome", "x_api", "notifications", "errors", "warnings",
               "database_readable", "silences", "instance", "safe_mode", "posting", "odd_posts",
               "slots", "budget", "open_incidents"}


@pytest.mark.slow
def test_status_works_on_an_empty_database_without_a_daemon(env: dict[str, str]) -> None:
    text = run_cli(["status"], env)
    assert text.returncode == 0, text.stderr
    assert "daemon: never started" in text.stdout
    assert "no check has run yet" in text.stdout
    as_json = run_cli(["status", "--json"], env)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert set(report) == STATUS_KEYS
    assert report["daemon"] == {"state": "never started"}
    assert report["checks"] == report["jobs"] == report["retries"] == [] and report["errors"] == []


def _fill(make_ctx: Any, env: dict[str, str]) -> datetime:
    ctx = make_ctx(env)
    now = ctx.now()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    import socket

    put_state(ctx.engine, DAEMON_STATE_KEY, {
        "pid": int(dead.stdout), "host": socket.gethostname(), "started_at": now.isoformat(),
        "updated_at": now.isoformat(), "stopped_at": None,
        "jobs": {"sweep": {"next_run_at": (now + timedelta(minutes=30)).isoformat(), "trigger": "interval",
                           "last_outcome": "ok", "last_detail": "0 problem(s) detected", "errors": 2}}},
        now)
    reset = now + timedelta(hours=3)
    put_state(ctx.engine, "x_api:users_me", {"budget": {"limit": 25, "remaining": 19,
                                                        "reset_at": reset.isoformat()}, "calls": []}, now)
    put_state(ctx.engine, "x_api:post", {"x-user-limit-24hour": {"limit": 17, "remaining": 4,
                                                                 "reset_at": reset.isoformat()}}, now)
    put_state(ctx.engine, "notify:health", {"channels": {"c1": {"name": "ntfy", "failing_since":
                                                                now.isoformat(), "error": "HTTP 500"}},
                                            "all_failing_since": now.isoformat(), "reported": False}, now)
    with ctx.engine.begin() as conn:
        conn.execute(insert(posts), [
            {"text": "waiting", "status": "retry_scheduled", "attempts": 2, "failure_class": "rate_limit",
             "next_attempt_at": now + timedelta(minutes=45), "updated_at": now}])
        conn.execute(insert(posts), [{"text": "done", "status": "posted", "attempts": 1, "updated_at": now}])
        conn.execute(insert(actions), [{"routine": "retry_post", "target": "post:1", "reason": "rate_limit",
                                        "outcome": "retry_scheduled", "detail": "after the reset",
                                        "started_at": now, "duration_ms": 3.0}])
        conn.execute(insert(incidents), [{"key": "check:internet", "status": "open", "severity": "critical",
                                          "title": "internet check failing", "detail": "offline",
                                          "opened_at": now, "updated_at": now, "failure_count": 3}])
    return now


@pytest.mark.slow
def test_status_shows_every_part(env: dict[str, str], make_ctx: Any) -> None:
    env = {**env, "MONITOR_TIMEZONE": "Europe/Berlin"}
    assert run_cli(["check"], env).returncode in (0, 1, 2, 3)  # real rows in health_checks
    _fill(make_ctx, env)
    result = run_cli(["status", "--json"], env)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["daemon"]["state"] == "not running (did not stop cleanly)"
    assert report["jobs"][0]["id"] == "sweep" and report["jobs"][0]["errors"] == 2
    assert {c["name"] for c in report["checks"]} >= {"twitter_api", "database", "internet", "disk_space",
                                                     "scheduler"}
    assert all(c["age_seconds"] is not None and c["checked_at"] for c in report["checks"])
    assert report["incidents"][0]["title"] == "internet check failing"
    assert report["actions"][0]["routine"] == "retry_post"
    assert report["retries"] == [{"post_id": 1, "attempts": 2, "next_attempt_at": report["retries"][0][
        "next_attempt_at"], "failure_class": "rate_limit", "last_error": ""}]
    assert report["posts_by_status"] == {"retry_scheduled": 1, "posted": 1}
    budgets = {(b["endpoint"], b["window"]): b["remaining"] for b in report["x_api"]}
    assert budgets[("POST /2/tweets", "x-user-limit-24hour")] == 4
    assert ("GET /2/users/me", "budget") in budgets  # the check's own estimate / X's last word
    assert report["notifications"]["all_failing_since"]
    text = run_cli(["status"], env)
    for expected in ("JOBS", "sweep", "CHECKS", "OPEN INCIDENTS", "#1 critical", "LAST ACTIONS",
                     "retry_post on post:1", "POSTS WAITING FOR RETRY", "post 1: attempt 2", "X API BUDGET",
                     "POST /2/tweets [x-user-limit-24hour]: 4/17 left", "ALL CHANNELS FAILING", "CET"):
        assert expected in text.stdout, expected
    assert_no_secret(text.stdout, result.stdout, text.stderr)


@pytest.mark.slow
def test_status_reports_an_unreadable_database_instead_of_crashing(env: dict[str, str], tmp_path) -> None:
    broken = tmp_path / "broken.db"
    broken.write_bytes(b"this is not an SQLite database at all" * 100)
    result = run_cli(["status", "--json"], {**env, "DATABASE_URL": f"sqlite:///{broken}"})
    assert result.returncode == 3, result.stderr  # unknown, in the Nagios sense
    report = json.loads(result.stdout)
    assert report["errors"] and report["database_readable"] is False
    assert report["daemon"] == {"state": "unknown"}
    assert datetime.fromisoformat(report["generated_at"]) <= datetime.now(UTC)


@pytest.mark.slow
def test_status_with_the_database_gone_says_so_first_and_exits_3(env: dict[str, str]) -> None:
    from tests.support.faults import free_port

    gone = {**env, "DATABASE_URL": f"postgresql://postgres@127.0.0.1:{free_port()}/test"}
    text = run_cli(["status"], gone)
    assert text.returncode == 3, text.stderr
    first = text.stdout.splitlines()[0]
    assert first.startswith("UNKNOWN: the monitor database cannot be read") and "refused" in first, first
    # nothing below pretends: no "never started", no "none" for incidents
    assert "never started" not in text.stdout and "no check has run yet" not in text.stdout
    assert "OPEN INCIDENTS\n  unknown: the database could not be read" in text.stdout
    as_json = run_cli(["status", "--json"], gone)
    assert as_json.returncode == 3 and json.loads(as_json.stdout)["database_readable"] is False
    assert_no_secret(text.stdout, text.stderr)


@pytest.mark.slow
def test_status_lists_active_silences_in_text_and_json(env: dict[str, str], make_ctx: Any) -> None:
    from notify.silence import set_silence
    from utils.db import monitor_state

    ctx = make_ctx(env)
    now = datetime.now(UTC)
    set_silence(ctx, "internet", now + timedelta(hours=2))
    set_silence(ctx, "disk", now - timedelta(minutes=1))  # over: not shown
    with ctx.engine.begin() as conn:  # a silence set by someone who said who they are
        value = {"until": (now + timedelta(hours=1)).isoformat(), "set_at": now.isoformat(), "by": "alice"}
        conn.execute(insert(monitor_state).values(key="silence:failure:auth", updated_at=now,
                                                  value=json.dumps(value)))
    report = json.loads(run_cli(["status", "--json"], env).stdout)
    assert [(s["name"], s["by"]) for s in report["silences"]] == [("failure:auth", "alice"),
                                                                   ("internet", None)]
    assert datetime.fromisoformat(report["silences"][1]["until"]) == now + timedelta(hours=2)
    text = run_cli(["status"], {**env, "MONITOR_TIMEZONE": "UTC"})
    assert text.returncode == 0, text.stderr
    block = text.stdout.split("SILENCES (alerts suppressed)\n", 1)[1].split("\n\n", 1)[0]
    assert f"internet until {(now + timedelta(hours=2)):%Y-%m-%d %H:%M} UTC" in block
    assert "failure:auth until" in block and "by alice" in block and "disk" not in block
