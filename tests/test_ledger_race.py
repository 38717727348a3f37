"""The `posts` contract under a real race: the reference pipeline (plain SQL, plain tweepy, a
process of its own) against the running daemon sweeping every second, on SQLite, PostgreSQL and
MariaDB, through an X API double that fails some calls — some of them after the tweet went out."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from tests.conftest import ROOT, monitor_env
from tests.support.xapi_double import BODY_429, BODY_503, TWEETS, Reply, Window, XApiDouble
from utils.db import actions, make_engine, posts

ROWS = 40
# What X does with the n-th POST, whoever sends it; `_reached`: the tweet is created, then the
# caller gets a 503, no answer (read timeout) or a dropped connection.
PLAN = ["ok", "503_reached", "ok", "hang_reached", "429", "ok", "503", "drop_reached", "ok",
        "drop", "ok", "503_reached", "ok", "hang_reached", "ok", "429", "ok", "503"]


class RaceDouble(XApiDouble):
    """The X API double with a failure plan and a log of who posted which text when."""

    def __init__(self) -> None:
        super().__init__(api_key="test-consumer-key")
        self.plan = deque(PLAN)
        self.log: list[dict[str, Any]] = []
        self.post_budget = Window(limit=100_000, seconds=86400)
        self.windows[TWEETS] = Window(limit=100_000, seconds=900, started=time.time())

    def answer(self, route: str, auth: str, body: bytes) -> Reply:
        if route != TWEETS:
            return super().answer(route, auth, body)
        text = json.loads(body or b"{}").get("text", "")
        with self._lock:
            kind = self.plan.popleft() if self.plan else "ok"
            on_x = any(tweet["text"] == text for tweet in self.tweets)
            self.log.append({"at": time.time(), "text": text, "kind": kind,
                             "who": "pipeline" if 'oauth_token="pipeline-' in auth else "monitor"})
        if kind == "ok" or on_x:
            return super().answer(route, auth, body)  # a text already on X: the duplicate answer
        if kind.endswith("_reached"):
            self._record_tweet(body)
        return {"503": Reply(503, BODY_503), "hang": Reply(mode="hang"), "drop": Reply(mode="drop"),
                "429": Reply(429, BODY_429, {"x-rate-limit-remaining": "0",
                                             "x-rate-limit-reset": str(int(time.time()) + 2)}),
                }[kind.removesuffix("_reached")]


def _full(environ: dict[str, str]) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/root"),
            "PYTHONDONTWRITEBYTECODE": "1", **environ}


def _daemon(environ: dict[str, str]) -> subprocess.Popen[str]:
    """`autonomous_monitor.py run` as a child process."""
    return subprocess.Popen([sys.executable, str(ROOT / "autonomous_monitor.py"), "run"], env=_full(environ),
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _sweeping(environ: dict[str, str], stop: threading.Event, runs: list[int]) -> None:
    """A second sweeper: `autonomous_monitor.py sweep` processes one after another."""
    while not stop.is_set():
        subprocess.run([sys.executable, str(ROOT / "autonomous_monitor.py"), "sweep"], env=_full(environ),
                       cwd=ROOT, capture_output=True, timeout=60, check=False)
        runs.append(1)


def _violations(double: RaceDouble, holds: list[dict[str, Any]]) -> list[str]:
    """Monitor POSTs for a row while the pipeline held it, or after the pipeline posted it."""
    found = []
    for call in (c for c in double.log if c["who"] == "monitor"):
        for hold in (h for h in holds if h["text"] == call["text"]):
            if hold["start"] <= call["at"] <= hold["end"] or \
                    (hold["outcome"] == "posted" and call["at"] >= hold["end"]):
                found.append(f"{call['text']} at {call['at']:.3f} during/after {hold}")
    return found


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres", "mysql"])
def test_the_reference_pipeline_races_the_daemon_and_the_contract_holds(
        backend, tmp_path: Path, web_ok: str, request) -> None:
    with RaceDouble() as double:
        env = {**monitor_env(tmp_path, double.base_url, web_ok), "SWEEP_INTERVAL": "1s",
               "MISSED_POST_GRACE_MINUTES": "1", "BACKOFF_BASE_SECONDS": "1", "BACKOFF_MAX_SECONDS": "2",
               "MAX_POST_ATTEMPTS": "20", "ACTION_BUDGET_PER_HOUR": "10000",
               "CIRCUIT_BREAKER_MAX_RUNS": "1000", "CHECK_TIMEOUT_SECONDS": "2", "DIGEST_TIME": ""}
        if backend != "sqlite":
            env["DATABASE_URL"] = request.getfixturevalue(f"{backend}_url")
        engine = make_engine(env["DATABASE_URL"])
        from utils.db import init_db

        init_db(engine)  # what the daemon does at start; the pipeline needs the table first
        daemon = _daemon(env)
        try:
            time.sleep(2)  # the daemon is up and sweeping
            assert daemon.poll() is None, daemon.stderr.read() if daemon.stderr else ""
            stop, cli_sweeps = threading.Event(), []
            sweeper = threading.Thread(target=_sweeping, args=(env, stop, cli_sweeps))
            sweeper.start()
            try:
                run = subprocess.run([sys.executable, str(ROOT / "tests/support/reference_pipeline.py"),
                                      env["DATABASE_URL"], double.base_url, backend, str(ROWS), "120"],
                                     capture_output=True, text=True, timeout=180, check=False)
            finally:
                stop.set()
                sweeper.join(90)
        finally:
            daemon.send_signal(signal.SIGTERM)
            try:
                daemon.wait(30)
            except subprocess.TimeoutExpired:
                daemon.kill()
        assert run.returncode == 0, run.stderr[-3000:]
        figures = json.loads(run.stdout.strip().splitlines()[-1])
        with engine.connect() as conn:
            rows = conn.execute(select(posts.c.text, posts.c.status, posts.c.last_error)).all()
            left_alone = conn.execute(select(func.count()).select_from(actions).where(
                actions.c.detail.like("%changed since%"))).scalar()
        engine.dispose()
        tweets = Counter(tweet["text"] for tweet in double.tweets)
        reached = {c["text"] for c in double.log if c["kind"].endswith("_reached")}
        log = (tmp_path / "logs" / "autonomous_monitor.log")
        sweeps = log.read_text().count("sweep: ") if log.exists() else 0
        by_who = Counter(c["who"] for c in double.log)
        summary = {"backend": backend, "rows": ROWS, "sweeps": sweeps, "cli_sweeps": len(cli_sweeps),
                   "pipeline_claims": figures["claims"], "monitor_left_alone": left_alone,
                   "posts_sent": dict(by_who), "tweets_per_text": sorted(set(tweets.values())),
                   "taken_back": len(figures["taken_back"]), "ambiguous_reached_x": len(reached),
                   "statuses": dict(Counter(status for _, status, _ in rows))}
        print("RACE FIGURES", json.dumps(summary))
        threading.Thread(target=double.stop).start()  # release hung handlers (no wait)

    assert figures["finished"], (summary, figures)
    assert figures["taken_back"] == []                                   # 0 rows taken back
    assert _violations(double, figures["holds"]) == []                   # 0 posts after a claim
    assert set(tweets) == {text for text, _, _ in rows} and set(tweets.values()) == {1}  # once each
    assert {status for _, status, _ in rows} == {"posted"}
    ambiguous = [(text, error) for text, _, error in rows if text in reached]
    assert ambiguous and all("confirmed by X's duplicate answer" in (error or "")
                             for _, error in ambiguous), ambiguous
    assert sweeps >= 3 and by_who["monitor"] > 0 and figures["claims"] > 0
