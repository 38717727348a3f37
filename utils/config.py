"""Typed settings read from the environment, with a `.env` file underneath.

Every setting is declared once in `SPECS` (name, parser, default, secret?) and has one typed
field in `Settings`. A bad value raises `ConfigError` naming the variable; the command line turns
it into one line and exit 78.

To add a setting: one `Spec("MY_SETTING", parser, "default")` line in SPECS (parsers are in
`utils/config_values.py`; numbers need bounds) and one field `my_setting: <type>` in `Settings`,
in the same section, without a default (the default lives in the Spec). Then document it in
`.env.example`. tests/test_config.py checks that SPECS and the fields match, name and type.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from utils import config_values as v
from utils.config_values import TIERS, parse_duration, system_timezone

__all__ = ["EX_CONFIG", "OAUTH1_VARIABLES", "SPECS", "TIERS", "ConfigError", "Settings", "Spec",
           "load_settings", "parse_duration", "read_env_file", "system_timezone"]

EX_CONFIG = 78
NO_ENV_FILE = Path("/dev/null")  # ENV_FILE=/dev/null: no .env file, on purpose


class ConfigError(ValueError):
    """A setting has a value the monitor cannot use; `str()` is the one line to print."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"configuration error: {variable} {problem}")
        self.variable = variable
        self.problem = problem


@dataclass(frozen=True)
class Spec:
    """How one environment variable becomes one settings field."""

    env: str
    parse: Callable[[str], Any]
    default: str
    secret: bool = False


DEFAULT_CONNECTIVITY_URLS = "https://www.google.com,https://1.1.1.1,https://www.cloudflare.com"
DEFAULT_CLEANUP = "{LOG_DIR}/*.log.[0-9]*,/tmp/autonomiq-pipeline/*"
DAY_S, WEEK_S = 86400, 7 * 86400
_SECOND, _DAY, _WEEK = timedelta(seconds=1), timedelta(days=1), timedelta(days=7)

SPECS: tuple[Spec, ...] = (
    # X API credentials (OAuth 1.0a user context posts; bearer is optional)
    Spec("TWITTER_API_KEY", v.optional_text, "", secret=True),
    Spec("TWITTER_API_SECRET", v.optional_text, "", secret=True),
    Spec("TWITTER_ACCESS_TOKEN", v.optional_text, "", secret=True),
    Spec("TWITTER_ACCESS_TOKEN_SECRET", v.optional_text, "", secret=True),
    Spec("TWITTER_BEARER_TOKEN", v.optional_text, "", secret=True),
    Spec("TWITTER_CLIENT_ID", v.optional_text, ""),
    Spec("TWITTER_CLIENT_SECRET", v.optional_text, "", secret=True),
    Spec("TWITTER_OAUTH2_REFRESH_TOKEN", v.optional_text, "", secret=True),
    Spec("TWITTER_API_BASE_URL", v.url, "https://api.twitter.com"),
    Spec("TWITTER_API_TIER", v.tier, "free"),
    Spec("TWITTER_API_RESERVE_CALLS", v.number(int, 0, 100_000), "3"),
    # storage and logs
    Spec("DATABASE_URL", v.database_url, v.DEFAULT_DATABASE_URL, secret=True),
    Spec("DATA_DIR", v.path, "data"),
    Spec("LOG_DIR", v.path, "logs"),
    Spec("LOG_LEVEL", v.choice("DEBUG", "INFO", "WARNING", "ERROR"), "INFO"),
    # health checks
    Spec("CHECK_TIMEOUT_SECONDS", v.number(float, 0.1, 600), "10"),
    Spec("CONNECTIVITY_URLS", v.url_list, DEFAULT_CONNECTIVITY_URLS),
    Spec("DISK_PATHS", v.paths, "/,{DATA_DIR},{LOG_DIR}"),
    Spec("DISK_WARN_FREE_PERCENT", v.number(float, 0, 100), "15"),
    Spec("DISK_CRIT_FREE_PERCENT", v.number(float, 0, 100), "5"),
    Spec("SCHEDULER_SERVICE", v.scheduler_service, ""),
    Spec("SCHEDULER_HEARTBEAT_FILE", v.optional(v.path), ""),
    Spec("SCHEDULER_HEARTBEAT_MAX_AGE_SECONDS", v.number(float, 1, WEEK_S), "900"),
    # recovery
    Spec("DRY_RUN", v.boolean, "false"),
    Spec("MAX_POST_ATTEMPTS", v.number(int, 1, 100), "5"),
    Spec("BACKOFF_BASE_SECONDS", v.number(float, 1, DAY_S), "60"),
    Spec("BACKOFF_MAX_SECONDS", v.number(float, 1, WEEK_S), "3600"),
    Spec("CIRCUIT_BREAKER_MAX_RUNS", v.number(int, 1, 1000), "3"),
    Spec("CIRCUIT_BREAKER_WINDOW", v.duration(_SECOND, _WEEK), "1h"),
    Spec("ACTION_BUDGET_PER_HOUR", v.number(int, 1, 10_000), "10"),
    Spec("CLEANUP_PATHS", v.comma_list, DEFAULT_CLEANUP),
    Spec("CLEANUP_MIN_AGE_HOURS", v.number(float, 0, 24 * 365), "24"),
    Spec("SCHEDULER_RESTART_COMMAND", v.restart_command, ""),
    Spec("MISSED_POST_GRACE_MINUTES", v.number(float, 0, 24 * 60), "15"),
    Spec("PIPELINE_LOG_FILES", v.paths, ""),
    Spec("RETENTION_DAYS", v.number(int, 1, 3650), "30"),
    # daemon
    Spec("POSTING_TIMES", v.times, "09:00,15:00"),
    Spec("PRECHECK_LEAD_MINUTES", v.number(int, 0, 24 * 60 - 1), "60"),
    Spec("DIGEST_TIME", v.optional(v.clock_time), "21:00"),
    Spec("MONITOR_TIMEZONE", v.timezone, ""),
    Spec("SWEEP_INTERVAL", v.duration(_SECOND, _DAY), "30m"),
    Spec("JOB_TIMEOUT_SECONDS", v.number(float, 1, DAY_S), "300"),
    Spec("HEARTBEAT_URL", v.optional(v.url), "", secret=True),
    Spec("MONITOR_HTTP_PORT", v.optional(v.number(int, 1, 65535)), ""),
    Spec("MONITOR_HTTP_HOST", v.text, "127.0.0.1"),
    # notifications and incidents
    Spec("NOTIFY_URLS", v.word_list, "", secret=True),
    Spec("ALERT_AFTER_FAILURES", v.number(int, 1, 1000), "2"),
    Spec("RESOLVE_AFTER_SUCCESSES", v.number(int, 1, 1000), "2"),
    Spec("ALERT_REPEAT_HOURS", v.number(float, 0.01, 24 * 30), "6"),
    Spec("FLAP_THRESHOLD", v.number(int, 2, 1000), "4"),
    Spec("FLAP_WINDOW", v.duration(_SECOND, _WEEK), "2h"),
    Spec("MAINTENANCE_WINDOWS", v.maintenance, ""),
    Spec("REPORT_WHEN_HEALTHY", v.boolean, "false"),
    Spec("NOTIFY_RETRY_MAX_SECONDS", v.number(float, 1, DAY_S), "60"),
    Spec("MONITOR_NAME", v.optional_text, ""),  # empty: the host name (notify/messages.py)
)


@dataclass(frozen=True, repr=False)
class Settings:
    """All settings, typed: one field per Spec, named as its variable in lower case."""

    # X API credentials
    twitter_api_key: str | None
    twitter_api_secret: str | None
    twitter_access_token: str | None
    twitter_access_token_secret: str | None
    twitter_bearer_token: str | None
    twitter_client_id: str | None
    twitter_client_secret: str | None
    twitter_oauth2_refresh_token: str | None
    twitter_api_base_url: str
    twitter_api_tier: str
    twitter_api_reserve_calls: int
    # storage and logs
    database_url: str
    data_dir: Path
    log_dir: Path
    log_level: str
    # health checks
    check_timeout_seconds: float
    connectivity_urls: tuple[str, ...]
    disk_paths: tuple[Path, ...]
    disk_warn_free_percent: float
    disk_crit_free_percent: float
    scheduler_service: str | None
    scheduler_heartbeat_file: Path | None
    scheduler_heartbeat_max_age_seconds: float
    # recovery
    dry_run: bool
    max_post_attempts: int
    backoff_base_seconds: float
    backoff_max_seconds: float
    circuit_breaker_max_runs: int
    circuit_breaker_window: timedelta
    action_budget_per_hour: int
    cleanup_paths: tuple[str, ...]
    cleanup_min_age_hours: float
    scheduler_restart_command: tuple[str, ...]
    missed_post_grace_minutes: float
    pipeline_log_files: tuple[Path, ...]
    retention_days: int
    # daemon
    posting_times: tuple[time, ...]
    precheck_lead_minutes: int
    digest_time: time | None  # empty: no daily digest
    monitor_timezone: tzinfo
    sweep_interval: timedelta
    job_timeout_seconds: float
    heartbeat_url: str | None
    monitor_http_port: int | None
    monitor_http_host: str
    # notifications and incidents
    notify_urls: tuple[str, ...]
    alert_after_failures: int
    resolve_after_successes: int
    alert_repeat_hours: float
    flap_threshold: int
    flap_window: timedelta
    maintenance_windows: tuple[tuple[time, time], ...]
    report_when_healthy: bool
    notify_retry_max_seconds: float
    monitor_name: str | None
    # where they came from (not settings themselves)
    env_file: Path | None = None
    secret_values: tuple[str, ...] = field(default=(), repr=False)
    env_warnings: tuple[str, ...] = ()  # lines of the `.env` file that were ignored

    @classmethod
    def from_values(cls, values: Mapping[str, Any], **origin: Any) -> Settings:
        """Settings from {VARIABLE: typed value} for every Spec (plus env_file, secret_values…)."""
        return cls(**{spec.env.lower(): values[spec.env] for spec in SPECS}, **origin)

    @property
    def values(self) -> dict[str, Any]:
        """{VARIABLE: typed value} for every setting."""
        return {spec.env: getattr(self, spec.env.lower()) for spec in SPECS}

    def __repr__(self) -> str:
        return f"Settings(env_file={self.env_file})"

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with some typed values replaced (tests and the credential refresher use it)."""
        return dataclasses.replace(self, **{key.lower(): value for key, value in overrides.items()})

    def has_oauth1_credentials(self) -> bool:
        """True when all four OAuth 1.0a user-context values are set."""
        return all(getattr(self, name.lower()) for name in OAUTH1_VARIABLES)

    def public_view(self) -> dict[str, str]:
        """Every setting as printable text, with secrets shown only as set/unset."""
        shown = {}
        for spec in SPECS:
            value = getattr(self, spec.env.lower())
            if spec.env == "DATABASE_URL":
                shown[spec.env] = _without_password(value)
            elif spec.secret:
                shown[spec.env] = "<set>" if value else "<unset>"
            else:
                shown[spec.env] = _printable(value)
        return shown


OAUTH1_VARIABLES = (
    "TWITTER_API_KEY", "TWITTER_API_SECRET", "TWITTER_ACCESS_TOKEN", "TWITTER_ACCESS_TOKEN_SECRET",
)


def _printable(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(_printable(item) for item in value)
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if value is None:
        return ""
    return str(value)


def _without_password(url: str) -> str:
    """A database URL as it may be shown: its password, if any, masked."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def read_env_file(path: Path) -> dict[str, str]:
    """The variables a `.env` file sets; lines python-dotenv cannot parse are skipped, not fatal."""
    from utils.env_file import read_env

    return read_env(path, ()).values


def _env_file_values(env_file: Path, environ: Mapping[str, str]) -> tuple[dict[str, str], str | None]:
    """The `.env` values and the one-line report of ignored lines; raises when a setting is lost."""
    from utils.env_file import read_env, summary

    parsed = read_env(env_file, {spec.env for spec in SPECS})
    lost = [why for name, why in parsed.lost if name not in environ]  # the environment wins anyway
    if lost:
        more = f" (and {len(lost) - 1} more)" if len(lost) > 1 else ""
        raise ConfigError("ENV_FILE", f"{env_file} {lost[0]}{more}: fix that line")
    return parsed.values, summary(env_file, parsed.ignored)


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Read every setting (environment first, then the `.env` file, then defaults) or raise."""
    environ = dict(os.environ if environ is None else environ)
    env_file = _env_file_path(environ.get("ENV_FILE"))
    from_file, ignored = _env_file_values(env_file, environ)
    merged = {**from_file, **environ}
    values: dict[str, Any] = {}
    for spec in SPECS:
        raw = merged.get(spec.env)
        raw = spec.default if raw is None else raw
        raw = raw.replace("{DATA_DIR}", str(values.get("DATA_DIR", "data")))
        raw = raw.replace("{LOG_DIR}", str(values.get("LOG_DIR", "logs")))
        try:
            values[spec.env] = spec.parse(raw)
        except (ValueError, ArithmeticError) as exc:  # parsers' messages never repeat the value
            raise ConfigError(spec.env, str(exc)) from None
    _cross_check(values)
    secrets = tuple(_secret_fragments(values))
    # env_file is kept even when missing: fixes say where to put it
    return Settings.from_values(values, env_file=env_file, secret_values=secrets,
                                env_warnings=(ignored,) if ignored else ())


def _env_file_path(named: str | None) -> Path:
    """ENV_FILE, which must be a readable file when set, else `.env` (which may be missing)."""
    if not named:
        return Path(".env")
    path = Path(named)
    if path == NO_ENV_FILE:
        return path
    if not path.exists():
        raise ConfigError("ENV_FILE", f"names {path}, which does not exist "
                          "(unset ENV_FILE to use ./.env, or ENV_FILE=/dev/null for none)")
    if not path.is_file():
        raise ConfigError("ENV_FILE", f"names {path}, which is not a file")
    if not os.access(path, os.R_OK):
        raise ConfigError("ENV_FILE", f"names {path}, which this user cannot read (check its owner)")
    return path


def _cross_check(values: dict[str, Any]) -> None:
    if values["DISK_CRIT_FREE_PERCENT"] > values["DISK_WARN_FREE_PERCENT"]:
        raise ConfigError("DISK_CRIT_FREE_PERCENT", "must not be above DISK_WARN_FREE_PERCENT")
    if values["BACKOFF_BASE_SECONDS"] > values["BACKOFF_MAX_SECONDS"]:
        raise ConfigError("BACKOFF_BASE_SECONDS", "must not be above BACKOFF_MAX_SECONDS")
    for pattern in values["CLEANUP_PATHS"]:
        if ".." in Path(pattern).parts:
            raise ConfigError("CLEANUP_PATHS", f"pattern {pattern!r} must not contain '..'")
        if re.search(r"[*?\[]", Path(pattern).parts[0] if Path(pattern).parts else "*"):
            raise ConfigError("CLEANUP_PATHS", f"pattern {pattern!r} must start with a folder, "
                              "e.g. /var/log/pipeline/*.log.1")


def _secret_fragments(values: dict[str, Any]) -> list[str]:
    """Every secret value, plus the secret parts of URLs (passwords, tokens in paths)."""
    fragments: list[str] = []
    for spec in SPECS:
        value = values[spec.env]
        if not spec.secret or not value:
            continue
        for item in value if isinstance(value, tuple) else (value,):
            if spec.env == "DATABASE_URL":
                fragments.append(urlsplit(item).password or "")
            else:
                fragments.extend(_url_secrets(item) if "://" in item else [item])
    return [fragment for fragment in fragments if len(fragment) >= 4]


_SECRET_QUERY_NAME = re.compile(r"token|key|secret|pass|auth|sig|code|webhook", re.I)


def _url_secrets(url: str) -> list[str]:
    parts = urlsplit(url)
    found = [parts.password or ""]
    if parts.username and len(parts.username) >= 16:  # a token in the user part; not a plain login
        found.append(parts.username)
    found += [segment for segment in parts.path.split("/") if len(segment) >= 8]  # webhook tokens
    # Query values only under names that say secret: `to=`, `from=`, `mode=` are not.
    found += [value for name, value in parse_qsl(parts.query)
              if _SECRET_QUERY_NAME.search(name) and len(value) >= 4]
    if "@" not in parts.netloc and parts.scheme not in ("http", "https", "json", "xml", "form"):
        found.append(parts.netloc)  # e.g. tgram://BOTTOKEN/CHAT keeps the token in the host part
    return [item for item in found if item]
