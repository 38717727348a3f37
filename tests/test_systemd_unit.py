"""The unit file and the polkit rule: systemd's own verifier and security score, and their promises."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

UNIT = ROOT / "autonomiq-autonomous-monitor.service"
RULE = ROOT / "polkit" / "50-autonomiq-monitor.rules"
needs_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                   reason="systemd-analyze is not installed on this machine")


def rendered(tmp_path: Path) -> Path:
    """The unit as the setup script installs it, with this checkout's real paths."""
    target = tmp_path / UNIT.name
    target.write_text(UNIT.read_text().replace("/opt/autonomiq-monitor", str(ROOT)))
    return target


def settings(text: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";", "[")):
            key, value = line.split("=", 1)
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_the_unit_promises_notify_watchdog_restart_policy_and_a_dedicated_user() -> None:
    unit = settings(UNIT.read_text())
    assert unit["Type"] == ["notify"] and unit["NotifyAccess"] == ["main"]
    assert int(unit["WatchdogSec"][0]) > 0
    assert unit["Restart"] == ["on-failure"] and unit["RestartPreventExitStatus"] == ["78 75"]
    assert unit["StartLimitIntervalSec"] and unit["StartLimitBurst"]
    assert unit["User"] == ["autonomiq-monitor"] and unit["NoNewPrivileges"] == ["yes"]
    assert unit["ProtectSystem"] == ["strict"]
    assert unit["ReadWritePaths"] == ["/opt/autonomiq-monitor/data /opt/autonomiq-monitor/logs"]
    assert unit["CapabilityBoundingSet"] == [""] and unit["UMask"] == ["0077"]
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert unit["ExecStart"][0].endswith("autonomous_monitor.py run")
    assert int(unit["TimeoutStopSec"][0]) > 10  # the daemon stops within 10 s by itself


def test_the_daemon_reads_env_itself_and_reloads_on_sighup() -> None:
    unit = settings(UNIT.read_text())
    # One parser: systemd's reading of .env (EnvironmentFile=) would win over the daemon's own.
    assert "EnvironmentFile" not in unit
    assert "ENV_FILE=/opt/autonomiq-monitor/.env" in unit["Environment"][0].split()
    assert unit["ExecReload"] == ["/bin/kill -HUP $MAINPID"]


@needs_analyze
def test_systemd_analyze_verify_passes(tmp_path: Path) -> None:
    result = subprocess.run(["systemd-analyze", "verify", str(rendered(tmp_path))], capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr
    assert UNIT.name not in result.stderr  # no complaint about our unit


@needs_analyze
def test_security_exposure_is_at_most_2_5(tmp_path: Path) -> None:
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", str(rendered(tmp_path))],
                            capture_output=True, text=True, timeout=60, check=False)
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    print(f"systemd-analyze security exposure: {match[1]}")
    assert float(match[1]) <= 2.5


POLKIT_HARNESS = """
const rules = [];
const polkit = {addRule: (f) => rules.push(f), Result: {YES: "yes", NOT_HANDLED: null}};
eval(require("fs").readFileSync(process.argv[1], "utf8"));
const cases = JSON.parse(process.argv[2]);
console.log(JSON.stringify(cases.map(([id, unit, verb, user]) => rules[0](
  {id: id, lookup: (key) => ({unit: unit, verb: verb})[key]}, {user: user}))));
"""


def test_the_polkit_rule_allows_exactly_one_verb_on_one_unit_for_one_user(tmp_path: Path) -> None:
    rule = RULE.read_text()
    assert rule.count("polkit.Result.YES") == 1
    node = shutil.which("node") or shutil.which("nodejs")
    if node is None:
        pytest.skip("node is not installed: cannot run the polkit rule")
    installed = tmp_path / "rule.js"
    installed.write_text(rule.replace("@SCHEDULER_SERVICE@", "pipeline.service")
                         .replace("@SERVICE_USER@", "autonomiq-monitor"))
    manage = "org.freedesktop.systemd1.manage-units"
    cases = [[manage, "pipeline.service", "restart", "autonomiq-monitor"],   # the one thing allowed
             [manage, "pipeline.service", "stop", "autonomiq-monitor"],
             [manage, "pipeline.service", "start", "autonomiq-monitor"],
             [manage, "sshd.service", "restart", "autonomiq-monitor"],
             [manage, "pipeline.service", "restart", "someone-else"],
             ["org.freedesktop.systemd1.manage-unit-files", "pipeline.service", "restart",
              "autonomiq-monitor"]]
    result = subprocess.run([node, "-e", POLKIT_HARNESS, str(installed), json.dumps(cases)],
                            capture_output=True, text=True, timeout=30, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == ["yes", None, None, None, None, None]
