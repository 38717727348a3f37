"""The fast log path (block scan + RE2, or the standard-library fallback) finds what the reference finds.

The reference is the line-by-line path (`matcher="reference"`): every line through the record
code and `recovery.classify.classify`. Same events, classes, rules, offsets and summaries, and
the same saved offset, on a generated pipeline log and on random logs built to hit the edges.
"""

from __future__ import annotations

import functools
import itertools
import json
import shutil
import subprocess
import sys
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from bench.log_corpus import write_log
from recovery.classify import classify, is_error_line
from recovery.logs import matcher as matchers
from recovery.logs.reader import decode, scan_file
from utils.db import init_db, log_offsets, make_engine, utc_now

ROOT = Path(__file__).resolve().parent.parent
FAST = ("re2", "python")
CORPUS = json.loads((ROOT / "tests" / "data" / "error_corpus.json").read_text())

_scratch = tempfile.TemporaryDirectory(prefix="am-fastpath-")
_counter = itertools.count()


def _engine() -> Any:
    engine = make_engine(f"sqlite:///{_scratch.name}/db-{next(_counter)}.db")
    init_db(engine)
    return engine


@functools.cache
def _engine_for(matcher: str) -> Any:
    return _engine()  # one offsets table per path kind: the same file can be scanned by each


def _scan(path: Path, matcher: str, **kwargs: Any) -> tuple[list[Any], int | None]:
    """One first pass over a file this kind never saw: its events and the offset it saved."""
    engine = _engine_for(matcher)
    events = scan_file(engine, path, utc_now(), matcher=matcher, **kwargs)
    with engine.connect() as conn:
        offset = conn.execute(select(log_offsets.c.offset).where(log_offsets.c.path == str(path))).scalar()
    return events, offset


@pytest.fixture(scope="module")
def generated_log() -> Path:
    path = Path(_scratch.name) / "pipeline.log"
    write_log(path, 3_000_000, seed=5)
    return path


@pytest.mark.slow
@pytest.mark.parametrize("matcher", FAST)
@pytest.mark.parametrize("block_bytes", [1 << 20, 4096])
def test_generated_log_gives_the_reference_events_and_offset(generated_log: Path, matcher: str,
                                                             block_bytes: int) -> None:
    path = Path(_scratch.name) / f"generated-{matcher}-{block_bytes}.log"  # each kind reads it first
    shutil.copyfile(generated_log, path)
    reference = _scan(path, "reference")
    assert _scan(path, matcher, block_bytes=block_bytes) == reference
    events, offset = reference
    assert offset == path.stat().st_size
    counts = {event.failure_class: event.count for event in events}
    assert counts["rate_limit"] > 100 and counts["timeout"] > 10 and counts["database"] > 10  # a real mix


@pytest.mark.parametrize("matcher", FAST)
def test_incremental_scans_of_a_growing_log_match_the_reference(generated_log: Path, matcher: str) -> None:
    data = generated_log.read_bytes()[:400_000]
    cuts = [0, 1234, 50_000, 50_001, 123_457, 260_000, len(data)]  # mid-line and mid-traceback too
    results = {}
    for kind in ("reference", matcher):
        engine, path = _engine(), Path(_scratch.name) / f"grow-{matcher}.log"  # the same name: events name it
        path.write_bytes(b"")
        runs = []
        for start, end in itertools.pairwise(cuts):
            with path.open("ab") as handle:
                handle.write(data[start:end])
            runs.append(scan_file(engine, path, utc_now(), matcher=kind, block_bytes=8192))
        results[kind] = runs
    assert results[matcher] == results["reference"]
    assert sum(event.count for run in results[matcher] for event in run) > 20


# Lines built to hit the edges: quiet levels with error words (also overlapping the level word),
# chained tracebacks, blank lines, Unicode digits, invalid UTF-8, \r, HTTP phrases, long lines.
STAMP = "2026-11-28 07:00:0{}.123 "
LINE_PARTS = st.sampled_from([
    STAMP.format(1) + "INFO poster: 0 failed, 2 posted",
    STAMP.format(2) + "INFO answer 503 Service Unavailable",
    STAMP.format(3) + "TRACEBACK follows", STAMP.format(4) + "INFOFAIL x",
    STAMP.format(5) + "DEPLETED credits",
    STAMP.format(6) + "ERROR poster: create_tweet failed: 429 Too Many Requests", "Too Many Requests",
    STAMP.format(7) + "WARNING tweepy: Rate limit exceeded. Sleeping for 9 seconds.", "",
    "Traceback (most recent call last):", '  File "/srv/bot/post.py", line 12, in post', "    client.post()",
    "TimeoutError: The read operation timed out",
    "During handling of the above exception, another exception occurred:",
    "The above exception was the direct cause of the following exception:",
    "psycopg.OperationalError: connection refused", "tweepy.errors.Forbidden: 403 Forbidden",
    "KeyError: 'text'", "2026-11-28 07:00:0٣,123 INFO ٤٢٩ Too Many Requests", "Error without stamp",
    "\tIs the server running on that host?", "{\"level\": \"info\", \"msg\": \"retry failed over\"}",
    "level=error msg=boom", "NOTICE done", "[2026-11-28 07:00:00] CRITICAL scheduler died",
    "plain text after an entry", "é" * 30 + " exception", "x" * 90 + "Failure",
])
LINES = st.lists(st.one_of(LINE_PARTS.map(str.encode), st.binary(max_size=40)), max_size=40)


@pytest.mark.slow
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(LINES, st.sampled_from([b"\n", b"\r\n"]), st.integers(64, 400), st.integers(20, 200), st.booleans())
def test_random_logs_give_the_reference_events(lines: list[bytes], newline: bytes, block_bytes: int, cap: int,
                                               trailing: bool) -> None:
    path = Path(_scratch.name) / f"random-{next(_counter)}.log"
    body = newline.join(line.replace(b"\n", b" ") for line in lines)
    path.write_bytes(body + (newline if trailing else b""))
    reference = _scan(path, "reference", max_line_bytes=cap)
    for matcher in FAST:
        assert _scan(path, matcher, max_line_bytes=cap, block_bytes=block_bytes) == reference, matcher


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(LINE_PARTS, st.text(max_size=60)), min_size=1, max_size=8))
def test_every_error_line_is_a_candidate(parts: list[str]) -> None:
    raw = " ".join(parts).replace("\n", " ").replace("\r", " ").encode("utf-8", "surrogatepass")
    data = b"2026-11-28 07:00:00,000 INFO first\n" + raw + b"\n"
    if is_error_line(decode(raw)):
        for matcher in FAST:
            assert len(data) - len(raw) - 1 in matchers.load(matcher).line_hits(data, len(data)), matcher


@settings(max_examples=300, deadline=None)
@given(st.lists(st.sampled_from([entry["text"] for entry in CORPUS]), min_size=1, max_size=3),
       st.text(alphabet=st.characters(max_codepoint=127), max_size=40))
@pytest.mark.slow
def test_re2_classifier_agrees_with_the_reference(texts: list[str], noise: str) -> None:
    text = noise.join(texts)
    assert matchers.load("re2").classify(text) == classify(text)


def test_re2_classifier_agrees_on_the_whole_corpus() -> None:
    fast = matchers.load("re2").classify
    assert [fast(entry["text"]) for entry in CORPUS] == [classify(entry["text"]) for entry in CORPUS]


def test_without_the_re2_wheel_the_standard_library_path_is_used() -> None:
    code = ("import sys; sys.modules['re2'] = None\n"  # as on a platform without the wheel
            "from recovery.logs.matcher import load\n"
            "print(load('auto').name, 're2' in [m for m in sys.modules if sys.modules[m] is not None])")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=60).stdout.split()
    assert out == ["python", "False"]


@pytest.mark.slow
def test_re2_is_imported_only_when_a_scan_needs_it() -> None:
    code = ("import sys\nimport recovery.logs.reader, recovery.classify\n"
            "print('re2' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
                         timeout=60).stdout.split()
    assert out == ["False"]


@pytest.mark.slow
@pytest.mark.parametrize("matcher", FAST)
def test_a_giant_line_keeps_memory_bounded_and_offsets_exact(matcher: str) -> None:
    path = Path(_scratch.name) / f"giant-{next(_counter)}.log"
    head = b"2026-11-28 07:00:00,000 ERROR poster: post 1 failed: 429 Too Many Requests\n"
    path.write_bytes(head + b"x" * 10_000_000 + b" failed\n" + head + b"y" * 3_000_000)
    matchers.load(matcher)  # compiled before measuring
    tracemalloc.start()
    try:
        events, offset = _scan(path, matcher, block_bytes=1 << 20)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (events, offset) == _scan(path, "reference")
    assert offset == path.stat().st_size  # the unterminated giant line was handed out capped
    assert [(event.failure_class, event.count) for event in events] == [("rate_limit", 2)]
    assert peak < 12_000_000, f"peak {peak} bytes for a 10 MB line"
