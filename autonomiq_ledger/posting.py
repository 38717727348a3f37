"""The post ledger API: enqueue a post, claim it, post it through tweepy, record the outcome.

Every status change goes through `transition()`: a move the state machine allows
(`autonomiq_ledger.status`), made only if the row is still as it was read (status, attempts and
updated_at unchanged: optimistic concurrency), with its row count checked. So the pipeline and the
monitor — or two monitors — never both post a row, and neither takes a row back from the other.

Pipeline usage::

    from utils.config import load_settings
    from utils.context import MonitorContext
    from autonomiq_ledger import post, schedule_post

    ctx = MonitorContext(load_settings())
    post_id = schedule_post(ctx.engine, "Good morning!", scheduled_at=ctx.now())
    result = post(ctx, post_id)          # instead of client.create_tweet(...)
    if result.status == PostStatus.POSTED:
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

from sqlalchemy import Connection, Engine, func, insert, select, type_coerce, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.types import NullType

from autonomiq_ledger import _leaves
from autonomiq_ledger.ambiguity import may_have_reached_x
from autonomiq_ledger.excerpt import excerpt
from autonomiq_ledger.status import CLAIMABLE, PostStatus, check_transition, status_in

# Our utils leaves, whoever owns the name `utils` in a pipeline's process (see _leaves.py).
instant, posts, utc_now = _leaves.db.instant, _leaves.db.posts, _leaves.db.utc_now
redact, register_secrets = _leaves.redact.redact, _leaves.redact.register_secrets
put_state = _leaves.state.put_state
budget_from_headers, rate_headers = _leaves.x_client.budget_from_headers, _leaves.x_client.rate_headers

if TYPE_CHECKING:
    import tweepy

logger = logging.getLogger(__name__)

S = PostStatus
RAW_UPDATED_AT = "_updated_at_raw"  # updated_at exactly as stored: what `unchanged` compares
_RAW = type_coerce(posts.c.updated_at, NullType())
_ROW = select(posts, _RAW.label(RAW_UPDATED_AT))
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
    conflict: str | None = None   # the row changed under the call (another process moved it)
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
            text=text, scheduled_at=scheduled_at, status=S.SCHEDULED.value, attempts=0,
            updated_at=now or utc_now(), ambiguous_attempt=False))
        key = result.inserted_primary_key
        assert key is not None  # an INSERT always has one
        return int(key[0])


def get_post(engine: Engine, post_id: int) -> dict[str, Any] | None:
    """The row as a dict (plus its stored updated_at under RAW_UPDATED_AT), or None."""
    with engine.connect() as conn:
        row = conn.execute(_ROW.where(posts.c.id == post_id)).first()
    return dict(row._mapping) if row is not None else None


def get_posts(conn: Connection, post_ids: list[int]) -> list[dict[str, Any]]:
    """The rows `post_ids` that exist, as `get_post` reads each, on `conn` (in its transaction)."""
    if not post_ids:
        return []
    query = _ROW.where(posts.c.id.in_(post_ids)).order_by(posts.c.id)
    return [dict(row._mapping) for row in conn.execute(query)]


def unchanged(row: dict[str, Any]) -> list[Any]:
    """WHERE clauses true only while the row is as `row` was read: same status, attempts and
    updated_at (NULL-safe, exact on every backend)."""
    clauses = [posts.c.id == row["id"], status_in(posts.c.status, [row["status"]])]
    stamp = row[RAW_UPDATED_AT] if RAW_UPDATED_AT in row else row.get("updated_at")
    column = _RAW if RAW_UPDATED_AT in row else posts.c.updated_at
    for col, value in ((posts.c.attempts, row.get("attempts")), (column, stamp)):
        clauses.append(col.is_(None) if value is None else col == value)
    return clauses


def transition(engine: Engine, post_id: int, from_status: str | tuple[str, ...], to_status: str,
               now: datetime, *, expect: dict[str, Any] | None = None, **values: Any) -> bool:
    """Move the row `from_status → to_status` if the state machine allows it (else raise
    IllegalTransition) and, given `expect` (the row as read), only if the row is unchanged since;
    True only if this call made the change."""
    allowed = (from_status,) if isinstance(from_status, str) else from_status
    check_transition(allowed, to_status)
    where = [posts.c.id == post_id, status_in(posts.c.status, allowed)]
    if expect is not None:
        where += unchanged(expect)
    with engine.begin() as conn:
        done = conn.execute(update(posts).where(*where)
                            .values(status=str(to_status), updated_at=now, **values)).rowcount
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
         now: datetime | None = None, expect: dict[str, Any] | None = None) -> PostResult:
    """Claim the row (scheduled/failed/due retry → posting) if it is unchanged since it was read
    (`expect`, else now), post it once, record the outcome."""
    engine, client, now = _collaborators(ctx_or_engine, client, now)
    row = get_post(engine, post_id)
    if row is None or row["status"] not in CLAIMABLE or row_problem(row):
        why = "no such row" if row is None else row_problem(row) or f"status is {row['status']}"
        return PostResult(post_id, "not_claimed", error=why)
    check_transition([row["status"]], PostStatus.POSTING)
    due = posts.c.next_attempt_at.is_(None) | (instant(posts.c.next_attempt_at) <= instant(now))
    with engine.begin() as conn:
        claimed = conn.execute(
            update(posts).where(*unchanged(expect if expect is not None else row), due)
            .values(status=PostStatus.POSTING.value, attempts=func.coalesce(posts.c.attempts, 0) + 1,
                    updated_at=now)).rowcount
        # Read back in the same transaction (our write holds the row): the version the outcome
        # update must still find, whatever form the backend stored `now` in.
        mine = conn.execute(_ROW.where(posts.c.id == post_id)).first() if claimed == 1 else None
    if mine is None:
        return PostResult(post_id, "not_claimed", error="changed since it was read (claimed or "
                          "moved by another process) or not due; looked at afresh next time")
    return _send(engine, client, dict(mine._mapping), now)


def _collaborators(ctx_or_engine: Any, client: Any, now: datetime | None) -> tuple[Engine, Any, datetime]:
    if isinstance(ctx_or_engine, Engine):
        if client is None:
            raise ValueError("post(engine, …) needs client=")
        register_secrets(getattr(client, name, None) or "" for name in _CLIENT_SECRETS)
        return ctx_or_engine, client, now or utc_now()
    ctx = ctx_or_engine
    return ctx.engine, client or ctx.x_client, now or ctx.now()


def _send(engine: Engine, client: Any, row: dict[str, Any], now: datetime) -> PostResult:
    """Post the claimed `row` (as claimed: the version its outcome update must still find)."""
    post_id = row["id"]
    try:
        response = client.create_tweet(text=row["text"], user_auth=uses_oauth1(client))
    except Exception as exc:  # every failure is recorded on the row, never lost
        return _record_failure(engine, row, exc, now)
    try:
        tweet_id = _tweet_id(response)
    except Exception as exc:  # a 2xx with HTML or no `data`: classified, retried through the duplicate check
        return _record_failure(engine, row, UnreadableAnswer(response, exc), now)
    headers = rate_headers(getattr(response, "headers", None))
    done = {"tweet_id": tweet_id, "posted_at": now, "last_error": None, "failure_class": None,
            "next_attempt_at": None}
    conflict = None
    if not transition(engine, post_id, S.POSTING, S.POSTED, now, expect=row, **done):
        conflict = _posted_under_change(engine, post_id, now, done)
    _remember_budget(engine, headers, now, ok=True)
    logger.info("post %s posted as tweet %s", post_id, tweet_id)
    return PostResult(post_id, "posted", tweet_id=tweet_id, headers=headers, conflict=conflict)


def _posted_under_change(engine: Engine, post_id: int, now: datetime, done: dict[str, Any]) -> str:
    """The tweet is on X but the row changed during the call: record it if the row is only
    waiting for a retry, else leave it and say so (never lost, never posted twice by us)."""
    row = get_post(engine, post_id)
    status = row["status"] if row is not None else None
    if row is not None and status in (S.FAILED, S.RETRY_SCHEDULED) and \
            transition(engine, post_id, status, S.POSTED, now, expect=row, **done):
        why = f"the row changed during the call (it was {status}); recorded as posted"
    else:
        why = f"the row changed during the call and is now {status}; left as it is"
    logger.warning("post %s: tweet %s is on X but %s", post_id, done["tweet_id"], why)
    return why


def _tweet_id(response: Any) -> str:
    """The new tweet's id from a `requests.Response` (our client) or a `tweepy.Response` (a
    pipeline's default client, which has parsed the body already and carries no headers)."""
    if hasattr(response, "json"):
        return str(response.json()["data"]["id"])
    return str(response.data["id"])


def _record_failure(engine: Engine, row: dict[str, Any], exc: Exception, now: datetime) -> PostResult:
    post_id = row["id"]
    response = getattr(exc, "response", None)
    headers = rate_headers(getattr(response, "headers", None))
    ambiguous = may_have_reached_x(exc)
    error = redact(str(exc) or type(exc).__name__)
    values: dict[str, Any] = {"last_error": error, "failure_class": None, "next_attempt_at": None,
                              "last_error_headers": json.dumps(headers, sort_keys=True)}
    if ambiguous:
        values["ambiguous_attempt"] = True  # sticky: any ambiguous attempt makes a duplicate "posted"
    conflict = None
    if not transition(engine, post_id, S.POSTING, S.FAILED, now, expect=row, **values):
        current = get_post(engine, post_id)
        conflict = (f"the row changed during the call and is now "
                    f"{current['status'] if current else 'gone'}; this failure was not recorded on it")
    if headers:
        _remember_budget(engine, headers, now, ok=False)
    logger.warning("post %s failed (%s%s): %s%s", post_id, type(exc).__name__,
                   ", may have reached X" if ambiguous else "", " ".join(excerpt(error, 300).split()),
                   f" ({conflict})" if conflict else "")
    return PostResult(post_id, "failed", error=error, headers=headers, ambiguous=ambiguous,
                      exception=exc, conflict=conflict)


def _remember_budget(engine: Engine, headers: dict[str, int], now: datetime, *, ok: bool) -> None:
    """Store the posting budget X reported (24-hour windows and the rate window) for `status`."""
    saved: dict[str, Any] = {"last": {"at": now.isoformat(), "ok": ok}}
    for name, prefix in _BUDGET_PREFIXES.items():
        budget = budget_from_headers(headers, prefix)
        if budget is not None:
            saved[name] = budget.to_json()
    try:
        put_state(engine, BUDGET_STATE_KEY, saved, now)
    except SQLAlchemyError as exc:  # the budget is informative; the post outcome is already recorded
        logger.warning("could not store the posting budget: %s", exc)
