"""Benchmark 5: the X API calls 24 hours of default operation spend.

The day is simulated with an injected clock (tests/conftest.py `FixedClock`) against the loopback
X double, which counts calls per route: the daemon's start-up round at 00:00, a pre-posting round
PRECHECK_LEAD_MINUTES before each of the default POSTING_TIMES, a sweep every SWEEP_INTERVAL
(48 with the default 30 min), and the pipeline posting at each posting time through the ledger.
Two days: all healthy, and one where the pipeline's 09:00 post fails with a 503. The monitor's
calls are counted apart from the pipeline's own, and held against the free tier's daily allowance.
Targets: ≤ 3 `GET /2/users/me` a day; no `POST /2/tweets` except one per real retry.
"""

from __future__ import annotations

import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BenchResult, bench_env, bench_main, fake_secrets, loopback_web, x_double

DAY_START = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
FREE_USERS_ME_PER_DAY = 25   # shared/X_API_NOTES.md §1a
FREE_POSTS_PER_DAY = 17
USERS_ME_TARGET = 3


def day_plan(settings: Any) -> list[tuple[datetime, str]]:
    """(moment, job) for one day of the daemon's default schedule, in time order."""
    from daemon.scheduling import precheck_times

    events = [(DAY_START, "startup")]
    for at in precheck_times(settings.posting_times, settings.precheck_lead_minutes):
        events.append((DAY_START.replace(hour=at.hour, minute=at.minute), "pre_posting"))
    for at in settings.posting_times:
        events.append((DAY_START.replace(hour=at.hour, minute=at.minute), "pipeline_post"))
    step = settings.sweep_interval
    moment = DAY_START + step
    while moment <= DAY_START + timedelta(days=1):
        events.append((moment, "sweep"))
        moment += step
    order = {"startup": 0, "pre_posting": 1, "pipeline_post": 2, "sweep": 3}
    return sorted(events, key=lambda event: (event[0], order[event[1]]))


def simulate_day(fail_first_post: bool) -> dict[str, Any]:
    """Run one simulated day; the calls of the monitor and of the pipeline, counted apart."""
    from autonomiq_ledger.posting import get_post, post, schedule_post
    from autonomous_monitor import AutonomousMonitor
    from tests.support.environment import FixedClock
    from tests.support.xapi_double import BODY_503, ME, TWEETS, Reply
    from utils.config import load_settings
    from utils.redact import register_secrets

    clock = FixedClock(DAY_START)
    with tempfile.TemporaryDirectory(prefix="bench-budget-") as tmp, loopback_web() as web, \
            x_double() as x_api:
        settings = load_settings(bench_env(Path(tmp), x_api.base_url, web))  # defaults otherwise
        register_secrets(settings.secret_values)
        monitor = AutonomousMonitor.from_settings(settings)
        monitor.ctx.clock = clock  # the injected clock; everything else as the daemon builds it
        pipeline_calls = {ME: 0, TWEETS: 0}
        post_ids: list[int] = []
        counts = {"startup": 0, "pre_posting": 0, "sweep": 0, "pipeline_post": 0}
        plan = day_plan(settings)
        try:
            for moment, job in plan:
                clock.current = moment
                counts[job] += 1
                if job == "sweep":
                    monitor.run_sweep()
                elif job == "pipeline_post":
                    before = dict(x_api.calls)
                    if fail_first_post and not post_ids:
                        x_api.script(TWEETS, Reply(503, BODY_503))
                    post_id = schedule_post(monitor.ctx.engine, f"post of {moment:%H:%M}", moment, now=moment)
                    post(monitor.ctx, post_id)
                    post_ids.append(post_id)
                    for route in pipeline_calls:
                        pipeline_calls[route] += x_api.calls[route] - before.get(route, 0)
                else:
                    monitor.run_health_round(job)
            rows = [get_post(monitor.ctx.engine, post_id) for post_id in post_ids]
        finally:
            monitor.close()
        monitor_calls = {route: x_api.calls[route] - pipeline_calls[route] for route in pipeline_calls}
        tweets = [tweet["text"] for tweet in x_api.tweets]
    return {"jobs": counts, "monitor": monitor_calls, "pipeline": pipeline_calls,
            "rows": [{"status": row["status"], "attempts": row["attempts"]} for row in rows if row],
            "tweets_per_post": {f"post {i + 1}": tweets.count(row["text"])
                                for i, row in enumerate(rows) if row},
            "all_calls": dict(x_api.calls)}


BACKLOG_FAILED = 50_000
BACKLOG_RETRIES = 50_000
BACKLOG_DAYS = 2  # 1 in a quick run
NAIVE_POSTS_PER_DAY = 48 * 100  # the old sweep: one POST per due row, 100 rows, 48 sweeps a day


def load_backlog(engine: Any, now: datetime, failed: int, retries: int) -> list[int]:
    """`failed` rows failed by a 503 (unclassified, due) and `retries` due retries spread over the
    past 30 days, plus two of today's posts whose retry is due; returns today's ids."""
    from sqlalchemy import insert, select

    from utils.db import posts

    error = "503 Service Unavailable\nService Unavailable"
    rows = []
    for i in range(failed + retries):
        at = now - timedelta(days=1 + (i % 30), minutes=i % 1440)
        retry = i >= failed
        rows.append({"text": f"backlog {i}", "scheduled_at": at, "attempts": 1, "last_error": error,
                     "status": "retry_scheduled" if retry else "failed", "updated_at": at,
                     "failure_class": "server_error" if retry else None, "ambiguous_attempt": False,
                     "next_attempt_at": at + timedelta(hours=1) if retry else None})
    today = [{**rows[0], "text": f"today {i}", "status": "retry_scheduled", "failure_class": "server_error",
              "scheduled_at": now - timedelta(hours=1), "next_attempt_at": now - timedelta(minutes=5)}
             for i in range(2)]
    with engine.begin() as conn:
        for start in range(0, len(rows), 10_000):
            conn.execute(insert(posts), rows[start:start + 10_000])
        conn.execute(insert(posts), today)
        return list(conn.execute(select(posts.c.id).where(posts.c.text.like("today %"))).scalars())


def simulate_backlog(quick: bool) -> dict[str, Any]:
    """Sweeps every SWEEP_INTERVAL for BACKLOG_DAYS over a 100k-row backlog against the double
    enforcing the free tier's 17 posts per 24 h; POST calls and 429s counted per simulated day."""
    from autonomiq_ledger.posting import get_post
    from autonomous_monitor import AutonomousMonitor
    from tests.support.environment import FixedClock
    from tests.support.xapi_double import TWEETS, XApiDouble
    from utils.config import load_settings
    from utils.redact import register_secrets

    scale = 10 if quick else 1
    start = DAY_START + timedelta(hours=7)
    clock = FixedClock(start)
    days: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-backlog-") as tmp, loopback_web() as web, \
            XApiDouble(api_key=fake_secrets()["TWITTER_API_KEY"],
                       clock=lambda: clock().timestamp()) as x_api:
        # The action budget would enter safe mode and stop everything: here only the X budget may.
        settings = load_settings(bench_env(Path(tmp), x_api.base_url, web, ACTION_BUDGET_PER_HOUR="10000",
                                           CIRCUIT_BREAKER_MAX_RUNS="1000"))
        register_secrets(settings.secret_values)
        monitor = AutonomousMonitor.from_settings(settings, clock=clock)
        try:
            today = load_backlog(monitor.ctx.engine, start, BACKLOG_FAILED // scale, BACKLOG_RETRIES // scale)
            sweeps = int(timedelta(days=1) / settings.sweep_interval)
            started = time.perf_counter()
            for _day in range(1 if quick else BACKLOG_DAYS):
                before, rejected = x_api.calls[TWEETS], _rejections(x_api)
                for _ in range(sweeps):
                    clock.advance(seconds=settings.sweep_interval.total_seconds())
                    monitor.run_sweep()
                days.append({"post_calls": x_api.calls[TWEETS] - before,
                             "rejected_429": _rejections(x_api) - rejected, "sweeps": sweeps})
            seconds = time.perf_counter() - started
            today_status = [get_post(monitor.ctx.engine, i)["status"] for i in today]
        finally:
            monitor.close()
    return {"days": days, "cap": x_api.post_budget.limit, "today": today_status, "scale": scale,
            "rows": (BACKLOG_FAILED + BACKLOG_RETRIES) // scale,
            "sweep_s": seconds / sum(d["sweeps"] for d in days)}


def _rejections(x_api: Any) -> int:
    """POSTs X did not turn into a tweet (429s here: every text is distinct)."""
    from tests.support.xapi_double import TWEETS

    return x_api.calls[TWEETS] - len(x_api.tweets)


def measure_backlog(result: BenchResult) -> None:
    backlog = simulate_backlog(result.quick)
    cap = backlog["cap"]
    for number, day in enumerate(backlog["days"], 1):
        result.add(f"backlog of {backlog['rows']:,} rows, day {number}: POST /2/tweets", day["post_calls"],
                   "calls", NAIVE_POSTS_PER_DAY, "48 sweeps × 100 rows (before)", f"≤ {cap} (the cap)",
                   day["post_calls"] <= cap)
        result.add(f"backlog day {number}: POSTs answered 429", day["rejected_429"], "calls", target="0",
                   met=day["rejected_429"] == 0)
    first_day_posted = backlog["today"] == ["posted", "posted"]
    result.add("backlog: today's 2 posts sent on day 1 before old retries", int(first_day_posted), "bool",
               target="1", met=first_day_posted)
    result.add("backlog: wall time per sweep", round(backlog["sweep_s"] * 1000, 1), "ms")
    result.details["backlog"] = backlog


def measure(result: BenchResult) -> None:
    from tests.support.xapi_double import ME, TWEETS

    measure_backlog(result)
    healthy = simulate_day(fail_first_post=False)
    failed = simulate_day(fail_first_post=True)
    jobs = healthy["jobs"]
    result.notes.append(f"simulated day: {jobs['startup']} start-up round, {jobs['pre_posting']} pre-posting "
                        f"rounds, {jobs['sweep']} sweeps, {jobs['pipeline_post']} pipeline posts")
    for label, day, retries in (("healthy day", healthy, 0), ("one failed post", failed, 1)):
        users_me = day["monitor"][ME]
        posts = day["monitor"][TWEETS]
        result.add(f"{label}: monitor GET /2/users/me", users_me, "calls", FREE_USERS_ME_PER_DAY,
                   "free tier per 24 h", f"≤ {USERS_ME_TARGET}", users_me <= USERS_ME_TARGET)
        result.add(f"{label}: monitor POST /2/tweets", posts, "calls", FREE_POSTS_PER_DAY,
                   "free tier per 24 h", f"= {retries} (real retries)", posts == retries)
        result.add(f"{label}: pipeline's own POST /2/tweets", day["pipeline"][TWEETS], "calls")
        exactly_once = all(count == 1 for count in day["tweets_per_post"].values()) and all(
            row["status"] == "posted" for row in day["rows"])
        result.add(f"{label}: every post on X exactly once", int(exactly_once), "bool", target="1",
                   met=exactly_once)
        result.notes.append(f"{label}: rows {day['rows']}, tweets per post {day['tweets_per_post']}, "
                            f"all calls {day['all_calls']}")
    result.details = {"healthy": healthy, "one_failed_post": failed}


if __name__ == "__main__":
    sys.exit(bench_main("api_budget", "5. X API budget of one simulated day", measure))
