"""The global action budget: past ACTION_BUDGET_PER_HOUR automatic actions the monitor enters safe
mode — one critical alert, no further fixes or post retries, checks go on — until `resume`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from autonomiq_ledger.posting import get_post
from autonomous_monitor import AutonomousMonitor
from tests.conftest import run_cli
from tests.support.ledger import failed_row
from tests.support.notify_receivers import running_webhook
from tests.support.xapi_double import BODY_503, TWEETS, Reply
from utils.config import load_settings

webhook = pytest.fixture(running_webhook, name="webhook")


def _monitor(env: dict[str, str], clock: Any) -> AutonomousMonitor:
    return AutonomousMonitor.from_settings(load_settings(env), clock=clock)


def _safe_mode_alerts(webhook: Any) -> list[str]:
    return [title for title in webhook.titles() if "safe mode" in title.lower()]


@pytest.mark.slow
def test_eleven_actions_in_an_hour_enter_safe_mode_once_and_resume_leaves_it(env, clock, x_api, webhook):
    environ = {**env, "NOTIFY_URLS": webhook.url, "TWITTER_API_TIER": "basic"}
    monitor = _monitor(environ, clock)
    for n in range(11):
        failed_row(monitor.ctx, x_api, Reply(503, BODY_503), f"post number {n}")
    report = monitor.run_sweep()  # scheduling eleven retries is bookkeeping: it spends nothing
    assert [a.outcome for a in report.actions] == ["retry_scheduled"] * 11
    assert not [d for d in report.detected if d.source == "monitor"]

    clock.advance(minutes=5)  # every retry falls due; X still answers 503
    x_api.script(TWEETS, *[Reply(503, BODY_503)] * 11)
    posts_before = x_api.calls[TWEETS]
    report = monitor.run_sweep()  # ten posts are sent again; the eleventh would exceed the budget
    sent = [a for a in report.actions if a.routine == "retry_due_post"]
    assert [a.outcome for a in sent] == ["retried"] * 10 + ["safe_mode"]
    [entered] = [a for a in report.actions if a.outcome == "safe_mode" and a.needs_human]
    assert "entered safe mode" in entered.detail and "ACTION_BUDGET_PER_HOUR=10" in entered.detail
    assert x_api.calls[TWEETS] == posts_before + 10
    assert [d.failure_class for d in report.detected if d.source == "monitor"] == ["safe_mode"]
    assert get_post(monitor.ctx.engine, sent[-1].post_id)["status"] == "retry_scheduled"  # left alone
    posts_before = x_api.calls[TWEETS]

    for _ in range(3):  # the retries fall due, but nothing runs: one alert, no post sent
        clock.advance(minutes=30)
        report = monitor.run_sweep()
        assert {a.outcome for a in report.actions} <= {"safe_mode", "retry_scheduled"}
        monitor.notifications.flush()
    monitor.notifications.flush()
    assert x_api.calls[TWEETS] == posts_before
    assert len(_safe_mode_alerts(webhook)) == 1
    assert _safe_mode_alerts(webhook)[0].upper().startswith("CRITICAL")
    [alert] = [m for m in webhook.received if m["title"] == _safe_mode_alerts(webhook)[0]]
    assert "ACTION_BUDGET_PER_HOUR=10" in alert["message"] and "resume" in alert["message"]
    monitor.close()

    status = run_cli(["status", "--json"], {**environ, "NOTIFY_URLS": ""})
    safe_mode = json.loads(status.stdout)["safe_mode"]  # it survived a restart: a new process sees it
    assert safe_mode["active"] is True and "ACTION_BUDGET_PER_HOUR=10" in safe_mode["reason"]
    assert safe_mode["since"].startswith("2026-11-28T07:05")
    assert "SAFE MODE since" in run_cli(["status"], {**environ, "NOTIFY_URLS": ""}).stdout

    resumed = run_cli(["resume"], {**environ, "NOTIFY_URLS": ""})
    assert resumed.returncode == 0 and "left safe mode" in resumed.stdout
    assert json.loads(run_cli(["status", "--json"], environ).stdout)["safe_mode"] == {
        "active": False, "since": None, "reason": None}
    again = run_cli(["resume"], {**environ, "NOTIFY_URLS": ""})
    assert again.returncode == 0 and "not in safe mode" in again.stdout

    monitor = _monitor(environ, clock)
    clock.advance(minutes=30)
    report = monitor.run_sweep()  # the budget counts from the resume: retries run again
    assert "posted" in [a.outcome for a in report.actions]
    assert x_api.calls[TWEETS] > posts_before
    for _ in range(2):  # RESOLVE_AFTER_SUCCESSES sweeps without it close the incident
        clock.advance(minutes=30)
        monitor.run_sweep()
    monitor.notifications.flush()
    resolved = [t for t in webhook.titles() if t.upper().startswith("RESOLVED") and "safe mode" in t]
    assert resolved, webhook.titles()
    monitor.close()


@pytest.mark.slow
def test_blocked_and_dry_run_actions_do_not_spend_the_budget(env, clock, x_api):
    monitor = _monitor({**env, "DRY_RUN": "true", "ACTION_BUDGET_PER_HOUR": "2"}, clock)
    for n in range(5):
        failed_row(monitor.ctx, x_api, Reply(503, BODY_503), f"dry {n}")
    report = monitor.run_sweep()
    assert [a.outcome for a in report.actions] == ["dry_run"] * 5
    assert not [d for d in report.detected if d.source == "monitor"]  # not in safe mode
    monitor.close()
