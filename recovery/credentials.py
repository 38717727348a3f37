"""Credential plumbing for `refresh_credentials`: re-read `.env`, refresh an OAuth 2.0 token.

OAuth 2.0 refresh tokens rotate: the new one is written to a mode-600 file in DATA_DIR (never to
the database, never logged, masked everywhere by `register_secrets`) before the access token is
used, and preferred over the `.env` value for as long as `.env` still holds the token it descends
from. The database keeps only when the refresh happened.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from utils.config import OAUTH1_VARIABLES, load_settings, read_env_file
from utils.redact import one_line, register_secrets
from utils.state import put_state

if TYPE_CHECKING:
    from utils.config import Settings
    from utils.context import MonitorContext

CREDENTIALS = (*OAUTH1_VARIABLES, "TWITTER_BEARER_TOKEN", "TWITTER_CLIENT_ID",
               "TWITTER_CLIENT_SECRET", "TWITTER_OAUTH2_REFRESH_TOKEN")
OAUTH2_STATE_KEY = "x_api:oauth2_refresh"  # when, and from which .env token (a digest); no secret
ROTATED_TOKEN_FILE = "oauth2_refresh_token.json"


def fingerprint(*values: object) -> str:
    """A short one-way digest (to notice a change without storing the secret twice)."""
    return hashlib.sha256("\0".join(str(v) for v in values).encode()).hexdigest()[:16]


def reread(ctx: MonitorContext) -> Settings:
    """The current settings with every credential the `.env` file now sets (raises ConfigError)."""
    path = ctx.settings.env_file or Path(".env")
    in_file = read_env_file(path)
    fresh = load_settings({"ENV_FILE": str(path if path.is_file() else "/dev/null")})
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
    origin = fingerprint(env_token)
    token = rotated_refresh_token(settings, origin)
    response = ctx.http.post(
        f"{settings.twitter_api_base_url}/2/oauth2/token",
        data={"grant_type": "refresh_token", "refresh_token": token or env_token,
              "client_id": settings.twitter_client_id},
        auth=(settings.twitter_client_id or "", settings.twitter_client_secret or ""))
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
        _save_rotated(settings, origin, rotated)
    with contextlib.suppress(Exception):  # only a record for `status`; the token file is what counts
        put_state(ctx.engine, OAUTH2_STATE_KEY,
                  {"origin": origin, "refreshed_at": ctx.now().isoformat()}, ctx.now())
    return access, ""


def rotated_refresh_token(settings: Settings, origin: str) -> str | None:
    """The refresh token X last rotated to, if it descends from the `.env` token `origin`."""
    try:
        saved = json.loads((Path(settings.data_dir) / ROTATED_TOKEN_FILE).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(saved, dict) or saved.get("origin") != origin:
        return None
    token = saved.get("refresh_token")
    return token if isinstance(token, str) and token else None


def _save_rotated(settings: Settings, origin: str, token: str) -> None:
    """Write the token file atomically, readable by the service user only."""
    folder = Path(settings.data_dir)
    folder.mkdir(parents=True, exist_ok=True)
    partial = folder / f".{ROTATED_TOKEN_FILE}.tmp"
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump({"origin": origin, "refresh_token": token}, handle)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(partial, folder / ROTATED_TOKEN_FILE)
