"""Credential plumbing for `refresh_credentials`: re-read `.env`, refresh an OAuth 2.0 token.

OAuth 2.0 refresh tokens rotate: the new one is stored in `monitor_state` (never logged, masked
everywhere by `register_secrets`) before the access token is used, and preferred over the `.env`
value for as long as `.env` still holds the token it descends from.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

from utils.config import OAUTH1_VARIABLES, load_settings, read_env_file
from utils.redact import one_line, register_secrets
from utils.state import get_state, put_state

if TYPE_CHECKING:
    from utils.config import Settings
    from utils.context import MonitorContext

CREDENTIALS = (*OAUTH1_VARIABLES, "TWITTER_BEARER_TOKEN", "TWITTER_CLIENT_ID",
               "TWITTER_CLIENT_SECRET", "TWITTER_OAUTH2_REFRESH_TOKEN")
OAUTH2_STATE_KEY = "secret:x_api:oauth2_refresh_token"


def fingerprint(*values: object) -> str:
    """A short one-way digest (to notice a change without storing the secret twice)."""
    return hashlib.sha256("\0".join(str(v) for v in values).encode()).hexdigest()[:16]


def reread(ctx: MonitorContext) -> Settings:
    """The current settings with every credential the `.env` file now sets (raises ConfigError)."""
    path = ctx.settings.env_file or Path(".env")
    in_file = read_env_file(path)
    fresh = load_settings({"ENV_FILE": str(path)})
    register_secrets(fresh.secret_values)
    overrides = {name: fresh.values[name] for name in CREDENTIALS if name in in_file}
    return ctx.settings.with_overrides(**overrides)


def oauth2_configured(settings: Settings) -> bool:
    """True when client id, client secret and a refresh token are all set."""
    return bool(settings.twitter_client_id and settings.twitter_client_secret
                and settings.twitter_oauth2_refresh_token)


def refresh_oauth2(ctx: MonitorContext, settings: Settings) -> tuple[str | None, str]:
    """POST /2/oauth2/token (refresh_token grant, HTTP Basic client auth): (access token, problem)."""
    env_token = settings.twitter_oauth2_refresh_token
    saved = get_state(ctx.engine, OAUTH2_STATE_KEY) or {}
    origin = fingerprint(env_token)
    token = saved.get("refresh_token") if saved.get("origin") == origin else None
    response = ctx.http.post(
        f"{settings.twitter_api_base_url}/2/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": token or env_token,
              "client_id": settings.twitter_client_id},
        auth=(settings.twitter_client_id, settings.twitter_client_secret))
    try:
        body = response.json()
    except ValueError:
        body = {}
    access, rotated = body.get("access_token"), body.get("refresh_token")
    if response.status_code != 200 or not access:
        why = f"{body.get('error', '')}: {body.get('error_description', '')}".strip(": ")
        return None, one_line(f"token refresh answered {response.status_code} {why}", 300)
    register_secrets([access, rotated or ""])
    if rotated:  # persist before use: the old refresh token is now spent
        put_state(ctx.engine, OAUTH2_STATE_KEY,
                  {"refresh_token": rotated, "origin": origin, "refreshed_at": ctx.now().isoformat()},
                  ctx.now())
    return access, ""
