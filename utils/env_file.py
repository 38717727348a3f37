"""The `.env` file: read it as python-dotenv does, and say what in it could not be read.

python-dotenv skips a line it cannot parse with a log warning that names only the line, raises
`UnicodeDecodeError` on bytes that are not UTF-8, and lets a quote that is never closed swallow
the lines after it into one value (or into one unparseable statement), silently. Here a line
that cannot be read is blanked and reported; a setting of ours that would be lost that way is
reported apart (`lost`), so the caller can refuse to start on defaults the person did not mean.
Reports name lines and setting names only, never a value.
"""

from __future__ import annotations

import io
import logging
import os
import re
import stat
import sys
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from dotenv.parser import Binding

    from utils.config import Settings

_NEWLINE = re.compile(rb"(\r\n|\n|\r)")  # python-dotenv counts lines the same way
_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_.]*)\s*=(?!=)")
MAX_REPORTED = 8


@dataclass(frozen=True)
class EnvFile:
    """What a `.env` file sets, the lines it ignored and the known settings it could not read."""

    values: dict[str, str]
    ignored: tuple[str, ...] = ()
    lost: tuple[tuple[str, str], ...] = ()  # (setting name, why: "line 4: …")


def read_env(path: Path, known: Collection[str]) -> EnvFile:
    """Parse `path` (missing: empty); `known` are the setting names whose loss matters."""
    if not path.is_file():
        return EnvFile({})
    text, ignored, lost = _decoded(path.read_bytes(), known)
    from dotenv import dotenv_values
    from dotenv.parser import parse_stream

    for binding in parse_stream(io.StringIO(text)):
        _inspect(binding, known, ignored, lost)
    logging.getLogger("dotenv.main").setLevel(logging.ERROR)  # reported here, by line number
    values = {key: value for key, value in dotenv_values(stream=io.StringIO(text)).items()
              if value is not None}
    return EnvFile(values, tuple(sorted(ignored, key=_line_number)),
                   tuple(sorted(lost, key=lambda item: _line_number(item[1]))))


def _line_number(report: str) -> int:
    """N of a report that starts `line N`."""
    return int(report.split()[1].rstrip(":"))


def _decoded(raw: bytes, known: Collection[str]) -> tuple[str, list[str], list[tuple[str, str]]]:
    """The file as text with every line that is not UTF-8 blanked (its line break kept)."""
    pieces = _NEWLINE.split(raw)  # line, break, line, break, …, last line
    ignored: list[str] = []
    lost: list[tuple[str, str]] = []
    for index in range(0, len(pieces), 2):
        try:
            pieces[index].decode("utf-8")
        except UnicodeDecodeError:
            number = index // 2 + 1
            name = _assigned(pieces[index].decode("utf-8", "replace"))
            if name in known:
                lost.append((name, f"line {number}: {name} is not UTF-8 text"))
            else:
                ignored.append(f"line {number} is not UTF-8 text")
            pieces[index] = b""
    return b"".join(pieces).decode("utf-8"), ignored, lost


def _assigned(line: str) -> str:
    """The name a line assigns, "" when it assigns none."""
    match = _ASSIGNMENT.match(line)
    return match[1] if match else ""


def _lines(original: str, first: int) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line of a statement's source, blank lines before it skipped."""
    lead = original[: len(original) - len(original.lstrip())]
    number = first + len(re.findall(r"\r\n|\n|\r", lead))
    for offset, line in enumerate(re.split(r"\r\n|\n|\r", original.lstrip())):
        yield number + offset, line


def _inspect(binding: Binding, known: Collection[str], ignored: list[str],
             lost: list[tuple[str, str]]) -> None:
    """Note what one parsed statement ignored or swallowed."""
    lines = [(number, line) for number, line in _lines(binding.original.string, binding.original.line)
             if line.strip()]
    if not lines:
        return
    start, key = lines[0][0], binding.key
    if binding.error:
        name = _assigned(lines[0][1])
        if name in known:
            lost.append((name, f"line {start}: {name} cannot be parsed (a quote not closed?)"))
        else:
            ignored.append(f"line {start} cannot be parsed")
    elif key is not None and binding.value is None:
        ignored.append(f"line {start} has no '='")
    elif key is not None and key in known and len(lines) > 1:
        lost.append((key, f"line {start}: the value of {key} runs over {len(lines)} lines "
                          "(a quote not closed?)"))
    for number, line in lines[1:]:
        name = _assigned(line)
        if name in known:
            lost.append((name, f"line {number}: {name} is read as part of the statement that starts "
                               f"on line {start} (a quote not closed there?)"))


def summary(path: Path, ignored: tuple[str, ...]) -> str | None:
    """One line listing the ignored lines of `path` (None when there are none)."""
    if not ignored:
        return None
    listed = "; ".join(ignored[:MAX_REPORTED])
    more = f"; and {len(ignored) - MAX_REPORTED} more" if len(ignored) > MAX_REPORTED else ""
    return f"ENV_FILE {path}: {listed}{more}: those lines were ignored"


def exposure(path: Path | None) -> str | None:
    """A warning when the `.env` file (it holds the secrets) is open to other users, else None."""
    if path is None:
        return None
    try:
        found = os.stat(path)
    except OSError:
        return None
    mode = stat.S_IMODE(found.st_mode)
    if not stat.S_ISREG(found.st_mode) or not mode & 0o077:  # /dev/null: no file
        return None
    how = "readable" if mode & 0o044 else "writable"
    return f"ENV_FILE {path} is {how} by other users (mode {mode:04o}): run chmod 600 {path}"


def config_warnings(settings: Settings) -> list[str]:
    """The configuration warnings `check` and `status` show: ignored `.env` lines, exposure."""
    exposed = exposure(settings.env_file)
    public = None
    if settings.monitor_http_port and settings.monitor_http_host not in ("127.0.0.1", "localhost", "::1"):
        public = (f"MONITOR_HTTP_HOST={settings.monitor_http_host} serves the status page and /metrics "
                  "beyond this machine, without authentication (use 127.0.0.1 and an SSH tunnel)")
    return [*settings.env_warnings, *([exposed] if exposed else []), *([public] if public else [])]


def main(argv: list[str]) -> int:
    """`python -m utils.env_file FILE NAME…`: each NAME's value as the monitor reads FILE, one a
    line (empty when unset), so the setup script never parses `.env` its own way."""
    if len(argv) < 2:
        print("usage: python -m utils.env_file FILE NAME...", file=sys.stderr)
        return 2
    values = read_env(Path(argv[0]), ()).values
    for name in argv[1:]:
        print(values.get(name, "").replace("\n", " "))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
