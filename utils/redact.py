"""The one place secrets are removed from text before it leaves the process.

Every output — log lines, check details, JSON, database rows, notifications — passes through
`redact()`. It knows the configured secret values (registered at start-up) and the shapes secrets
take in the wild (OAuth headers, bearer tokens, passwords in URLs).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from urllib.parse import quote, quote_plus

MASK = "***"

_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    # OAuth 1.0a Authorization header parameters (tweepy logs them at DEBUG).
    (re.compile(r'(oauth_(?:consumer_key|token|signature|nonce)=)"?[^",\s\\]+"?', re.I), rf"\1{MASK}"),
    (re.compile(r"(Bearer\s+)[A-Za-z0-9%._~+/=-]{8,}", re.I), rf"\1{MASK}"),
    # user:password@ in any URL
    (re.compile(r"(\b[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^@\s/]+@", re.I), rf"\1{MASK}@"),
    (re.compile(r"((?:access|refresh)_token[\"']?\s*[:=]\s*[\"']?)[A-Za-z0-9%._~+/=-]{8,}", re.I),
     rf"\1{MASK}"),
    # `<set>`/`<unset>` are the configuration view's own words for a secret, not secrets. No pattern
    # takes a backslash: redacting JSON text must never eat the escape of a quote.
    (re.compile(r"((?:password|passwd|client_secret)[\"']?\s*[:=]\s*[\"']?)(?!<(?:un)?set>)[^\s\"',&\\]+",
                re.I), rf"\1{MASK}"),
)

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()
_secret_pattern: re.Pattern[str] | None = None


def _spellings(value: str) -> set[str]:
    """A secret as given and URL-encoded (OAuth signature base strings, query strings): `a/b+c`
    is also `a%2Fb%2Bc`, and lower-case `%2f` where a library writes it so."""
    encoded = {quote(value, safe=""), quote_plus(value, safe=""), quote(value, safe="/")}
    lower = {re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), item) for item in encoded}
    return {value} | encoded | lower


def register_secrets(values: Iterable[str]) -> None:
    """Add values that must never be printed, also URL-encoded; short values (under 4
    characters) are ignored."""
    global _secrets, _secret_pattern
    with _lock:
        merged = set(_secrets) | {spelling for value in values if value and len(value) >= 4
                                  for spelling in _spellings(value)}
        _secrets = tuple(sorted(merged, key=len, reverse=True))
        _secret_pattern = (
            re.compile("|".join(re.escape(value) for value in _secrets)) if _secrets else None
        )


def redact(text: object) -> str:
    """`text` as a string with every known secret and secret-shaped token masked."""
    result = text if isinstance(text, str) else str(text)
    pattern = _secret_pattern
    if pattern is not None:
        result = pattern.sub(MASK, result)
    for shape, replacement in _PATTERNS:
        result = shape.sub(replacement, result)
    return _mask_cut_secret(result, _secrets)


MIN_CUT_PREFIX = 6  # a shorter tail is too likely to be ordinary text


def _mask_cut_secret(text: str, secrets: tuple[str, ...]) -> str:
    """Mask the head of a secret left at the end of text that someone shortened before redacting."""
    body = text.rstrip("….\n ")
    for secret in secrets:
        start = body.rfind(secret[:MIN_CUT_PREFIX], max(0, len(body) - len(secret)))
        if start >= 0 and secret.startswith(body[start:]):
            return body[:start] + MASK + text[len(body):]
    return text


def one_line(text: object, limit: int = 300) -> str:
    """A redacted single line, at most `limit` characters, for details and messages."""
    flat = " ".join(redact(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
