"""The health checks, as an explicit list: adding one is one file plus one line here."""

from __future__ import annotations

from checks import database, disk_space, internet, scheduler, twitter_api
from checks.base import CheckFn

CHECKS: dict[str, CheckFn] = {
    twitter_api.NAME: twitter_api.check,
    database.NAME: database.check,
    internet.NAME: internet.check,
    disk_space.NAME: disk_space.check,
    scheduler.NAME: scheduler.check,
}
