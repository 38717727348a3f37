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
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import BenchResult, bench_env, bench_main, loopback_web, x_double

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
    from tests.conftest import FixedClock
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


def measure(result: BenchResult) -> None:
    from tests.support.xapi_double import ME, TWEETS

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
