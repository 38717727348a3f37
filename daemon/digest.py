"""The daily digest: the last 24 hours of posts, actions and incidents, the budget headroom, a
known credential expiry and the next DST change that moves the posting times.

`build_digest` is a plain function over the database, the settings and a `now`; the daemon sends
it at DIGEST_TIME and `autonomous_monitor.py digest [--json]` prints it.
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine, func, select

from daemon.slots import SLOT_MERGE, assess
from recovery.credentials import OAUTH2_STATE_KEY, oauth2_configured
from utils.db import actions, incidents, posts
from utils.redact import redact
from utils.state import get_state
from utils.timestamps import instant

if TYPE_CHECKING:
    from daemon.budget_forecast import Forecast
    from notify.monitor_view import MonitorView
    from utils.context import MonitorContext

DAY = timedelta(hours=24)
# X does not document how long an unused OAuth 2.0 refresh token lives; about six months is what
# users report (shared/X_API_NOTES.md §3, trypost #126). An assumption, said as one.
REFRESH_TOKEN_LIFETIME = timedelta(days=180)
DST_LOOKAHEAD_DAYS = 400


@dataclass(frozen=True)
class DstChange:
    """The next change of the zone's UTC offset and what it does to the posting times."""

    at: datetime
    before: str
    after: str
    shift_minutes: int
    posting_times: list[str]

    def text(self, tz: tzinfo) -> str:
        sign = "forward" if self.shift_minutes > 0 else "back"
        moved = ", ".join(self.posting_times)
        return (f"{self.at.astimezone(tz):%a %d %b %H:%M}: clocks go {sign} "
                f"{abs(self.shift_minutes) // 60}h{abs(self.shift_minutes) % 60 or ''} "
                f"({self.before}->{self.after}); posts at {moved} then go out "
                f"{abs(self.shift_minutes)} min {'earlier' if self.shift_minutes > 0 else 'later'} in UTC")


@dataclass(frozen=True)
class Digest:
    """Everything the digest reports."""

    since: datetime
    until: datetime
    posts: dict[str, int]
    actions: dict[str, int]
    incidents_opened: int
    incidents_resolved: int
    budget: dict[str, Any]
    credential: str
    credential_days_left: int | None
    dst_change: DstChange | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (`digest --json`)."""
        data = asdict(self)
        data.update(since=self.since.isoformat(), until=self.until.isoformat())
        if self.dst_change:
            data["dst_change"]["at"] = self.dst_change.at.isoformat()
        return data

    def lines(self, tz: tzinfo) -> list[str]:
        """The digest as short lines for a message or the terminal."""
        p, b = self.posts, self.budget
        acted = ", ".join(f"{name} x{n}" for name, n in sorted(self.actions.items())) or "none"
        left = "unknown" if b["posts_remaining"] is None else b["posts_remaining"]
        resets = (datetime.fromisoformat(b["resets_at"]).astimezone(tz).strftime("%H:%M %Z")
                  if b["resets_at"] else "-")
        verdict = {True: "enough", False: "NOT enough", None: "cannot tell"}[b["enough"]]
        return [
            f"Posts (24h): {p['scheduled']} scheduled, {p['posted_on_time']} on time, "
            f"{p['posted_late']} late, {p['failed']} failed, {p['retried']} retried, "
            f"{p['given_up']} given up",
            f"Actions: {acted}",
            f"Incidents: {self.incidents_opened} opened, {self.incidents_resolved} resolved",
            f"X budget: {left} post(s) left (resets {resets}), {b['posts_needed']} due: {verdict}",
            f"Credentials: {self.credential}",
            "Next DST change: " + (self.dst_change.text(tz) if self.dst_change else
                                   "none within a year"),
        ]


def post_counts(engine: Engine, since: datetime, until: datetime) -> dict[str, int]:
    """Posts scheduled in (since, until] by how they ended."""
    query = select(posts.c.status, posts.c.attempts, posts.c.scheduled_at, posts.c.posted_at).where(
        instant(posts.c.scheduled_at) > instant(since), instant(posts.c.scheduled_at) <= instant(until))
    counts = Counter({key: 0 for key in ("scheduled", "posted_on_time", "posted_late", "failed",
                                         "retried", "given_up")})
    with engine.connect() as conn:
        for row in conn.execute(query):
            counts["scheduled"] += 1
            if row.status == "posted" and row.posted_at is not None:
                late = row.posted_at - row.scheduled_at > SLOT_MERGE
                counts["posted_late" if late else "posted_on_time"] += 1
            elif row.status in ("failed", "retry_scheduled"):
                counts["failed"] += 1
            elif row.status == "gave_up":
                counts["given_up"] += 1
            counts["retried"] += (row.attempts or 0) > 1
    return dict(counts)


def action_counts(engine: Engine, since: datetime) -> dict[str, int]:
    """Recovery actions since `since`, as `routine outcome` → count."""
    query = (select(actions.c.routine, actions.c.outcome, func.count())
             .where(actions.c.started_at > since).group_by(actions.c.routine, actions.c.outcome))
    with engine.connect() as conn:
        rows: list[tuple[str, str, int]] = [tuple(row) for row in conn.execute(query)]  # type: ignore[misc]
    return {f"{routine} {outcome}": int(count or 0) for routine, outcome, count in rows}


def incident_counts(engine: Engine, since: datetime) -> tuple[int, int]:
    """Incidents opened and resolved since `since`."""
    with engine.connect() as conn:
        opened = conn.execute(select(func.count()).select_from(incidents)
                              .where(incidents.c.opened_at > since)).scalar()
        resolved = conn.execute(select(func.count()).select_from(incidents)
                                .where(incidents.c.resolved_at > since)).scalar()
    return int(opened or 0), int(resolved or 0)


def next_dst_change(tz: tzinfo, posting_times: list[time], now: datetime,
                    days: int = DST_LOOKAHEAD_DAYS) -> DstChange | None:
    """The next moment the zone's UTC offset changes (to the minute), or None within `days`."""
    start = now.astimezone(UTC)
    offset = start.astimezone(tz).utcoffset()
    for day in range(1, days + 1):
        if (start + timedelta(days=day)).astimezone(tz).utcoffset() == offset:
            continue
        low, high = start + timedelta(days=day - 1), start + timedelta(days=day)
        while high - low > timedelta(minutes=1):  # the change lies in (low, high]
            middle = low + (high - low) / 2
            low, high = (low, middle) if middle.astimezone(tz).utcoffset() != offset else (middle, high)
        after = high.astimezone(tz)
        shift = int((after.utcoffset() - offset).total_seconds() // 60)  # type: ignore[operator]
        return DstChange(after, low.astimezone(tz).strftime("%Z"), after.strftime("%Z"), shift,
                         [f"{at:%H:%M}" for at in posting_times])
    return None


def credential_expiry(ctx: MonitorContext, now: datetime) -> tuple[str, int | None]:
    """What is known of a credential's expiry: the OAuth 2.0 refresh token's age, if any."""
    if not oauth2_configured(ctx.settings):
        return "OAuth 1.0a keys do not expire (no OAuth 2.0 refresh token set)", None
    saved = get_state(ctx.engine, OAUTH2_STATE_KEY) or {}
    try:
        rotated = datetime.fromisoformat(saved["refreshed_at"])
    except (TypeError, KeyError, ValueError):
        return "OAuth 2.0 refresh token set, never used by the monitor: age unknown", None
    age = now - rotated
    left = (REFRESH_TOKEN_LIFETIME - age).days
    return (f"OAuth 2.0 refresh token rotated {age.days}d ago; about {left} day(s) left if unused "
            f"(X does not document its life; ~{REFRESH_TOKEN_LIFETIME.days}d assumed)"), left


def build_digest(ctx: MonitorContext, now: datetime, forecast: Forecast | None = None) -> Digest:
    """The digest of the 24 hours before `now`."""
    engine, settings, since = ctx.engine, ctx.settings, now - DAY
    forecast = forecast or assess(ctx, now).forecast
    opened, resolved = incident_counts(engine, since)
    credential, days_left = credential_expiry(ctx, now)
    return Digest(since, now, post_counts(engine, since, now), action_counts(engine, since), opened,
                  resolved, forecast.to_json(), credential, days_left,
                  next_dst_change(settings.monitor_timezone, list(settings.posting_times), now))


def cmd_digest(monitor: MonitorView, args: argparse.Namespace) -> int:
    """Print the digest of the last 24 hours (text or JSON); 0."""
    ctx = monitor.ctx
    digest = build_digest(ctx, ctx.now())
    tz = ctx.settings.monitor_timezone
    print(redact(json.dumps(digest.to_json(), default=str) if args.json else
                 "\n".join([f"Digest for the 24 hours to {ctx.now().astimezone(tz):%Y-%m-%d %H:%M %Z}",
                            *digest.lines(tz)])))
    return 0


def args_digest(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print one JSON object")
