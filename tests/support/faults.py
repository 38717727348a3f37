"""Parts the fault-injection suite breaks on purpose: a PostgreSQL server the test owns, an X API
double that can go down and come back on the same port, a tmpfs mount, and the real daemon as a
child process.

Everything here is outside world (servers, mounts, processes); nothing of the monitor is faked.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tests.conftest import ROOT
from tests.support.loopback_web import free_port
from tests.support.xapi_double import XApiDouble, _Handler
from utils.db import actions, make_engine, posts


def wait_for(what: Callable[[], Any], timeout: float, why: str, every: float = 0.1) -> Any:
    """Poll `what` until it returns something true; fail the test after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {why}")


# --- PostgreSQL ------------------------------------------------------------------------------

class OwnedPostgres:
    """A throw-away PostgreSQL cluster (initdb + pg_ctl) on a free loopback port.

    initdb refuses to run as root, so as root the cluster belongs to the `postgres` user.
    Stopping or killing it harms nothing else on the machine.
    """

    def __init__(self) -> None:
        initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
        if not initdb or not pg_ctl:
            pytest.skip("initdb/pg_ctl not installed")
        self.pg_ctl = pg_ctl
        self.root = Path(tempfile.mkdtemp(prefix="am-fault-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            try:
                import pwd

                owner = pwd.getpwnam("postgres")
            except KeyError:
                pytest.skip("running as root and there is no `postgres` user for initdb")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self.as_user = ["runuser", "-u", "postgres", "--"]
        made = self._run([initdb, "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync",
                          "-E", "UTF8"], timeout=60)
        if made.returncode != 0:
            pytest.skip(f"initdb failed: {made.stderr.strip()[:300]}")

    @property
    def url(self) -> str:
        """The SQLAlchemy URL of the cluster's `postgres` database."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, argv: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*self.as_user, *argv], capture_output=True, text=True, timeout=timeout,
                              check=False, stdin=subprocess.DEVNULL)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off "
                   "-c max_connections=40 -c shared_buffers=16MB")
        started = self._run([self.pg_ctl, "-D", str(self.data), "-o", options, "-l",
                             str(self.root / "server.log"), "-w", "-t", "30", "start"], timeout=40)
        assert started.returncode == 0, started.stdout + started.stderr + self.server_log()

    def stop(self) -> None:
        """A clean, fast shutdown (sessions are disconnected)."""
        stopped = self._run([self.pg_ctl, "-D", str(self.data), "-m", "fast", "-w", "stop"])
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr

    def postmaster_pid(self) -> int:
        """The server's main process id (first line of postmaster.pid)."""
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def kill9(self) -> None:
        """SIGKILL the server and every backend, as a crash or the OOM killer would."""
        import psutil

        main = psutil.Process(self.postmaster_pid())
        family = [main, *main.children(recursive=True)]
        for proc in family:
            with contextlib.suppress(psutil.Error):
                proc.send_signal(signal.SIGKILL)
        psutil.wait_procs(family, timeout=10)

    def server_log(self) -> str:
        """What the server wrote to its log."""
        with contextlib.suppress(OSError):
            return (self.root / "server.log").read_text(errors="replace")
        return ""

    def destroy(self) -> None:
        """Stop the server if it runs and delete the cluster."""
        self._run([self.pg_ctl, "-D", str(self.data), "-m", "immediate", "-w", "stop"])
        shutil.rmtree(self.root, ignore_errors=True)


# --- the X API double, switchable ----------------------------------------------------------------

class SwitchableXApi(XApiDouble):
    """The X API double that can stop listening (`down`: connection refused) and come back
    (`up`) on the same port, so the monitor's TWITTER_API_BASE_URL stays valid."""

    def down(self) -> None:
        """Close the listening socket: every new request is refused."""
        if self._server is not None:
            self._port = self._server.server_address[1]
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def up(self) -> None:
        """Listen again on the port used before."""
        handler = type("Handler", (_Handler,), {"double": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()


# --- an outside watcher -------------------------------------------------------------------------


# --- tmpfs -------------------------------------------------------------------------------------

@contextlib.contextmanager
def tmpfs(size: str) -> Iterator[Path]:
    """A fresh tmpfs of `size` (e.g. `8m`) mounted on a temporary folder; skips if not allowed."""
    where = Path(tempfile.mkdtemp(prefix="am-fault-disk-"))
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(where)],
                             capture_output=True, text=True, timeout=20, check=False)
    if mounted.returncode != 0:
        where.rmdir()
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip() or mounted.returncode}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, timeout=20, check=False)
        with contextlib.suppress(OSError):
            where.rmdir()


def fill(folder: Path, name: str = "filler.bin", chunk: int = 64 * 1024) -> int:
    """Write `folder/name` until the filesystem is full; returns the bytes written."""
    written = 0
    block = b"\0" * chunk
    with (folder / name).open("wb") as out:
        while True:
            try:
                out.write(block)
                out.flush()
            except OSError:
                break
            written += chunk
    return written


# --- the daemon ----------------------------------------------------------------------------------

class DaemonProcess:
    """`python autonomous_monitor.py run` as a child process, stderr kept in a file."""

    def __init__(self, environ: dict[str, str], folder: Path, name: str = "daemon") -> None:
        self.stderr_path = folder / f"{name}.stderr"
        full_env = {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"),
                    "PYTHONDONTWRITEBYTECODE": "1", **environ}
        with self.stderr_path.open("wb") as err:
            self.proc = subprocess.Popen([sys.executable, str(ROOT / "autonomous_monitor.py"), "run"],
                                         env=full_env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=err)

    @property
    def log(self) -> str:
        """Everything the daemon logged so far (stderr carries every INFO line)."""
        return self.stderr_path.read_text(errors="replace")

    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc.poll() is None

    def count(self, text: str) -> int:
        """How many lines of the log contain `text`."""
        return sum(text in line for line in self.log.splitlines())

    def stop(self, timeout: float = 15) -> int:
        """SIGTERM and wait; the exit code."""
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def kill9(self) -> None:
        """SIGKILL and reap."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def cleanup(self) -> None:
        """Make sure the process is gone."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


# --- the ledger as the test reads it ---------------------------------------------------------------

def ledger(url: str) -> tuple[list[dict[str, Any]], list[tuple[str, str, str]]]:
    """(every posts row, every action as (routine, target, outcome)) in id order, read directly."""
    engine = make_engine(url, connect_timeout=5)
    try:
        with engine.connect() as conn:
            rows = [dict(r._mapping) for r in conn.execute(select(posts).order_by(posts.c.id))]
            done = [(r.routine, r.target, r.outcome) for r in
                    conn.execute(select(actions).order_by(actions.c.id))]
    finally:
        engine.dispose()
    return rows, done
