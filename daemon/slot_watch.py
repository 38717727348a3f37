"""What the daemon does about posting slots, minute by minute: the verdict at T-PRECHECK_LEAD,
re-checks at T-15 and T-5 while the verdict is not `go`, what happened after the slot, the
budget warning and the daily digest. Its memory (`slots:watch` in monitor_state) survives
restarts, so nothing is said twice.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from daemon.digest import build_digest
from daemon.scheduling import DailyTrigger
from daemon.slots import SLOT_MERGE, Slot, Verdict, assess
from notify import slot_messages
from notify.messages import duration
from notify.silence import active_silences
from notify.slot_messages import SlotFacts
from utils.db import posts
from utils.state import get_state, put_state

if TYPE_CHECKING:
    from checks.base import CheckResult
    from notify.messages import Message
    from utils.context import MonitorContext

logger = logging.getLogger(__name__)

STATE_KEY = "slots:watch"
RECHECKS = (timedelta(minutes=15), timedelta(minutes=5))
FRESH_ROUND = timedelta(minutes=2)   # a round this recent is reused, not repeated
FORGET_AFTER = timedelta(days=2)
DIGEST_LATE_LIMIT = timedelta(hours=2)  # a daemon started later than this skips the day's digest


class SlotWatch:
    """Runs the slot rounds and says what changed; `tick(now)` is the whole interface."""

    def __init__(self, ctx: MonitorContext, run_round: Callable[[str], Sequence[CheckResult]],
                 send: Callable[[Message], None]) -> None:
        self.ctx, self.run_round, self.send = ctx, run_round, send
        self.tz = ctx.settings.monitor_timezone
        self._lock = threading.Lock()
        self._state: dict[str, Any] | None = None

    def tick(self, now: datetime | None = None) -> str:
        """Do whatever is due at `now`; a one-line summary of what was done."""
        with self._lock:
            now = now or self.ctx.now()
            try:
                state = self._load()
                before = repr(state)
                done = self._slots(now, state) + self._outcomes(now, state)
                done += self._digest(now, state)
                state["slots"] = {k: v for k, v in state["slots"].items()
                                  if datetime.fromisoformat(k) > now - FORGET_AFTER}
                if repr(state) != before:
                    put_state(self.ctx.engine, STATE_KEY, state, now)
            except SQLAlchemyError as exc:  # the database check and its alert speak for it
                logger.warning("posting slots not judged: the database did not answer (%s)",
                               type(exc).__name__)
                return "database unreachable: slots not judged"
            return "; ".join(done) or "nothing due"

    def _load(self) -> dict[str, Any]:
        if self._state is None:
            saved = get_state(self.ctx.engine, STATE_KEY)
            self._state = saved if isinstance(saved, dict) else {}
            self._state.setdefault("slots", {})
        return self._state

    # --- before the slot ----------------------------------------------------------------------
    def _phases(self, slot: Slot) -> list[tuple[str, datetime]]:
        lead = timedelta(minutes=self.ctx.settings.precheck_lead_minutes)
        return [("pre", slot.at - lead), *((f"T-{int(r.total_seconds() // 60)}", slot.at - r)
                                           for r in RECHECKS if r < lead)]

    def _due(self, slot: Slot, now: datetime, state: dict[str, Any]) -> str | None:
        """The phase due now for this slot, if one is (the latest passed, not yet done)."""
        entry = state["slots"].get(slot.at.isoformat())
        passed = [name for name, moment in self._phases(slot) if moment <= now]
        if not passed or (entry is not None and (passed[-1] in entry["phases"]
                                                 or entry["verdict"] == Verdict.GO)):
            return None
        return passed[-1]

    def _slots(self, now: datetime, state: dict[str, Any]) -> list[str]:
        first = assess(self.ctx, now)
        due = [(slot, phase) for slot in first.slots
               if (phase := self._due(slot, now, state)) is not None]
        if not due:
            self._budget_warning(first, state)
            return []
        fresh = [r for r in self.run_round(self._trigger(due, state)) if r.checked_at > now - FRESH_ROUND]
        current = {s.at: s for s in assess(self.ctx, now, fresh).slots}
        self._budget_warning(first, state)
        return [self._judged(current.get(slot.at, slot), phase, now, state) for slot, phase in due]

    def _trigger(self, due: list[tuple[Slot, str]], state: dict[str, Any]) -> str:
        new = any(slot.at.isoformat() not in state["slots"] for slot, _phase in due)
        return "pre_posting" if new else "slot_recheck"

    def _judged(self, slot: Slot, phase: str, now: datetime, state: dict[str, Any]) -> str:
        key, verdict = slot.at.isoformat(), slot.verdict
        entry = state["slots"].get(key)
        passed = [name for name, moment in self._phases(slot) if moment <= now]
        facts = SlotFacts(slot.at, verdict.label, [(r.text, r.detail, r.doing) for r in slot.reasons],
                          slot.posts)
        if entry is None:
            state["slots"][key] = {"verdict": verdict.value, "phases": passed, "posts": slot.posts,
                                   "fixed": slot.fixed, "troubled": verdict != Verdict.GO}
            self._first_report(facts, verdict, now, state)
            return f"{slot.at:%H:%M} {verdict.value}"
        entry.update(phases=passed, posts=sorted(set(entry["posts"]) | set(slot.posts)))
        if verdict.value != entry["verdict"]:
            self.send(slot_messages.change(facts, Verdict(entry["verdict"]).label, now, self.tz))
            entry["verdict"] = verdict.value
            entry["troubled"] = True
            return f"{slot.at:%H:%M} {phase}: now {verdict.value}"
        return f"{slot.at:%H:%M} {phase}: still {verdict.value}"

    def _first_report(self, facts: SlotFacts, verdict: Verdict, now: datetime,
                      state: dict[str, Any]) -> None:
        today = now.astimezone(self.tz).date().isoformat()
        if verdict == Verdict.GO:  # the day's first GO always; later ones with REPORT_WHEN_HEALTHY
            if state.get("go_reported_on") == today and not self.ctx.settings.report_when_healthy:
                return
            state["go_reported_on"] = today
        self.send(slot_messages.verdict(facts, now, self.tz, active_silences(self.ctx)))

    def _budget_warning(self, assessment: Any, state: dict[str, Any]) -> None:
        """Warn once per budget window when the forecast says the posts will not fit."""
        forecast = assessment.forecast
        window = forecast.window
        key = window.resets_at.isoformat() if window.resets_at else window.source
        if forecast.enough is not False or state.get("budget_warned") == key:
            return
        state["budget_warned"] = key
        self.send(slot_messages.budget_warning(window.remaining or 0, forecast.posts_needed,
                                               window.resets_at, window.source, self.tz))

    # --- after the slot -----------------------------------------------------------------------
    def _outcomes(self, now: datetime, state: dict[str, Any]) -> list[str]:
        grace = timedelta(minutes=self.ctx.settings.missed_post_grace_minutes)
        done = []
        for key, entry in state["slots"].items():
            at = datetime.fromisoformat(key)
            if "outcome" in entry or now < at:
                continue
            rows = self._rows(at, entry, grace)
            settled = bool(rows) and all(row["status"] in ("posted", "gave_up") for row in rows)
            if not settled and now < at + grace:
                continue
            summary, lines, good = describe_outcome(at, rows, entry.get("fixed", False))
            entry["outcome"] = summary
            if entry.get("troubled") or not good:
                self.send(slot_messages.outcome(at, summary, lines, good, self.tz))
            done.append(f"{at:%H:%M} {summary}")
        return done

    def _rows(self, at: datetime, entry: dict[str, Any], grace: timedelta) -> list[dict[str, Any]]:
        near = posts.c.scheduled_at.between(at - SLOT_MERGE, at + grace)
        query = select(posts).where(posts.c.id.in_(entry["posts"]) | near).order_by(posts.c.id)
        with self.ctx.engine.connect() as conn:
            return [dict(row._mapping) for row in conn.execute(query)]

    # --- the digest ---------------------------------------------------------------------------
    def _digest(self, now: datetime, state: dict[str, Any]) -> list[str]:
        at_time = self.ctx.settings.digest_time
        if at_time is None:
            return []

        local_day = now.astimezone(self.tz).date()
        due = DailyTrigger(at_time, self.tz).instant(local_day)
        if not due <= now < due + DIGEST_LATE_LIMIT or state.get("digest_on") == local_day.isoformat():
            return []
        state["digest_on"] = local_day.isoformat()
        self.send(slot_messages.digest(build_digest(self.ctx, now).lines(self.tz), now, self.tz))
        return ["digest sent"]


def describe_outcome(at: datetime, rows: list[dict[str, Any]], fixed: bool
                     ) -> tuple[str, list[str], bool]:
    """(summary, lines, all well) for a slot whose time has passed."""
    if not rows:
        return ("not posted: no post in the ledger for this slot" if fixed else "no post was due",
                [], not fixed)
    lines, worst = [], "posted on time"
    for row in rows:
        if row["status"] == "posted" and row["posted_at"] is not None:
            late = row["posted_at"] - (row["scheduled_at"] or at)
            said = "posted on time" if late <= SLOT_MERGE else f"posted {duration(late)} late"
        else:
            why = row["failure_class"] or (row["last_error"] or "").split("\n")[0][:80] or "no attempt"
            said = f"not posted ({row['status']}: {why})"
        lines.append(f"post #{row['id']}: {said}")
        if said != "posted on time" and not worst.startswith("not posted"):
            worst = said
    return worst, lines, worst == "posted on time"
