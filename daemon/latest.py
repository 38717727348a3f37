"""Work handed to its own thread, newest value only: the daemon never waits on its database.

The daemon's job table and the report behind `/metrics` are written and read here. Callers
`submit` and go on; a database that hangs holds up only this thread, and a newer value
replaces an older one not yet handled, so nothing piles up while it hangs.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from utils.redact import one_line

logger = logging.getLogger(__name__)
_NOTHING = object()


class LatestWorker:
    """Runs `work(value)` on one thread for the newest submitted value; one log line per outage."""

    def __init__(self, name: str, work: Callable[[Any], None]) -> None:
        self.name, self.work = name, work
        self._lock = threading.Condition()
        self._pending: Any = _NOTHING
        self._busy = False
        self._sealed = False
        self._failing = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, value: Any = None, *, last: bool = False) -> None:
        """Hand over `value` (replacing one not yet handled); `last` refuses every later one."""
        with self._lock:
            if self._sealed:
                return
            self._pending, self._sealed = value, last
            self._lock.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` until everything submitted is handled; True if it was."""
        with self._lock:
            return self._lock.wait_for(lambda: self._pending is _NOTHING and not self._busy, timeout_s)

    def _run(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(lambda: self._pending is not _NOTHING)
                value, self._pending, self._busy = self._pending, _NOTHING, True
            try:
                self.work(value)
                if self._failing:
                    logger.info("%s: works again", self.name)
                self._failing = False
            except Exception as exc:  # the database is down or hangs: the next value tries again
                if not self._failing:
                    logger.warning("%s failed (logged once until it works again): %s", self.name,
                                   one_line(f"{type(exc).__name__}: {exc}", 240))
                self._failing = True
            finally:
                with self._lock:
                    self._busy = False
                    self._lock.notify_all()
