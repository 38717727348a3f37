"""systemd's sd_notify datagram protocol, spoken directly: READY=1, STATUS=, WATCHDOG=1, STOPPING=1.

A few lines over an AF_UNIX datagram socket (the PyPI wrappers are unmaintained). Everything is a
no-op when NOTIFY_SOCKET is unset, so the daemon runs the same in a terminal.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

from utils.redact import one_line

logger = logging.getLogger(__name__)


def _address(environ: Mapping[str, str]) -> str | None:
    raw = environ.get("NOTIFY_SOCKET", "")
    if raw.startswith("@"):  # abstract namespace
        return "\0" + raw[1:]
    return raw if raw.startswith("/") else None  # unset, or vsock:, which we do not speak


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send one datagram to NOTIFY_SOCKET; False (never an exception) when unset or unreachable."""
    address = _address(os.environ if environ is None else environ)
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.settimeout(1.0)
            sock.connect(address)
            sock.sendall(message.encode("utf-8", "replace"))
    except OSError as exc:
        logger.debug("sd_notify %r not delivered: %s", message.split("=", 1)[0], exc)
        return False
    return True


def status_line(text: str) -> str:
    """The `STATUS=` assignment for `text`: one redacted line, short enough for `systemctl status`."""
    return "STATUS=" + one_line(text, 200)


def watchdog_interval(environ: Mapping[str, str] | None = None) -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WATCHDOG_USEC), or None when no watchdog is set
    for this process (unset, unparsable, or WATCHDOG_PID names another process)."""
    environ = os.environ if environ is None else environ
    pid = environ.get("WATCHDOG_PID", "").strip()
    if pid and pid != str(os.getpid()):
        return None
    try:
        usec = int(environ.get("WATCHDOG_USEC", "").strip())
    except ValueError:
        return None
    return usec / 2_000_000 if usec > 0 else None
