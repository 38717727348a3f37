"""`/metrics` in the Prometheus text format, from the status report the daemon keeps in memory.

A scrape never touches the database (the daemon re-reads the report after each job, keeping
the last values of what the database could not give), so it answers at once even when the
database hangs. Imported only when MONITOR_HTTP_PORT is set (prometheus_client costs memory).
The registry is our own, so no process/platform collectors of the library leak in.
"""

from __future__ import annotations

import platform
import tomllib
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from checks.base import Status
from daemon.scheduling import JobStats

JOB_COUNTERS = ("succeeded", "errors", "timeouts", "missed", "skipped")
PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def version() -> str:
    """The project version from pyproject.toml, or `unknown`."""
    try:
        return str(tomllib.loads(PYPROJECT.read_text())["project"]["version"])
    except (OSError, KeyError, ValueError):
        return "unknown"


def _timestamp(moment: str | None) -> float | None:
    try:
        return datetime.fromisoformat(moment).timestamp() if moment else None
    except ValueError:
        return None


class MonitorCollector:
    """Yields every metric from one `gather_status` report plus the daemon's job counters."""

    def __init__(self, report: Callable[[], dict[str, Any]], stats: JobStats,
                 started_at: datetime | None = None) -> None:
        self.report, self.stats, self.started_at = report, stats, started_at
        self.build = {"version": version(), "python": platform.python_version()}

    def collect(self) -> Iterator[Metric]:
        report = self.report()
        build = GaugeMetricFamily("autonomiq_build_info", "Version of the monitor and of Python (always 1)",
                                  labels=list(self.build))
        build.add_metric(list(self.build.values()), 1)
        yield build
        if self.started_at is not None:
            yield GaugeMetricFamily("autonomiq_start_time_seconds", "When the daemon started (Unix time)",
                                    value=self.started_at.timestamp())
        yield from self._checks(report["checks"])
        yield from self._ledger(report)
        yield from self._x_api(report["x_api"])
        yield from self._jobs(report["jobs"])
        failures = CounterMetricFamily("autonomiq_failures", "Failures seen since start, by source "
                                       "(check name, ledger, log) and failure class",
                                       labels=["source", "failure_class"])
        for (source, failure_class), count in sorted(self.stats.failure_counts().items()):
            failures.add_metric([source, failure_class], count)
        yield failures
        yield GaugeMetricFamily("autonomiq_database_readable", "1 when the last status read could read "
                                "every part of the database (else the other series keep their last "
                                "values)", value=0 if report["errors"] else 1)

    def _checks(self, checks: list[dict[str, Any]]) -> Iterator[Metric]:
        status = GaugeMetricFamily("autonomiq_check_status", "Latest result per check (Nagios code: "
                                   "0 ok, 1 warning, 2 critical, 3 unknown)", labels=["check"])
        duration = GaugeMetricFamily("autonomiq_check_duration_seconds", "Duration of the latest run",
                                     labels=["check"])
        age = GaugeMetricFamily("autonomiq_check_age_seconds", "Age of the latest result",
                                labels=["check"])
        for check in checks:
            status.add_metric([check["name"]], Status(check["status"]).exit_code)
            duration.add_metric([check["name"]], check["duration_ms"] / 1000)
            age.add_metric([check["name"]], check["age_seconds"] or 0)
        yield from (status, duration, age)

    def _ledger(self, report: dict[str, Any]) -> Iterator[Metric]:
        posts = GaugeMetricFamily("autonomiq_posts", "Posts in the ledger by status", labels=["status"])
        for status, count in sorted(report["posts_by_status"].items()):
            posts.add_metric([status], count)
        actions = GaugeMetricFamily("autonomiq_actions_last_24h", "Recovery actions recorded in the "
                                    "last 24 hours, by routine and outcome", labels=["routine", "outcome"])
        for row in report["actions_by_outcome"]:
            actions.add_metric([row["routine"], row["outcome"]], row["count"])
        incidents = GaugeMetricFamily("autonomiq_open_incidents", "Open incidents",
                                      value=report.get("open_incidents", len(report["incidents"])))
        by_status = report["posts_by_status"]
        retries = GaugeMetricFamily("autonomiq_posts_waiting_retry", "Posts waiting for a retry "
                                    "(failed or retry_scheduled)",
                                    value=by_status.get("retry_scheduled", 0) + by_status.get("failed", 0))
        yield from (posts, actions, incidents, retries, *self._posting(report.get("posting") or {}))

    def _posting(self, posting: dict[str, Any]) -> Iterator[Metric]:
        allowed = GaugeMetricFamily("autonomiq_posting_allowed_posts", "Posts that may go now under "
                                    "the account's X posting budget (-1: no limit known)")
        allowed.add_metric([], -1 if posting.get("posts") is None else posting["posts"])
        held = GaugeMetricFamily("autonomiq_posting_held_until_timestamp_seconds", "Until when every "
                                 "post is held (429, spent 24-hour window, usage cap); 0 when not held")
        held.add_metric([], _timestamp(posting.get("held_until")) or 0)
        yield from (allowed, held)

    def _x_api(self, budgets: list[dict[str, Any]]) -> Iterator[Metric]:
        remaining = GaugeMetricFamily("autonomiq_x_api_remaining_calls", "Calls left as X last "
                                      "reported (or estimated)", labels=["endpoint", "window"])
        reset = GaugeMetricFamily("autonomiq_x_api_reset_timestamp_seconds", "When the window resets",
                                  labels=["endpoint", "window"])
        for budget in budgets:
            labels = [budget["endpoint"], budget["window"]]
            remaining.add_metric(labels, budget["remaining"])
            when = _timestamp(budget.get("reset_at"))
            if when is not None:
                reset.add_metric(labels, when)
        yield from (remaining, reset)

    def _jobs(self, stored: list[dict[str, Any]]) -> Iterator[Metric]:
        runs = CounterMetricFamily("autonomiq_job_runs", "Job runs since start by outcome "
                                   "(succeeded, errors, timeouts, missed, skipped)",
                                   labels=["job", "outcome"])
        for job_id, record in sorted(self.stats.snapshot().items()):
            for counter in JOB_COUNTERS:
                runs.add_metric([job_id, counter], record[counter])
        next_run = GaugeMetricFamily("autonomiq_job_next_run_timestamp_seconds", "Next scheduled run",
                                     labels=["job"])
        for job in stored:
            when = _timestamp(job.get("next_run_at"))
            if when is not None:
                next_run.add_metric([job["id"]], when)
        yield from (runs, next_run)


def metrics_renderer(report: Callable[[], dict[str, Any]], stats: JobStats,
                     started_at: datetime | None = None) -> Callable[[], bytes]:
    """A function returning the current metrics page, over a registry of our own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(report, stats, started_at))
    return lambda: generate_latest(registry)
