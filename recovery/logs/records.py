"""Group log lines into records (a line plus its traceback) and keep the ones that are errors.

Python's logging writes an exception as the message line, then `Traceback …`, indented frames,
the exception line and maybe more lines of its message (tweepy: `429 Too Many Requests` then
`Too Many Requests`). The whole record is what the classifier needs; one record counts once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Protocol

from recovery.classify import MAX_TEXT, is_error_line
from utils.redact import one_line

# A line that starts a new log entry: a timestamp, a syslog date, a level word, a JSON object.
ENTRY_START = re.compile(
    r"^(?:\[?\d{4}-\d{2}-\d{2}|\[?\d{2}:\d{2}:\d{2}|[A-Z][a-z]{2} [ \d]\d \d\d:|\{"
    r"|\[?(?:DEBUG|INFO|NOTICE|WARN(?:ING)?|ERROR|CRITICAL|FATAL)\b)"
)
TRACEBACK_PART = re.compile(r"^(?:\s|Traceback \(most recent call last\)|During handling of the above"
                            r"|The above exception was the direct cause)")
MAX_RECORD_LINES = 200
MAX_MESSAGE_TAIL = 5  # lines after a traceback's exception line that still belong to it


class _HasText(Protocol):
    offset: int
    text: str


class Record:
    """One log entry: its first line's offset, its lines (bounded), and whether it is an error."""

    __slots__ = ("entry", "error", "in_traceback", "lines", "offset", "size", "tail")

    def __init__(self, offset: int, first_line: str, starts_entry: bool) -> None:
        self.offset = offset
        self.lines = [first_line]
        self.size = len(first_line)
        self.error = is_error_line(first_line)
        self.in_traceback = first_line.startswith("Traceback")
        # A timestamped entry: unprefixed lines after it are its message's further lines
        # (`logger.error("post failed: %s", exc)` with tweepy's two-line exception text).
        self.entry = starts_entry
        self.tail = -1  # lines seen after the traceback's exception line; -1 = not reached yet

    def add(self, text: str) -> None:
        """Append a continuation line (kept while the record is small) and note if it is an error."""
        if len(self.lines) < MAX_RECORD_LINES and self.size < MAX_TEXT:
            self.lines.append(text)
            self.size += len(text) + 1
        self.error = self.error or is_error_line(text)

    @property
    def text(self) -> str:
        """The record for the classifier: its first line and as much of its end as fits."""
        joined = "\n".join(self.lines)
        if len(joined) <= MAX_TEXT:
            return joined
        return self.lines[0][: MAX_TEXT // 4] + "\n" + joined[-(MAX_TEXT * 3 // 4):]

    @property
    def summary(self) -> str:
        """One redacted line of at most 300 characters: the first line and the exception line."""
        rest = [line for line in self.lines[1:] if line.strip() and not TRACEBACK_PART.match(line)]
        last = next((line for line in reversed(rest) if is_error_line(line)), rest[-1] if rest else "")
        head = one_line(self.lines[0], 300) if self.lines else ""
        return one_line(f"{head} … {last}", 300) if last and last != self.lines[0] else head


def error_records(lines: Iterable[_HasText]) -> Iterator[Record]:
    """The records among `lines` that contain an error line, in order."""
    current: Record | None = None
    for line in lines:
        text = line.text
        starts_entry = ENTRY_START.match(text) is not None  # once per line: this is the hot loop
        if current is not None and _continues(current, text, starts_entry):
            current.add(text)
            continue
        if current is not None and current.error:
            yield current
        current = Record(line.offset, text, starts_entry)
    if current is not None and current.error:
        yield current


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
