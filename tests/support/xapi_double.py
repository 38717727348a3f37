"""A loopback double of the X API v2, reached by the real tweepy client via TWITTER_API_BASE_URL.

Real routes (`GET /2/users/me`, `POST /2/tweets`), real status codes, `x-rate-limit-*` and the
undocumented 24-hour posting headers, and the exact error bodies X sends (see
shared/X_API_NOTES.md). Tests script answers per route, or let the double behave like X:
credential check, duplicate detection, rate-limit windows. It counts every call.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

ME = "GET /2/users/me"
TWEETS = "POST /2/tweets"
OAUTH2_TOKEN = "POST /2/oauth2/token"

# Exact bodies as X sends them (shared/X_API_NOTES.md §1e, §2a).
BODY_401 = {"title": "Unauthorized", "type": "about:blank", "status": 401, "detail": "Unauthorized"}
BODY_401_V1_89 = {"errors": [{"code": 89, "message": "Invalid or expired token."}]}
BODY_403_DUPLICATE = {"detail": "You are not allowed to create a Tweet with duplicate content.",
                      "type": "about:blank", "title": "Forbidden", "status": 403}
BODY_403_OAUTH1_PERMISSIONS = {
    "title": "Forbidden", "type": "https://api.twitter.com/2/problems/oauth1-permissions",
    "status": 403,
    "detail": "Your client app is not configured with the appropriate oauth1 app permissions "
              "for this endpoint."}
BODY_403_CLIENT_FORBIDDEN = {
    "client_id": "123", "detail": "When authenticating requests to the Twitter API v2 endpoints, "
    "you must use keys and tokens from a Twitter developer App that is attached to a Project.",
    "registration_url": "https://developer.twitter.com/en/docs/projects/overview",
    "title": "Client Forbidden", "required_enrollment": "Appropriate Level of API Access",
    "reason": "client-not-enrolled", "type": "https://api.twitter.com/2/problems/client-forbidden"}
BODY_429 = {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank",
            "status": 429}
BODY_429_USAGE_CAP = {
    "account_id": "1234567890", "product_name": "standard-basic", "title": "UsageCapExceeded",
    "period": "Monthly", "scope": "Product", "detail": "Usage cap exceeded: Monthly product cap",
    "type": "https://api.twitter.com/2/problems/usage-capped"}
BODY_402_CREDITS = {
    "title": "CreditsDepleted", "type": "https://api.twitter.com/2/problems/credits",
    "detail": "Your enrolled account [1234567890] does not have any credits to fulfill this "
              "request."}
BODY_503 = {"title": "Service Unavailable", "detail": "Service Unavailable", "type": "about:blank",
            "status": 503}
BODY_400_TOO_LONG = {
    "errors": [{"parameters": {"text": ["x" * 10]}, "message": "Your Tweet text is too long."}],
    "title": "Invalid Request", "detail": "One or more parameters to your request was invalid.",
    "type": "https://api.twitter.com/2/problems/invalid-request"}


@dataclass
class Reply:
    """One scripted answer. `mode`: `json` (default), `raw` (body as bytes), `hang` (sleep
    `delay` seconds before answering, or forever while the server runs), `drop` (close the
    connection without answering), `post_then_hang` (record the tweet, then hang)."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    mode: str = "json"
    delay: float = 0.0
    content_type: str = "application/json; charset=utf-8"


@dataclass
class Window:
    """A rate-limit window of a route: `limit` calls per `seconds`."""

    limit: int
    seconds: int
    used: int = 0
    started: float = 0.0


class XApiDouble:
    """The server; use as a context manager or call start()/stop()."""

    def __init__(self, *, api_key: str = "test-consumer-key", username: str = "autonomiq_bot",
                 clock: Any = time.time) -> None:
        self.api_key = api_key
        self.username = username
        self.clock = clock
        self.scripts: dict[str, deque[Reply]] = defaultdict(deque)
        self.windows: dict[str, Window] = {}
        self.post_budget = Window(limit=17, seconds=86400)  # x-user-limit-24hour-*
        self.calls: dict[str, int] = defaultdict(int)
        self.tweets: list[dict[str, Any]] = []
        self.requests: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        # OAuth 2.0 (confidential client): refresh tokens rotate, access tokens act as user bearer.
        self.oauth2_client: tuple[str, str] | None = None
        self.oauth2_refresh_token: str | None = None
        self.oauth2_access_tokens: set[str] = set()
        self.oauth2_refreshes = 0

    # --- control --------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._server is not None
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> XApiDouble:
        handler = type("Handler", (_Handler,), {"double": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> XApiDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def script(self, route: str, *replies: Reply) -> None:
        """Queue answers for `route` (e.g. `ME`, `TWEETS`); used before the default behaviour."""
        with self._lock:
            self.scripts[route].extend(replies)

    def always(self, route: str, reply: Reply, times: int = 10_000) -> None:
        """Answer `route` with `reply` for the next `times` calls."""
        self.script(route, *([reply] * times))

    def clear(self, route: str | None = None) -> None:
        """Forget scripted answers (of one route, or all)."""
        with self._lock:
            for key in [route] if route else list(self.scripts):
                self.scripts[key].clear()

    def limit(self, route: str, limit: int, seconds: int) -> None:
        """Give `route` a real rate-limit window."""
        self.windows[route] = Window(limit, seconds, 0, self.clock())

    # --- behaviour ------------------------------------------------------------------------
    def _next_scripted(self, route: str) -> Reply | None:
        with self._lock:
            queue = self.scripts.get(route)
            return queue.popleft() if queue else None

    def _rate_headers(self, route: str) -> tuple[dict[str, str], bool]:
        now = self.clock()
        window = self.windows.get(route) or Window(75 if route == ME else 100, 900, 0, now)
        self.windows.setdefault(route, window)
        if now - window.started >= window.seconds:
            window.started, window.used = now, 0
        exhausted = window.used >= window.limit
        if not exhausted:
            window.used += 1
        headers = {"x-rate-limit-limit": str(window.limit),
                   "x-rate-limit-remaining": str(max(0, window.limit - window.used)),
                   "x-rate-limit-reset": str(int(window.started + window.seconds))}
        return headers, exhausted

    def answer(self, route: str, auth: str, body: bytes) -> Reply:
        scripted = self._next_scripted(route)
        if scripted is not None:
            if scripted.mode == "post_then_hang":
                self._record_tweet(body)
            return scripted
        if route == OAUTH2_TOKEN:
            return self._oauth2_token(auth, body)
        if f'oauth_consumer_key="{self.api_key}"' not in auth and not self._oauth2_user(auth):
            return Reply(401, BODY_401)
        headers, exhausted = self._rate_headers(route)
        if exhausted:
            return Reply(429, BODY_429, headers)
        if route == ME:
            return Reply(200, {"data": {"id": "1450000000000000000", "name": "Autonomiq Bot",
                                        "username": self.username}}, headers)
        if route == TWEETS:
            return self._create_tweet(body, headers)
        return Reply(404, {"title": "Not Found Error", "type": "about:blank", "status": 404,
                           "detail": "Sorry, that page does not exist."})

    def _create_tweet(self, body: bytes, headers: dict[str, str]) -> Reply:
        try:
            text = json.loads(body or b"{}")["text"]
        except (ValueError, KeyError):
            return Reply(400, {"errors": [{"message": "Invalid JSON"}], "title": "Invalid Request",
                               "detail": "One or more parameters to your request was invalid.",
                               "type": "https://api.twitter.com/2/problems/invalid-request"})
        budget = self.post_budget
        now = self.clock()
        if now - budget.started >= budget.seconds:
            budget.started, budget.used = now, 0
        headers = {**headers,
                   "x-user-limit-24hour-limit": str(budget.limit),
                   "x-user-limit-24hour-reset": str(int(budget.started + budget.seconds))}
        if budget.used >= budget.limit:
            headers["x-user-limit-24hour-remaining"] = "0"
            return Reply(429, BODY_429, headers)
        if any(tweet["text"] == text for tweet in self.tweets):
            return Reply(403, BODY_403_DUPLICATE, headers)
        budget.used += 1
        headers["x-user-limit-24hour-remaining"] = str(budget.limit - budget.used)
        tweet = self._record_tweet(body)
        return Reply(201, {"data": {"id": tweet["id"], "text": text,
                                    "edit_history_tweet_ids": [tweet["id"]]}}, headers)

    def enable_oauth2(self, client_id: str, client_secret: str, refresh_token: str) -> None:
        """Accept `refresh_token` once at POST /2/oauth2/token for this confidential client."""
        self.oauth2_client = (client_id, client_secret)
        self.oauth2_refresh_token = refresh_token

    def _oauth2_user(self, auth: str) -> bool:
        return auth.startswith("Bearer ") and auth[len("Bearer "):] in self.oauth2_access_tokens

    def _oauth2_token(self, auth: str, body: bytes) -> Reply:
        """The refresh_token grant: HTTP Basic client auth, single-use rotating refresh tokens."""
        import base64
        from urllib.parse import parse_qs

        expected = self.oauth2_client and "Basic " + base64.b64encode(
            ":".join(self.oauth2_client).encode()).decode()
        if not expected or auth != expected:
            return Reply(401, {"error": "unauthorized_client",
                               "error_description": "Missing valid authorization header"})
        form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
        if form.get("grant_type") != "refresh_token" or not self.oauth2_refresh_token \
                or form.get("refresh_token") != self.oauth2_refresh_token:
            return Reply(400, {"error": "invalid_request",
                               "error_description": "Value passed for the token was invalid."})
        with self._lock:
            self.oauth2_refreshes += 1
            access = f"oauth2-access-{self.oauth2_refreshes}-SECRETbearerZZ"
            self.oauth2_refresh_token = f"oauth2-refresh-{self.oauth2_refreshes}-rotatedSECRETZZ"
            self.oauth2_access_tokens.add(access)
        return Reply(200, {"token_type": "bearer", "expires_in": 7200, "access_token": access,
                           "scope": "tweet.write users.read tweet.read offline.access",
                           "refresh_token": self.oauth2_refresh_token})

    def _record_tweet(self, body: bytes) -> dict[str, Any]:
        with self._lock:
            text = json.loads(body or b"{}").get("text", "")
            tweet = {"id": str(1860000000000000000 + len(self.tweets)), "text": text}
            self.tweets.append(tweet)
            return tweet


class _Handler(BaseHTTPRequestHandler):
    double: XApiDouble
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:  # keep test output quiet
        pass

    def _serve(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        route = f"{method} {path}"
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        double = self.double
        with double._lock:
            double.calls[route] += 1
            double.requests.append({"route": route, "headers": dict(self.headers), "body": body})
        reply = double.answer(route, self.headers.get("Authorization", ""), body)
        if reply.mode in ("hang", "post_then_hang"):
            double._stop.wait(reply.delay or 3600)
            if reply.mode == "post_then_hang" or not reply.delay:
                self.close_connection = True
                return
        if reply.mode == "drop":
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        payload = (reply.body if isinstance(reply.body, bytes)
                   else json.dumps(reply.body).encode() if reply.body is not None else b"")
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type if reply.mode != "raw"
                         else "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self) -> None:
        self._serve("GET")

    def do_POST(self) -> None:
        self._serve("POST")

    def do_DELETE(self) -> None:
        self._serve("DELETE")
