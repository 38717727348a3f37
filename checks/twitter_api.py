"""`twitter_api`: the X API accepts the credentials (`GET /2/users/me`, user context).

`GET /2/users/me` is scarce (25 calls a day on the legacy free tier), so the check keeps a
reserve: it remembers the budget X reported last (persisted) and skips the call, saying so,
rather than spend the last calls.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from checks.base import CheckFailed, CheckUnknown, CheckWarning, Passed
from utils.config import OAUTH1_VARIABLES
from utils.failure_classes import FailureClass
from utils.http_client import describe_error
from utils.redact import one_line
from utils.state import get_state, put_state
from utils.x_client import Budget, budget_from_headers, rate_headers

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "twitter_api"
STATE_KEY = "x_api:users_me"
# What each tier allows for GET /2/users/me before any header was seen: (calls, window).
TIER_LIMITS = {"free": (25, timedelta(hours=24)), "basic": (250, timedelta(hours=24)),
               "pro": (75, timedelta(minutes=15)), "pay_per_use": (75, timedelta(minutes=15))}


def _local(ctx: MonitorContext, moment: datetime | None) -> str:
    if moment is None:
        return "an unknown time"
    return moment.astimezone(ctx.settings.monitor_timezone).strftime("%H:%M %Z")


def estimated_budget(ctx: MonitorContext, saved: dict[str, Any]) -> Budget:
    """What is left: X's last word while its window lasts, else the tier's assumption."""
    now = ctx.now()
    if saved.get("budget"):
        budget = Budget.from_json(saved["budget"])
        if budget.reset_at and budget.reset_at > now:
            return budget
    limit, window = TIER_LIMITS[ctx.settings.twitter_api_tier]
    recent = [datetime.fromisoformat(t) for t in saved.get("calls", [])]
    recent = [t for t in recent if t > now - window]
    reset_at = min(recent) + window if recent else None
    return Budget(limit, max(0, limit - len(recent)), reset_at)


def _remember(ctx: MonitorContext, saved: dict[str, Any], headers: Any,
              outcome: dict[str, Any]) -> None:
    now = ctx.now()
    window = TIER_LIMITS[ctx.settings.twitter_api_tier][1]
    calls = [t for t in saved.get("calls", []) if datetime.fromisoformat(t) > now - window]
    saved["calls"] = [*calls, now.isoformat()]
    budget = budget_from_headers(rate_headers(headers))
    if budget is not None:
        saved["budget"] = budget.to_json()
    saved["last"] = {**outcome, "at": now.isoformat()}
    with contextlib.suppress(Exception):  # the database check reports a broken database
        put_state(ctx.engine, STATE_KEY, saved, now)


def _skip(ctx: MonitorContext, saved: dict[str, Any], budget: Budget) -> Passed:
    reserve = ctx.settings.twitter_api_reserve_calls
    why = (f"skipped GET /2/users/me to keep the last {reserve} call(s): {budget.remaining} left"
           f" until {_local(ctx, budget.reset_at)}")
    last = saved.get("last") or {}
    data = {"skipped": True, "budget": budget.to_json(), "last": last}
    if last.get("ok"):
        return Passed(f"{why}; last verified ok at {last.get('at', '?')[:16]} as "
                      f"@{last.get('username', '?')}", data)
    raise CheckUnknown(f"{why}; credentials not verified", data=data)


def check(ctx: MonitorContext) -> Passed:
    """Verify the credentials, spending at most one call and never the reserve."""
    missing = [name for name in OAUTH1_VARIABLES if not ctx.settings.values[name]]
    if missing:
        raise CheckUnknown(f"no X API credentials: set {', '.join(missing)} in .env")
    try:
        saved = get_state(ctx.engine, STATE_KEY) or {}
    except SQLAlchemyError:  # the database check reports the database; assume nothing was seen
        saved = {}
    budget = estimated_budget(ctx, saved)
    if budget.remaining <= ctx.settings.twitter_api_reserve_calls:
        return _skip(ctx, saved, budget)
    import requests
    import tweepy

    started = time.perf_counter()
    try:
        response = ctx.x_client.get_me(user_auth=True)
    except tweepy.TweepyException as exc:
        response = getattr(exc, "response", None)
        _remember(ctx, saved, getattr(response, "headers", None), {"ok": False})
        raise _failure(ctx, exc, response) from exc
    except requests.Timeout as exc:
        raise CheckFailed(f"X API did not answer within {ctx.settings.check_timeout_seconds:g}s"
                          f" ({type(exc).__name__})", failure_class=FailureClass.TIMEOUT) from exc
    except requests.RequestException as exc:
        raise CheckFailed(f"cannot reach the X API: {describe_error(exc)} ({type(exc).__name__})",
                          failure_class=FailureClass.NETWORK) from exc
    latency_ms = round((time.perf_counter() - started) * 1000, 1)
    headers = rate_headers(response.headers)
    try:
        username = response.json()["data"]["username"]
    except (ValueError, KeyError, TypeError):
        _remember(ctx, saved, response.headers, {"ok": False})
        raise CheckFailed(f"X API answered {response.status_code} with a body that is not the "
                          "expected JSON", failure_class=FailureClass.SERVER_ERROR,
                          data={"latency_ms": latency_ms}) from None
    _remember(ctx, saved, response.headers, {"ok": True, "username": username})
    data = {"username": username, "latency_ms": latency_ms,
            "rate_limit_remaining": headers.get("x-rate-limit-remaining"),
            "rate_limit_reset": headers.get("x-rate-limit-reset")}
    return Passed(f"authenticated as @{username} in {latency_ms:g} ms"
                  f" ({headers.get('x-rate-limit-remaining', '?')} calls left)", data)


def _api_message(exc: Any) -> str:
    messages = getattr(exc, "api_messages", None) or []
    # Redact before shortening: a cut-off secret no longer matches the redactor.
    return one_line("; ".join(str(m) for m in messages), 200) or one_line(str(exc).split("\n")[0])


def _failure(ctx: MonitorContext, exc: Exception, response: Any) -> CheckFailed:
    """The result for an HTTP error answer from X."""
    import tweepy

    status = getattr(response, "status_code", None)
    message = _api_message(exc)
    headers = rate_headers(getattr(response, "headers", None))
    data = {"http_status": status, "rate_limit_remaining": headers.get("x-rate-limit-remaining"),
            "rate_limit_reset": headers.get("x-rate-limit-reset")}
    body = (getattr(response, "text", "") or "")[:2000]
    if isinstance(exc, tweepy.Unauthorized):
        return CheckFailed(f"credentials rejected: 401 {message}. One 401 can be an X outage; if it"
                           " persists, regenerate the access token and secret",
                           failure_class=FailureClass.AUTH, data=data)
    if isinstance(exc, tweepy.Forbidden):
        return CheckFailed(f"permission / access level: 403 {message}", failure_class=FailureClass.PERMISSION,
                           data=data)
    if isinstance(exc, tweepy.TooManyRequests):
        reset = budget_from_headers(headers)
        when = _local(ctx, reset.reset_at if reset else None)
        if "usage-capped" in body or "UsageCapExceeded" in body:
            return CheckFailed(f"usage cap reached: 429 {message}; posting is blocked too",
                               failure_class=FailureClass.USAGE_CAP, data=data)
        return CheckWarning(f"rate limited on GET /2/users/me (429); resets at {when}",
                            failure_class=FailureClass.RATE_LIMIT, data=data)
    if status == 402:
        return CheckFailed(f"out of pay-per-use credits: 402 {message}", failure_class=FailureClass.USAGE_CAP,
                           data=data)
    if isinstance(exc, tweepy.TwitterServerError):
        return CheckFailed(f"X API server error {status}: {message}", failure_class=FailureClass.SERVER_ERROR,
                           data=data)
    return CheckFailed(f"X API answered {status}: {message}", failure_class=FailureClass.UNKNOWN, data=data)
