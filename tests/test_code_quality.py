"""The code stays as the house style asks: ruff clean, mypy clean (default mode) on every package
of the monitor, and the layers import only downwards."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
PACKAGES = ["autonomous_monitor.py", "checks", "recovery", "notify", "daemon", "utils", "autonomiq_ledger"]
# Each layer may import only itself and the layers listed for it.
LAYERS = {
    "utils": {"utils"},
    "autonomiq_ledger": {"autonomiq_ledger", "utils"},
    "checks": {"checks", "utils"},
    "recovery": {"recovery", "checks", "autonomiq_ledger", "utils"},
    "notify": {"notify", "recovery", "checks", "autonomiq_ledger", "utils"},
    "daemon": {"daemon", "notify", "recovery", "checks", "autonomiq_ledger", "utils"},
}
OURS = {*LAYERS, "autonomous_monitor", "tests", "bench"}


def test_ruff_finds_nothing():
    done = subprocess.run([sys.executable, "-m", "ruff", "check", "."], cwd=ROOT, capture_output=True,
                          text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr


def test_mypy_finds_nothing_in_the_monitor():
    done = subprocess.run([sys.executable, "-m", "mypy", "--ignore-missing-imports", *PACKAGES],
                          cwd=ROOT, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]


def _imports(path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found & OURS


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_a_layer_imports_only_the_layers_below_it(layer):
    wrong = {str(path.relative_to(ROOT)): sorted(_imports(path) - LAYERS[layer])
             for path in (ROOT / layer).rglob("*.py")}
    assert {path: names for path, names in wrong.items() if names} == {}
