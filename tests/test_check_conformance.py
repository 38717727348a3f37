"""Conformance tables: the network checks (`twitter_api`, `internet`) against each way a
server can misbehave (HTTP 500, 429, 401, a hang, connection refused, a non-JSON body).

Each cell names the documented status and the words the detail must carry; every cell also
proves nothing raised past the check, the check stayed within its timeout, and no secret leaked.
And every registered check (`checks.CHECKS`, so a new one is covered by being listed) in a world
where everything it reaches refuses or hangs.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from checks import CHECKS, internet, twitter_api
from checks.base import Status, run_checks, run_one
from tests.conftest import assert_no_secret
from tests.support.loopback_web import refused_url
from tests.support.xapi_double import BODY_401, BODY_429, ME, Reply, XApiDouble

TIMEOUT_S = 1
HTML = b"<html><body>Service temporarily unavailable</body></html>"
FAULTS = {
    "500": Reply(500, {"title": "Internal Server Error", "detail": "Internal Server Error",
                       "type": "about:blank", "status": 500}),
    "429": Reply(429, BODY_429, {"x-rate-limit-limit": "75", "x-rate-limit-remaining": "0",
                                 "x-rate-limit-reset": "1795849200"}),
    "401": Reply(401, BODY_401),
    "hang": Reply(mode="hang"),
    "refused": None,  # nothing listens
    "non_json": Reply(200, HTML, mode="raw"),
}

# fault -> (status, words the detail must contain)
TWITTER_API = {
    "500": (Status.CRITICAL, "X API server error 500"),
    "429": (Status.WARNING, "rate limited on GET /2/users/me (429); resets at"),
    "401": (Status.CRITICAL, "credentials rejected: 401"),
    "hang": (Status.CRITICAL, f"X API did not answer within {TIMEOUT_S}s"),
    "refused": (Status.CRITICAL, "cannot reach the X API: connection refused"),
    "non_json": (Status.CRITICAL, "answered 200 with a body that is not the expected JSON"),
}
# Any HTTP answer proves the way out works; the detail still says what came back.
INTERNET = {
    "500": (Status.OK, "HTTP 500"),
    "429": (Status.OK, "HTTP 429"),
    "401": (Status.OK, "HTTP 401"),
    "hang": (Status.CRITICAL, "(timed out)"),
    "refused": (Status.CRITICAL, "(connection refused)"),
    "non_json": (Status.OK, "1/1 URLs answered"),
}


class _Scripted(BaseHTTPRequestHandler):
    """Answers every GET with the server's one scripted `Reply`."""

    protocol_version = "HTTP/1.1"
    reply: Reply
    stop: threading.Event

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        reply = self.reply
        if reply.mode == "hang":
            self.stop.wait(60)
            self.close_connection = True
            return
        body = reply.body if isinstance(reply.body, bytes) else json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "text/html" if reply.mode == "raw" else "application/json")
        self.send_header("Content-Length", str(len(body)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)



@pytest.fixture
def scripted_web() -> Iterator[Any]:
    """Start a loopback web server answering with one `Reply`; returns its URL."""
    servers: list[ThreadingHTTPServer] = []
    stop = threading.Event()

    def start(reply: Reply) -> str:
        handler = type("Handler", (_Scripted,), {"reply": reply, "stop": stop})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}/generate_204"

    yield start
    stop.set()
    for server in servers:
        server.shutdown()
        server.server_close()


def assert_conforms(result: Any, status: Status, words: str) -> None:
    assert not result.detail.startswith("check raised"), result.detail  # a mapped outcome, not a crash
    assert result.status is status, result.detail
    assert words in result.detail, result.detail
    assert "\n" not in result.detail
    assert result.duration_ms < (TIMEOUT_S + 2) * 1000
    assert_no_secret(result.detail, json.dumps(result.data, default=str))


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS))
def test_twitter_api_conformance(fault: str, env: dict, make_ctx: Any, x_api: XApiDouble) -> None:
    environ = {**env, "CHECK_TIMEOUT_SECONDS": str(TIMEOUT_S)}
    if FAULTS[fault] is None:
        environ["TWITTER_API_BASE_URL"] = refused_url()
    else:
        x_api.script(ME, FAULTS[fault])
    result = run_one("twitter_api", twitter_api.check, make_ctx(environ))
    assert_conforms(result, *TWITTER_API[fault])


@pytest.mark.slow
@pytest.mark.parametrize("fault", list(FAULTS))
def test_internet_conformance(fault: str, env: dict, make_ctx: Any, scripted_web: Any,
                              x_api: XApiDouble) -> None:
    reply = FAULTS[fault]
    url = refused_url() if reply is None else scripted_web(reply)
    ctx = make_ctx({**env, "CONNECTIVITY_URLS": url, "CHECK_TIMEOUT_SECONDS": str(TIMEOUT_S)})
    result = run_one("internet", internet.check, ctx)
    assert_conforms(result, *INTERNET[fault])
    assert x_api.requests == []  # the internet check never leans on the X API


# --- every registered check in a hostile world --------------------------------------------------

DB_PASSWORD = "SECRETdbpasswordZZ41"


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A TCP port that accepts connections (the kernel's backlog) and never answers: a hang."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.parametrize("world", ["refused", "hung"])
@pytest.mark.parametrize("name", sorted(CHECKS))
def test_every_check_answers_a_hostile_world_in_time_and_keeps_its_secrets(
        name: str, world: str, env: dict, make_ctx: Any, silent_port: int, tmp_path: Any) -> None:
    """Everything the checks reach refuses or hangs: the X API, the internet, the database; the
    disk path and the heartbeat file are gone. Each check, as registered, still gives a result
    that is not `ok`, in one line, within its timeout, and never the database password."""
    port = silent_port if world == "hung" else int(refused_url().rsplit(":", 1)[1])
    url = f"http://127.0.0.1:{port}"
    ctx = make_ctx({**env, "CHECK_TIMEOUT_SECONDS": str(TIMEOUT_S), "TWITTER_API_BASE_URL": url,
                    "CONNECTIVITY_URLS": url, "DISK_PATHS": str(tmp_path / "gone"),
                    "DATABASE_URL": f"postgresql://monitor:{DB_PASSWORD}@127.0.0.1:{port}/ledger",
                    "SCHEDULER_HEARTBEAT_FILE": str(tmp_path / "no-heartbeat")})
    started = time.monotonic()
    [result] = run_checks({name: CHECKS[name]}, ctx, TIMEOUT_S)
    assert time.monotonic() - started < TIMEOUT_S + 1
    assert result.status is not Status.OK, result.detail
    assert result.detail and "\n" not in result.detail
    assert_no_secret(result.detail, json.dumps(result.data, default=str))
    assert DB_PASSWORD not in result.detail + json.dumps(result.data, default=str)
