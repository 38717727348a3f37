"""`scheduler`: the heartbeat file against the injected clock, and `systemctl is-active`."""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path
from typing import Any

import pytest

from checks import scheduler
from checks.base import Status, run_one
from tests.conftest import FixedClock

SYSTEMD_RUNNING = Path("/run/systemd/system").is_dir()  # sd_booted(3): systemd is PID 1
NO_SYSTEMD = "systemd is running on this machine, so the no-systemd answer cannot be seen"
NEEDS_SYSTEMD = "systemd is not PID 1 here (a container): no unit state to read"


def run(ctx: Any) -> Any:
    return run_one("scheduler", scheduler.check, ctx)


def heartbeat(tmp_path: Path, clock: FixedClock, age_s: float) -> Path:
    """A heartbeat file last touched `age_s` seconds before the clock's now."""
    path = tmp_path / "pipeline.heartbeat"
    path.write_text("alive\n")
    stamp = clock().timestamp() - age_s
    os.utime(path, (stamp, stamp))
    return path


def test_fresh_heartbeat_is_ok_with_its_age(env: dict, make_ctx: Any, clock: FixedClock,
                                            tmp_path: Path) -> None:
    path = heartbeat(tmp_path, clock, 42)
    result = run(make_ctx({**env, "SCHEDULER_HEARTBEAT_FILE": str(path),
                           "SCHEDULER_HEARTBEAT_MAX_AGE_SECONDS": "900"}))
    assert result.status is Status.OK, result.detail
    assert result.data["heartbeat_age_seconds"] == 42
    assert result.detail == "heartbeat 42s old"


def test_heartbeat_goes_stale_as_the_clock_moves(env: dict, make_ctx: Any, clock: FixedClock,
                                                 tmp_path: Path) -> None:
    path = heartbeat(tmp_path, clock, 0)
    ctx = make_ctx({**env, "SCHEDULER_HEARTBEAT_FILE": str(path),
                    "SCHEDULER_HEARTBEAT_MAX_AGE_SECONDS": "600"})
    clock.advance(seconds=600)
    assert run(ctx).status is Status.OK  # exactly at the limit is still alive
    clock.advance(seconds=661)
    stale = run(ctx)
    assert stale.status is Status.CRITICAL and stale.failure_class == "scheduler"
    assert stale.data["heartbeat_age_seconds"] == 1261
    assert stale.detail == "heartbeat is 1261s old (max 600s)"


def test_old_mtime_is_critical_with_age(env: dict, make_ctx: Any, clock: FixedClock,
                                        tmp_path: Path) -> None:
    path = heartbeat(tmp_path, clock, 3 * 3600)
    result = run(make_ctx({**env, "SCHEDULER_HEARTBEAT_FILE": str(path)}))  # default max 900 s
    assert result.status is Status.CRITICAL
    assert "10800s old (max 900s)" in result.detail


def test_missing_heartbeat_file_is_critical(env: dict, make_ctx: Any, tmp_path: Path) -> None:
    path = tmp_path / "never-written.heartbeat"
    result = run(make_ctx({**env, "SCHEDULER_HEARTBEAT_FILE": str(path)}))
    assert result.status is Status.CRITICAL and result.failure_class == "scheduler"
    assert result.detail == f"heartbeat file {path} is missing"


def test_neither_setting_is_unknown_not_configured(env: dict, make_ctx: Any) -> None:
    result = run(make_ctx(env))
    assert result.status is Status.UNKNOWN
    assert result.detail.startswith("not configured")
    assert "SCHEDULER_SERVICE" in result.detail and "SCHEDULER_HEARTBEAT_FILE" in result.detail


@pytest.mark.skipif(SYSTEMD_RUNNING, reason=NO_SYSTEMD)
@pytest.mark.skipif(shutil.which("systemctl") is None, reason="systemctl is not installed here")
def test_service_without_systemd_is_unknown_and_says_so(env: dict, make_ctx: Any) -> None:
    result = run(make_ctx({**env, "SCHEDULER_SERVICE": "pipeline-scheduler.service"}))
    assert result.status is Status.UNKNOWN
    assert result.detail == ("no systemd on this machine (a container?): cannot see "
                             "pipeline-scheduler.service")
    assert result.data["unit"] == {"name": "pipeline-scheduler.service", "status": "unknown"}


@pytest.mark.skipif(SYSTEMD_RUNNING, reason=NO_SYSTEMD)
def test_heartbeat_decides_when_systemd_cannot(env: dict, make_ctx: Any, clock: FixedClock,
                                               tmp_path: Path) -> None:
    settings = {**env, "SCHEDULER_SERVICE": "pipeline-scheduler.service"}
    fresh = run(make_ctx({**settings, "SCHEDULER_HEARTBEAT_FILE": str(heartbeat(tmp_path, clock, 5))}))
    assert fresh.status is Status.OK and "heartbeat 5s old" in fresh.detail
    assert "pipeline-scheduler.service" in fresh.detail  # what could not be seen is still said
    missing = run(make_ctx({**settings, "SCHEDULER_HEARTBEAT_FILE": str(tmp_path / "gone")}))
    assert missing.status is Status.CRITICAL and "is missing" in missing.detail


def test_systemctl_not_installed_is_unknown(env: dict, make_ctx: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))  # the child process finds no systemctl
    result = run(make_ctx({**env, "SCHEDULER_SERVICE": "pipeline-scheduler.service"}))
    assert result.status is Status.UNKNOWN and "systemctl is not installed" in result.detail


def _stand_in_systemctl(tmp_path: Path, script: str) -> Path:
    folder = tmp_path / "bin"
    folder.mkdir(exist_ok=True)
    program = folder / "systemctl"
    program.write_text(f"#!/bin/sh\n{script}\n")
    program.chmod(program.stat().st_mode | stat.S_IEXEC)
    return folder


@pytest.mark.parametrize(("script", "status", "words"), [
    ('echo active; exit 0', Status.OK, "pipeline.service is active"),
    ('echo inactive; exit 3', Status.CRITICAL, "pipeline.service is inactive"),
    ('echo failed; exit 3', Status.CRITICAL, "pipeline.service is failed"),
    ('echo activating; exit 3', Status.WARNING, "pipeline.service is activating"),
    ('exec sleep 30', Status.UNKNOWN, "did not answer in time"),
])
@pytest.mark.slow
def test_unit_states_from_a_stand_in_systemctl(script: str, status: Status, words: str, env: dict,
                                                make_ctx: Any, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """A real child process on PATH plays systemctl, so each answer's mapping is seen here too."""
    folder = _stand_in_systemctl(tmp_path, script)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    result = run(make_ctx({**env, "SCHEDULER_SERVICE": "pipeline.service",
                           "CHECK_TIMEOUT_SECONDS": "0.5"}))
    assert result.status is status
    assert words in result.detail
    assert result.duration_ms < 3000


@pytest.mark.skipif(not SYSTEMD_RUNNING, reason=NEEDS_SYSTEMD)
def test_real_systemd_active_and_inactive_units(env: dict, make_ctx: Any) -> None:
    active = run(make_ctx({**env, "SCHEDULER_SERVICE": "systemd-journald.service"}))
    assert active.status is Status.OK and "is active" in active.detail
    absent = run(make_ctx({**env, "SCHEDULER_SERVICE": "autonomiq-no-such-unit.service"}))
    assert absent.status is Status.CRITICAL and "inactive" in absent.detail
