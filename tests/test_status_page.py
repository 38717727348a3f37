"""The status page at `/`, as a person sees it: the real daemon serves it, headless Chromium (Debian's
`chromium`) renders it at phone and desktop widths, and the test reads what was rendered."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.support.daemon import Daemon
from tests.support.faults import free_port, wait_for

pytestmark = pytest.mark.slow
LEAKS = ("SECRETapisecret", "SECRETaccesstoken", "SECRETbearer")


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium, installed here when absent (the test setup may run as root)."""
    found = shutil.which("chromium")
    if found is None:
        apt = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/bin:/bin:/usr/sbin:/sbin"}
        for step in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", "chromium"]):
            subprocess.run(step, check=False, timeout=900, capture_output=True, env=apt)
        found = shutil.which("chromium")
    assert found, "chromium is needed: apt-get install chromium (.ci/run installs it)"
    return found


def _browser(chromium: str, profile: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", *args], capture_output=True, text=True, timeout=120, check=False)


def _get(url: str) -> tuple[int, str, str]:
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            return answer.status, answer.headers.get("Content-Type", ""), answer.read().decode()
    except OSError:
        return 0, "", ""


def test_the_page_renders_slots_checks_and_incidents_on_a_phone_and_a_desktop(env, tmp_path, chromium):
    port = free_port()
    refused = f"http://127.0.0.1:{free_port()}"
    daemon = Daemon({**env, "MONITOR_HTTP_PORT": str(port), "CONNECTIVITY_URLS": refused,
                     "SWEEP_INTERVAL": "1s", "ALERT_AFTER_FAILURES": "1", "TWITTER_API_TIER": "free"},
                    tmp_path)
    base = f"http://127.0.0.1:{port}"
    try:
        def ready() -> dict | None:
            status, _type, body = _get(f"{base}/status.json")
            report = json.loads(body) if status == 200 else {}
            return report if report.get("checks") and report.get("incidents") else None

        report = wait_for(ready, 30, "the daemon's status with checks and an incident")
        code, content_type, page = _get(f"{base}/")
        assert code == 200 and content_type.startswith("text/html")
        assert 'http-equiv="refresh" content="30"' in page and "<script" not in page
        assert "src=" not in page and "href=" not in page  # nothing loaded from anywhere

        dom = _browser(chromium, tmp_path / "profile", "--dump-dom", f"{base}/").stdout
        assert "Checks" in dom and "Open incidents" in dom and "Next posting slots" in dom
        assert "internet" in dom and "critical" in dom.lower()
        for incident in report["incidents"]:
            assert incident["title"] in dom
        for slot in report.get("slots", []):
            assert slot["verdict"].replace("_", "-") in dom.lower()
        assert not any(leak in dom for leak in LEAKS)

        for width in (360, 1280):
            shot = tmp_path / f"status-{width}.png"
            _browser(chromium, tmp_path / f"profile-{width}", f"--screenshot={shot}",
                     f"--window-size={width},1000", f"{base}/")
            assert shot.exists() and shot.stat().st_size > 10_000  # a rendered page, not a blank one
    finally:
        daemon.kill()
