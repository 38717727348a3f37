"""A go / degraded / no-go verdict for each posting slot of the next 24 hours.

A slot is a `POSTING_TIMES` occurrence (in MONITOR_TIMEZONE) or a `scheduled` ledger row's time;
rows within SLOT_MERGE of a slot belong to it. The verdict comes from the latest check results, the
open post incidents and the budget forecast: plain functions over those and a `now`.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select

from checks.history import latest_results
from daemon import budget_forecast as budget
from daemon.scheduling import DailyTrigger
from notify.slot_messages import reason_text
from recovery.classify import classify
from recovery.playbook import play
from utils.db import incidents, posts
from utils.redact import one_line
from utils.timestamps import instant

if TYPE_CHECKING:
    from checks.base import CheckResult
    from utils.config import Settings
    from utils.context import MonitorContext

HORIZON = timedelta(hours=24)
SLOT_MERGE = timedelta(minutes=5)


class Verdict(enum.StrEnum):
    """Will the slot's post go out? Ordered from best to worst."""

    GO = "go"
    DEGRADED = "degraded"
    NO_GO = "no_go"

    @property
    def rank(self) -> int:
        return list(Verdict).index(self)

    @property
    def label(self) -> str:
        return {"go": "GO", "degraded": "DEGRADED", "no_go": "NO-GO"}[self.value]


@dataclass(frozen=True)
class Reason:
    """One thing wrong for a slot: a short name, the evidence, what the monitor does about it."""

    verdict: Verdict
    text: str
    detail: str = ""
    doing: str = ""

    def to_text(self) -> str:
        """The reason as one line, its detail shortened (see `reason_text`)."""
        return reason_text(self.text, one_line(self.detail, 140))


@dataclass
class Slot:
    """One posting slot and its verdict."""

    at: datetime
    posts: list[int] = field(default_factory=list)
    fixed: bool = False  # a POSTING_TIMES slot (expects one post even with no ledger row)
    reasons: list[Reason] = field(default_factory=list)

    @property
    def verdict(self) -> Verdict:
        return max((r.verdict for r in self.reasons), key=lambda v: v.rank, default=Verdict.GO)

    @property
    def expected_posts(self) -> int:
        return max(len(self.posts), 1 if self.fixed else 0)

    def to_json(self) -> dict[str, Any]:
        """The `status --json` `slots` contract."""
        return {"at": self.at.isoformat(), "verdict": self.verdict.value,
                "reasons": [r.to_text() for r in self.reasons], "posts": list(self.posts)}


# (check, failure class or None) → (verdict when critical, short reason). Warnings are degraded.
CHECK_RULES: dict[tuple[str, str | None], tuple[Verdict, str]] = {
    ("twitter_api", "auth"): (Verdict.NO_GO, "X API credentials rejected"),
    ("twitter_api", "permission"): (Verdict.NO_GO, "X app not allowed to post"),
    ("twitter_api", "usage_cap"): (Verdict.NO_GO, "X API usage cap or credits used up"),
    ("twitter_api", "rate_limit"): (Verdict.DEGRADED, "X API rate-limited"),
    ("twitter_api", None): (Verdict.DEGRADED, "X API not answering normally"),
    ("database", None): (Verdict.NO_GO, "post ledger database unreachable"),
    ("internet", None): (Verdict.NO_GO, "no internet connection"),
    ("scheduler", None): (Verdict.NO_GO, "pipeline scheduler not running"),
    ("disk_space", None): (Verdict.DEGRADED, "disk nearly full"),
}
CHECK_CLASS = {"database": "database", "internet": "network", "scheduler": "scheduler",
               "disk_space": "disk"}
# A post incident of these classes stops every post, not just its own.
BLOCKING_CLASSES = {"auth": "X API credentials rejected", "permission": "X app not allowed to post",
                    "usage_cap": "X API usage cap or credits used up"}


def doing_for(failure_class: str | None, settings: Settings) -> str:
    """What the monitor does about a failure class (from the playbook), and what a person must do."""
    record = play(failure_class)
    able = record.does and (record.configured is None or record.configured(settings))
    said = f"{record.does}" if able else "cannot fix this by itself"
    return f"{said}; re-checks at T-15 and T-5" + (f". You: {record.human}" if record.human else "")


def check_reasons(checks: Iterable[Mapping[str, Any]], settings: Settings) -> list[Reason]:
    """Reasons from the latest check results (`name`, `status`, `detail`, `failure_class`)."""
    found = []
    for check in checks:
        status, name = check.get("status"), str(check.get("name"))
        if status not in ("warning", "critical"):
            continue
        failure_class = check.get("failure_class") or CHECK_CLASS.get(name)
        verdict, text = CHECK_RULES.get((name, failure_class)) or CHECK_RULES.get(
            (name, None), (Verdict.DEGRADED, f"{name} check failing"))
        if status == "warning":
            verdict = Verdict.DEGRADED
        found.append(Reason(verdict, text, str(check.get("detail") or ""),
                            doing_for(failure_class, settings)))
    return found


def incident_reasons(open_rows: Iterable[Mapping[str, Any]], settings: Settings) -> list[Reason]:
    """Reasons from open post incidents (`failure:<class>:post:<id>`); check incidents are
    already in the check results."""
    found = []
    for row in open_rows:
        key, failure_class = str(row.get("key")), row.get("failure_class") or ""
        if not key.startswith("failure:"):
            continue
        target = key.split(":", 2)[-1].replace(":", " ")
        if int(row.get("posts") or 1) > 1:
            target += f" and {int(row['posts']) - 1} more"
        if failure_class in BLOCKING_CLASSES:
            found.append(Reason(Verdict.NO_GO, BLOCKING_CLASSES[failure_class], f"{target} failed",
                                doing_for(failure_class, settings)))
        else:
            found.append(Reason(Verdict.DEGRADED, f"{target} failing ({failure_class or 'unclassified'})",
                                one_line(str(row.get("title") or ""), 120),
                                doing_for(failure_class, settings)))
    return found


def budget_reason(window: budget.Window, tz: tzinfo) -> Reason:
    """The reason a slot's post does not fit in the X budget."""
    when = window.resets_at.astimezone(tz).strftime("%H:%M %Z") if window.resets_at else "its reset"
    left = "?" if window.remaining is None else window.remaining
    return Reason(Verdict.DEGRADED, "X API budget short",
                  f"{left} post(s) left until {when} ({window.source}) and posts due before it",
                  f"retries and later posts wait for the reset at {when}")


def slot_times(posting_times: Sequence[time], tz: tzinfo, now: datetime,
               horizon: timedelta = HORIZON) -> list[datetime]:
    """Every POSTING_TIMES occurrence in (now, now + horizon], as aware local times."""
    today = now.astimezone(tz).date()
    found = {DailyTrigger(at, tz).instant(today + timedelta(days=offset))
             for at in posting_times for offset in range(-1, 3)}
    return sorted(at for at in found if now < at <= now + horizon)


def build_slots(posting_times: Sequence[time], tz: tzinfo, rows: Iterable[tuple[int, datetime]],
                now: datetime, horizon: timedelta = HORIZON) -> list[Slot]:
    """The slots of the next `horizon`: posting times plus scheduled rows, rows merged into the
    slot within SLOT_MERGE of them."""
    slots = [Slot(at, fixed=True) for at in slot_times(posting_times, tz, now, horizon)]
    for post_id, at in sorted(rows, key=lambda row: row[1]):
        if not now < at <= now + horizon:
            continue
        home = next((s for s in slots if abs(s.at - at) <= SLOT_MERGE), None)
        if home is None:
            home = Slot(at.astimezone(tz))
            slots.append(home)
        home.posts.append(post_id)
    return sorted(slots, key=lambda s: s.at)


def judge(slots: list[Slot], common: Sequence[Reason], window: budget.Window, pending: int,
          tz: tzinfo) -> list[Slot]:
    """Give each slot the common reasons, plus the budget reason where its posts do not fit."""
    fitting = budget.fits(window, pending, [(s.at, s.expected_posts) for s in slots])
    for slot, fits in zip(slots, fitting, strict=True):
        slot.reasons = list(common) + ([] if fits else [budget_reason(window, tz)])
    return slots


@dataclass
class Assessment:
    """The slots with their verdicts and the budget forecast, as of one moment."""

    slots: list[Slot]
    forecast: budget.Forecast


def assess(ctx: MonitorContext, now: datetime, results: Sequence[CheckResult] | None = None
           ) -> Assessment:
    """Slots and forecast from the database (latest checks, open incidents, ledger, budget);
    `results` of a round just run take the place of the stored ones."""
    engine, settings, tz = ctx.engine, ctx.settings, ctx.settings.monitor_timezone
    open_rows = _open_incidents(engine)
    classes = {r["key"].removeprefix("check:"): r["failure_class"] for r in open_rows}
    checks = {row["name"]: {**row, "failure_class": classes.get(row["name"]) or _classify(row)}
              for row in latest_results(engine)}
    for result in results or ():
        checks[result.name] = {"name": result.name, "status": result.status.value,
                               "detail": result.detail, "failure_class": result.failure_class}
    common = check_reasons(checks.values(), settings) + incident_reasons(open_rows, settings)
    if not checks:
        common.append(Reason(Verdict.DEGRADED, "no health round has run yet", "",
                             "runs one before the slot"))
    window = budget.budget_window(ctx, now)
    pending = budget.pending_posts(engine, now, budget.window_end(window, now))
    slots = build_slots(settings.posting_times, tz, scheduled_rows(engine, now), now)
    judged = judge(slots, common, window, pending.total, tz)
    return Assessment(judged, budget.forecast(window, pending, [(s.at, s.expected_posts)
                                                                 for s in slots], now))


def scheduled_rows(engine: Engine, now: datetime, horizon: timedelta = HORIZON
                   ) -> list[tuple[int, datetime]]:
    """`scheduled` rows due in (now, now + horizon]."""
    query = select(posts.c.id, posts.c.scheduled_at).where(
        posts.c.status == "scheduled", instant(posts.c.scheduled_at) > instant(now),
        instant(posts.c.scheduled_at) <= instant(now + horizon))
    with engine.connect() as conn:
        return [(row.id, row.scheduled_at) for row in conn.execute(query)]


def _open_incidents(engine: Engine) -> list[dict[str, Any]]:
    """Open incidents: each one not about a post, and those of posts as one row per failure
    class (`posts` of them, named by the first), so a bad day's thousands make one reason."""
    is_open = incidents.c.status == "open"
    with engine.connect() as conn:
        found = [dict(row._mapping) for row in conn.execute(
            select(incidents.c.key, incidents.c.failure_class, incidents.c.title)
            .where(is_open, incidents.c.post_id.is_(None)))]
        by_class = conn.execute(
            select(incidents.c.failure_class, func.count(), func.min(incidents.c.post_id))
            .where(is_open, incidents.c.post_id.is_not(None)).group_by(incidents.c.failure_class))
        found += [{"key": f"failure:{failure_class}:post:{first}", "failure_class": failure_class,
                   "title": f"post {first}" if count == 1 else f"{count} posts", "posts": count}
                  for failure_class, count, first in by_class]
    return found


def _classify(row: Mapping[str, Any]) -> str | None:
    if row.get("status") not in ("warning", "critical"):
        return None

    found = classify(str(row.get("detail") or "")).failure_class.value
    return None if found == "unknown" else found


def slots_view(ctx: MonitorContext, now: datetime) -> dict[str, Any]:
    """`slots` (next first) and `budget` for `status --json`."""
    found = assess(ctx, now)
    return {"slots": [slot.to_json() for slot in found.slots], "budget": found.forecast.to_json()}
