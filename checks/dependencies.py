"""Which check depends on which: a failing parent explains its children's failures.

While a parent fails, a child that fails too is still run and recorded, but incidents and fixers
see it as `unknown` (no evidence of its own) and the parent's detail names it — one incident,
one alert, and only the parent's fixers for one cause. When the parent passes again, children
whose latest result was failing are re-checked at once (`children_to_recheck`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from checks.base import CheckResult, Status

if TYPE_CHECKING:
    from utils.config import Settings

LOOPBACK = ("localhost", "127.0.0.1", "::1", "")


def _database_is_local_file(settings: Settings) -> bool:
    return settings.database_url.startswith("sqlite") and ":memory:" not in settings.database_url


def _database_is_remote(settings: Settings) -> bool:
    try:
        url = make_url(settings.database_url)
    except ArgumentError:
        return False
    return url.get_backend_name() != "sqlite" and (url.host or "") not in LOOPBACK


@dataclass(frozen=True)
class Dependency:
    """`child` cannot pass while `parent` fails, when `applies` to the settings; `says` is how
    the parent's detail mentions the folded child."""

    child: str
    parent: str
    says: str
    applies: Callable[[Settings], bool] = lambda settings: True


DEPENDENCIES: tuple[Dependency, ...] = (
    Dependency("twitter_api", "internet", "X API: not checked separately while the internet is down"),
    Dependency("database", "disk_space", "database: a file on the disk that is failing",
               _database_is_local_file),
    Dependency("database", "internet", "database: on another host, not reachable while the internet "
               "is down", _database_is_remote),
)


def dependencies(settings: Settings) -> list[Dependency]:
    """The dependencies that apply with these settings."""
    return [dependency for dependency in DEPENDENCIES if dependency.applies(settings)]


def _failing(result: CheckResult | None) -> bool:
    return result is not None and result.status in (Status.CRITICAL, Status.WARNING)


def fold(results: Iterable[CheckResult], settings: Settings) -> tuple[list[CheckResult], dict[str, str]]:
    """The results as incidents and fixers should see them, and child → parent for each folded
    child: a failing child of a critical parent becomes `unknown` with a detail naming the parent,
    and the parent's detail names what it explains."""
    by_name = {result.name: result for result in results}
    folded: dict[str, str] = {}
    notes: dict[str, list[str]] = {}
    for dependency in dependencies(settings):
        parent, child = by_name.get(dependency.parent), by_name.get(dependency.child)
        if parent is None or parent.status is not Status.CRITICAL or not _failing(child):
            continue
        folded[dependency.child] = dependency.parent
        notes.setdefault(dependency.parent, []).append(dependency.says)
    shown = []
    for result in by_name.values():
        if result.name in folded:
            result = replace(result, status=Status.UNKNOWN, failure_class=None,
                             detail=f"not checked separately while {folded[result.name]} fails "
                                    f"({result.detail})")
        elif result.name in notes:
            explains = "; ".join(notes[result.name])
            result = replace(result, detail=f"{result.detail}; also explains: {explains}")
        shown.append(result)
    return shown, folded


def children_to_recheck(results: Iterable[CheckResult], stored_failing: Iterable[str],
                        settings: Settings) -> set[str]:
    """Children not in `results` whose stored result was failing and whose parent passes now."""
    ran = {result.name: result for result in results}
    failing_before = set(stored_failing)
    return {d.child for d in dependencies(settings)
            if d.parent in ran and ran[d.parent].status is Status.OK
            and d.child not in ran and d.child in failing_before}
