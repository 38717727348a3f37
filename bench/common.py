"""What every benchmark shares: the loopback world, a fresh environment, figures and results.

Benchmarks print numbers; they are not tests. Each figure is measured next to a baseline taken
in the same run, so the ratio holds on a noisy machine. Nothing here reaches beyond 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

RESULTS_DIR = ROOT / "bench" / "results"
PG_ADMIN_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


@dataclass
class Figure:
    """One measured number, its same-run baseline, and the target it is held against."""

    metric: str
    value: float | int | None
    unit: str
    baseline: float | int | None = None
    baseline_label: str = ""
    target: str = ""
    met: bool | None = None

    @property
    def ratio(self) -> float | None:
        if self.value is None or not self.baseline:
            return None
        return self.value / self.baseline


@dataclass
class BenchResult:
    """What one benchmark hands to `run_all.py` (and writes to bench/results/NAME.json)."""

    name: str
    title: str
    quick: bool
    figures: list[Figure] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def add(self, *args: Any, **kwargs: Any) -> Figure:
        figure = Figure(*args, **kwargs)
        self.figures.append(figure)
        return figure

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        for figure, raw in zip(self.figures, data["figures"], strict=True):
            raw["ratio"] = figure.ratio
        return data


def fmt(value: float | int | None, digits: int = 3) -> str:
    """A number for a table: integers as they are, floats with `digits` significant digits."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if value == 0:
        return "0"
    if abs(value) >= 10 ** digits:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}" if abs(value) >= 1e-3 else f"{value:.2e}"


def print_figures(result: BenchResult) -> None:
    """The figures of one benchmark as a plain table on stdout."""
    print(f"\n== {result.title} ({'quick' if result.quick else 'full'}, {result.seconds:.1f}s) ==")
    for figure in result.figures:
        ratio = f"  ×{fmt(figure.ratio)} vs {figure.baseline_label} ({fmt(figure.baseline)})" \
            if figure.ratio is not None else ""
        verdict = "" if figure.met is None else ("  [met]" if figure.met else "  [MISSED]")
        target = f"  target {figure.target}" if figure.target else ""
        print(f"  {figure.metric:<48} {fmt(figure.value):>12} {figure.unit:<6}{ratio}{target}{verdict}")
    for note in result.notes:
        print(f"  note: {note}")


def write_result(result: BenchResult, out: Path | None = None) -> Path:
    """Write the result as JSON (bench/results/NAME.json unless `out` is given)."""
    path = out or RESULTS_DIR / f"{result.name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {**result.to_json(), "finished_at": datetime.now(UTC).isoformat(), "machine": machine()}
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path


def machine() -> dict[str, Any]:
    """What the numbers ran on."""
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import psutil

        memory_gib = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        memory_gib = None
    return {"cores": os.cpu_count(), "cpu": cpu, "memory_gib": memory_gib,
            "python": platform.python_version(), "system": f"{platform.system()} {platform.release()}"}


def bench_main(name: str, title: str, body: Callable[[BenchResult], None]) -> int:
    """The command line every benchmark script shares: `[--quick] [--out FILE]`."""
    parser = argparse.ArgumentParser(description=title)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--out", type=Path, help="where to write the JSON result")
    args = parser.parse_args()
    # Benchmarks print numbers: the monitor's own warnings (an abandoned check …) stay quiet.
    import logging

    logging.getLogger().addHandler(logging.NullHandler())
    result = BenchResult(name, title, args.quick)
    started = time.perf_counter()
    body(result)
    result.seconds = round(time.perf_counter() - started, 1)
    print_figures(result)
    print(f"  result: {write_result(result, args.out)}")
    return 0


# --- the loopback world ---------------------------------------------------------------------------

def loopback_web() -> Any:
    """A 127.0.0.1 URL answering every GET with 204 (the tests' stand-in for the internet)."""
    from tests.support.loopback_web import loopback_web as serve

    return serve()


@contextmanager
def x_double() -> Iterator[Any]:
    """The loopback X API double of the tests, valid for the fake credentials."""
    from tests.support.xapi_double import XApiDouble

    with XApiDouble(api_key=fake_secrets()["TWITTER_API_KEY"]) as double:
        yield double


@contextmanager
def hanging_web() -> Iterator[str]:
    """A 127.0.0.1 URL whose server takes the connection and never answers (a hung dependency)."""
    import socket

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)  # the kernel completes the handshake; nobody ever reads or writes
        yield f"http://127.0.0.1:{listener.getsockname()[1]}/"


def fake_secrets() -> dict[str, str]:
    from tests.support.environment import FAKE_SECRETS

    return dict(FAKE_SECRETS)


def bench_env(tmp: Path, x_api_url: str, web_url: str, **overrides: str) -> dict[str, str]:
    """The tests' monitor environment in `tmp`, plus a scheduler heartbeat that never goes stale
    (so the scheduler check is ok and restarts nothing). Unset settings keep their defaults."""
    from tests.support.environment import monitor_env

    heartbeat = tmp / "scheduler.heartbeat"
    tmp.mkdir(parents=True, exist_ok=True)
    heartbeat.touch()
    return {**monitor_env(tmp, x_api_url, web_url), "SCHEDULER_HEARTBEAT_FILE": str(heartbeat),
            "SCHEDULER_HEARTBEAT_MAX_AGE_SECONDS": str(7 * 86400), **overrides}


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2
