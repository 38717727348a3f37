"""Posting slots: a day driven minute by minute with a controlled clock, the real checks against
the X API double, the real ledger API posting through tweepy, and a real webhook receiving what
the monitor says (`daemon/slots.py`, `daemon/slot_watch.py`, `notify/slot_messages.py`)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert, select

from autonomiq_ledger.posting import post, schedule_post
from autonomous_monitor import AutonomousMonitor
from checks import CHECKS
from daemon.slot_watch import SlotWatch
from daemon.slots import Verdict, assess, build_slots, slots_view
from tests.conftest import assert_no_secret, run_cli
from tests.support.notify_receivers import running_webhook
from tests.support.xapi_double import BODY_401, ME, TWEETS, Reply
from utils.db import health_checks, posts
from utils.state import put_state

BERLIN = ZoneInfo("Europe/Berlin")
DAY = datetime(2026, 11, 30, tzinfo=BERLIN)  # CET, UTC+1
# What the slot watch says (a `LEVEL name: ` prefix added at delivery is cut off).
SLOT_TITLE = re.compile(r"(?:GO|DEGRADED|NO-GO) for the .*|Daily digest.*|X API budget short.*|"
                        r"\d\d:\d\d \w+ post: .*")

webhook = pytest.fixture(running_webhook, name="webhook")


@pytest.fixture
def day(env: dict[str, str], make_ctx: Any, clock: Any, webhook: Any) -> Iterator[Any]:
    """A monitor wired like the daemon's slot job, at midnight Berlin time on DAY."""
    clock.current = DAY.astimezone(UTC)
    environ = {**env, "MONITOR_TIMEZONE": "Europe/Berlin", "POSTING_TIMES": "09:00,15:00",
               "NOTIFY_URLS": webhook.url, "DIGEST_TIME": "21:00"}
    monitor = AutonomousMonitor(make_ctx(environ))
    for name in ("twitter_api", "database", "internet", "disk_space"):
        monitor.register_check(name, CHECKS[name])
    watch = SlotWatch(monitor.ctx, monitor.run_health_round, monitor.notifications.notify)
    yield monitor, watch


def run_until(monitor: AutonomousMonitor, watch: SlotWatch, clock: Any, until: datetime,
              at: dict[datetime, Any] | None = None) -> None:
    """Tick the watch every 5 minutes (the T-15 and T-5 grid) up to `until`, doing `at[moment]()`
    (the pipeline, a fault) at that moment first."""
    while clock.current < until:
        clock.advance(minutes=5)
        for moment, act in (at or {}).items():
            if moment == clock.current:
                act()
        watch.tick(clock.current)


def pipeline_posts(monitor: AutonomousMonitor, clock: Any) -> Any:
    """The pipeline at its slot: enqueue the post and send it through the ledger API."""
    def act() -> None:
        post_id = schedule_post(monitor.ctx.engine, f"post at {clock.current}", clock.current,
                                now=clock.current)
        post(monitor.ctx, post_id)
    return act


def slot_titles(webhook: Any) -> list[str]:
    return [found[0] for m in webhook.received if (found := SLOT_TITLE.search(m["title"]))]


def body_of(webhook: Any, title: str) -> str:
    return next(m["message"] for m in webhook.received if title in m["title"])


def at(hour: int, minute: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute).astimezone(UTC)


@pytest.mark.slow
def test_a_healthy_day_gives_one_go_report_and_one_digest(day: Any, clock: Any, webhook: Any) -> None:
    monitor, watch = day
    act = pipeline_posts(monitor, clock)
    run_until(monitor, watch, clock, at(23, 59), {at(9): act, at(15): act})
    titles = slot_titles(webhook)
    assert titles[0] == "GO for the 09:00 CET post: all checks pass"
    assert titles[1].startswith("Daily digest Mon 30 Nov, 21:00 CET")
    assert len(titles) == 2, titles  # no second GO (once a day), no after-slot report when all went well
    digest = body_of(webhook, titles[1])
    assert "Posts (24h): 2 scheduled, 2 on time, 0 late" in digest
    with monitor.ctx.engine.connect() as conn:
        rounds = conn.execute(select(health_checks.c.trigger, health_checks.c.checked_at)
                              .where(health_checks.c.name == "twitter_api")).all()
    assert [(t, c) for t, c in rounds] == [("pre_posting", at(8)), ("pre_posting", at(14))]
    assert_no_secret(*(json.dumps(m) for m in webhook.received))


@pytest.mark.slow
def test_credentials_rejected_an_hour_before_a_slot_then_fixed(day: Any, clock: Any, webhook: Any,
                                                               x_api: Any) -> None:
    monitor, watch = day
    run_until(monitor, watch, clock, at(7, 55))
    x_api.always(ME, Reply(401, BODY_401))
    x_api.always(TWEETS, Reply(401, BODY_401))
    run_until(monitor, watch, clock, at(8, 50))
    assert slot_titles(webhook) == ["NO-GO for the 09:00 CET post: X API credentials rejected"]
    first = body_of(webhook, "NO-GO for the 09:00 CET post")
    assert "Slot 09:00 CET, in 1h 0m." in first and "regenerate the X access token" in first
    assert "re-checks at T-15 and T-5" in first
    x_api.clear()  # the owner put fresh keys in place
    run_until(monitor, watch, clock, at(9, 30), {at(9): pipeline_posts(monitor, clock)})
    assert slot_titles(webhook) == ["NO-GO for the 09:00 CET post: X API credentials rejected",
                                    "GO for the 09:00 CET post (was NO-GO)",
                                    "09:00 CET post: posted on time"]
    with monitor.ctx.engine.connect() as conn:
        rounds = conn.execute(select(health_checks.c.trigger, health_checks.c.checked_at,
                                     health_checks.c.status)
                              .where(health_checks.c.name == "twitter_api")).all()
    assert [tuple(r) for r in rounds] == [("pre_posting", at(8), "critical"),
                                          ("slot_recheck", at(8, 45), "critical"),  # no change: silent
                                          ("slot_recheck", at(8, 55), "ok")]


@pytest.mark.slow
def test_a_slot_the_budget_cannot_cover_is_degraded_naming_the_budget(day: Any, clock: Any,
                                                                      webhook: Any) -> None:
    monitor, watch = day
    engine, now = monitor.ctx.engine, clock.current
    monitor.run_health_round("manual")  # every check passes: only the budget is wrong
    reset = at(20)
    put_state(engine, "x_api:post", {"user_24h": {"limit": 17, "remaining": 1, "reset_at": reset.isoformat()},
                                     "app_24h": {"limit": 17, "remaining": 9, "reset_at": reset.isoformat()},
                                     "last": {"at": now.isoformat(), "ok": True}}, now)
    with engine.begin() as conn:
        conn.execute(insert(posts), [{"text": "retry me", "status": "retry_scheduled", "attempts": 2,
                                      "next_attempt_at": at(6), "failure_class": "server_error",
                                      "updated_at": now}])
    report = slots_view(monitor.ctx, now)
    assert report["budget"] == {"posts_remaining": 1, "resets_at": reset.isoformat(), "posts_needed": 3,
                                "enough": False}
    nine, three = report["slots"][:2]
    assert nine["at"] == "2026-11-30T09:00:00+01:00" and three["at"] == "2026-11-30T15:00:00+01:00"
    assert nine["verdict"] == three["verdict"] == "degraded"
    assert len(nine["reasons"]) == 1
    assert nine["reasons"][0].startswith("X API budget short: 1 post(s) left until 20:00 CET (user_24h)")
    run_until(monitor, watch, clock, at(8, 10))
    titles = slot_titles(webhook)
    assert titles == ["X API budget short: 1 post(s) left, 3 due before 20:00 CET",
                      "DEGRADED for the 09:00 CET post: X API budget short"]


@pytest.mark.slow
def test_status_shows_the_slots_as_json_and_as_text(env: dict[str, str], make_ctx: Any) -> None:
    environ = {**env, "MONITOR_TIMEZONE": "Europe/Berlin", "POSTING_TIMES": "09:00,15:00"}
    ctx = make_ctx(environ)
    now = datetime.now(UTC)
    extra = schedule_post(ctx.engine, "an odd time", now + timedelta(hours=3, minutes=7), now=now)
    as_json = run_cli(["status", "--json"], environ)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    ats = [slot["at"] for slot in report["slots"]]
    assert ats == sorted(ats) and len(ats) == 3
    assert all(datetime.fromisoformat(a).utcoffset() == BERLIN.utcoffset(datetime.fromisoformat(a))
               for a in ats)
    assert [s["posts"] for s in report["slots"] if s["posts"]] == [[extra]]
    assert {s["verdict"] for s in report["slots"]} == {"degraded"}  # no round has run yet
    assert report["budget"] == {"posts_remaining": 17, "resets_at": None, "posts_needed": 3,
                                "enough": True}
    text = run_cli(["status"], environ)
    assert "POSTING SLOTS (next 24 h)" in text.stdout and "DEGRADED" in text.stdout
    assert "X posting budget: 17 post(s) left" in text.stdout
    assert_no_secret(text.stdout, as_json.stdout)


def test_ledger_rows_join_the_posting_time_they_are_due_at_or_make_their_own_slot() -> None:
    now = datetime(2026, 11, 30, 6, 0, tzinfo=UTC)
    rows = [(1, datetime(2026, 11, 30, 8, 0, tzinfo=UTC)), (2, datetime(2026, 11, 30, 8, 3, tzinfo=UTC)),
            (3, datetime(2026, 11, 30, 11, 30, tzinfo=UTC)), (4, datetime(2026, 12, 2, 8, 0, tzinfo=UTC))]
    slots = build_slots([time(9), time(15)], BERLIN, rows, now)
    assert [(s.at.isoformat(), s.posts, s.fixed) for s in slots] == [
        ("2026-11-30T09:00:00+01:00", [1, 2], True), ("2026-11-30T12:30:00+01:00", [3], False),
        ("2026-11-30T15:00:00+01:00", [], True)]


def test_an_open_post_incident_for_rejected_credentials_is_no_go(day: Any, clock: Any) -> None:
    from utils.db import incidents

    monitor, _watch = day
    monitor.run_health_round("manual")
    now = clock.current
    with monitor.ctx.engine.begin() as conn:
        conn.execute(insert(incidents), [{
            "key": "failure:auth:post:7", "status": "open", "severity": "critical", "title": "auth on post 7",
            "detail": "401", "opened_at": now, "updated_at": now, "failure_class": "auth"}])
    found = assess(monitor.ctx, now).slots[0]
    assert found.verdict is Verdict.NO_GO
    assert found.reasons[0].text == "X API credentials rejected" and "post 7" in found.reasons[0].detail


def test_an_unreadable_database_is_one_line_not_a_crash(env: dict[str, str], make_ctx: Any,
                                                        tmp_path: Any) -> None:
    broken = tmp_path / "data" / "broken.db"
    broken.write_bytes(b"this is not an SQLite database" * 100)
    ctx = make_ctx({**env, "DATABASE_URL": f"sqlite:///{broken}"})
    sent: list[Any] = []
    watch = SlotWatch(ctx, lambda trigger: [], sent.append)
    assert watch.tick() == "database unreachable: slots not judged"
    assert sent == []


def test_after_the_slot_late_and_missing_posts_are_named() -> None:
    from daemon.slot_watch import describe_outcome

    slot = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    late = {"id": 4, "status": "posted", "scheduled_at": slot, "posted_at": slot + timedelta(minutes=12),
            "failure_class": None, "last_error": None}
    failed = {"id": 5, "status": "retry_scheduled", "scheduled_at": slot, "posted_at": None,
              "failure_class": "server_error", "last_error": "503 Service Unavailable"}
    assert describe_outcome(slot, [late], True) == ("posted 12m late", ["post #4: posted 12m late"], False)
    summary, lines, good = describe_outcome(slot, [late, failed], True)
    assert summary == "not posted (retry_scheduled: server_error)" and not good
    assert lines == ["post #4: posted 12m late", "post #5: not posted (retry_scheduled: server_error)"]
    assert describe_outcome(slot, [], True)[0] == "not posted: no post in the ledger for this slot"


def test_a_reason_does_not_repeat_its_own_words():
    from daemon.slots import Reason, Verdict

    rejected = Reason(Verdict.NO_GO, "X API credentials rejected", "credentials rejected: 401 Unauthorized")
    assert rejected.to_text() == "X API credentials rejected: 401 Unauthorized"
    failing = Reason(Verdict.DEGRADED, "post 1 failing (server_error)", "post 1")
    assert failing.to_text() == "post 1 failing (server_error)"
    disk = Reason(Verdict.DEGRADED, "disk nearly full", "/ 3% free")
    assert disk.to_text() == "disk nearly full: / 3% free"
