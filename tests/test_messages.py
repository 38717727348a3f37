"""What a message says: the playbook drives the wording; who, when and since when; posts as a
person thinks of them; log incidents; silences in reports. Real incidents, a real webhook."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import pytest

from autonomous_monitor import AutonomousMonitor
from checks import CHECKS, disk_space, twitter_api
from notify.messages import clock
from notify.silence import set_silence
from recovery import playbook
from recovery.report import ActionRecord, Detection, SweepReport
from tests.support.notify_receivers import running_webhook
from tests.support.xapi_double import BODY_401, BODY_503, ME, Reply
from utils.config import load_settings

webhook = pytest.fixture(running_webhook, name="webhook")


@pytest.fixture
def rig(env: dict[str, str], webhook: Any, make_ctx: Any) -> Any:
    def build(*checks: Any, **overrides: Any) -> AutonomousMonitor:
        monitor = AutonomousMonitor(make_ctx({**env, "NOTIFY_URLS": webhook.url, "MONITOR_NAME": "mon"},
                                             **overrides))
        for module in checks:
            monitor.register_check(module.NAME, CHECKS[module.NAME])
        return monitor

    return build


def test_the_message_names_only_actions_that_are_configured_and_allowed(env: dict[str, str]) -> None:
    settings = load_settings(env)
    assert playbook.monitor_step("scheduler", settings, set()) is None  # no restart configured
    restart = settings.with_overrides(scheduler_restart_command=("systemctl", "restart", "bot"))
    assert playbook.monitor_step("scheduler", restart, set()) == "restarts the scheduler"
    assert playbook.monitor_step("scheduler", restart, {"restart_scheduler"}) is None  # breaker
    dry = restart.with_overrides(dry_run=True)
    assert "DRY_RUN" in (playbook.monitor_step("scheduler", dry, set()) or "")
    assert playbook.monitor_step("permission", settings, set()) is None  # giving up is no fix
    assert playbook.monitor_step("server_error", settings, set(), check="twitter_api").startswith(
        "re-checks the X API")


def test_the_routines_concrete_advice_wins_over_generic_text() -> None:
    advice = "set SCHEDULER_SERVICE (systemd) or SCHEDULER_RESTART_COMMAND"
    assert playbook.human_step("scheduler", "heartbeat old", advice) == advice
    assert "POST /2/tweets" in (playbook.human_step("permission", "403 Forbidden\n453 - You currently "
                                                    "have access to a subset of X API V2") or "")
    assert "Read and Write" in (playbook.human_step("permission", "oauth1 app permissions") or "")
    assert playbook.what_to_change("invalid_request", "186 too long").startswith("fix the text")


def test_every_failure_class_has_one_playbook_record() -> None:
    from utils.failure_classes import FailureClass

    assert set(playbook.PLAYS) == set(FailureClass)
    assert {cls: play.routines for cls, play in playbook.PLAYS.items()} == playbook.PLAYBOOK


def test_times_carry_the_date_when_not_today() -> None:
    now = datetime(2026, 11, 28, 7, 0, tzinfo=UTC)
    assert clock(now - timedelta(hours=2), UTC, now) == "05:00 UTC"
    assert clock(now - timedelta(hours=8), UTC, now) == "Fri 27 Nov 23:00 UTC"


def test_a_scheduler_alert_without_a_restart_says_what_to_set(rig: Any, clock: Any,
                                                              webhook: Any) -> None:
    monitor = rig()
    down = Detection("check", "scheduler", "heartbeat is 3600s old", "check:scheduler")
    failed = ActionRecord("restart_scheduler", "check:scheduler", "failed",
                          "the scheduler is down and no restart is configured: set SCHEDULER_SERVICE "
                          "(systemd) or SCHEDULER_RESTART_COMMAND, or restart it by hand", "scheduler",
                          needs_human=True)
    monitor.after_sweep(SweepReport(detected=[down], actions=[failed]))
    body = webhook.received[0]["message"]
    assert "Monitor: cannot fix this by itself" in body and "tries to restart" not in body
    assert "You: the scheduler is down and no restart is configured: set SCHEDULER_SERVICE" in body


def test_since_restarts_when_the_cause_changes(rig: Any, clock: Any, x_api: Any, webhook: Any) -> None:
    monitor = rig(twitter_api, alert_repeat_hours=1)
    x_api.script(ME, *[Reply(503, BODY_503)] * 2, *[Reply(401, BODY_401)] * 2)
    for _ in range(4):                     # 07:00, 07:30 503; 08:00, 08:30 401
        monitor.run_health_round("manual")
        clock.advance(minutes=30)
    assert webhook.titles() == ["CRITICAL mon: twitter_api check failing",
                                "CRITICAL mon: still: twitter_api check"]
    first, reminder = (m["message"] for m in webhook.received)
    assert "Class: server_error · since 07:00 UTC" in first
    assert "Class: auth · since 08:00 UTC" in reminder  # not "since" the earlier 503


def test_a_single_log_line_of_a_class_that_needs_a_person_alerts_and_resolves_on_quiet(
        rig: Any, clock: Any, webhook: Any) -> None:
    monitor = rig()
    line = Detection("log", "auth", "1 line(s) like: 401 Unauthorized", "logs/pipeline.log")
    monitor.after_sweep(SweepReport(detected=[line]))
    assert webhook.titles() == ["CRITICAL mon: auth in logs/pipeline.log failing"]  # at once
    for _ in range(3):                     # the pipeline is merely quiet: no evidence yet
        clock.advance(minutes=30)
        monitor.after_sweep(SweepReport())
    assert len(webhook.received) == 1
    for _ in range(2):                     # two hours without such a line, then two passes
        clock.advance(minutes=30)
        monitor.after_sweep(SweepReport())
    assert webhook.titles()[1] == "RESOLVED mon: auth in logs/pipeline.log (after 2h 30m)"
    assert "no such line in the log for 2h" in webhook.received[1]["message"]


def test_a_warning_class_log_line_waits_for_a_second_sweep(rig: Any, clock: Any, webhook: Any) -> None:
    monitor = rig()
    monitor.after_sweep(SweepReport(detected=[Detection("log", "server_error", "503", "pipeline.log")]))
    assert webhook.received == []


def test_the_pre_posting_verdict_names_what_is_silenced(rig: Any, clock: Any, webhook: Any) -> None:
    from daemon.slot_watch import SlotWatch

    monitor = rig(disk_space, disk_warn_free_percent=100, disk_crit_free_percent=100,
                  posting_times=(time(8, 0),))
    set_silence(monitor.ctx, "disk_space", clock() + timedelta(hours=2))
    watch = SlotWatch(monitor.ctx, monitor.run_health_round, monitor.notifications.notify)
    watch.tick(clock())  # 07:00 UTC: the pre-posting round of the 08:00 slot
    monitor.notifications.flush()
    [verdict] = [m for m in webhook.received if "for the 08:00 UTC post" in m["title"]]
    assert verdict["title"].startswith("WARNING mon: DEGRADED")  # a silence holds alerts, not the truth
    assert "Silenced (alerts held back, still checked): disk_space until 09:00 UTC" in verdict["message"]
    assert not any("disk_space check failing" in t for t in webhook.titles())  # the silence holds it
