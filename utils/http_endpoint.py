"""The optional HTTP endpoint: `/healthz` and `/metrics`, nothing else.

Requests are small and short by construction: GET only, no body read, a socket timeout on every
connection, the standard library's limits on the request line and headers.
"""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REQUEST_TIMEOUT_S = 5.0
Health = Callable[[], tuple[bool, str]]


class _Handler(BaseHTTPRequestHandler):
    server_version = "autonomiq-monitor"
    sys_version = ""
    timeout = REQUEST_TIMEOUT_S  # applied to the connection socket: a slow client is dropped
    health: Health
    metrics: Callable[[], bytes]

    def log_message(self, fmt: str, *args: Any) -> None:
        logger.debug("http %s: " + fmt, self.client_address[0], *args)

    def _send(self, code: int, body: bytes, content_type: str = "text/plain; charset=utf-8") -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if path == "/healthz":
                alive, why = self.health()
                self._send(200 if alive else 503, f"{'ok' if alive else 'unhealthy'}: {why}\n".encode())
            elif path == "/metrics":
                self._send(200, self.metrics(), METRICS_CONTENT_TYPE)
            else:
                self._send(404, b"not found: only /healthz and /metrics\n")
        except Exception:  # a broken scrape must not take the endpoint down
            logger.exception("http %s failed", path)
            self._send(500, b"internal error\n")

    do_HEAD = do_GET  # noqa: N815


def start_http_endpoint(host: str, port: int, health: Health,
                        metrics: Callable[[], bytes]) -> ThreadingHTTPServer:
    """Serve `/healthz` and `/metrics` on host:port from a daemon thread; raises OSError if taken."""
    handler = type("Handler", (_Handler,), {"health": staticmethod(health),
                                            "metrics": staticmethod(metrics)})
    server_class = ThreadingHTTPServer
    if ":" in host:  # an IPv6 address such as ::1
        server_class = type("Server6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
    server = server_class((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="http-endpoint", daemon=True).start()
    logger.info("HTTP endpoint on http://%s:%s (/healthz, /metrics)", host, server.server_address[1])
    return server
