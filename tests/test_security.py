"""Security audit: no secret leaves the process, `.env` exposure is reported, the HTTP endpoint
is small, local and bounded, and configured URLs are never shown in full."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests
from sqlalchemy import MetaData, create_engine
from sqlalchemy import select as sql_select
from sqlalchemy.engine import make_url

from autonomiq_ledger.posting import post, schedule_post
from daemon import http_endpoint
from daemon.http_endpoint import Limits, start_http_endpoint
from daemon.status_report import DAEMON_STATE_KEY
from tests.conftest import FAKE_SECRETS, ROOT, run_cli
from tests.support.notify_receivers import (
    SMTP_PASSWORD,
    free_port,
    running_path_recorder,
    running_smtp,
    running_webhook,
)
from tests.support.xapi_double import ME, TWEETS, Reply
from utils.config import load_settings
from utils.env_file import exposure
from utils.state import get_state

webhook = pytest.fixture(running_webhook, name="webhook")
smtp = pytest.fixture(running_smtp, name="smtp")

DB_PASSWORD = "SECRETdbpassword4242"
WEBHOOK_TOKEN = "SECREThooktoken0123456789abcdef"
HEARTBEAT_TOKEN = "SECRETbeattoken0123456789abcdef"
EVERY_SECRET = (*FAKE_SECRETS.values(), DB_PASSWORD, WEBHOOK_TOKEN, HEARTBEAT_TOKEN, SMTP_PASSWORD)
TOKEN, TOKEN_SECRET = FAKE_SECRETS["TWITTER_ACCESS_TOKEN"], FAKE_SECRETS["TWITTER_ACCESS_TOKEN_SECRET"]

# X answers that echo what it was sent (a proxy or an API bug may do exactly that).
ECHO_401 = Reply(401, {"title": "Unauthorized", "type": "about:blank", "status": 401,
                       "detail": f"Unauthorized: access token {TOKEN} with secret {TOKEN_SECRET} and "
                                 f"bearer {FAKE_SECRETS['TWITTER_BEARER_TOKEN']} was rejected"})
ECHO_503 = Reply(503, {"title": "Service Unavailable", "type": "about:blank", "status": 503,
                       "detail": f"upstream rejected consumer_secret={FAKE_SECRETS['TWITTER_API_SECRET']}"})
PIPELINE_LOG = (
    "2026-11-28 06:58:00,000 INFO pipeline: starting with token " + TOKEN + "\n"
    "2026-11-28 06:59:00,000 ERROR pipeline.post: post 1 failed: 401 Unauthorized for access token "
    + TOKEN + " secret " + TOKEN_SECRET + "\n"
    f"2026-11-28 06:59:30,000 ERROR pipeline.db: cannot connect to postgresql://pipeline:{DB_PASSWORD}"
    "@127.0.0.1:1/ledger: connection refused\n")


def leaks(texts: dict[str, str]) -> list[str]:
    """Where each configured secret appears, as `where: secret`."""
    return [f"{where}: {secret}" for where, text in texts.items() for secret in EVERY_SECRET
            if secret in text]


@pytest.fixture
def heartbeat() -> Iterator[tuple[str, list[str]]]:
    """A loopback healthchecks.io stand-in recording the paths pinged."""
    with running_path_recorder() as recorder:
        yield recorder.url, recorder.paths


def wait_for(what: Callable[[], Any], timeout: float, why: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := what():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {why}")


def dump_database(url: str) -> dict[str, str]:
    """Every row of every table, as text, keyed by table name."""
    engine = create_engine(url)
    tables = MetaData()
    tables.reflect(engine)
    with engine.connect() as conn:
        dumped = {f"table {name}": "\n".join(repr(tuple(row)) for row in conn.execute(sql_select(table)))
                  for name, table in tables.tables.items()}
    engine.dispose()
    return dumped


# --- no secret anywhere after a full fault scenario --------------------------------------------

@pytest.fixture
def scenario(env: dict[str, str], tmp_path: Path, postgres_url: str, webhook: Any, smtp: Any,
             heartbeat: Any) -> dict[str, str]:
    """The environment of a monitor whose every secret is recognisable: X keys in a mode-600
    `.env`, a password in DATABASE_URL, tokens in a webhook URL and in HEARTBEAT_URL."""
    env_file = tmp_path / ".env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in FAKE_SECRETS.items()))
    env_file.chmod(0o600)
    log = tmp_path / "pipeline.log"
    log.write_text(PIPELINE_LOG)
    environ = {key: value for key, value in env.items() if key not in FAKE_SECRETS}
    return {**environ, "ENV_FILE": str(env_file),
            "DATABASE_URL": make_url(postgres_url).set(password=DB_PASSWORD).render_as_string(False),
            "NOTIFY_URLS": f"{webhook.url}/{WEBHOOK_TOKEN},{smtp.url}", "HEARTBEAT_URL": heartbeat[0],
            "PIPELINE_LOG_FILES": str(log), "ALERT_AFTER_FAILURES": "1", "LOG_LEVEL": "DEBUG",
            "BACKOFF_BASE_SECONDS": "1", "BACKOFF_MAX_SECONDS": "1", "SWEEP_INTERVAL": "1s",
            "MONITOR_HTTP_PORT": str(free_port())}


def _daemon(environ: dict[str, str], tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path, Path]:
    out, err = tmp_path / "daemon.stdout", tmp_path / "daemon.stderr"
    full = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"),
            "PYTHONDONTWRITEBYTECODE": "1", **environ}
    with out.open("wb") as stdout, err.open("wb") as stderr:
        proc = subprocess.Popen([sys.executable, str(ROOT / "autonomous_monitor.py"), "run"], env=full,
                                cwd=ROOT, stdout=stdout, stderr=stderr)
    return proc, out, err


@pytest.mark.slow
def test_a_full_fault_scenario_leaves_no_secret_anywhere(scenario: dict[str, str], make_ctx: Any,
                                                         x_api: Any, webhook: Any, smtp: Any,
                                                         heartbeat: Any, tmp_path: Path) -> None:
    seen: dict[str, str] = {}
    x_api.always(ME, ECHO_401)
    x_api.script(TWEETS, ECHO_401)
    x_api.always(TWEETS, ECHO_503)
    pipeline = make_ctx(scenario)  # the pipeline's own posts, through the ledger API
    now = pipeline.now()
    first, second = (schedule_post(pipeline.engine, text, now, now=now) for text in ("one", "two"))
    assert post(pipeline, first).status == post(pipeline, second).status == "failed"
    pipeline.close()

    for args in (["check"], ["check", "--json"], ["sweep", "--json"], ["notify-test"]):
        proc = run_cli(args, scenario)
        seen.update({f"{' '.join(args)} stdout": proc.stdout, f"{' '.join(args)} stderr": proc.stderr})
    assert json.loads(seen["check --json stdout"])["status"] == "critical"
    time.sleep(1.1)  # the 503 post's backoff
    proc = run_cli(["sweep"], scenario)  # the failing post is retried (and fails again)
    seen.update({"sweep stdout": proc.stdout, "sweep stderr": proc.stderr})
    assert "retry_due_post" in proc.stdout, proc.stdout

    daemon, out, err = _daemon(scenario, tmp_path)
    try:
        port = int(scenario["MONITOR_HTTP_PORT"])
        engine = create_engine(scenario["DATABASE_URL"])
        sweeps = lambda: ((get_state(engine, DAEMON_STATE_KEY) or {}).get("jobs", {})  # noqa: E731
                          .get("sweep", {}).get("succeeded", 0))
        wait_for(lambda: sweeps() >= 2 and len(heartbeat[1]) >= 2, 30, "two daemon sweeps and pings")
        listening = [c for c in psutil.Process(daemon.pid).net_connections(kind="inet")
                     if c.status == psutil.CONN_LISTEN and c.laddr.port == port]
        assert [c.laddr.ip for c in listening] == ["127.0.0.1"]  # loopback only, by default
        for path in ("/healthz", "/metrics", "/nope"):
            answer = requests.get(f"http://127.0.0.1:{port}{path}", timeout=5)
            seen[f"GET {path}"] = f"{answer.status_code} {answer.headers} {answer.text}"
        assert "autonomiq_check_status" in seen["GET /metrics"]
        engine.dispose()
    finally:
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(15)
    assert code == 0, err.read_text()
    seen.update({"daemon stdout": out.read_text(errors="replace"),
                 "daemon stderr": err.read_text(errors="replace")})

    for args in (["status"], ["status", "--json"]):
        proc = run_cli(args, scenario)
        seen.update({f"{' '.join(args)} stdout": proc.stdout, f"{' '.join(args)} stderr": proc.stderr})
    for path in Path(scenario["LOG_DIR"]).rglob("*"):
        if path.is_file():
            seen[f"log {path.name}"] = path.read_text(errors="replace")
    seen.update(dump_database(scenario["DATABASE_URL"]))
    seen.update({f"webhook body {n}": body for n, body in enumerate(webhook.raw)})
    seen.update({f"mail {n}": body for n, body in enumerate(smtp.raw)})
    seen.update({f"mail {n} decoded": "\n".join([*smtp.subjects()[n:n + 1], *(
        part.get_payload(decode=True).decode("utf-8", "replace") for part in message.walk()
        if not part.is_multipart())]) for n, message in enumerate(smtp.messages)})

    assert leaks(seen) == []
    # … and not because nothing happened: the secrets reached the monitor and were masked on the way out.
    assert webhook.received and smtp.messages and "/start" in "".join(heartbeat[1])
    assert "***" in seen["table posts"] and "***" in seen["log autonomous_monitor.log"]
    assert "NOTIFICATIONS" in seen["status stdout"] and "json://" in seen["status stdout"]


# --- .env readable by others --------------------------------------------------------------------

@pytest.mark.slow
def test_env_file_readable_by_others_is_warned_by_check_and_status(env: dict[str, str],
                                                                   tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text(f"TWITTER_API_SECRET={FAKE_SECRETS['TWITTER_API_SECRET']}\n")
    environ = {**env, "ENV_FILE": str(env_file)}
    expected = f"ENV_FILE {env_file} is readable by other users (mode 0644): run chmod 600 {env_file}"
    env_file.chmod(0o644)
    check_text, check_json = run_cli(["check"], environ), run_cli(["check", "--json"], environ)
    status_text, status_json = run_cli(["status"], environ), run_cli(["status", "--json"], environ)
    assert f"warning: {expected}" in check_text.stdout.splitlines()
    assert json.loads(check_json.stdout)["warnings"] == [expected]
    assert f"  {expected}" in status_text.stdout.split("WARNINGS\n", 1)[1].splitlines()[0]
    assert json.loads(status_json.stdout)["warnings"] == [expected]

    env_file.chmod(0o600)
    assert json.loads(run_cli(["check", "--json"], environ).stdout)["warnings"] == []
    quiet = run_cli(["status"], environ)
    assert quiet.returncode == 0 and "WARNINGS" not in quiet.stdout and "chmod" not in quiet.stdout


@pytest.mark.parametrize(("mode", "word"), [(0o600, None), (0o400, None), (0o640, "readable"),
                                            (0o604, "readable"), (0o620, "writable")])
def test_env_file_exposure_by_mode(tmp_path: Path, mode: int, word: str | None) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("X=1\n")
    env_file.chmod(mode)
    warning = exposure(env_file)
    assert (warning is None) if word is None else (f"is {word} by other users" in warning)


# --- the HTTP endpoint -------------------------------------------------------------------------

@pytest.fixture
def endpoint() -> Iterator[tuple[str, int]]:
    """The real endpoint with short bounds so the tests of its limits stay quick."""
    yield from _serving(Limits(deadline_s=1.5, max_connections=3))


@pytest.fixture
def patient_endpoint() -> Iterator[tuple[str, int]]:
    """Three connections at most, and idle ones may stay a while."""
    yield from _serving(Limits(deadline_s=10, max_connections=3))


def _serving(limits: Limits) -> Iterator[tuple[str, int]]:
    server = start_http_endpoint("127.0.0.1", 0, lambda: (True, "test"), lambda: b"autonomiq_up 1\n",
                                 limits)
    yield "127.0.0.1", server.server_address[1]
    server.shutdown()
    server.server_close()


def _raw(address: tuple[str, int], request: bytes, timeout: float = 5) -> bytes:
    with socket.create_connection(address, timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_the_endpoint_defaults_are_loopback_and_bounded(tmp_path: Path) -> None:
    assert load_settings({"ENV_FILE": "/dev/null"}).monitor_http_host == "127.0.0.1"
    assert http_endpoint.REQUEST_TIMEOUT_S <= 10 and http_endpoint.REQUEST_DEADLINE_S <= 30
    assert http_endpoint.MAX_REQUEST_BYTES <= 128 * 1024 and http_endpoint.MAX_CONNECTIONS <= 64


@pytest.mark.slow
def test_only_the_two_paths_answer(endpoint: tuple[str, int]) -> None:
    # (`//healthz` is the stdlib's own normalisation of `/healthz`, so it is not in this list)
    for target in ("/", "/healthz/", "/healthz/x", "/HEALTHZ", "/metrics.txt", "/favicon.ico",
                   "http://127.0.0.1/healthz", "*", "/%68ealthz", "/healthz%00", "/../healthz"):
        answer = _raw(endpoint, f"GET {target} HTTP/1.0\r\n\r\n".encode())
        assert answer.startswith(b"HTTP/1.0 404 "), (target, answer[:80])


@pytest.mark.slow
def test_other_methods_are_refused_and_head_and_queries_work(endpoint: tuple[str, int]) -> None:
    for method in ("PUT", "DELETE", "OPTIONS", "PATCH", "TRACE", "CONNECT", "PROPFIND"):
        assert _raw(endpoint, f"{method} /healthz HTTP/1.0\r\n\r\n".encode()).startswith(b"HTTP/1.0 501 ")
    head = _raw(endpoint, b"HEAD /healthz HTTP/1.0\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200 ") and head.endswith(b"\r\n\r\n")  # no body
    assert _raw(endpoint, b"GET /metrics?name[]=x HTTP/1.0\r\n\r\n").endswith(b"autonomiq_up 1\n")


@pytest.mark.parametrize("headers", [
    pytest.param(b"".join(b"X-Big-%d: %s\r\n" % (n, b"a" * 2000) for n in range(60)),
                 id="120-KiB-of-headers"),
    pytest.param(b"".join(b"X-%d: 1\r\n" % n for n in range(150)), id="150-headers"),
    pytest.param(b"X-Long: " + b"b" * 70_000 + b"\r\n", id="one-70-KB-header"),
])
@pytest.mark.slow
def test_oversized_requests_are_refused_and_the_endpoint_survives(endpoint: tuple[str, int],
                                                                  headers: bytes) -> None:
    started = time.monotonic()
    try:
        answer = _raw(endpoint, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    except ConnectionResetError:  # refused before the client had finished sending: also fine
        answer = b"HTTP/1.0 431 (reset)"
    assert answer.split(b" ", 2)[1] == b"431", answer[:120]
    assert time.monotonic() - started < 3
    assert _raw(endpoint, b"GET /healthz HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200 ")


@pytest.mark.slow
def test_a_client_trickling_its_headers_is_cut_off_in_bounded_time(endpoint: tuple[str, int]) -> None:
    request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"s" * 400 + b"\r\n\r\n"
    started = time.monotonic()
    with socket.create_connection(endpoint, timeout=10) as sock:
        sent = 0
        try:
            for byte in request:
                sock.sendall(bytes([byte]))
                sent += 1
                readable, _, _ = select.select([sock], [], [], 0.05)  # one byte every 50 ms
                if readable and sock.recv(1024) == b"":
                    break
        except OSError:
            pass
    took = time.monotonic() - started
    assert sent < len(request), "the server waited for the whole trickled request"
    assert 1.4 <= took <= 3.5, f"cut off after {took:.1f}s"


@pytest.mark.slow
def test_connections_beyond_the_limit_are_closed_at_once(patient_endpoint: tuple[str, int]) -> None:
    endpoint = patient_endpoint
    idle = [socket.create_connection(endpoint, timeout=5) for _ in range(3)]  # never send anything
    try:
        time.sleep(0.2)
        started = time.monotonic()
        with socket.create_connection(endpoint, timeout=5) as extra:
            extra.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            with contextlib.suppress(ConnectionResetError):
                assert extra.recv(1024) == b""
        assert time.monotonic() - started < 1
    finally:
        for sock in idle:
            sock.close()
    wait_for(lambda: _raw(endpoint, b"GET /healthz HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200 "), 5,
             "a free slot after the idle clients left")


@pytest.mark.slow
def test_a_client_that_leaves_mid_request_leaves_no_traceback(endpoint: tuple[str, int],
                                                              capfd: pytest.CaptureFixture[str],
                                                              caplog: pytest.LogCaptureFixture) -> None:
    for _ in range(5):
        with socket.create_connection(endpoint, timeout=5) as sock:
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x")
            sock.shutdown(socket.SHUT_WR)
    time.sleep(0.3)
    assert _raw(endpoint, b"GET /healthz HTTP/1.0\r\n\r\n").startswith(b"HTTP/1.0 200 ")
    assert "Traceback" not in capfd.readouterr().err
    assert not [r for r in caplog.records if r.name == "daemon.http_endpoint" and r.levelname == "ERROR"]


# --- configured URLs are never shown in full ------------------------------------------------

def test_config_view_shows_no_url_secret(tmp_path: Path) -> None:
    settings = load_settings({
        "ENV_FILE": "/dev/null", **FAKE_SECRETS,
        "DATABASE_URL": f"postgresql://monitor:{DB_PASSWORD}@127.0.0.1/monitor",
        "NOTIFY_URLS": f"json://127.0.0.1:9/hook/{WEBHOOK_TOKEN} mailto://u:{SMTP_PASSWORD}@127.0.0.1",
        "HEARTBEAT_URL": f"https://hc-ping.com/{HEARTBEAT_TOKEN}"})
    view = settings.public_view()
    assert view["NOTIFY_URLS"] == view["HEARTBEAT_URL"] == "<set>"
    assert view["DATABASE_URL"] == "postgresql://monitor:***@127.0.0.1/monitor"
    assert leaks({"public view": json.dumps(view), "repr": repr(settings)}) == []
    assert {DB_PASSWORD, WEBHOOK_TOKEN, HEARTBEAT_TOKEN, SMTP_PASSWORD} <= set(settings.secret_values)
