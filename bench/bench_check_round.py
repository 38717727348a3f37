"""Benchmark 1: check round latency with one dependency hung.

All five checks run against the loopback world while the X API double hangs on
`GET /2/users/me`. The round (`checks.base.run_checks`, concurrent, one deadline) is timed against
the sum of the same checks run one after another (`run_one`, the sequential design), in the same
run. Target: round ≤ CHECK_TIMEOUT_SECONDS + 0.5 s.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BenchResult, bench_env, bench_main, hanging_web, loopback_web, median, x_double

TIMEOUT_S = 2.0
SLACK_S = 0.5


def measure(result: BenchResult) -> None:
    from checks import CHECKS
    from checks.base import run_checks
    from tests.support.xapi_double import ME, Reply
    from utils.config import load_settings
    from utils.context import MonitorContext
    from utils.redact import register_secrets

    rounds = 2 if result.quick else 5
    limit = TIMEOUT_S + SLACK_S
    with tempfile.TemporaryDirectory(prefix="bench-round-") as tmp, loopback_web() as web, \
            hanging_web() as hung_web, x_double() as x_api:
        env = bench_env(Path(tmp), x_api.base_url, web, CHECK_TIMEOUT_SECONDS=f"{TIMEOUT_S:g}")
        settings = load_settings(env)
        register_secrets(settings.secret_values)
        ctx = MonitorContext(settings)
        try:
            # Healthy rounds first: the cold one pays imports and table creation, the warm ones
            # are the reference for what a round costs when nothing hangs.
            cold, _ = _timed(lambda: run_checks(CHECKS, ctx, TIMEOUT_S))
            healthy = median([_timed(lambda: run_checks(CHECKS, ctx, TIMEOUT_S))[0] for _ in range(3)])
            result.add("cold healthy round (imports, table creation)", round(cold, 3), "s")
            result.add("warm healthy round (nothing hung)", round(healthy, 3), "s")
            x_api.always(ME, Reply(mode="hang"))  # until the double stops
            one = _scenario(ctx, rounds)
            _report(result, "X API hung", one, limit)
            # Two hung dependencies show what the concurrent design saves over the sequential one.
            ctx.settings = ctx.settings.with_overrides(connectivity_urls=(hung_web,))
            two = _scenario(ctx, rounds)
            _report(result, "X API + internet hung", two, limit)
        finally:
            ctx.close()
    result.details = {"check_timeout_s": TIMEOUT_S, "rounds": rounds, "x_api_hung": one,
                      "x_api_and_internet_hung": two}
    for label, data in (("X API hung", one), ("X API + internet hung", two)):
        result.notes.append(f"{label}: statuses {data['statuses']}; sequential per-check medians "
                            + ", ".join(f"{n} {v:.3f}s" for n, v in data["per_check_median_s"].items()))


def _scenario(ctx: Any, rounds: int) -> dict[str, Any]:
    """`rounds` concurrent rounds, each followed by the same checks one after another."""
    from checks import CHECKS
    from checks.base import run_checks, run_one

    walls, sums, per_check = [], [], {name: [] for name in CHECKS}
    statuses: dict[str, str] = {}
    for _ in range(rounds):
        wall, results = _timed(lambda: run_checks(CHECKS, ctx, TIMEOUT_S))
        walls.append(wall)
        statuses = {r.name: f"{r.status.value}/{r.failure_class}" for r in results
                    if r.status.value != "ok"}
        total = 0.0
        for name, check in CHECKS.items():
            spent, _ = _timed(lambda n=name, c=check: run_one(n, c, ctx))
            per_check[name].append(spent)
            total += spent
        sums.append(total)
        time.sleep(0.2)  # let the abandoned threads of the round end before the next one
    return {"round_walls_s": walls, "sequential_sums_s": sums, "statuses": statuses,
            "per_check_median_s": {n: round(median(v), 4) for n, v in per_check.items()}}


def _report(result: BenchResult, label: str, data: dict[str, Any], limit: float) -> None:
    walls, sums = data["round_walls_s"], data["sequential_sums_s"]
    result.add(f"round, {label}, median", round(median(walls), 3), "s", round(median(sums), 3),
               "sequential sum", f"≤ {limit:g} s", median(walls) <= limit)
    result.add(f"round, {label}, worst", round(max(walls), 3), "s", round(max(sums), 3),
               "sequential sum", f"≤ {limit:g} s", max(walls) <= limit)


def _timed(work):  # type: ignore[no-untyped-def]
    started = time.perf_counter()
    value = work()
    return time.perf_counter() - started, value


if __name__ == "__main__":
    sys.exit(bench_main("check_round", "1. Check round latency, X API hung", measure))
