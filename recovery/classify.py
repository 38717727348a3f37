"""Turn an error into a failure class: an exception, a stored `last_error`, or a log line.

The patterns are data (`recovery/error_patterns.py`); this module only gathers the evidence —
the text, the HTTP status, the v1.1 codes, the exception types — and finds the first rule that
matches. `unknown` is an honest answer and never triggers retries.
"""

from __future__ import annotations

import errno as errno_names
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from http import HTTPStatus
from typing import TypeVar

from recovery.error_patterns import (
    CODE_PATTERNS,
    ERROR_STATUS,
    ERROR_WORDS,
    QUIET_LEVEL,
    RULES,
    STATUS_PATTERNS,
    Rule,
)
from utils.failure_classes import FailureClass

logger = logging.getLogger(__name__)

MAX_TEXT = 16_384  # enough for a traceback's last frames and an error body; bounds regex time
_CHAIN_DEPTH = 8
_T = TypeVar("_T", str, bytes)
_HTTP_STATUSES = frozenset(int(status) for status in HTTPStatus)


@dataclass(frozen=True)
class Classification:
    """What the classifier decided and why (`rule` is the id of the matching rule, or "none")."""

    failure_class: FailureClass
    rule: str
    status_code: int | None = None


@dataclass(frozen=True)
class _Evidence:
    text: str
    status: int | None


def classify(error: BaseException | str | bytes | None) -> Classification:
    """The failure class of `error`; never raises, `unknown` when no rule matches.

    For an exception, the exception itself is tried first, then what it wraps (`__cause__`,
    `__context__`, urllib3's `reason`): the error that was raised speaks before its history.
    """
    try:
        evidences = _gather(error)
    except Exception:  # a hostile __str__ or response must not break a sweep
        logger.warning("could not read an error of type %s", type(error).__name__, exc_info=True)
        return Classification(FailureClass.UNKNOWN, "none")
    for evidence in evidences:
        for rule in RULES:
            if _matches(rule, evidence):
                return Classification(rule.failure_class, rule.id, evidence.status)
    status = next((evidence.status for evidence in evidences if evidence.status), None)
    return Classification(FailureClass.UNKNOWN, "none", status)


def is_error_line(line: str) -> bool:
    """Whether a log line looks like an error worth classifying (level word, exception, failure)."""
    line = line[:MAX_TEXT]
    if ERROR_STATUS.search(line):
        return True
    return not QUIET_LEVEL.search(line, 0, 80) and bool(ERROR_WORDS.search(line.lower()))


def _matches(rule: Rule, evidence: _Evidence) -> bool:
    if rule.statuses is not None and evidence.status not in rule.statuses:
        return False
    return rule.pattern is None or rule.pattern.search(evidence.text) is not None


def _gather(error: BaseException | str | bytes | None) -> list[_Evidence]:
    if error is None:
        return [_Evidence("", None)]
    if isinstance(error, bytes | bytearray):
        error = _head_and_tail(bytes(error)).decode("utf-8", errors="replace")
    if isinstance(error, str):
        text = _head_and_tail(error)
        return [_Evidence(with_tokens(text, _codes_in(text), ()), _status_in(text))]
    return [_from_exception(exc) for exc in _chain(error)]


def _head_and_tail(text: _T) -> _T:
    """At most MAX_TEXT of `text`: its head (what was raised) and its tail (a traceback's last
    line, X's body at the end of a long log), so an error at the end of 1 MB still counts."""
    if len(text) <= MAX_TEXT:
        return text
    half = MAX_TEXT // 2
    gap = b"\n...\n" if isinstance(text, bytes) else "\n...\n"
    return text[:half] + gap + text[-half:]  # type: ignore[operator]


def _from_exception(exc: BaseException) -> _Evidence:
    body, status = _response_of(exc)
    text = f"{type(exc).__module__}.{type(exc).__qualname__}: {_safe_str(exc)}\n{body}"[:MAX_TEXT]
    codes = [code for code in getattr(exc, "api_codes", None) or () if isinstance(code, int)]
    codes += _codes_in(text)
    errnos = [exc.errno] if isinstance(exc, OSError) and isinstance(exc.errno, int) else []
    return _Evidence(with_tokens(text, codes, errnos), status or _status_in(text))


def _chain(error: BaseException) -> Iterator[BaseException]:
    """The error, its causes and contexts, and urllib3's `reason`, each once, depth-bounded."""
    seen: set[int] = set()
    todo: list[BaseException] = [error]
    while todo and len(seen) < _CHAIN_DEPTH:
        exc = todo.pop(0)
        if id(exc) in seen:
            continue
        seen.add(id(exc))
        yield exc
        linked = [exc.__cause__, exc.__context__, getattr(exc, "reason", None),
                  *(arg for arg in getattr(exc, "args", ()) if isinstance(arg, BaseException))]
        todo.extend(item for item in linked if isinstance(item, BaseException))


def _response_of(exc: BaseException) -> tuple[str, int | None]:
    """The body text and status of an HTTP response attached to `exc` (tweepy, requests)."""
    response = getattr(exc, "response", None)
    status = (getattr(response, "status_code", None) or getattr(response, "status", None)  # aiohttp
              or getattr(exc, "status_code", None))
    status = status if isinstance(status, int) and 100 <= status <= 599 else None
    body = getattr(response, "text", "") if response is not None else ""
    if not isinstance(body, str):
        body = ""
    return body[:MAX_TEXT], status


def _safe_str(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a hostile or broken __str__ must not break a sweep
        return repr(exc.args)[:MAX_TEXT]


def _status_in(text: str) -> int | None:
    for pattern in STATUS_PATTERNS:
        match = pattern.search(text)
        if match and int(match.group(1)) in _HTTP_STATUSES:
            return int(match.group(1))
    return status_in_json(text)


def status_in_json(text: str) -> int | None:
    stripped = text.strip()
    if not stripped.startswith("{"):
        return None
    try:
        status = json.loads(stripped).get("status")
    except (ValueError, AttributeError):
        return None
    return status if status in _HTTP_STATUSES and status >= 400 else None


def _codes_in(text: str) -> list[int]:
    return [int(next(group for group in match.groups() if group))
            for pattern in CODE_PATTERNS for match in pattern.finditer(text)]


def with_tokens(text: str, codes: list[int] | tuple[int, ...], errnos: list[int] | tuple[int, ...]) -> str:
    tokens = [f"v1code={code}" for code in dict.fromkeys(codes)]
    tokens += [f"errno={errno_names.errorcode.get(number, number)}" for number in dict.fromkeys(errnos)]
    return f"{text}\n[{' '.join(tokens)}]" if tokens else text
