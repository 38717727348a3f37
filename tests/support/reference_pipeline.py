"""A reference pipeline: plain SQL (sqlite3 / psycopg / PyMySQL) and plain tweepy, nothing of ours.

    python tests/support/reference_pipeline.py DATABASE_URL X_API_BASE_URL TAG ROWS SECONDS

It does what the README's "Connecting your pipeline" section asks of a pipeline that posts by
itself: the minimal insert, a claim (`scheduled → posting`, attempts + 1, updated_at), one
`create_tweet`, then `posted` with the tweet id or `failed` with the error text (and the rate
headers of a 429 in `last_error_headers`), each update guarded by the status and attempts it
claimed with. Half of its rows are already late, so the monitor's sweep races it for them; it also
retries its own 429s once their reset has passed, racing the sweep's rate-limit routine. It leaves
every other failure to the monitor.

It prints one JSON line: its claims, posts, the updates that found the row taken back, and each
hold (claim → outcome, wall-clock seconds) for the race test to check the monitor against.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import requests
import tweepy

TERMINAL = ("posted", "gave_up", "skipped")
RATE_HEADERS = ("x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset",
                "x-user-limit-24hour-limit", "x-user-limit-24hour-remaining", "x-user-limit-24hour-reset")


class Ledger:
    """The `posts` table through the database's own driver, autocommit, `%s` placeholders."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.kind = parts.scheme.split("+")[0]
        if self.kind == "sqlite":
            self.conn: Any = sqlite3.connect(parts.path[1:] if url.startswith("sqlite:////")
                                             else parts.path.lstrip("/"), timeout=30,
                                             isolation_level=None)
        elif self.kind == "postgresql":
            import psycopg

            self.conn = psycopg.connect(host=parts.hostname, port=parts.port or 5432,
                                        user=parts.username, dbname=parts.path.lstrip("/"),
                                        autocommit=True)
        else:
            import pymysql

            self.conn = pymysql.connect(host=parts.hostname, port=parts.port or 3306,
                                        user=parts.username, password=parts.password or "",
                                        database=parts.path.lstrip("/"), autocommit=True)

    def stamp(self, moment: datetime) -> Any:
        """A UTC instant as this pipeline writes it: ISO-8601 with `T` and `Z` on SQLite (as many
        pipelines do), naive UTC on PostgreSQL and MariaDB (what the README says the columns mean)."""
        if self.kind == "sqlite":
            return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return moment.replace(tzinfo=None)

    def run(self, sql: str, *args: Any) -> tuple[int, list[tuple[Any, ...]]]:
        """Execute one statement; (row count, fetched rows)."""
        if self.kind == "sqlite":
            sql = sql.replace("%s", "?")
        cursor = self.conn.cursor()
        cursor.execute(sql, args)
        rows = cursor.fetchall() if cursor.description else []
        count = cursor.rowcount
        cursor.close()
        return count, rows


class ToDouble(requests.adapters.HTTPAdapter):
    """Send tweepy's api.twitter.com requests to the X API double, with a bounded wait."""

    def __init__(self, base_url: str) -> None:
        super().__init__(max_retries=0)
        self.base_url = base_url.rstrip("/")

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        request.url = (request.url or "").replace("https://api.twitter.com", self.base_url)
        kwargs["timeout"] = (2.0, 1.5)
        return super().send(request, **kwargs)


def make_client(base_url: str) -> tweepy.Client:
    """Plain tweepy, OAuth 1.0a, the pipeline's own access token."""
    client = tweepy.Client(consumer_key="test-consumer-key", consumer_secret="pipeline-secret",
                           access_token="pipeline-token-1", access_token_secret="pipeline-token-secret")
    client.session.mount("https://api.twitter.com", ToDouble(base_url))
    return client


class Pipeline:
    """Claims and posts due rows; records what it did."""

    def __init__(self, ledger: Ledger, client: tweepy.Client) -> None:
        self.ledger, self.client = ledger, client
        self.claims = self.posts_sent = 0
        self.taken_back: list[int] = []
        self.holds: list[dict[str, Any]] = []

    def insert(self, tag: str, rows: int) -> None:
        """The README's minimal insert; even rows are already 30 minutes late."""
        now = datetime.now(UTC)
        for n in range(rows):
            at = now - timedelta(minutes=30) if n % 2 == 0 else now + timedelta(seconds=0.2 * n)
            self.ledger.run("INSERT INTO posts (text, scheduled_at, status) VALUES (%s, %s, 'scheduled')",
                            f"reference {tag} #{n}", self.ledger.stamp(at))

    def tick(self) -> None:
        """Post due scheduled rows, then retry own 429s whose reset has passed."""
        now = datetime.now(UTC)
        _, due = self.ledger.run("SELECT id, text, attempts FROM posts WHERE status = 'scheduled' "
                                 "AND scheduled_at <= %s ORDER BY id", self.ledger.stamp(now))
        for post_id, text, attempts in due:
            self.attempt(post_id, text, attempts, "scheduled")
        _, limited = self.ledger.run("SELECT id, text, attempts, last_error_headers FROM posts "
                                     "WHERE status = 'failed' AND last_error LIKE %s ORDER BY id", "429%")
        for post_id, text, attempts, headers in limited:
            reset = json.loads(headers or "{}").get("x-rate-limit-reset", 0)
            if int(reset) <= time.time():
                self.attempt(post_id, text, attempts, "failed")

    def attempt(self, post_id: int, text: str, attempts: int | None, status: str) -> None:
        """Claim from `status` (as read), post once, record the outcome where the claim holds."""
        claimed_attempts = (attempts or 0) + 1
        count, _ = self.ledger.run(
            "UPDATE posts SET status = 'posting', attempts = %s, updated_at = %s "
            "WHERE id = %s AND status = %s AND COALESCE(attempts, 0) = %s",
            claimed_attempts, self.ledger.stamp(datetime.now(UTC)), post_id, status, attempts or 0)
        if count != 1:
            return  # the monitor (or nobody) changed it since the read: not ours
        self.claims += 1
        hold = {"id": post_id, "text": text, "start": time.time()}
        self.posts_sent += 1
        try:
            response = self.client.create_tweet(text=text, user_auth=True)
            values = ("posted", str(response.data["id"]), None, None)
        except tweepy.TooManyRequests as exc:
            headers = {name: exc.response.headers[name] for name in RATE_HEADERS
                       if name in exc.response.headers}
            values = ("failed", None, str(exc), json.dumps(headers))
        except Exception as exc:  # the pipeline records every failure as it sees it
            values = ("failed", None, f"{type(exc).__name__}: {exc}", None)
        now = self.ledger.stamp(datetime.now(UTC))
        count, _ = self.ledger.run(
            "UPDATE posts SET status = %s, tweet_id = %s, last_error = %s, last_error_headers = %s, "
            "posted_at = %s, updated_at = %s WHERE id = %s AND status = 'posting' AND attempts = %s",
            *values, now if values[0] == "posted" else None, now, post_id, claimed_attempts)
        if count != 1:
            self.taken_back.append(post_id)
        self.holds.append({**hold, "end": time.time(), "outcome": values[0]})

    def unfinished(self) -> int:
        """Rows not yet in a terminal status."""
        _, rows = self.ledger.run("SELECT COUNT(*) FROM posts WHERE status NOT IN (%s, %s, %s)", *TERMINAL)
        return int(rows[0][0])


def main(argv: list[str]) -> int:
    url, base_url, tag, rows, seconds = argv[1], argv[2], argv[3], int(argv[4]), float(argv[5])
    pipeline = Pipeline(Ledger(url), make_client(base_url))
    pipeline.insert(tag, rows)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and pipeline.unfinished():
        pipeline.tick()
        time.sleep(0.05)
    _, statuses = pipeline.ledger.run("SELECT status, COUNT(*) FROM posts GROUP BY status")
    print(json.dumps({"rows": rows, "claims": pipeline.claims, "posts_sent": pipeline.posts_sent,
                      "taken_back": pipeline.taken_back, "holds": pipeline.holds,
                      "statuses": {str(s): int(n) for s, n in statuses},
                      "finished": pipeline.unfinished() == 0}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
