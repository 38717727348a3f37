"""The one state machine of a post: `PostStatus` and the transitions allowed between them.

`transition()` in `autonomiq_ledger.posting` is the one function that changes a status, and it
refuses any move not listed in `TRANSITIONS`. `status_in()` compares statuses byte for byte on
every backend (MariaDB's default collation would read `'FAILED '` as `failed`).
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from itertools import pairwise
from typing import Any

from sqlalchemy import Connection, String, inspect, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


class PostStatus(StrEnum):
    """Where a post is; the values are what the `posts.status` column holds."""

    SCHEDULED = "scheduled"            # written by the pipeline, waiting for its time
    POSTING = "posting"                # claimed: a call to X is (or was) in flight
    POSTED = "posted"                  # on X (tweet_id, or confirmed by X's duplicate answer)
    FAILED = "failed"                  # the last attempt failed; the monitor classifies it
    RETRY_SCHEDULED = "retry_scheduled"  # to be posted again at next_attempt_at
    GAVE_UP = "gave_up"                # retrying cannot help; a human was told what to change
    SKIPPED = "skipped"                # X already has this text and no attempt of ours went out


S = PostStatus
TRANSITIONS: dict[PostStatus, frozenset[PostStatus]] = {
    S.SCHEDULED: frozenset({S.POSTING}),
    S.POSTING: frozenset({S.POSTED, S.FAILED}),
    # failed → failed: wait offline without spending an attempt; → posted: a duplicate answer
    # after an ambiguous attempt proves that attempt went out.
    S.FAILED: frozenset({S.POSTING, S.FAILED, S.RETRY_SCHEDULED, S.GAVE_UP, S.SKIPPED, S.POSTED}),
    # retry_scheduled → posted: a call still in flight when the row was released did post it.
    S.RETRY_SCHEDULED: frozenset({S.POSTING, S.POSTED}),
    S.POSTED: frozenset(),
    S.GAVE_UP: frozenset(),
    S.SKIPPED: frozenset(),
}
CLAIMABLE = (S.SCHEDULED, S.FAILED, S.RETRY_SCHEDULED)
ACTED_ON = (*CLAIMABLE, S.POSTING)  # the statuses a sweep reads rows in
TERMINAL = tuple(status for status, targets in TRANSITIONS.items() if not targets)
VALUES = tuple(status.value for status in PostStatus)


class IllegalTransition(ValueError):
    """A status change the state machine does not allow (a bug in the caller, never data)."""


def allowed(from_status: str, to_status: str) -> bool:
    """Whether the state machine allows `from_status → to_status`."""
    try:
        return PostStatus(to_status) in TRANSITIONS[PostStatus(from_status)]
    except ValueError:
        return False


def check_transition(from_statuses: Iterable[str], to_status: str) -> None:
    """Raise IllegalTransition unless every `from → to_status` is allowed."""
    refused = [str(status) for status in from_statuses if not allowed(status, to_status)]
    if refused:
        raise IllegalTransition(f"{', '.join(refused)} → {to_status} is not an allowed transition")


class exact(FunctionElement):  # noqa: N801 - reads like the SQL it stands for
    """The column compared byte for byte (MariaDB/MySQL `BINARY col`; elsewhere the column)."""

    name = "exact"
    type = String()
    inherit_cache = True


@compiles(exact)
def _exact_default(element: exact, compiler: Any, **kw: Any) -> str:
    return compiler.process(element.clauses, **kw)


@compiles(exact, "mysql")
@compiles(exact, "mariadb")
def _exact_mysql(element: exact, compiler: Any, **kw: Any) -> str:
    return f"BINARY {compiler.process(element.clauses, **kw)}"


def status_in(column: Any, statuses: Iterable[str]) -> ColumnElement[bool]:
    """`column IN statuses`, exact on every backend (the plain IN keeps the index usable)."""
    values = [str(status) for status in statuses]
    return column.in_(values) & exact(column).in_(values)


def outside_parts(column: Any) -> list[ColumnElement[bool]]:
    """The rows whose status is none of PostStatus, exactly (`queued`, `FAILED`, `'failed '`), as
    conditions that each read one range of the status index: NULL, the gaps between the known
    values (a value in a gap differs from every known one under any collation), and, where the
    collation calls `FAILED` equal to `failed` (MariaDB), the variants among the statuses a
    sweep acts on (a variant of a final status there is left alone, as the sweep leaves the row)."""
    known = sorted(VALUES)
    gaps = [column < known[0], column > known[-1],
            *((column > low) & (column < high) for low, high in pairwise(known))]
    return [column.is_(None), *gaps, column.in_(sorted(ACTED_ON)) & exact(column).not_in(VALUES)]


def odd_status_rows(conn: Connection, table: Any, limit: int) -> list[tuple[int, Any]]:
    """`(id, status)` of up to `limit` rows of `table` whose status is none of PostStatus, by id:
    one small query per part of `outside_parts`, each an index range, so the rows of a million
    `posted` are stepped over, never read. (As one OR, or ordered by id in SQL, SQLite chose to
    walk the whole table in id order: 200-400 ms a sweep at a million rows.)"""
    found: list[tuple[int, Any]] = []
    parts = outside_parts(table.c.status)
    if not _status_nullable(conn, table):
        parts = parts[1:]  # no NULL to find (and SQLite plans `IS NULL` on it as an index scan)
    for part in parts:
        query = select(table.c.id, table.c.status).where(part).limit(limit)
        found += [(row[0], row[1]) for row in conn.execute(query)]
    return sorted(found, key=lambda row: row[0])[:limit]


_NULLABLE: dict[tuple[str, str], bool] = {}


def _status_nullable(conn: Connection, table: Any) -> bool:
    """Whether the database's own `status` column admits NULL (a pipeline's table may), read once
    per database and table."""
    key = (conn.engine.url.render_as_string(hide_password=True), str(table.name))
    if key not in _NULLABLE:
        found = [column for column in inspect(conn).get_columns(table.name) if column["name"] == "status"]
        _NULLABLE[key] = bool(found[0]["nullable"]) if found else True
    return _NULLABLE[key]
