"""The post ledger API: enqueue a post, claim it, post it through tweepy, record the outcome.

Every status change is a compare-and-set (`UPDATE posts … WHERE id = ? AND status = ?`, then
check the row count), so the pipeline and the monitor — or two monitors — never both post a row.

Pipeline usage::

    from utils.config import load_settings
    from utils.context import MonitorContext
    from autonomiq_ledger.posting import post, schedule_post

    ctx = MonitorContext(load_settings())
    post_id = schedule_post(ctx.engine, "Good morning!", scheduled_at=ctx.now())
    result = post(ctx, post_id)          # instead of client.create_tweet(...)
    if result.status == "posted":
        print(result.tweet_id)
    # on failure the row is `failed` with last_error / last_error_headers; the monitor's sweep
    # classifies it and retries, holds or gives up as the cause requires.

A pipeline with its own engine (`utils.db.make_engine`, then `init_db(engine)` to create the
tables if absent) and tweepy client calls `post(engine, post_id, client=client)`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, insert, select, update

from utils.db import posts, utc_now
from utils.redact import redact, register_secrets
from utils.state import put_state
from utils.x_client import budget_from_headers, rate_headers

if TYPE_CHECKING:
    import tweepy

logger = logging.getLogger(__name__)

CLAIMABLE = ("scheduled", "failed", "retry_scheduled")
BUDGET_STATE_KEY = "x_api:post"
_CLIENT_SECRETS = ("consumer_key", "consumer_secret", "access_token", "access_token_secret", "bearer_token")
MAX_TEXT_CHARS = 25_000  # X's longest post (premium); anything longer is a bad row, not a post
_BUDGET_PREFIXES = {"user_24h": "x-user-limit-24hour", "app_24h": "x-app-limit-24hour",
                    "rate": "x-rate-limit"}


@dataclass(frozen=True)
class PostResult:
    """How one `post()` call ended: `posted`, `failed`, or `not_claimed` (someone else has it)."""

    post_id: int
    status: str
    tweet_id: str | None = None
    error: str | None = None
    headers: dict[str, int] = field(default_factory=dict)
    ambiguous: bool = False
    exception: BaseException | None = field(default=None, repr=False, compare=False)


class UnreadableAnswer(Exception):
    """X accepted the POST (2xx) but its body holds no tweet id (HTML, empty, no `data`): the tweet
    may exist. Worded like tweepy's parse error, which the classifier reads as `server_error`."""

    def __init__(self, response: Any, cause: Exception) -> None:
        self.response = response  # its rate-limit headers are still worth keeping
        content_type = (getattr(response, "headers", None) or {}).get("content-type", "?")
        super().__init__(f"Failed to parse JSON payload: HTTP {getattr(response, 'status_code', '?')} "
                         f"({content_type}) without a tweet id: {type(cause).__name__}: {cause}")


def schedule_post(engine: Engine, text: str, scheduled_at: datetime, *,
                  now: datetime | None = None) -> int:
    """Insert a `scheduled` row and return its id."""
    with engine.begin() as conn:
        result = conn.execute(insert(posts).values(
            text=text, scheduled_at=scheduled_at, status="scheduled", attempts=0,
            updated_at=now or utc_now(), ambiguous_attempt=False))
        return int(result.inserted_primary_key[0])


def get_post(engine: Engine, post_id: int) -> dict[str, Any] | None:
    """The row as a dict, or None."""
    with engine.connect() as conn:
        row = conn.execute(select(posts).where(posts.c.id == post_id)).first()
    return dict(row._mapping) if row is not None else None


def transition(engine: Engine, post_id: int, from_status: str | tuple[str, ...], to_status: str,
               now: datetime, **values: Any) -> bool:
    """Compare-and-set the row's status; True only if this call made the change."""
    allowed = (from_status,) if isinstance(from_status, str) else from_status
    with engine.begin() as conn:
        done = conn.execute(update(posts).where(posts.c.id == post_id, posts.c.status.in_(allowed))
                            .values(status=to_status, updated_at=now, **values)).rowcount
    return done == 1


def row_problem(row: dict[str, Any]) -> str | None:
    """Why a row cannot be posted as it is (None when it can)."""
    text = row.get("text")
    if not isinstance(text, str) or not text.strip():
        return "text is empty or NULL"
    if len(text) > MAX_TEXT_CHARS:
        return f"text is {len(text)} characters (X accepts at most {MAX_TEXT_CHARS})"
    return None


def uses_oauth1(client: tweepy.Client) -> bool:
    """True when the client carries OAuth 1.0a user keys; otherwise it posts with an OAuth 2.0
    user access token as its bearer token."""
    return all(getattr(client, name, None) for name in
               ("consumer_key", "consumer_secret", "access_token", "access_token_secret"))


def post(ctx_or_engine: Any, post_id: int, *, client: tweepy.Client | None = None,
         now: datetime | None = None) -> PostResult:
    """Claim the row (scheduled/failed/due retry → posting), post it once, record the outcome."""
    engine, client, now = _collaborators(ctx_or_engine, client, now)
    row = get_post(engine, post_id)
    if row is None or row["status"] not in CLAIMABLE or row_problem(row):
        why = "no such row" if row is None else row_problem(row) or f"status is {row['status']}"
        return PostResult(post_id, "not_claimed", error=why)
    due = posts.c.next_attempt_at.is_(None) | (posts.c.next_attempt_at <= now)
    with engine.begin() as conn:
        claimed = conn.execute(
            update(posts).where(posts.c.id == post_id, posts.c.status == row["status"], due)
            .values(status="posting", attempts=posts.c.attempts + 1, updated_at=now)).rowcount
    if claimed != 1:
        return PostResult(post_id, "not_claimed", error="claimed by another process or not due")
    return _send(engine, client, row, now)


def _collaborators(ctx_or_engine: Any, client: Any, now: datetime | None) -> tuple[Engine, Any, datetime]:
    if isinstance(ctx_or_engine, Engine):
        if client is None:
            raise ValueError("post(engine, …) needs client=")
        register_secrets(getattr(client, name, None) or "" for name in _CLIENT_SECRETS)
        return ctx_or_engine, client, now or utc_now()
    ctx = ctx_or_engine
    return ctx.engine, client or ctx.x_client, now or ctx.now()


def _send(engine: Engine, client: Any, row: dict[str, Any], now: datetime) -> PostResult:
    post_id = row["id"]
    try:
        response = client.create_tweet(text=row["text"], user_auth=uses_oauth1(client))
    except Exception as exc:  # every failure is recorded on the row, never lost
        return _record_failure(engine, post_id, exc, now)
    try:
        tweet_id = _tweet_id(response)
    except Exception as exc:  # a 2xx with HTML or no `data`: classified, retried through the duplicate check
        return _record_failure(engine, post_id, UnreadableAnswer(response, exc), now)
    headers = rate_headers(getattr(response, "headers", None))
    transition(engine, post_id, "posting", "posted", now, tweet_id=tweet_id, posted_at=now,
               last_error=None, failure_class=None, next_attempt_at=None)
    _remember_budget(engine, headers, now, ok=True)
    logger.info("post %s posted as tweet %s", post_id, tweet_id)
    return PostResult(post_id, "posted", tweet_id=tweet_id, headers=headers)


def _tweet_id(response: Any) -> str:
    """The new tweet's id from a `requests.Response` (our client) or a `tweepy.Response` (a
    pipeline's default client, which has parsed the body already and carries no headers)."""
    if hasattr(response, "json"):
        return str(response.json()["data"]["id"])
    return str(response.data["id"])


def _record_failure(engine: Engine, post_id: int, exc: Exception, now: datetime) -> PostResult:
    response = getattr(exc, "response", None)
    headers = rate_headers(getattr(response, "headers", None))
    ambiguous = may_have_reached_x(exc)
    error = redact(str(exc) or type(exc).__name__)
    values: dict[str, Any] = {"last_error": error, "failure_class": None, "next_attempt_at": None,
                              "last_error_headers": json.dumps(headers, sort_keys=True)}
    if ambiguous:
        values["ambiguous_attempt"] = True  # sticky: any ambiguous attempt makes a duplicate "posted"
    transition(engine, post_id, "posting", "failed", now, **values)
    if headers:
        _remember_budget(engine, headers, now, ok=False)
    logger.warning("post %s failed (%s%s): %s", post_id, type(exc).__name__,
                   ", may have reached X" if ambiguous else "", error.splitlines()[0] if error else "")
    return PostResult(post_id, "failed", error=error, headers=headers, ambiguous=ambiguous,
                      exception=exc)


def may_have_reached_x(exc: BaseException) -> bool:
    """True when the request may have been sent and acted on: 5xx, read timeout, dropped
    connection. False for X's 4xx answers and for failures before anything was sent."""
    import requests
    import tweepy

    if isinstance(exc, tweepy.TwitterServerError):
        return True
    if isinstance(exc, tweepy.HTTPException):
        return False
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.SSLError):
        return False
    if isinstance(exc, requests.ConnectionError):
        text = str(exc)
        return not any(marker in text for marker in
                       ("NewConnectionError", "NameResolutionError", "Connection refused",
                        "Failed to resolve"))
    return True  # a read timeout, a 2xx with an unreadable body, anything unknown: it may have


def _remember_budget(engine: Engine, headers: dict[str, int], now: datetime, *, ok: bool) -> None:
    """Store the posting budget X reported (24-hour windows and the rate window) for `status`."""
    saved: dict[str, Any] = {"last": {"at": now.isoformat(), "ok": ok}}
    for name, prefix in _BUDGET_PREFIXES.items():
        budget = budget_from_headers(headers, prefix)
        if budget is not None:
            saved[name] = budget.to_json()
    try:
        put_state(engine, BUDGET_STATE_KEY, saved, now)
    except Exception as exc:  # the budget is informative; the post outcome is already recorded
        logger.warning("could not store the posting budget: %s", exc)
