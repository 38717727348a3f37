"""The real daemon as a child process: schedule, start-up round, sweeps, systemd notify, HTTP,
heartbeats, bounded jobs, clean and forced shutdown, and state that survives kill -9."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sqlalchemy import func, select

from autonomiq_ledger.posting import get_post, post, schedule_post
from tests.conftest import assert_no_secret, run_cli
from tests.support.faults import free_port, wait_for
from tests.support.notify_receivers import running_path_recorder
from tests.support.xapi_double import BODY_429, ME, TWEETS, Reply
from utils.config import load_settings
from utils.context import MonitorContext
from utils.db import actions, health_checks

pytestmark = pytest.mark.slow


@pytest.fixture
def heartbeat() -> Iterator[tuple[str, list[str]]]:
    """A loopback healthchecks.io stand-in recording the paths pinged."""
    with running_path_recorder() as recorder:
        yield recorder.url, recorder.paths


def test_the_daemon_runs_its_schedule_speaks_to_systemd_and_stops_cleanly(
        env: dict[str, str], daemons: Any, notify_socket: Any, heartbeat: Any) -> None:
    socket_path, messages = notify_socket
    beat_url, beats = heartbeat
    port = free_port()
    daemon = daemons({**env, "SWEEP_INTERVAL": "1s", "NOTIFY_SOCKET": socket_path, "WATCHDOG_USEC": "600000",
                      "MONITOR_HTTP_PORT": str(port), "HEARTBEAT_URL": beat_url,
                      "MONITOR_TIMEZONE": "Europe/Berlin", "POSTING_TIMES": "00:30,15:00"})
    wait_for(lambda: "READY=1" in "".join(messages), 20, "READY=1")
    ready_at = time.monotonic()
    startup = wait_for(lambda: daemon.engine.connect().execute(
        select(func.count()).where(health_checks.c.trigger == "startup")).scalar() >= 5, 15, "start-up round")
    assert startup
    wait_for(lambda: daemon.sweeps() >= 3, 10, "three sweeps")
    assert time.monotonic() - ready_at < 6  # every SWEEP_INTERVAL (1 s), not later
    health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert health.status_code == 200, health.text
    metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'autonomiq_check_status{check="database"} 0.0' in metrics
    assert 'autonomiq_job_runs_total{job="startup",outcome="succeeded"} 1.0' in metrics
    rss_kb = int(next(line.split()[1] for line in Path(f"/proc/{daemon.proc.pid}/status").read_text()
                      .splitlines() if line.startswith("VmRSS:")))
    print(f"idle daemon RSS: {rss_kb / 1024:.1f} MB")
    # About 56 MB: tweepy + SQLAlchemy + APScheduler + requests (46 MB), the monitor, and with the
    # HTTP endpoint prometheus_client and the status report it serves from memory.
    assert rss_kb <= 64 * 1024, f"idle daemon uses {rss_kb / 1024:.1f} MB"

    code, took = daemon.stop(signal.SIGTERM)
    assert code == 0 and took < 10
    joined = "\n".join(messages)
    assert "STATUS=sweep: ok" in joined and "STATUS=startup: ok" in joined
    assert joined.count("WATCHDOG=1") >= 3 and "STOPPING=1" in joined
    assert "/start" in "".join(beats) and any(p.endswith("/0f3c6a9e-5b7d-4d8e-9f1a-2b3c4d5e6f70")
                                              for p in beats)
    log = daemon.log
    assert "configuration:" in log and "HEARTBEAT_URL=<set>" in log
    assert "job pre_posting_2330 (daily 60 min before 00:30 Europe/Berlin): next run at" in log
    assert "job pre_posting_1400" in log and "job sweep (interval[0:00:01]): next run at" in log
    assert "0f3c6a9e-5b7d-4d8e-9f1a-2b3c4d5e6f70" not in log
    assert "job sweep done" not in log and "sweep: 0 problem(s) detected" in log  # one line per sweep
    assert_no_secret(log)
    status = json.loads(run_cli(["status", "--json"], env).stdout)
    assert status["daemon"]["state"] == "stopped"
    jobs = {job["id"]: job for job in status["jobs"]}
    assert jobs["startup"]["last_outcome"] == "ok" and jobs["sweep"]["succeeded"] >= 3
    assert {"pre_posting_2330", "pre_posting_1400"} <= jobs.keys()


def test_a_hung_job_is_bounded_counted_and_does_not_stop_the_daemon(
        env: dict[str, str], daemons: Any, x_api: Any) -> None:
    x_api.always(ME, Reply(mode="hang"))  # X stops answering GET /2/users/me
    port = free_port()
    daemon = daemons({**env, "SWEEP_INTERVAL": "1s", "JOB_TIMEOUT_SECONDS": "1",
                      "CHECK_TIMEOUT_SECONDS": "25", "MONITOR_HTTP_PORT": str(port)})
    wait_for(lambda: daemon.jobs().get("startup", {}).get("timeouts") == 1, 15, "the start-up overrun")
    assert "job startup overran its 1s bound" in daemon.log
    wait_for(lambda: daemon.sweeps() >= 2, 10, "sweeps after the overrun")  # the daemon keeps going
    health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)  # but says a job is stuck
    assert health.status_code == 503 and "job startup busy" in health.text, health.text
    metrics = requests.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert 'autonomiq_job_runs_total{job="startup",outcome="timeouts"} 1.0' in metrics
    code, took = daemon.stop(signal.SIGTERM)  # the hung worker is given its bound, then abandoned
    assert code == 0 and took < 10
    assert "still running at shutdown; abandoned" in daemon.log


def test_a_second_signal_exits_at_once(env: dict[str, str], daemons: Any, x_api: Any) -> None:
    x_api.always(ME, Reply(mode="hang"))
    daemon = daemons({**env, "CHECK_TIMEOUT_SECONDS": "25"}, args=())  # no command: the daemon too
    wait_for(lambda: "job startup" not in daemon.log and "next run at" in daemon.log, 15, "start")
    time.sleep(0.5)  # the start-up round is now waiting on X
    daemon.proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    code, took = daemon.stop(signal.SIGINT, timeout=5)
    assert code == 128 + signal.SIGINT and took < 2


def test_kill_9_and_restart_keep_the_backoff_window_and_do_not_repeat_actions(
        env: dict[str, str], daemons: Any, x_api: Any, heartbeat: Any) -> None:
    ctx = MonitorContext(load_settings(env))  # the pipeline, on the real clock
    reset = ctx.now() + timedelta(hours=1)
    post_id = schedule_post(ctx.engine, "posted once, retried after the reset", ctx.now())
    x_api.script(TWEETS, Reply(429, BODY_429, {"x-user-limit-24hour-remaining": "0",
                                               "x-user-limit-24hour-reset": str(int(reset.timestamp()))}))
    assert post(ctx, post_id).status == "failed"
    beat_url, beats = heartbeat
    env = {**env, "SWEEP_INTERVAL": "1s", "HEARTBEAT_URL": beat_url}
    first = daemons(env, "first")
    row = wait_for(lambda: (r := get_post(ctx.engine, post_id))["status"] == "retry_scheduled" and r,
                   15, "the retry to be scheduled")
    wait_for(lambda: first.sweeps() >= 2, 10, "another sweep")
    assert any(path.endswith("/fail") for path in beats)  # the sweep found the failed post
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(5)
    assert json.loads(run_cli(["status", "--json"], env).stdout)["daemon"]["state"] == \
        "not running (did not stop cleanly)"

    def acted() -> int:
        with ctx.engine.connect() as conn:
            return conn.execute(select(func.count()).where(actions.c.target == f"post:{post_id}")).scalar()

    before = acted()
    second = daemons(env, "second")
    wait_for(lambda: second.sweeps() >= 3, 20, "sweeps after the restart")
    after = get_post(ctx.engine, post_id)
    assert after["status"] == "retry_scheduled"
    assert after["next_attempt_at"] == row["next_attempt_at"] > reset  # the wait survived
    assert acted() == before == 1
    assert x_api.calls[TWEETS] == 1  # nothing was posted again
    status = run_cli(["status"], env).stdout
    assert f"post {post_id}: attempt 1, next at" in status
    assert second.stop()[0] == 0
    ctx.close()


def test_a_stuck_job_withholds_the_watchdog_and_turns_healthz_unhealthy_until_it_ends(
        env: dict[str, str], daemons: Any, x_api: Any, notify_socket: Any) -> None:
    socket_path, messages = notify_socket
    x_api.always(ME, Reply(mode="hang"))  # the start-up round waits CHECK_TIMEOUT_SECONDS on X
    port = free_port()
    daemon = daemons({**env, "JOB_TIMEOUT_SECONDS": "1", "CHECK_TIMEOUT_SECONDS": "6", "SWEEP_INTERVAL": "1h",
                      "NOTIFY_SOCKET": socket_path, "WATCHDOG_USEC": "400000",
                      "MONITOR_HTTP_PORT": str(port)})
    wait_for(lambda: "job startup overran" in daemon.log, 15, "the start-up round to overrun")
    time.sleep(0.5)
    seen = len(messages)
    health = requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert health.status_code == 503 and "job startup busy" in health.text, health.text
    time.sleep(1.0)  # five ticks of 0.2 s: none may ping while the job is stuck
    assert not any("WATCHDOG=1" in text for text in messages[seen:]), messages[seen:]
    seen = len(messages)
    wait_for(lambda: any("WATCHDOG=1" in text for text in messages[seen:]), 15,
             "the watchdog to resume once the round ends (CHECK_TIMEOUT_SECONDS)")
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    assert daemon.log.count("no watchdog ping, systemd will restart the daemon") == 1
    assert daemon.stop()[0] == 0


def test_a_missed_pre_posting_round_is_notified(env: dict[str, str], tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from autonomous_monitor import AutonomousMonitor
    from daemon.service import Daemon as Service
    from tests.support.notify_receivers import WebhookReceiver

    receiver = WebhookReceiver()
    settings = load_settings({**env, "NOTIFY_URLS": receiver.url, "MONITOR_TIMEZONE": "Europe/Berlin"})
    monitor = AutonomousMonitor.from_settings(settings)
    try:
        service = Service(monitor, {})
        service.missed("sweep", datetime(2026, 11, 30, 7, tzinfo=UTC))  # only pre-posting rounds
        service.missed("pre_posting_0800", datetime(2026, 11, 30, 7, tzinfo=UTC))
        wait_for(lambda: receiver.received, 15, "the missed-round message")
        time.sleep(0.5)
        assert len(receiver.received) == 1
        message = receiver.received[0]
        assert message["title"].startswith("WARNING")
        assert message["title"].endswith("pre-posting check of 08:00 missed")
        assert "2026-11-30 08:00 CET did not run" in message["message"]
    finally:
        monitor.close()
        receiver.down()
