"""The schema and its migrations (utils/db.py, utils/migrations) on SQLite, PostgreSQL and MariaDB.

Upgrades a database the previous release left (with rows) and a `posts` table a pipeline created
in its own SQL types; runs the README's SQL verbatim; races two processes through the migration.
"""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, inspect, select, text

from tests.support import schema_round1
from utils.db import incidents, init_db, make_engine, metadata, posts
from utils.migrations import VERSION_TABLE, heads, run_revisions

ROOT = Path(__file__).resolve().parent.parent
MB = 1024 * 1024
PIPELINE_DDL = {  # the 11 contract columns, as a pipeline might write them for itself
    "sqlite": """CREATE TABLE posts (id INTEGER PRIMARY KEY AUTOINCREMENT, text TEXT NOT NULL,
        scheduled_at TIMESTAMP, status VARCHAR(32) NOT NULL DEFAULT 'scheduled',
        attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT, failure_class VARCHAR(64),
        next_attempt_at TIMESTAMP, tweet_id VARCHAR(32), posted_at TIMESTAMP, updated_at TIMESTAMP)""",
    "postgresql": """CREATE TABLE posts (id SERIAL PRIMARY KEY, text TEXT NOT NULL,
        scheduled_at TIMESTAMP, status VARCHAR(32) NOT NULL, attempts INTEGER NOT NULL,
        last_error TEXT, failure_class VARCHAR(64), next_attempt_at TIMESTAMP,
        tweet_id VARCHAR(32), posted_at TIMESTAMP, updated_at TIMESTAMP)""",
    "mysql": """CREATE TABLE posts (id INT AUTO_INCREMENT PRIMARY KEY, text TEXT NOT NULL,
        scheduled_at DATETIME(6), status VARCHAR(32) NOT NULL, attempts INT NOT NULL,
        last_error TEXT, failure_class VARCHAR(64), next_attempt_at DATETIME(6),
        tweet_id VARCHAR(32), posted_at DATETIME(6), updated_at DATETIME(6))""",
}


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'monitor.db'}"
    return str(request.getfixturevalue("postgres_url" if request.param == "postgres" else "mysql_url"))


@pytest.fixture
def engine(db_url: str) -> Any:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def _columns(engine: Engine) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in inspect(engine).get_columns("posts")}


def _readme_sql(backend: str) -> list[str]:
    """The statements of the README's pipeline section that apply to `backend`, in order."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Connecting your pipeline", 1)[1].split("\n## ", 1)[0]
    statements = []
    for tags, body in re.findall(r"```sql([^\n]*)\n(.*?)```", section, re.S):
        wanted = tags.split()
        if not wanted or backend in wanted:
            statements += [s.strip() for s in body.split(";\n") if s.strip().rstrip(";")]
    return [s.rstrip(";") for s in statements]


def _readme_minimal_insert() -> str:
    return next(s for s in _readme_sql("sqlite") if s.startswith("INSERT INTO posts (text, scheduled_at)"))


def _defaults_differ(_ctx: Any, _col: Any, _meta_col: Any, inspected: str | None, _meta: Any,
                     rendered: str | None) -> bool:
    """Server defaults compared by value: MariaDB reflects `false` as `0`, PostgreSQL adds casts."""
    def norm(value: str | None) -> str | None:
        if value is None:
            return None
        value = re.sub(r"::[a-z ]+", "", value.lower()).strip("()'\"")
        return {"false": "0", "true": "1"}.get(value, value)
    return norm(inspected) != norm(rendered)


def _schema_diffs(engine: Engine) -> list[Any]:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True,
                                                         "compare_server_default": _defaults_differ})
        diffs = compare_metadata(context, metadata)
    return [d for d in diffs if not (d[0] == "remove_table" and d[1].name == VERSION_TABLE)]


def _assert_pipeline_can_write(engine: Engine) -> None:
    """The README's minimal INSERT works and a 1 MB last_error round-trips."""
    with engine.begin() as conn:
        conn.execute(text(_readme_minimal_insert()))
        new_id = conn.execute(text("SELECT MAX(id) FROM posts")).scalar()
        huge = "x" * MB + "end: 503 Service Unavailable"
        conn.execute(text("UPDATE posts SET last_error = :e, last_error_headers = :e WHERE id = :i"),
                     {"e": huge, "i": new_id})
    with engine.connect() as conn:
        row = conn.execute(select(posts).where(posts.c.id == new_id)).mappings().one()
    assert (row["status"], row["attempts"], row["ambiguous_attempt"]) == ("scheduled", 0, False)
    assert row["last_error"] == huge and row["last_error_headers"] == huge
    assert row["media_paths"] is None


def _version(engine: Engine) -> set[str]:
    with engine.connect() as conn:
        return {r[0] for r in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))}


@pytest.mark.slow
def test_the_revisions_build_exactly_the_declared_schema(engine: Engine) -> None:
    root = logging.getLogger()
    before = (list(root.handlers), root.level, logging.getLogger("utils.db").disabled)
    run_revisions(engine)  # through Alembic, on an empty database
    assert (list(root.handlers), root.level, logging.getLogger("utils.db").disabled) == before
    assert _version(engine) == heads()
    assert _schema_diffs(engine) == [], "utils/db.py and utils/migrations/versions disagree"
    _assert_pipeline_can_write(engine)


@pytest.mark.slow
def test_empty_database_is_created_and_stamped_at_head(engine: Engine) -> None:
    init_db(engine)  # create_all + stamp: what the revisions build (test above), without Alembic
    assert _version(engine) == heads()
    assert _schema_diffs(engine) == []
    _assert_pipeline_can_write(engine)


def test_database_of_the_previous_release_is_adopted_with_its_rows(engine: Engine) -> None:
    from datetime import UTC, datetime

    schema_round1.metadata.create_all(engine)
    when = datetime(2026, 11, 29, 8, 0, tzinfo=UTC)
    with engine.begin() as conn:
        conn.execute(schema_round1.posts.insert().values(
            text="old posted", scheduled_at=when, status="posted", attempts=1, tweet_id="111",
            posted_at=when, updated_at=when, ambiguous_attempt=False))
        conn.execute(schema_round1.posts.insert().values(
            text="old failed", scheduled_at=when, status="failed", attempts=2, last_error="503",
            updated_at=when, ambiguous_attempt=True))
        conn.execute(schema_round1.monitor_state.insert(), {"key": "k", "value": "{}", "updated_at": when})
        conn.execute(schema_round1.incidents.insert(), [  # open: one of a post, one of a check
            {"key": key, "status": "open", "severity": "warning", "title": key, "detail": "",
             "opened_at": when, "updated_at": when} for key in ("failure:server_error:post:2", "check:disk")])
    init_db(engine)
    with engine.connect() as conn:
        rows = conn.execute(select(posts).order_by(posts.c.id)).mappings().all()
        assert conn.execute(text("SELECT value FROM monitor_state WHERE `key` = 'k'"
                                 if engine.dialect.name == "mysql" else
                                 "SELECT value FROM monitor_state WHERE key = 'k'")).scalar() == "{}"
    assert [(r["text"], r["status"], r["attempts"], r["tweet_id"], r["ambiguous_attempt"])
            for r in rows] == [("old posted", "posted", 1, "111", False),
                               ("old failed", "failed", 2, None, True)]
    assert rows[0]["scheduled_at"] == when and rows[1]["last_error"] == "503"
    with engine.connect() as conn:  # revision 0005 names the post of an open post incident
        assert dict(conn.execute(select(incidents.c.key, incidents.c.post_id)).all()) == {
            "failure:server_error:post:2": 2, "check:disk": None}
    assert _schema_diffs(engine) == []
    _assert_pipeline_can_write(engine)


def test_pipeline_created_posts_table_gains_columns_and_keeps_its_own(engine: Engine) -> None:
    backend = engine.dialect.name
    with engine.begin() as conn:
        conn.execute(text(PIPELINE_DDL[backend]))
        conn.execute(text("INSERT INTO posts (text, scheduled_at, status, attempts) "
                          "VALUES ('from the pipeline', '2026-11-30 09:00:00', 'scheduled', 0)"))
    before = _columns(engine)
    init_db(engine)
    after = _columns(engine)
    assert set(after) == set(before) | {"last_error_headers", "ambiguous_attempt", "media_paths"}
    for name, column in before.items():
        widened = backend == "mysql" and name == "last_error"
        assert (str(after[name]["type"]), after[name]["nullable"]) == (
            "MEDIUMTEXT" if widened else str(column["type"]), column["nullable"]), name
        if column["default"] is not None:  # a default the pipeline chose is kept as it is
            assert after[name]["default"] == column["default"], name
    assert after["ambiguous_attempt"]["nullable"] is False
    with engine.connect() as conn:
        old = conn.execute(select(posts).where(posts.c.text == "from the pipeline")).mappings().one()
    assert (old["status"], old["attempts"], old["ambiguous_attempt"]) == ("scheduled", 0, False)
    _assert_pipeline_can_write(engine)


def test_monitor_runs_on_a_migrated_pipeline_table(engine: Engine, env: dict[str, str],
                                                   make_ctx: Any, db_url: str) -> None:
    from recovery.sweep import run_sweep

    with engine.begin() as conn:
        conn.execute(text(PIPELINE_DDL[engine.dialect.name]))
    ctx = make_ctx({**env, "DATABASE_URL": db_url})
    report = run_sweep(ctx)
    assert not [e for e in report.errors if e.startswith("ledger")], report.errors


@pytest.mark.slow
@pytest.mark.parametrize("who_creates", ["monitor", "pipeline"])
def test_readme_sql_works_verbatim(engine: Engine, who_creates: str) -> None:
    import json

    backend = {"mysql": "mariadb"}.get(engine.dialect.name, engine.dialect.name)
    create = [s for s in _readme_sql(backend) if s.startswith("CREATE TABLE")]
    assert len(create) == 1, create
    if who_creates == "pipeline":
        with engine.begin() as conn:
            conn.execute(text(create[0]))
    init_db(engine)
    with engine.begin() as conn:
        for statement in _readme_sql("none"):  # the statements every backend runs
            assert conn.execute(text(statement)).rowcount == 1, statement
    with engine.connect() as conn:
        rows = conn.execute(select(posts).order_by(posts.c.id)).mappings().all()
    assert [(r["status"], r["attempts"], r["tweet_id"]) for r in rows] == [
        ("posted", 1, "1864001234567890"), ("failed", 1, None)]
    assert json.loads(rows[1]["last_error_headers"])["x-rate-limit-reset"] == 1796127300
    assert json.loads(rows[1]["media_paths"]) == ["/srv/media/chart.png"]
    assert rows[0]["posted_at"].isoformat() == "2026-12-01T09:00:02+00:00"


_MIGRATE = """
import sys
from utils.db import make_engine, metadata
from utils.migrations import upgrade
print(upgrade(make_engine(sys.argv[1]), metadata), "alembic" in sys.modules)
"""


def _start(db_url: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", _MIGRATE, db_url], cwd=ROOT, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
@pytest.mark.parametrize("start", ["empty", "previous_release"])
def test_processes_starting_at_once_migrate_once_without_error(db_url: str, start: str) -> None:
    engine = make_engine(db_url)
    if start == "previous_release":
        schema_round1.metadata.create_all(engine)
    children = [_start(db_url) for _ in range(3)]
    results = [(child.wait(timeout=120), *child.communicate()) for child in children]
    assert [r[0] for r in results] == [0, 0, 0], [r[2][-2000:] for r in results]
    # Exactly one did the work; the others found it done (after waiting on the lock, or later).
    outcomes = sorted(r[1].strip() for r in results)
    assert [o.split()[0] for o in outcomes] == ["False", "False", "True"], results
    assert ("True True" in outcomes) == (start == "previous_release")  # Alembic only to migrate
    assert _version(engine) == heads() and _schema_diffs(engine) == []
    engine.dispose()
    later = _start(db_url)  # a process starting at head never imports Alembic (memory)
    out, err = later.communicate(timeout=60)
    assert (later.returncode, out.strip()) == (0, "False False"), err


def test_revisions_form_one_chain() -> None:
    from utils.migrations import _assignments

    downs = [_assignments(p).get("down_revision") for p in (ROOT / "utils/migrations/versions").glob("*.py")]
    assert len(heads()) == 1, heads()
    assert len(downs) == len(set(map(str, downs))), f"two revisions share a down_revision: {downs}"


@pytest.mark.slow
def test_migration_runs_in_a_pipeline_that_has_its_own_utils_package(tmp_path: Path) -> None:
    (tmp_path / "utils").mkdir()
    (tmp_path / "utils" / "__init__.py").write_text("PIPELINE_UTILS = True\n")
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    engine = make_engine(url)
    schema_round1.metadata.create_all(engine)  # behind: the migration itself has to run
    script = ("import sys; sys.path[:0] = [sys.argv[2], sys.argv[3]]\n"
              "import utils; assert utils.PIPELINE_UTILS\n"
              "from autonomiq_ledger._leaves import db\n"
              "db.init_db(db.make_engine(sys.argv[1]))\n")
    run = subprocess.run([sys.executable, "-c", script, url, str(tmp_path), str(ROOT)], cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 0, run.stderr[-2000:]
    assert _version(engine) == heads() and _schema_diffs(engine) == []
    engine.dispose()
