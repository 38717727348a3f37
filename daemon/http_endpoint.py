"""The optional HTTP endpoint: `/healthz`, `/metrics`, the status page `/` and `/status.json`.

Requests are small and short by construction: GET only, no body read, and every connection
bounded — in bytes (`MAX_REQUEST_BYTES`, then 431), in time between two reads
(`REQUEST_TIMEOUT_S`) and in time for the whole request (`REQUEST_DEADLINE_S`, so a client that
trickles its headers byte by byte is cut off too), and in number (`MAX_CONNECTIONS` at once).
"""

from __future__ import annotations

import contextlib
import io
import logging
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_TIMEOUT_S = 5.0
REQUEST_DEADLINE_S = 10.0
MAX_REQUEST_BYTES = 80 * 1024  # the stdlib's 64 KiB request line (414 above it) plus 16 KiB
MAX_CONNECTIONS = 32
Health = Callable[[], tuple[bool, str]]
Page = Callable[[], tuple[bytes, str]]  # → (body, content type)


@dataclass(frozen=True)
class Limits:
    """How much one request may take: bytes, total time, and connections open at once."""

    deadline_s: float = REQUEST_DEADLINE_S
    max_bytes: int = MAX_REQUEST_BYTES
    max_connections: int = MAX_CONNECTIONS


class RequestTooLarge(Exception):
    """The client sent more than MAX_REQUEST_BYTES before its request was complete."""


class _BoundedReader(io.RawIOBase):
    """The connection's bytes while the request stays within its byte and time budget."""

    def __init__(self, sock: socket.socket, limits: Limits) -> None:
        self._sock, self._limits, self._count = sock, limits, 0
        self._deadline = time.monotonic() + limits.deadline_s

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        remaining = self._deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"request not complete after {self._limits.deadline_s:g} s")
        if self._count >= self._limits.max_bytes:
            raise RequestTooLarge
        self._sock.settimeout(min(REQUEST_TIMEOUT_S, remaining))
        received = self._sock.recv_into(memoryview(buffer)[: self._limits.max_bytes - self._count])
        self._count += received
        return received


class _Handler(BaseHTTPRequestHandler):
    server_version = "autonomiq-monitor"
    sys_version = ""
    timeout = REQUEST_TIMEOUT_S  # applied to the connection socket: a silent client is dropped
    health: Health
    metrics: Callable[[], bytes]
    pages: Mapping[str, Page]

    def setup(self) -> None:
        super().setup()
        self.rfile.close()  # the stdlib's reader; this one bounds bytes and time
        server: Any = self.server  # a _Server, which carries the limits
        self.rfile = io.BufferedReader(_BoundedReader(self.connection, server.limits))

    def handle_one_request(self) -> None:
        self.requestline, self.command, self.request_version = "", "", "HTTP/1.0"
        try:
            super().handle_one_request()
        except RequestTooLarge:
            self.close_connection = True
            with contextlib.suppress(OSError):
                self.send_error(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "request too large")

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        self.connection.settimeout(REQUEST_TIMEOUT_S)  # the answer gets its own time
        return parsed

    def log_message(self, fmt: str, *args: Any) -> None:
        logger.debug("http %s: " + fmt, self.client_address[0], *args)

    def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        try:
            self.send_response(code)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        except OSError as exc:  # the client left before its answer: nothing to tell it
            self.close_connection = True
            logger.debug("http %s: client gone: %s", self.client_address[0], exc)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        content_type = "text/plain; charset=utf-8"
        try:
            if path == "/healthz":
                alive, why = self.health()
                code, body = (200 if alive else 503), f"{'ok' if alive else 'unhealthy'}: {why}\n".encode()
            elif path == "/metrics":
                code, body, content_type = 200, self.metrics(), METRICS_CONTENT_TYPE
            elif path in self.pages:
                body, content_type = self.pages[path]()
                code = 200
            else:
                known = ", ".join(["/healthz", "/metrics", *self.pages])
                code, body = 404, f"not found: only {known}\n".encode()
        except Exception:  # a broken scrape must not take the endpoint down
            logger.exception("http %s failed", path)
            code, body, content_type = 500, b"internal error\n", "text/plain; charset=utf-8"
        self._send(code, body, content_type)

    do_HEAD = do_GET  # noqa: N815


class _Server(ThreadingHTTPServer):
    """At most `limits.max_connections` connections at once; more are closed at once, not queued."""

    daemon_threads = True

    def __init__(self, *args: Any, limits: Limits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self._slots = threading.BoundedSemaphore(limits.max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            logger.debug("http: %s connections open, closing one from %s", self.limits.max_connections,
                         client_address)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except Exception:  # free the connection slot, then let the server report it
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("http %s: connection failed", client_address, exc_info=True)


def start_http_endpoint(host: str, port: int, health: Health, metrics: Callable[[], bytes],
                        limits: Limits = Limits(), pages: Mapping[str, Page] | None = None
                        ) -> ThreadingHTTPServer:
    """Serve `/healthz`, `/metrics` and `pages` (path → body and type) on host:port from a daemon
    thread; raises OSError if the port is taken."""
    handler = type("Handler", (_Handler,), {"health": staticmethod(health),
                                            "metrics": staticmethod(metrics), "pages": dict(pages or {})})
    server_class: type[_Server] = _Server
    if ":" in host:  # an IPv6 address such as ::1
        server_class = type("Server6", (_Server,), {"address_family": socket.AF_INET6})
    server = server_class((host, port), handler, limits=limits)
    threading.Thread(target=server.serve_forever, name="http-endpoint", daemon=True).start()
    logger.info("HTTP endpoint on http://%s:%s (/healthz, /metrics%s)", host, server.server_address[1],
                "".join(f", {path}" for path in pages or {}))
    return server
