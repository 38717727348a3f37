"""Timestamps as pipelines write them, read as the instants they name.

The columns mean naive UTC on every backend. SQLite has no date type, so a pipeline's own SQL
leaves there whatever it wrote: `2026-11-30 09:00:00`, `2026-11-30T09:00:00Z`, `…+02:00`, epoch
seconds (integer, real or digits). `UTCDateTime` reads all of them back as aware UTC, and
`instant()` makes a comparison in SQL compare instants, not strings (on SQLite through
`julianday`, on PostgreSQL/MariaDB the column as it is).
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Connection,
    DateTime,
    Float,
    Table,
    Text,
    TypeDecorator,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    type_coerce,
)
from sqlalchemy.dialects.sqlite import DATETIME as SQLITE_DATETIME
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

logger = logging.getLogger(__name__)

_EPOCH = re.compile(r"\s*\d+(\.\d*)?\s*")
_SPACED_ZONE = re.compile(r"\s+(Z|[+-]\d\d:?\d\d)$", re.IGNORECASE)  # SQLite reads "… 09:00 +02:00"


def parse_instant(value: object) -> datetime | None:
    """`value` (datetime, epoch seconds, ISO-8601 with `T`/space, `Z`/offset/none) as aware UTC;
    None for NULL; ValueError when it names no instant."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(value, UTC)
        if isinstance(value, str) and _EPOCH.fullmatch(value):
            return datetime.fromtimestamp(float(value), UTC)
        if isinstance(value, str):
            return parse_instant(datetime.fromisoformat(_SPACED_ZONE.sub(r"\1", value.strip())))
    except (ValueError, OverflowError, OSError) as exc:
        raise ValueError(f"not a timestamp: {value!r:.80}") from exc
    raise ValueError(f"not a timestamp: {value!r:.80}")


class _SQLiteRaw(SQLITE_DATETIME):
    """SQLite DATETIME handing back the stored value untouched (we parse it ourselves)."""

    def result_processor(self, dialect: Any, coltype: Any) -> None:
        return None


class UTCDateTime(TypeDecorator):
    """Aware UTC datetimes in, aware UTC datetimes out, naive UTC in the column."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        return dialect.type_descriptor(_SQLiteRaw() if dialect.name == "sqlite" else DateTime())

    def process_bind_param(self, value: datetime | None, dialect: object) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: object, dialect: object) -> datetime | None:
        try:
            return parse_instant(value)
        except ValueError:
            # Must not fail the whole query: the sweep finds such rows with `unreadable_instants`,
            # reports them (id, column, value) and skips them.
            logger.debug("unreadable timestamp %r read as NULL", value)
            return None


class _InstantOnly(TypeDecorator):
    """The type of an instant(): refuses a raw value, which SQLite would compare as text."""

    impl = Float
    cache_ok = True

    def process_bind_param(self, value: object, dialect: object) -> None:
        raise TypeError("compare an instant() with an instant(), not with a raw value")


class instant(FunctionElement):  # noqa: N801 - reads like the SQL function it stands for
    """`instant(column)` or `instant(aware_datetime)`: comparable as the instant it names, on any
    backend. Compare an instant() only with another instant()."""

    name = "instant"
    type = _InstantOnly()
    inherit_cache = True

    def __init__(self, what: Any) -> None:
        if isinstance(what, datetime):
            what = bindparam(None, what, type_=UTCDateTime())
        super().__init__(what)


@compiles(instant)
def _instant_default(element: instant, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(instant, "sqlite")
def _instant_sqlite(element: instant, compiler: Any, **kw: Any) -> str:
    x = compiler.process(element.clauses, **kw)
    # Epoch seconds: a number, or digits in a TEXT column (julianday would read them as days).
    return (f"(CASE WHEN typeof({x}) IN ('integer', 'real') OR ({x} <> '' AND {x} NOT GLOB "
            f"'*[^0-9. ]*') THEN julianday({x}, 'unixepoch') ELSE julianday({x}) END)")


def unreadable_instants(conn: Connection, table: Table, where: ColumnElement[bool] | None = None,
                        limit: int = 100) -> list[tuple[Any, str, object]]:
    """(id, column, stored value) of rows whose timestamp names no instant (SQLite only: the
    other backends' column types refuse such values). `where` should be selective (indexed)."""
    if conn.dialect.name != "sqlite":
        return []
    key = next(iter(table.primary_key.columns))
    columns = [c for c in table.columns if isinstance(c.type, UTCDateTime)]
    unreadable = [c.is_not(None) & instant(c).is_(None) for c in columns]
    query = select(key, *[type_coerce(c, Text) for c in columns], *unreadable).where(or_(*unreadable))
    if where is not None:
        # A hint that `where` is rare: with ANALYZE statistics SQLite would otherwise scan the table.
        query = query.where(func.likelihood(where, literal_column("0.001")))
    found: list[tuple[Any, str, object]] = []
    # Not ORDER BY id: with a LIMIT, SQLite would walk the table in id order instead of the index.
    for row in sorted(conn.execute(query.limit(limit)), key=lambda row: row[0]):
        values, flags = row[1:1 + len(columns)], row[1 + len(columns):]
        found += [(row[0], c.name, v) for c, v, bad in zip(columns, values, flags, strict=True) if bad]
    return found
