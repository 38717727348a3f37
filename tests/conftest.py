"""Shared fixtures: the X API double, loopback web endpoints, real databases, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.environment import (  # noqa: E402 - shared with bench/
    FAKE_SECRETS,
    LEAK_MARKERS,
    FixedClock,
    monitor_env,
)
from tests.support.loopback_web import loopback_web  # noqa: E402
from tests.support.xapi_double import XApiDouble  # noqa: E402
from utils.config import load_settings  # noqa: E402
from utils.context import MonitorContext  # noqa: E402
from utils.redact import register_secrets  # noqa: E402

# Fixtures of their own modules: the real daemon as a child process, systemd's notify socket.
pytest_plugins = ("tests.support.daemon",)


@pytest.fixture
def web_ok() -> Iterator[str]:
    """A loopback URL that answers every GET with 204 (stands in for the internet)."""
    with loopback_web() as url:
        yield url


@pytest.fixture
def x_api() -> Iterator[XApiDouble]:
    """The loopback X API v2 double, valid for the fake TWITTER_API_KEY."""
    with XApiDouble(api_key=FAKE_SECRETS["TWITTER_API_KEY"]) as double:
        yield double


@pytest.fixture
def env(tmp_path: Path, x_api: XApiDouble, web_ok: str) -> dict[str, str]:
    """A complete environment for one test: temp SQLite, temp logs, loopback X API and web."""
    return {**monitor_env(tmp_path, x_api.base_url, web_ok), "CHECK_TIMEOUT_SECONDS": "3"}


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def make_ctx(clock: FixedClock) -> Iterator[Any]:
    """Build a MonitorContext from an environment dict (closed after the test)."""
    made: list[MonitorContext] = []

    def build(environ: dict[str, str], **overrides: Any) -> MonitorContext:
        settings = load_settings(environ)
        if overrides:
            settings = settings.with_overrides(**overrides)
        register_secrets(settings.secret_values)
        ctx = MonitorContext(settings, clock=clock)
        made.append(ctx)
        return ctx

    yield build
    for ctx in made:
        ctx.close()


def run_cli(args: list[str], environ: dict[str, str], *, timeout: float = 60,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python autonomous_monitor.py ARGS` as a real process with only `environ` (+PATH)."""
    full_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"),
                "PYTHONDONTWRITEBYTECODE": "1", **environ}
    return subprocess.run([sys.executable, str(ROOT / "autonomous_monitor.py"), *args],
                          env=full_env, cwd=cwd or ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)


PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
MYSQL_ADMIN_URL = os.environ.get("TEST_MYSQL_URL", "mysql+pymysql://root@127.0.0.1:3306/test")


def _scratch_database(admin_url: str, kind: str) -> Iterator[str]:
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"am_{kind}_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT",
                              connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            conn.execute(text(f"CREATE DATABASE {name}"))
    except Exception as exc:
        pytest.skip(f"{kind} server not reachable at {admin_url}: {exc}")
    yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        if kind == "pg":
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        else:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
    admin.dispose()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A fresh database on the machine's real PostgreSQL, dropped afterwards."""
    yield from _scratch_database(PG_ADMIN_URL, "pg")


@pytest.fixture
def mysql_url() -> Iterator[str]:
    """A fresh database on the machine's real MariaDB, dropped afterwards."""
    yield from _scratch_database(MYSQL_ADMIN_URL, "my")


def assert_no_secret(*texts: str) -> None:
    """Fail if any of the fake secrets appears in any of `texts`."""
    for text in texts:
        for marker in LEAK_MARKERS:
            where = text.find(marker)
            assert where < 0, f"secret {marker!r} leaked: …{text[max(0, where - 80):][:200]}…"
