"""The fast first pass: big blocks, a C scan for candidate lines, the record code near them only.

A block holds whole lines. The matcher names the lines that may be error lines (a superset);
around each, the record builder is fed from the last line that surely starts an entry (the state
there does not depend on what came before) until the error record around it is complete. Lines
between those stretches hold no error line, so no error record: skipping them changes nothing.
At the end of a block the builder is brought up to date, so records may span blocks and files.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO, NamedTuple

from recovery.logs.matcher import Matcher
from recovery.logs.reader import BLOCK_BYTES, Line, decode
from recovery.logs.records import ENTRY_START, Record, RecordBuilder

_INDENT = b" \t"  # a line starting so always continues a record (TRACEBACK_PART: whitespace)


class Block(NamedTuple):
    """Whole lines: `data[:cut]` starts at file offset `offset`."""

    offset: int
    data: bytes
    cut: int

    @property
    def end(self) -> int:
        return self.offset + self.cut


def stream_blocks(handle: BinaryIO, start: int, max_line_bytes: int,
                  block_bytes: int = BLOCK_BYTES) -> Iterator[Block | Line]:
    """Blocks of whole lines from `start`; a line longer than a block comes as one capped Line."""
    handle.seek(start)
    offset, carry = start, b""
    while chunk := handle.read(block_bytes):
        carry = carry + chunk if carry else chunk
        while True:
            cut = carry.rfind(b"\n") + 1
            if cut:
                yield Block(offset, carry, cut)
                offset, carry = offset + cut, carry[cut:]
            if len(carry) <= max(block_bytes, max_line_bytes):
                break
            giant, carry = _giant_line(handle, offset, carry, max_line_bytes, block_bytes)
            yield giant
            offset = giant.end
    if len(carry) > max_line_bytes:  # unterminated and over the cap: handed out now, as _stream does
        yield Line(offset, offset + len(carry), decode(carry[:max_line_bytes]))


def _giant_line(handle: BinaryIO, offset: int, head: bytes, cap: int, block_bytes: int) -> tuple[Line, bytes]:
    """The line starting at `offset` (its first bytes `head`), capped; and the bytes after it."""
    length, head = len(head), head[:cap]
    while chunk := handle.read(block_bytes):
        newline = chunk.find(b"\n")
        if newline >= 0:
            return Line(offset, offset + length + newline + 1, decode(head)), chunk[newline + 1:]
        length += len(chunk)
    return Line(offset, offset + length, decode(head)), b""


class FastScan:
    """Error records from blocks and lines, as `error_records` would find them line by line."""

    def __init__(self, matcher: Matcher, max_line_bytes: int) -> None:
        self.matcher = matcher
        self.cap = max_line_bytes
        self.builder = RecordBuilder()
        self.hits: set[int] = set()  # the current block's candidate lines: others are no error lines

    def records(self, items: Iterator[Block | Line]) -> Iterator[Record]:
        """Every error record, in order."""
        for item, hits in self._with_hits(items):
            found: list[Record] = []
            if isinstance(item, Block):
                self._block(item, hits, found)
            else:
                self._feed(found, item.offset, item.text)
            yield from found
        last = self.builder.flush()
        if last is not None:
            yield last

    def _with_hits(self, items: Iterator[Block | Line]) -> Iterator[tuple[Block | Line, list[int]]]:
        """Each item with its candidate lines; with RE2 (it releases the GIL) the next block is
        scanned in a helper thread while this one's records are built."""
        if not self.matcher.releases_gil:
            for item in items:
                yield item, self.matcher.line_hits(item.data, item.cut) if isinstance(item, Block) else []
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="log-scan") as pool:
            pending: tuple[Block | Line, Future[list[int]] | None] | None = None
            for item in items:
                ahead = (pool.submit(self.matcher.line_hits, item.data, item.cut) if isinstance(item, Block)
                         else None)
                if pending is not None:
                    yield pending[0], pending[1].result() if pending[1] is not None else []
                pending = (item, ahead)
            if pending is not None:
                yield pending[0], pending[1].result() if pending[1] is not None else []

    def _block(self, block: Block, hits: list[int], found: list[Record]) -> None:
        data, cut = block.data, block.cut
        self.hits = set(hits)
        done = self._feed_lines(block, 0, -1, found) if self.builder.open_error else 0
        for hit in hits:
            if hit >= done:
                done = self._feed_lines(block, self._entry_before(data, hit, done), hit, found)
        last_line = data.rfind(b"\n", 0, cut - 1) + 1
        self._feed_lines(block, self._entry_before(data, last_line, done), cut, found)

    def _entry_before(self, data: bytes, position: int, floor: int) -> int:
        """The last line start in [floor, position] whose line starts an entry, else `floor`."""
        while position > floor:
            if ENTRY_START.match(decode(data[position:position + min(64, self.cap)])):
                return position
            position = data.rfind(b"\n", 0, position - 1) + 1
        return floor

    def _feed_lines(self, block: Block, start: int, past: int, found: list[Record]) -> int:
        """Feed lines from `start` until beyond `past` with no error record open; where it stopped."""
        data, cut, position, builder = block.data, block.cut, start, self.builder
        while position < cut:
            newline = data.find(b"\n", position, cut)
            current = builder.current
            if (current is not None and builder.blank is None and data[position] in _INDENT
                    and position not in self.hits):  # a frame: no regex needed to place it
                current.add_frame(decode(data[position:min(newline, position + self.cap)])
                                  if current.has_room else "")
            else:
                text = decode(data[position:min(newline, position + self.cap)])
                self._feed(found, block.offset + position, text, position in self.hits)
            position = newline + 1
            if position > past and not self.builder.open_error:
                break
        return position

    def _feed(self, found: list[Record], offset: int, text: str, maybe_error: bool = True) -> None:
        record = self.builder.feed(offset, text, maybe_error)
        if record is not None:
            found.append(record)
