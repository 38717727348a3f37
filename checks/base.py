"""The check contract and the runner, the one place that catches broadly.

A check is a plain function `check(ctx) -> Passed` that measures something and either returns
what it measured or raises `CheckFailed` (critical), `CheckWarning` or `CheckUnknown`. Only the
runner builds `CheckResult`s: it times each check, runs them all at once on daemon threads, and
turns an exception or an overrun into a result instead of letting it take the round down.
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from utils.redact import one_line

if TYPE_CHECKING:
    from utils.context import MonitorContext

logger = logging.getLogger(__name__)


class Status(enum.Enum):
    """A check's verdict; `rank` orders them ok < warning < unknown < critical."""

    OK = "ok"
    WARNING = "warning"
    UNKNOWN = "unknown"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def exit_code(self) -> int:
        """The Nagios plugin exit code: 0 ok, 1 warning, 2 critical, 3 unknown."""
        return _EXIT[self]

    @classmethod
    def worst(cls, statuses: Any) -> Status:
        """The worst of `statuses` (OK for none)."""
        return max(statuses, key=lambda status: status.rank, default=cls.OK)


_RANK = {Status.OK: 0, Status.WARNING: 1, Status.UNKNOWN: 2, Status.CRITICAL: 3}
_EXIT = {Status.OK: 0, Status.WARNING: 1, Status.CRITICAL: 2, Status.UNKNOWN: 3}


@dataclass(frozen=True)
class Passed:
    """What a check returns when all is well: a one-line detail and what it measured."""

    detail: str
    data: dict[str, Any] = field(default_factory=dict)


class CheckFailed(Exception):
    """The thing checked is broken (critical). `failure_class` says which kind of breakage."""

    status = Status.CRITICAL

    def __init__(self, detail: str, *, failure_class: str | None = None,
                 data: dict[str, Any] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.failure_class = failure_class
        self.data = data or {}


class CheckWarning(CheckFailed):
    """Degraded but still working (warning)."""

    status = Status.WARNING


class CheckUnknown(CheckFailed):
    """The check could not tell (not configured, no systemd, …)."""

    status = Status.UNKNOWN


@dataclass(frozen=True)
class CheckResult:
    """One check's outcome; built only by the runner."""

    name: str
    status: Status
    detail: str
    duration_ms: float
    data: dict[str, Any]
    checked_at: datetime
    failure_class: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The result as the `check --json` contract shows it."""
        return {"name": self.name, "status": self.status.value, "detail": self.detail,
                "duration_ms": round(self.duration_ms, 1), "data": self.data}


CheckFn = Callable[["MonitorContext"], Passed]


@dataclass(frozen=True)
class Check:
    """A check as registered: its function and what scheduling it needs to know. Callable like
    the function, so a plain function can be registered in its place."""

    name: str
    run: CheckFn
    every_sweep: bool = False      # cheap and free: runs on every sweep, not only pre-posting
    spends_x_budget: bool = False  # each run costs X API requests

    def __call__(self, ctx: MonitorContext) -> Passed:
        return self.run(ctx)


def run_one(name: str, check: CheckFn, ctx: MonitorContext) -> CheckResult:
    """Run one check in this thread; any exception becomes a result, never propagates."""
    started = time.perf_counter()
    checked_at = ctx.now()
    failure_class = None
    try:
        outcome = check(ctx)
        status, detail, data = Status.OK, outcome.detail, outcome.data
    except CheckFailed as exc:
        status, detail, data, failure_class = exc.status, exc.detail, exc.data, exc.failure_class
    except Exception as exc:  # the runner is the one place that catches broadly
        logger.exception("check %s raised", name)
        status, detail, data = Status.CRITICAL, f"check raised {type(exc).__name__}: {exc}", {}
    duration_ms = (time.perf_counter() - started) * 1000
    return CheckResult(name, status, one_line(detail), duration_ms, data, checked_at, failure_class)


def run_checks(checks: Mapping[str, CheckFn], ctx: MonitorContext,
               timeout_s: float) -> list[CheckResult]:
    """Run every check concurrently; one that overruns `timeout_s` is abandoned as `critical`.

    The round takes about as long as its slowest check, bounded by the timeout.
    """
    results: dict[str, CheckResult] = {}
    threads = []
    for name, check in checks.items():
        thread = threading.Thread(target=lambda n=name, c=check: results.__setitem__(
            n, run_one(n, c, ctx)), name=f"check-{name}", daemon=True)
        thread.start()
        threads.append((name, thread))
    started_at = ctx.now()
    deadline = time.monotonic() + timeout_s
    for _name, thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    ordered = []
    for name, _thread in threads:
        result = results.get(name)
        if result is None:
            # Python cannot kill the thread; it is a daemon thread with inner timeouts of its own.
            logger.warning("check %s did not finish within %.1fs; abandoned", name, timeout_s)
            result = CheckResult(name, Status.CRITICAL, f"no answer within {timeout_s:g}s (abandoned)",
                                 timeout_s * 1000, {"timed_out": True}, started_at, "timeout")
        ordered.append(result)
    return ordered
