"""The failure classifier: a corpus of real error texts, real exception objects, hostile input."""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import tweepy
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.engine import make_url

from recovery.classify import Classification, classify, is_error_line
from recovery.error_patterns import RULES
from tests.conftest import FAKE_SECRETS, PG_ADMIN_URL
from tests.support.xapi_double import (
    BODY_400_TOO_LONG,
    BODY_401,
    BODY_401_V1_89,
    BODY_402_CREDITS,
    BODY_403_CLIENT_FORBIDDEN,
    BODY_403_OAUTH1_PERMISSIONS,
    BODY_429,
    BODY_429_USAGE_CAP,
    BODY_503,
    TWEETS,
    Reply,
    XApiDouble,
)
from utils.db import make_engine
from utils.failure_classes import AMBIGUOUS, FailureClass
from utils.x_client import build_client

CORPUS = json.loads((Path(__file__).parent / "data" / "error_corpus.json").read_text())
MIN_ACCURACY = 1.0  # the corpus scores 100 %: any text it gets wrong now is a regression


def test_corpus_is_large_real_and_covers_every_class() -> None:
    assert len(CORPUS) >= 60
    assert all(entry["source"].strip() for entry in CORPUS)
    covered = {entry["expected"] for entry in CORPUS}
    # scheduler, safe_mode and bad_row come from the monitor itself, never from an error text
    assert covered >= {str(c) for c in FailureClass} - {"scheduler", "safe_mode", "bad_row"}


def test_corpus_accuracy() -> None:
    mismatches = []
    for entry in CORPUS:
        got = classify(entry["text"])
        if got.failure_class != entry["expected"]:
            mismatches.append(f"  expected {entry['expected']}, got {got.failure_class} ({got.rule}): "
                              f"{entry['text'][:120]!r} [{entry['source']}]")
    accuracy = 1 - len(mismatches) / len(CORPUS)
    print(f"\nclassifier accuracy on {len(CORPUS)} real error texts: {accuracy:.1%}")
    print("\n".join(mismatches))
    assert accuracy >= MIN_ACCURACY, "\n".join(mismatches)


def test_corpus_bytes_form_classifies_like_text() -> None:
    for entry in CORPUS:
        assert classify(entry["text"].encode()).failure_class == classify(entry["text"]).failure_class


@pytest.mark.parametrize(("text", "expected", "status"), [
    ("429 Too Many Requests\nToo Many Requests", FailureClass.RATE_LIMIT, 429),
    ("429 Too Many Requests\nUsage cap exceeded: Monthly product cap", FailureClass.USAGE_CAP, 429),
    ("402 Payment Required", FailureClass.USAGE_CAP, 402),
    ("403 Forbidden\nYou are not allowed to create a Tweet with duplicate content.",
     FailureClass.DUPLICATE, 403),
    ("403 Forbidden", FailureClass.PERMISSION, 403),
    ("401 Unauthorized\n89 - Invalid or expired token.", FailureClass.AUTH, 401),
    ("404 Not Found", FailureClass.NOT_FOUND, 404),
    ("503 Service Unavailable", FailureClass.SERVER_ERROR, 503),
])
def test_specific_rules_win_over_the_generic_status(text: str, expected: FailureClass, status: int) -> None:
    got = classify(text)
    assert (got.failure_class, got.status_code) == (expected, status)


def test_problem_type_suffix_matches_any_host_and_unknown_kinds_fall_back_to_status() -> None:
    for host in ("api.twitter.com", "api.x.com", "gateway.example"):
        body = json.dumps({"type": f"https://{host}/2/problems/usage-capped", "title": "?", "detail": "?"})
        assert classify(body).failure_class == FailureClass.USAGE_CAP
    undeclared = {"type": "https://api.x.com/2/problems/brand-new-kind", "title": "New", "status": 429}
    assert classify(json.dumps(undeclared)).failure_class == FailureClass.RATE_LIMIT


def test_no_evidence_is_unknown_never_a_retrying_class() -> None:
    for vague in (None, "", "error", "it broke", b"\x00\xff", "Exception", "status: unknown",
                  "worker exited with exit code 64", "job returned code 88"):
        got = classify(vague)
        assert got == Classification(FailureClass.UNKNOWN, "none", None)
        assert got.failure_class not in AMBIGUOUS


def test_rule_ids_are_unique() -> None:
    ids = [rule.id for rule in RULES]
    assert len(ids) == len(set(ids))


@pytest.mark.parametrize(("line", "expected"), [
    ("2026-11-28 07:00:00,001 ERROR pipeline: post 3 failed", True),
    ("2026-11-28 07:00:00,001 CRITICAL scheduler died", True),
    ("Traceback (most recent call last):", True),
    ("requests.exceptions.ConnectionError: Max retries exceeded", True),
    ('{"level": "error", "msg": "boom"}', True),
    ("level=error msg=boom", True),
    ("tweepy: Rate limit exceeded. Sleeping for 897 seconds.", True),
    ("2026-11-28 07:00:00,001 INFO pipeline: posted tweet 186000", False),
    ("2026-11-28 07:00:00,001 INFO pipeline: 12 posted, 0 failed", False),
    ('{"level": "info", "msg": "retry of post 3 failed over to the next slot"}', False),
    ("2026-11-28 07:00:00,001 INFO pipeline: answer was 503 Service Unavailable", True),
    ("2026-11-28 07:00:00,001 WARNING urllib3.connectionpool: Retrying after connection broken by "
     "'NewConnectionError(Failed to establish a new connection)'", True),
    ("2026-11-28 07:00:00,001 DEBUG error_count=0", False),
    ("", False),
])
def test_is_error_line(line: str, expected: bool) -> None:
    assert is_error_line(line) is expected


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.text(max_size=2000))
def test_arbitrary_text_never_crashes(value: str) -> None:
    assert isinstance(classify(value).failure_class, FailureClass)
    assert isinstance(is_error_line(value), bool)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(value: bytes) -> None:
    assert isinstance(classify(value).failure_class, FailureClass)


def test_hostile_exception_is_unknown_not_a_crash() -> None:
    class Weird(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert classify(Weird()).failure_class == FailureClass.UNKNOWN


def test_huge_text_is_read_at_head_and_tail_in_bounded_time() -> None:
    import time

    started = time.perf_counter()
    assert classify("x" * 5_000_000 + " 429 Too Many Requests").failure_class == FailureClass.RATE_LIMIT
    assert classify("429 Too Many Requests " + "x" * 5_000_000).failure_class == FailureClass.RATE_LIMIT
    assert classify(b"x " * 500_000 + b"503 Service Unavailable").failure_class == FailureClass.SERVER_ERROR
    # the middle is not read: a 1 MB error costs what a 16 KB one does
    assert classify("x" * 500_000 + " 429 Too Many Requests " + "x" * 500_000).failure_class \
        == FailureClass.UNKNOWN
    assert time.perf_counter() - started < 2


# --- real exceptions from the real tweepy client against the X API double -------------------

@pytest.fixture(scope="module")
def shared_api() -> Iterator[XApiDouble]:
    """One double for the module (each server teardown costs half a second)."""
    with XApiDouble(api_key=FAKE_SECRETS["TWITTER_API_KEY"]) as double:
        yield double


@pytest.fixture
def x_api(shared_api: XApiDouble) -> Iterator[XApiDouble]:
    shared_api.clear()
    shared_api.tweets.clear()
    yield shared_api
    shared_api.clear()


@pytest.fixture
def env(tmp_path: Path, x_api: XApiDouble) -> dict[str, str]:
    return {**FAKE_SECRETS, "ENV_FILE": "/dev/null", "TWITTER_API_BASE_URL": x_api.base_url,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'monitor.db'}", "DATA_DIR": str(tmp_path),
            "LOG_DIR": str(tmp_path / "logs"), "MONITOR_TIMEZONE": "UTC", "CHECK_TIMEOUT_SECONDS": "3"}


def _post_error(make_ctx: Any, env: dict[str, str], *, timeout_s: float | None = None,
                base_url: str | None = None) -> BaseException:
    ctx = make_ctx(env)
    settings_ = ctx.settings.with_overrides(twitter_api_base_url=base_url) if base_url else ctx.settings
    client = build_client(settings_, timeout_s=timeout_s)
    try:
        client.create_tweet(text="hello from the classifier test")
    except Exception as exc:
        return exc
    finally:
        client.session.close()
    raise AssertionError("the post did not fail")


@pytest.mark.parametrize(("reply", "expected", "exc_type"), [
    (Reply(429, BODY_429), FailureClass.RATE_LIMIT, tweepy.TooManyRequests),
    (Reply(429, BODY_429_USAGE_CAP), FailureClass.USAGE_CAP, tweepy.TooManyRequests),
    (Reply(402, BODY_402_CREDITS), FailureClass.USAGE_CAP, tweepy.HTTPException),
    (Reply(401, BODY_401_V1_89), FailureClass.AUTH, tweepy.Unauthorized),
    (Reply(401, BODY_401), FailureClass.AUTH, tweepy.Unauthorized),
    (Reply(403, BODY_403_OAUTH1_PERMISSIONS), FailureClass.PERMISSION, tweepy.Forbidden),
    (Reply(403, BODY_403_CLIENT_FORBIDDEN), FailureClass.PERMISSION, tweepy.Forbidden),
    (Reply(400, BODY_400_TOO_LONG), FailureClass.INVALID_REQUEST, tweepy.BadRequest),
    (Reply(503, BODY_503), FailureClass.SERVER_ERROR, tweepy.TwitterServerError),
    (Reply(502, b"<html>Bad Gateway</html>", mode="raw"), FailureClass.SERVER_ERROR,
     tweepy.TwitterServerError),
])
def test_real_tweepy_http_errors(x_api: Any, env: dict[str, str], make_ctx: Any, reply: Reply,
                                 expected: FailureClass, exc_type: type) -> None:
    x_api.script(TWEETS, reply)
    exc = _post_error(make_ctx, env)
    assert isinstance(exc, exc_type)
    got = classify(exc)
    assert (got.failure_class, got.status_code) == (expected, reply.status)
    # The ledger keeps only str(exc) in last_error: it must classify the same way.
    assert classify(str(exc)).failure_class == expected


def test_real_duplicate_from_the_double(x_api: Any, env: dict[str, str], make_ctx: Any) -> None:
    x_api.tweets.append({"id": "1", "text": "hello from the classifier test"})
    exc = _post_error(make_ctx, env)
    assert isinstance(exc, tweepy.Forbidden)
    assert classify(exc).failure_class == FailureClass.DUPLICATE
    assert classify(str(exc)).failure_class == FailureClass.DUPLICATE


@pytest.mark.slow
def test_real_hang_is_timeout(x_api: Any, env: dict[str, str], make_ctx: Any) -> None:
    x_api.script(TWEETS, Reply(mode="hang"))  # until the double stops: no late write
    exc = _post_error(make_ctx, env, timeout_s=0.3)
    assert isinstance(exc, requests.ReadTimeout)
    assert classify(exc).failure_class == FailureClass.TIMEOUT
    assert classify(str(exc)).failure_class == FailureClass.TIMEOUT


def test_real_dropped_connection_is_network(x_api: Any, env: dict[str, str], make_ctx: Any) -> None:
    x_api.script(TWEETS, Reply(mode="drop"))
    exc = _post_error(make_ctx, env)
    assert isinstance(exc, requests.ConnectionError)
    assert classify(exc).failure_class == FailureClass.NETWORK
    assert classify(str(exc)).failure_class == FailureClass.NETWORK


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_real_connection_refused_is_network(env: dict[str, str], make_ctx: Any) -> None:
    exc = _post_error(make_ctx, env, base_url=f"http://127.0.0.1:{_closed_port()}")
    assert isinstance(exc, requests.ConnectionError)
    got = classify(exc)
    assert (got.failure_class, got.rule) == (FailureClass.NETWORK, "net-connection")


# --- real database and OS errors ----------------------------------------------------------

def _connect_error(url: str) -> BaseException:
    engine = make_engine(url, connect_timeout=2)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError("the connection did not fail")


def test_real_postgres_closed_port_is_database() -> None:
    exc = _connect_error(f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/test")
    assert classify(exc).failure_class == FailureClass.DATABASE
    assert classify(str(exc)).failure_class == FailureClass.DATABASE


def test_real_postgres_wrong_database_is_database() -> None:
    url = make_url(PG_ADMIN_URL).set(database="am_no_such_database_zz").render_as_string(hide_password=False)
    exc = _connect_error(url)
    if "does not exist" not in str(exc):
        pytest.skip(f"PostgreSQL not reachable: {exc}")
    assert classify(exc).failure_class == FailureClass.DATABASE


def test_real_sqlite_unopenable_is_database(tmp_path: Path) -> None:
    (tmp_path / "ro").mkdir()
    target = tmp_path / "ro" / "dir-not-file"
    target.mkdir()  # a directory where the database file should be
    exc = _connect_error(f"sqlite:///{target}")
    assert classify(exc).failure_class == FailureClass.DATABASE


def test_real_enospc_oserror_is_disk() -> None:
    exc = OSError(errno.ENOSPC, "No space left on device")
    assert classify(exc).failure_class == FailureClass.DISK
    bare = OSError(errno.ENOSPC, "")  # the errno alone is enough
    assert classify(bare).failure_class == FailureClass.DISK


def _tweepy_error(status: int, reason: str, body: dict[str, Any]) -> tweepy.HTTPException:
    response = requests.Response()
    response.status_code, response.reason, response._content = status, reason, json.dumps(body).encode()
    return {429: tweepy.TooManyRequests, 403: tweepy.Forbidden}.get(status, tweepy.HTTPException)(response)


def test_the_raised_error_speaks_before_what_it_wraps() -> None:
    class PostFailed(Exception):
        pass

    try:
        try:
            raise _tweepy_error(429, "Too Many Requests", BODY_429)
        except tweepy.TooManyRequests as exc:
            raise PostFailed("post 3 failed") from exc
    except PostFailed as wrapped:
        got = classify(wrapped)
    assert (got.failure_class, got.rule, got.status_code) == (FailureClass.RATE_LIMIT, "x-rate-limit", 429)

    try:
        try:
            raise _tweepy_error(403, "Forbidden", BODY_403_OAUTH1_PERMISSIONS)
        except tweepy.Forbidden:
            raise OSError(errno.ENOSPC, "No space left on device") from None
    except OSError as disk_full:
        assert classify(disk_full).failure_class == FailureClass.DISK
