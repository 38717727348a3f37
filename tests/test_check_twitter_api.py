"""`twitter_api` against the loopback X API double through the real tweepy client."""

from __future__ import annotations

import socket
from datetime import UTC, datetime
from typing import Any

import pytest

from checks import twitter_api
from checks.base import Status, run_one
from tests.conftest import FAKE_SECRETS, assert_no_secret
from tests.support.xapi_double import (
    BODY_401,
    BODY_401_V1_89,
    BODY_402_CREDITS,
    BODY_403_CLIENT_FORBIDDEN,
    BODY_403_OAUTH1_PERMISSIONS,
    BODY_429,
    BODY_429_USAGE_CAP,
    BODY_503,
    ME,
    Reply,
    XApiDouble,
)


def run(ctx: Any) -> Any:
    return run_one("twitter_api", twitter_api.check, ctx)


def test_valid_credentials_report_username_latency_and_rate_headers(env: dict, make_ctx: Any,
                                                                    x_api: XApiDouble) -> None:
    result = run(make_ctx(env))
    assert result.status is Status.OK
    assert result.data["username"] == "autonomiq_bot" and "@autonomiq_bot" in result.detail
    assert result.data["rate_limit_remaining"] == 74
    assert isinstance(result.data["rate_limit_reset"], int)
    assert result.data["latency_ms"] >= 0
    # user context: an OAuth 1.0a signature, never the bearer token
    assert x_api.requests[0]["headers"]["Authorization"].startswith("OAuth ")


def test_no_credentials_is_unknown_and_names_the_variables(env: dict, make_ctx: Any,
                                                           x_api: XApiDouble) -> None:
    env = {k: v for k, v in env.items() if k not in ("TWITTER_ACCESS_TOKEN", "TWITTER_API_SECRET")}
    result = run(make_ctx(env))
    assert result.status is Status.UNKNOWN
    assert "TWITTER_API_SECRET" in result.detail and "TWITTER_ACCESS_TOKEN" in result.detail
    assert x_api.calls[ME] == 0


@pytest.mark.parametrize(("reply", "status", "failure_class", "words"), [
    (Reply(401, BODY_401), Status.CRITICAL, "auth", "credentials rejected: 401"),
    (Reply(401, BODY_401_V1_89), Status.CRITICAL, "auth", "Invalid or expired token"),
    (Reply(403, BODY_403_OAUTH1_PERMISSIONS), Status.CRITICAL, "permission", "oauth1 app permissions"),
    (Reply(403, BODY_403_CLIENT_FORBIDDEN), Status.CRITICAL, "permission", "403"),
    (Reply(429, BODY_429_USAGE_CAP), Status.CRITICAL, "usage_cap", "usage cap"),
    (Reply(402, BODY_402_CREDITS), Status.CRITICAL, "usage_cap", "credits"),
    (Reply(503, BODY_503), Status.CRITICAL, "server_error", "503"),
    (Reply(500, b"<html>oops</html>", mode="raw"), Status.CRITICAL, "server_error", "500"),
    (Reply(200, b"<html>maintenance</html>", mode="raw"), Status.CRITICAL, "server_error",
     "not the expected JSON"),
])
def test_error_answers_map_to_status_and_class(reply: Reply, status: Status, failure_class: str,
                                               words: str, env: dict, make_ctx: Any,
                                               x_api: XApiDouble) -> None:
    x_api.script(ME, reply)
    result = run(make_ctx(env))
    assert (result.status, result.failure_class) == (status, failure_class)
    assert words in result.detail
    assert_no_secret(result.detail)


def test_a_single_401_says_it_may_be_an_outage(env: dict, make_ctx: Any, x_api: XApiDouble) -> None:
    x_api.script(ME, Reply(401, BODY_401))
    assert "outage" in run(make_ctx(env)).detail


def test_429_is_a_warning_with_the_reset_in_local_time(env: dict, make_ctx: Any,
                                                       x_api: XApiDouble) -> None:
    reset = int(datetime(2026, 11, 28, 8, 40, tzinfo=UTC).timestamp())  # 09:40 in Berlin
    x_api.script(ME, Reply(429, BODY_429, {"x-rate-limit-limit": "75", "x-rate-limit-remaining": "0",
                                           "x-rate-limit-reset": str(reset)}))
    result = run(make_ctx({**env, "MONITOR_TIMEZONE": "Europe/Berlin"}))
    assert result.status is Status.WARNING and result.failure_class == "rate_limit"
    assert "09:40 CET" in result.detail


@pytest.mark.slow
def test_hung_api_is_critical_timeout_within_the_timeout(env: dict, make_ctx: Any,
                                                         x_api: XApiDouble) -> None:
    x_api.script(ME, Reply(mode="hang"))
    result = run(make_ctx({**env, "CHECK_TIMEOUT_SECONDS": "1"}))
    assert result.status is Status.CRITICAL and result.failure_class == "timeout"
    assert result.duration_ms < 3000


def test_dropped_connection_is_critical_network(env: dict, make_ctx: Any, x_api: XApiDouble) -> None:
    x_api.script(ME, Reply(mode="drop"))
    result = run(make_ctx(env))
    assert result.status is Status.CRITICAL and result.failure_class == "network"


def test_connection_refused_is_critical_network(env: dict, make_ctx: Any) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = run(make_ctx({**env, "TWITTER_API_BASE_URL": f"http://127.0.0.1:{port}"}))
    assert result.status is Status.CRITICAL and result.failure_class == "network"
    assert "cannot reach" in result.detail


def test_keeps_the_reserve_using_headers_it_saw_last(env: dict, make_ctx: Any, clock: Any,
                                                     x_api: XApiDouble) -> None:
    reset = int(clock().timestamp()) + 3600
    x_api.script(ME, Reply(200, {"data": {"id": "1", "username": "autonomiq_bot", "name": "b"}},
                           {"x-rate-limit-limit": "25", "x-rate-limit-remaining": "3",
                            "x-rate-limit-reset": str(reset)}))
    assert run(make_ctx(env)).status is Status.OK
    # A restart: a new context on the same database still knows only 3 calls are left.
    second = run(make_ctx(env))
    assert x_api.calls[ME] == 1
    assert second.status is Status.OK and second.data["skipped"] is True
    assert "skipped GET /2/users/me" in second.detail and "3 left" in second.detail
    assert "last verified ok" in second.detail
    clock.advance(seconds=3601)  # the window has reset: the check calls again
    assert run(make_ctx(env)).data.get("skipped") is None
    assert x_api.calls[ME] == 2


@pytest.mark.slow
def test_tier_assumption_applies_before_any_header(env: dict, make_ctx: Any, clock: Any,
                                                   x_api: XApiDouble) -> None:
    plain = Reply(200, {"data": {"id": "1", "username": "autonomiq_bot", "name": "b"}})
    x_api.always(ME, plain)
    ctx = make_ctx({**env, "TWITTER_API_TIER": "free", "TWITTER_API_RESERVE_CALLS": "3"})
    statuses = []
    for _ in range(24):
        statuses.append(run(ctx).data.get("skipped", False))
        clock.advance(minutes=1)
    assert x_api.calls[ME] == 22  # 25 a day on the free tier, minus a reserve of 3
    assert statuses[:22] == [False] * 22 and statuses[22:] == [True, True]


def test_a_failed_verification_while_skipping_is_unknown(env: dict, make_ctx: Any, clock: Any,
                                                         x_api: XApiDouble) -> None:
    reset = int(clock().timestamp()) + 600
    x_api.script(ME, Reply(401, BODY_401, {"x-rate-limit-remaining": "1",
                                           "x-rate-limit-reset": str(reset)}))
    assert run(make_ctx(env)).status is Status.CRITICAL
    second = run(make_ctx(env))
    assert second.status is Status.UNKNOWN and "not verified" in second.detail


def test_nothing_secret_reaches_the_result_even_at_debug(env: dict, make_ctx: Any,
                                                         x_api: XApiDouble) -> None:
    echo = f"token {FAKE_SECRETS['TWITTER_ACCESS_TOKEN']}"
    body = {"title": "Unauthorized", "detail": echo, "type": "about:blank", "status": 401}
    x_api.script(ME, Reply(401, body))
    result = run(make_ctx({**env, "LOG_LEVEL": "DEBUG"}))
    assert_no_secret(result.detail, repr(result.data))
