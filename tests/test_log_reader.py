"""Incremental log reading: offsets, rotation, truncation, giant lines, bursts, restarts."""

from __future__ import annotations

import itertools
import logging
import os
import socket
import tempfile
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import update

from recovery.logs.reader import LogEvent, read_new_lines, scan_file, scan_logs
from tests.conftest import FAKE_SECRETS, assert_no_secret
from utils.db import init_db, log_offsets, make_engine, utc_now

SECRET = FAKE_SECRETS["TWITTER_API_SECRET"]
NETWORK_LINE = ("2026-11-28 07:00:{:02d},001 ERROR pipeline.post: requests.exceptions.ConnectionError: "
                "HTTPSConnectionPool(host='api.twitter.com', port=443): Max retries exceeded with url: "
                "/2/tweets (Caused by NewConnectionError('Failed to establish a new connection: "
                "[Errno 111] Connection refused')) consumer_secret=" + SECRET + "\n")


@pytest.fixture
def log(tmp_path: Path) -> Path:
    (tmp_path / "logs").mkdir()
    return tmp_path / "logs" / "pipeline.log"


@pytest.fixture
def env(tmp_path: Path, log: Path) -> dict[str, str]:
    """Only what log reading needs (no X API double, no web: their teardown costs a second)."""
    (tmp_path / "data").mkdir(exist_ok=True)  # the settings refuse an SQLite file in a missing folder
    return {**FAKE_SECRETS, "ENV_FILE": "/dev/null",
            "DATABASE_URL": f"sqlite:///{tmp_path / 'data' / 'monitor.db'}",
            "DATA_DIR": str(tmp_path / "data"), "LOG_DIR": str(log.parent), "MONITOR_TIMEZONE": "UTC"}


@pytest.fixture
def ctx(env: dict[str, str], make_ctx: Any, log: Path) -> Any:
    return make_ctx({**env, "PIPELINE_LOG_FILES": str(log)})


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def read(ctx: Any, path: Path, **kwargs: Any) -> list[str]:
    return [line.text for line in read_new_lines(ctx.engine, path, ctx.now(), **kwargs)]


def append(path: Path, data: str | bytes) -> None:
    with open(path, "ab") as handle:
        handle.write(data.encode() if isinstance(data, str) else data)


def test_reads_only_new_lines(ctx: Any, log: Path) -> None:
    append(log, "one\ntwo\nthree\n")
    assert read(ctx, log) == ["one", "two", "three"]
    assert read(ctx, log) == []
    append(log, "four\nfive\n")
    assert read(ctx, log) == ["four", "five"]


def test_partial_last_line_waits_for_its_newline(ctx: Any, log: Path) -> None:
    append(log, "done\nhalf")
    assert read(ctx, log) == ["done"]
    assert read(ctx, log) == []
    append(log, " a line\r\nnext\n")
    assert read(ctx, log) == ["half a line", "next"]


def test_offsets_are_saved_only_after_every_line_was_handed_out(ctx: Any, log: Path) -> None:
    append(log, "a\nb\nc\n")
    first = list(itertools.islice(read_new_lines(ctx.engine, log, ctx.now()), 2))
    assert [line.text for line in first] == ["a", "b"]
    assert read(ctx, log) == ["a", "b", "c"]  # nothing was lost by stopping early


def test_truncation_restarts_from_the_beginning(ctx: Any, log: Path) -> None:
    append(log, "old line 1\nold line 2\nold line 3\n")
    read(ctx, log)
    log.write_text("new\n")  # same inode, smaller
    assert read(ctx, log) == ["new"]


def test_truncate_and_rewrite_longer_is_detected_by_the_head_hash(ctx: Any, log: Path) -> None:
    append(log, "first generation\n")
    inode = log.stat().st_ino
    read(ctx, log)
    log.write_text("second generation, a longer first line\nand more\n")
    assert log.stat().st_ino == inode and log.stat().st_size > len("first generation\n")
    assert read(ctx, log) == ["second generation, a longer first line", "and more"]


def test_rotation_mid_read_reads_the_rotated_tail_then_the_new_file(ctx: Any, log: Path) -> None:
    append(log, "before 1\nbefore 2\n")
    assert read(ctx, log) == ["before 1", "before 2"]
    append(log, "written just before rotation\n")
    log.rename(log.with_name(log.name + ".1"))
    append(log, "after rotation\n")
    assert read(ctx, log) == ["written just before rotation", "after rotation"]
    assert read(ctx, log) == []


def test_rotation_with_dated_name_and_without_the_old_file(ctx: Any, log: Path) -> None:
    append(log, "gen 1\n")
    read(ctx, log)
    append(log, "unread\n")
    log.rename(log.with_name(log.name + "-20261128"))
    append(log, "gen 2\n")
    assert read(ctx, log) == ["unread", "gen 2"]
    append(log, "gone\n")
    os.unlink(log)
    append(log, "gen 3\n")
    assert read(ctx, log) == ["gen 3"]


def test_giant_line_and_binary_junk_with_bounded_memory(ctx: Any, log: Path) -> None:
    append(log, b"start\n" + b"x" * 10_000_000 + b"\n" + bytes(range(256)) * 40 + b"\n\x00\xff\xfe\n"
           + b"ERROR end\n")
    tracemalloc.start()
    try:
        lines = read(ctx, log, max_line_bytes=65536)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines[0] == "start" and lines[-1] == "ERROR end"
    assert len(lines[1]) == 65536
    assert all(len(line.encode("utf-8", "replace")) <= 65536 * 3 for line in lines)
    assert peak < 8_000_000, f"peak {peak} bytes for a 10 MB line"


def test_giant_line_without_newline_is_consumed_capped(ctx: Any, log: Path) -> None:
    append(log, b"y" * 200_000)
    assert [len(line) for line in read(ctx, log, max_line_bytes=1000)] == [1000]
    append(log, b"\nnext\n")
    assert read(ctx, log, max_line_bytes=1000) == ["", "next"]


def test_offsets_survive_a_restart(env: dict[str, str], make_ctx: Any, log: Path) -> None:
    environ = {**env, "PIPELINE_LOG_FILES": str(log)}
    append(log, NETWORK_LINE.format(1))
    first = make_ctx(environ)
    assert [event.count for event in scan_logs(first)] == [1]
    first.close()
    second = make_ctx(environ)  # a new process: same database, nothing in memory
    assert scan_logs(second) == []
    append(log, NETWORK_LINE.format(2))
    assert [event.count for event in scan_logs(second)] == [1]


def test_a_burst_of_one_class_is_one_event(ctx: Any, log: Path) -> None:
    append(log, "2026-11-28 06:59:59,000 INFO pipeline: starting\n")
    for second in range(50):
        append(log, NETWORK_LINE.format(second))
    append(log, "2026-11-28 07:01:00,000 ERROR pipeline.post: post 9 failed: 429 Too Many Requests\n"
                "2026-11-28 07:01:01,000 ERROR pipeline.post: post 9 failed: 429 Too Many Requests\n")
    events = scan_logs(ctx)
    assert [(e.failure_class, e.count) for e in events] == [("network", 50), ("rate_limit", 2)]
    network = events[0]
    assert network.path == str(ctx.settings.pipeline_log_files[0])
    assert network.first_line.startswith("2026-11-28 07:00:00,001 ERROR")
    assert "\n" not in network.first_line and len(network.first_line) <= 300
    assert network.first_offset == len("2026-11-28 06:59:59,000 INFO pipeline: starting\n")
    assert_no_secret(*(event.first_line for event in events))


def test_a_logged_traceback_is_one_record_classified_by_its_exception(ctx: Any, log: Path) -> None:
    append(log, "2026-11-28 07:00:00,000 ERROR pipeline.post: post 3 failed\n"
                "Traceback (most recent call last):\n"
                '  File "/srv/bot/post.py", line 12, in post\n'
                "    client.create_tweet(text=text)\n"
                "tweepy.errors.Forbidden: 403 Forbidden\n"
                "You are not allowed to create a Tweet with duplicate content.\n"
                "2026-11-28 07:00:05,000 INFO pipeline: next\n")
    [event] = scan_logs(ctx)
    assert (event.failure_class, event.count) == ("duplicate", 1)
    assert "post 3 failed" in event.first_line and "tweepy.errors.Forbidden" in event.first_line


def test_missing_file_is_reported_not_raised_and_warned_once(ctx: Any, log: Path,
                                                             caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="recovery.logs.reader")
    first, second = scan_logs(ctx), scan_logs(ctx)
    missing = LogEvent(str(log), "unknown", 0, "cannot read log file: No such file or directory")
    assert first == second == [missing]
    assert len([r for r in caplog.records if "cannot read log file" in r.message]) == 1
    append(log, NETWORK_LINE.format(3))
    assert [(e.failure_class, e.count) for e in scan_logs(ctx)] == [("network", 1)]


def test_a_fifo_is_reported_instead_of_blocking(ctx: Any, log: Path) -> None:
    os.mkfifo(log)
    [event] = scan_logs(ctx)
    assert (event.count, event.failure_class) == (0, "unknown")
    assert "not a regular file" in event.first_line


def test_a_database_that_cannot_keep_offsets_is_a_database_event(log: Path) -> None:
    engine = make_engine(f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/test",
                         connect_timeout=2)
    append(log, NETWORK_LINE.format(4))
    [event] = scan_file(engine, log, utc_now())
    assert (event.count, event.failure_class) == (0, "database")
    assert event.first_line.startswith("cannot track log offsets")
    engine.dispose()


def test_scan_logs_survives_a_database_it_cannot_reach(env: dict[str, str], make_ctx: Any, log: Path) -> None:
    ctx = make_ctx({**env, "PIPELINE_LOG_FILES": str(log),
                    "DATABASE_URL": f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/test"})
    append(log, NETWORK_LINE.format(5))
    assert [(e.path, e.failure_class, e.count) for e in scan_logs(ctx)] == [(str(log), "database", 0)]


def test_offsets_beyond_2_gib_fit_on_postgresql(postgres_url: str, log: Path) -> None:
    engine = make_engine(postgres_url)
    init_db(engine)
    append(log, "x\n")
    assert read_new_lines_texts(engine, log) == ["x"]
    with engine.begin() as conn:  # as if 3 GiB had been read
        conn.execute(update(log_offsets).values(offset=3 * 2**30))
    log.write_text("")  # now smaller than the offset: truncated
    append(log, "after\n")
    assert read_new_lines_texts(engine, log) == ["after"]
    engine.dispose()


def read_new_lines_texts(engine: Any, path: Path) -> list[str]:
    return [line.text for line in read_new_lines(engine, path, utc_now())]


def test_no_log_files_configured_means_no_events(env: dict[str, str], make_ctx: Any) -> None:
    assert scan_logs(make_ctx(env)) == []


_counter = itertools.count()
_scratch = tempfile.TemporaryDirectory(prefix="am-logfuzz-")
_fuzz_engine = make_engine(f"sqlite:///{_scratch.name}/fuzz.db")
init_db(_fuzz_engine)


@pytest.mark.slow
@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=3000), max_size=4))
def test_arbitrary_bytes_in_a_log_never_crash_the_scan(chunks: list[bytes]) -> None:
    path = Path(_scratch.name) / f"fuzz-{next(_counter)}.log"
    for chunk in chunks:
        append(path, chunk)
        events = scan_file(_fuzz_engine, path, utc_now(), max_line_bytes=512)
        assert all(event.count >= 1 and len(event.first_line) <= 300 for event in events)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=60).map(lambda raw: raw.replace(b"\n", b"")), max_size=12),
       st.integers(1, 70), st.integers(1, 40), st.booleans())
@pytest.mark.slow
def test_chunked_reading_matches_a_plain_split(lines: list[bytes], chunk_bytes: int, cap: int,
                                               trailing_newline: bool) -> None:
    data = b"\n".join(lines) + (b"\n" if trailing_newline and lines else b"")
    path = Path(_scratch.name) / f"split-{next(_counter)}.log"
    path.write_bytes(data)
    *complete, partial = data.split(b"\n")
    expected = [raw[:cap].decode("utf-8", "replace").rstrip("\r") for raw in complete]
    ends = list(itertools.accumulate(len(raw) + 1 for raw in complete))
    if len(partial) > cap:  # a giant unterminated line is handed out capped
        expected.append(partial[:cap].decode("utf-8", "replace").rstrip("\r"))
        ends.append(len(data))
    got = list(read_new_lines(_fuzz_engine, path, utc_now(), max_line_bytes=cap, chunk_bytes=chunk_bytes))
    assert [line.text for line in got] == expected
    assert [line.end for line in got] == ends
    assert [line.offset for line in got] == [0, *ends][: len(ends)]


def test_a_logged_exception_text_spanning_lines_is_one_record(ctx: Any, log: Path) -> None:
    # `logger.error("create_tweet failed: %s", exc)` with tweepy's two-line exception strings.
    append(log, "2026-11-28 09:00:01,123 ERROR poster: create_tweet failed: 403 Forbidden\n"
                "You are not allowed to create a Tweet with duplicate content.\n"
                "2026-11-28 09:00:02,001 INFO poster: next\n"
                "2026-11-28 15:00:01,123 ERROR poster: create_tweet failed: 429 Too Many Requests\n"
                "Usage cap exceeded: Monthly product cap\n")
    events = scan_file(ctx.engine, log, ctx.now())
    assert sorted(event.failure_class for event in events) == ["duplicate", "usage_cap"]


CHAIN_TIMEOUT = ("2026-11-28 08:00:00,000 ERROR pipeline.post: post 4 failed\n"
                 "Traceback (most recent call last):\n"
                 '  File "/venv/urllib3/connectionpool.py", line 536, in _make_request\n'
                 "TimeoutError: The read operation timed out\n"
                 "\n"
                 "During handling of the above exception, another exception occurred:\n"
                 "\n"
                 "Traceback (most recent call last):\n"
                 '  File "/venv/requests/adapters.py", line 713, in send\n'
                 "requests.exceptions.ReadTimeout: HTTPSConnectionPool(host='api.twitter.com', port=443): "
                 "Read timed out. (read timeout=30)\n")
# The inner error alone would say `database` (its rule comes first); the outermost says 429.
CHAIN_CAUSE = ("2026-11-28 08:00:01,000 ERROR pipeline.post: post 5 failed\n"
               "Traceback (most recent call last):\n"
               '  File "/venv/psycopg/connection.py", line 119, in connect\n'
               "psycopg.OperationalError: connection failed: Connection refused\n"
               "\n"
               "The above exception was the direct cause of the following exception:\n"
               "\n"
               "Traceback (most recent call last):\n"
               '  File "/srv/bot/post.py", line 12, in post\n'
               "tweepy.errors.TooManyRequests: 429 Too Many Requests\n"
               "Too Many Requests\n")
NEXT_ENTRY = "2026-11-28 08:00:05,000 INFO pipeline: next\n"


@pytest.mark.parametrize("matcher", ["reference", "re2", "python"])
def test_a_chained_traceback_is_one_record_classified_by_its_outermost_exception(ctx: Any, log: Path,
                                                                                 matcher: str) -> None:
    append(log, CHAIN_TIMEOUT + NEXT_ENTRY + CHAIN_CAUSE + NEXT_ENTRY)
    events = scan_file(ctx.engine, log, ctx.now(), matcher=matcher)
    assert [(e.failure_class, e.count, e.rule, e.first_offset) for e in events] == [
        ("timeout", 1, "net-timeout", 0), ("rate_limit", 1, "x-rate-limit", len(CHAIN_TIMEOUT + NEXT_ENTRY))]
    timeout, rate_limit = (event.first_line for event in events)
    # the chain is kept in the detail, outermost first
    assert timeout.startswith("2026-11-28 08:00:00,000 ERROR pipeline.post: post 4 failed … "
                              "requests.exceptions.ReadTimeout")
    assert timeout.index("ReadTimeout") < timeout.index("⟵ TimeoutError: The read operation timed out")
    assert "TooManyRequests: 429 Too Many Requests" in rate_limit
    assert "⟵ psycopg.OperationalError" in rate_limit


def test_a_chain_whose_outermost_exception_says_nothing_is_classified_by_the_chain(ctx: Any,
                                                                                   log: Path) -> None:
    outer = CHAIN_TIMEOUT.splitlines()[-1]
    append(log, CHAIN_TIMEOUT.replace(outer, "KeyError: 'text'"))
    assert [(e.failure_class, e.count) for e in scan_file(ctx.engine, log, ctx.now())] == [("timeout", 1)]


def test_a_blank_line_not_followed_by_a_chain_still_ends_the_record(ctx: Any, log: Path) -> None:
    append(log, "2026-11-28 09:00:00,000 ERROR pipeline.post: post 6 failed\n"
                "Traceback (most recent call last):\n"
                '  File "/srv/bot/post.py", line 12, in post\n'
                "KeyError: 'text'\n"
                "\n"
                "Traceback (most recent call last):\n"
                "tweepy.errors.TooManyRequests: 429 Too Many Requests\n")
    events = scan_file(ctx.engine, log, ctx.now(), matcher="reference")
    assert sorted((e.failure_class, e.count) for e in events) == [("rate_limit", 1), ("unknown", 1)]


def test_a_chain_split_across_two_scans_is_not_lost(ctx: Any, log: Path) -> None:
    head, _, tail = CHAIN_TIMEOUT.partition("During handling")
    append(log, head)
    first = scan_file(ctx.engine, log, ctx.now())
    append(log, "During handling" + tail + NEXT_ENTRY)
    second = scan_file(ctx.engine, log, ctx.now())
    assert [(e.failure_class, e.count) for e in first] == [("timeout", 1)]
    assert [(e.failure_class, e.count) for e in second] == [("timeout", 1)]  # the rest, on its own


@pytest.mark.parametrize("matcher", ["reference", "re2", "python"])
def test_rotation_and_truncation_give_every_path_the_same_events(ctx: Any, log: Path, matcher: str) -> None:
    append(log, NETWORK_LINE.format(1) + CHAIN_TIMEOUT)
    assert [(e.failure_class, e.count) for e in scan_file(ctx.engine, log, ctx.now(), matcher=matcher)] == [
        ("network", 1), ("timeout", 1)]
    append(log, CHAIN_CAUSE)  # written just before rotation: read from the rotated file first
    log.rename(log.with_name(log.name + ".1"))
    append(log, NEXT_ENTRY + NETWORK_LINE.format(2))
    events = scan_file(ctx.engine, log, ctx.now(), matcher=matcher)
    assert [(e.failure_class, e.count, e.first_offset) for e in events] == [
        ("rate_limit", 1, len(NETWORK_LINE.format(1) + CHAIN_TIMEOUT)), ("network", 1, len(NEXT_ENTRY))]
    log.write_text(NETWORK_LINE.format(3))  # truncated and rewritten: read from the start
    assert [(e.failure_class, e.count, e.first_offset)
            for e in scan_file(ctx.engine, log, ctx.now(), matcher=matcher)] == [("network", 1, 0)]
    assert scan_file(ctx.engine, log, ctx.now(), matcher=matcher) == []
