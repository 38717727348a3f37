"""The sd_notify datagram protocol against a real Unix datagram socket the test binds."""

from __future__ import annotations

import os
import socket
import uuid
from pathlib import Path

from daemon.sdnotify import notify, status_line, watchdog_interval


def _receiver(address: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(2)
    return sock


def test_nothing_is_sent_without_notify_socket() -> None:
    assert notify("READY=1", {}) is False
    assert notify("READY=1", {"NOTIFY_SOCKET": "vsock:2:1234"}) is False


def test_a_path_socket_receives_the_datagram(tmp_path: Path) -> None:
    path = str(tmp_path / "notify.sock")
    with _receiver(path) as sock:
        assert notify("READY=1\nSTATUS=running", {"NOTIFY_SOCKET": path}) is True
        assert sock.recv(4096) == b"READY=1\nSTATUS=running"


def test_an_abstract_socket_receives_the_datagram() -> None:
    name = f"autonomiq-test-{uuid.uuid4().hex}"
    with _receiver("\0" + name) as sock:
        assert notify("WATCHDOG=1", {"NOTIFY_SOCKET": "@" + name}) is True
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_an_unreachable_socket_is_not_an_error(tmp_path: Path) -> None:
    assert notify("READY=1", {"NOTIFY_SOCKET": str(tmp_path / "nobody-listens")}) is False


def test_status_is_one_redacted_line() -> None:
    line = status_line("sweep: ok\n2 problems\tfound")
    assert line == "STATUS=sweep: ok 2 problems found"
    assert len(status_line("x" * 1000)) <= len("STATUS=") + 200


def test_watchdog_interval_is_half_of_watchdog_usec_for_this_process_only() -> None:
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({"WATCHDOG_USEC": "400000", "WATCHDOG_PID": str(os.getpid())}) == 0.2
    assert watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_interval({}) is None
