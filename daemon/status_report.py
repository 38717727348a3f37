"""What the monitor is doing, read from the database alone (works with the daemon stopped).

`gather_status` returns plain JSON-ready data (the `status --json` contract, also the source of
`/metrics`, `/status.json` and the status page); `daemon/status_text.py` renders it as the text
`status` prints.
"""

from __future__ import annotations

import json
import logging
import os
import socket
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import desc, func, select

from autonomiq_ledger.status import PostStatus, exact, odd_status_rows, status_in
from checks.history import latest_results
from checks.twitter_api import estimated_budget
from daemon.instance_lock import INSTANCE_STATE_KEY, lock_is_held
from daemon.slots import slots_view
from notify.silence import PREFIX
from recovery.post_budget import allowance
from utils.db import actions, incidents, monitor_state, posts
from utils.env_file import config_warnings
from utils.redact import one_line
from utils.safe_mode import load_safe_mode
from utils.state import get_state, prefix_range

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from utils.context import MonitorContext

logger = logging.getLogger(__name__)

DAEMON_STATE_KEY = "daemon:jobs"
X_API_KEYS = {"x_api:users_me": "GET /2/users/me", "x_api:post": "POST /2/tweets"}
NOTIFY_HEALTH_KEY = "notify:health"
LAST_ACTIONS = 10
LAST_RETRIES = 20  # a bad day has tens of thousands; `counts` and `posting` say how many
LAST_INCIDENTS = 50  # a bad day opens one per failing post; `counts` says how many are open


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment else None


def _age(now: datetime, moment: datetime | str | None) -> float | None:
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment)
        except ValueError:
            return None
    return round((now - moment).total_seconds(), 1) if moment else None


def daemon_view(saved: Any, now: datetime) -> dict[str, Any]:
    """Whether the daemon runs, from what it last stored: stopped cleanly, alive, or gone."""
    if not isinstance(saved, dict) or not saved.get("pid"):
        return {"state": "never started"}
    view = {key: saved.get(key) for key in ("pid", "host", "started_at", "updated_at", "stopped_at")}
    view["updated_age_seconds"] = _age(now, saved.get("updated_at"))
    if saved.get("stopped_at"):
        view["state"] = "stopped"
    elif saved.get("host") != socket.gethostname():
        view["state"] = "unknown (runs on another host)"
    else:
        view["state"] = "running" if _pid_alive(int(saved["pid"])) else "not running (did not stop cleanly)"
    return view


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by another user
        return True
    return True


def jobs_view(saved: Any) -> list[dict[str, Any]]:
    """Each job the daemon stored: next run time, last outcome and counters."""
    jobs = saved.get("jobs") if isinstance(saved, dict) else None
    if not isinstance(jobs, dict):
        return []
    return [{"id": job_id, **record} for job_id, record in sorted(jobs.items()) if isinstance(record, dict)]


def checks_view(engine: Engine, now: datetime) -> list[dict[str, Any]]:
    """The newest stored result of every check, with its age."""
    return [{"name": row["name"], "status": row["status"], "detail": row["detail"],
             "duration_ms": round(row["duration_ms"], 1), "trigger": row["trigger"],
             "checked_at": _iso(row["checked_at"]), "age_seconds": _age(now, row["checked_at"])}
            for row in latest_results(engine)]


def incidents_view(engine: Engine, limit: int = LAST_INCIDENTS) -> list[dict[str, Any]]:
    """The `limit` oldest open incidents (`open_incidents` in `counts` says how many there are)."""
    query = (select(incidents).where(incidents.c.status == "open")
             .order_by(incidents.c.opened_at, incidents.c.id).limit(limit))
    with engine.connect() as conn:
        rows = [row._mapping for row in conn.execute(query)]
    return [{"id": r["id"], "key": r["key"], "severity": r["severity"], "title": one_line(r["title"]),
             "opened_at": _iso(r["opened_at"]), "updated_at": _iso(r["updated_at"]),
             "failure_count": r["failure_count"], "flapping": bool(r["flapping"])} for r in rows]


def actions_view(engine: Engine, limit: int = LAST_ACTIONS) -> list[dict[str, Any]]:
    """The last `limit` recovery actions, newest first."""
    query = select(actions).order_by(desc(actions.c.started_at), desc(actions.c.id)).limit(limit)
    with engine.connect() as conn:
        rows = [row._mapping for row in conn.execute(query)]
    return [{"routine": r["routine"], "target": r["target"], "reason": r["reason"],
             "outcome": r["outcome"], "detail": one_line(r["detail"], 160), "dry_run": bool(r["dry_run"]),
             "started_at": _iso(r["started_at"])} for r in rows]


def retries_view(engine: Engine, limit: int = LAST_RETRIES) -> list[dict[str, Any]]:
    """The first `limit` posts waiting for a retry, soonest first."""
    query = (select(posts.c.id, posts.c.attempts, posts.c.next_attempt_at, posts.c.failure_class,
                    posts.c.last_error).where(status_in(posts.c.status, [PostStatus.RETRY_SCHEDULED]))
             .order_by(posts.c.next_attempt_at).limit(limit))
    with engine.connect() as conn:
        rows = [row._mapping for row in conn.execute(query)]
    return [{"post_id": r["id"], "attempts": r["attempts"], "next_attempt_at": _iso(r["next_attempt_at"]),
             "failure_class": r["failure_class"], "last_error": one_line(r["last_error"] or "", 120)}
            for r in rows]


def odd_posts_view(engine: Engine, limit: int = LAST_RETRIES) -> list[dict[str, Any]]:
    """Posts whose status is none of PostStatus (`queued`, `FAILED`, `'failed '`): nothing acts on
    them until a human fixes the row."""
    with engine.connect() as conn:
        found = odd_status_rows(conn, posts, limit)
    return [{"post_id": post_id, "status": _text(status)} for post_id, status in found]


def _text(value: Any) -> Any:
    return value.decode("utf-8", "replace") if isinstance(value, bytes | bytearray) else value


def counts_view(engine: Engine, now: datetime) -> dict[str, Any]:
    """Posts by status, and actions by routine and outcome over the last 24 hours (an index
    range: grouping every action ever kept grows with the table)."""
    since = now - timedelta(hours=24)
    with engine.connect() as conn:
        status = exact(posts.c.status)  # MariaDB would count `FAILED ` as `failed`
        by_status = conn.execute(select(status, func.count()).group_by(status)).all()
        # Counted here: with GROUP BY, SQLite (no statistics) walks the whole (routine, …) index.
        by_outcome = Counter((routine, outcome) for routine, outcome in conn.execute(
            select(actions.c.routine, actions.c.outcome).where(actions.c.started_at >= since)))
        still_open = conn.execute(select(func.count()).select_from(incidents)
                                  .where(incidents.c.status == "open")).scalar_one()
    return {"posts_by_status": {_text(status): count for status, count in by_status},
            "open_incidents": still_open,
            "actions_by_outcome": [{"routine": r, "outcome": o, "count": n}
                                   for (r, o), n in sorted(by_outcome.items())]}


def _windows(value: Any, name: str = "", depth: int = 0) -> list[tuple[str, dict[str, Any]]]:
    """Every {remaining, limit?, reset_at?} found in a stored value (formats differ per writer)."""
    if not isinstance(value, dict) or depth > 3:
        return []
    if "remaining" in value:
        return [(name or "budget", value)]
    return [found for key, item in value.items() if key != "last"
            for found in _windows(item, f"{name}.{key}" if name else str(key), depth + 1)]


def x_api_view(ctx: MonitorContext) -> list[dict[str, Any]]:
    """The X API budget seen: remaining calls and reset time per endpoint and window."""
    budgets = []
    for key, endpoint in X_API_KEYS.items():
        saved = get_state(ctx.engine, key)
        found = _windows(saved)
        if key == "x_api:users_me" and isinstance(saved, dict):
            found = [("budget", estimated_budget(ctx, saved).to_json())]
        for window, item in found:
            try:
                remaining = int(item["remaining"])
            except (TypeError, ValueError):
                continue
            budgets.append({"endpoint": endpoint, "window": window, "remaining": remaining,
                            "limit": item.get("limit"), "reset_at": item.get("reset_at")})
    return budgets


def posting_view(ctx: MonitorContext) -> dict[str, Any]:
    """The account's posting budget now: posts that may go (None: no limit told), held until when, why."""
    return allowance(ctx).to_json()


def silences_view(engine: Engine, now: datetime) -> list[dict[str, Any]]:
    """Silences in force (`silence NAME --for …`): what, until when, set when and by whom if known."""
    with engine.connect() as conn:
        rows = conn.execute(select(monitor_state.c.key, monitor_state.c.value)
                            .where(prefix_range(PREFIX))).all()
    found = []
    for key, raw in rows:
        try:
            value = json.loads(str(raw))
            until = datetime.fromisoformat(value["until"])
        except (TypeError, KeyError, ValueError):
            continue  # a damaged row silences nothing
        if until > now:
            found.append({"name": str(key)[len(PREFIX):], "until": until.isoformat(),
                          "set_at": value.get("set_at"), "by": value.get("by")})
    return sorted(found, key=lambda item: item["until"])


def instance_view(engine: Engine) -> dict[str, Any]:
    """Who holds the one-daemon-per-ledger lock, as it recorded itself, and whether it is held now."""
    saved = get_state(engine, INSTANCE_STATE_KEY)
    holder = {key: saved.get(key) for key in ("host", "pid", "since")} if isinstance(saved, dict) else None
    return {"held": lock_is_held(engine), "holder": holder}


def _section(errors: list[str], name: str, fetch: Callable[[], Any], empty: Any) -> Any:
    try:
        return fetch()
    except Exception as exc:  # one unreadable part must not hide the others
        logger.warning("status: cannot read %s: %s", name, exc)
        errors.append(one_line(f"{name}: {type(exc).__name__}: {exc}", 200))
        return empty


EMPTY: dict[str, Any] = {"checks": [], "incidents": [], "actions": [], "retries": [], "odd_posts": [],
                         "counts": {"posts_by_status": {}, "actions_by_outcome": [], "open_incidents": 0},
                         "x_api": [],
                         "posting": {"posts": None, "held_until": None, "reason": ""},
                         "notifications": None, "silences": [], "instance": None,
                         "safe_mode": {"active": False, "since": None, "reason": None},
                         "slots": {"slots": [], "budget": {"posts_remaining": None, "resets_at": None,
                                                           "posts_needed": 0, "enough": None}}}


def empty_report(ctx: MonitorContext, why: str = "the status has not been read yet") -> dict[str, Any]:
    """A report with every section empty and `why` as its one error (what /metrics serves first)."""
    report = {"generated_at": ctx.now().isoformat(), "timezone": str(ctx.settings.monitor_timezone),
              "database_readable": False, "daemon": {"state": "unknown"}, "jobs": [],
              **{name: empty for name, empty in EMPTY.items() if name not in ("counts", "slots")},
              **EMPTY["counts"], **EMPTY["slots"], "errors": [why], "warnings": []}
    return json.loads(json.dumps(report))  # a deep copy: callers may change it


def gather_status(ctx: MonitorContext) -> dict[str, Any]:
    """Everything `status` shows, as JSON-ready data; unreadable parts are listed in `errors`,
    and `database_readable` is False when the database did not answer at all."""
    now, errors = ctx.now(), list[str]()
    saved = _section(errors, "daemon state", lambda: get_state(ctx.engine, DAEMON_STATE_KEY), None)
    database_answered = not errors  # when it did not, each section would wait out its own timeout
    daemon = daemon_view(saved, now) if database_answered else {"state": "unknown"}
    report: dict[str, Any] = {"generated_at": now.isoformat(),
                              "timezone": str(ctx.settings.monitor_timezone),
                              "database_readable": database_answered, "daemon": daemon,
                              "jobs": jobs_view(saved)}
    sections: dict[str, Callable[[], Any]] = {
        "checks": lambda: checks_view(ctx.engine, now),
        "incidents": lambda: incidents_view(ctx.engine),
        "actions": lambda: actions_view(ctx.engine),
        "retries": lambda: retries_view(ctx.engine),
        "counts": lambda: counts_view(ctx.engine, now),
        "odd_posts": lambda: odd_posts_view(ctx.engine),
        "x_api": lambda: x_api_view(ctx),
        "posting": lambda: posting_view(ctx),
        "notifications": lambda: get_state(ctx.engine, NOTIFY_HEALTH_KEY),
        "silences": lambda: silences_view(ctx.engine, now),
        "instance": lambda: instance_view(ctx.engine),
        "safe_mode": lambda: load_safe_mode(ctx.engine).to_json(),
        "slots": lambda: slots_view(ctx, now),
    }
    for name, fetch in sections.items():
        empty = json.loads(json.dumps(EMPTY[name]))
        report[name] = _section(errors, name, fetch, empty) if database_answered else empty
    report.update(report.pop("counts"))
    report.update(report.pop("slots"))  # `slots` and `budget`
    report["errors"] = errors

    report["warnings"] = config_warnings(ctx.settings)
    return report
