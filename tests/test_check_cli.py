"""`autonomous_monitor.py check` as a real process: JSON shape, Nagios exit codes, table, history,
concurrency with a hung check, redaction of every credential, and bad settings (exit 78)."""

from __future__ import annotations

import json
import os
import re
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, select, text
from sqlalchemy.engine import make_url

from tests.conftest import FAKE_SECRETS, assert_no_secret, run_cli
from tests.support.loopback_web import refused_url
from tests.support.notify_receivers import running_webhook
from tests.support.xapi_double import BODY_401, ME, Reply, XApiDouble
from utils.config import EX_CONFIG
from utils.db import health_checks

CONTRACT_NAMES = ["twitter_api", "database", "internet", "disk_space", "scheduler"]
webhook = pytest.fixture(running_webhook, name="webhook")



def heartbeat(tmp_path: Path) -> str:
    """A freshly touched scheduler heartbeat file, so `scheduler` is ok."""
    path = tmp_path / "scheduler.heartbeat"
    path.write_text("alive\n")
    return str(path)


def check_json(environ: dict[str, str], **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    proc = run_cli(["check", "--json"], environ, **kwargs)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc, json.loads(proc.stdout)


def by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["name"]: item for item in report["checks"]}


@pytest.mark.slow
def test_json_shape_and_twitter_api_ok_with_username(env: dict, tmp_path: Path,
                                                     x_api: XApiDouble) -> None:
    proc, report = check_json({**env, "SCHEDULER_HEARTBEAT_FILE": heartbeat(tmp_path)})
    assert {"status", "checked_at", "checks"} <= set(report)  # the contract; extra keys may follow
    assert [item["name"] for item in report["checks"]] == CONTRACT_NAMES
    for item in report["checks"]:
        assert set(item) == {"name", "status", "detail", "duration_ms", "data"}
        assert item["status"] in ("ok", "warning", "unknown", "critical")
        assert isinstance(item["detail"], str) and "\n" not in item["detail"]
        assert isinstance(item["duration_ms"], int | float) and item["duration_ms"] >= 0
        assert isinstance(item["data"], dict)
    assert datetime.fromisoformat(report["checked_at"]).tzinfo is not None
    twitter = by_name(report)["twitter_api"]
    assert twitter["status"] == "ok" and twitter["data"]["username"] == "autonomiq_bot"
    assert "@autonomiq_bot" in twitter["detail"]
    assert x_api.calls[ME] == 1
    assert report["status"] == "ok" and proc.returncode == 0, proc.stdout


@pytest.mark.parametrize(("warning", "unknown", "critical", "top", "code"), [
    (False, False, False, "ok", 0),
    (True, False, False, "warning", 1),
    (False, False, True, "critical", 2),
    (False, True, False, "unknown", 3),
    (True, True, False, "unknown", 3),      # unknown outranks warning
    (True, True, True, "critical", 2),      # critical outranks unknown
])
@pytest.mark.slow
def test_exit_code_follows_nagios_and_the_worst_wins(warning: bool, unknown: bool, critical: bool,
                                                      top: str, code: int, env: dict, tmp_path: Path,
                                                      web_ok: str, x_api: XApiDouble) -> None:
    environ = dict(env)
    if not unknown:  # otherwise the scheduler is not configured: unknown
        environ["SCHEDULER_HEARTBEAT_FILE"] = heartbeat(tmp_path)
    if warning:  # one of two connectivity URLs refuses
        environ["CONNECTIVITY_URLS"] = f"{web_ok},{refused_url()}"
    if critical:
        x_api.always(ME, Reply(401, BODY_401))
    proc, report = check_json(environ)
    statuses = {item["name"]: item["status"] for item in report["checks"]}
    assert statuses["internet"] == ("warning" if warning else "ok")
    assert statuses["scheduler"] == ("unknown" if unknown else "ok")
    assert statuses["twitter_api"] == ("critical" if critical else "ok")
    assert report["status"] == top
    assert proc.returncode == code


@pytest.mark.slow
def test_readable_table_shows_status_name_detail_and_time(env: dict) -> None:
    proc = run_cli(["check"], env)
    assert proc.returncode == 3, proc.stderr  # the scheduler is not configured
    lines = proc.stdout.splitlines()
    assert re.fullmatch(r"STATUS\s+CHECK\s+TIME\s+DETAIL", lines[0])
    overall = lines.index("overall: unknown")
    rows = {}
    for line in lines[1:overall]:
        match = re.fullmatch(r"(OK|WARNING|UNKNOWN|CRITICAL)\s+(\w+)\s+(\d+)ms  (.+)", line)
        assert match, line
        rows[match[2]] = (match[1], match[4])
    assert list(rows) == CONTRACT_NAMES
    assert rows["twitter_api"][0] == "OK" and "@autonomiq_bot" in rows["twitter_api"][1]
    assert rows["scheduler"] == ("UNKNOWN", rows["scheduler"][1])
    assert rows["scheduler"][1].startswith("not configured")


@pytest.mark.slow
def test_help_lists_every_subcommand_and_the_exit_codes() -> None:
    from autonomous_monitor import COMMANDS

    main_help = run_cli(["--help"], {})
    assert main_help.returncode == 0
    for name, (_handler, help_text, _args) in COMMANDS.items():
        assert re.search(rf"^\s+{re.escape(name)}\s", main_help.stdout, re.M), name
        assert help_text[:40] in " ".join(main_help.stdout.split())
    check_help = run_cli(["check", "--help"], {})
    assert check_help.returncode == 0 and "--json" in check_help.stdout
    assert "0 ok, 1 warning, 2 critical, 3 unknown" in check_help.stdout


@pytest.mark.slow
def test_results_are_stored_in_health_checks(env: dict, tmp_path: Path) -> None:
    environ = {**env, "SCHEDULER_HEARTBEAT_FILE": heartbeat(tmp_path)}
    _, first = check_json(environ)
    _, second = check_json(environ)
    engine = create_engine(env["DATABASE_URL"])
    with engine.connect() as conn:
        rows = conn.execute(select(health_checks).order_by(health_checks.c.id)).mappings().all()
    engine.dispose()
    assert len(rows) == 10
    assert [row["name"] for row in rows] == CONTRACT_NAMES * 2
    assert {row["trigger"] for row in rows} == {"manual"}
    for row, item in zip(rows[5:], second["checks"], strict=True):
        assert (row["status"], row["detail"]) == (item["status"], item["detail"])
        assert json.loads(row["data"]).keys() == item["data"].keys()
        assert row["duration_ms"] == pytest.approx(item["duration_ms"], abs=0.1)
    assert rows[0]["checked_at"] <= rows[5]["checked_at"]
    assert first["status"] == second["status"] == "ok"


@pytest.mark.slow
def test_one_hung_check_does_not_hold_up_the_round(env: dict, tmp_path: Path,
                                                   x_api: XApiDouble) -> None:
    x_api.always(ME, Reply(mode="hang"))
    environ = {**env, "CHECK_TIMEOUT_SECONDS": "2", "SCHEDULER_HEARTBEAT_FILE": heartbeat(tmp_path)}
    started = time.monotonic()
    proc, report = check_json(environ, timeout=20)
    elapsed = time.monotonic() - started
    assert elapsed < 3.5, f"check took {elapsed:.1f}s with a 2 s timeout"
    results = by_name(report)
    twitter = results.pop("twitter_api")
    assert twitter["status"] == "critical" and "2s" in twitter["detail"]
    assert re.search(r"did not answer|no answer", twitter["detail"]), twitter["detail"]
    assert {name: item["status"] for name, item in results.items()} == {
        "database": "ok", "internet": "ok", "disk_space": "ok", "scheduler": "ok"}
    assert results["disk_space"]["data"]["paths"] and results["internet"]["data"]["urls"]
    assert proc.returncode == 2
    assert x_api.calls[ME] >= 1


# Every credential variable the monitor knows, each with a recognisable value.
EXTRA_SECRETS = {
    "TWITTER_CLIENT_SECRET": "SECRETclientsecretZZ0123",
    "TWITTER_OAUTH2_REFRESH_TOKEN": "SECRETrefreshtokenZZ0123",
    "HEARTBEAT_URL": "http://127.0.0.1:9/ping/SECRETheartbeatuuidZZ",
}
DB_PASSWORD = "SECRETdbpasswordZZ77"
NOTIFY_PASSWORD = "SECRETnotifypassZZ55"
EXTRA_MARKERS = ("SECRETclientsecret", "SECRETrefreshtoken", "SECRETheartbeatuuid", DB_PASSWORD,
                 NOTIFY_PASSWORD, FAKE_SECRETS["TWITTER_API_KEY"])


def assert_nothing_secret(*texts: str) -> None:
    assert_no_secret(*texts)
    for text_ in texts:
        for marker in EXTRA_MARKERS:
            assert marker not in text_, f"{marker!r} leaked: {text_[max(0, text_.find(marker) - 80):][:200]}"


def all_rows(url: str) -> str:
    engine = create_engine(url)
    dumped = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            dumped += [repr(tuple(row)) for row in conn.execute(text(f'SELECT * FROM "{table}"'))]
    engine.dispose()
    return "\n".join(dumped)


@pytest.mark.slow
def test_no_secret_anywhere_even_at_debug_with_an_echoing_api(env: dict, tmp_path: Path,
                                                              x_api: XApiDouble, postgres_url: str,
                                                              webhook: Any) -> None:
    echo = (f"Invalid or expired token {FAKE_SECRETS['TWITTER_ACCESS_TOKEN']} "
            f"(secret {FAKE_SECRETS['TWITTER_ACCESS_TOKEN_SECRET']}, "
            f"bearer {FAKE_SECRETS['TWITTER_BEARER_TOKEN']}, "
            f"consumer secret {FAKE_SECRETS['TWITTER_API_SECRET']})")  # long: the detail gets cut
    x_api.always(ME, Reply(401, {"title": "Unauthorized", "type": "about:blank", "status": 401,
                                 "detail": echo}, {"x-echo-token": FAKE_SECRETS["TWITTER_ACCESS_TOKEN"]}))
    database_url = make_url(postgres_url).set(password=DB_PASSWORD).render_as_string(hide_password=False)
    notify_url = webhook.url.replace("json://", f"json://monitor:{NOTIFY_PASSWORD}@")
    environ = {**env, **EXTRA_SECRETS, "DATABASE_URL": database_url, "LOG_LEVEL": "DEBUG",
               "NOTIFY_URLS": notify_url, "ALERT_AFTER_FAILURES": "1",
               "SCHEDULER_HEARTBEAT_FILE": heartbeat(tmp_path)}
    as_json = run_cli(["check", "--json"], environ)
    as_table = run_cli(["check"], environ)
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 2 and by_name(report)["twitter_api"]["status"] == "critical"
    assert "credentials rejected: 401" in by_name(report)["twitter_api"]["detail"]
    assert by_name(report)["database"]["status"] == "ok"  # the rows below really are in PostgreSQL
    assert webhook.received, "the critical result should have been alerted"
    log_text = "".join(path.read_text() for path in (tmp_path / "logs").glob("*.log*"))
    assert "check twitter_api: critical" in log_text  # the log was written, at DEBUG
    rows = all_rows(postgres_url)
    assert "credentials rejected" in rows
    assert_nothing_secret(as_json.stdout, as_json.stderr, as_table.stdout, as_table.stderr, log_text,
                          rows, *webhook.raw)


@pytest.mark.parametrize(("variable", "value"), [
    ("DATABASE_URL", f"postgresql://monitor:{DB_PASSWORD}@127.0.0.1:notaport/test"),
    ("CHECK_TIMEOUT_SECONDS", "0"),
    ("CONNECTIVITY_URLS", "https://ok.example.com,not a url"),
    ("DISK_CRIT_FREE_PERCENT", "20"),  # above the default warn threshold of 15
    ("SCHEDULER_HEARTBEAT_MAX_AGE_SECONDS", "-5"),
])
@pytest.mark.slow
def test_bad_check_setting_exits_78_with_one_line(variable: str, value: str, tmp_path: Path) -> None:
    # CHECK_TIMEOUT_SECONDS=abc, POSTING_TIMES=25:00, bad timezones and base URLs: tests/test_config.py
    proc = run_cli(["check", "--json"], {"ENV_FILE": "/dev/null", variable: value,
                                         "LOG_DIR": str(tmp_path / "logs")})
    assert proc.returncode == EX_CONFIG
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"configuration error: {variable} "), proc.stderr
    assert proc.stdout == "" and DB_PASSWORD not in proc.stderr
    assert not os.path.exists(tmp_path / "logs" / "autonomous_monitor.log")
