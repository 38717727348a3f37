"""The one HTTP session factory: default (connect, read) timeouts and X API base-URL routing."""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter

X_API_HOSTS = ("https://api.twitter.com", "https://api.x.com")


class TimeoutAdapter(HTTPAdapter):
    """An adapter that applies a default timeout to every request that did not set one."""

    def __init__(self, timeout: tuple[float, float], **kwargs: Any) -> None:
        self.default_timeout = timeout
        super().__init__(max_retries=0, **kwargs)

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: bool | str = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        bounded = self.default_timeout if timeout is None else timeout
        return super().send(request, stream, bounded, verify, cert, proxies)


class BaseURLAdapter(TimeoutAdapter):
    """Sends requests addressed to one host (tweepy hard-codes api.twitter.com) to another base.

    The OAuth 1.0a signature was computed for the original URL, which is what a gateway in front
    of the real API expects; a local test double ignores it.
    """

    def __init__(self, original: str, base_url: str, timeout: tuple[float, float]) -> None:
        super().__init__(timeout)
        self.original = original.rstrip("/")
        self.base_url = base_url.rstrip("/")

    def send(self, request: requests.PreparedRequest, stream: bool = False, timeout: Any = None,
             verify: bool | str = True, cert: Any = None, proxies: Any = None) -> requests.Response:
        if request.url and request.url.startswith(self.original):
            request.url = self.base_url + request.url[len(self.original):]
        return super().send(request, stream, timeout, verify, cert, proxies)


def make_session(timeout_s: float, *, x_api_base_url: str | None = None,
                 user_agent: str = "autonomiq-monitor") -> requests.Session:
    """A `requests.Session` whose every request has a (connect, read) timeout of `timeout_s`.

    With `x_api_base_url`, requests to the X API hosts go to that base instead.
    """
    timeout = (min(timeout_s, 5.0), timeout_s)
    session = requests.Session()
    session.headers["User-Agent"] = user_agent
    plain = TimeoutAdapter(timeout)
    session.mount("http://", plain)
    session.mount("https://", plain)
    if x_api_base_url:
        for host in X_API_HOSTS:
            if x_api_base_url.rstrip("/") != host:
                session.mount(host + "/", BaseURLAdapter(host, x_api_base_url, timeout))
    return session


def describe_error(exc: BaseException) -> str:
    """What went wrong with a request in a few words: `connection refused`, `timed out`, …

    requests wraps the socket error several layers deep (ConnectionError → MaxRetryError →
    NewConnectionError → ConnectionRefusedError); the type name alone does not say which.
    """
    import http.client
    import socket
    import ssl

    if isinstance(exc, requests.ConnectTimeout):
        return "connect timed out"
    if isinstance(exc, requests.Timeout):
        return "timed out"
    seen: set[int] = set()
    stack: list[object] = [exc]
    while stack:
        current = stack.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, ConnectionRefusedError):
            return "connection refused"
        if isinstance(current, (ConnectionResetError, ConnectionAbortedError, BrokenPipeError,
                                http.client.RemoteDisconnected, http.client.IncompleteRead)):
            return "connection dropped"
        if isinstance(current, socket.gaierror):
            return "DNS lookup failed"
        if isinstance(current, ssl.SSLError):
            return "TLS error"
        stack.extend([current.__cause__, current.__context__, getattr(current, "reason", None),
                      *current.args])
    return type(exc).__name__
