"""Running one test on each of the three databases."""

from __future__ import annotations

from typing import Any

DATABASES = ["sqlite", "postgres", "mysql"]


def on_database(request: Any, env: dict[str, str]) -> dict[str, str]:
    """`env` on the database `request.param` names (a scratch one on the real servers)."""
    url = {"sqlite": None, "postgres": "postgres_url", "mysql": "mysql_url"}[request.param]
    return {**env, "DATABASE_URL": request.getfixturevalue(url)} if url else env
