"""What checks, fixers and channels are handed: settings and the collaborators built from them.

Plug-ins never read `os.environ` or call `datetime.now()` themselves; they use this context, so
tests control the clock and the outside world by constructing it.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from utils.db import init_db, make_engine, utc_now
from utils.http_client import make_session
from utils.redact import register_secrets

if TYPE_CHECKING:
    import requests
    import tweepy
    from sqlalchemy import Engine

    from utils.config import Settings

Clock = Callable[[], datetime]


def run_command(argv: Sequence[str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run an argument list (never a shell) with a timeout; output captured as text."""
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s,
                          check=False, stdin=subprocess.DEVNULL)


@dataclass
class MonitorContext:
    """Settings plus lazily built engine, HTTP session and X client, and an injectable clock."""

    settings: Settings
    clock: Clock = utc_now
    command_runner: Callable[..., subprocess.CompletedProcess[str]] = run_command
    _engine: Engine | None = field(default=None, repr=False)
    _session: requests.Session | None = field(default=None, repr=False)
    _x_client: tweepy.Client | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        # A pipeline that builds a context for `autonomiq_ledger.posting.post` gets the same redaction as
        # the monitor: X error texts echoing a credential never reach `posts.last_error` whole.

        register_secrets(self.settings.secret_values)

    def now(self) -> datetime:
        """The current time from the injected clock (aware, UTC)."""
        return self.clock()

    @property
    def engine(self) -> Engine:
        """The shared engine; tables are created on first use."""
        with self._lock:
            if self._engine is None:
                engine = make_engine(self.settings.database_url,
                                     connect_timeout=self.settings.check_timeout_seconds)
                init_db(engine)
                self._engine = engine
            return self._engine

    @property
    def http(self) -> requests.Session:
        """The shared HTTP session with default timeouts (not for the X API: see `x_client`)."""
        with self._lock:
            if self._session is None:
                self._session = make_session(self.settings.check_timeout_seconds)
            return self._session

    @property
    def x_client(self) -> tweepy.Client:
        """The tweepy client routed to TWITTER_API_BASE_URL with timeouts."""
        with self._lock:
            if self._x_client is None:
                from utils.x_client import build_client

                self._x_client = build_client(self.settings)
            return self._x_client

    def reset_x_client(self, settings: Settings | None = None) -> None:
        """Drop the X client (and optionally swap settings) so the next use rebuilds it."""
        with self._lock:
            if settings is not None:
                self.settings = settings
            self._x_client = None

    def dispose_engine(self) -> None:
        """Close every pooled database connection; the next use reconnects."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()

    def close(self) -> None:
        """Release the engine and the sessions."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            for session in (self._session, getattr(self._x_client, "session", None)):
                if session is not None:
                    session.close()
