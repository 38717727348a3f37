"""The X API client factory and what the monitor reads off X's answers.

`tweepy.Client` sets no timeout and always calls https://api.twitter.com; the client built here
uses our session (timeouts, base-URL routing) and returns raw responses so headers are kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from .http_client import make_session  # relative: see autonomiq_ledger/_leaves.py

if TYPE_CHECKING:
    import tweepy

    from utils.config import Settings

RATE_HEADERS = (
    "x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset",
    "x-user-limit-24hour-limit", "x-user-limit-24hour-remaining", "x-user-limit-24hour-reset",
    "x-app-limit-24hour-limit", "x-app-limit-24hour-remaining", "x-app-limit-24hour-reset",
)


def build_client(settings: Settings, *, timeout_s: float | None = None) -> tweepy.Client:
    """A tweepy Client for OAuth 1.0a user context, routed to TWITTER_API_BASE_URL, bounded."""
    import requests
    import tweepy

    client = tweepy.Client(
        bearer_token=settings.twitter_bearer_token,
        consumer_key=settings.twitter_api_key,
        consumer_secret=settings.twitter_api_secret,
        access_token=settings.twitter_access_token,
        access_token_secret=settings.twitter_access_token_secret,
        return_type=requests.Response,
        wait_on_rate_limit=False,  # never sleep in a job thread; recovery schedules the retry
    )
    client.session = make_session(timeout_s or settings.check_timeout_seconds,
                                  x_api_base_url=settings.twitter_api_base_url)
    return client


def rate_headers(headers: Any) -> dict[str, int]:
    """The rate-limit headers present in `headers`, as integers (malformed ones skipped)."""
    found: dict[str, int] = {}
    if not headers:
        return found
    for name in RATE_HEADERS:
        value = headers.get(name)
        if value is None:
            continue
        try:
            found[name] = int(str(value).strip())
        except ValueError:
            continue
    return found


@dataclass(frozen=True)
class Budget:
    """A window of API calls as X reported it: calls left and when the window resets."""

    limit: int | None
    remaining: int
    reset_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict of this budget."""
        return {"limit": self.limit, "remaining": self.remaining,
                "reset_at": self.reset_at.isoformat() if self.reset_at else None}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Budget:
        """The budget saved by `to_json`."""
        reset = data.get("reset_at")
        return cls(data.get("limit"), int(data["remaining"]),
                   datetime.fromisoformat(reset) if reset else None)


def budget_from_headers(headers: dict[str, int], prefix: str = "x-rate-limit") -> Budget | None:
    """The budget carried by one header family (`x-rate-limit`, `x-user-limit-24hour` …)."""
    remaining = headers.get(f"{prefix}-remaining")
    if remaining is None:
        return None
    reset = headers.get(f"{prefix}-reset")
    reset_at = datetime.fromtimestamp(reset, UTC) if reset else None
    return Budget(headers.get(f"{prefix}-limit"), remaining, reset_at)
