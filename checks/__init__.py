"""The health checks, as an explicit list: adding one is one file plus one line here."""

from __future__ import annotations

from checks import database, disk_space, internet, scheduler, twitter_api
from checks.base import Check

CHECKS: dict[str, Check] = {check.name: check for check in (
    Check(twitter_api.NAME, twitter_api.check, spends_x_budget=True),
    Check(database.NAME, database.check, every_sweep=True),
    Check(internet.NAME, internet.check),
    Check(disk_space.NAME, disk_space.check, every_sweep=True),
    Check(scheduler.NAME, scheduler.check, every_sweep=True),
)}
