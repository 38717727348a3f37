"""Incremental reading of the pipeline's log files, and their error lines as failure events.

Per file the `log_offsets` table keeps the inode, the byte offset read so far and a hash of the
file's head, so a scan reads only new bytes and survives rotation (inode changed: the rotated
file's unread tail is read first when it is still next to the log), truncation (size below the
offset) and truncate-and-rewrite (head hash changed). Files are streamed in chunks and lines are
capped, so memory stays bounded for any file size. A line without its newline is left for the
next scan. Offsets are saved only once every line of the file was handed out.
"""

from __future__ import annotations

import errno
import glob
import hashlib
import logging
import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, NamedTuple, Protocol, TypeVar

from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from recovery.classify import Classification, classify
from recovery.logs.records import Record, classify_record, error_records
from utils.db import log_offsets
from utils.redact import one_line

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from utils.context import MonitorContext

logger = logging.getLogger(__name__)

HEAD_BYTES = 1024
CHUNK_BYTES = 1 << 20
BLOCK_BYTES = 1 << 20  # the fast path's unit: bigger blocks did not scan faster
MAX_LINE_BYTES = 1 << 16
_COMPRESSED = (".gz", ".bz2", ".xz", ".zst", ".zip")


class Line(NamedTuple):
    """One complete line: its text (capped, decoded with replacement) and its byte span."""

    offset: int
    end: int
    text: str


class _Item(Protocol):
    @property
    def end(self) -> int: ...


_T = TypeVar("_T", bound=_Item)


@dataclass(frozen=True)
class _Saved:
    inode: str
    offset: int
    head_hash: str


def read_new_lines(engine: Engine, path: Path | str, now: datetime, *,
                   max_line_bytes: int = MAX_LINE_BYTES, chunk_bytes: int = CHUNK_BYTES) -> Iterator[Line]:
    """The lines appended to `path` since the last complete read; raises OSError if unreadable.

    The new offset is saved when the iteration completes; stopping early re-reads next time.
    """
    return read_new(engine, path, now,
                    lambda handle, start: _stream(handle, start, max_line_bytes, chunk_bytes))


def read_new(engine: Engine, path: Path | str, now: datetime,
             stream: Callable[[BinaryIO, int], Iterator[_T]]) -> Iterator[_T]:
    """What `stream` makes of the bytes appended since the last complete read (lines or blocks)."""
    key = str(path)
    if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the open() forever
        raise OSError(errno.EINVAL, "not a regular file", key)
    saved = _load(engine, key)
    with open(path, "rb") as handle:
        info = os.fstat(handle.fileno())
        inode = f"{info.st_dev}:{info.st_ino}"
        if saved is not None and saved.inode != inode:
            yield from _rotated_tail(Path(path), saved, stream)
        start = _start_offset(key, saved, inode, handle, info.st_size)
        end = start
        for item in stream(handle, start):
            yield item
            end = item.end
        _save(engine, key, _Saved(inode, end, _head_hash(handle, end)), now)


def _start_offset(key: str, saved: _Saved | None, inode: str, handle: BinaryIO, size: int) -> int:
    if saved is None or saved.inode != inode:
        return 0
    if size < saved.offset:
        logger.info("log %s was truncated (%s < %s bytes): reading from the start", key, size, saved.offset)
        return 0
    length = _hash_length(saved.head_hash)
    if length and _head_hash(handle, length) != saved.head_hash:
        logger.info("log %s was rewritten (its first bytes changed): reading from the start", key)
        return 0
    return saved.offset


def _rotated_tail(path: Path, saved: _Saved, stream: Callable[[BinaryIO, int], Iterator[_T]]) -> Iterator[_T]:
    """The unread end of the file `path` was rotated to (`path.1`, `path-20261128` …), if found."""
    name = glob.escape(path.name)
    candidates = [path.with_name(path.name + ".1"), *sorted(path.parent.glob(name + ".*")),
                  *sorted(path.parent.glob(name + "-*"))]
    for candidate in dict.fromkeys(candidates):
        if candidate.name.endswith(_COMPRESSED):
            continue
        try:
            with open(candidate, "rb") as handle:
                info = os.fstat(handle.fileno())
                if (f"{info.st_dev}:{info.st_ino}" != saved.inode or info.st_size < saved.offset
                        or _head_hash(handle, _hash_length(saved.head_hash)) != saved.head_hash):
                    continue
                logger.info("log %s was rotated: reading the tail of %s first", path, candidate)
                yield from stream(handle, saved.offset)
                return
        except OSError:
            continue


def _stream(handle: BinaryIO, start: int, max_line_bytes: int, chunk_bytes: int) -> Iterator[Line]:
    """Complete lines from `start`; a line longer than the cap keeps its first `max_line_bytes`."""
    handle.seek(start)
    line_start = start  # file offset of the line being assembled across chunks
    pending = b""  # its first bytes (at most the cap) …
    carried = 0  # … and its true length so far
    while chunk := handle.read(chunk_bytes):
        pieces = chunk.split(b"\n")
        for index in range(len(pieces) - 1):
            piece = pieces[index]
            end = line_start + carried + len(piece) + 1
            if carried:
                piece, pending, carried = pending + piece[: max_line_bytes - len(pending)], b"", 0
            yield Line(line_start, end, decode(piece[:max_line_bytes]))
            line_start = end
        rest = pieces[-1]  # no newline yet: the line continues in the next chunk
        if len(pending) < max_line_bytes:
            pending += rest[: max_line_bytes - len(pending)]
        carried += len(rest)
    if carried > max_line_bytes:
        # A giant line still without its newline: hand out its capped head now rather than
        # re-reading it on every scan; what follows later will look like a new line.
        yield Line(line_start, line_start + carried, decode(pending))


def decode(raw: bytes | bytearray) -> str:
    return bytes(raw).decode("utf-8", errors="replace").rstrip("\r")


def _head_hash(handle: BinaryIO, length: int) -> str:
    """`<n>:<digest>` of the first n (≤ 1 KiB) bytes, so a shorter head can be re-hashed alike."""
    handle.seek(0)
    head = handle.read(min(length, HEAD_BYTES))
    return f"{len(head)}:{hashlib.blake2b(head, digest_size=16).hexdigest()}"


def _hash_length(head_hash: str) -> int:
    prefix, _, _ = head_hash.partition(":")
    return int(prefix) if prefix.isdigit() else 0


def _load(engine: Engine, key: str) -> _Saved | None:
    with engine.connect() as conn:
        row = conn.execute(select(log_offsets.c.inode, log_offsets.c.offset, log_offsets.c.head_hash)
                           .where(log_offsets.c.path == key)).first()
    return None if row is None else _Saved(row.inode, int(row.offset), row.head_hash or "")


def _save(engine: Engine, key: str, state: _Saved, now: datetime) -> None:
    values = {"inode": state.inode, "offset": state.offset, "head_hash": state.head_hash, "updated_at": now}
    with engine.begin() as conn:
        if conn.execute(update(log_offsets).where(log_offsets.c.path == key).values(**values)).rowcount:
            return
        try:
            with conn.begin_nested():
                conn.execute(insert(log_offsets).values(path=key, **values))
        except IntegrityError:  # another monitor process saved it first
            conn.execute(update(log_offsets).where(log_offsets.c.path == key).values(**values))


# --- error events ---------------------------------------------------------------------------

@dataclass(frozen=True)
class LogEvent:
    """Error records of one failure class found in one file by one scan.

    `count == 0` means the file could not be scanned and `first_line` says why: `unknown` for a
    missing or unreadable file, the database's class (`database`, `disk`) when the offsets could
    not be loaded or saved. `first_offset` is the byte offset of the first record (line numbers
    are unknowable when only new bytes are read); `rule` the classifier rule that matched it.
    """

    path: str
    failure_class: str
    count: int
    first_line: str
    first_offset: int | None = None
    rule: str = "none"


_missing_reported: set[str] = set()


def scan_logs(ctx: MonitorContext) -> list[LogEvent]:
    """The error events of every PIPELINE_LOG_FILES file since the previous scan.

    Never raises for a bad file or a database outage: those become `count == 0` events.
    """
    paths = ctx.settings.pipeline_log_files
    if not paths:
        return []
    try:
        engine = ctx.engine
    except SQLAlchemyError as exc:
        return [_unscannable(str(path), exc) for path in paths]
    return [event for path in paths for event in scan_file(engine, path, ctx.now())]


def scan_file(engine: Engine, path: Path | str, now: datetime, *,
              max_line_bytes: int = MAX_LINE_BYTES, matcher: str = "auto",
              block_bytes: int = BLOCK_BYTES) -> list[LogEvent]:
    """The error events in the new lines of one file (one event per failure class).

    `matcher`: `auto` (google-re2 if installed, else the standard library), `re2`, `python`, or
    `reference` (line by line, no block scan): all give the same events and offsets.
    """
    key = str(path)
    try:
        if matcher == "reference":
            events = _aggregate(key, error_records(read_new_lines(engine, path, now,
                                                                   max_line_bytes=max_line_bytes)), classify)
        else:
            from recovery.logs import fast_scan  # here: fast_scan imports this module
            from recovery.logs import matcher as matchers

            chosen = matchers.load(matcher)
            blocks = read_new(engine, path, now, lambda handle, start: fast_scan.stream_blocks(
                handle, start, max_line_bytes, block_bytes))
            records = fast_scan.FastScan(chosen, max_line_bytes).records(blocks)
            events = _aggregate(key, records, chosen.classify)
    except (OSError, SQLAlchemyError) as exc:
        return [_unscannable(key, exc)]
    _missing_reported.discard(key)
    return events


def _unscannable(key: str, exc: OSError | SQLAlchemyError) -> LogEvent:
    what = "read log file" if isinstance(exc, OSError) else "track log offsets"
    reason = one_line(f"cannot {what}: {getattr(exc, 'strerror', None) or exc}")
    if key not in _missing_reported:  # warn once per outage; the event says it every scan
        logger.warning("pipeline log %s: %s", key, reason)
        _missing_reported.add(key)
    return LogEvent(key, str(classify(exc).failure_class), 0, reason)


def _aggregate(path: str, records: Iterator[Record],
               classifier: Callable[[str], Classification]) -> list[LogEvent]:
    found: dict[str, tuple[Record, Classification, int]] = {}
    for record in records:
        verdict = classify_record(record, classifier)
        first, first_verdict, count = found.get(verdict.failure_class, (record, verdict, 0))
        found[verdict.failure_class] = (first, first_verdict, count + 1)
    return [LogEvent(path, str(failure_class), count, record.summary, record.offset, verdict.rule)
            for failure_class, (record, verdict, count) in found.items()]
