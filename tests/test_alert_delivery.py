"""Alerts as the on-call person receives them: real JSON webhook, ntfy and SMTP receivers on
loopback, real checks, real sweeps against the X API double, time moved by the injected clock."""

from __future__ import annotations

import socket
import time
from datetime import timedelta
from email.message import Message as EmailMessage
from typing import Any

import pytest
from sqlalchemy import select

from autonomiq_ledger.posting import get_post, post, schedule_post
from autonomous_monitor import AutonomousMonitor
from checks import CHECKS, disk_space
from notify.messages import make
from notify.outbox import MAX_EXPONENT, retry_delay
from notify.service import NotificationService
from tests.support.notify_receivers import running_ntfy, running_smtp, running_webhook
from tests.support.xapi_double import BODY_503, ME, TWEETS, Reply
from utils.db import outbox
from utils.state import get_state

webhook = pytest.fixture(running_webhook, name="webhook")
smtp = pytest.fixture(running_smtp, name="smtp")
ntfy = pytest.fixture(running_ntfy, name="ntfy")
BODY_453 = {"errors": [{"code": 453, "message": "You currently have access to a subset of X API V2 "
                        "endpoints and limited v1.1 endpoints (e.g. media post, oauth) only."}]}


@pytest.fixture
def receivers(webhook: Any, ntfy: Any, smtp: Any) -> dict[str, Any]:
    return {"webhook": webhook, "ntfy": ntfy, "smtp": smtp}


@pytest.fixture
def build(env: dict[str, str], receivers: dict[str, Any], make_ctx: Any, clock: Any) -> Any:
    """A monitor named `name` with every check and fixer, talking to the three receivers."""
    urls = ",".join(r.url for r in receivers.values())

    def make_monitor(name: str = "bot-a", **overrides: Any) -> AutonomousMonitor:
        ctx = make_ctx({**env, "NOTIFY_URLS": urls, "MONITOR_NAME": name}, **overrides)
        monitor = AutonomousMonitor.from_settings(ctx.settings, clock=clock)
        monitor.ctx.close()
        monitor.ctx = ctx
        monitor.notifications = NotificationService(ctx)
        return monitor

    return make_monitor


def plain(message: EmailMessage) -> str:
    """The text/plain part of a received e-mail, decoded."""
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode()
    raise AssertionError("no text/plain part")


def disk(monitor: AutonomousMonitor, state: str) -> None:
    warn, crit = {"ok": (0, 0), "critical": (100, 100)}[state]
    monitor.ctx.settings = monitor.ctx.settings.with_overrides(disk_warn_free_percent=warn,
                                                               disk_crit_free_percent=crit)


def test_backoff_never_overflows() -> None:
    assert retry_delay(0, 60) == timedelta(seconds=5)
    assert retry_delay(44, 60) == timedelta(seconds=60)          # where `2 ** 44` days overflowed
    assert retry_delay(10**9, 86400) == timedelta(days=1)
    assert retry_delay(MAX_EXPONENT + 1, 10**9) == timedelta(seconds=5 * 2 ** MAX_EXPONENT)


@pytest.mark.slow
def test_receiver_down_past_the_overflow_point_gets_every_message_in_order_with_its_time(
        build: Any, clock: Any, webhook: Any, ntfy: Any) -> None:
    monitor = build()
    monitor.register_check(disk_space.NAME, CHECKS[disk_space.NAME])
    webhook.down()
    disk(monitor, "critical")
    for _ in range(2):                       # 07:00, 07:30: the alert is written at 07:30
        monitor.run_health_round("manual")
        clock.advance(minutes=30)
    disk(monitor, "ok")
    for _ in range(2):                       # 08:00, 08:01: the all-clear is written at 08:01
        monitor.run_health_round("manual")
        clock.advance(minutes=1)
    expected = ["CRITICAL bot-a: disk_space check failing",
                "RESOLVED bot-a: disk_space check (after 1h 1m)"]
    assert [m["title"] for m in ntfy.received] == expected  # not held up by the webhook
    for _ in range(50):                      # 50 minutes of refusals, one per minute
        clock.advance(minutes=1)
        monitor.notifications.outbox.deliver_due()
    with monitor.ctx.engine.connect() as conn:
        attempts = conn.execute(select(outbox.c.attempts).where(outbox.c.channel.like("json-%"))
                                .order_by(outbox.c.id)).scalars().all()
    assert attempts[0] > 44 and attempts[1] == 0  # past the old overflow; only the head is tried
    webhook.up()
    clock.advance(minutes=1)
    assert monitor.notifications.outbox.deliver_due() == 2   # at 08:53
    assert webhook.titles() == expected
    alert, resolved = webhook.received
    assert alert["timestamp"] == "2026-11-28T07:30:00+00:00"
    assert resolved["timestamp"] == "2026-11-28T08:01:00+00:00"
    assert alert["message"].startswith("Sent 1h 23m late: this happened at 07:30 UTC. Already over:")
    assert resolved["message"].startswith("Sent 52m late: this happened at 08:01 UTC.\n")
    assert "Already over" not in resolved["message"]


@pytest.mark.slow
def test_a_hung_channel_does_not_delay_another(env: dict[str, str], make_ctx: Any,
                                               webhook: Any) -> None:
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen()
    hung = f"json://127.0.0.1:{hole.getsockname()[1]}/hook?rto=3"
    service = NotificationService(make_ctx({**env, "NOTIFY_URLS": f"{hung},{webhook.url}"}))
    service.start()
    try:
        started = time.monotonic()
        for n in range(2):
            service.notify(make(f"alert {n}", ["body"], "failure"))
        while len(webhook.received) < 2 and time.monotonic() - started < 10:
            time.sleep(0.02)
        took = time.monotonic() - started
    finally:
        service.stop(5)
        hole.close()
    assert len(webhook.received) == 2 and took < 1.5  # not behind the hung one's 3 s read timeout


@pytest.mark.slow
def test_email_keeps_its_lines_and_angle_brackets_and_ntfy_gets_the_priority(
        env: dict[str, str], make_ctx: Any, smtp: Any, ntfy: Any) -> None:
    service = NotificationService(make_ctx({**env, "NOTIFY_URLS": f"{smtp.url},{ntfy.url}",
                                            "MONITOR_NAME": "bot-a"}))
    error = "NewConnectionError('<urllib3.connection.HTTPConnection object at 0x7f>: Failed')"
    service.notify(make("X API unreachable", ["first line", error, "last line"], "failure"))
    service.notify(make("back", ["fine"], "success"))
    text = plain(smtp.messages[0])
    assert text.splitlines()[:3] == ["first line", error, "last line"]
    assert smtp.messages[0]["Importance"] == "high" and smtp.messages[1]["Importance"] == "low"
    assert [(m["priority"], m["tags"]) for m in ntfy.received] == [("max", "rotating_light"),
                                                                   ("low", "white_check_mark")]
    assert ntfy.received[0]["message"].splitlines()[1] == error


def test_two_monitors_are_told_apart_and_name_the_x_account(build: Any, clock: Any,
                                                             webhook: Any) -> None:
    for name in ("bot-a", "bot-b"):
        monitor = build(name)
        monitor.run_health_round("manual")  # the twitter_api check learns the account
        monitor.notifications.notify(make("test", ["hello"], "warning"))
    assert webhook.titles() == ["WARNING bot-a: test", "WARNING bot-b: test"]
    assert [m["message"].splitlines()[-1] for m in webhook.received] == [
        "— bot-a · X account @autonomiq_bot", "— bot-b · X account @autonomiq_bot"]


def failed_post(monitor: AutonomousMonitor, x_api: Any, reply: Reply, text: str) -> int:
    post_id = schedule_post(monitor.ctx.engine, text, monitor.ctx.now(), now=monitor.ctx.now())
    x_api.script(TWEETS, reply)
    assert post(monitor.ctx, post_id).status == "failed"
    return post_id


@pytest.mark.slow
def test_a_recovered_post_is_announced_as_posted(build: Any, clock: Any, x_api: Any,
                                                 webhook: Any, smtp: Any) -> None:
    monitor = build(alert_after_failures=1, backoff_base_seconds=300)  # retry in 4–6 min
    text = "Our autumn release is out: faster sweeps, clearer alerts and a new status page for all"
    post_id = failed_post(monitor, x_api, Reply(503, BODY_503), text)
    monitor.run_sweep()
    assert get_post(monitor.ctx.engine, post_id)["status"] == "retry_scheduled"
    clock.advance(minutes=2)
    monitor.run_sweep()                       # waiting for its retry: no pass, no flip, no message
    flips = get_state(monitor.ctx.engine, "incident:flips:failure:server_error:post:1")
    assert flips["failing"] is True and len(flips["times"]) == 1
    clock.advance(minutes=10)
    monitor.run_sweep()                       # the retry goes out
    row = get_post(monitor.ctx.engine, post_id)
    assert row["status"] == "posted"
    assert webhook.titles() == ["WARNING bot-a: post 1 failing", "RESOLVED bot-a: post 1 posted"]
    alert, done = (m["message"] for m in webhook.received)
    assert alert.startswith(f"Post 1 “{text[:78]} …” for 07:00 UTC: retry_scheduled (1 attempt(s))")
    assert "Monitor: posts it again with backoff" in alert
    assert done.startswith(f"Posted: “{text[:78]} …” as tweet {row['tweet_id']}, 12m late, "
                           "after server_error")
    assert "\n" in plain(smtp.messages[1]).strip()


def test_a_453_is_given_up_with_the_right_remedy(build: Any, clock: Any, x_api: Any,
                                                 webhook: Any) -> None:
    monitor = build()
    failed_post(monitor, x_api, Reply(403, BODY_453), "Hello from the Free tier")
    monitor.run_sweep()
    assert webhook.titles() == ["CRITICAL bot-a: post 1 given up (permission)"]
    body = webhook.received[0]["message"]
    assert "Gave up after 1 attempt(s): " in body and "453" in body
    assert "to post it, the pipeline calls an endpoint its X access level does not include" in body
    assert "POST /2/tweets" in body and body.count("and reschedule it.") == 1
    assert "Read and Write" not in body and "keeps checking" not in body and "Reminder" not in body
    clock.advance(hours=7)
    monitor.run_sweep()
    assert len(webhook.received) == 1  # the post is given up: no reminder, no "resolved"


@pytest.mark.slow
def test_posts_failing_for_one_cause_in_one_sweep_are_one_message(build: Any, x_api: Any,
                                                                  webhook: Any) -> None:
    monitor = build()
    for n in range(3):
        failed_post(monitor, x_api, Reply(403, BODY_453), f"post number {n}")
    monitor.run_sweep()
    (title,) = webhook.titles()
    assert title == "CRITICAL bot-a: 3 posts failed: permission"
    body = webhook.received[0]["message"]
    assert all(f"Post {n + 1} “post number {n}”" in body for n in range(3))


@pytest.mark.slow
def test_an_x_api_incident_is_rechecked_on_its_own_schedule_until_x_is_back(
        build: Any, clock: Any, x_api: Any, webhook: Any) -> None:
    from daemon.service import RECHECK_EVERY_S, Daemon

    monitor = build()
    x_api.script(ME, *[Reply(503, BODY_503)] * 3)
    for _ in range(2):                          # two failing rounds (e.g. a pre-posting round)
        monitor.run_health_round("manual")
        clock.advance(minutes=1)
    daemon = Daemon(monitor, {})
    assert daemon.recheck_incidents().startswith("recheck round: 1 critical")  # X still down
    for _ in range(2):                          # X is back: two re-checks, not the next day
        clock.advance(seconds=RECHECK_EVERY_S)
        assert daemon.recheck_incidents() == "recheck round: 1 ok"
    assert daemon.recheck_incidents() == "no open incident to re-check"
    titles = [t for t in webhook.titles() if "twitter_api" in t]
    assert titles == ["CRITICAL bot-a: twitter_api check failing",
                      "RESOLVED bot-a: twitter_api check (after 32m)"]
    assert "Monitor: re-checks the X API about every 15 min" in webhook.received[0]["message"]


def test_a_markdown_channel_gets_the_plain_text_escaped(env: dict[str, str], make_ctx: Any,
                                                        ntfy: Any) -> None:
    service = NotificationService(make_ctx({**env, "NOTIFY_URLS": f"{ntfy.url}?format=markdown"}))
    service.notify(make("t", ["post_1 *failed* with <Response [403]>"], "warning"))
    (item,) = ntfy.received
    # Apprise escapes it (the closing `>` is escaped, so `<…>` cannot become an HTML tag)
    assert item["message"].splitlines()[0] == r"post\_1 \*failed\* with <Response \[403\]\>"
