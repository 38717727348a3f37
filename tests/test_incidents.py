"""Incidents end to end: real checks and real sweep reports in, real webhook and SMTP receivers out."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from autonomous_monitor import AutonomousMonitor
from checks import CHECKS, disk_space, scheduler, twitter_api
from notify.silence import set_silence
from recovery.report import ActionRecord, Detection, SweepReport
from tests.conftest import FAKE_SECRETS, assert_no_secret
from tests.support.notify_receivers import SMTP_PASSWORD, running_smtp, running_webhook
from tests.support.xapi_double import BODY_401, ME, Reply
from utils.db import incidents

webhook = pytest.fixture(running_webhook, name="webhook")
smtp = pytest.fixture(running_smtp, name="smtp")
DISK = {"ok": (0, 0), "warning": (100, 0), "critical": (100, 100)}  # (warn %, crit %) free


@pytest.fixture
def rig(env: dict[str, str], webhook: Any, smtp: Any, make_ctx: Any) -> Any:
    """Builds monitors (same database each time: a restart is a new monitor) with real checks."""
    environ = {**env, "NOTIFY_URLS": f"{webhook.url},{smtp.url}", "MONITOR_NAME": "mon"}

    def build(*checks: Any, **overrides: Any) -> AutonomousMonitor:
        monitor = AutonomousMonitor(make_ctx(environ, **overrides))
        for module in checks or (disk_space,):
            monitor.register_check(module.NAME, CHECKS[module.NAME])
        return monitor

    return build


def disk(monitor: AutonomousMonitor, state: str) -> None:
    """Make the real disk_space check come out `state` by moving its thresholds."""
    warn, crit = DISK[state]
    monitor.ctx.settings = monitor.ctx.settings.with_overrides(
        disk_warn_free_percent=warn, disk_crit_free_percent=crit)


def rounds(monitor: AutonomousMonitor, clock: Any, state: str, count: int,
           trigger: str = "sweep") -> None:
    disk(monitor, state)
    for _ in range(count):
        monitor.run_health_round(trigger)
        clock.advance(minutes=30)


def incident_rows(monitor: AutonomousMonitor) -> list[dict[str, Any]]:
    with monitor.ctx.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(incidents).order_by(incidents.c.id))]


def test_ten_failing_rounds_give_one_alert_and_one_resolved_at_each_receiver(
        rig: Any, clock: Any, webhook: Any, smtp: Any) -> None:
    monitor = rig()
    rounds(monitor, clock, "critical", 10)
    rounds(monitor, clock, "ok", 3)
    expected = ["CRITICAL mon: disk_space check failing", "RESOLVED mon: disk_space check (after 5h 30m)"]
    assert webhook.titles() == expected
    assert smtp.subjects() == expected
    alert, resolved = (item["message"] for item in webhook.received)
    assert "low disk space" in alert and "Class: disk" in alert and "You: free space" in alert
    assert "Lasted 5h 30m (07:00 UTC to 12:30 UTC)" in resolved
    assert [(r["status"], r["failure_count"]) for r in incident_rows(monitor)] == [("resolved", 10)]


def test_reminder_after_the_repeat_interval(rig: Any, clock: Any, webhook: Any) -> None:
    monitor = rig(alert_repeat_hours=3)
    rounds(monitor, clock, "critical", 6)  # 07:00 … 09:30: alert at 07:30 only
    assert webhook.titles() == ["CRITICAL mon: disk_space check failing"]
    rounds(monitor, clock, "critical", 1)  # 10:00, 2h30 after the alert
    assert len(webhook.received) == 1
    rounds(monitor, clock, "critical", 1)  # 10:30, three hours after it
    assert webhook.titles()[1:] == ["CRITICAL mon: still: disk_space check"]


@pytest.mark.slow
def test_escalation_from_warning_to_critical_notifies_once(rig: Any, clock: Any,
                                                           webhook: Any) -> None:
    monitor = rig()
    rounds(monitor, clock, "warning", 3)
    rounds(monitor, clock, "critical", 3)
    rounds(monitor, clock, "warning", 2)  # de-escalation is not news
    assert webhook.titles() == ["WARNING mon: disk_space check failing",
                                "CRITICAL mon: now critical: disk_space check (was warning)"]
    assert [item["type"] for item in webhook.received] == ["warning", "failure"]


@pytest.mark.slow
def test_flapping_check_alerts_once_as_flapping_then_resolves_once(rig: Any, clock: Any,
                                                                   webhook: Any) -> None:
    monitor = rig()
    for _ in range(6):
        rounds(monitor, clock, "critical", 1)
        rounds(monitor, clock, "ok", 1)
    assert webhook.titles() == ["FLAPPING mon: disk_space check keeps failing and recovering"]
    assert incident_rows(monitor)[0]["flapping"] is True
    rounds(monitor, clock, "ok", 5)
    assert len(webhook.received) == 2
    # its real span: from the first failure to the last one, not until the flap window ran out
    assert webhook.titles()[1] == "RESOLVED mon: disk_space check (after 5h 0m)"
    assert "Lasted 5h 0m (07:00 UTC to 12:00 UTC)." in webhook.received[1]["message"]


@pytest.mark.slow
def test_silence_records_without_sending_and_alerts_when_it_ends(rig: Any, clock: Any,
                                                                 webhook: Any) -> None:
    monitor = rig()
    set_silence(monitor.ctx, "disk_space", clock() + timedelta(hours=2))
    rounds(monitor, clock, "critical", 4)
    assert webhook.received == []
    assert incident_rows(monitor)[0]["failure_count"] == 4
    rounds(monitor, clock, "critical", 1)  # the silence is over, the failure is not
    assert webhook.titles() == ["CRITICAL mon: disk_space check failing",
                                "INFO mon: during the silence on disk_space: 1 message(s) held back"]
    summary = webhook.received[1]["message"]
    assert "from 07:00 UTC to 09:00 UTC is over" in summary
    assert "07:30 CRITICAL disk_space check failing" in summary  # once, though held back 3 times


def test_maintenance_window_suppresses_alerts(rig: Any, clock: Any, webhook: Any) -> None:
    from datetime import time

    monitor = rig(maintenance_windows=((time(6, 0), time(8, 0)),))
    rounds(monitor, clock, "critical", 4)  # 07:00 … 08:30: alertable only from 08:00
    assert webhook.titles() == ["CRITICAL mon: disk_space check failing",
                                "INFO mon: during the maintenance window: 1 message(s) held back"]
    assert "since 07:00 UTC (3 failed round(s))" in webhook.received[0]["message"]  # sent at 08:00


def test_pre_posting_critical_alerts_at_once(rig: Any, clock: Any, webhook: Any) -> None:
    monitor = rig()
    rounds(monitor, clock, "critical", 1, trigger="manual")
    assert webhook.received == []  # one failing round is not yet an alert
    rounds(monitor, clock, "critical", 1, trigger="pre_posting")
    # The pre-posting report itself is the slot's verdict (tests/test_slots.py), not a second list.
    assert webhook.titles() == ["CRITICAL mon: disk_space check failing"]


@pytest.mark.slow
def test_no_second_alert_after_a_restart(rig: Any, clock: Any, webhook: Any, smtp: Any) -> None:
    first = rig()
    rounds(first, clock, "critical", 3)
    first.close()
    second = rig()  # a new context and service on the same database
    rounds(second, clock, "critical", 5)
    rounds(second, clock, "ok", 2)
    expected = ["CRITICAL mon: disk_space check failing", "RESOLVED mon: disk_space check (after 4h 30m)"]
    assert webhook.titles() == expected and smtp.subjects() == expected


def test_unknown_results_neither_open_nor_resolve(rig: Any, clock: Any, tmp_path: Any,
                                                  webhook: Any) -> None:
    monitor = rig(scheduler)  # neither SCHEDULER_SERVICE nor a heartbeat file: unknown
    for _ in range(4):
        monitor.run_health_round("pre_posting")
    assert incident_rows(monitor) == [] and webhook.received == []


def test_stale_scheduler_heartbeat_alerts_and_a_fresh_one_resolves(rig: Any, clock: Any,
                                                                   tmp_path: Any,
                                                                   webhook: Any) -> None:
    import os

    beat = tmp_path / "heartbeat"
    beat.touch()
    monitor = rig(scheduler, scheduler_heartbeat_file=beat)
    for _ in range(3):
        stale = (clock() - timedelta(hours=1)).timestamp()
        os.utime(beat, (stale, stale))
        monitor.run_health_round("sweep")
        clock.advance(minutes=30)
    for _ in range(2):
        os.utime(beat, (clock().timestamp(), clock().timestamp()))
        monitor.run_health_round("sweep")
        clock.advance(minutes=30)
    assert webhook.titles() == ["CRITICAL mon: scheduler check failing",
                                "RESOLVED mon: scheduler check (after 2h 0m)"]
    assert "heartbeat is 3600s old" in webhook.received[0]["message"]


@pytest.mark.slow
def test_twitter_api_failure_from_the_x_double_alerts_and_recovers(rig: Any, clock: Any, x_api: Any,
                                                                   webhook: Any) -> None:
    monitor = rig(twitter_api)
    x_api.script(ME, *[Reply(401, BODY_401)] * 3)
    for _ in range(5):
        monitor.run_health_round("sweep")
        clock.advance(minutes=30)
    assert webhook.titles() == ["CRITICAL mon: twitter_api check failing",
                                "RESOLVED mon: twitter_api check (after 2h 0m)"]
    assert "Class: auth" in webhook.received[0]["message"]
    assert "You: regenerate the X access token" in webhook.received[0]["message"]


def sweep(*detected: Detection, actions: tuple[ActionRecord, ...] = ()) -> SweepReport:
    return SweepReport(detected=list(detected), actions=list(actions))


RATE = Detection("ledger", "rate_limit", "post 7: 429 Too Many Requests", "post:7", 7)


def test_sweep_detection_alerts_after_two_sweeps_and_verified_fix_resolves(
        rig: Any, clock: Any, webhook: Any) -> None:
    monitor = rig()
    retry = ActionRecord("retry_post", "post:7", "retry_scheduled", "retry at 07:45", "rate_limit")
    for _ in range(3):
        monitor.after_sweep(sweep(RATE, actions=(retry,)))
        clock.advance(minutes=30)
    fixed = ActionRecord("retry_post", "post:7", "fixed", "posted as tweet 99", "rate_limit",
                         verified=True)
    monitor.after_sweep(sweep(actions=(fixed,)))
    assert webhook.titles() == ["WARNING mon: post 7 failing",
                                "RESOLVED mon: post 7 (after 1h 30m)"]
    assert "waits for X's rate-limit reset" in webhook.received[0]["message"]
    assert "retry_post: posted as tweet 99 (re-check passed)" in webhook.received[1]["message"]
    assert "retry post: retry scheduled; retry post: fixed" in webhook.received[1]["message"]


def test_failure_only_a_person_can_fix_alerts_at_once_with_the_instructions(
        rig: Any, clock: Any, webhook: Any) -> None:
    monitor = rig()
    auth = Detection("log", "auth", "401 Unauthorized", "logs/pipeline.log")
    odd = Detection("ledger", "unknown", "X answered 418", "post:3", 3)
    human = ActionRecord("refresh_credentials", "logs/pipeline.log", "blocked",
                         "refresh refused", "auth", needs_human=True)
    gave_up = ActionRecord("give_up", "post:3", "gave_up", "edit post 3 and reschedule it",
                           "unknown", needs_human=True)
    monitor.after_sweep(sweep(auth, odd, actions=(human, gave_up)))
    monitor.after_sweep(sweep(auth, odd, actions=(human, gave_up)))
    assert webhook.titles() == ["CRITICAL mon: auth in logs/pipeline.log failing",
                                "CRITICAL mon: post 3 given up"]
    assert "You: regenerate the X access token" in webhook.received[0]["message"]
    assert "Gave up after 1 attempt(s): X answered 418; to post it, read the error in the " \
        "pipeline's log and fix the cause and reschedule it." in webhook.received[1]["message"]


def test_sweep_that_stops_detecting_resolves_after_the_passes(rig: Any, clock: Any,
                                                              webhook: Any) -> None:
    monitor = rig()
    for _ in range(2):
        monitor.after_sweep(sweep(RATE))
        clock.advance(minutes=30)
    monitor.after_sweep(SweepReport(errors=["ledger unreachable"]))  # proves nothing
    monitor.after_sweep(sweep())
    assert len(webhook.received) == 1
    monitor.after_sweep(sweep())
    assert webhook.titles()[1] == "RESOLVED mon: post 7 (after 1h 0m)"


def test_a_secret_in_an_error_text_never_reaches_a_receiver(rig: Any, clock: Any, webhook: Any,
                                                            smtp: Any) -> None:
    monitor = rig()
    secret = FAKE_SECRETS["TWITTER_ACCESS_TOKEN_SECRET"]
    leak = Detection("log", "auth", f"401 with oauth_token_secret={secret} in the URL", "pipeline")
    human = ActionRecord("refresh_credentials", "pipeline", "blocked",
                         f"token {FAKE_SECRETS['TWITTER_BEARER_TOKEN']} was refused", "auth",
                         needs_human=True)
    monitor.after_sweep(sweep(leak, actions=(human,)))
    monitor.after_sweep(sweep(actions=(ActionRecord("refresh_credentials", "pipeline", "fixed",
                                                    f"new token {secret}", "auth", verified=True),)))
    assert len(webhook.received) == 2 and len(smtp.messages) == 2
    assert_no_secret(*webhook.raw, *smtp.raw)
    assert all(SMTP_PASSWORD not in text for text in webhook.raw + smtp.raw)
    assert "***" in webhook.received[0]["message"]


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["postgres_url", "mysql_url"])
def test_incidents_and_outbox_work_on_server_databases(backend: str, request: Any, env: dict[str, str],
                                                       webhook: Any, make_ctx: Any, clock: Any) -> None:
    url = request.getfixturevalue(backend)
    monitor = AutonomousMonitor(make_ctx({**env, "DATABASE_URL": url, "NOTIFY_URLS": webhook.url,
                                          "MONITOR_NAME": "mon"}))
    monitor.register_check(disk_space.NAME, CHECKS[disk_space.NAME])
    webhook.down()
    rounds(monitor, clock, "critical", 3)  # the alert is queued at 07:30, the receiver refuses
    webhook.up()
    assert monitor.notifications.outbox.deliver_due() == 1
    rounds(monitor, clock, "ok", 2)
    assert webhook.titles() == ["CRITICAL mon: disk_space check failing",
                                "RESOLVED mon: disk_space check (after 2h 0m)"]


@pytest.mark.slow
def test_ten_real_sweeps_of_a_failing_check_give_one_alert_and_one_resolved(
        rig: Any, clock: Any, webhook: Any, smtp: Any) -> None:
    monitor = rig()
    disk(monitor, "critical")
    for _ in range(10):
        report = monitor.run_sweep()
        assert any(d.target == "check:disk_space" for d in report.detected)
        clock.advance(minutes=30)
    disk(monitor, "ok")
    for _ in range(2):
        monitor.run_sweep()
        clock.advance(minutes=30)
    expected = ["CRITICAL mon: disk_space check failing", "RESOLVED mon: disk_space check (after 5h 30m)"]
    assert webhook.titles() == expected and smtp.subjects() == expected
    assert "You: " in webhook.received[0]["message"]  # the routine could not free enough space
    assert [r["status"] for r in incident_rows(monitor)] == ["resolved"]
