"""`/healthz` and `/metrics` over real HTTP, metrics computed from a real database."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import insert

from autonomous_monitor import AutonomousMonitor
from checks import CHECKS
from daemon.http_endpoint import start_http_endpoint
from daemon.metrics import metrics_renderer
from daemon.scheduling import JobStats
from daemon.status_report import gather_status
from utils.db import actions, posts
from utils.state import put_state


@pytest.fixture
def served(env: dict[str, str], make_ctx: Any) -> Iterator[tuple[str, dict[str, Any], JobStats, Any]]:
    ctx = make_ctx(env)
    monitor = AutonomousMonitor(ctx)
    for name, check in CHECKS.items():
        monitor.register_check(name, check)
    stats = JobStats()
    health = {"alive": True}
    server = start_http_endpoint("127.0.0.1", 0, lambda: (health["alive"], "test"),
                                 metrics_renderer(lambda: gather_status(ctx), stats))
    yield f"http://127.0.0.1:{server.server_address[1]}", health, stats, monitor
    server.shutdown()
    server.server_close()


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.mark.slow
def test_healthz_follows_the_scheduler_loop(served: Any) -> None:
    base, health, _stats, _monitor = served
    ok = requests.get(f"{base}/healthz", timeout=5)
    assert ok.status_code == 200 and ok.text.startswith("ok")
    health["alive"] = False
    assert requests.get(f"{base}/healthz", timeout=5).status_code == 503


@pytest.mark.slow
def test_only_two_paths_and_bounded_requests(served: Any) -> None:
    base = served[0]
    assert requests.get(f"{base}/", timeout=5).status_code == 404
    assert requests.get(f"{base}/metrics/../etc/passwd", timeout=5).status_code == 404
    assert requests.post(f"{base}/healthz", data=b"x" * 100, timeout=5).status_code == 501
    assert requests.get(f"{base}/healthz?" + "a" * 70_000, timeout=5).status_code == 414


@pytest.mark.slow
def test_a_silent_client_is_dropped_by_the_socket_timeout(served: Any) -> None:
    host, port = served[0].removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")  # never finishes its headers
        sock.settimeout(10)
        assert sock.recv(100) == b""  # closed by the server after its 5 s timeout


@pytest.mark.slow
def test_metrics_show_checks_posts_actions_budget_and_jobs(served: Any) -> None:
    base, _health, stats, monitor = served
    ctx = monitor.ctx
    monitor.run_health_round("manual")
    now = ctx.now()
    with ctx.engine.begin() as conn:
        conn.execute(insert(posts), [{"text": "a", "status": "posted", "updated_at": now},
                                     {"text": "b", "status": "posted", "updated_at": now}])
        conn.execute(insert(actions), [{"routine": "retry_post", "target": "post:2", "reason": "rate_limit",
                                        "outcome": "fixed", "detail": "", "started_at": now}])
    put_state(ctx.engine, "x_api:post", {"budget": {"limit": 17, "remaining": 5, "reset_at":
                                                    (now + timedelta(hours=2)).isoformat()}}, now)
    stats.record("sweep", "error", "boom", counter="errors")
    stats.count_failures([("ledger", "rate_limit"), ("ledger", "rate_limit")])
    page = requests.get(f"{base}/metrics", timeout=5)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = _samples(page.text)
    assert samples[("autonomiq_check_status", (("check", "database"),))] == 0
    assert samples[("autonomiq_check_status", (("check", "scheduler"),))] == 3  # not configured: unknown
    assert ("autonomiq_check_duration_seconds", (("check", "twitter_api"),)) in samples
    assert samples[("autonomiq_posts", (("status", "posted"),))] == 2
    assert samples[("autonomiq_actions_last_24h", (("outcome", "fixed"), ("routine", "retry_post")))] == 1
    assert samples[("autonomiq_x_api_remaining_calls", (("endpoint", "POST /2/tweets"),
                                                        ("window", "budget")))] == 5
    # the check just spent one call: X's word (74 of 75) or, past X's reset, the tier estimate (24 of 25)
    assert samples[("autonomiq_x_api_remaining_calls", (("endpoint", "GET /2/users/me"),
                                                        ("window", "budget")))] in (74, 24)
    assert samples[("autonomiq_job_runs_total", (("job", "sweep"), ("outcome", "errors")))] == 1
    assert samples[("autonomiq_failures_total", (("failure_class", "rate_limit"), ("source", "ledger")))] == 2
    assert samples[("autonomiq_database_readable", ())] == 1
    assert "python_gc" not in page.text  # our own registry only


def test_metrics_carry_start_time_and_build_info(env: dict[str, str], make_ctx: Any) -> None:
    import platform

    from daemon.metrics import version
    from daemon.status_report import empty_report

    ctx = make_ctx(env)
    started = ctx.now()
    page = metrics_renderer(lambda: empty_report(ctx), JobStats(), started_at=started)().decode()
    samples = _samples(page)
    assert samples[("autonomiq_start_time_seconds", ())] == started.timestamp()
    assert samples[("autonomiq_build_info", (("python", platform.python_version()),
                                             ("version", version())))] == 1
    assert version() != "unknown"
    assert samples[("autonomiq_database_readable", ())] == 0  # nothing read yet: not "readable"
