"""`database` against real servers: SQLite, PostgreSQL, MariaDB, and ones that refuse us."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from checks import database
from checks.base import Status, run_one
from tests.conftest import MYSQL_ADMIN_URL
from tests.support.loopback_web import free_port

DB_PASSWORD = "SECRETdbpassword-Wrong42"  # recognisable: must never show up in a result


def run(ctx: Any) -> Any:
    return run_one("database", database.check, ctx)



def assert_password_hidden(result: Any, password: str) -> None:
    shown = result.detail + json.dumps(result.data, default=str)
    assert password not in shown, shown


def test_sqlite_file_is_created_on_first_use(env: dict, make_ctx: Any, tmp_path: Path) -> None:
    db_file = tmp_path / "fresh-monitor.db"  # a folder that does not exist is refused (a typo)
    assert not db_file.exists()
    result = run(make_ctx({**env, "DATABASE_URL": f"sqlite:///{db_file}"}))
    assert result.status is Status.OK, result.detail
    assert db_file.is_file()
    assert result.data["backend"] == "sqlite" and result.data["latency_ms"] >= 0
    assert "sqlite answered in" in result.detail


def test_real_postgresql_answers(env: dict, make_ctx: Any, postgres_url: str) -> None:
    result = run(make_ctx({**env, "DATABASE_URL": postgres_url}))
    assert result.status is Status.OK, result.detail
    assert result.data["backend"] == "postgresql" and "postgresql answered in" in result.detail
    assert make_url(result.data["url"]).database == make_url(postgres_url).database


@pytest.mark.slow
def test_real_mariadb_answers(env: dict, make_ctx: Any, mysql_url: str) -> None:
    result = run(make_ctx({**env, "DATABASE_URL": mysql_url}))
    assert result.status is Status.OK, result.detail
    assert result.data["backend"] == "mysql" and result.data["latency_ms"] >= 0


def test_postgresql_port_where_nothing_listens_is_quick_critical(env: dict, make_ctx: Any) -> None:
    url = f"postgresql://monitor:{DB_PASSWORD}@127.0.0.1:{free_port()}/test"
    started = time.monotonic()
    result = run(make_ctx({**env, "DATABASE_URL": url, "CHECK_TIMEOUT_SECONDS": "5"}))
    assert time.monotonic() - started < 2  # refused at once, not the 5 s connect timeout
    assert result.status is Status.CRITICAL and result.failure_class == "database"
    assert "\n" not in result.detail
    assert result.detail.startswith("postgresql unreachable: ")
    assert "Connection refused" in result.detail  # the driver's own reason
    assert_password_hidden(result, DB_PASSWORD)


def test_missing_postgresql_database_is_critical_and_named(env: dict, make_ctx: Any,
                                                           postgres_url: str) -> None:
    # The server trusts loopback, so the (wrong) password is accepted; the database is not there.
    missing = f"am_missing_{uuid.uuid4().hex[:8]}"
    url = make_url(postgres_url).set(database=missing, password=DB_PASSWORD)
    result = run(make_ctx({**env, "DATABASE_URL": url.render_as_string(hide_password=False)}))
    assert result.status is Status.CRITICAL
    assert f'database "{missing}" does not exist' in result.detail
    assert "\n" not in result.detail
    assert_password_hidden(result, DB_PASSWORD)


@pytest.fixture
def mariadb_user() -> Iterator[str]:
    """A MariaDB login with a known good password (dropped afterwards)."""
    user = f"am_{uuid.uuid4().hex[:8]}"
    try:
        admin = create_engine(MYSQL_ADMIN_URL, isolation_level="AUTOCOMMIT",
                              connect_args={"connect_timeout": 3})
        with admin.connect() as conn:
            conn.execute(text(f"CREATE USER '{user}'@'%' IDENTIFIED BY 'right-password-1'"))
    except Exception as exc:
        pytest.skip(f"MariaDB not reachable at {MYSQL_ADMIN_URL}: {exc}")
    yield user
    with admin.connect() as conn:
        conn.execute(text(f"DROP USER IF EXISTS '{user}'@'%'"))
    admin.dispose()


def test_bad_password_is_critical_without_the_password(env: dict, make_ctx: Any,
                                                       mariadb_user: str) -> None:
    base = make_url(MYSQL_ADMIN_URL)
    url = base.set(username=mariadb_user, password=DB_PASSWORD).render_as_string(hide_password=False)
    result = run(make_ctx({**env, "DATABASE_URL": url}))
    assert result.status is Status.CRITICAL and result.failure_class == "database"
    assert "Access denied" in result.detail and mariadb_user in result.detail
    assert "\n" not in result.detail
    assert_password_hidden(result, DB_PASSWORD)


def test_password_stays_hidden_even_when_not_registered_as_a_secret(env: dict, clock: Any,
                                                                    mariadb_user: str) -> None:
    # Built without make_ctx's register_secrets: the check itself must not put the password out.
    from utils.config import load_settings
    from utils.context import MonitorContext

    password = "UnregisteredPw-" + uuid.uuid4().hex[:8]
    url = make_url(MYSQL_ADMIN_URL).set(username=mariadb_user, password=password)
    ctx = MonitorContext(load_settings({**env, "DATABASE_URL": url.render_as_string(hide_password=False)}),
                         clock=clock)
    try:
        result = run(ctx)
    finally:
        ctx.close()
    assert result.status is Status.CRITICAL
    assert_password_hidden(result, password)
