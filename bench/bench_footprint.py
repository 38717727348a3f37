"""Benchmark 2: the daemon's footprint while idle with a short sweep interval.

The real daemon (`autonomous_monitor.py run`) runs as a child process against the loopback world
with SWEEP_INTERVAL=5s, NOTIFY_SOCKET pointing at a datagram socket this script owns. Measured:
time to `READY=1`, resident memory at READY, after the first sweep and after N sweeps (targets
≤ 60 MB, growth ≤ 2 MB after 100 sweeps), CPU seconds per sweep. Baselines from the same run:
a bare interpreter and an interpreter that only imports the monitor.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, BenchResult, bench_env, bench_main, loopback_web, x_double

MB = 2**20
RSS_TARGET_MB = 60.0
GROWTH_TARGET_MB = 2.0


class NotifySocket:
    """A datagram socket standing in for systemd's NOTIFY_SOCKET; keeps (monotonic time, message)."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._cond:
                self.messages.append((time.monotonic(), data.decode("utf-8", "replace")))
                self._cond.notify_all()

    def wait_for(self, test: Any, timeout: float) -> tuple[float, str] | None:
        """The first message for which `test(message)` holds, waiting up to `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for item in self.messages:
                    if test(item[1]):
                        return item
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def count(self, prefix: str) -> int:
        with self._cond:
            return sum(1 for _, message in self.messages if message.startswith(prefix))

    def close(self) -> None:
        self._stop.set()
        self.sock.close()


def _child_env(extra: dict[str, str]) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"), **extra}


def _python_rss(code: str) -> tuple[float, float]:
    """(seconds to run, resident MB at the end) of `python -c CODE` in a fresh process."""
    probe = code + "\nimport resource, psutil\nprint(psutil.Process().memory_info().rss)"
    started = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=_child_env({}), check=True,
                         capture_output=True, text=True, timeout=60).stdout
    return time.perf_counter() - started, int(out.split()[-1]) / MB


def _sample(proc: Any) -> dict[str, float]:
    info = proc.memory_full_info()
    cpu = proc.cpu_times()
    return {"rss_mb": info.rss / MB, "uss_mb": info.uss / MB, "cpu_s": cpu.user + cpu.system,
            "threads": proc.num_threads()}


def watch_sweeps(child: Any, proc: Any, notify: NotifySocket, sweeps: int, interval_s: float,
                 stderr_path: Path) -> list[dict[str, float]]:
    """One memory sample after each of `sweeps` sweeps the daemon reports (STATUS=sweep:…)."""
    samples: list[dict[str, float]] = []
    seen = 0
    sweep_started = time.monotonic()
    while seen < sweeps:
        if child.poll() is not None:
            raise RuntimeError("the daemon died:\n" + stderr_path.read_text()[-3000:])
        done = notify.count("STATUS=sweep:")
        if done > seen:
            seen = done
            elapsed = round(time.monotonic() - sweep_started, 2)
            samples.append({"sweep": seen, "t_s": elapsed, **_sample(proc)})
            if seen % 10 == 0 or seen == sweeps:
                print(f"  {seen}/{sweeps} sweeps, rss {samples[-1]['rss_mb']:.1f} MB", flush=True)
        time.sleep(min(0.2, interval_s / 10))
    return samples


def backlog_growth(result: BenchResult) -> None:
    """The bad day: a daemon sweeping a 100k-row backlog (50k failed, 50k due retries) against the
    double's free-tier cap; RSS growth from sweep 10 to the last (target ≤ 2 MB)."""
    import psutil

    from bench.bench_api_budget import load_backlog
    from utils.db import init_db, make_engine

    sweeps = 20 if result.quick else 100
    rows = 10_000 if result.quick else 100_000
    with tempfile.TemporaryDirectory(prefix="bench-backlog-") as tmp, loopback_web() as web, \
            x_double() as x_api:
        tmp_path = Path(tmp)
        notify = NotifySocket(tmp_path / "notify.sock")
        env = bench_env(tmp_path, x_api.base_url, web, SWEEP_INTERVAL="1s", NOTIFY_SOCKET=notify.path,
                        CHECK_TIMEOUT_SECONDS="5", ACTION_BUDGET_PER_HOUR="10000",
                        CIRCUIT_BREAKER_MAX_RUNS="1000")
        engine = make_engine(env["DATABASE_URL"])
        init_db(engine)
        load_backlog(engine, datetime.now(UTC), rows // 2, rows // 2)
        engine.dispose()
        stderr_path = tmp_path / "daemon.stderr"
        with stderr_path.open("wb") as err:
            child = subprocess.Popen([sys.executable, str(ROOT / "autonomous_monitor.py"), "run"],
                                     cwd=ROOT, env=_child_env(env), stdout=subprocess.DEVNULL, stderr=err)
        try:
            samples = watch_sweeps(child, psutil.Process(child.pid), notify, sweeps, 1.0, stderr_path)
        finally:
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(60)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait(10)
            notify.close()
        posts = x_api.calls["POST /2/tweets"]
    tenth, last = samples[9], samples[-1]
    growth = last["rss_mb"] - tenth["rss_mb"]
    result.add(f"backlog of {rows:,} rows: RSS growth, sweep 10 → {len(samples)}", round(growth, 2), "MB",
               round(tenth["rss_mb"], 1), "RSS after sweep 10", f"≤ {GROWTH_TARGET_MB:g} MB",
               growth <= GROWTH_TARGET_MB)
    result.add(f"backlog: RSS after sweep {len(samples)}", round(last["rss_mb"], 1), "MB")
    result.add(f"backlog: POST /2/tweets over {len(samples)} sweeps", posts, "calls", 17,
               "free tier per 24 h", "≤ 17", posts <= 17)
    result.details["backlog"] = {"rows": rows, "samples": [*samples[:: max(1, len(samples) // 20)], last]}


OPTIONAL = ("apprise", "psycopg", "pymysql", "prometheus_client", "dotenv", "yaml", "markdown")


def imported_packages(env: dict[str, str], tmp_path: Path) -> list[str]:
    """Top-level packages a daemon imports up to its second sweep (`python -X importtime`)."""
    notify = NotifySocket(tmp_path / "imports.sock")
    err_path = tmp_path / "importtime.stderr"
    with err_path.open("wb") as err:
        argv = [sys.executable, "-X", "importtime", str(ROOT / "autonomous_monitor.py"), "run"]
        extra = {**env, "SWEEP_INTERVAL": "1s", "NOTIFY_SOCKET": notify.path}
        child = subprocess.Popen(argv, cwd=ROOT, env=_child_env(extra), stdout=subprocess.DEVNULL, stderr=err)
    try:
        deadline = time.monotonic() + 30
        while notify.count("STATUS=sweep:") < 2 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(30)
        notify.close()
    found = set()
    for line in err_path.read_text(errors="replace").splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip().split(".")[0]
            if name and not name.startswith("_") and name != "imported package":
                found.add(name)
    return sorted(found)


def measure(result: BenchResult) -> None:
    import psutil

    sweeps = 10 if result.quick else 100
    interval = "1s" if result.quick else "5s"
    interval_s = float(interval[:-1])
    # Baselines: what Python itself and the monitor's imports cost, in processes like the daemon's.
    bare_s, bare_mb = _python_rss("pass")
    _, psutil_mb = _python_rss("import psutil")  # the probe itself imports psutil
    import_s, import_mb = _python_rss("import autonomous_monitor")
    with tempfile.TemporaryDirectory(prefix="bench-footprint-") as tmp, loopback_web() as web, \
            x_double() as x_api:
        tmp_path = Path(tmp)
        notify = NotifySocket(tmp_path / "notify.sock")
        env = bench_env(tmp_path, x_api.base_url, web, SWEEP_INTERVAL=interval, NOTIFY_SOCKET=notify.path,
                        CHECK_TIMEOUT_SECONDS="5")
        stderr_path = tmp_path / "daemon.stderr"
        started = time.monotonic()
        with stderr_path.open("wb") as err:
            child = subprocess.Popen([sys.executable, str(ROOT / "autonomous_monitor.py"), "run"],
                                     cwd=ROOT, env=_child_env(env), stdout=subprocess.DEVNULL, stderr=err)
        proc = psutil.Process(child.pid)
        samples: list[dict[str, float]] = []
        try:
            ready = notify.wait_for(lambda m: m.startswith("READY=1"), 60)
            if ready is None:
                raise RuntimeError("no READY=1 within 60s:\n" + stderr_path.read_text()[-3000:])
            startup_s = ready[0] - started
            at_ready = _sample(proc)
            if notify.wait_for(lambda m: m.startswith("STATUS=startup:"), 60) is None:
                raise RuntimeError("the start-up round did not finish")
            after_startup = _sample(proc)
            samples = watch_sweeps(child, proc, notify, sweeps, interval_s, stderr_path)
            outcomes = [m for _, m in notify.messages if m.startswith("STATUS=sweep:")]
            stop_started = time.monotonic()
            child.send_signal(signal.SIGTERM)
            code = child.wait(30)
            stop_s = time.monotonic() - stop_started
        finally:
            if child.poll() is None:
                child.kill()
                child.wait(10)
            notify.close()
        not_ok = [m for m in outcomes if not m.startswith("STATUS=sweep: ok")]
        packages = imported_packages(env, tmp_path)
    loaded_optional = [name for name in OPTIONAL if name in packages]
    first, last = samples[0], samples[-1]
    peak = max(s["rss_mb"] for s in samples)
    growth = last["rss_mb"] - first["rss_mb"]
    cpu_per_sweep = (last["cpu_s"] - first["cpu_s"]) / max(1, len(samples) - 1)
    result.add("start-up to READY=1", round(startup_s, 3), "s", round(bare_s, 3), "bare python -c pass")
    result.add("RSS at READY=1", round(at_ready["rss_mb"], 1), "MB", round(bare_mb, 1), "bare interpreter",
               f"≤ {RSS_TARGET_MB:g} MB", at_ready["rss_mb"] <= RSS_TARGET_MB)
    result.add("RSS after the start-up round", round(after_startup["rss_mb"], 1), "MB",
               round(import_mb, 1), "import autonomous_monitor", f"≤ {RSS_TARGET_MB:g} MB",
               after_startup["rss_mb"] <= RSS_TARGET_MB)
    result.add("RSS after sweep 1", round(first["rss_mb"], 1), "MB", target=f"≤ {RSS_TARGET_MB:g} MB",
               met=first["rss_mb"] <= RSS_TARGET_MB)
    result.add(f"RSS after sweep {len(samples)}", round(last["rss_mb"], 1), "MB", round(first["rss_mb"], 1),
               "after sweep 1", f"≤ {RSS_TARGET_MB:g} MB", last["rss_mb"] <= RSS_TARGET_MB)
    result.add(f"RSS peak over {len(samples)} sweeps", round(peak, 1), "MB", target=f"≤ {RSS_TARGET_MB:g} MB",
               met=peak <= RSS_TARGET_MB)
    result.add(f"RSS growth, sweep 1 → {len(samples)}", round(growth, 2), "MB",
               target=f"≤ {GROWTH_TARGET_MB:g} MB", met=growth <= GROWTH_TARGET_MB)
    result.add("RSS growth, READY=1 → last sweep", round(last["rss_mb"] - at_ready["rss_mb"], 2), "MB")
    result.add("CPU per sweep (user+system)", round(cpu_per_sweep, 4), "s")
    result.add("CPU share while idle-sweeping", round(cpu_per_sweep / interval_s * 100, 2), "%")
    result.add("stop on SIGTERM", round(stop_s, 2), "s")
    result.add("optional packages an idle daemon imports", len(loaded_optional), "", target="0 "
               f"({', '.join(OPTIONAL)})", met=not loaded_optional)
    result.details = {"sweeps": len(samples), "imported_packages": packages, "sweep_interval": interval,
                      "exit_code": code,
                      "sweeps_not_ok": not_ok[:5], "bare_python_mb": bare_mb, "psutil_probe_mb": psutil_mb,
                      "import_autonomous_monitor_mb": import_mb, "import_autonomous_monitor_s": import_s,
                      "at_ready": at_ready, "after_startup_round": after_startup,
                      "samples": [*samples[:: max(1, len(samples) // 20)], last]}
    result.notes.append(f"{len(samples)} sweeps at SWEEP_INTERVAL={interval}; exit code {code} after "
                        f"SIGTERM; {len(not_ok)} sweep(s) not ok; USS at the end {last['uss_mb']:.1f} MB; "
                        f"baselines measured with psutil imported ({psutil_mb - bare_mb:+.1f} MB of it)")


def measure_all(result: BenchResult) -> None:
    measure(result)
    backlog_growth(result)


if __name__ == "__main__":
    sys.exit(bench_main("footprint", "2. Daemon footprint (idle, then a bad day's backlog)", measure_all))
