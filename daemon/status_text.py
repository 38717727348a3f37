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


def more_incidents(report: dict[str, Any]) -> list[str]:
    """The line saying how many open incidents the list leaves out (a bad day has thousands)."""
    left_out = int(report.get("open_incidents") or 0) - len(report.get("incidents") or [])
    if left_out <= 0:
        return []
    return [f"… and {left_out} more, newer (a failing post has one each: see POSTS WAITING FOR RETRY)"]


def _block(title: str, rows: list[str], empty: str = "none") -> list[str]:
    return ["", title, *(f"  {row}" for row in rows or [empty])]


def _instance(instance: Any, zone: tzinfo) -> list[str]:
    if not isinstance(instance, dict):
        return []
    holder = instance.get("holder") or {}
    held = {True: "held", False: "free", None: "cannot tell"}[instance.get("held")]
    who = (f" by pid {holder.get('pid')} on {holder.get('host')} since {local(holder.get('since'), zone)}"
           if holder and instance.get("held") is not False else "")
    return [f"ledger lock: {held}{who}"]


UNKNOWN = "unknown: the database could not be read"


def render(report: dict[str, Any], zone: tzinfo) -> str:
    """All sections, one block each, times in `zone`; an unreadable database says so first."""
    readable = report.get("database_readable", True)
    lines = [f"Autonomiq Monitor status at {local(report['generated_at'], zone)}"]
    if not readable:
        first = report["errors"][0] if report.get("errors") else "no answer"
        lines.insert(0, f"UNKNOWN: the monitor database cannot be read ({first}); nothing below is "
                        "current")
    lines += [_daemon(report["daemon"], zone), *_instance(report.get("instance"), zone)]
    safe_mode = report.get("safe_mode") or {}
    if safe_mode.get("active"):
        lines.append(f"SAFE MODE since {local(safe_mode.get('since'), zone)}: {safe_mode.get('reason')}; "
                     "automatic fixes and post retries are stopped (leave it: autonomous_monitor.py resume)")
    if report.get("warnings"):
        lines += _block("WARNINGS", report["warnings"])
    lines += _block("JOBS (next run, last outcome)", [
        f"{j['id']:<20} next {local(j.get('next_run_at'), zone):<22} last {j.get('last_outcome') or '-':<9}"
        f" {local(j.get('last_run_at'), zone)}  {j.get('last_detail') or ''}".rstrip()
        for j in report["jobs"]], "no job state stored (the daemon has not run yet)" if readable else UNKNOWN)
    lines += _slots(report, zone)
    lines += _stored(report, zone, readable)
    if report["errors"]:
        lines += _block("COULD NOT READ", report["errors"])
    return "\n".join(lines)


def _slots(report: dict[str, Any], zone: tzinfo) -> list[str]:
    """POSTING SLOTS: each slot's verdict and reasons, then the posting budget forecast."""
    rows = []
    for slot in report.get("slots", []):
        posts = f" posts {', '.join(f'#{p}' for p in slot['posts'])}" if slot["posts"] else ""
        verdict = slot["verdict"].upper().replace("_", "-")
        rows.append(f"{local(slot['at'], zone)}  {verdict:<9}{posts}".rstrip())
        rows += [f"  - {reason}" for reason in slot["reasons"]]
    budget = report.get("budget") or {}
    if budget:
        left = "unknown" if budget.get("posts_remaining") is None else budget["posts_remaining"]
        enough = {True: "enough", False: "NOT ENOUGH", None: "cannot tell"}[budget.get("enough")]
        rows.append(f"X posting budget: {left} post(s) left, resets {local(budget.get('resets_at'), zone)};"
                    f" {budget.get('posts_needed', 0)} due before then: {enough}")
    return _block("POSTING SLOTS (next 24 h)", rows, "no posting slot in the next 24 h")


def _stored(report: dict[str, Any], zone: tzinfo, readable: bool) -> list[str]:
    none = "none" if readable else UNKNOWN
    lines = _block("CHECKS (latest result)", [
        f"{c['status'].upper():<9}{c['name']:<14}{ago(c['age_seconds']) + ' ago':<9}{c['detail']}"
        for c in report["checks"]], "no check has run yet" if readable else UNKNOWN)
    lines += _block("OPEN INCIDENTS", [
        f"#{i['id']} {i['severity']:<9}{i['title']} (since {local(i['opened_at'], zone)},"
        f" {i['failure_count']} failure(s){', flapping' if i['flapping'] else ''})"
        for i in report["incidents"]] + more_incidents(report), none)
    lines += _block("SILENCES (alerts suppressed)", [
        f"{s['name']} until {local(s['until'], zone)}"
        f"{' (set ' + local(s['set_at'], zone) + ')' if s.get('set_at') else ''}"
        f"{' by ' + str(s['by']) if s.get('by') else ''}" for s in report.get("silences", [])], none)
    lines += _block("LAST ACTIONS", [
        f"{local(a['started_at'], zone)}  {a['routine']} on {a['target']}: {a['outcome']}"
        f"{' (dry run)' if a['dry_run'] else ''} - {a['detail']}" for a in report["actions"]], none)
    lines += _block("POSTS WAITING FOR RETRY", [
        f"post {r['post_id']}: attempt {r['attempts']}, next at {local(r['next_attempt_at'], zone)}"
        f" ({r['failure_class'] or 'unclassified'})" for r in report["retries"]], none)
    if report.get("odd_posts"):
        lines += _block("POSTS WITH A STATUS OUTSIDE THE SET (nothing acts on them; fix the row)", [
            f"post {r['post_id']}: status {r['status']!r}" for r in report["odd_posts"]])
    posting = report.get("posting") or {}
    if posting.get("held_until"):
        lines.append(f"POSTING HELD until {local(posting['held_until'], zone)}: {posting.get('reason')}")
    lines += _block("X API BUDGET SEEN", [
        f"{b['endpoint']} [{b['window']}]: {b['remaining']}"
        f"{'/' + str(b['limit']) if b.get('limit') is not None else ''} left,"
        f" resets {local(b.get('reset_at'), zone)}" for b in report["x_api"]],
        "nothing seen yet" if readable else UNKNOWN)
    return lines + _block("NOTIFICATIONS", _notifications(report.get("notifications"), zone),
                          "no delivery recorded yet" if readable else UNKNOWN)


def _notifications(health: Any, zone: tzinfo) -> list[str]:
    if not isinstance(health, dict):
        return []
    rows = []
    if health.get("all_failing_since"):
        rows.append(f"ALL CHANNELS FAILING since {local(health['all_failing_since'], zone)}")
    found = health.get("channels")
    channels: dict[str, Any] = found if isinstance(found, dict) else {}
    for channel_id, entry in sorted(channels.items()):
        if not isinstance(entry, dict):
            continue
        state = (f"failing since {local(entry['failing_since'], zone)}: {entry.get('error')}"
                 if entry.get("failing_since") else f"ok, last delivery {local(entry.get('last_ok'), zone)}")
        rows.append(f"{entry.get('name') or channel_id}: {state}")
    return rows
