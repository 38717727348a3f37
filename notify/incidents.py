"""Incidents: one open row per thing that failed, and the rules that decide when a person hears of it.

Keys: `check:<name>` for health checks, `failure:<class>:<target>` for what a sweep detected.
Alert after ALERT_AFTER_FAILURES consecutive failing rounds (at once for a critical pre-posting
result or a failure only a person can fix); then silence except a reminder every
ALERT_REPEAT_HOURS and an escalation to critical; one "resolved" after RESOLVE_AFTER_SUCCESSES
passes or a verified fix. More than FLAP_THRESHOLD flips in FLAP_WINDOW: flapping, alerted once,
and its all-clear reports the span up to its last failure. "Since" restarts when the cause (failure
class) changes. A post given up gets one alert saying what to change; a post that went out after
failing gets "Posted …". Several posts failing for one cause in one sweep make one message.
`unknown` results (not configured, cannot tell) neither open, alert nor resolve anything.
Everything lives in the database, so a restart neither repeats nor forgets an alert.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from autonomiq_ledger.status import ACTED_ON, status_in
from notify import messages
from notify.silence import note_held_back, quiet_reason
from recovery import playbook
from recovery.retention import FLIPS_PREFIX
from utils.db import incidents, posts
from utils.logging_setup import log_failure
from utils.redact import one_line
from utils.state import get_states, write_state

if TYPE_CHECKING:
    from notify.messages import Message
    from utils.context import MonitorContext

logger = logging.getLogger(__name__)
_RANK = {"warning": 1, "critical": 2}
# A post in one of these is waiting for its retry: its incident is neither passing nor failing.
WAITING = ACTED_ON
MOVED_BATCH = 500  # open incidents of posts that moved on, judged per sweep (the rest next sweep)
Enqueue = Callable[[Connection, "Message", datetime], int]


@dataclass(frozen=True)
class Observation:
    """One round's verdict on one key: failing or passing, and what to say about it."""

    key: str
    label: str
    failing: bool
    severity: str = "warning"                 # warning or critical (failing only)
    detail: str = ""
    failure_class: str | None = None
    urgent: bool = False                      # alert at once, skipping ALERT_AFTER_FAILURES
    human_step: str | None = None             # a routine's own advice (wins over the playbook's)
    actions: tuple[str, ...] = field(default=())
    fixed_by: str | None = None               # a verified fix: resolve at once
    held_back: tuple[str, ...] = field(default=())  # routines the circuit breaker blocked
    post: messages.PostFacts | None = None    # the ledger row, for a post's incident
    gave_up: str | None = None                # the post was given up: why (one alert, then closed)
    posted: bool = False                      # the post went out: "Posted …" resolves at once


class IncidentsUnrecorded(Exception):
    """Incidents could not be written (the monitor's database is down or its disk full).
    `urgent` holds the failing critical/urgent observations that are therefore unannounced."""

    def __init__(self, urgent: list[Observation], cause: Exception) -> None:
        super().__init__(f"{type(cause).__name__}: {cause}")
        self.urgent = urgent


class IncidentBook:
    """Feeds observations through the incident rules; alerts go to `enqueue` in the same transaction."""

    def __init__(self, ctx: MonitorContext, enqueue: Enqueue) -> None:
        self.ctx = ctx
        self.enqueue = enqueue
        self._lock = threading.Lock()
        self._muted: list[tuple[str, messages.Message]] = []

    def observe(self, observations: list[Observation]) -> int:
        """Apply every observation; returns how many messages were queued. Raises
        IncidentsUnrecorded after the others when a failing critical one could not be written."""
        queued = 0
        unrecorded: list[Observation] = []
        cause: Exception | None = None
        with self._lock:
            for group in _groups(observations):
                try:
                    queued += self._observe_group(group)
                except Exception as exc:  # one bad key must not hide the others
                    log_failure(logger, exc, "incident bookkeeping failed for %s",
                                ", ".join(obs.key for obs in group))
                    cause = exc
                    unrecorded += [obs for obs in group
                                   if obs.failing and (obs.urgent or obs.severity == "critical")]
        if unrecorded and cause is not None:
            raise IncidentsUnrecorded(unrecorded, cause)
        return queued

    def _observe_group(self, group: list[Observation]) -> int:
        """One transaction for the group; several alerts in it go out as one message."""
        now = self.ctx.now()
        held: list[messages.Message] = []
        keys = [obs.key for obs in group]
        with self.ctx.engine.begin() as conn:
            saved = get_states(conn, [FLIPS_PREFIX + key for key in keys])
            current = _open_rows(conn, keys)
            for obs in group:
                track = self._track(conn, obs, saved.get(FLIPS_PREFIX + obs.key) or {}, now)
                held += self._observe_one(conn, obs, now, track, current.get(obs.key))
            if len(held) > 1 and all(m.level in ("CRITICAL", "WARNING") for m in held):
                held = [messages.grouped(held, group[0].failure_class or "unknown")]
            for message in held:
                self.enqueue(conn, message, now)
        muted, self._muted = self._muted, []
        for key, message in muted:  # kept for the summary when the quiet time ends
            note_held_back(self.ctx, key, message, now)
        return len(held)

    def _observe_one(self, conn: Connection, obs: Observation, now: datetime, track: dict[str, Any],
                     current: dict[str, Any] | None) -> list[messages.Message]:
        flapping = track["flips"] > self.ctx.settings.flap_threshold
        if obs.failing:
            return self._failing(conn, current, obs, flapping, now, track)
        if current is not None:
            return self._passing(conn, current, obs, flapping, now, track)
        return []

    def _track(self, conn: Connection, obs: Observation, saved: dict[str, Any],
               now: datetime) -> dict[str, Any]:
        """Per key, kept in monitor_state (`saved` is what it held): state changes within
        FLAP_WINDOW (`flips`), the last failure (`last_failed`), and since when the current cause
        holds (`cause_since`)."""
        cutoff = now - self.ctx.settings.flap_window
        times = [t for t in saved.get("times", []) if datetime.fromisoformat(t) >= cutoff]
        new = dict(saved, times=times, failing=obs.failing)
        if bool(saved.get("failing")) != obs.failing:
            times.append(now.isoformat())
        if obs.failing:
            new["last_failed"] = now.isoformat()
            if saved.get("cause") != obs.failure_class or not saved.get("cause_since"):
                new.update(cause=obs.failure_class, cause_since=now.isoformat())
        if new != saved:
            write_state(conn, FLIPS_PREFIX + obs.key, new, now)
        return {**new, "flips": len(times)}

    def _failing(self, conn: Connection, row: dict[str, Any] | None, obs: Observation,
                 flapping: bool, now: datetime, track: dict[str, Any]) -> list[messages.Message]:
        # A post given up is announced once (a later sweep may still see its row).
        announced = row is not None and ": gave up" in row["actions_taken"]
        if row is None:
            row = {"key": obs.key, "status": "open", "title": obs.label, "opened_at": now,
                   "failure_count": 0, "failure_streak": 0, "flapping": False,
                   "notified_severity": None, "last_notified_at": None, "actions_taken": ""}
        row.update(severity=obs.severity, detail=one_line(obs.detail), updated_at=now,
                   failure_class=obs.failure_class, success_streak=0,
                   failure_count=row["failure_count"] + 1, failure_streak=row["failure_streak"] + 1,
                   actions_taken=_merge(row["actions_taken"], obs.actions))
        kind = ("gave_up" if not announced else None) if obs.gave_up else \
            self._alert_kind(row, obs, flapping, now)
        out: list[messages.Message] = []
        if kind:
            message = self._alert(row, obs, kind, track, now)
            reason = quiet_reason(self.ctx, obs.key, now)
            if reason:
                logger.info("%s for %s not sent: %s", kind, obs.key, reason)
                self._muted.append((obs.key, message))
            else:
                out.append(message)
                row.update(last_notified_at=now,
                           notified_severity=_worse(row["notified_severity"], obs.severity))
        row["flapping"] = row["flapping"] or flapping
        self._save(conn, row)
        return out

    def _alert(self, row: dict[str, Any], obs: Observation, kind: str, track: dict[str, Any],
               now: datetime) -> messages.Message:
        tz = self.ctx.settings.monitor_timezone
        facts = self._facts(row, obs, track)
        if kind == "gave_up":
            return messages.gave_up(facts, obs.gave_up or obs.detail,
                                    playbook.what_to_change(obs.failure_class, obs.gave_up or obs.detail),
                                    tz, now)
        return messages.alert(facts, kind, tz, now, row["notified_severity"])

    def _alert_kind(self, row: dict[str, Any], obs: Observation, flapping: bool,
                    now: datetime) -> str | None:
        settings = self.ctx.settings
        notified = row["notified_severity"]
        if flapping and (not row["flapping"] or notified is None):
            return "flapping"
        if notified is None:
            ready = row["failure_streak"] >= settings.alert_after_failures or obs.urgent
            return "alert" if ready else None
        if _RANK.get(obs.severity, 0) > _RANK.get(notified, 0) and not flapping:
            return "escalation"
        if now - row["last_notified_at"] >= timedelta(hours=settings.alert_repeat_hours):
            return "reminder"
        return None

    def _passing(self, conn: Connection, row: dict[str, Any], obs: Observation, flapping: bool,
                 now: datetime, track: dict[str, Any]) -> list[messages.Message]:
        row.update(success_streak=row["success_streak"] + 1, failure_streak=0, updated_at=now,
                   actions_taken=_merge(row["actions_taken"], obs.actions))
        settled = row["success_streak"] >= self.ctx.settings.resolve_after_successes
        if not (obs.fixed_by or obs.posted) and not (settled and not (row["flapping"] and flapping)):
            self._save(conn, row)
            return []
        row.update(status="resolved", resolved_at=now)
        out = []
        if row["notified_severity"] is not None:  # every alert gets its all-clear, even when silenced
            out.append(self._all_clear(row, obs, track, now))
            row["last_notified_at"] = now
        logger.info("incident %s resolved after %d failing round(s)", row["key"], row["failure_count"])
        self._save(conn, row)
        return out

    def _all_clear(self, row: dict[str, Any], obs: Observation, track: dict[str, Any],
                   now: datetime) -> messages.Message:
        tz = self.ctx.settings.monitor_timezone
        facts = self._facts(row, obs, track)
        if obs.posted and obs.post is not None:
            return messages.posted(facts, obs.post, now, tz)
        how = obs.fixed_by or (f"{obs.detail or 'passes again'} "
                               f"({row['success_streak']} passing round(s) in a row)")
        # A flapping incident lasted until its last failure, not until the flap window ran out.
        end = _parse(track.get("last_failed")) if row["flapping"] else None
        return messages.resolved(facts, now, how, tz, end)

    def _facts(self, row: dict[str, Any], obs: Observation,
               track: dict[str, Any] | None = None) -> messages.IncidentFacts:
        failure_class = row.get("failure_class")
        settings = self.ctx.settings
        since = _parse((track or {}).get("cause_since")) or row["opened_at"]
        return messages.IncidentFacts(
            label=row["title"], severity=row["severity"], failure_class=failure_class,
            detail=row["detail"], opened_at=row["opened_at"], since=max(row["opened_at"], since),
            failures=row["failure_count"],
            actions=row["actions_taken"],
            human_step=playbook.human_step(failure_class, row["detail"], obs.human_step),
            monitor_step=playbook.monitor_step(failure_class, settings, set(obs.held_back),
                                               _check_name(row["key"])),
            repeat_hours=settings.alert_repeat_hours, post=obs.post, key=row["key"])

    def close(self, keys: set[str]) -> int:
        """Close these open incidents without a message: their end was already announced (a post
        given up says so in its alert). Returns how many were closed."""
        if not keys:
            return 0
        now = self.ctx.now()
        with self._lock, self.ctx.engine.begin() as conn:
            return conn.execute(update(incidents)
                                .where(incidents.c.key.in_(sorted(keys)), incidents.c.status == "open")
                                .values(status="closed", resolved_at=now, updated_at=now)).rowcount

    def _save(self, conn: Connection, row: dict[str, Any]) -> None:
        values = {k: v for k, v in row.items() if k != "id"}
        if "id" in row:
            conn.execute(update(incidents).where(incidents.c.id == row["id"]).values(**values))
        else:
            conn.execute(insert(incidents).values(**values, post_id=post_id_of(row["key"])))


def post_id_of(key: str) -> int | None:
    """The ledger row of a post's incident key (`failure:<class>:post:<id>`), else None."""
    head, _, tail = key.rpartition(":post:")
    return int(tail) if head.startswith("failure:") and tail.isdigit() else None


def _check_name(key: str) -> str | None:
    return key.removeprefix("check:") if key.startswith("check:") else None


def _parse(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if value else None
    except (TypeError, ValueError):
        return None


def _groups(observations: list[Observation]) -> list[list[Observation]]:
    """Failing posts of one failure class together (their alerts become one message); every
    other observation alone."""
    groups: dict[str, list[Observation]] = {}
    for obs in observations:
        together = obs.failing and obs.post is not None
        group = f"posts:{obs.failure_class}:{bool(obs.gave_up)}" if together else f"key:{obs.key}"
        groups.setdefault(group, []).append(obs)
    return list(groups.values())


def _worse(previous: str | None, severity: str) -> str:
    if previous is None or _RANK.get(severity, 0) > _RANK.get(previous, 0):
        return severity
    return previous


def _merge(done: str, actions: tuple[str, ...]) -> str:
    """The incident's list of actions, each named once, kept short."""
    items = [item for item in done.split("; ") if item]
    items += [action for action in actions if action not in items]
    text = "; ".join(items)
    return text if len(text) <= 300 else "…" + text[-299:]


def _open_rows(conn: Connection, keys: list[str]) -> dict[str, dict[str, Any]]:
    """The newest open incident of each of `keys` (one query)."""
    found: dict[str, dict[str, Any]] = {}
    for row in conn.execute(select(incidents).where(incidents.c.key.in_(keys), incidents.c.status == "open")
                            .order_by(incidents.c.id)):
        found[row.key] = dict(row._mapping)
    return found


def open_keys_to_judge(ctx: MonitorContext, post_ids: Iterable[int],
                       moved_limit: int = MOVED_BATCH) -> dict[str, datetime | None]:
    """The open incidents a sweep judges again, each with when it last failed (None for a post's):
    every one not about a post (a handful), those of the posts in `post_ids` (the sweep's own),
    and up to `moved_limit` of posts no longer waiting for a retry (sent, given up, gone). On a
    bad day thousands of posts wait: their incidents stay in the database, where the join finds
    the few that moved on, so a sweep's work and memory do not grow with them."""
    is_open = incidents.c.status == "open"
    found: dict[str, datetime | None] = {}
    with ctx.engine.connect() as conn:
        others: list[tuple[str, datetime]] = [(row.key, row.updated_at) for row in conn.execute(
            select(incidents.c.key, incidents.c.updated_at).where(is_open, incidents.c.post_id.is_(None)))]
        saved = get_states(conn, [FLIPS_PREFIX + key for key, _ in others])
        for key, updated_at in others:
            found[key] = _parse((saved.get(FLIPS_PREFIX + key) or {}).get("last_failed")) or updated_at
        ids = sorted(set(post_ids))
        for start in range(0, len(ids), MOVED_BATCH):  # bounded IN lists (SQLite caps parameters)
            found.update(dict.fromkeys(conn.execute(select(incidents.c.key).where(
                is_open, incidents.c.post_id.in_(ids[start:start + MOVED_BATCH]))).scalars()))
        moved_on = posts.c.id.is_(None) | posts.c.status.is_(None) | ~status_in(posts.c.status, WAITING)
        found.update(dict.fromkeys(conn.execute(
            select(incidents.c.key).select_from(incidents.outerjoin(posts, posts.c.id == incidents.c.post_id))
            .where(is_open, incidents.c.post_id.is_not(None), moved_on)
            .order_by(incidents.c.post_id).limit(moved_limit)).scalars()))
    return found


def open_check_names(ctx: MonitorContext) -> list[str]:
    """The checks with an open incident, by name."""
    with ctx.engine.connect() as conn:
        keys: list[str] = list(conn.execute(select(incidents.c.key).where(
            incidents.c.status == "open", incidents.c.post_id.is_(None),
            incidents.c.key.startswith("check:", autoescape=True))).scalars())
        return sorted({key.removeprefix("check:") for key in keys})


def open_incidents(ctx: MonitorContext) -> list[dict[str, Any]]:
    """Every open incident, oldest first, in full (a bad day has thousands: the sweep reads
    `open_keys_to_judge`, `status` a page of them)."""
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(incidents).where(incidents.c.status == "open")
                            .order_by(incidents.c.opened_at))
        return [dict(row._mapping) for row in rows]
