"""The monitor's `utils` leaves the ledger stands on, whoever owns the name `utils`.

A pipeline usually has a `utils` package of its own, earlier on sys.path or already imported. Then
`import utils.db` would find theirs. So the ledger never imports `utils` by name: when the name is
ours (the monitor's own process) it uses it; otherwise it loads our `utils` folder under a private
name. The leaves it needs (db, timestamps, state, redact, x_client, http_client) import each other
relatively, so they work under either name.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from pathlib import Path
from types import ModuleType

_OURS = Path(__file__).resolve().parent.parent / "utils"
PRIVATE_NAME = "autonomiq_ledger._monitor_utils"


def _owner_of_utils() -> Path | None:
    """The folder the name `utils` resolves to in this process (None when it resolves nowhere)."""
    loaded = sys.modules.get("utils")
    origin = getattr(loaded, "__file__", None) if loaded is not None else None
    if loaded is None:
        try:
            spec = importlib.util.find_spec("utils")
        except (ImportError, ValueError):
            spec = None
        origin = spec.origin if spec is not None else None
    return Path(origin).resolve().parent if origin else None


def _package() -> str:
    """`utils` when that name is ours, else our folder loaded under PRIVATE_NAME."""
    if _owner_of_utils() == _OURS:
        return "utils"
    if PRIVATE_NAME not in sys.modules:
        spec = importlib.util.spec_from_file_location(
            PRIVATE_NAME, _OURS / "__init__.py", submodule_search_locations=[str(_OURS)])
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[PRIVATE_NAME] = module
        spec.loader.exec_module(module)
    return PRIVATE_NAME


PACKAGE = _package()


def leaf(name: str) -> ModuleType:
    """Our `utils.<name>` module."""
    return importlib.import_module(f"{PACKAGE}.{name}")


db = leaf("db")
redact = leaf("redact")
state = leaf("state")
x_client = leaf("x_client")
