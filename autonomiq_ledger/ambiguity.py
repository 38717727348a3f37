"""Whether a failed attempt may have reached X (so the tweet may exist): from the exception our
posting helper caught, or from the error text a pipeline wrote itself.

An ambiguous attempt makes a later "duplicate content" answer mean `posted`, never `skipped`.
"""

from __future__ import annotations

import re

# Failure classes where the call may have reached X: timeout, network, 5xx (incl. an unreadable 2xx).
AMBIGUOUS_CLASSES = frozenset({"timeout", "network", "server_error"})
# Failures before anything was sent: no connection, no name, a connect timeout, a TLS handshake.
_NOT_SENT = re.compile(
    r"NewConnectionError|NameResolutionError|Failed to resolve|Name or service not known"
    r"|Connection refused|ECONNREFUSED|ConnectTimeout|connect timeout|SSLError|CERTIFICATE_VERIFY"
    r"|Network is unreachable|No route to host", re.IGNORECASE)


def may_have_reached_x(exc: BaseException) -> bool:
    """True when the request may have been sent and acted on: 5xx, read timeout, dropped
    connection. False for X's 4xx answers and for failures before anything was sent."""
    import requests
    import tweepy

    if isinstance(exc, tweepy.TwitterServerError):
        return True
    if isinstance(exc, tweepy.HTTPException):
        return False
    if isinstance(exc, requests.ConnectTimeout | requests.exceptions.SSLError):
        return False
    if isinstance(exc, requests.ConnectionError):
        return not _NOT_SENT.search(str(exc))
    return True  # a read timeout, a 2xx with an unreadable body, anything unknown: it may have


def text_may_have_reached_x(failure_class: str, error: str | None) -> bool:
    """The same question for a failure a pipeline recorded itself (class + `last_error` text):
    a timeout, a dropped connection, a 5xx or an unreadable 2xx, unless the text shows that no
    connection was ever made."""
    if failure_class not in AMBIGUOUS_CLASSES:
        return False
    if failure_class == "server_error":
        return True
    text = error or ""
    return not (_NOT_SENT.search(text[:8192]) or _NOT_SENT.search(text[-8192:]))
