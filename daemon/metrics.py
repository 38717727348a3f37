"""`/metrics` in the Prometheus text format, computed at scrape time from the status report.

Imported only when MONITOR_HTTP_PORT is set (prometheus_client costs memory). The registry is
our own, so no process/platform collectors of the library leak in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from checks.base import Status
from daemon.scheduling import JobStats

JOB_COUNTERS = ("succeeded", "errors", "timeouts", "missed", "skipped")


def _timestamp(moment: str | None) -> float | None:
    try:
        return datetime.fromisoformat(moment).timestamp() if moment else None
    except ValueError:
        return None


class MonitorCollector:
    """Yields every metric from one `gather_status` report plus the daemon's job counters."""

    def __init__(self, report: Callable[[], dict[str, Any]], stats: JobStats) -> None:
        self.report, self.stats = report, stats

    def collect(self) -> Iterator[Metric]:
        report = self.report()
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
        yield GaugeMetricFamily("autonomiq_database_readable", "1 when the status report could read "
                                "every part of the database", value=0 if report["errors"] else 1)

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
        actions = CounterMetricFamily("autonomiq_actions", "Recovery actions recorded, by routine and "
                                      "outcome", labels=["routine", "outcome"])
        for row in report["actions_by_outcome"]:
            actions.add_metric([row["routine"], row["outcome"]], row["count"])
        incidents = GaugeMetricFamily("autonomiq_open_incidents", "Open incidents",
                                      value=len(report["incidents"]))
        retries = GaugeMetricFamily("autonomiq_posts_waiting_retry", "Posts waiting for a retry",
                                    value=len(report["retries"]))
        yield from (posts, actions, incidents, retries)

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


def metrics_renderer(report: Callable[[], dict[str, Any]], stats: JobStats) -> Callable[[], bytes]:
    """A function returning the current metrics page, over a registry of our own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(MonitorCollector(report, stats))
    return lambda: generate_latest(registry)
