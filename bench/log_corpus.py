"""A realistic pipeline log for the log-analysis benchmark and the fast-path equality test.

About 1 % of the entries are errors: single lines with the texts X, tweepy, requests, psycopg
and the OS really print, tweepy's two-line exception messages, and tracebacks, a third of them
chained ("During handling of the above exception…" / "The above exception was the direct
cause…", with Python's blank lines between the parts). Around them: INFO lines (some saying
"0 failed"), rate-limit warnings, and other warnings. Deterministic for a given seed.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

SITE = "/opt/pipeline/.venv/lib/python3.11/site-packages"
START_EPOCH = 1_793_491_200  # 2026-11-01 00:00:00 UTC

INFO = (
    "[pipeline.scheduler] tick: {n} job(s) due, next run at 15:00:00",
    "[pipeline.content] generated post for slot 09:00 ({n} chars, model gpt-4o-mini, {ms} ms)",
    "[pipeline.feed] fetched {n} items from https://feeds.example.org/tech.xml in {ms} ms",
    "[pipeline.media] resized image {hex}.png to 1200x675 ({n} KiB)",
    "[pipeline.poster] post {n} posted as tweet 18600000000{n:08d}",
    "[pipeline.db] ledger: {n} scheduled, 0 failed, 2 posted today",
    "[pipeline.poster] x-user-limit-24hour-remaining={small} x-rate-limit-remaining={n}",
    "[urllib3.connectionpool] Starting new HTTPS connection (1): api.twitter.com:443",
    "[pipeline.cache] cache hit for key feed:{hex} (age {ms} ms)",
    "[pipeline.retry] retry of post {n} failed over to the next slot",
)
WARNING = (
    "[pipeline.feed] feed https://feeds.example.org/world.xml answered 304 after {ms} ms, retrying later",
    "[pipeline.content] generated text was {n} characters, trimmed to 280",
    "[pipeline.poster] x-user-limit-24hour-remaining=1: posting budget nearly spent",
)
RATE_LIMIT_WARNINGS = (
    "[tweepy.client] Rate limit exceeded. Sleeping for {n} seconds.",
    "[pipeline.poster] x-rate-limit-remaining=0: rate limit reached, next window in {ms} ms",
)
ERRORS = (
    "[pipeline.poster] create_tweet failed: 429 Too Many Requests\nToo Many Requests",
    "[pipeline.poster] create_tweet failed: 403 Forbidden\nYou are not allowed to create a Tweet with "
    "duplicate content.",
    "[pipeline.poster] create_tweet failed: 401 Unauthorized\n89 - Invalid or expired token.",
    "[pipeline.poster] create_tweet failed: 503 Service Unavailable\nService Unavailable",
    "[pipeline.poster] create_tweet failed: 429 Too Many Requests\nUsage cap exceeded: Monthly product cap",
    "[pipeline.poster] create_tweet failed: HTTPSConnectionPool(host='api.twitter.com', port=443): Read "
    "timed out. (read timeout=30)",
    "[pipeline.feed] HTTPSConnectionPool(host='feeds.example.org', port=443): Max retries exceeded with url: "
    "/tech.xml (Caused by NewConnectionError('<urllib3.connection.HTTPSConnection object at 0x7f3a2c1d9e50>: "
    "Failed to establish a new connection: [Errno 111] Connection refused'))",
    "[pipeline.db] connection to server at \"127.0.0.1\", port 5432 failed: Connection refused\n"
    "\tIs the server running on that host and accepting TCP/IP connections?",
    "[pipeline.media] could not write cache: [Errno 28] No space left on device: "
    "'/var/lib/pipeline/cache/{hex}.png'",
    "[pipeline.db] (sqlite3.OperationalError) database is locked",
    "[pipeline.content] post {n} failed: model answered garbage",
)
TWEEPY_429 = [
    '  File "/opt/pipeline/poster.py", line 88, in publish',
    "    response = client.create_tweet(text=text)",
    f'  File "{SITE}/tweepy/client.py", line 835, in create_tweet',
    "    return self._make_request(",
    f'  File "{SITE}/tweepy/client.py", line 112, in request',
    "    raise TooManyRequests(response)",
    "tweepy.errors.TooManyRequests: 429 Too Many Requests",
    "Too Many Requests",
]
READ_TIMEOUT_INNER = [
    f'  File "{SITE}/urllib3/connectionpool.py", line 536, in _make_request',
    "    response = conn.getresponse()",
    "TimeoutError: The read operation timed out",
]
READ_TIMEOUT_OUTER = [
    f'  File "{SITE}/requests/adapters.py", line 713, in send',
    "    raise ReadTimeout(e, request=request)",
    "requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='api.twitter.com', port=443): Read timed "
    "out. (read timeout=30)",
]
DB_REFUSED = [
    '  File "/opt/pipeline/ledger.py", line 41, in mark_posted',
    "    with engine.begin() as conn:",
    f'  File "{SITE}/psycopg/connection.py", line 119, in connect',
    "    raise last_ex.with_traceback(None)",
    "psycopg.OperationalError: connection failed: connection to server at \"127.0.0.1\", port 5432 "
    "failed: Connection refused",
    "\tIs the server running on that host and accepting TCP/IP connections?",
]
POSTER_RAISE = [
    '  File "/opt/pipeline/poster.py", line 97, in publish',
    "    raise PostFailed(post_id) from exc",
    "pipeline.errors.PostFailed: post {n} could not be published",
]
KEY_ERROR = [
    '  File "/opt/pipeline/poster.py", line 61, in publish',
    '    text = payload["text"]',
    "KeyError: 'text'",
]
HANDLING = "During handling of the above exception, another exception occurred:"
CAUSE = "The above exception was the direct cause of the following exception:"
TRACEBACK = "Traceback (most recent call last):"
SINGLE_TRACEBACKS = (("[pipeline.poster] post {n} failed", [TWEEPY_429]),
                     ("[pipeline.db] ledger update failed", [DB_REFUSED]),
                     ("[pipeline.poster] post {n} failed", [KEY_ERROR]))
CHAINED_TRACEBACKS = (("[pipeline.poster] post {n} failed", [READ_TIMEOUT_INNER, READ_TIMEOUT_OUTER],
                       HANDLING),
                      ("[pipeline.poster] post {n} failed", [TWEEPY_429, POSTER_RAISE], CAUSE),
                      ("[pipeline.poster] post {n} failed", [DB_REFUSED, KEY_ERROR], HANDLING))


def traceback_text(head: str, parts: list[list[str]], marker: str = HANDLING) -> str:
    """A logged exception as Python prints it: the message, then each part of the chain."""
    chunks = [head + "\n" + TRACEBACK + "\n" + "\n".join(parts[0])]
    chunks += [f"\n\n{marker}\n\n{TRACEBACK}\n" + "\n".join(part) for part in parts[1:]]
    return "".join(chunks)


def _entry(rng: random.Random, fill: dict[str, object], counts: dict[str, int]) -> tuple[str, str]:
    """One entry's level and text (may span lines), drawn with the benchmark's mix."""
    draw = rng.random()
    if draw < 0.0035:
        counts["traceback"] += 1
        if draw < 0.0035 / 3:
            counts["chained"] += 1
            head, parts, marker = rng.choice(CHAINED_TRACEBACKS)
            return "ERROR", traceback_text(head, parts, marker).format(**fill)
        head, parts = rng.choice(SINGLE_TRACEBACKS)
        return "ERROR", traceback_text(head, parts).format(**fill)
    if draw < 0.01:
        counts["error"] += 1
        return "ERROR", rng.choice(ERRORS).format(**fill)
    if draw < 0.014:
        counts["rate_limit_warning"] += 1
        return "WARNING", rng.choice(RATE_LIMIT_WARNINGS).format(**fill)
    if draw < 0.03:
        counts["warning"] += 1
        return "WARNING", rng.choice(WARNING).format(**fill)
    counts["info"] += 1
    return "INFO", rng.choice(INFO).format(**fill)


def write_log(path: Path, size: int, seed: int = 13) -> dict[str, int]:
    """Write about `size` bytes of pipeline log to `path`; return how many entries of each kind."""
    rng = random.Random(seed)
    counts = dict.fromkeys(("info", "warning", "rate_limit_warning", "error", "traceback", "chained",
                            "lines"), 0)
    millis = START_EPOCH * 1000
    second, stamp = -1, ""
    written = 0
    with path.open("w", encoding="utf-8", newline="\n") as out:
        while written < size:
            block = []
            for _ in range(5_000):
                millis += rng.randint(5, 900)
                if millis // 1000 != second:
                    second = millis // 1000
                    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(second))
                fill = {"n": rng.randint(1, 99_999), "ms": rng.randint(3, 4000), "small": rng.randint(0, 17),
                        "hex": f"{rng.getrandbits(48):012x}"}
                level, text = _entry(rng, fill, counts)
                block.append(f"{stamp},{millis % 1000:03d} {level} {text}\n")
            chunk = "".join(block)
            out.write(chunk)
            written += len(chunk)
            counts["lines"] += chunk.count("\n")
    return counts


if __name__ == "__main__":
    import sys

    target = Path(sys.argv[1])
    print(write_log(target, int(float(sys.argv[2]) * 10**6)))
