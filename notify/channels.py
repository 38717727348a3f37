"""Channels: a thin adapter over Apprise, one Apprise object per URL so delivery is known per channel.

Apprise owns the per-service code (Telegram, Discord, Slack, e-mail, ntfy, webhooks …). It is
imported only when a message is actually sent: it costs tens of MB, the idle daemon stays small.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from utils.redact import one_line, redact

logger = logging.getLogger(__name__)
LOG_CHANNEL = "log"
# Apprise's own socket timeouts (connect, read), set on every URL that does not choose its own.
DEFAULT_TIMEOUTS = (("cto", "5"), ("rto", "10"))
# Message severity (Apprise NotifyType value) → the level the log channel writes it at.
_LOG_LEVELS = {"info": logging.INFO, "success": logging.INFO, "warning": logging.WARNING,
               "failure": logging.ERROR}
# Severity → each channel's own priority, as Apprise URL arguments (a URL that sets one keeps it):
# ntfy priority and tags, e-mail importance. A CRITICAL at 3 a.m. must not sound like a report.
_PRIORITY = {
    "ntfy": {"failure": (("priority", "max"), ("tags", "rotating_light")),
             "warning": (("priority", "high"), ("tags", "warning")),
             "success": (("priority", "low"), ("tags", "white_check_mark")),
             "info": (("priority", "low"), ("tags", "information_source"))},
    "mailto": {"failure": (("+Importance", "high"), ("+X-Priority", "1")),
               "success": (("+Importance", "low"), ("+X-Priority", "5")),
               "info": (("+Importance", "low"), ("+X-Priority", "5"))},
}
_FAMILY = {"ntfys": "ntfy", "mailtos": "mailto", "jsons": "json"}


@dataclass(frozen=True)
class Channel:
    """One configured destination: a stable id that never holds the URL's secrets, and the URL."""

    id: str
    url: str = field(repr=False)

    @property
    def scheme(self) -> str:
        return self.id.split("-", 1)[0]


def channel_id(url: str) -> str:
    """`scheme-hash`: stable for a URL, shows nothing of its tokens."""
    scheme = (urlsplit(url).scheme or "url").lower()[:16]
    return f"{scheme}-{hashlib.sha256(url.encode()).hexdigest()[:10]}"


def parse_channels(urls: Iterable[str]) -> list[Channel]:
    """One channel per distinct NOTIFY_URLS entry (the log is implicit, not listed)."""
    return [Channel(channel_id(url), url) for url in dict.fromkeys(urls)]


def with_timeouts(url: str, extra_args: Iterable[tuple[str, str]] = ()) -> str:
    """`url` with our short connect/read timeouts (and `extra_args`) added unless it sets its own."""
    given = {key for key, _ in parse_qsl(urlsplit(url).query, keep_blank_values=True)}
    extra = "&".join(f"{key}={quote(value, safe='')}" for key, value in (*DEFAULT_TIMEOUTS, *extra_args)
                     if key not in given)
    if not extra:
        return url
    base, hash_mark, fragment = url.partition("#")
    joined = f"{base}{'&' if '?' in base else '?'}{extra}"
    return f"{joined}{hash_mark}{fragment}"


def message_args(channel: Channel, notify_type: str,
                 event_at: datetime | None) -> tuple[tuple[str, str], ...]:
    """The per-message URL arguments: the channel's priority for this severity, and for a JSON
    webhook the event's time as an ISO `timestamp` field of the payload."""
    family = _FAMILY.get(channel.scheme, channel.scheme)
    args = _PRIORITY.get(family, {}).get(notify_type, ())
    if family == "json" and event_at is not None:
        args = (*args, (":timestamp", event_at.isoformat()))
    return args


def log_message(title: str, body: str, notify_type: str) -> None:
    """The log channel: always delivered, at a level that follows the severity."""
    logger.log(_LOG_LEVELS.get(notify_type, logging.INFO), "notification [%s] %s | %s",
               notify_type, redact(title), one_line(body, 600))


class Sender:
    """Sends to one channel at a time through Apprise; safe to share between threads."""

    def __init__(self) -> None:
        self._plugins: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _plugin(self, channel: Channel, *, fresh: bool = False,
                args: tuple[tuple[str, str], ...] = ()) -> Any | None:
        import apprise

        with self._lock:
            if fresh or channel.id not in self._plugins:
                self._plugins[channel.id] = apprise.Apprise.instantiate(with_timeouts(channel.url, args))
            return self._plugins[channel.id]

    def describe(self, channel: Channel) -> str:
        """A privacy-safe name for the channel (Apprise's masked URL, no query string)."""
        try:
            plugin = self._plugin(channel)
        except Exception:  # a plug-in that cannot even be built is reported by `send`
            plugin = None
        if plugin is None:
            return f"{channel.scheme}:// (invalid URL, {channel.id})"
        return redact(plugin.url(privacy=True).split("?", 1)[0])

    def send(self, channel: Channel, title: str, body: str, notify_type: str,
             event_at: datetime | None = None) -> str | None:
        """Deliver one message as plain text (Apprise escapes it for Markdown channels); None when
        the channel accepted it, else a one-line reason."""
        import apprise

        try:
            # A fresh plug-in per message: Apprise's in-process throttle would otherwise sleep
            # up to 5.5 s between two messages; the outbox paces retries itself. It also carries
            # this message's priority and time.
            plugin = self._plugin(channel, fresh=True, args=message_args(channel, notify_type, event_at))
        except Exception as exc:  # Apprise's plug-in boundary: a plug-in that fails to load is an error
            return one_line(f"cannot load the {channel.scheme} plug-in: {exc}")
        if plugin is None:
            return f"not a valid Apprise URL for scheme {channel.scheme}://"
        # The capture below lowers Apprise's logger to DEBUG to read socket errors; its lines
        # (payloads included) must not flow on into our log at that level: we log the outcome.
        logging.getLogger("apprise").propagate = False
        target = apprise.Apprise()
        target.add(plugin)
        try:
            with apprise.LogCapture(level=logging.DEBUG, fmt="%(levelname)s|%(message)s") as captured:
                delivered = bool(target.notify(body=body, title=title, notify_type=notify_type,
                                                body_format=apprise.NotifyFormat.TEXT))
        except Exception as exc:  # a plug-in bug must not take the delivery thread down
            return one_line(f"{type(exc).__name__}: {exc}")
        return None if delivered else _reason(captured.getvalue())


def _reason(log_text: str) -> str:
    """Apprise's last warning, with the socket or HTTP detail it logs at debug level."""
    lines = [line.partition("|") for line in log_text.splitlines()]
    warnings = [text for level, _, text in lines if level in ("WARNING", "ERROR")]
    details = [text for level, _, text in lines
               if level == "DEBUG" and text.startswith("Socket Exception")]
    reason = warnings[-1] if warnings else "the service did not accept the message"
    return one_line(f"{reason} ({details[-1]})" if details else reason, 240)
