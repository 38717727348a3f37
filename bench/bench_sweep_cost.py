"""Benchmark 3: sweep cost as the ledger grows, on SQLite and on the real PostgreSQL.

`recovery.sweep.run_sweep` runs over `posts` tables of 100, 10 000 and 1 000 000 rows (bulk
loaded: executemany on SQLite, COPY on PostgreSQL). Every size holds the same handful of rows that
need the sweep (failed, due retries, a missed post); the rest are posted. The first sweep acts on
the handful (retries go to the loopback X double), later sweeps find nothing due. Each time is
shown against the 100-row case of the same backend; the sweep's own queries on `posts` are
captured and EXPLAINed on the largest table to show which index each one uses.
Target: flat or logarithmic, i.e. 1M-row time ≤ 3 × the 100-row time (log 10⁶ / log 10²).

Also measured: the monitor's own tables at 1M rows each against empty ones, and what one acted-on
failed row adds to a daemon sweep (time, CPU, commits, statements) against the same benchmark run
on the code before the sweep batched its bookkeeping.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PG_ADMIN_URL, BenchResult, bench_env, bench_main, loopback_web, median, x_double

FULL_SIZES = (100, 10_000, 1_000_000)
QUICK_SIZES = (100, 10_000, 100_000)
STEADY_SWEEPS = 5
RATIO_TARGET = 3.0
# SQLite as the monitor leaves it (no statistics), SQLite after ANALYZE, PostgreSQL after
# (auto)VACUUM ANALYZE: the planner's choice differs with statistics, so both SQLite cases count.
BACKENDS = ("sqlite", "sqlite_analyzed", "postgresql")
COLUMNS = ("text", "scheduled_at", "status", "attempts", "last_error", "failure_class", "next_attempt_at",
           "tweet_id", "posted_at", "updated_at", "last_error_headers", "ambiguous_attempt")
POSTS_SQL = re.compile(r"\b(?:FROM|UPDATE|INTO)\s+posts\b", re.I)
ERROR_503 = "503 Service Unavailable\nService Unavailable"


def ledger_rows(size: int, now: datetime, tag: str) -> Iterator[tuple[Any, ...]]:
    """`size` rows: a fixed handful that needs the sweep, the rest posted over the past days."""
    past = now - timedelta(minutes=30)
    future = now + timedelta(hours=6)
    handful: list[tuple[Any, ...]] = []
    for i in range(5):  # failed by a 503 the pipeline saw, due now: classified, retry scheduled
        handful.append((f"{tag} failed {i}", past, "failed", 1, ERROR_503, None, None, None, None, past,
                        "{}", True))
    for i in range(3):  # a retry whose time has come: posted again through the X double
        handful.append((f"{tag} retry {i}", past, "retry_scheduled", 1, ERROR_503, "server_error",
                        now - timedelta(minutes=1), None, None, past, "{}", True))
    handful.append((f"{tag} missed", now - timedelta(hours=2), "scheduled", 0, None, None, None, None, None,
                    now - timedelta(hours=3), None, False))
    for i in range(2):  # failed but waiting (offline): not due yet
        handful.append((f"{tag} waiting {i}", past, "failed", 1, ERROR_503, "network", future, None, None,
                        past, "{}", False))
    for i in range(2):  # the pipeline's next posts
        handful.append((f"{tag} next {i}", future, "scheduled", 0, None, None, None, None, None, now, None,
                        False))
    # Spread the handful evenly through the table, so none sits conveniently at the start.
    positions = {k * size // len(handful): row for k, row in enumerate(handful)}
    for index in range(size):
        if index in positions:
            yield positions[index]
            continue
        at = now - timedelta(minutes=30 * (size - index))
        yield (f"{tag} post {index}", at, "posted", 1, None, None, None, str(10**18 + index), at, at,
               None, False)


@contextmanager
def scratch_postgres() -> Iterator[str]:
    """A fresh database on the machine's PostgreSQL, dropped afterwards."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"am_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    try:
        yield make_url(PG_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        admin.dispose()


def bulk_load(engine: Any, rows: Iterator[tuple[Any, ...]], *, analyze: bool) -> None:
    """The posts: executemany on SQLite (naive UTC text as SQLAlchemy stores it), COPY on PostgreSQL."""
    bulk_insert(engine, "posts", COLUMNS, rows)
    if analyze and engine.dialect.name == "sqlite":  # `PRAGMA optimize` or a person may; we never do
        with engine.begin() as conn:
            conn.exec_driver_sql("ANALYZE")


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, bool):
        return int(value)
    return value


class StatementLog:
    """Every statement the engine runs on `posts`, with its parameters and time."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.engine = engine
        self.entries: list[tuple[str, Any, float]] = []
        self.recording = False
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
                executemany: bool) -> None:
        conn.info["bench_started"] = time.perf_counter()

    def _after(self, conn: Any, cursor: Any, statement: str, parameters: Any, context: Any,
               executemany: bool) -> None:
        if self.recording and POSTS_SQL.search(statement):
            self.entries.append((statement, parameters, time.perf_counter() - conn.info["bench_started"]))

    def take(self) -> list[tuple[str, Any, float]]:
        entries, self.entries = self.entries, []
        return entries


def explain(engine: Any, statements: list[tuple[str, Any, float]]) -> list[dict[str, Any]]:
    """The plan of each distinct statement (by text), with a verdict on full scans of `posts`."""
    plans = []
    seen: set[str] = set()
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        for statement, parameters, _ in statements:
            if statement in seen:
                continue
            seen.add(statement)
            if engine.dialect.name == "sqlite":
                cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
                lines = [str(row[-1]) for row in cursor.fetchall()]
                full_scan = any(re.fullmatch(r"SCAN posts(?: USING (?:COVERING )?INDEX \w+)?", line)
                                for line in lines)
            else:
                cursor.execute("EXPLAIN " + statement, parameters)
                lines = [re.sub(r"\s*\(cost=[^)]*\)", "", str(row[0])).strip(" ->")
                         for row in cursor.fetchall()]
                full_scan = any("Seq Scan on posts" in line for line in lines)
            plans.append({"sql": " ".join(statement.split()), "plan": lines, "full_scan": full_scan})
        raw.rollback()
        cursor.close()
    finally:
        raw.close()
    return plans


def one_backend(result: BenchResult, backend: str, sizes: tuple[int, ...], x_api: Any, web: str,
                tmp: Path) -> dict[str, Any]:
    """Time the sweep at every size on one backend; EXPLAIN the queries at the largest."""
    from recovery.sweep import run_sweep
    from utils.config import load_settings
    from utils.context import MonitorContext
    from utils.redact import register_secrets

    measured: dict[int, dict[str, Any]] = {}
    for size in (sizes[0], *sizes):  # the first pass warms imports and caches; it is discarded
        database = scratch_postgres() if backend == "postgresql" else _sqlite_url(tmp, f"{backend}-{size}")
        with database as url:
            env = bench_env(tmp / f"{backend}-{size}", x_api.base_url, web, DATABASE_URL=url,
                            CHECK_TIMEOUT_SECONDS="5")
            settings = load_settings(env)
            register_secrets(settings.secret_values)
            ctx = MonitorContext(settings)
            try:
                statements = StatementLog(ctx.engine)
                started = time.perf_counter()
                bulk_load(ctx.engine, ledger_rows(size, ctx.now(), uuid.uuid4().hex[:8]),
                          analyze=backend != "sqlite")
                load_s = time.perf_counter() - started
                statements.recording = True
                first_s, first = _timed_sweep(run_sweep, ctx)
                first_sql = statements.take()
                steady = [_timed_sweep(run_sweep, ctx) for _ in range(STEADY_SWEEPS)]
                steady_sql = statements.take()
                plans = explain(ctx.engine, first_sql + steady_sql) if size == sizes[-1] else []
            finally:
                ctx.close()
        measured[size] = {
            "load_s": round(load_s, 2), "first_sweep_s": round(first_s, 4),
            "first_actions": sorted(f"{a.routine}:{a.outcome}" for a in first.actions),
            "first_errors": first.errors,
            "steady_sweep_s": round(median([s for s, _ in steady]), 4),
            "steady_posts_sql_s": round(sum(t for _, _, t in steady_sql) / STEADY_SWEEPS, 5),
            "steady_posts_statements": len(steady_sql) // STEADY_SWEEPS, "plans": plans}
        print(f"  {backend} {size:>9,} rows: load {load_s:.1f}s, first sweep {first_s * 1000:.0f} ms, steady "
              f"{measured[size]['steady_sweep_s'] * 1000:.1f} ms", flush=True)
    base = measured[sizes[0]]
    for size in sizes:
        m = measured[size]
        last = size == sizes[-1]
        result.add(f"{backend} {size:,} rows: first sweep (acts)", m["first_sweep_s"] * 1000, "ms",
                   base["first_sweep_s"] * 1000, f"{sizes[0]} rows",
                   f"≤ {RATIO_TARGET:g}×" if last else "",
                   m["first_sweep_s"] <= RATIO_TARGET * base["first_sweep_s"] if last else None)
        result.add(f"{backend} {size:,} rows: steady sweep", m["steady_sweep_s"] * 1000, "ms",
                   base["steady_sweep_s"] * 1000, f"{sizes[0]} rows",
                   f"≤ {RATIO_TARGET:g}×" if last else "",
                   m["steady_sweep_s"] <= RATIO_TARGET * base["steady_sweep_s"] if last else None)
        result.add(f"{backend} {size:,} rows: SQL on posts per steady sweep", m["steady_posts_sql_s"] * 1000,
                   "ms", base["steady_posts_sql_s"] * 1000, f"{sizes[0]} rows")
    plans = measured[sizes[-1]]["plans"]
    scans = [plan for plan in plans if plan["full_scan"]]
    result.add(f"{backend}: sweep statements on posts doing a full scan at {sizes[-1]:,} rows", len(scans),
               "", target="0", met=not scans)
    for plan in plans:
        result.notes.append(f"{backend} plan{' [FULL SCAN]' if plan['full_scan'] else ''}: "
                            f"{_short_sql(plan['sql'])} → {' / '.join(_plan_nodes(plan['plan']))}")
    return {str(size): m for size, m in measured.items()}


@contextmanager
def _sqlite_url(tmp: Path, name: str) -> Iterator[str]:
    folder = Path(tempfile.mkdtemp(prefix=f"{name}-", dir=tmp))
    yield f"sqlite:///{folder / 'monitor.db'}"


def _timed_sweep(run_sweep: Any, ctx: Any) -> tuple[float, Any]:
    started = time.perf_counter()
    report = run_sweep(ctx)
    return time.perf_counter() - started, report


def _plan_nodes(lines: list[str]) -> list[str]:
    """The lines of a plan that say how rows are found and ordered."""
    keep = [line for line in lines if re.search(r"SCAN|SEARCH|B-TREE|Scan|Sort|Cond", line)]
    return keep[:5] or lines[:3]


def _short_sql(sql: str) -> str:
    sql = re.sub(r"SELECT posts\.id, posts\.text, .*? FROM", "SELECT posts.* FROM", sql)
    sql = re.sub(r"%\((\w+?)(?:_\d+)?\)s(?:::(?:TIMESTAMP WITHOUT TIME ZONE|[A-Z]+))?", r":\1", sql)
    return sql if len(sql) < 220 else sql[:217] + "…"


# --- the monitor's own tables ----------------------------------------------------------------------

MONITOR_ROWS = 1_000_000
MONITOR_ROWS_QUICK = 100_000
MONITOR_RATIO, MONITOR_SLACK_MS = 1.25, 5.0
MONITOR_BACKENDS = tuple(os.environ.get("BENCH_MONITOR_BACKENDS", "sqlite,postgresql").split(","))
MONITOR_REPEATS = 15  # medians of 15: the figures are tens of milliseconds on a shared machine
CHECK_NAMES = ("database", "disk_space", "internet", "scheduler", "twitter_api", "safe_mode")


def monitor_rows(size: int, now: datetime) -> dict[str, tuple[tuple[str, ...], Iterator[tuple[Any, ...]]]]:
    """`size` rows for each monitor table: check history, actions, resolved incidents and their
    flip state, all older than the sweep's own rows (what a year of a bad day leaves without pruning)."""
    def at(i: int) -> datetime:
        return now - timedelta(days=400) + timedelta(seconds=30 * i)

    def incident_key(i: int) -> str:
        return f"failure:server_error:post:{i}"

    return {
        "health_checks": (("name", "status", "detail", "duration_ms", "data", "trigger", "checked_at"),
                          ((CHECK_NAMES[i % len(CHECK_NAMES)], "ok", "fine", 1.5, "{}", "sweep", at(i))
                           for i in range(size))),
        "actions": (("routine", "target", "reason", "outcome", "detail", "dry_run", "started_at",
                     "duration_ms"),
                    (("retry_transient", f"post:{i}", "server_error", "retry_scheduled", "attempt 2 at …",
                      False, at(i), 3.0) for i in range(size))),
        "incidents": (("key", "status", "severity", "title", "detail", "opened_at", "updated_at",
                       "resolved_at", "failure_count", "success_streak", "actions_taken", "flapping",
                       "failure_streak"),
                      ((incident_key(i), "resolved", "critical", "post failed", "503", at(i), at(i), at(i),
                        1, 2, "retry_transient", False, 0) for i in range(size))),
        "monitor_state": (("key", "value", "updated_at"),
                          ((f"incident:flips:{incident_key(i)}", '{"failing": false, "times": []}', at(i))
                           for i in range(size))),
    }


def bulk_insert(engine: Any, table: str, columns: tuple[str, ...], rows: Iterator[tuple[Any, ...]]) -> None:
    """executemany on SQLite, COPY on PostgreSQL (then ANALYZE, as autovacuum would)."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        if engine.dialect.name == "sqlite":
            marks = ", ".join("?" for _ in columns)
            cursor.executemany(f'INSERT INTO {table} ({", ".join(columns)}) VALUES ({marks})',
                               (tuple(_sqlite_value(v) for v in row) for row in rows))
        else:
            quoted = ", ".join(f'"{c}"' for c in columns)
            with cursor.copy(f"COPY {table} ({quoted}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(tuple(v.astimezone(UTC).replace(tzinfo=None) if isinstance(v, datetime)
                                         else v for v in row))
        raw.commit()
        if engine.dialect.name != "sqlite":
            raw.driver_connection.autocommit = True
            cursor.execute(f"VACUUM ANALYZE {table}")
            raw.driver_connection.autocommit = False
        cursor.close()
    finally:
        raw.close()


@contextmanager
def _monitor_with(backend: str, rows: int, x_api: Any, web: str, tmp: Path) -> Iterator[Any]:
    """A monitor (as the daemon builds it) on a fresh database with `rows` rows in each monitor
    table, swept once to warm its caches and connections."""
    from sqlalchemy import create_engine

    from autonomous_monitor import AutonomousMonitor
    from utils.config import load_settings
    from utils.redact import register_secrets

    name = f"monitor-{backend}-{rows}"
    database = scratch_postgres() if backend == "postgresql" else _sqlite_url(tmp, name)
    with database as url:
        settings = load_settings(bench_env(tmp / name, x_api.base_url, web, DATABASE_URL=url,
                                           CHECK_TIMEOUT_SECONDS="5"))
        register_secrets(settings.secret_values)
        monitor = AutonomousMonitor.from_settings(settings)
        try:
            assert monitor.ctx.engine is not None  # its first use creates the tables
            loader = create_engine(url)  # unbounded: a 1M-row COPY outlasts the monitor's statement timeout
            for table, (columns, data) in monitor_rows(rows, monitor.ctx.now()).items():
                bulk_insert(loader, table, columns, data)
            loader.dispose()
            monitor.run_sweep()
            yield monitor
        finally:
            monitor.close()


def _monitor_case(backend: str, rows: int, x_api: Any, web: str, tmp: Path) -> dict[str, dict[str, float]]:
    """Median steady sweep (the daemon's: checks, ledger, logs, incidents) and `status` times on
    empty monitor tables and with `rows` rows in each, measured alternately so that the machine's
    load drifts alike for both."""
    from daemon.status_report import gather_status

    times: dict[str, dict[str, list[float]]] = {case: {"sweep_ms": [], "status_ms": []}
                                                for case in ("empty", "full")}
    with _monitor_with(backend, 0, x_api, web, tmp) as empty, \
            _monitor_with(backend, rows, x_api, web, tmp) as full:
        for _ in range(MONITOR_REPEATS):
            for case, monitor in (("empty", empty), ("full", full)):
                started = time.perf_counter()
                monitor.run_sweep()
                times[case]["sweep_ms"].append((time.perf_counter() - started) * 1000)
                started = time.perf_counter()
                gather_status(monitor.ctx)
                times[case]["status_ms"].append((time.perf_counter() - started) * 1000)
    return {case: {what: median(values) for what, values in found.items()} for case, found in times.items()}


def monitor_tables(result: BenchResult, x_api: Any, web: str, tmp: Path) -> dict[str, Any]:
    """Steady sweep and `status` with 1M rows in each monitor table against empty tables."""
    rows = MONITOR_ROWS_QUICK if result.quick else MONITOR_ROWS
    found: dict[str, Any] = {}
    for backend in MONITOR_BACKENDS:
        try:
            measured = _monitor_case(backend, rows, x_api, web, tmp)
            empty, full = measured["empty"], measured["full"]
        except Exception as exc:  # no PostgreSQL here: say so, keep SQLite's numbers
            if backend != "postgresql":
                raise
            result.notes.append(f"monitor tables on postgresql skipped: {type(exc).__name__}: {exc}")
            continue
        found[backend] = {"empty": empty, "full": full}
        for what, label in (("sweep_ms", "steady sweep"), ("status_ms", "status")):
            limit = MONITOR_RATIO * empty[what] + MONITOR_SLACK_MS
            result.add(f"{backend} {rows:,} rows in each monitor table: {label}", round(full[what], 1),
                       "ms", round(empty[what], 1), "empty monitor tables",
                       f"≤ {MONITOR_RATIO:g}× + {MONITOR_SLACK_MS:g} ms = {limit:.1f} ms",
                       full[what] <= limit)
        print(f"  monitor tables {backend}: empty {empty}, {rows:,} rows {full}", flush=True)
    return found


# --- acting on failed rows ------------------------------------------------------------------------

ACTED_ROWS = 100
ACTED_REPEATS = 3
# This benchmark run on commit 1859367 (before the sweep batched its bookkeeping), same machine,
# same sizes, right before the run on the batched code: the "before" each figure is held against.
ACTED_BEFORE: dict[str, dict[str, float]] = {
    "sqlite": {"wall_ms": 15.9, "cpu_ms": 14.7, "commits": 4.01, "statements": 13.0},
    "postgresql": {"wall_ms": 38.9, "cpu_ms": 25.8, "commits": 4.01, "statements": 13.0},
}
ACTED_BEFORE_WHEN = "commit 1859367, 2026-11-30"


class TransactionCount:
    """Commits and statements an engine runs while `counting` is set."""

    def __init__(self, engine: Any) -> None:
        from sqlalchemy import event

        self.commits = self.statements = 0
        self.counting = False
        event.listen(engine, "commit", self._commit)
        event.listen(engine, "before_cursor_execute", self._statement)

    def _commit(self, conn: Any) -> None:
        self.commits += self.counting

    def _statement(self, *args: Any) -> None:
        self.statements += self.counting


def _failed_rows(count: int, now: datetime) -> Iterator[tuple[Any, ...]]:
    """`count` rows the pipeline left `failed` with a 503 on their first attempt: each is
    classified, gets its retry scheduled, an action and an incident."""
    at = now - timedelta(minutes=5)
    tag = uuid.uuid4().hex[:8]
    for i in range(count):
        yield (f"{tag} acted {i}", at, "failed", 1, ERROR_503, None, None, None, None, at, "{}", False)


def _acted_case(backend: str, x_api: Any, web: str, tmp: Path) -> dict[str, float]:
    """Per row: wall and CPU milliseconds, commits and statements of a daemon sweep (checks,
    ledger, incidents) that acts on ACTED_ROWS failed rows, minus a steady sweep of the same
    monitor measured right after it (medians of ACTED_REPEATS)."""
    per_row: dict[str, list[float]] = {"wall_ms": [], "cpu_ms": [], "commits": [], "statements": []}
    with _monitor_with(backend, 0, x_api, web, tmp) as monitor:
        counter = TransactionCount(monitor.ctx.engine)
        for _ in range(ACTED_REPEATS):
            bulk_insert(monitor.ctx.engine, "posts", COLUMNS, _failed_rows(ACTED_ROWS, monitor.ctx.now()))
            sweeps = {}
            for case in ("acting", "steady"):
                counter.commits = counter.statements = 0
                counter.counting = True
                wall, cpu = time.perf_counter(), time.process_time()
                report = monitor.run_sweep()
                sweeps[case] = {"wall_ms": (time.perf_counter() - wall) * 1000,
                                "cpu_ms": (time.process_time() - cpu) * 1000,
                                "commits": counter.commits, "statements": counter.statements}
                counter.counting = False
                if case == "acting":
                    acted = sum(1 for a in report.actions if a.routine == "retry_transient")
                    assert acted == ACTED_ROWS, f"acted on {acted} of {ACTED_ROWS} rows: {report.summary()}"
            for what in per_row:
                per_row[what].append((sweeps["acting"][what] - sweeps["steady"][what]) / ACTED_ROWS)
    return {what: round(median(values), 3) for what, values in per_row.items()}


def acted_rows(result: BenchResult, x_api: Any, web: str, tmp: Path) -> dict[str, Any]:
    """What one acted-on failed row adds to a sweep, on SQLite and PostgreSQL."""
    found: dict[str, Any] = {}
    for backend in MONITOR_BACKENDS:
        try:
            found[backend] = measured = _acted_case(backend, x_api, web, tmp)
        except Exception as exc:  # no PostgreSQL here: say so, keep SQLite's numbers
            if backend != "postgresql":
                raise
            result.notes.append(f"acted rows on postgresql skipped: {type(exc).__name__}: {exc}")
            continue
        before = ACTED_BEFORE.get(backend, {})
        for what, unit, label in (("wall_ms", "ms", "time"), ("cpu_ms", "ms", "CPU"),
                                  ("commits", "", "commits"), ("statements", "", "statements")):
            was = before.get(what)
            result.add(f"{backend}: {label} per acted-on failed row", measured[what], unit,
                       was, f"before, {ACTED_BEFORE_WHEN}" if was is not None else "",
                       "< before" if was is not None else "", measured[what] < was if was else None)
        print(f"  acted rows {backend}: {measured}", flush=True)
    return found


def measure(result: BenchResult) -> None:
    sizes = QUICK_SIZES if result.quick else FULL_SIZES
    details: dict[str, Any] = {"sizes": sizes, "steady_sweeps": STEADY_SWEEPS}
    with tempfile.TemporaryDirectory(prefix="bench-sweep-") as tmp, loopback_web() as web, \
            x_double() as x_api:
        details["monitor_tables"] = monitor_tables(result, x_api, web, Path(tmp))
        details["acted_rows"] = acted_rows(result, x_api, web, Path(tmp))
        for backend in BACKENDS:
            try:
                details[backend] = one_backend(result, backend, sizes, x_api, web, Path(tmp))
            except Exception as exc:  # e.g. no PostgreSQL on this machine: say so, keep SQLite's numbers
                if backend != "postgresql":
                    raise
                result.notes.append(f"postgresql skipped: {type(exc).__name__}: {exc}")
        details["x_api_calls"] = dict(x_api.calls)
    result.details = details
    if result.quick:
        result.notes.append("quick run: the largest size is 100,000 rows, not 1,000,000")


if __name__ == "__main__":
    sys.exit(bench_main("sweep_cost", "3. Sweep cost as the ledger grows", measure))
