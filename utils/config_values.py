"""Parsers for settings: each takes the raw text and returns the typed value or raises ValueError.

A parser's message completes "configuration error: VARIABLE …" and never repeats the value
(settings may be secrets). Numbers are finite and bounded, durations fit a `timedelta`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from datetime import time, timedelta, tzinfo
from importlib.util import find_spec
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

TIERS = ("free", "basic", "pro", "pay_per_use")
DEFAULT_DATABASE_URL = "sqlite:///data/autonomous_monitor.db"
MAX_DURATION = timedelta(days=3650)  # far beyond any sane setting, far below timedelta's limit


def text(raw: str) -> str:
    return raw.strip()


def optional_text(raw: str) -> str | None:
    return raw.strip() or None


def number(kind: type, minimum: float | None = None, maximum: float | None = None) -> Callable:
    """A parser for an int or a finite float within [minimum, maximum]."""
    def parse(raw: str) -> Any:
        try:
            value = kind(raw.strip())
        except ValueError:  # int() also refuses more than 4300 digits with ValueError
            raise ValueError(f"is not a{'n integer' if kind is int else ' number'}") from None
        if kind is float and not math.isfinite(value):
            raise ValueError("must be a finite number")
        if minimum is not None and value < minimum:
            raise ValueError(f"must be at least {_bound(minimum)}")
        if maximum is not None and value > maximum:
            raise ValueError(f"must be at most {_bound(maximum)}")
        return value
    return parse


def _bound(limit: float) -> str:
    return str(int(limit)) if float(limit).is_integer() else str(limit)


def optional(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    return lambda raw: parse(raw) if raw.strip() else None


def boolean(raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("is not a boolean (use true or false)")


def choice(*allowed: str) -> Callable[[str], str]:
    """A parser for one of `allowed` (compared in upper case when they are upper case)."""
    def parse(raw: str) -> str:
        value = raw.strip().upper() if allowed[0].isupper() else raw.strip().lower()
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return value
    return parse


def url(raw: str, schemes: tuple[str, ...] = ("http", "https")) -> str:
    value = raw.strip()
    parts = urlsplit(value)
    if parts.scheme not in schemes or not parts.hostname:
        raise ValueError(f"is not a valid {'/'.join(schemes)} URL")
    try:
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return value.rstrip("/")


def word_list(raw: str) -> tuple[str, ...]:
    return tuple(item for item in re.split(r"[,\s]+", raw.strip()) if item)


def url_list(raw: str) -> tuple[str, ...]:
    return tuple(url(item) for item in word_list(raw))


def comma_list(raw: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in raw.split(",") if item.strip())


def paths(raw: str) -> tuple[Path, ...]:
    return tuple(Path(item) for item in comma_list(raw))


def path(raw: str) -> Path:
    return Path(raw.strip())


# (backend, driver) → the module that driver imports; what make_engine knows how to bound.
DRIVERS = {
    ("sqlite", "pysqlite"): ("sqlite3", "sqlite:///path/to/monitor.db"),
    ("postgresql", "psycopg"): ("psycopg", "postgresql+psycopg://user:password@host/db"),
    ("postgresql", "psycopg2"): ("psycopg2", "postgresql+psycopg2://user:password@host/db"),
    ("mysql", "pymysql"): ("pymysql", "mysql+pymysql://user:password@host/db"),
    ("mariadb", "pymysql"): ("pymysql", "mariadb+pymysql://user:password@host/db"),
}
_ALIASES = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql", "mariadb": "mariadb+pymysql"}


def database_url(raw: str) -> str:
    """A URL whose driver is installed and supported; `postgres://` (libpq, Heroku) → psycopg."""
    value = raw.strip()
    match = re.match(r"^([a-z][a-z0-9+]*)://", value)
    if not match:
        raise ValueError("is not a database URL (e.g. sqlite:///data/monitor.db or postgresql://…)")
    if match[1] == "postgres":  # SQLAlchemy does not know this spelling at all
        value = "postgresql+psycopg" + value[len(match[1]):]
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(value)  # SQLAlchemy's own parse; its messages echo the URL, password included
    except (ArgumentError, ValueError):
        raise ValueError("cannot be parsed as a database URL (check the port and the syntax)") from None
    # make_engine gives a bare postgresql:// psycopg and a bare mysql:// PyMySQL.
    backend, _, driver = _ALIASES.get(parsed.drivername, parsed.drivername).partition("+")
    known = DRIVERS.get((backend, driver or "pysqlite"))
    if known is None or find_spec(known[0]) is None:
        usable = "; ".join(example for module, example in DRIVERS.values() if find_spec(module))
        raise ValueError(f"uses the driver {parsed.drivername!r}, which this monitor cannot use "
                         f"(not installed or not supported); these work: {usable}")
    if backend == "sqlite" and value != DEFAULT_DATABASE_URL:
        _check_sqlite_folder(parsed.database)
    return value


def _check_sqlite_folder(database: str | None) -> None:
    """A typo in an SQLite path must not create a new, empty ledger that reports OK, and an
    in-memory database would be a different, empty one in every process (pipeline, CLI, daemon)."""
    if not database or database == ":memory:" or "mode=memory" in database:
        raise ValueError("names an in-memory SQLite database, which the pipeline and every monitor "
                         "process would each see empty: give a file, e.g. sqlite:///data/monitor.db")
    if database.startswith("file:"):
        return
    folder = Path(database).parent
    if not folder.is_dir():
        raise ValueError(f"names an SQLite file in {folder}, a folder that does not exist "
                         "(a typo? create the folder first if it is new)")


def tier(raw: str) -> str:
    return choice(*TIERS)(raw)


def clock_time(item: str) -> time:
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", item.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"has {item.strip()!r}, which is not a time of day (HH:MM, 00:00-23:59)")
    return time(int(match[1]), int(match[2]))


def times(raw: str) -> tuple[time, ...]:
    found = tuple(sorted({clock_time(item) for item in comma_list(raw)}))
    if not found:
        raise ValueError("must list at least one time of day (HH:MM)")
    return found


def timezone(raw: str) -> tzinfo:
    value = raw.strip()
    if not value:
        return system_timezone()
    try:
        return ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError("is not a known timezone (e.g. Europe/Berlin, UTC)") from None


_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(raw: str) -> float:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", raw.lower())
    seconds = float(match[1]) * _DURATION_UNITS[match[2] or "s"] if match else 0.0
    if not seconds > 0:
        raise ValueError("is not a duration (e.g. 90s, 5m, 1h)")
    return seconds  # may be inf (400 digits): compared, never passed to timedelta unbounded


def duration(minimum: timedelta, maximum: timedelta) -> Callable[[str], timedelta]:
    """A parser for a duration within [minimum, maximum]."""
    def parse(raw: str) -> timedelta:
        seconds = _seconds(raw)
        if seconds < minimum.total_seconds():
            raise ValueError(f"must be at least {_shown(minimum)}")
        if seconds > maximum.total_seconds():
            raise ValueError(f"must be at most {_shown(maximum)}")
        return timedelta(seconds=seconds)
    return parse


_ANY_DURATION = duration(timedelta(0), MAX_DURATION)


def parse_duration(raw: str) -> timedelta:
    """Parse `90s`, `5m`, `1h`, `2d` or a bare number of seconds (at most 3650 days)."""
    return _ANY_DURATION(raw)


def _shown(span: timedelta) -> str:
    seconds = int(span.total_seconds())
    for unit in ("d", "h", "m"):
        if seconds % _DURATION_UNITS[unit] == 0:
            return f"{seconds // _DURATION_UNITS[unit]}{unit}"
    return f"{seconds}s"


def scheduler_service(raw: str) -> str | None:
    value = raw.strip()
    if not value:
        return None
    # A leading '-' would reach systemctl as an option (`-H host` runs it on another machine).
    if len(value) > 256 or not re.fullmatch(r"[A-Za-z0-9:_.@\\][A-Za-z0-9:_.@\\-]*", value):
        raise ValueError("is not a systemd unit name (letters, digits and :_.@- only, "
                         "not starting with '-')")
    return value


def restart_command(raw: str) -> tuple[str, ...]:
    import shlex

    try:
        return tuple(shlex.split(raw))
    except ValueError as exc:
        raise ValueError(f"cannot be split into arguments ({exc})") from None


def maintenance(raw: str) -> tuple[tuple[time, time], ...]:
    windows = []
    for item in comma_list(raw):
        start, sep, end = item.partition("-")
        if not sep:
            raise ValueError(f"has {item!r}, which is not a window like 02:00-03:30")
        windows.append((clock_time(start), clock_time(end)))
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
