"""Quiet times: silences (`silence CHECK --for 2h`, in `monitor_state` as `silence:<name>`) and
MAINTENANCE_WINDOWS. Both suppress alerts; incidents are still recorded. What a quiet time held
back is kept (`held:<name>`) and summarised once, in one message, when it ends."""

from __future__ import annotations

from datetime import datetime, time
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from utils.db import monitor_state
from utils.state import get_state, prefix_range, put_state

if TYPE_CHECKING:
    from notify.messages import Message
    from utils.context import MonitorContext

PREFIX = "silence:"
HELD = "held:"
MAINTENANCE = "maintenance window"
HELD_MAX = 50


def names_for(key: str) -> list[str]:
    """The silence names that cover an incident key: the key itself and its check or class."""
    parts = key.split(":")
    return [key, parts[1]] if len(parts) > 1 else [key]


def set_silence(ctx: MonitorContext, name: str, until: datetime) -> None:
    """Silence `name` (a check, a failure class or an incident key) until `until`."""
    now = ctx.now()
    put_state(ctx.engine, PREFIX + name, {"until": until.isoformat(), "set_at": now.isoformat()}, now)


def clear_silence(ctx: MonitorContext, name: str) -> bool:
    """Remove a silence; True when there was one."""
    with ctx.engine.begin() as conn:
        return conn.execute(delete(monitor_state).where(monitor_state.c.key == PREFIX + name)).rowcount > 0


def active_silences(ctx: MonitorContext) -> dict[str, datetime]:
    """Every silence still in force: name → end."""
    now = ctx.now()
    with ctx.engine.connect() as conn:
        keys: list[str] = list(conn.execute(select(monitor_state.c.key)
                                            .where(prefix_range(PREFIX))).scalars())
    found = {}
    for key in keys:
        until = _until(get_state(ctx.engine, key))
        if until is not None and until > now:
            found[key[len(PREFIX):]] = until
    return found


def _until(value: object) -> datetime | None:
    try:
        return datetime.fromisoformat(value["until"])  # type: ignore[index]
    except (TypeError, KeyError, ValueError):
        return None  # a damaged row silences nothing


def in_maintenance(ctx: MonitorContext, now: datetime) -> bool:
    """True inside one of MAINTENANCE_WINDOWS (local times; a window may cross midnight)."""
    local = now.astimezone(ctx.settings.monitor_timezone).time().replace(tzinfo=None)
    return any(_inside(local, start, end) for start, end in ctx.settings.maintenance_windows)


def _inside(moment: time, start: time, end: time) -> bool:
    return start <= moment < end if start <= end else (moment >= start or moment < end)


def quiet_reason(ctx: MonitorContext, key: str, now: datetime) -> str | None:
    """Why alerts for `key` are suppressed right now, or None."""
    if in_maintenance(ctx, now):
        return "maintenance window"
    for name in names_for(key):
        until = _until(get_state(ctx.engine, PREFIX + name))
        if until is not None and until > now:
            return f"silenced until {until.isoformat(timespec='minutes')}"
    return None


def _quiet_name(ctx: MonitorContext, key: str, now: datetime) -> str | None:
    """The quiet time that covers `key` now: a silence name, MAINTENANCE, or None."""
    if in_maintenance(ctx, now):
        return MAINTENANCE
    for name in names_for(key):
        until = _until(get_state(ctx.engine, PREFIX + name))
        if until is not None and until > now:
            return name
    return None


def note_held_back(ctx: MonitorContext, key: str, message: Message, now: datetime) -> None:
    """Remember a message a quiet time suppressed, for the summary when it ends."""
    name = _quiet_name(ctx, key, now)
    if name is None:
        return
    saved: Any = get_state(ctx.engine, HELD + name) or {}
    events = list(saved.get("events", []))[-(HELD_MAX - 1):]
    local = now.astimezone(ctx.settings.monitor_timezone)
    line = f"{message.level} {message.title}"
    if not any(event.endswith(line) for event in events):  # a repeated alert is news once
        events.append(f"{local:%H:%M} {line}")
    silence: Any = get_state(ctx.engine, PREFIX + name) or {}
    started = saved.get("started") or silence.get("set_at") or now.isoformat()
    put_state(ctx.engine, HELD + name, {"started": started, "events": events}, now)


def ended_quiet_times(ctx: MonitorContext) -> list[tuple[str, datetime, list[str]]]:
    """Quiet times that held something back and are over: (name, start, events), each returned
    once (its record is removed)."""
    now = ctx.now()
    with ctx.engine.connect() as conn:
        keys: list[str] = list(conn.execute(select(monitor_state.c.key)
                                            .where(prefix_range(HELD))).scalars())
    ended = []
    for key in keys:
        name = key[len(HELD):]
        over = not in_maintenance(ctx, now) if name == MAINTENANCE else \
            (_until(get_state(ctx.engine, PREFIX + name)) or now) <= now
        if not over:
            continue
        saved: Any = get_state(ctx.engine, key) or {}
        with ctx.engine.begin() as conn:
            if conn.execute(delete(monitor_state).where(monitor_state.c.key == key)).rowcount:
                started = datetime.fromisoformat(saved.get("started", now.isoformat()))
                ended.append((name, started, list(saved.get("events", []))))
    return ended
