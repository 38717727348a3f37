"""The registry the sweep and fix verification run from: checks, fixers, and which fixers
handle which failure class.

`AutonomousMonitor` owns one and fills it through `register_check` / `register_fixer`; the
sweep, `run_routine`'s verification and the daemon read only this, so a check or fixer registered
at run time is used exactly like a built-in one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from checks import CHECKS
from checks.base import CheckFn
from recovery.base import Routine
from recovery.playbook import PLAYBOOK, ROUTINES


@dataclass
class Registry:
    """Checks by name, fixers by name, and extra failure class → fixer names beyond the playbook."""

    checks: dict[str, CheckFn] = field(default_factory=dict)
    fixers: dict[str, Routine] = field(default_factory=dict)
    extra_fixers: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def built_in(cls) -> Registry:
        """Every built-in check and routine, as `AutonomousMonitor.from_settings` registers them."""
        return cls(dict(CHECKS), dict(ROUTINES))

    def add_check(self, name: str, check: CheckFn) -> None:
        """Register (or replace) the check run under `name`."""
        self.checks[name] = check

    def add_fixer(self, routine: Routine, failure_classes: Iterable[str] = ()) -> None:
        """Register (or replace, by name) a fixer; `failure_classes` adds it to those classes'
        routines, after the playbook's own."""
        self.fixers[routine.name] = routine
        for failure_class in failure_classes:
            names = self.extra_fixers.setdefault(str(failure_class), [])
            if routine.name not in names:
                names.append(routine.name)

    def routines_for(self, failure_class: str) -> tuple[Routine, ...]:
        """The registered fixers for `failure_class`: the playbook's (as registered, so a
        replacement wins and an unregistered one is left out), then the extra ones."""
        built_in = [self.fixers.get(r.name) for r in PLAYBOOK.get(failure_class, ())]
        extra = [self.fixers.get(name) for name in self.extra_fixers.get(str(failure_class), ())]
        return tuple(r for r in (*built_in, *extra) if r is not None)

    def routine(self, name: str) -> Routine | None:
        """The registered fixer called `name` (None when it was not registered)."""
        return self.fixers.get(name)

    def sweep_checks(self) -> dict[str, CheckFn]:
        """The checks cheap enough to run on every sweep (they spend no X API budget)."""
        return {name: check for name, check in self.checks.items()
                if getattr(check, "every_sweep", False)}
