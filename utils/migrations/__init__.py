"""Schema migrations (Alembic), run at start-up by `utils.db.init_db`.

The revisions live in `versions/` and chain by `down_revision`. Alembic is imported only when the
database is behind (it costs memory the daemon does not otherwise need); "already at head" is
decided here by reading the revision files as text. Two processes starting at once (the daemon
and a CLI command) serialise on a lock: an advisory lock on PostgreSQL, `GET_LOCK` on
MySQL/MariaDB, a lock file next to an SQLite database.
"""

from __future__ import annotations

import ast
import contextlib
import fcntl
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from sqlalchemy import Column, Connection, Engine, MetaData, String, Table, inspect, text
from sqlalchemy.exc import SQLAlchemyError

logger = logging.getLogger(__name__)

# Not `alembic_version`: a pipeline that shares the database may run Alembic for itself.
VERSION_TABLE = "autonomiq_monitor_version"
HERE = Path(__file__).resolve().parent
_LOCK_NAME = "autonomiq_monitor_migrate"
_PG_LOCK_KEY = 0x4155544F  # any constant shared by every monitor process ("AUTO")
_LOCK_WAIT_S = 120
_HEADS_LOCK = threading.Lock()


class MigrationLockTimeout(SQLAlchemyError):
    """Another process kept the migration lock too long (a database error to callers)."""


def heads() -> set[str]:
    """The newest revision id(s) in `versions/`, read from the files without importing Alembic,
    once per process: `ast.parse` in two threads at once can fail on Python 3.11 (seen in a
    pipeline-like test building six contexts in six threads: "AST constructor recursion depth
    mismatch")."""
    with _HEADS_LOCK:
        return set(_read_heads())


@functools.cache
def _read_heads() -> frozenset[str]:
    revisions: set[str] = set()
    parents: set[str] = set()
    for path in (HERE / "versions").glob("*.py"):
        values = _assignments(path)
        if isinstance(values.get("revision"), str):
            revisions.add(str(values["revision"]))
            down = values.get("down_revision")
            parents.update(down if isinstance(down, tuple) else (down,) if down else ())
    return frozenset(revisions - parents)


def _assignments(path: Path) -> dict[str, object]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: dict[str, object] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target = node.targets[0]
            if isinstance(target, ast.Name) and target.id in ("revision", "down_revision"):
                with contextlib.suppress(ValueError):
                    found[target.id] = ast.literal_eval(node.value)
    return found


def current(connection: Connection) -> set[str]:
    """The revision id(s) the database is at (empty: never migrated)."""
    if not inspect(connection).has_table(VERSION_TABLE):
        return set()
    rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))
    return {row[0] for row in rows}


def upgrade(engine: Engine, metadata: MetaData) -> bool:
    """Bring the database to the newest revision; False when it already was there.

    An empty database gets `metadata` created and stamped at head, without Alembic (its cookbook's
    "building an up to date database from scratch"); tests/test_db_schema.py proves the revisions
    build the same schema.
    """
    target = heads()
    with engine.connect() as connection:
        if current(connection) == target:
            return False
        connection.rollback()
        with _migration_lock(connection):
            at = current(connection)
            if at == target:  # another process did it while we waited
                return False
            if not at and not set(metadata.tables) & set(inspect(connection).get_table_names()):
                metadata.create_all(connection)
                stamp(connection, target)
            else:
                connection.commit()
                _run_alembic(connection)
            connection.commit()
    return True


def stamp(connection: Connection, revisions: set[str]) -> None:
    """Record `revisions` as applied, in the table and form Alembic uses."""
    version = Table(VERSION_TABLE, MetaData(), Column("version_num", String(32), primary_key=True))
    version.create(connection, checkfirst=True)
    connection.execute(version.delete())
    connection.execute(version.insert(), [{"version_num": r} for r in sorted(revisions)])


def run_revisions(engine: Engine) -> None:
    """Apply the revisions through Alembic even to an empty database (what tests compare)."""
    with engine.connect() as connection, _migration_lock(connection):
        connection.commit()
        _run_alembic(connection)
        connection.commit()


def _run_alembic(connection: Connection) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(HERE))
    config.attributes.update(connection=connection, version_table=VERSION_TABLE)
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)  # one line per plugin
    logger.info("migrating the database schema to %s", ", ".join(sorted(heads())))
    command.upgrade(config, "heads")


@contextlib.contextmanager
def _migration_lock(connection: Connection) -> Iterator[None]:
    backend = connection.dialect.name
    if backend == "postgresql":
        take, release = "SELECT pg_try_advisory_lock(:k)", "SELECT pg_advisory_unlock(:k)"
    elif backend in ("mysql", "mariadb"):
        take, release = "SELECT GET_LOCK(:n, 0)", "SELECT RELEASE_LOCK(:n)"
    else:
        with _file_lock(connection.engine.url.database):
            yield
        return
    # GET_LOCK names are server-wide (PostgreSQL's advisory locks are per database already).
    params = {"k": _PG_LOCK_KEY, "n": f"{_LOCK_NAME}:{connection.engine.url.database}"[:64]}

    def taken() -> bool:
        got = bool(connection.execute(text(take), params).scalar())
        connection.rollback()  # end the read transaction while we wait (the lock is per session)
        return got

    _poll(taken)  # polled, not a blocking wait: the engine's read timeout would cut one
    try:
        yield
    finally:
        connection.rollback()
        connection.execute(text(release), params)
        connection.commit()


def _poll(take: Callable[[], object]) -> None:
    deadline = time.monotonic() + _LOCK_WAIT_S
    while not take():
        if time.monotonic() > deadline:
            raise MigrationLockTimeout(f"another process held the schema migration lock for "
                                       f"{_LOCK_WAIT_S} s")
        time.sleep(0.2)


@contextlib.contextmanager
def _file_lock(database: str | None) -> Iterator[None]:
    if not database or database == ":memory:" or database.startswith("file:"):
        yield
        return
    with open(f"{database}.migrate-lock", "a+b") as handle:
        _poll(lambda: _try_flock(handle.fileno()))
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _try_flock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
