"""Benchmark 4: log analysis throughput on a realistic pipeline log.

A pipeline log of 1 GB (50 MB with --quick) is generated: mostly INFO lines, some warnings, error
lines carrying the error texts X, tweepy, requests, psycopg and the OS really print, and
multi-line tracebacks. The monitor's reader and classifier (`recovery.logs.reader.scan_file`:
offsets, records, `recovery.classify`) go over it in a fresh child process, which reports MB/s,
peak resident memory, the second pass over the unchanged file (offsets: near zero) and a pass
after 1 MB was appended. Baselines in the same run: reading the file in 1 MiB chunks, and the
reader alone (lines without classification).
"""

from __future__ import annotations

import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import ROOT, BenchResult, bench_main

MB = 10**6
FULL_BYTES = 1024 * 2**20
QUICK_BYTES = 50 * 2**20
APPEND_BYTES = 2**20
SMALL_SLACK_MB = 5

INFO = (
    "[pipeline.scheduler] tick: {n} job(s) due, next run at 15:00:00",
    "[pipeline.content] generated post for slot 09:00 ({n} chars, model gpt-4o-mini, {ms} ms)",
    "[pipeline.feed] fetched {n} items from https://feeds.example.org/tech.xml in {ms} ms",
    "[pipeline.media] resized image {hex}.png to 1200x675 ({n} KiB)",
    "[pipeline.poster] post {n} posted as tweet 18600000000{n:08d}",
    "[pipeline.db] ledger: {n} scheduled, 0 failed, 2 posted today",
    "[pipeline.poster] x-user-limit-24hour-remaining={small} x-rate-limit-remaining={n}",
    "[urllib3.connectionpool] Starting new HTTPS connection (1): api.twitter.com:443",
    "[pipeline.cache] cache hit for key feed:{hex} (age {ms} ms)",
)
WARNING = (
    "[pipeline.feed] feed https://feeds.example.org/world.xml answered 304 after {ms} ms, retrying later",
    "[pipeline.content] generated text was {n} characters, trimmed to 280",
    "[pipeline.poster] x-user-limit-24hour-remaining=1: posting budget nearly spent",
)
ERRORS = (
    "[pipeline.poster] create_tweet failed: 429 Too Many Requests\nToo Many Requests",
    "[pipeline.poster] create_tweet failed: 403 Forbidden\nYou are not allowed to create a Tweet with "
    "duplicate content.",
    "[pipeline.poster] create_tweet failed: 401 Unauthorized\n89 - Invalid or expired token.",
    "[pipeline.poster] create_tweet failed: 503 Service Unavailable\nService Unavailable",
    "[pipeline.poster] create_tweet failed: 429 Too Many Requests\nUsage cap exceeded: Monthly product cap",
    "[pipeline.poster] create_tweet failed: HTTPSConnectionPool(host='api.twitter.com', port=443): Read "
    "timed out. (read timeout=30)",
    "[pipeline.feed] HTTPSConnectionPool(host='feeds.example.org', port=443): Max retries exceeded with url: "
    "/tech.xml (Caused by NewConnectionError('<urllib3.connection.HTTPSConnection object at 0x7f3a2c1d9e50>: "
    "Failed to establish a new connection: [Errno 111] Connection refused'))",
    "[pipeline.db] connection to server at \"127.0.0.1\", port 5432 failed: Connection refused\n"
    "\tIs the server running on that host and accepting TCP/IP connections?",
    "[pipeline.media] could not write cache: [Errno 28] No space left on device: "
    "'/var/lib/pipeline/cache/{hex}.png'",
    "[pipeline.db] (sqlite3.OperationalError) database is locked",
)
SITE = "/opt/pipeline/.venv/lib/python3.11/site-packages"
TRACEBACKS = (
    ("[pipeline.poster] post {n} failed", [
        '  File "/opt/pipeline/poster.py", line 88, in publish',
        "    response = client.create_tweet(text=text)",
        f'  File "{SITE}/tweepy/client.py", line 835, in create_tweet',
        "    return self._make_request(",
        f'  File "{SITE}/tweepy/client.py", line 129, in _make_request',
        "    response = self.request(method, route, params=request_params,",
        f'  File "{SITE}/tweepy/client.py", line 112, in request',
        "    raise TooManyRequests(response)",
        "tweepy.errors.TooManyRequests: 429 Too Many Requests",
        "Too Many Requests"]),
    ("[pipeline.poster] post {n} failed", [
        f'  File "{SITE}/urllib3/connectionpool.py", line 536, in _make_request',
        "    response = conn.getresponse()",
        "TimeoutError: The read operation timed out",
        "",
        "During handling of the above exception, another exception occurred:",
        "",
        "Traceback (most recent call last):",
        f'  File "{SITE}/requests/adapters.py", line 713, in send',
        "    raise ReadTimeout(e, request=request)",
        "requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='api.twitter.com', port=443): Read timed "
        "out. (read timeout=30)"]),
    ("[pipeline.db] ledger update failed", [
        '  File "/opt/pipeline/ledger.py", line 41, in mark_posted',
        "    with engine.begin() as conn:",
        f'  File "{SITE}/psycopg/connection.py", line 119, in connect',
        "    raise last_ex.with_traceback(None)",
        "psycopg.OperationalError: connection failed: connection to server at \"127.0.0.1\", port 5432 "
        "failed: Connection refused",
        "\tIs the server running on that host and accepting TCP/IP connections?"]),
)


def generate(path: Path, size: int, seed: int = 6) -> dict[str, int]:
    """Write about `size` bytes of pipeline log to `path`; return how many lines of each kind."""
    rng = random.Random(seed)
    moment = datetime(2026, 11, 1, tzinfo=UTC)
    counts = {"info": 0, "warning": 0, "error": 0, "traceback": 0, "lines": 0}
    written = 0
    with path.open("w", encoding="utf-8") as out:
        while written < size:
            block = []
            for _ in range(20_000):
                moment += timedelta(milliseconds=rng.randint(5, 900))
                stamp = moment.strftime("%Y-%m-%d %H:%M:%S") + f",{moment.microsecond // 1000:03d}"
                fill = {"n": rng.randint(1, 99_999), "ms": rng.randint(3, 4000), "small": rng.randint(0, 17),
                        "hex": f"{rng.getrandbits(48):012x}"}
                draw = rng.random()
                if draw < 0.0008:
                    head, frames = rng.choice(TRACEBACKS)
                    block.append(f"{stamp} ERROR {head.format(**fill)}\nTraceback (most recent call last):\n"
                                 + "\n".join(frames))
                    counts["traceback"] += 1
                elif draw < 0.005:
                    block.append(f"{stamp} ERROR {rng.choice(ERRORS).format(**fill)}")
                    counts["error"] += 1
                elif draw < 0.025:
                    block.append(f"{stamp} WARNING {rng.choice(WARNING).format(**fill)}")
                    counts["warning"] += 1
                else:
                    block.append(f"{stamp} INFO {rng.choice(INFO).format(**fill)}")
                    counts["info"] += 1
            text = "\n".join(block) + "\n"
            out.write(text)
            written += len(text.encode())
            counts["lines"] += text.count("\n")
    return counts


# --- the measuring child --------------------------------------------------------------------------

def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_mb() -> float:
    """This process's peak resident memory (VmHWM: ru_maxrss would include the parent's at fork)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def child(mode: str, log: Path, db: Path) -> dict[str, Any]:
    """Run in a fresh interpreter so the peak resident memory belongs to this one job."""
    from recovery.logs.reader import read_new_lines, scan_file
    from utils.db import init_db, make_engine

    engine = make_engine(f"sqlite:///{db}")
    init_db(engine)
    now = datetime.now(UTC)
    size = log.stat().st_size
    before = _rss_mb()
    if mode == "baselines":
        started = time.perf_counter()
        with log.open("rb") as handle:
            while handle.read(2**20):
                pass
        raw_s = time.perf_counter() - started
        started = time.perf_counter()
        lines = sum(1 for _ in read_new_lines(engine, log, now))
        reader_s = time.perf_counter() - started
        return {"raw_read_s": raw_s, "reader_only_s": reader_s, "lines": lines, "bytes": size,
                "rss_before_mb": before, "peak_mb": _peak_mb()}
    started = time.perf_counter()
    events = scan_file(engine, log, now)
    first_s = time.perf_counter() - started
    peak = _peak_mb()
    started = time.perf_counter()
    again = scan_file(engine, log, now)
    second_s = time.perf_counter() - started
    with log.open("ab") as handle, log.open("rb") as source:  # 1 MiB more: the first lines again
        handle.write(source.read(APPEND_BYTES).rpartition(b"\n")[0] + b"\n")
    started = time.perf_counter()
    appended = scan_file(engine, log, now)
    append_s = time.perf_counter() - started
    return {"first_s": first_s, "second_s": second_s, "append_s": append_s, "bytes": size,
            "rss_before_mb": before, "peak_mb": peak,
            "events": {e.failure_class: e.count for e in events},
            "rules": {e.failure_class: e.rule for e in events},
            "second_events": len(again), "append_events": {e.failure_class: e.count for e in appended}}


def _run_child(mode: str, log: Path, db: Path) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", mode, str(log), str(db)], cwd=ROOT,
                         check=True, capture_output=True, text=True, timeout=3600).stdout
    return json.loads(out.strip().splitlines()[-1])


def measure(result: BenchResult) -> None:
    target = QUICK_BYTES if result.quick else FULL_BYTES
    with tempfile.TemporaryDirectory(prefix="bench-logs-") as tmp:
        log = Path(tmp) / "pipeline.log"
        started = time.perf_counter()
        counts = generate(log, target)
        generate_s = time.perf_counter() - started
        size_mb = log.stat().st_size / MB
        print(f"  generated {size_mb:,.0f} MB ({counts['lines']:,} lines) in {generate_s:.1f}s", flush=True)
        small = Path(tmp) / "small.log"  # the same log's head, to show memory does not grow with size
        with log.open("rb") as source, small.open("wb") as out:
            for _ in range(target // 20 // 2**20):
                out.write(source.read(2**20))
            out.write(source.readline())
        small_mb = small.stat().st_size / MB
        base = _run_child("baselines", log, Path(tmp) / "baseline.db")
        scan = _run_child("scan", log, Path(tmp) / "scan.db")
        small_scan = _run_child("scan", small, Path(tmp) / "small.db")
    scan_mbps = size_mb / scan["first_s"]
    result.add("log size", round(size_mb, 1), "MB")
    result.add("read in 1 MiB chunks (page cache warm)", round(size_mb / base["raw_read_s"], 1), "MB/s")
    result.add("reader only (lines, offsets)", round(size_mb / base["reader_only_s"], 1), "MB/s",
               round(size_mb / base["raw_read_s"], 1), "raw read")
    result.add("reader + classifier (scan_file), first pass", round(scan_mbps, 1), "MB/s",
               round(size_mb / base["reader_only_s"], 1), "reader only")
    result.add("first pass", round(scan["first_s"], 2), "s")
    result.add("peak RSS during the first pass", round(scan["peak_mb"], 1), "MB")
    growth = scan["peak_mb"] - scan["rss_before_mb"]
    small_growth = small_scan["peak_mb"] - small_scan["rss_before_mb"]
    result.add("peak RSS above the process before the pass", round(growth, 1), "MB", round(small_growth, 1),
               f"same on the first {small_mb:.0f} MB",
               f"≤ {SMALL_SLACK_MB} MB more than on {small_mb:.0f} MB",
               growth - small_growth <= SMALL_SLACK_MB)
    result.add("second pass, file unchanged", round(scan["second_s"] * 1000, 2), "ms",
               round(scan["first_s"] * 1000, 1), "first pass", "near zero",
               scan["second_s"] < 0.01 * scan["first_s"] and scan["second_events"] == 0)
    result.add(f"pass after appending {APPEND_BYTES // 2**20} MiB", round(scan["append_s"] * 1000, 1), "ms",
               round(scan["first_s"] * 1000 * APPEND_BYTES / scan["bytes"], 1), "first pass, pro rata")
    result.details = {"bytes": scan["bytes"], "generated_lines": counts, "generate_s": round(generate_s, 1),
                      "baselines": base, "scan": scan, "small_scan": small_scan}
    result.notes.append(f"{counts['lines']:,} lines: {counts['info']:,} INFO, {counts['warning']:,} WARNING,"
                        f" {counts['error']:,} ERROR lines, {counts['traceback']:,} tracebacks; events by "
                        "class: " + ", ".join(f"{k} {v:,}" for k, v in sorted(scan["events"].items())))


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--child":
        print(json.dumps(child(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))))
        sys.exit(0)
    sys.exit(bench_main("log_throughput", "4. Log analysis throughput", measure))
