"""The fast path's matchers: which lines of a block may be error lines, and the rules in C.

google-re2 (RE2's DFA: linear time, one pass for all 19 rules with `re2.Set`) is imported only
when a scan first needs it; without the wheel the standard library does the block scan and the
reference classifier does the rest. Both only narrow the work: the record code still decides
every line it is handed, so results are those of the line-by-line reference path.
"""

from __future__ import annotations

import importlib
import logging
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import cache
from typing import Any

from recovery.classify import (
    _HTTP_STATUSES,
    MAX_TEXT,
    Classification,
    classify,
    status_in_json,
    with_tokens,
)
from recovery.error_patterns import CODE_PATTERNS, ERROR_PHRASES, ERROR_WORD_STEMS, RULES, STATUS_PATTERNS
from utils.failure_classes import FailureClass

logger = logging.getLogger(__name__)

# Lines that begin `2026-11-28 07:00:00,001 INFO ` are quiet (QUIET_LEVEL finds the level within
# 80 characters), so an error word alone does not make them candidates: they are most lines.
_STAMP = ["0-9"] * 4 + ["-"] + ["0-9"] * 2 + ["-"] + ["0-9"] * 2 + [" T"] + ["0-9"] * 2 + [":"] \
    + ["0-9"] * 2 + [":"] + ["0-9"] * 2 + [",."] + ["0-9"] * 3 + [" "]
_QUIET_WORDS = ("DEBUG ", "INFO ", "NOTICE ", "TRACE ")


def _candidate_pattern() -> bytes:
    """Lines with an error word unless quiet by their prefix, and lines with an HTTP error phrase."""
    stems = "(?i:" + "|".join(ERROR_WORD_STEMS) + ")"
    later = r"[^\n]*?" + stems
    alternatives = [f"[^{_STAMP[0]}\\n]{later}", stems]
    for k in range(1, len(_STAMP)):  # a stamp broken at position k: stems cannot start inside it
        head = "".join(f"[{cls}]" for cls in _STAMP[:k])
        alternatives.append(f"{head}(?:{stems}|[^{_STAMP[k]}\\n]{later})")
    stamp = "".join(f"[{cls}]" for cls in _STAMP)
    prefixes = sorted({word[:i] for word in _QUIET_WORDS for i in range(len(word))})
    for prefix in prefixes:  # after the stamp: a stem may start inside what looks like a level
        alternatives.append(stamp + re.escape(prefix) + stems)
        following = "".join(sorted({w[len(prefix)] for w in _QUIET_WORDS if w.startswith(prefix)}))
        alternatives.append(f"{stamp}{re.escape(prefix)}[^{re.escape(following)}\\n]{later}")
    phrases = "|".join(re.escape(phrase) for phrase in ERROR_PHRASES)
    alternatives.append(rf"[^\n]*? (?:{phrases})")
    return ("(?m)^(?:" + "|".join(alternatives) + ")").encode()


@dataclass(frozen=True)
class Matcher:
    """Which lines to look at, and how to classify a record's text."""

    name: str
    line_hits: Callable[[bytes, int], list[int]]  # starts of the lines in data[:end] that may be errors
    classify: Callable[[str], Classification]
    releases_gil: bool = False  # line_hits may run in a helper thread beside the record code


@cache
def load(kind: str = "auto") -> Matcher:
    """`re2` (google-re2), `python` (standard library only), or `auto`: re2 when installed."""
    if kind in ("auto", "re2"):
        try:
            re2 = importlib.import_module("re2")
        except ImportError:
            if kind == "re2":
                raise
            logger.info("google-re2 is not installed: log analysis uses the standard library")
        else:
            return _re2_matcher(re2)
    return Matcher("python", _stdlib_hits, classify)


def _re2_matcher(re2: Any) -> Matcher:
    options = re2.Options()
    options.encoding = re2.Options.Encoding.LATIN1  # any byte is a character: invalid UTF-8 too
    options.max_mem = 64 << 20
    block = re2.compile(_candidate_pattern(), options)

    def line_hits(data: bytes, end: int) -> list[int]:
        return [match.start() for match in block.finditer(data, 0, end)]

    return Matcher("re2", line_hits, _Re2Classifier(re2).classify, releases_gil=True)


_QUIET_PREFIX = "".join(f"[{cls}]" for cls in _STAMP) + "(?:" + "|".join(_QUIET_WORDS) + ")"
_QUIET_LINE = re.compile(_QUIET_PREFIX.encode())
_NOT_QUIET = re.compile(f"\n(?!{_QUIET_PREFIX})".encode())  # a literal first: the scan runs in C
_STEMS = tuple(stem.encode() for stem in ERROR_WORD_STEMS)
_PHRASES = re.compile(b" (?:" + b"|".join(re.escape(phrase.encode()) for phrase in ERROR_PHRASES) + b")")


def _stdlib_hits(data: bytes, end: int) -> list[int]:
    """The same superset with the standard library: lines not quiet by their prefix that hold an
    error word (lower-cased bytes: str.lower() maps nothing else onto these ASCII stems), and
    lines with an HTTP error phrase."""
    starts = [match.end() for match in _NOT_QUIET.finditer(data, 0, end - 1)]
    if not _QUIET_LINE.match(data, 0, end):
        starts.insert(0, 0)
    hits = {start for start in starts
            if any(stem in data[start:data.find(b"\n", start, end)].lower() for stem in _STEMS)}
    hits.update(data.rfind(b"\n", 0, match.start()) + 1 for match in _PHRASES.finditer(data, 0, end))
    return sorted(hits)


def _for_re2(pattern: str) -> str:
    r"""A Python pattern for RE2 on ASCII text: `\s` also matches \v and \x1c-\x1f in Python."""
    space = r"\t\n\x0b\x0c\r\x1c-\x1f "
    return pattern.replace(r"\s", f"[{space}]").replace(r"\S", f"[^{space}]")


class _Re2Classifier:
    """`recovery.classify.classify` for a string, with the same answer, in one RE2 pass a kind.

    Only ASCII text takes this path (RE2's \\b, \\d and \\w are ASCII; Python's are Unicode).
    One `re2.Set` pass tells which rules match and which status and v1.1-code patterns can; for
    those Python's own pattern then runs (one has a lookahead; RE2's groups cost more).
    """

    def __init__(self, re2: Any) -> None:
        evidence = [_re2_source(pattern).replace(r"(?![\d.])", "")  # without the lookahead: a superset
                    for pattern in (*STATUS_PATTERNS, *CODE_PATTERNS)]
        rules = {position: "(?i)" + _for_re2(rule.pattern.pattern)
                 for position, rule in enumerate(RULES) if rule.pattern is not None}
        # One pass for both when the text has no v1.1 code (nearly always); else the rules again
        # over the text with its `v1code=` tokens, as the classifier sees it.
        self.both, self.both_index = _set(re2, evidence, rules)
        self.rules, self.rule_index = _set(re2, [], rules)

    def classify(self, text: str) -> Classification:
        """The failure class of a log record's text (as `classify(text)`)."""
        if not text.isascii():
            return classify(text)
        text = text[:MAX_TEXT]
        found = self.both.Match(text) or ()
        status = _status(text, found)
        codes = [int(next(group for group in match.groups() if group))
                 for index, pattern in enumerate(CODE_PATTERNS, len(STATUS_PATTERNS)) if index in found
                 for match in pattern.finditer(text)]
        matched, rule_index = found, self.both_index
        if codes:
            matched, rule_index = self.rules.Match(with_tokens(text, codes, ())) or (), self.rule_index
        for position, rule in enumerate(RULES):
            if rule.statuses is not None and status not in rule.statuses:
                continue
            if rule.pattern is None or rule_index[position] in matched:
                return Classification(rule.failure_class, rule.id, status)
        return Classification(FailureClass.UNKNOWN, "none", status)


def _set(re2: Any, first: list[str], rules: dict[int, str]) -> tuple[Any, dict[int, int]]:
    """An RE2 set of `first` (indices 0…) then the rules; where each rule's index is."""
    patterns = re2.Set.SearchSet()
    for pattern in first:
        patterns.Add(pattern)
    index = {position: patterns.Add(pattern) for position, pattern in rules.items()}
    patterns.Compile()
    return patterns, index


def _status(text: str, candidates: Collection[int]) -> int | None:
    for index, pattern in enumerate(STATUS_PATTERNS):
        match = pattern.search(text) if index in candidates else None
        if match and int(match.group(1)) in _HTTP_STATUSES:
            return int(match.group(1))
    return status_in_json(text)


def _re2_source(pattern: re.Pattern[str]) -> str:
    return ("(?i)" if pattern.flags & re.I else "") + _for_re2(pattern.pattern)
