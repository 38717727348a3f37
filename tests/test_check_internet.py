"""`internet` against loopback HTTP servers standing in for the well-known endpoints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from checks import internet
from checks.base import Status, run_one
from tests.conftest import ROOT
from tests.support.loopback_web import refused_url
from tests.support.notify_receivers import running_path_recorder
from tests.support.xapi_double import XApiDouble


def run(ctx: Any) -> Any:
    return run_one("internet", internet.check, ctx)



@pytest.fixture
def web_counting() -> Iterator[tuple[str, list[str]]]:
    """A second loopback web server that records the paths it was asked for."""
    with running_path_recorder("/probe") as recorder:
        yield recorder.url, recorder.paths


def test_all_urls_answer_is_ok_with_latency(env: dict, make_ctx: Any, web_ok: str,
                                            web_counting: tuple[str, list[str]]) -> None:
    second, hits = web_counting
    result = run(make_ctx({**env, "CONNECTIVITY_URLS": f"{web_ok},{second}"}))
    assert result.status is Status.OK, result.detail
    assert result.detail.startswith("2/2 URLs answered (fastest ")
    assert hits == ["/probe"]
    by_url = {p["url"]: p for p in result.data["urls"]}
    assert by_url[web_ok.rstrip("/")]["http_status"] == 204 and by_url[second]["http_status"] == 200
    assert all(p["latency_ms"] >= 0 for p in by_url.values())


def test_some_fail_is_warning_naming_the_failed_url(env: dict, make_ctx: Any, web_ok: str) -> None:
    closed = refused_url()
    result = run(make_ctx({**env, "CONNECTIVITY_URLS": f"{web_ok},{closed}"}))
    assert result.status is Status.WARNING
    assert result.detail == f"1/2 URLs answered; failed: {closed} (connection refused)"


def test_none_answers_is_critical_offline(env: dict, make_ctx: Any) -> None:
    first, second = refused_url(), refused_url()
    result = run(make_ctx({**env, "CONNECTIVITY_URLS": f"{first},{second}"}))
    assert result.status is Status.CRITICAL and result.failure_class == "network"
    assert result.detail.startswith("offline: none of 2 URLs answered: ")
    assert f"{first} (connection refused)" in result.detail and second in result.detail


@pytest.mark.slow
def test_unresolvable_host_is_reported_as_dns_failure(env: dict) -> None:
    # In a network namespace of its own the resolver's query cannot leave the machine (no test
    # sends packets beyond loopback), and the lookup fails the way it does on an offline box.
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"]).returncode:
        pytest.skip("cannot create a network namespace here (needs root and unshare)")
    bad = "http://monitor-probe.invalid"
    proc = subprocess.run(
        ["unshare", "-n", sys.executable, str(ROOT / "autonomous_monitor.py"), "check", "--json"],
        env={"PATH": os.environ["PATH"], **env, "CONNECTIVITY_URLS": bad}, cwd=ROOT,
        capture_output=True, text=True, timeout=60, check=False)
    result = next(c for c in json.loads(proc.stdout)["checks"] if c["name"] == "internet")
    assert result["status"] == "critical", result
    probe = next(p for p in result["data"]["urls"] if p["url"] == bad)
    assert probe["ok"] is False and probe["error"].startswith("DNS: ")
    assert f"{bad} (DNS: " in result["detail"]


def test_never_touches_the_x_api(env: dict, make_ctx: Any, x_api: XApiDouble) -> None:
    result = run(make_ctx(env))  # TWITTER_API_BASE_URL points at the double
    assert result.status is Status.OK
    assert x_api.requests == [] and sum(x_api.calls.values()) == 0


def test_no_urls_configured_is_a_warning_not_a_crash(env: dict, make_ctx: Any) -> None:
    result = run(make_ctx({**env, "CONNECTIVITY_URLS": ""}))
    assert result.status is Status.WARNING and "no CONNECTIVITY_URLS" in result.detail
