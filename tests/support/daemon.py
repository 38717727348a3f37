"""The real daemon as a child process, and systemd's notify socket, for tests that run it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from daemon.status_report import DAEMON_STATE_KEY
from tests.conftest import ROOT
from utils.config import load_settings
from utils.context import MonitorContext
from utils.state import get_state


class Daemon:
    """`python autonomous_monitor.py run` with stderr captured to a file."""

    def __init__(self, env: dict[str, str], tmp_path: Path, name: str = "daemon",
                 args: tuple[str, ...] = ("run",)) -> None:
        self.stderr_path = tmp_path / f"{name}.stderr"
        full_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"),
                    "PYTHONDONTWRITEBYTECODE": "1", **env}
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, str(ROOT / "autonomous_monitor.py"), *args],
                                         env=full_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)
        self.engine = MonitorContext(load_settings(env)).engine

    @property
    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def jobs(self) -> dict[str, Any]:
        state = get_state(self.engine, DAEMON_STATE_KEY) or {}
        return state.get("jobs", {}) if state.get("pid") == self.proc.pid else {}

    def sweeps(self) -> int:
        return int(self.jobs().get("sweep", {}).get("succeeded", 0))

    def stop(self, signum: int = signal.SIGTERM, timeout: float = 10) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(signum)
        code = self.proc.wait(timeout)
        return code, time.monotonic() - started

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)
        self.engine.dispose()


@pytest.fixture
def daemons(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    started: list[Daemon] = []

    def start(env: dict[str, str], name: str = "daemon", args: tuple[str, ...] = ("run",)) -> Daemon:
        started.append(Daemon(env, tmp_path, name, args))
        return started[-1]

    yield start
    for daemon in started:
        daemon.kill()



@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A Unix datagram socket standing in for systemd's NOTIFY_SOCKET; collects the messages."""
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(0.2)
    received: list[str] = []
    stop = threading.Event()

    def collect() -> None:
        while not stop.is_set():
            try:
                received.append(sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:
                return

    thread = threading.Thread(target=collect, daemon=True)
    thread.start()
    yield path, received
    stop.set()
    thread.join(2)
    sock.close()
