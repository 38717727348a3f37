"""Incidents: one open row per thing that failed, and the rules that decide when a person hears of it.

Keys: `check:<name>` for health checks, `failure:<class>:<target>` for what a sweep detected.
Alert after ALERT_AFTER_FAILURES consecutive failing rounds (at once for a critical pre-posting
result or a failure only a person can fix); then silence except a reminder every
ALERT_REPEAT_HOURS and an escalation to critical; one "resolved" after RESOLVE_AFTER_SUCCESSES
passes or a verified fix. More than FLAP_THRESHOLD flips in FLAP_WINDOW: flapping, alerted once.
`unknown` results (not configured, cannot tell) neither open, alert nor resolve anything.
Everything lives in the database, so a restart neither repeats nor forgets an alert.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, insert, select, update

from notify import messages
from notify.silence import quiet_reason
from utils.db import incidents
from utils.logging_setup import log_failure
from utils.redact import one_line
from utils.state import get_state, put_state

if TYPE_CHECKING:
    from notify.messages import Message
    from utils.context import MonitorContext

logger = logging.getLogger(__name__)
_RANK = {"warning": 1, "critical": 2}
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
    human_step: str | None = None
    actions: tuple[str, ...] = field(default=())
    fixed_by: str | None = None               # a verified fix: resolve at once


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

    def observe(self, observations: list[Observation]) -> int:
        """Apply every observation; returns how many messages were queued. Raises
        IncidentsUnrecorded after the others when a failing critical one could not be written."""
        queued = 0
        unrecorded: list[Observation] = []
        cause: Exception | None = None
        with self._lock:
            for obs in observations:
                try:
                    queued += self._observe_one(obs)
                except Exception as exc:  # one bad key must not hide the others
                    log_failure(logger, exc, "incident bookkeeping failed for %s", obs.key)
                    cause = exc
                    if obs.failing and (obs.urgent or obs.severity == "critical"):
                        unrecorded.append(obs)
        if unrecorded and cause is not None:
            raise IncidentsUnrecorded(unrecorded, cause)
        return queued

    def _observe_one(self, obs: Observation) -> int:
        now = self.ctx.now()
        flips = self._flips(obs.key, obs.failing, now)
        flapping = flips > self.ctx.settings.flap_threshold
        with self.ctx.engine.begin() as conn:
            row = conn.execute(select(incidents).where(incidents.c.key == obs.key,
                                                       incidents.c.status == "open")
                               .order_by(incidents.c.id.desc()).limit(1)).first()
            current = dict(row._mapping) if row is not None else None
            if obs.failing:
                return self._failing(conn, current, obs, flapping, now)
            if current is not None:
                return self._passing(conn, current, obs, flapping, now)
        return 0

    def _flips(self, key: str, failing: bool, now: datetime) -> int:
        """Record a change of state for `key`; the number of changes within FLAP_WINDOW."""
        state_key = f"incident:flips:{key}"
        saved = get_state(self.ctx.engine, state_key) or {}
        cutoff = now - self.ctx.settings.flap_window
        times = [t for t in saved.get("times", []) if datetime.fromisoformat(t) >= cutoff]
        if bool(saved.get("failing")) != failing:
            times.append(now.isoformat())
            put_state(self.ctx.engine, state_key, {"failing": failing, "times": times}, now)
        return len(times)

    def _failing(self, conn: Connection, row: dict[str, Any] | None, obs: Observation,
                 flapping: bool, now: datetime) -> int:
        if row is None:
            row = {"key": obs.key, "status": "open", "title": obs.label, "opened_at": now,
                   "failure_count": 0, "failure_streak": 0, "flapping": False,
                   "notified_severity": None, "last_notified_at": None, "actions_taken": ""}
        row.update(severity=obs.severity, detail=one_line(obs.detail), updated_at=now,
                   failure_class=obs.failure_class, success_streak=0,
                   failure_count=row["failure_count"] + 1, failure_streak=row["failure_streak"] + 1,
                   actions_taken=_merge(row["actions_taken"], obs.actions))
        kind = self._alert_kind(row, obs, flapping, now)
        queued = 0
        if kind:
            reason = quiet_reason(self.ctx, obs.key, now)
            if reason:
                logger.info("%s for %s not sent: %s", kind, obs.key, reason)
            else:
                previous = row["notified_severity"]
                queued = self.enqueue(conn, messages.alert(self._facts(row, obs), kind,
                                                           self.ctx.settings.monitor_timezone,
                                                           previous), now)
                row.update(last_notified_at=now, notified_severity=_worse(previous, obs.severity))
        row["flapping"] = row["flapping"] or flapping
        self._save(conn, row)
        return queued

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
                 now: datetime) -> int:
        row.update(success_streak=row["success_streak"] + 1, failure_streak=0, updated_at=now,
                   actions_taken=_merge(row["actions_taken"], obs.actions))
        settled = row["success_streak"] >= self.ctx.settings.resolve_after_successes
        if not obs.fixed_by and not (settled and not (row["flapping"] and flapping)):
            self._save(conn, row)
            return 0
        row.update(status="resolved", resolved_at=now)
        queued = 0
        if row["notified_severity"] is not None:  # every alert gets its all-clear, even when silenced
            how = obs.fixed_by or (f"{obs.detail or 'passes again'} "
                                   f"({row['success_streak']} passing round(s) in a row)")
            queued = self.enqueue(conn, messages.resolved(
                self._facts(row, obs), now, how, self.ctx.settings.monitor_timezone), now)
            row["last_notified_at"] = now
        logger.info("incident %s resolved after %d failing round(s)", row["key"], row["failure_count"])
        self._save(conn, row)
        return queued

    def _facts(self, row: dict[str, Any], obs: Observation) -> messages.IncidentFacts:
        human = messages.human_step(row.get("failure_class")) or obs.human_step
        return messages.IncidentFacts(
            label=row["title"], severity=row["severity"], failure_class=row.get("failure_class"),
            detail=row["detail"], opened_at=row["opened_at"], failures=row["failure_count"],
            actions=row["actions_taken"], human_step=human,
            next_check=self.ctx.now() + self.ctx.settings.sweep_interval,
            repeat_hours=self.ctx.settings.alert_repeat_hours)

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
            conn.execute(insert(incidents).values(**values))


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


def open_incidents(ctx: MonitorContext) -> list[dict[str, Any]]:
    """Every open incident, oldest first (for `status`)."""
    with ctx.engine.connect() as conn:
        rows = conn.execute(select(incidents).where(incidents.c.status == "open")
                            .order_by(incidents.c.opened_at))
        return [dict(row._mapping) for row in rows]
