"""Small JSON values that survive restarts (the `monitor_state` table)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from .db import monitor_state  # relative: see autonomiq_ledger/_leaves.py


def get_state(engine: Engine, key: str) -> Any | None:
    """The value stored under `key`, or None; a value that is not valid JSON counts as None."""
    with engine.connect() as conn:
        return get_states(conn, [key]).get(key)


def get_states(conn: Connection, keys: list[str]) -> dict[str, Any]:
    """The values stored under `keys` (one query), on `conn`; keys without a valid JSON value
    are left out."""
    found: dict[str, Any] = {}
    if not keys:
        return found
    rows: list[tuple[str, str | None]] = [(row.key, row.value) for row in conn.execute(
        select(monitor_state.c.key, monitor_state.c.value).where(monitor_state.c.key.in_(keys)))]
    for key, raw in rows:
        try:
            value = json.loads(raw) if raw is not None else None
        except ValueError:
            continue
        if value is not None:
            found[key] = value
    return found


def put_state(engine: Engine, key: str, value: Any, now: datetime) -> None:
    """Store `value` (JSON-serialisable) under `key`, replacing what was there."""
    with engine.begin() as conn:
        write_state(conn, key, value, now)


def write_state(conn: Connection, key: str, value: Any, now: datetime) -> None:
    """`put_state` within the caller's transaction on `conn`."""
    text = json.dumps(value, sort_keys=True, default=str)
    done = conn.execute(update(monitor_state).where(monitor_state.c.key == key)
                        .values(value=text, updated_at=now)).rowcount
    if done:
        return
    try:
        with conn.begin_nested():
            conn.execute(insert(monitor_state).values(key=key, value=text, updated_at=now))
    except IntegrityError:  # another process inserted it first
        conn.execute(update(monitor_state).where(monitor_state.c.key == key)
                     .values(value=text, updated_at=now))


def prefix_range(prefix: str) -> ColumnElement[bool]:
    """`key` starts with `prefix`, as a range of the primary key (LIKE cannot use it on SQLite,
    where it ignores case, nor on PostgreSQL outside the C collation)."""
    key = monitor_state.c.key
    return (key >= prefix) & (key < prefix[:-1] + chr(ord(prefix[-1]) + 1))
