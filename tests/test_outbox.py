"""The outbox and the channels: retries with backoff, outages, expiry, channel health, privacy."""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

import pytest
from sqlalchemy import select

from notify.channel_health import HEALTH_KEY
from notify.channels import Sender, channel_id, parse_channels, with_timeouts
from notify.messages import BODY_MAX, TITLE_MAX, make
from notify.service import NotificationService
from tests.support.notify_receivers import free_port, running_webhook
from utils.db import outbox
from utils.state import get_state

webhook = pytest.fixture(running_webhook, name="webhook")


@pytest.fixture
def service(env: dict[str, str], webhook: Any, make_ctx: Any) -> NotificationService:
    ctx = make_ctx({**env, "NOTIFY_URLS": webhook.url, "NOTIFY_RETRY_MAX_SECONDS": "8",
                    "MONITOR_NAME": "mon"})
    return NotificationService(ctx)


def rows(service: NotificationService) -> list[Any]:
    with service.ctx.engine.connect() as conn:
        return conn.execute(select(outbox).order_by(outbox.c.id)).fetchall()


def test_receiver_down_then_back_gets_every_message_once_in_order(
        service: NotificationService, clock: Any, webhook: Any) -> None:
    webhook.down()
    for n in range(3):
        service.notify(make(f"alert {n}", ["body"], "failure"))  # flushed at once: refused
    assert [r.attempts for r in rows(service)] == [1, 0, 0]  # FIFO: the rest wait behind the head
    assert service.outbox.flush(5) == 0  # nothing is due before the first retry delay
    delays = []
    for _ in range(3):
        before = rows(service)[0].next_attempt_at
        delays.append((before - clock()).total_seconds())
        clock.advance(seconds=delays[-1])
        service.outbox.deliver_due()
    assert delays == [5, 8, 8]  # first retry after 5 s, doubling, capped at NOTIFY_RETRY_MAX_SECONDS
    webhook.up()
    clock.advance(seconds=8)
    assert service.outbox.deliver_due() == 3
    assert webhook.titles() == ["CRITICAL mon: alert 0", "CRITICAL mon: alert 1", "CRITICAL mon: alert 2"]
    assert all(r.delivered_at is not None for r in rows(service))
    clock.advance(seconds=60)
    assert service.outbox.deliver_due() == 0 and len(webhook.received) == 3


def test_every_channel_failing_for_an_hour_is_logged_and_stored(
        service: NotificationService, clock: Any, webhook: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    webhook.down()
    start = clock()
    service.notify(make("alert", ["body"], "failure"))
    with caplog.at_level(logging.ERROR, logger="notify.channel_health"):
        for _ in range(8):
            clock.advance(minutes=9)
            service.outbox.deliver_due()
    alarms = [r for r in caplog.records if "every notification channel" in r.getMessage()]
    assert len(alarms) == 1 and alarms[0].levelno == logging.ERROR  # once, after the first hour
    health = get_state(service.ctx.engine, HEALTH_KEY)
    assert health["all_failing_since"] == start.isoformat()
    (entry,) = health["channels"].values()
    assert "127.0.0.1" in entry["name"] and "Connection" in entry["error"]
    webhook.up()
    clock.advance(minutes=9)
    service.outbox.deliver_due()
    health = get_state(service.ctx.engine, HEALTH_KEY)
    (entry,) = health["channels"].values()
    assert health["all_failing_since"] is None and entry["failing_since"] is None
    assert entry["last_ok"] == clock().isoformat() and entry["last_error"]


def test_message_undelivered_for_a_day_is_dropped_with_a_log_line(
        service: NotificationService, clock: Any, webhook: Any,
        caplog: pytest.LogCaptureFixture) -> None:
    webhook.down()
    service.notify(make("old alert", ["body"], "failure"))
    clock.advance(hours=25)
    webhook.up()
    with caplog.at_level(logging.ERROR, logger="notify.outbox"):
        service.outbox.deliver_due()
    assert rows(service) == [] and webhook.received == []
    assert any("dropped notification 'CRITICAL mon: old alert'" in r.getMessage() for r in caplog.records)


@pytest.mark.slow
def test_background_delivery_never_blocks_the_caller(env: dict[str, str], make_ctx: Any) -> None:
    """A receiver that accepts and never answers: the caller returns at once, the send is bounded."""
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen()
    url = f"json://127.0.0.1:{hole.getsockname()[1]}/hook?rto=1"
    service = NotificationService(make_ctx({**env, "NOTIFY_URLS": url}))
    service.start()
    try:
        started = time.monotonic()
        service.notify(make("alert", ["body"], "failure"))
        assert time.monotonic() - started < 0.5
        deadline = time.monotonic() + 10
        while not rows(service)[0].attempts and time.monotonic() < deadline:
            time.sleep(0.05)
        assert rows(service)[0].attempts == 1 and "timed out" in (rows(service)[0].last_error or "").lower()
    finally:
        service.stop(5)
        hole.close()
    assert not service.outbox.running


def test_background_thread_delivers_to_the_receiver(service: NotificationService,
                                                    webhook: Any) -> None:
    service.start()
    try:
        service.notify(make("hello", ["from the thread"], "info"))
        deadline = time.monotonic() + 10
        while not webhook.received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        service.stop(5)
    assert webhook.received[0]["title"] == "INFO mon: hello" and webhook.received[0]["type"] == "info"
    assert not service.outbox.running


def test_channel_ids_and_names_never_show_url_secrets() -> None:
    url = "tgram://123456789:AAHsecretTOKENabcdefghij/987654321"
    (channel,) = parse_channels([url, url])
    assert channel.id == channel_id(url) and channel.id.startswith("tgram-")
    assert "AAHsecret" not in channel.id and "AAHsecret" not in repr(channel)
    name = Sender().describe(channel)
    assert name.startswith("tgram://") and "AAHsecret" not in name


def test_short_timeouts_are_added_unless_the_url_sets_its_own() -> None:
    assert with_timeouts("ntfy://ntfy.sh/topic") == "ntfy://ntfy.sh/topic?cto=5&rto=10"
    assert with_timeouts("json://h/x?rto=30") == "json://h/x?rto=30&cto=5"
    assert with_timeouts("json://h/x?cto=1&rto=2") == "json://h/x?cto=1&rto=2"


def test_invalid_url_fails_per_channel_with_a_reason() -> None:
    (channel,) = parse_channels(["nosuchservice://whatever"])
    error = Sender().send(channel, "t", "b", "info")
    assert error and "not a valid Apprise URL" in error


def test_messages_fit_a_phone_screen() -> None:
    message = make("x" * 200, ["y" * 1000], "warning")
    assert len(message.title) <= TITLE_MAX and len(message.body) <= BODY_MAX


def test_refused_port_is_a_failed_delivery() -> None:
    (channel,) = parse_channels([f"json://127.0.0.1:{free_port()}/hook"])
    assert "Connection" in (Sender().send(channel, "t", "b", "failure") or "")


def test_a_reload_that_fixes_a_channel_url_delivers_what_waited_for_the_old_one(
        env: dict[str, str], make_ctx: Any, clock: Any, webhook: Any) -> None:
    typo = f"json://127.0.0.1:{free_port()}/hook"  # nothing listens: the person mistyped the port
    ctx = make_ctx({**env, "NOTIFY_URLS": typo, "MONITOR_NAME": "mon"})
    service = NotificationService(ctx)
    for n in range(2):
        service.notify(make(f"alert {n}", ["body"], "failure"))
    assert webhook.received == []
    ctx.settings = ctx.settings.with_overrides(notify_urls=(webhook.url,))  # SIGHUP with the fix
    assert service.rebuild_channels(background=False)
    clock.advance(seconds=1)
    assert service.outbox.deliver_due() == 2
    assert webhook.titles() == ["CRITICAL mon: alert 0", "CRITICAL mon: alert 1"]
    assert {r.channel for r in rows(service)} == {channel_id(webhook.url)}  # none left for the typo
