"""The `status` report (from `daemon.status_report.gather_status`) as text for a person."""

from __future__ import annotations

from datetime import datetime, tzinfo
from typing import Any


def local(moment: str | None, zone: tzinfo) -> str:
    """An ISO time as `YYYY-MM-DD HH:MM ZONE` in `zone`, or `-`."""
    if not moment:
        return "-"
    try:
        return datetime.fromisoformat(moment).astimezone(zone).strftime("%Y-%m-%d %H:%M %Z")
    except (TypeError, ValueError):
        return str(moment)


def ago(seconds: float | None) -> str:
    """A short age such as `42s`, `5m`, `3h`, `2d`."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if abs(seconds) >= size:
            return f"{seconds / size:.0f}{unit}"
    return f"{seconds:.0f}s"


def _daemon(daemon: dict[str, Any], zone: tzinfo) -> str:
    line = f"daemon: {daemon['state']}"
    if daemon.get("pid"):
        line += (f" (pid {daemon['pid']} on {daemon.get('host')}, started "
                 f"{local(daemon.get('started_at'), zone)}, last update "
                 f"{ago(daemon.get('updated_age_seconds'))} ago)")
    return line


def _block(title: str, rows: list[str], empty: str = "none") -> list[str]:
    return ["", title, *(f"  {row}" for row in rows or [empty])]


def render(report: dict[str, Any], zone: tzinfo) -> str:
    """All sections, one block each, times in `zone`."""
    lines = [f"Autonomiq Monitor status at {local(report['generated_at'], zone)}",
             _daemon(report["daemon"], zone)]
    if report.get("warnings"):
        lines += _block("WARNINGS", report["warnings"])
    lines += _block("JOBS (next run, last outcome)", [
        f"{j['id']:<20} next {local(j.get('next_run_at'), zone):<22} last {j.get('last_outcome') or '-':<9}"
        f" {local(j.get('last_run_at'), zone)}  {j.get('last_detail') or ''}".rstrip()
        for j in report["jobs"]], "no job state stored (the daemon has not run yet)")
    lines += _block("CHECKS (latest result)", [
        f"{c['status'].upper():<9}{c['name']:<14}{ago(c['age_seconds']) + ' ago':<9}{c['detail']}"
        for c in report["checks"]], "no check has run yet")
    lines += _block("OPEN INCIDENTS", [
        f"#{i['id']} {i['severity']:<9}{i['title']} (since {local(i['opened_at'], zone)},"
        f" {i['failure_count']} failure(s){', flapping' if i['flapping'] else ''})"
        for i in report["incidents"]])
    lines += _block("LAST ACTIONS", [
        f"{local(a['started_at'], zone)}  {a['routine']} on {a['target']}: {a['outcome']}"
        f"{' (dry run)' if a['dry_run'] else ''} - {a['detail']}" for a in report["actions"]])
    lines += _block("POSTS WAITING FOR RETRY", [
        f"post {r['post_id']}: attempt {r['attempts']}, next at {local(r['next_attempt_at'], zone)}"
        f" ({r['failure_class'] or 'unclassified'})" for r in report["retries"]])
    lines += _block("X API BUDGET SEEN", [
        f"{b['endpoint']} [{b['window']}]: {b['remaining']}"
        f"{'/' + str(b['limit']) if b.get('limit') is not None else ''} left,"
        f" resets {local(b.get('reset_at'), zone)}" for b in report["x_api"]], "nothing seen yet")
    lines += _block("NOTIFICATIONS", _notifications(report.get("notifications"), zone),
                    "no delivery recorded yet")
    if report["errors"]:
        lines += _block("COULD NOT READ", report["errors"])
    return "\n".join(lines)


def _notifications(health: Any, zone: tzinfo) -> list[str]:
    if not isinstance(health, dict):
        return []
    rows = []
    if health.get("all_failing_since"):
        rows.append(f"ALL CHANNELS FAILING since {local(health['all_failing_since'], zone)}")
    channels = health.get("channels") if isinstance(health.get("channels"), dict) else {}
    for channel_id, entry in sorted(channels.items()):
        if not isinstance(entry, dict):
            continue
        state = (f"failing since {local(entry['failing_since'], zone)}: {entry.get('error')}"
                 if entry.get("failing_since") else f"ok, last delivery {local(entry.get('last_ok'), zone)}")
        rows.append(f"{entry.get('name') or channel_id}: {state}")
    return rows
