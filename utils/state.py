"""Small JSON values that survive restarts (the `monitor_state` table)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from .db import monitor_state  # relative: see autonomiq_ledger/_leaves.py


def get_state(engine: Engine, key: str) -> Any | None:
    """The value stored under `key`, or None; a value that is not valid JSON counts as None."""
    with engine.connect() as conn:
        raw = conn.execute(select(monitor_state.c.value).where(monitor_state.c.key == key)).scalar()
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except ValueError:
        return None


def put_state(engine: Engine, key: str, value: Any, now: datetime) -> None:
    """Store `value` (JSON-serialisable) under `key`, replacing what was there."""
    text = json.dumps(value, sort_keys=True, default=str)
    with engine.begin() as conn:
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
