"""Channel health: when each channel last worked or failed, and whether all of them are failing.

Stored in `monitor_state` under `notify:health` so `status` can show it and it survives restarts:
`{"channels": {id: {"name", "last_ok", "last_error", "error", "failing_since"}},
"all_failing_since": iso | None, "reported": bool}`.
"""

from __future__ import annotations

import logging
import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from utils.state import get_state, put_state

logger = logging.getLogger(__name__)
HEALTH_KEY = "notify:health"
ALL_FAILING_ALARM = timedelta(hours=1)


class ChannelHealth:
    """Per-channel last success / last failure, persisted; logs at ERROR once all fail for an hour."""

    def __init__(self, engine_source: Any, channel_ids: list[str]) -> None:
        self._engine_source = engine_source  # a callable: the engine is built lazily
        self._ids = channel_ids
        self._state: dict[str, Any] | None = None
        self._lock = threading.Lock()

    @property
    def _engine(self) -> Engine:
        return self._engine_source()

    def _load(self) -> dict[str, Any]:
        if self._state is None:
            saved = get_state(self._engine, HEALTH_KEY)
            saved = saved if isinstance(saved, dict) else {}
            found = saved.get("channels")
            channels: dict[str, Any] = found if isinstance(found, dict) else {}
            self._state = {"channels": {cid: channels.get(cid, {}) for cid in self._ids},
                           "all_failing_since": saved.get("all_failing_since"),
                           "reported": bool(saved.get("reported"))}
        return self._state

    def record(self, channel_id: str, name: str, error: str | None, now: datetime) -> None:
        """Note one delivery attempt's outcome and persist the new picture."""
        with self._lock:
            state = self._load()
            entry = state["channels"].setdefault(channel_id, {})
            entry["name"] = name
            if error is None:
                entry.update(last_ok=now.isoformat(), failing_since=None, error=None)
            else:
                entry.update(last_error=now.isoformat(), error=error)
                entry["failing_since"] = entry.get("failing_since") or now.isoformat()
            self._update_all_failing(state, now)
            put_state(self._engine, HEALTH_KEY, state, now)

    def _update_all_failing(self, state: dict[str, Any], now: datetime) -> None:
        since = [entry.get("failing_since") for entry in state["channels"].values()]
        if not since or not all(since):
            if state.get("reported"):
                logger.warning("notification channels: at least one works again")
            state.update(all_failing_since=None, reported=False)
            return
        state["all_failing_since"] = max(since)  # all fail since the last one started failing
        started = datetime.fromisoformat(state["all_failing_since"])
        if now - started >= ALL_FAILING_ALARM and not state.get("reported"):
            state["reported"] = True
            logger.error("every notification channel has been failing since %s: alerts are not "
                         "reaching anyone (last errors: %s)", state["all_failing_since"],
                         "; ".join(f"{cid}: {entry.get('error')}"
                                   for cid, entry in state["channels"].items()))

    def snapshot(self) -> dict[str, Any]:
        """The current picture (as stored under `notify:health`)."""
        with self._lock:
            return dict(self._load())
