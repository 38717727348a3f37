"""Real loopback receivers for notifications: a JSON webhook (HTTP), an ntfy server (its HTTP
publish API) and an SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.support.loopback_web import free_port

SMTP_USER, SMTP_PASSWORD = "monitor", "SECRETsmtppassword99"


def serve(handler: type[BaseHTTPRequestHandler], port: int = 0) -> ThreadingHTTPServer:
    """A loopback HTTP server running `handler` in a daemon thread."""
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    return server



class WebhookReceiver:
    """Receives Apprise `json://` posts; can answer with an error status or be switched off."""

    def __init__(self) -> None:
        self.port = free_port()
        self.received: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self.status = 200
        self._server: ThreadingHTTPServer | None = None
        self.up()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def up(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                text = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                if receiver.status < 300:
                    receiver.raw.append(text)
                    receiver.received.append(json.loads(text))
                self.send_response(receiver.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = serve(Handler, self.port)

    def down(self) -> None:
        """Stop listening: senders get `connection refused`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def titles(self) -> list[str]:
        return [item["title"] for item in self.received]


class SmtpReceiver:
    """An SMTP server with AUTH over plain text (loopback only) that keeps every message."""

    def __init__(self, port: int | None = None) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.port = port or free_port()  # a given port: come up where senders already point
        self.messages: list[email.message.Message] = []
        self.raw: list[str] = []

        def authenticate(server: Any, session: Any, envelope: Any, mechanism: str,
                         data: Any) -> AuthResult:
            return AuthResult(success=(data.login, data.password)
                              == (SMTP_USER.encode(), SMTP_PASSWORD.encode()))

        receiver = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
                text = envelope.content.decode("utf-8", "replace")
                receiver.raw.append(text)
                receiver.messages.append(email.message_from_string(text))
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                      authenticator=authenticate, auth_require_tls=False)
        self._controller.start()

    @property
    def url(self) -> str:
        return (f"mailto://{SMTP_USER}:{SMTP_PASSWORD}@127.0.0.1:{self.port}"
                "?mode=insecure&from=monitor@example.com&to=owner@example.com")

    def subjects(self) -> list[str]:
        from email.header import decode_header, make_header

        return [str(make_header(decode_header(message["Subject"]))) for message in self.messages]

    def stop(self) -> None:
        self._controller.stop()


class NtfyReceiver:
    """ntfy's publish API as Apprise's `ntfy://127.0.0.1:PORT/topic` uses it: a JSON POST to `/`
    with the topic, title and message in the body and the priority and tags as headers."""

    def __init__(self) -> None:
        self.received: list[dict[str, Any]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                item = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                item.update(priority=self.headers.get("X-Priority", "default"),
                            tags=self.headers.get("X-Tags", ""))
                receiver.received.append(item)
                answer = json.dumps({"id": str(len(receiver.received)), "topic": item.get("topic")})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer.encode())

        self._server = serve(Handler)
        self.url = f"ntfy://127.0.0.1:{self._server.server_address[1]}/autonomiq-alerts"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def running_ntfy() -> Iterator[NtfyReceiver]:
    """Fixture body: `ntfy = pytest.fixture(running_ntfy, name="ntfy")` in a test module."""
    receiver = NtfyReceiver()
    yield receiver
    receiver.stop()


def running_webhook() -> Iterator[WebhookReceiver]:
    """Fixture body: `webhook = pytest.fixture(running_webhook, name="webhook")` in a test module."""
    receiver = WebhookReceiver()
    yield receiver
    receiver.down()


def running_smtp() -> Iterator[SmtpReceiver]:
    """Fixture body: `smtp = pytest.fixture(running_smtp, name="smtp")` in a test module."""
    receiver = SmtpReceiver()
    yield receiver
    receiver.stop()


class PathRecorder:
    """A loopback HTTP server that answers 200 and records every path asked for (a stand-in for
    healthchecks.io behind HEARTBEAT_URL)."""

    def __init__(self, path: str = "/ping/0f3c6a9e-5b7d-4d8e-9f1a-2b3c4d5e6f70") -> None:
        self.paths: list[str] = []
        recorder = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                recorder.paths.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

        self._server = serve(Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}{path}"

    def stop(self) -> None:
        """Stop listening."""
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def running_path_recorder(path: str | None = None) -> Iterator[PathRecorder]:
    """A PathRecorder (answering at `path`, when given) for the length of a test."""
    recorder = PathRecorder() if path is None else PathRecorder(path)
    try:
        yield recorder
    finally:
        recorder.stop()
