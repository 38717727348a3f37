"""The status page at `/`: the day at a glance on a phone, from the same report as `status --json`.

Server-rendered HTML with its own small CSS, no JavaScript and nothing loaded from elsewhere; it
refreshes itself every 30 s. Every value is escaped, and the whole page passes through the
redactor, so nothing a check or an error text carried can inject markup or show a secret.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo
from typing import Any

from daemon.status_text import ago, local, more_incidents
from utils.redact import redact

REFRESH_S = 30
_BADGE = {"ok": "ok", "go": "ok", "posted": "ok", "warning": "warn", "degraded": "warn",
          "unknown": "unknown", "critical": "bad", "no_go": "bad", "failed": "bad"}
CSS = """
body{font:15px/1.4 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f4f5f7;
color:#1d2330}
header{background:#1d2330;color:#fff;padding:12px 16px}header h1{font-size:18px;margin:0}
header p{margin:2px 0 0;font-size:13px;opacity:.8}main{max-width:960px;margin:0 auto;padding:8px}
section{background:#fff;border-radius:8px;margin:8px 0;padding:10px 12px;box-shadow:0 1px 2px #0002}
h2{font-size:15px;margin:0 0 6px}ul{list-style:none;margin:0;padding:0}
li{padding:6px 0;border-top:1px solid #eee;overflow-wrap:anywhere}li:first-child{border-top:0}
.b{display:inline-block;min-width:64px;text-align:center;border-radius:4px;padding:1px 6px;
font-size:12px;font-weight:600;text-transform:uppercase;margin-right:6px}
.ok{background:#d9f2e3;color:#14532d}.warn{background:#fdf0c9;color:#713f12}
.bad{background:#fbd5d5;color:#7f1d1d}.unknown{background:#e5e7eb;color:#374151}
.m{color:#6b7280;font-size:13px}.alert{background:#7f1d1d;color:#fff}.alert h2{color:#fff}
@media(min-width:700px){main{display:grid;grid-template-columns:1fr 1fr;gap:0 12px}
section.wide{grid-column:1/-1}}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _badge(word: str | None) -> str:
    word = word or "unknown"
    return f'<span class="b {_BADGE.get(word, "unknown")}">{_e(word.replace("_", "-"))}</span>'


def _section(title: str, items: Iterable[str], empty: str, css: str = "") -> str:
    rows = "".join(f"<li>{item}</li>" for item in items) or f'<li class="m">{_e(empty)}</li>'
    anchor = _e(title.lower().split()[0])
    return f'<section class="{css}" id="{anchor}"><h2>{_e(title)}</h2><ul>{rows}</ul></section>'


def _slots(report: dict[str, Any], when: Callable[[str | None], str]) -> str:
    items = [f"{_badge(slot.get('verdict'))}<b>{_e(when(slot.get('at')))}</b> <span class=m>"
             f"{_e(_time_left(report.get('generated_at'), slot.get('at')))}"
             f"{_e(_posts(slot.get('posts')))}</span><br><span class=m>"
             f"{_e('; '.join(slot.get('reasons') or []) or 'nothing in the way')}</span>"
             for slot in report.get("slots") or []]
    return _section("Next posting slots", items, "no slot known (POSTING_TIMES empty?)", "wide")


def _posts(ids: Any) -> str:
    return f" · post {', '.join(f'#{i}' for i in ids)}" if isinstance(ids, list) and ids else ""


def _time_left(now: Any, at: Any) -> str:
    try:
        seconds = (datetime.fromisoformat(str(at)) - datetime.fromisoformat(str(now))).total_seconds()
    except (TypeError, ValueError):
        return ""
    return f"in {ago(seconds)}" if seconds >= 0 else f"{ago(-seconds)} ago"


def _checks(report: dict[str, Any]) -> str:
    items = [f"{_badge(c.get('status'))}<b>{_e(c.get('name'))}</b> <span class=m>"
             f"{_e(ago(c.get('age_seconds')))} ago</span><br><span class=m>{_e(c.get('detail'))}</span>"
             for c in report.get("checks") or []]
    return _section("Checks", items, "no check has run yet")


def _incidents(report: dict[str, Any], when: Callable[[str | None], str]) -> str:
    items = [f"{_badge(i.get('severity'))}{_e(i.get('title'))} <span class=m>since "
             f"{_e(when(i.get('opened_at')))}, {_e(i.get('failure_count'))} failure(s)</span>"
             for i in report.get("incidents") or []]
    items += [f"<span class=m>{_e(line)}</span>" for line in more_incidents(report)]
    return _section("Open incidents", items, "none")


def _actions(report: dict[str, Any], when: Callable[[str | None], str]) -> str:
    items = [f"<b>{_e(a.get('routine'))}</b> on {_e(a.get('target'))}: {_e(a.get('outcome'))}"
             f"{' (dry run)' if a.get('dry_run') else ''}<br><span class=m>{_e(when(a.get('started_at')))}"
             f" · {_e(a.get('detail'))}</span>" for a in (report.get("actions") or [])[:10]]
    return _section("Last actions", items, "none")


def _budget(report: dict[str, Any], when: Callable[[str | None], str]) -> str:
    items = []
    forecast = report.get("budget")
    if isinstance(forecast, dict):
        enough = {True: "ok", False: "no_go", None: "unknown"}[forecast.get("enough")]
        resets = forecast.get("resets_at")
        items.append(f"{_badge(enough)}posts left: {_e(forecast.get('posts_remaining', '?'))}, needed: "
                     f"{_e(forecast.get('posts_needed', '?'))}"
                     + (f", resets {_e(when(resets))}" if resets else ", reset time not seen yet"))
    items += [f"{_e(b.get('endpoint'))} [{_e(b.get('window'))}]: {_e(b.get('remaining'))}"
              f"{'/' + _e(b['limit']) if b.get('limit') is not None else ''} left, resets "
              f"{_e(when(b.get('reset_at')))}" for b in report.get("x_api") or []]
    return _section("X API budget", items, "nothing seen yet")


def render_page(report: dict[str, Any], zone: tzinfo, name: str) -> str:
    """The whole page for `report` (the `status --json` data), times in `zone`."""
    def when(moment: str | None) -> str:
        return local(moment, zone)

    safe_mode = report.get("safe_mode") or {}
    banner = ""
    if safe_mode.get("active"):
        since, reason = _e(when(safe_mode.get("since"))), _e(safe_mode.get("reason"))
        banner = _section("Safe mode", [f"since {since}: {reason} — automatic fixes and post retries "
                                        "are stopped; run <code>autonomous_monitor.py resume</code>"],
                          "", "wide alert")
    if not report.get("database_readable", True):
        banner += _section("Database", [_e("; ".join(report.get("errors") or ["cannot be read"]))], "",
                           "wide alert")
    daemon = report.get("daemon") or {}
    body = (banner + _slots(report, when) + _checks(report) + _incidents(report, when)
            + _actions(report, when) + _budget(report, when))
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1">
<meta http-equiv="refresh" content="{REFRESH_S}">
<title>{_e(name)} · Autonomiq Monitor</title><style>{CSS}</style></head>
<body><header><h1>{_e(name)} · Autonomiq Monitor</h1>
<p>daemon {_e(daemon.get("state", "unknown"))} · updated {_e(when(report.get("generated_at")))} ·
refreshes every {REFRESH_S} s</p></header><main>{body}</main></body></html>
"""
    return redact(page)



def status_pages(report: Callable[[], dict[str, Any]], zone: tzinfo, name: str
                 ) -> dict[str, Callable[[], tuple[bytes, str]]]:
    """The HTTP endpoint's `/` (this page) and `/status.json` (the `status --json` data), both
    served from the report the daemon keeps in memory."""
    return {
        "/": lambda: (render_page(report(), zone, name).encode(), "text/html; charset=utf-8"),
        "/status.json": lambda: (redact(json.dumps(report(), default=str)).encode(),
                                 "application/json"),
    }
