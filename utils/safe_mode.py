"""Safe mode's state: whether automatic actions are stopped, since when and why.

One record in `monitor_state`, so it survives restarts. `recovery/action_budget.py` enters safe
mode when the hour's action budget is spent; `autonomous_monitor.py resume` leaves it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from utils.state import get_state, put_state

STATE_KEY = "recovery:safe_mode"


@dataclass(frozen=True)
class SafeMode:
    """`active`: automatic fixes and post retries are stopped; `resumed_at`: when a person last
    left safe mode (actions before it no longer count against the budget)."""

    active: bool
    since: datetime | None = None
    reason: str | None = None
    resumed_at: datetime | None = None

    def to_json(self) -> dict[str, Any]:
        """The `safe_mode` object of `status --json`."""
        return {"active": self.active, "since": self.since.isoformat() if self.since else None,
                "reason": self.reason}


def load_safe_mode(engine: Engine) -> SafeMode:
    """The stored state (inactive when none was ever stored)."""
    raw = get_state(engine, STATE_KEY) or {}
    return SafeMode(bool(raw.get("active")), _when(raw.get("since")), raw.get("reason"),
                    _when(raw.get("resumed_at")))


def enter_safe_mode(engine: Engine, reason: str, now: datetime) -> SafeMode:
    """Stop automatic actions from `now` on, saying why."""
    state = SafeMode(True, now, reason, load_safe_mode(engine).resumed_at)
    _save(engine, state, now)
    return state


def leave_safe_mode(engine: Engine, now: datetime) -> SafeMode:
    """Allow automatic actions again (the budget counts afresh from `now`); returns the state left."""
    left = load_safe_mode(engine)
    _save(engine, SafeMode(False, None, None, now), now)
    return left


def _save(engine: Engine, state: SafeMode, now: datetime) -> None:
    put_state(engine, STATE_KEY, {
        "active": state.active, "reason": state.reason,
        "since": state.since.isoformat() if state.since else None,
        "resumed_at": state.resumed_at.isoformat() if state.resumed_at else None}, now)


def _when(value: Any) -> datetime | None:
    try:
        return datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        return None
