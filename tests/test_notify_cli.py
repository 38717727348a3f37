"""`notify-test`, `silence` and cron-style `check` runs, through the real command line."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import assert_no_secret, run_cli
from tests.support.notify_receivers import SMTP_PASSWORD, free_port, running_smtp, running_webhook

webhook = pytest.fixture(running_webhook, name="webhook")
smtp = pytest.fixture(running_smtp, name="smtp")


@pytest.mark.slow
def test_notify_test_reports_each_channel_and_fails_when_one_is_down(
        env: dict[str, str], webhook: Any, smtp: Any) -> None:
    dead = f"json://127.0.0.1:{free_port()}/hook"
    proc = run_cli(["notify-test"], {**env, "NOTIFY_URLS": f"{webhook.url} {smtp.url},{dead}",
                                      "MONITOR_NAME": "mon"})
    assert proc.returncode == 1, proc.stderr
    lines = proc.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["delivered", "delivered", "delivered", "FAILED"]
    assert lines[2].startswith("delivered  mailto://monitor:***@127.0.0.1:")  # the password masked
    assert "Connection" in lines[3]
    assert webhook.titles() == ["INFO mon: test notification"]
    assert smtp.subjects() == ["INFO mon: test notification"]
    assert SMTP_PASSWORD not in proc.stdout + proc.stderr
    assert_no_secret(proc.stdout, proc.stderr)


@pytest.mark.slow
def test_notify_test_exits_zero_when_every_channel_delivers(env: dict[str, str],
                                                           webhook: Any) -> None:
    proc = run_cli(["notify-test"], {**env, "NOTIFY_URLS": webhook.url})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(webhook.received) == 1


@pytest.mark.slow
def test_notify_test_without_urls_names_the_log_only(env: dict[str, str]) -> None:
    proc = run_cli(["notify-test"], env)
    assert proc.returncode == 0
    assert "NOTIFY_URLS is empty" in proc.stdout


@pytest.mark.slow
def test_silence_set_list_clear_and_reject(env: dict[str, str]) -> None:
    proc = run_cli(["silence", "disk_space", "--for", "2h"], env)
    assert proc.returncode == 0 and "disk_space silenced until" in proc.stdout
    listed = run_cli(["silence", "--list"], env)
    assert listed.returncode == 0 and listed.stdout.startswith("disk_space")
    assert run_cli(["silence", "nonsense", "--for", "1h"], env).returncode == 2
    assert run_cli(["silence", "disk_space", "--for", "soon"], env).returncode == 2
    cleared = run_cli(["silence", "disk_space", "--clear"], env)
    assert cleared.returncode == 0 and "cleared" in cleared.stdout
    assert "no active silences" in run_cli(["silence", "--list"], env).stdout


@pytest.mark.slow
def test_cron_checks_deliver_before_exit_and_alert_once(env: dict[str, str], webhook: Any) -> None:
    environ = {**env, "NOTIFY_URLS": webhook.url, "MONITOR_NAME": "mon", "DISK_WARN_FREE_PERCENT": "100",
               "DISK_CRIT_FREE_PERCENT": "100"}
    for _ in range(3):
        run_cli(["check"], environ)
    assert webhook.titles() == ["CRITICAL mon: disk_space check failing"]
    run_cli(["silence", "disk_space", "--for", "1h"], environ)
    run_cli(["check"], environ)
    assert len(webhook.received) == 1
