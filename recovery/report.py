"""What a sweep found and did: the data shared by recovery, incidents, `sweep --json` and status."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Source = Literal["ledger", "log", "check", "monitor"]  # monitor: about the monitor itself
# Targets of detections about the ledger or the monitor as a whole (not one post, log or check):
# every sweep looks at them, so a sweep that did not detect them again is evidence they are over.
WHOLE_SWEEP_TARGETS = ("ledger", "monitor")


@dataclass(frozen=True)
class Detection:
    """One failure found by a sweep. `target` names what failed (post id, log path, check)."""

    source: Source
    failure_class: str
    detail: str
    target: str
    post_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The `detected[]` item of `sweep --json`."""
        return {"source": self.source, "post_id": self.post_id,
                "failure_class": self.failure_class, "detail": self.detail, "target": self.target}


@dataclass(frozen=True)
class ActionRecord:
    """One recovery routine run: what, on what, why, and how it ended."""

    routine: str
    target: str
    outcome: str          # fixed, retry_scheduled, gave_up, skipped, failed, blocked, dry_run …
    detail: str
    reason: str = ""      # the failure class or check that led to it
    verified: bool | None = None  # the check re-run after the routine passed (None: not applicable)
    needs_human: bool = False     # the routine cannot fix this; the message says what to do
    duration_ms: float = 0.0      # how long the routine (and its verification) took
    post_id: int | None = None    # the ledger row it worked on, if any

    def to_json(self) -> dict[str, Any]:
        """The `actions[]` item of `sweep --json`."""
        return asdict(self)


@dataclass
class SweepReport:
    """Everything one sweep detected and every action it took."""

    detected: list[Detection] = field(default_factory=list)
    actions: list[ActionRecord] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # parts of the sweep that could not run

    @property
    def healthy(self) -> bool:
        """True when nothing was detected and every part of the sweep ran."""
        return not self.detected and not self.errors

    def summary(self) -> str:
        """One line for logs, STATUS= and heartbeats."""
        done = ", ".join(f"{a.routine}:{a.outcome}" for a in self.actions) or "no action"
        return (f"{len(self.detected)} problem(s) detected, {len(self.actions)} action(s) ({done})"
                + (f", {len(self.errors)} error(s)" if self.errors else ""))

    def to_json(self) -> dict[str, Any]:
        """The `sweep --json` contract: `{"detected": [...], "actions": [...]}` (+ errors)."""
        return {"detected": [d.to_json() for d in self.detected],
                "actions": [a.to_json() for a in self.actions], "errors": self.errors}

