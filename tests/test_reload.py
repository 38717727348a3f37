"""SIGHUP: the real daemon re-reads `.env`, applies a good configuration and keeps the old on a
bad one, staying alive either way; in-process, a reload replans the jobs and rebuilds the channels."""

from __future__ import annotations

import json
import signal
from pathlib import Path
from typing import Any

import pytest

from autonomous_monitor import AutonomousMonitor
from daemon.service import Daemon as DaemonService
from tests.conftest import assert_no_secret, run_cli
from tests.support.faults import wait_for

HEARTBEAT_SECRET = "SECRETheartbeat0123456789"


def write_env(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def status_jobs(env: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The job table as `status --json` shows it."""
    proc = run_cli(["status", "--json"], env)
    return {job["id"]: job for job in json.loads(proc.stdout)["jobs"] if job.get("next_run_at")}


def reload_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if "SIGHUP" in line]


@pytest.mark.slow
def test_sighup_applies_a_good_env_and_keeps_the_old_one_on_a_bad_env(
        env: dict[str, str], tmp_path: Path, daemons: Any, notify_socket: Any) -> None:
    socket_path, messages = notify_socket
    env_file = tmp_path / ".env"
    write_env(env_file, "POSTING_TIMES=09:00\nSWEEP_INTERVAL=30m\n")
    environ = {**env, "ENV_FILE": str(env_file), "NOTIFY_SOCKET": socket_path}
    daemon = daemons(environ)
    wait_for(lambda: "READY=1" in "".join(messages), 20, "READY=1")
    jobs = wait_for(lambda: status_jobs(environ), 10, "the job table")
    assert "pre_posting_0800" in jobs and jobs["sweep"]["trigger"] == "interval[0:30:00]"

    # a good .env: new times (with an inline comment, read as the service reads it) and a secret
    write_env(env_file, "POSTING_TIMES=10:00 # morning\nSWEEP_INTERVAL=5m\n"
                        f"HEARTBEAT_URL=http://127.0.0.1:9/ping/{HEARTBEAT_SECRET}\n")
    daemon.proc.send_signal(signal.SIGHUP)
    jobs = wait_for(lambda: (lambda j: "pre_posting_0900" in j and j)(status_jobs(environ)), 10,
                    "the new plan in `status --json`")
    assert "pre_posting_0800" not in jobs and jobs["sweep"]["trigger"] == "interval[0:05:00]"
    [line] = wait_for(lambda: reload_lines(daemon.log), 5, "the reload line")
    assert "applied POSTING_TIMES=10:00, SWEEP_INTERVAL=0:05:00, HEARTBEAT_URL (secret)" in line
    assert "pre_posting_0800" in line and "pre_posting_0900" in line and "sweep" in line
    assert "RELOADING=1" in "".join(messages)

    # a bad .env: refused in one line naming the variable, the running plan kept, still alive
    write_env(env_file, "POSTING_TIMES=10:00\nSWEEP_INTERVAL=0.01s\n")
    daemon.proc.send_signal(signal.SIGHUP)
    lines = wait_for(lambda: (lambda found: len(found) == 2 and found)(reload_lines(daemon.log)), 5,
                     "the refusal")
    assert "reload refused, the running configuration is kept: configuration error: SWEEP_INTERVAL " \
           "must be at least 1s" in lines[1]
    env_file.unlink()  # a missing ENV_FILE is refused the same way
    daemon.proc.send_signal(signal.SIGHUP)
    lines = wait_for(lambda: (lambda found: len(found) == 3 and found)(reload_lines(daemon.log)), 5,
                     "the second refusal")
    assert "configuration error: ENV_FILE names" in lines[2] and "does not exist" in lines[2]
    assert daemon.proc.poll() is None  # SIGHUP never stops it
    assert status_jobs({**environ, "ENV_FILE": "/dev/null"})["sweep"]["trigger"] == "interval[0:05:00]"
    assert "Traceback" not in daemon.log
    assert HEARTBEAT_SECRET not in daemon.log
    assert_no_secret(daemon.log)
    code, took = daemon.stop(signal.SIGTERM)  # other signals keep their meaning
    assert code == 0 and took < 10


def test_a_reload_replans_jobs_keeps_their_bookkeeping_and_rebuilds_the_channels(
        env: dict[str, str], tmp_path: Path, make_ctx: Any) -> None:
    env_file = tmp_path / ".env"
    write_env(env_file, "POSTING_TIMES=09:00,15:00\nJOB_TIMEOUT_SECONDS=300\n")
    environ = {**env, "ENV_FILE": str(env_file)}
    monitor = AutonomousMonitor(make_ctx(environ))
    daemon = DaemonService(monitor, environ)
    daemon.schedule()
    daemon.scheduler.start(paused=True)
    try:
        daemon.scheduler.remove_job("startup")  # as if the start-up round had run
        sweep = daemon.scheduler.get_job("sweep").func
        write_env(env_file, "POSTING_TIMES=09:00\nJOB_TIMEOUT_SECONDS=120\nNOTIFY_URLS=json://127.0.0.1:9/hook\n"
                            "MONITOR_HTTP_PORT=8099\n")
        assert daemon.reloader.reload()
        ids = {job.id for job in daemon.scheduler.get_jobs()}
        assert "pre_posting_0800" in ids and "pre_posting_1400" not in ids and "startup" not in ids
        assert daemon.scheduler.get_job("sweep").func is sweep and sweep.timeout_s == 120  # same job
        assert sorted(job.job_id for job in daemon.bounded) == sorted(
            job.id for job in daemon.scheduler.get_jobs() if job.id != "watchdog")
        assert [channel.url for channel in monitor.notifications.channels] == ["json://127.0.0.1:9/hook"]
        assert monitor.ctx.settings is daemon.settings and daemon.settings.job_timeout_seconds == 120
        assert daemon.settings.monitor_http_port is None  # needs a restart: the running value is kept
        write_env(env_file, "POSTING_TIMES=nope\n")
        assert not daemon.reloader.reload()
        assert daemon.settings.posting_times[0].hour == 9 and monitor.ctx.settings is daemon.settings
    finally:
        daemon.scheduler.shutdown(wait=False)
        monitor.notifications.stop(2)

