"""`disk_space`: free space on every DISK_PATHS entry against the two thresholds."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from checks.base import CheckFailed, CheckUnknown, CheckWarning, Passed, Status
from utils.failure_classes import FailureClass

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "disk_space"


def _size(n_bytes: float) -> str:
    """Bytes in the largest binary unit that keeps the number at least 1 (a small disk is not 0 GiB)."""
    for unit, scale in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n_bytes >= scale:
            return f"{n_bytes / scale:.2f} {unit}"
    return f"{n_bytes:.0f} B"


def check(ctx: MonitorContext) -> Passed:
    """Critical below DISK_CRIT_FREE_PERCENT, warning below DISK_WARN_FREE_PERCENT."""
    import psutil

    settings = ctx.settings
    paths: dict[str, dict[str, Any]] = {}
    verdicts: list[tuple[Status, str]] = []
    for path in dict.fromkeys(str(p) for p in settings.disk_paths):
        try:
            usage = psutil.disk_usage(path)
        except (FileNotFoundError, NotADirectoryError):
            verdicts.append((Status.UNKNOWN, f"{path} does not exist"))
            paths[path] = {"exists": False}
            continue
        except OSError as exc:
            verdicts.append((Status.UNKNOWN, f"{path}: {exc.strerror or exc}"))
            paths[path] = {"error": str(exc)}
            continue
        free_percent = round(usage.free / usage.total * 100, 2) if usage.total else 0.0
        paths[path] = {"free_bytes": usage.free, "total_bytes": usage.total,
                       "free_percent": free_percent}
        text = f"{path} {free_percent:g}% free ({_size(usage.free)})"
        if free_percent < settings.disk_crit_free_percent:
            verdicts.append((Status.CRITICAL, text))
        elif free_percent < settings.disk_warn_free_percent:
            verdicts.append((Status.WARNING, text))
        else:
            verdicts.append((Status.OK, text))
    worst = Status.worst(status for status, _ in verdicts)
    shown = [text for status, text in verdicts if status is worst] or ["no DISK_PATHS"]
    detail = "; ".join(shown)
    data = {"paths": paths}
    if worst is Status.CRITICAL:
        raise CheckFailed(f"low disk space: {detail}", failure_class=FailureClass.DISK, data=data)
    if worst is Status.UNKNOWN:
        raise CheckUnknown(detail, data=data)
    if worst is Status.WARNING:
        raise CheckWarning(f"disk space getting low: {detail}", failure_class=FailureClass.DISK, data=data)
    return Passed(detail, data)
