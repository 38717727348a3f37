"""What the commands below the composition root need of `AutonomousMonitor`, as a Protocol, so
nothing here imports the class (which sits above every package)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from checks.base import CheckFn
    from notify.service import NotificationService
    from utils.context import MonitorContext


class MonitorView(Protocol):
    """A monitor's context, notifications and registered checks."""

    ctx: MonitorContext
    notifications: NotificationService

    @property
    def checks(self) -> Mapping[str, CheckFn]:
        """The registered checks by name."""
        ...
