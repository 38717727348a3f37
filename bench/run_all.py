"""Run every benchmark, each in its own process, and print one table (markdown, README-ready).

    .venv/bin/python bench/run_all.py            # the full sizes (about 15 minutes)
    .venv/bin/python bench/run_all.py --quick    # smaller sizes, a smoke run of about a minute
    .venv/bin/python bench/run_all.py --only sweep_cost,api_budget

Each benchmark writes bench/results/NAME.json; this command adds bench/results/run-DATE.json with
all of them and the machine they ran on. Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import RESULTS_DIR, ROOT, fmt, machine

BENCHMARKS = (
    ("check_round", "bench_check_round.py"),
    ("footprint", "bench_footprint.py"),
    ("sweep_cost", "bench_sweep_cost.py"),
    ("log_throughput", "bench_log_throughput.py"),
    ("api_budget", "bench_api_budget.py"),
)


def run_one(name: str, script: str, quick: bool) -> dict[str, Any]:
    """Run one benchmark script; its JSON result, or a failure record."""
    out = RESULTS_DIR / f"{name}.json"
    out.unlink(missing_ok=True)
    args = [sys.executable, str(ROOT / "bench" / script), "--out", str(out), *(["--quick"] if quick else [])]
    started = time.monotonic()
    code = subprocess.run(args, cwd=ROOT, check=False).returncode
    if code != 0 or not out.exists():
        return {"name": name, "title": name, "failed": f"exit code {code}", "figures": [], "notes": [],
                "seconds": round(time.monotonic() - started, 1)}
    return json.loads(out.read_text())


def markdown(results: list[dict[str, Any]], info: dict[str, Any], quick: bool, when: str) -> str:
    """The README table: one row per figure, with its same-run baseline and its target."""
    lines = [f"Run {when} ({'quick' if quick else 'full'} sizes) on {info['cores']} cores, "
             f"{info['memory_gib']} GiB, {info['cpu'] or 'unknown CPU'}, Python {info['python']}, "
             f"{info['system']}.", "",
             "| Benchmark | Figure | Value | Baseline (same run) | Ratio | Target | Met |",
             "|---|---|---:|---|---:|---|:---:|"]
    for result in results:
        if result.get("failed"):
            lines.append(f"| {result['title']} | did not finish: {result['failed']} | | | | | ✗ |")
            continue
        title = result["title"]
        for figure in result["figures"]:
            baseline = f"{fmt(figure['baseline'])} ({figure['baseline_label']})" \
                if figure["baseline"] is not None else ""
            ratio = f"×{fmt(figure['ratio'])}" if figure.get("ratio") is not None else ""
            met = {True: "✓", False: "✗", None: ""}[figure["met"]]
            lines.append(f"| {title} | {figure['metric']} | {fmt(figure['value'])} {figure['unit']} | "
                         f"{baseline} | {ratio} | {figure['target']} | {met} |")
            title = ""
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description="Run every benchmark and print one table.")
    parser.add_argument("--quick", action="store_true", help="smaller sizes, for a smoke run")
    parser.add_argument("--only", help="comma-separated names: " + ", ".join(n for n, _ in BENCHMARKS))
    args = parser.parse_args()
    chosen = set(args.only.split(",")) if args.only else {name for name, _ in BENCHMARKS}
    unknown = chosen - {name for name, _ in BENCHMARKS}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    results = [run_one(name, script, args.quick) for name, script in BENCHMARKS if name in chosen]
    info = machine()
    table = markdown(results, info, args.quick, when)
    print("\n" + table)
    missed = [f"{r['title']}: {f['metric']}" for r in results for f in r["figures"] if f["met"] is False]
    failed = [r["name"] for r in results if r.get("failed")]
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    combined = RESULTS_DIR / f"run-{stamp}{'-quick' if args.quick else ''}.json"
    combined.write_text(json.dumps({"date": when, "quick": args.quick, "machine": info, "results": results,
                                    "markdown": table}, indent=2, default=str))
    print(f"\n{len(missed)} target(s) missed{': ' + '; '.join(missed) if missed else ''}; "
          f"{len(failed)} benchmark(s) failed{': ' + ', '.join(failed) if failed else ''}.")
    print(f"results: {combined}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
