"""`auth`: re-read `.env`, refresh the OAuth 2.0 token where configured, verify once with
`GET /2/users/me`; verified → retry the post, else keep it `failed` and say exactly what to do."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from autonomiq_ledger.posting import post, uses_oauth1
from recovery.base import FixOutcome, Routine, Target
from recovery.credentials import CREDENTIALS, fingerprint, oauth2_configured, refresh_oauth2, reread
from utils.config import ConfigError
from utils.redact import one_line
from utils.state import get_state, put_state

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "refresh_credentials"
REJECTED_KEY = "recovery:rejected_credentials"  # fingerprint of credentials X last refused
VERIFIED_KEY = "recovery:verified_credentials"  # fingerprint and time of the last verification
INSTRUCTIONS = (
    "In the X developer portal open the app's 'Keys and tokens', make sure its permissions are "
    "'Read and Write', regenerate the Access Token and Secret and put them in {env} as "
    "TWITTER_ACCESS_TOKEN and TWITTER_ACCESS_TOKEN_SECRET (and TWITTER_API_KEY / TWITTER_API_SECRET "
    "if you regenerated those); with OAuth 2.0, authorise again with the scopes tweet.read "
    "tweet.write users.read offline.access and set TWITTER_OAUTH2_REFRESH_TOKEN. Also check the "
    "machine's clock. The next sweep picks the new values up; no restart needed")


def plan(ctx: MonitorContext, target: Target) -> str:
    """What fix() would do."""
    return (f"re-read {ctx.settings.env_file or '.env'}, refresh the OAuth 2.0 token if configured, "
            f"verify once with GET /2/users/me, then retry {target.name}")


def _fail(ctx: MonitorContext, why: str) -> FixOutcome:
    return FixOutcome("failed", f"credentials not verified: {why}. "
                      + INSTRUCTIONS.format(env=ctx.settings.env_file or ".env"), needs_human=True)


def fix(ctx: MonitorContext, target: Target) -> FixOutcome:
    """Reload and verify the credentials once; on success retry the post."""
    try:
        settings = reread(ctx)
    except ConfigError as exc:
        return _fail(ctx, f"the .env file cannot be read ({exc})")
    current = fingerprint(*(settings.values[name] for name in CREDENTIALS))
    if (get_state(ctx.engine, REJECTED_KEY) or {}).get("fingerprint") == current:
        return FixOutcome("waiting", "X already rejected these credentials and .env has not changed; "
                                     "waiting for new ones (no API call spent)")
    verified = get_state(ctx.engine, VERIFIED_KEY) or {}
    failed_at = (target.row or {}).get("updated_at")
    if (not oauth2_configured(settings) and verified.get("fingerprint") == current and failed_at
            and failed_at <= datetime.fromisoformat(verified["at"])):
        # Verified after this row failed (another row's run this sweep): no second GET /2/users/me.
        ctx.reset_x_client(settings)
        return _retry(ctx, target, verified.get("username", "?"))
    if oauth2_configured(settings):
        access, problem = refresh_oauth2(ctx, settings)
        if access is None:
            put_state(ctx.engine, REJECTED_KEY, {"fingerprint": current}, ctx.now())
            return _fail(ctx, problem)
        settings = settings.with_overrides(twitter_bearer_token=access)
    ctx.reset_x_client(settings)
    client = ctx.x_client
    try:
        username = client.get_me(user_auth=uses_oauth1(client)).json()["data"]["username"]
    except Exception as exc:  # any answer but a user is "not verified"
        put_state(ctx.engine, REJECTED_KEY, {"fingerprint": current}, ctx.now())
        return _fail(ctx, one_line(exc, 200))
    put_state(ctx.engine, REJECTED_KEY, {}, ctx.now())
    put_state(ctx.engine, VERIFIED_KEY, {"fingerprint": current, "at": ctx.now().isoformat(),
                                         "username": username}, ctx.now())
    return _retry(ctx, target, username)


def _retry(ctx: MonitorContext, target: Target, username: str) -> FixOutcome:
    if target.post_id is None:
        return FixOutcome("fixed", f"credentials verified as @{username}")
    result = post(ctx, target.post_id, expect=target.row)
    if result.status == "posted":
        return FixOutcome("posted", f"credentials verified as @{username}; posted as tweet "
                                    f"{result.tweet_id}")
    return FixOutcome("retried", f"credentials verified as @{username}; the retry ended "
                                 f"{result.status}: {one_line(result.error or '', 200)}")


ROUTINE = Routine(NAME, fix, plan)
