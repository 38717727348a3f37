"""The daily digest (`daemon/digest.py`): the last 24 hours counted from the real ledger, actions
and incidents on each real database, the next DST change, a credential's age, sent at DIGEST_TIME
and printed by `autonomous_monitor.py digest`."""

from __future__ import annotations

import json
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import insert

from daemon.digest import build_digest, next_dst_change
from daemon.slot_watch import SlotWatch
from recovery.credentials import OAUTH2_STATE_KEY
from tests.conftest import assert_no_secret, run_cli
from tests.support.databases import DATABASES, on_database
from utils.db import actions, incidents, posts
from utils.state import put_state

NOW = datetime(2026, 11, 30, 20, 0, tzinfo=UTC)  # 21:00 in Berlin
BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture(params=DATABASES)
def ctx(request: Any, env: dict[str, str], make_ctx: Any, clock: Any) -> Any:
    clock.current = NOW
    return make_ctx({**on_database(request, env), "MONITOR_TIMEZONE": "Europe/Berlin"})


def row(hours_ago: float, status: str, attempts: int = 1,
        late_minutes: float | None = None) -> dict[str, Any]:
    scheduled = NOW - timedelta(hours=hours_ago)
    posted = None if late_minutes is None else scheduled + timedelta(minutes=late_minutes)
    return {"text": "t", "status": status, "attempts": attempts, "scheduled_at": scheduled,
            "posted_at": posted, "updated_at": NOW}


def test_the_digest_counts_the_last_24_hours(ctx: Any) -> None:
    with ctx.engine.begin() as conn:
        conn.execute(insert(posts), [
            row(11, "posted", late_minutes=0.5), row(5, "posted", 3, late_minutes=42),
            row(3, "retry_scheduled", 2), row(2, "gave_up", 5), row(30, "posted", 1, 0)])
        conn.execute(insert(actions), [
            {"routine": "retry_due_post", "target": "post:2", "reason": "server_error", "outcome": "fixed",
             "detail": "", "started_at": NOW - timedelta(hours=4), "duration_ms": 1.0},
            {"routine": "give_up", "target": "post:4", "reason": "permission", "outcome": "gave_up",
             "detail": "", "started_at": NOW - timedelta(hours=2), "duration_ms": 1.0},
            {"routine": "give_up", "target": "post:0", "reason": "permission", "outcome": "gave_up",
             "detail": "", "started_at": NOW - timedelta(hours=26), "duration_ms": 1.0}])
        conn.execute(insert(incidents), [
            {"key": "check:internet", "status": "resolved", "severity": "critical", "title": "x",
             "detail": "", "opened_at": NOW - timedelta(hours=6), "updated_at": NOW,
             "resolved_at": NOW - timedelta(hours=5)},
            {"key": "failure:permission:post:4", "status": "open", "severity": "critical", "title": "x",
             "detail": "", "opened_at": NOW - timedelta(hours=2), "updated_at": NOW, "resolved_at": None}])
    digest = build_digest(ctx, NOW)
    assert digest.posts == {"scheduled": 4, "posted_on_time": 1, "posted_late": 1, "failed": 1,
                            "retried": 3, "given_up": 1}
    assert digest.actions == {"retry_due_post fixed": 1, "give_up gave_up": 1}
    assert (digest.incidents_opened, digest.incidents_resolved) == (2, 1)
    lines = digest.lines(BERLIN)
    assert lines[0] == "Posts (24h): 4 scheduled, 1 on time, 1 late, 1 failed, 3 retried, 1 given up"
    assert lines[2] == "Incidents: 2 opened, 1 resolved"
    assert lines[3] == "X budget: 15 post(s) left (resets 10:00 CET), 2 due: enough"
    assert json.loads(json.dumps(digest.to_json()))["posts"]["posted_late"] == 1


@pytest.mark.parametrize(("now", "expected"), [
    (datetime(2027, 3, 24, 12, tzinfo=UTC), "Sun 28 Mar 03:00: clocks go forward 1h (CET->CEST); posts at "
                                            "09:00, 15:00 then go out 60 min earlier in UTC"),
    (datetime(2027, 10, 27, 12, tzinfo=UTC), "Sun 31 Oct 02:00: clocks go back 1h (CEST->CET); posts at "
                                             "09:00, 15:00 then go out 60 min later in UTC"),
])
def test_the_next_dst_change_is_found_to_the_minute(now: datetime, expected: str) -> None:
    change = next_dst_change(BERLIN, [time(9), time(15)], now)
    assert change is not None and change.text(BERLIN) == expected


def test_a_zone_without_dst_has_no_change() -> None:
    assert next_dst_change(ZoneInfo("UTC"), [time(9)], NOW) is None
    assert next_dst_change(ZoneInfo("Asia/Tokyo"), [time(9)], NOW) is None


@pytest.mark.slow
def test_the_digest_at_digest_time_names_a_dst_change_inside_the_next_week(
        env: dict[str, str], make_ctx: Any, clock: Any) -> None:
    clock.current = datetime(2027, 3, 23, 19, 0, tzinfo=UTC)  # Tue 20:00 CET; DST on Sun 28 Mar
    ctx = make_ctx({**env, "MONITOR_TIMEZONE": "Europe/Berlin", "DIGEST_TIME": "20:30"})
    sent: list[Any] = []
    watch = SlotWatch(ctx, lambda trigger: [], sent.append)
    for _ in range(24 * 4):
        clock.advance(minutes=15)
        watch.tick(clock.current)
    digests = [m for m in sent if m.title.startswith("Daily digest")]
    assert [m.title for m in digests] == ["Daily digest Tue 23 Mar, 20:30 CET"]
    assert "Next DST change: Sun 28 Mar 03:00: clocks go forward 1h (CET->CEST)" in digests[0].body


def test_an_empty_digest_time_turns_the_digest_off(env: dict[str, str], make_ctx: Any,
                                                   clock: Any) -> None:
    ctx = make_ctx({**env, "DIGEST_TIME": ""})
    sent: list[Any] = []
    watch = SlotWatch(ctx, lambda trigger: [], sent.append)
    for _ in range(24):
        clock.advance(hours=1)
        watch.tick(clock.current)
    assert not [m for m in sent if m.title.startswith("Daily digest")]


def test_the_oauth2_refresh_tokens_age_gives_the_days_left(env: dict[str, str], make_ctx: Any,
                                                           clock: Any) -> None:
    clock.current = NOW
    ctx = make_ctx({**env, "TWITTER_CLIENT_ID": "client-id", "TWITTER_CLIENT_SECRET": "SECRETclientZZ",
                    "TWITTER_OAUTH2_REFRESH_TOKEN": "SECRETrefreshtokenZZ"})
    assert build_digest(ctx, NOW).credential_days_left is None  # never refreshed: age unknown
    put_state(ctx.engine, OAUTH2_STATE_KEY, {"origin": "x", "refreshed_at": (NOW - timedelta(days=30))
                                             .isoformat()}, NOW)
    digest = build_digest(ctx, NOW)
    assert digest.credential_days_left == 150
    assert "rotated 30d ago; about 150 day(s) left" in digest.credential


@pytest.mark.slow
def test_the_digest_command_prints_text_and_json(env: dict[str, str]) -> None:
    text = run_cli(["digest"], env)
    assert text.returncode == 0, text.stderr
    assert text.stdout.startswith("Digest for the 24 hours to ") and "Next DST change:" in text.stdout
    as_json = run_cli(["digest", "--json"], env)
    assert as_json.returncode == 0, as_json.stderr
    report = json.loads(as_json.stdout)
    assert set(report) == {"since", "until", "posts", "actions", "incidents_opened",
                           "incidents_resolved", "budget", "credential", "credential_days_left",
                           "dst_change"}
    assert set(report["budget"]) == {"posts_remaining", "resets_at", "posts_needed", "enough"}
    assert_no_secret(text.stdout, text.stderr, as_json.stdout)
