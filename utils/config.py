"""Typed settings read from the environment, with a `.env` file underneath.

Every setting is declared once in `SPECS` (name, parser, default, secret?). A bad value raises
`ConfigError` naming the variable; the command line turns it into one line and exit 78.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import time, timedelta, tzinfo
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

EX_CONFIG = 78
TIERS = ("free", "basic", "pro", "pay_per_use")


class ConfigError(ValueError):
    """A setting has a value the monitor cannot use; `str()` is the one line to print."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"configuration error: {variable} {problem}")
        self.variable = variable
        self.problem = problem


# --- parsers: each takes the raw string and returns the typed value or raises ValueError ----

def _text(raw: str) -> str:
    return raw.strip()


def _optional_text(raw: str) -> str | None:
    return raw.strip() or None


def _number(kind: type, minimum: float | None = None, maximum: float | None = None) -> Callable:
    def parse(raw: str) -> Any:
        try:
            value = kind(raw.strip())
        except ValueError:
            raise ValueError(f"is not a{'n integer' if kind is int else ' number'}") from None
        if minimum is not None and value < minimum:
            raise ValueError(f"must be at least {minimum}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be at most {maximum}")
        return value
    return parse


def _optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda raw: parse(raw) if raw.strip() else None


def _bool(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("is not a boolean (use true or false)")


def _url(raw: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    value = raw.strip()
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"is not a valid {'/'.join(schemes)} URL")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return value.rstrip("/")


def _list(raw: str) -> tuple[str, ...]:
    return tuple(item for item in re.split(r"[,\s]+", raw.strip()) if item)


def _url_list(raw: str) -> tuple[str, ...]:
    return tuple(_url(item) for item in _list(raw))


def _comma_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def _paths(raw: str) -> tuple[Path, ...]:
    return tuple(Path(item) for item in _comma_list(raw))


def _database_url(raw: str) -> str:
    value = raw.strip()
    if not re.match(r"^[a-z][a-z0-9+]*://", value):
        raise ValueError("is not a database URL (e.g. sqlite:///data/monitor.db or postgresql://…)")
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        make_url(value)  # SQLAlchemy's own parse; its messages echo the URL, password included
    except (ArgumentError, ValueError):
        raise ValueError("cannot be parsed as a database URL (check the port and the syntax)") from None
    return value


def _tier(raw: str) -> str:
    value = raw.strip().lower()
    if value not in TIERS:
        raise ValueError(f"must be one of {', '.join(TIERS)}")
    return value


def _clock_time(item: str) -> time:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", item.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"has {item.strip()!r}, which is not a time of day (HH:MM, 00:00-23:59)")
    return time(int(match[1]), int(match[2]))


def _times(raw: str) -> tuple[time, ...]:
    times = tuple(sorted({_clock_time(item) for item in _comma_list(raw)}))
    if not times:
        raise ValueError("must list at least one time of day (HH:MM)")
    return times


def _timezone(raw: str) -> tzinfo:
    value = raw.strip()
    if not value:
        return system_timezone()
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("is not a known timezone (e.g. Europe/Berlin, UTC)") from None


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(raw: str) -> timedelta:
    """Parse `90s`, `5m`, `1h`, `2d` or a bare number of seconds into a timedelta."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", raw.lower())
    if not match or float(match[1]) <= 0:
        raise ValueError("is not a duration (e.g. 90s, 5m, 1h)")
    return timedelta(seconds=float(match[1]) * _DURATION_UNITS[match[2] or "s"])


def _scheduler_service(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    # A leading '-' would reach systemctl as an option (`-H host` runs it on another machine).
    if len(value) > 256 or not re.fullmatch(r"[A-Za-z0-9:_.@\\][A-Za-z0-9:_.@\\-]*", value):
        raise ValueError("is not a systemd unit name (letters, digits and :_.@- only, "
                         "not starting with '-')")
    return value


def _restart_command(raw: str) -> tuple[str, ...]:
    import shlex

    try:
        return tuple(shlex.split(raw))
    except ValueError as exc:
        raise ValueError(f"cannot be split into arguments ({exc})") from None


def _maintenance(raw: str) -> tuple[tuple[time, time], ...]:
    windows = []
    for item in _comma_list(raw):
        start, sep, end = item.partition("-")
        if not sep:
            raise ValueError(f"has {item!r}, which is not a window like 02:00-03:30")
        windows.append((_clock_time(start), _clock_time(end)))
    return tuple(windows)


def system_timezone() -> tzinfo:
    """The machine's local zone: TZ, then /etc/timezone, then /etc/localtime, else UTC."""
    for name in (os.environ.get("TZ", "").lstrip(":"), _read_etc_timezone()):
        if name:
            try:
                return ZoneInfo(name)
            except (ZoneInfoNotFoundError, ValueError):
                pass
    try:
        link = os.readlink("/etc/localtime")
        return ZoneInfo(link.split("zoneinfo/", 1)[1])
    except (OSError, IndexError, ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _read_etc_timezone() -> str:
    try:
        return Path("/etc/timezone").read_text().strip()
    except OSError:
        return ""


@dataclass(frozen=True)
class Spec:
    """How one environment variable becomes one settings field."""

    env: str
    parse: Callable[[str], Any]
    default: str
    secret: bool = False


DEFAULT_CONNECTIVITY_URLS = "https://www.google.com,https://1.1.1.1,https://www.cloudflare.com"
DEFAULT_CLEANUP = "{LOG_DIR}/*.log.[0-9]*,/tmp/autonomiq-pipeline/*"

SPECS: tuple[Spec, ...] = (
    # X API credentials (OAuth 1.0a user context posts; bearer is optional)
    Spec("TWITTER_API_KEY", _optional_text, "", secret=True),
    Spec("TWITTER_API_SECRET", _optional_text, "", secret=True),
    Spec("TWITTER_ACCESS_TOKEN", _optional_text, "", secret=True),
    Spec("TWITTER_ACCESS_TOKEN_SECRET", _optional_text, "", secret=True),
    Spec("TWITTER_BEARER_TOKEN", _optional_text, "", secret=True),
    Spec("TWITTER_CLIENT_ID", _optional_text, ""),
    Spec("TWITTER_CLIENT_SECRET", _optional_text, "", secret=True),
    Spec("TWITTER_OAUTH2_REFRESH_TOKEN", _optional_text, "", secret=True),
    Spec("TWITTER_API_BASE_URL", _url, "https://api.twitter.com"),
    Spec("TWITTER_API_TIER", _tier, "free"),
    Spec("TWITTER_API_RESERVE_CALLS", _number(int, 0), "3"),
    # storage and logs
    Spec("DATABASE_URL", _database_url, "sqlite:///data/autonomous_monitor.db", secret=True),
    Spec("DATA_DIR", Path, "data"),
    Spec("LOG_DIR", Path, "logs"),
    Spec("LOG_LEVEL", lambda raw: _choice(raw.upper(), ("DEBUG", "INFO", "WARNING", "ERROR")), "INFO"),
    # health checks
    Spec("CHECK_TIMEOUT_SECONDS", _number(float, 0.1, 600), "10"),
    Spec("CONNECTIVITY_URLS", _url_list, DEFAULT_CONNECTIVITY_URLS),
    Spec("DISK_PATHS", _paths, "/,{DATA_DIR},{LOG_DIR}"),
    Spec("DISK_WARN_FREE_PERCENT", _number(float, 0, 100), "15"),
    Spec("DISK_CRIT_FREE_PERCENT", _number(float, 0, 100), "5"),
    Spec("SCHEDULER_SERVICE", _scheduler_service, ""),
    Spec("SCHEDULER_HEARTBEAT_FILE", _optional(Path), ""),
    Spec("SCHEDULER_HEARTBEAT_MAX_AGE_SECONDS", _number(float, 1), "900"),
    # recovery
    Spec("DRY_RUN", _bool, "false"),
    Spec("MAX_POST_ATTEMPTS", _number(int, 1, 100), "5"),
    Spec("BACKOFF_BASE_SECONDS", _number(float, 1), "60"),
    Spec("BACKOFF_MAX_SECONDS", _number(float, 1), "3600"),
    Spec("CIRCUIT_BREAKER_MAX_RUNS", _number(int, 1), "3"),
    Spec("CIRCUIT_BREAKER_WINDOW", parse_duration, "1h"),
    Spec("CLEANUP_PATHS", _comma_list, DEFAULT_CLEANUP),
    Spec("CLEANUP_MIN_AGE_HOURS", _number(float, 0), "24"),
    Spec("SCHEDULER_RESTART_COMMAND", _restart_command, ""),
    Spec("MISSED_POST_GRACE_MINUTES", _number(float, 0), "15"),
    Spec("PIPELINE_LOG_FILES", _paths, ""),
    # daemon
    Spec("POSTING_TIMES", _times, "09:00,15:00"),
    Spec("PRECHECK_LEAD_MINUTES", _number(int, 0, 24 * 60 - 1), "60"),
    Spec("MONITOR_TIMEZONE", _timezone, ""),
    Spec("SWEEP_INTERVAL", parse_duration, "30m"),
    Spec("JOB_TIMEOUT_SECONDS", _number(float, 1), "300"),
    Spec("HEARTBEAT_URL", _optional(_url), "", secret=True),
    Spec("MONITOR_HTTP_PORT", _optional(_number(int, 1, 65535)), ""),
    Spec("MONITOR_HTTP_HOST", _text, "127.0.0.1"),
    # notifications and incidents
    Spec("NOTIFY_URLS", _list, "", secret=True),
    Spec("ALERT_AFTER_FAILURES", _number(int, 1), "2"),
    Spec("RESOLVE_AFTER_SUCCESSES", _number(int, 1), "2"),
    Spec("ALERT_REPEAT_HOURS", _number(float, 0.01), "6"),
    Spec("FLAP_THRESHOLD", _number(int, 2), "4"),
    Spec("FLAP_WINDOW", parse_duration, "2h"),
    Spec("MAINTENANCE_WINDOWS", _maintenance, ""),
    Spec("REPORT_WHEN_HEALTHY", _bool, "false"),
    Spec("NOTIFY_RETRY_MAX_SECONDS", _number(float, 1), "60"),
)


def _choice(value: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"must be one of {', '.join(allowed)}")
    return value


@dataclass(frozen=True)
class Settings:
    """All settings, typed. Field names are the environment names in lower case."""

    values: Mapping[str, Any]
    env_file: Path | None = None
    secret_values: tuple[str, ...] = field(default=(), repr=False)
    env_warnings: tuple[str, ...] = ()  # lines of the `.env` file that were ignored

    def __getattr__(self, name: str) -> Any:
        try:
            return self.values[name.upper()]
        except KeyError:
            raise AttributeError(name) from None

    def __repr__(self) -> str:
        return f"Settings(env_file={self.env_file})"

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with some typed values replaced (tests and the credential refresher use it)."""
        values = dict(self.values)
        values.update({key.upper(): value for key, value in overrides.items()})
        return Settings(values, self.env_file, self.secret_values, self.env_warnings)

    def has_oauth1_credentials(self) -> bool:
        """True when all four OAuth 1.0a user-context values are set."""
        return all(self.values[name] for name in OAUTH1_VARIABLES)

    def public_view(self) -> dict[str, str]:
        """Every setting as printable text, with secrets shown only as set/unset."""
        shown = {}
        for spec in SPECS:
            value = self.values[spec.env]
            if spec.secret and spec.env != "DATABASE_URL":
                shown[spec.env] = "<set>" if value else "<unset>"
            elif spec.env == "DATABASE_URL":
                shown[spec.env] = _without_password(value)
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
    env_file = Path(environ.get("ENV_FILE") or ".env")
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
        except ValueError as exc:
            raise ConfigError(spec.env, str(exc)) from None
    _cross_check(values)
    secrets = tuple(_secret_fragments(values))
    # env_file is kept even when missing: fixes say where to put it
    return Settings(values, env_file, secrets, (ignored,) if ignored else ())


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
