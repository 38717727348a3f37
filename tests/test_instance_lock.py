"""One daemon per ledger: two real daemons on one SQLite file, PostgreSQL or MariaDB database."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from daemon.instance_lock import INSTANCE_STATE_KEY, InstanceLock, holder_record, lock_is_held
from tests.conftest import assert_no_secret, run_cli
from tests.support.faults import DaemonProcess, wait_for
from tests.support.xapi_double import ME
from utils.db import health_checks, make_engine
from utils.state import get_state


@pytest.fixture(params=["sqlite", "postgres", "mysql"])
def ledger_url(request: pytest.FixtureRequest, env: dict[str, str]) -> str:
    """The same ledger on each backend."""
    if request.param == "sqlite":
        return env["DATABASE_URL"]
    return str(request.getfixturevalue(f"{request.param}_url"))


def test_the_lock_is_exclusive_and_free_again_after_release(ledger_url: str, clock: Any) -> None:
    first_engine, second_engine = make_engine(ledger_url), make_engine(ledger_url)
    first, second = InstanceLock(first_engine), InstanceLock(second_engine)
    try:
        assert lock_is_held(second_engine) is False
        assert first.acquire(holder_record(clock()))
        assert lock_is_held(second_engine) is True
        assert not second.acquire(holder_record(clock()))  # a second holder is refused, at once
        assert first.still_held()
        first.release()
        assert lock_is_held(second_engine) is False
        assert second.acquire(holder_record(clock()))
    finally:
        first.release()
        second.release()
        first_engine.dispose()
        second_engine.dispose()


def startup_rows(engine: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).where(health_checks.c.trigger == "startup")).scalar())


@pytest.mark.slow
def test_a_second_daemon_on_the_same_ledger_refuses_naming_the_holder(
        env: dict[str, str], ledger_url: str, x_api: Any, tmp_path: Path) -> None:
    environ = {**env, "DATABASE_URL": ledger_url, "SWEEP_INTERVAL": "1h"}
    first = DaemonProcess(environ, tmp_path, "first")
    second: DaemonProcess | None = None
    engine = make_engine(ledger_url)
    try:
        wait_for(lambda: "instance lock taken" in first.log, 20, "the first daemon to take the lock")
        wait_for(lambda: "job startup done" in first.log, 20, "the first start-up round")
        me_calls, rounds = x_api.calls.get(ME, 0), startup_rows(engine)
        second = DaemonProcess(environ, tmp_path, "second")
        started = time.monotonic()
        assert second.proc.wait(15) == 75  # EX_TEMPFAIL
        assert time.monotonic() - started < 10
        refusal = [line for line in second.log.splitlines() if "another daemon already runs" in line]
        assert len(refusal) == 1, second.log
        assert f"pid {first.proc.pid} on {socket.gethostname()} since " in refusal[0]
        assert "startup round:" not in second.log and "sweep:" not in second.log  # no job did its work
        assert x_api.calls.get(ME, 0) == me_calls  # the second one asked X nothing
        assert startup_rows(engine) == rounds  # and ran no start-up round
        assert get_state(engine, INSTANCE_STATE_KEY)["pid"] == first.proc.pid
        status = run_cli(["status", "--json"], environ)
        report = json.loads(status.stdout)
        assert report["instance"]["held"] is True and report["instance"]["holder"]["pid"] == first.proc.pid
        assert report["daemon"]["pid"] == first.proc.pid and report["daemon"]["state"] == "running"
        text = run_cli(["status"], environ).stdout
        assert f"ledger lock: held by pid {first.proc.pid} on {socket.gethostname()}" in text
        assert first.stop() == 0
        third = DaemonProcess(environ, tmp_path, "third")  # the lock died with its holder
        try:
            wait_for(lambda: "instance lock taken" in third.log, 20, "the lock to be taken again")
            assert third.stop() == 0
        finally:
            third.cleanup()
        assert_no_secret(first.log, second.log, third.log, text)
    finally:
        first.cleanup()
        if second is not None:
            second.cleanup()
        engine.dispose()
