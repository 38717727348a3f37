"""Root cause first: while a check fails, the checks that depend on it are still run and recorded
but folded into its one incident, their alerts suppressed and their fixers not run; when it passes
again they are re-checked at once."""

from __future__ import annotations

from typing import Any

import pytest

from autonomous_monitor import AutonomousMonitor
from checks.base import CheckResult, Status
from checks.dependencies import dependencies, fold
from tests.support.faults import free_port
from tests.support.notify_receivers import running_webhook
from utils.config import load_settings

webhook = pytest.fixture(running_webhook, name="webhook")


@pytest.mark.slow
def test_the_internet_down_gives_one_incident_one_alert_and_no_x_api_fixer(env, clock, webhook, x_api):
    refused = f"http://127.0.0.1:{free_port()}"
    offline = {**env, "CONNECTIVITY_URLS": refused, "TWITTER_API_BASE_URL": refused,
               "NOTIFY_URLS": webhook.url}
    monitor = AutonomousMonitor.from_settings(load_settings(offline), clock=clock)
    for _ in range(3):  # ALERT_AFTER_FAILURES=2 rounds, then one more
        results = {r.name: r for r in monitor.run_health_round("pre_posting")}
        assert results["internet"].status is Status.CRITICAL
        assert results["twitter_api"].status is Status.CRITICAL  # still run and recorded
        report = monitor.run_sweep()
        assert not [a for a in report.actions if "twitter_api" in a.target or a.reason == "network"]
        clock.advance(minutes=30)
    monitor.notifications.flush()
    alerts = [t for t in webhook.titles() if "check failing" in t]  # not the pre-posting reports
    assert len(alerts) == 1 and "internet" in alerts[0], webhook.titles()
    [alert] = [item for item in webhook.received if item["title"] == alerts[0]]
    assert "X API: not checked separately while the internet is down" in alert["message"]
    assert not any("twitter_api" in t for t in webhook.titles())

    # The internet comes back: only `internet` runs, and twitter_api is re-checked at once with it.
    monitor.close()
    online = {**offline, "CONNECTIVITY_URLS": env["CONNECTIVITY_URLS"],
              "TWITTER_API_BASE_URL": x_api.base_url}
    monitor = AutonomousMonitor.from_settings(load_settings(online), clock=clock)
    results = {r.name: r for r in monitor.run_health_round("manual", names=["internet"])}
    assert results["internet"].status is Status.OK
    assert results["twitter_api"].status is Status.OK and x_api.calls["GET /2/users/me"] >= 1
    monitor.close()


def _result(name: str, status: Status) -> CheckResult:
    from datetime import UTC, datetime

    return CheckResult(name, status, f"{name} says {status.value}", 1.0, {}, datetime.now(UTC), "network")


@pytest.mark.parametrize(("database_url", "parent"), [
    ("sqlite:///{tmp}/monitor.db", "disk_space"),
    ("postgresql://monitor@db.example.internal/ledger", "internet"),
    ("postgresql://monitor@127.0.0.1/ledger", None),
])
def test_the_database_depends_on_the_disk_or_the_network_by_where_it_lives(env, tmp_path, database_url,
                                                                           parent):
    settings = load_settings({**env, "DATABASE_URL": database_url.format(tmp=tmp_path)})
    assert {d.parent for d in dependencies(settings) if d.child == "database"} == ({parent} - {None})


def test_a_child_is_folded_only_while_its_parent_is_critical(env):
    settings = load_settings(env)
    down = [_result("internet", Status.CRITICAL), _result("twitter_api", Status.CRITICAL)]
    shown, folded = fold(down, settings)
    assert folded == {"twitter_api": "internet"}
    assert [r.status for r in shown] == [Status.CRITICAL, Status.UNKNOWN]
    assert shown[1].failure_class is None and "while internet fails" in shown[1].detail
    up: Any = [_result("internet", Status.OK), _result("twitter_api", Status.CRITICAL)]
    shown, folded = fold(up, settings)
    assert folded == {} and [r.status for r in shown] == [Status.OK, Status.CRITICAL]
