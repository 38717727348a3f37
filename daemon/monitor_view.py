"""What the daemon needs of `AutonomousMonitor`, as a Protocol (the class sits above `daemon/`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from notify.monitor_view import MonitorView

if TYPE_CHECKING:
    from checks.base import CheckResult
    from recovery.registry import Registry
    from recovery.report import SweepReport


class RunnableMonitor(MonitorView, Protocol):
    """A monitor the daemon can run: rounds, sweeps, its registry and background services."""

    registry: Registry

    def run_health_round(self, trigger: str = "manual",
                         names: list[str] | None = None) -> list[CheckResult]:
        """Run the checks, store and observe the results."""
        ...

    def run_sweep(self) -> SweepReport:
        """One sweep with the registered checks and fixers."""
        ...

    def start_services(self) -> None:
        """Start notification delivery."""
        ...

    def stop_services(self, timeout_s: float = 5.0) -> None:
        """Stop what start_services started."""
        ...

    def close(self) -> None:
        """Release connections."""
        ...
