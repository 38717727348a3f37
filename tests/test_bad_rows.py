"""A ledger row the sweep cannot read is skipped, and a person is told: one warning alert naming
the row, the column and the value, resolved once no sweep meets such a row."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from autonomous_monitor import AutonomousMonitor
from tests.support.notify_receivers import running_webhook
from utils.config import load_settings

webhook = pytest.fixture(running_webhook, name="webhook")


@pytest.mark.slow
def test_a_row_with_an_unreadable_time_is_alerted_once_and_resolves_when_fixed(env, clock, webhook, caplog):
    environ = {**env, "NOTIFY_URLS": webhook.url, "MONITOR_NAME": "mon"}
    monitor = AutonomousMonitor.from_settings(load_settings(environ), clock=clock)
    with monitor.ctx.engine.begin() as conn:  # the pipeline's own SQL, with a typo for a time
        conn.execute(text("INSERT INTO posts (text, scheduled_at) VALUES ('hi', 'next tuesday')"))
    for _ in range(3):
        report = monitor.run_sweep()
        assert [d.failure_class for d in report.detected] == ["bad_row"]
        clock.advance(minutes=30)
    monitor.notifications.flush()
    [alert] = [m for m in webhook.received if m["title"].startswith("WARNING")]
    assert alert["title"] == "WARNING mon: unreadable rows in the posts ledger failing"
    assert "post 1: scheduled_at = 'next tuesday' is not a timestamp" in alert["message"]
    assert "fix or delete the rows" in alert["message"]
    logged = [r for r in caplog.records if r.name == "autonomiq" and "next tuesday" in r.getMessage()]
    assert len(logged) == 1  # the daemon's log names it once, not every sweep

    with monitor.ctx.engine.begin() as conn:
        conn.execute(text("UPDATE posts SET scheduled_at = '2026-11-28 09:00:00' WHERE id = 1"))
    for _ in range(2):
        report = monitor.run_sweep()
        assert report.detected == [] and report.errors == [], report
        clock.advance(minutes=30)
    monitor.notifications.flush()
    assert any(t.startswith("RESOLVED") for t in webhook.titles()), webhook.titles()
    monitor.close()
