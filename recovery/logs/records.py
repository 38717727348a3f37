"""Group log lines into records (a line plus its traceback) and keep the ones that are errors.

Python's logging writes an exception as the message line, then `Traceback …`, indented frames,
the exception line and maybe more lines of its message (tweepy: `429 Too Many Requests` then
`Too Many Requests`). A chained exception adds, after a blank line, "During handling of the
above exception…" or "The above exception was the direct cause…", a blank line and the next
traceback: all of it is one record. The whole record is what the classifier needs; one record
counts once, classified by its last (outermost) exception.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from recovery.classify import MAX_TEXT, Classification, is_error_line
from utils.failure_classes import FailureClass
from utils.redact import one_line

# A line that starts a new log entry: a timestamp, a syslog date, a level word, a JSON object.
ENTRY_START = re.compile(
    r"^(?:\[?\d{4}-\d{2}-\d{2}|\[?\d{2}:\d{2}:\d{2}|[A-Z][a-z]{2} [ \d]\d \d\d:|\{"
    r"|\[?(?:DEBUG|INFO|NOTICE|WARN(?:ING)?|ERROR|CRITICAL|FATAL)\b)"
)
TRACEBACK_PART = re.compile(r"^(?:\s|Traceback \(most recent call last\)|During handling of the above"
                            r"|The above exception was the direct cause)")
CHAIN_MARKERS = ("During handling of the above exception", "The above exception was the direct cause")
TRACEBACK_HEAD = "Traceback (most recent call last)"
MAX_RECORD_LINES = 200
MAX_MESSAGE_TAIL = 5  # lines after a traceback's exception line that still belong to it


class _HasText(Protocol):
    @property
    def offset(self) -> int: ...
    @property
    def text(self) -> str: ...


class Record:
    """One log entry: its first line's offset, its lines (bounded), and whether it is an error."""

    __slots__ = ("after_marker", "entry", "error", "in_traceback", "last_part", "lines", "offset", "size",
                 "tail")

    def __init__(self, offset: int, first_line: str, starts_entry: bool, maybe_error: bool = True) -> None:
        self.offset = offset
        self.lines = [first_line]
        self.size = len(first_line)
        self.error = maybe_error and is_error_line(first_line)
        # the last non-blank line was a chain marker (the first line too: a scan began mid-chain)
        self.after_marker = first_line.startswith(CHAIN_MARKERS)
        self.in_traceback = self.after_marker or first_line.startswith("Traceback")
        # A timestamped entry: unprefixed lines after it are its message's further lines
        # (`logger.error("post failed: %s", exc)` with tweepy's two-line exception text).
        self.entry = starts_entry
        self.tail = -1  # lines seen after the traceback's exception line; -1 = not reached yet
        self.last_part = 0  # index in `lines` where the last chained traceback starts (0: not chained)

    def add(self, text: str, maybe_error: bool = True) -> None:
        """Append a continuation line (kept while the record is small) and note if it is an error.

        `maybe_error=False`: the caller knows the line is no error line (a block scan said so).
        """
        if len(self.lines) < MAX_RECORD_LINES and self.size < MAX_TEXT:
            if self.after_marker and text.startswith(TRACEBACK_HEAD):
                self.last_part = len(self.lines)
            self.lines.append(text)
            self.size += len(text) + 1
        if text:
            self.after_marker = text.startswith(CHAIN_MARKERS)
        self.error = self.error or (maybe_error and is_error_line(text))

    @property
    def has_room(self) -> bool:
        """Whether another line would still be kept."""
        return len(self.lines) < MAX_RECORD_LINES and self.size < MAX_TEXT

    def add_frame(self, text: str) -> None:
        """What `feed` does with a line that starts with a space or tab and is no error line (a
        traceback frame; it always continues the record): the fast path's shortcut."""
        self.tail = -1
        self.after_marker = False
        if self.has_room:
            self.lines.append(text)
            self.size += len(text) + 1

    @property
    def text(self) -> str:
        """The record for the classifier: its first line and as much of its end as fits."""
        return _bounded(self.lines)

    @property
    def outer_text(self) -> str | None:
        """For a chained traceback, its first line and the last (outermost) part; else None."""
        return _bounded([self.lines[0], *self.lines[self.last_part:]]) if self.last_part else None

    @property
    def summary(self) -> str:
        """One redacted line of at most 300 characters: the first line and the exception line(s).

        A chain shows its outermost exception first, then the ones it was raised from.
        """
        head = one_line(self.lines[0], 300) if self.lines else ""
        if self.last_part:
            outer = _exception_line(self.lines[self.last_part:])
            inner = [line for line in _messages(self.lines[1:self.last_part]) if is_error_line(line)]
            return one_line(" ⟵ ".join([f"{head} … {outer}", *reversed(inner)]), 300)
        last = _exception_line(self.lines[1:])
        return one_line(f"{head} … {last}", 300) if last and last != self.lines[0] else head


def _messages(lines: list[str]) -> list[str]:
    return [line for line in lines if line.strip() and not TRACEBACK_PART.match(line)]


def _exception_line(lines: list[str]) -> str:
    """The last error line among the message lines, else the last message line."""
    rest = _messages(lines)
    return next((line for line in reversed(rest) if is_error_line(line)), rest[-1] if rest else "")


def _bounded(lines: list[str]) -> str:
    joined = "\n".join(lines)
    if len(joined) <= MAX_TEXT:
        return joined
    return lines[0][: MAX_TEXT // 4] + "\n" + joined[-(MAX_TEXT * 3 // 4):]


def classify_record(record: Record, classify: Callable[[str], Classification]) -> Classification:
    """The record's class: a chain speaks by its outermost exception, then by its whole text."""
    outer = record.outer_text
    if outer is not None:
        verdict = classify(outer)
        if verdict.failure_class != FailureClass.UNKNOWN:
            return verdict
    return classify(record.text)


class RecordBuilder:
    """Feed lines one by one; get back each error record once it is complete."""

    __slots__ = ("blank", "current")

    def __init__(self) -> None:
        self.current: Record | None = None
        self.blank: tuple[int, str] | None = None  # an empty line inside a traceback: chain or end?

    @property
    def open_error(self) -> bool:
        """Whether the record still open is an error (more lines may still join it)."""
        return self.current is not None and self.current.error

    def feed(self, offset: int, text: str, maybe_error: bool = True) -> Record | None:
        """Take the next line; the error record it completed, if any."""
        done = None
        current = self.current
        if self.blank is not None:
            blank, self.blank = self.blank, None
            if current is not None and (text.startswith(CHAIN_MARKERS)
                                        or (current.after_marker and text.startswith(TRACEBACK_HEAD))):
                current.add(blank[1])
            else:
                done = self._start(*blank, False)
                current = self.current
        starts_entry = ENTRY_START.match(text) is not None  # once per line: this is the hot loop
        if current is not None and not text and current.in_traceback:
            self.blank = (offset, text)
            return done
        if current is not None and _continues(current, text, starts_entry):
            current.add(text, maybe_error)
            return done
        return self._start(offset, text, starts_entry, maybe_error) or done

    def flush(self) -> Record | None:
        """The last record, if it is an error (the input ended)."""
        if self.blank is not None:
            done = self._start(*self.blank, False)
            self.blank = None
            return done
        current, self.current = self.current, None
        return current if current is not None and current.error else None

    def _start(self, offset: int, text: str, starts_entry: bool, maybe_error: bool = True) -> Record | None:
        previous = self.current
        self.current = Record(offset, text, starts_entry, maybe_error)
        return previous if previous is not None and previous.error else None


def error_records(lines: Iterable[_HasText]) -> Iterator[Record]:
    """The records among `lines` that contain an error line, in order."""
    builder = RecordBuilder()
    for line in lines:
        done = builder.feed(line.offset, line.text)
        if done is not None:
            yield done
    done = builder.flush()
    if done is not None:
        yield done


def _continues(record: Record, text: str, starts_entry: bool) -> bool:
    """Whether `text` belongs to `record` (a traceback frame, its exception line, its message)."""
    if TRACEBACK_PART.match(text):
        record.in_traceback = record.in_traceback or text.startswith("Traceback")
        record.tail = -1
        return True
    if not (record.in_traceback or record.entry) or starts_entry or not text.strip():
        return False
    record.tail += 1
    return record.tail <= MAX_MESSAGE_TAIL
