"""Bad input: a broken `.env`, hostile log files, odd ledger rows, hostile settings.

Each case ends in a clear one-line report, loses nothing it could keep, and never crashes the
monitor. What tests/test_config.py, test_log_reader.py, test_classify.py, test_sweep.py and
test_recovery_cleanup_disk.py already prove is not repeated here.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, insert, select, text

from autonomiq_ledger.posting import get_post, post, schedule_post
from recovery.base import Target, run_routine
from recovery.logs.reader import scan_file
from recovery.routines import cleanup_disk
from recovery.sweep import run_sweep, sweep_exit_code
from tests.conftest import run_cli
from tests.support.xapi_double import BODY_503, TWEETS, Reply
from utils.config import EX_CONFIG, ConfigError, Settings, load_settings
from utils.db import init_db, log_offsets, make_engine, posts, utc_now

pytestmark = pytest.mark.fault

RATE_LIMIT_LINE = ("2026-11-28 07:05:00,000 ERROR pipeline.post: post 12 failed: "
                   "tweepy.errors.TooManyRequests: 429 Too Many Requests")


def _one_line_naming(proc: Any, *words: str) -> str:
    """The single stderr line of a refused start (exit 78, nothing on stdout, no traceback)."""
    assert proc.returncode == EX_CONFIG, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    assert all(word in lines[0] for word in words), lines[0]
    return lines[0]


# --- a .env with garbage lines ----------------------------------------------------------------
# python-dotenv 1.x: a line without '=' becomes a key with no value; a line it cannot parse is
# skipped with a warning naming only the line; bytes that are not UTF-8 raise UnicodeDecodeError
# (a traceback before the monitor could say anything); a quote that is never closed swallows the
# following lines, silently when a later line happens to close it. The monitor reads what it can,
# reports the ignored lines in one line, and refuses to start (78) only when one of its own
# settings would be lost that way.

GARBAGE_ENV = (b"# the pipeline's .env, damaged\n"
               b"\xff\xfe\x00binary junk \xc3\x28 SECRETgarbage1\n"
               b"JUST_A_WORD\n"
               b"this is prose, not a setting\n"
               b"PIPELINE_NOTE='never closed SECRETgarbage2\n"
               b"MONITOR_TIMEZONE=Europe/Berlin\n"
               b"SWEEP_INTERVAL=7m\n")


@pytest.mark.slow
def test_garbage_lines_are_ignored_reported_once_and_later_settings_still_apply(
        env: dict[str, str], tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_bytes(GARBAGE_ENV)
    env_file.chmod(0o600)
    environ = {key: value for key, value in env.items() if key != "MONITOR_TIMEZONE"}
    environ["ENV_FILE"] = str(env_file)
    proc = run_cli(["status", "--json"], environ)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["timezone"] == "Europe/Berlin"  # read from the line after the garbage
    assert report["warnings"] == [f"ENV_FILE {env_file}: line 2 is not UTF-8 text; line 3 has no '='; line 4 "
                                  "cannot be parsed; line 5 cannot be parsed: those lines were ignored"]
    assert "Traceback" not in proc.stderr
    text_view = run_cli(["status"], environ)
    assert text_view.returncode == 0 and "WARNINGS\n  ENV_FILE" in text_view.stdout
    for output in (proc.stdout, proc.stderr, text_view.stdout, text_view.stderr):
        assert "SECRETgarbage" not in output  # a report names lines, never what was on them
    assert load_settings(environ).sweep_interval.total_seconds() == 7 * 60


@pytest.mark.parametrize("closing", [
    pytest.param(b'DISK_WARN_FREE_PERCENT="20"\n', id="dotenv-warns-about-the-line-it-fails-on"),
    pytest.param(b'PIPELINE_TAG="\n', id="dotenv-is-silent-when-a-later-quote-ends-a-line"),
])
@pytest.mark.slow
def test_an_unclosed_quote_that_swallows_a_setting_exits_78_naming_the_line(
        env: dict[str, str], tmp_path: Path, closing: bytes) -> None:
    env_file = tmp_path / ".env"
    env_file.write_bytes(b"CHECK_TIMEOUT_SECONDS=4\nPIPELINE_NOTE=\"never closed\n"
                         b"DATABASE_URL=sqlite:////srv/pipeline/ledger.db\n" + closing)
    environ = {key: value for key, value in env.items() if key != "DATABASE_URL"}
    proc = run_cli(["check"], {**environ, "ENV_FILE": str(env_file)})
    line = _one_line_naming(proc, "ENV_FILE", "line 3", "DATABASE_URL", "line 2")
    assert "ledger.db" not in line
    # The same file is fine when the environment sets that setting anyway.
    overridden = {**env, "DISK_WARN_FREE_PERCENT": "15", "ENV_FILE": str(env_file)}
    assert run_cli(["status"], overridden).returncode == 0


@pytest.mark.slow
def test_a_setting_whose_own_line_is_not_utf8_is_refused_not_guessed(env: dict[str, str],
                                                                     tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_bytes(b"SCHEDULER_HEARTBEAT_FILE=/srv/pipeline/heart\xe9beat\n")
    proc = run_cli(["status"], {**env, "ENV_FILE": str(env_file)})
    _one_line_naming(proc, "ENV_FILE", "line 1", "SCHEDULER_HEARTBEAT_FILE", "not UTF-8")


_ENV_PIECES = st.one_of(
    st.binary(max_size=24),
    st.sampled_from([b"CHECK_TIMEOUT_SECONDS=5", b'NOTE="', b"NOTE='", b"export ", b"=", b"#", b"\\",
                     b"DATABASE_URL=\"sqlite:///x.db", b"TWITTER_API_SECRET=SECRETfuzz9",
                     b"SECRETfuzz9", b"${HOME}", b"\xff", b"\r", b"\x00"]),
)


@pytest.mark.slow
@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(_ENV_PIECES, max_size=12), st.lists(st.sampled_from([b"\n", b"", b" "]), max_size=12))
def test_arbitrary_env_file_bytes_give_settings_or_one_config_error(tmp_path: Path, pieces: list[bytes],
                                                                  joints: list[bytes]) -> None:
    env_file = tmp_path / "fuzz.env"
    env_file.write_bytes(b"".join(piece + joint for piece, joint in itertools.zip_longest(
        pieces, joints, fillvalue=b"\n")))
    try:
        loaded = load_settings({"ENV_FILE": str(env_file)})
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and "SECRETfuzz9" not in message
        return
    assert isinstance(loaded, Settings)
    assert all("\n" not in warning and "SECRETfuzz9" not in warning for warning in loaded.env_warnings)


# --- a pipeline log with binary data and a 10 MB line -----------------------------------------

@pytest.mark.slow
def test_binary_and_a_10_mb_error_line_neither_crash_the_sweep_nor_hide_later_errors(
        env: dict[str, str], make_ctx: Any, tmp_path: Path) -> None:
    log = tmp_path / "pipeline.log"
    with log.open("wb") as handle:
        handle.write(b"2026-11-28 07:00:00,000 INFO pipeline: start\n")
        handle.write(b"2026-11-28 07:00:01,000 ERROR pipeline: dump " + b"\xff\x00x" * 3_500_000 + b"\n")
        handle.write(bytes(range(256)) * 64 + b"\n" + os.urandom(4096).replace(b"\n", b"") + b"\n")
        handle.write(RATE_LIMIT_LINE.encode() + b"\n")
    ctx = make_ctx({**env, "PIPELINE_LOG_FILES": str(log)})
    report = run_sweep(ctx)
    from_log = [d for d in report.detected if d.source == "log"]
    assert "rate_limit" in [d.failure_class for d in from_log]  # the good line after the junk
    assert all(len(d.detail) <= 300 and "\n" not in d.detail for d in from_log)
    assert report.errors == []
    with ctx.engine.connect() as conn:
        assert conn.execute(select(log_offsets.c.offset)).scalar_one() == log.stat().st_size
    assert [d for d in run_sweep(ctx).detected if d.source == "log"] == []  # nothing read twice
    with log.open("ab") as handle:
        handle.write(RATE_LIMIT_LINE.replace("post 12", "post 13").encode() + b"\n")
    later = [d for d in run_sweep(ctx).detected if d.source == "log"]
    assert [(d.failure_class, d.detail.split(" ", 1)[0]) for d in later] == [("rate_limit", "1")]


_scratch = tempfile.TemporaryDirectory(prefix="am-badlog-")
_engine = make_engine(f"sqlite:///{_scratch.name}/offsets.db")
init_db(_engine)
_files = itertools.count()


@pytest.mark.slow
@settings(max_examples=120, deadline=None)
@given(st.binary(max_size=4000), st.integers(len(RATE_LIMIT_LINE), 2048))
def test_arbitrary_bytes_before_an_error_line_never_hide_it(junk: bytes, cap: int) -> None:
    path = Path(_scratch.name) / f"junk-{next(_files)}.log"
    path.write_bytes(junk + b"\n" + RATE_LIMIT_LINE.encode() + b"\n")
    events = scan_file(_engine, path, utc_now(), max_line_bytes=cap)
    assert "rate_limit" in [event.failure_class for event in events]
    assert all(len(event.first_line) <= 300 for event in events)
    assert scan_file(_engine, path, utc_now(), max_line_bytes=cap) == []  # the offset moved past it


# --- posts rows with NULLs and 100 000 characters ---------------------------------------------

def _pipeline_made_posts_table(url: str) -> None:
    """The ledger as a pipeline might have created it itself: every column nullable."""
    serial = "SERIAL PRIMARY KEY" if url.startswith("postgresql") else "INTEGER PRIMARY KEY AUTOINCREMENT"
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"""CREATE TABLE posts (id {serial}, text TEXT, scheduled_at TIMESTAMP,
            status VARCHAR(20), attempts INTEGER, last_error TEXT, failure_class VARCHAR(32),
            next_attempt_at TIMESTAMP, tweet_id VARCHAR(64), posted_at TIMESTAMP, updated_at TIMESTAMP,
            last_error_headers TEXT, ambiguous_attempt BOOLEAN)"""))
    engine.dispose()


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_rows_with_nulls_and_huge_text_are_reported_and_skipped_the_rest_handled(
        backend: str, env: dict[str, str], make_ctx: Any, x_api: Any, clock: Any, request: Any) -> None:
    if backend == "postgres":
        env = {**env, "DATABASE_URL": request.getfixturevalue("postgres_url")}
    _pipeline_made_posts_table(env["DATABASE_URL"])
    ctx = make_ctx(env)
    now = ctx.now()
    nulls = {column.name: None for column in posts.columns if column.name != "id"}
    rows = {
        "null_text": {"status": "failed", "last_error": "503 Service Unavailable"},
        "huge_text": {"text": "y" * 100_000, "status": "failed", "last_error": "e" * 100_000},
        "posting_no_clock": {"text": "in flight?", "status": "posting", "attempts": 1},
        "missed_null_attempts": {"text": "missed", "status": "scheduled",
                                 "scheduled_at": now.replace(hour=5)},
        "due_null_everything": {"text": "due", "status": "retry_scheduled"},
        "null_status": {"text": "nobody's"},
    }
    ids = {}
    with ctx.engine.begin() as conn:
        for name, values in rows.items():
            ids[name] = conn.execute(insert(posts).values({**nulls, **values})).inserted_primary_key[0]
    good = schedule_post(ctx.engine, "a normal failure", now, now=now)
    x_api.script(TWEETS, Reply(503, BODY_503))
    assert post(ctx, good).status == "failed"

    report = run_sweep(ctx)
    errors = {int(error.split(":", 1)[0].removeprefix("post ")): error for error in report.errors}
    assert set(errors) == {ids["null_text"], ids["huge_text"], ids["posting_no_clock"], ids["null_status"]}
    assert "status None is not one of" in errors[ids["null_status"]]  # reported, never ignored
    assert "text is empty or NULL" in errors[ids["null_text"]]
    assert "100000 characters" in errors[ids["huge_text"]]
    assert "no updated_at" in errors[ids["posting_no_clock"]]
    assert all(len(error) < 300 for error in report.errors)
    assert sweep_exit_code(report) == 2  # a person has to look at those rows
    for name in ("null_text", "huge_text", "posting_no_clock", "null_status"):
        assert get_post(ctx.engine, ids[name])["status"] == rows[name].get("status")  # untouched
    assert sorted(tweet["text"] for tweet in x_api.tweets) == ["due", "missed"]
    assert get_post(ctx.engine, ids["missed_null_attempts"])["status"] == "posted"
    assert any(action.post_id == good for action in report.actions)  # the ordinary row is handled
    clock.advance(hours=2)
    again = run_sweep(ctx)
    assert sorted(tweet["text"] for tweet in x_api.tweets) == ["a normal failure", "due", "missed"]
    assert len(again.errors) == 4  # still reported, still not touched


# --- SCHEDULER_SERVICE with shell metacharacters ------------------------------------------------

@pytest.fixture
def fake_systemctl(tmp_path: Path) -> tuple[str, Path]:
    """A `systemctl` first on PATH that records its arguments (NUL-separated) and says `active`."""
    bin_dir, record = tmp_path / "bin", tmp_path / "systemctl.args"
    bin_dir.mkdir()
    script = bin_dir / "systemctl"
    script.write_text(f"#!/bin/sh\nprintf '%s\\0' \"$@\" >> '{record}'\necho active\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return f"{bin_dir}:{os.environ.get('PATH', '')}", record


HOSTILE_UNITS = ["pipeline.service; rm -rf /", "$(touch {marker})", "`touch {marker}`",
                 "pipeline.service && touch {marker}", "pipeline.service | tee {marker}",
                 "pipeline.service\ntouch {marker}", "-Hroot@evil.example", "--host=evil.example",
                 "pipeline.service > {marker}"]


@pytest.mark.slow
@pytest.mark.parametrize("template", HOSTILE_UNITS)
@pytest.mark.parametrize("source", ["environment", "env_file"])
def test_scheduler_service_with_shell_metacharacters_is_refused_and_never_run(
        template: str, source: str, env: dict[str, str], tmp_path: Path, fake_systemctl: Any) -> None:
    path, record = fake_systemctl
    marker = tmp_path / "pwned"
    value = template.format(marker=marker)
    environ = {**env, "PATH": path}
    if source == "env_file":
        env_file = tmp_path / ".env"
        env_file.write_text("SCHEDULER_SERVICE=" + json.dumps(value) + "\n")
        environ["ENV_FILE"] = str(env_file)
    else:
        environ["SCHEDULER_SERVICE"] = value
    proc = run_cli(["check"], environ)
    _one_line_naming(proc, "SCHEDULER_SERVICE", "is not a systemd unit name")
    assert not marker.exists() and not record.exists()  # nothing ran, not even systemctl


@pytest.mark.slow
def test_a_valid_unit_name_reaches_systemctl_as_one_argument(env: dict[str, str],
                                                            fake_systemctl: Any) -> None:
    path, record = fake_systemctl
    unit = r"pipeline@user\x2dbot.service"
    proc = run_cli(["check", "--json"], {**env, "PATH": path, "SCHEDULER_SERVICE": unit})
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["scheduler"]["status"] == "ok", checks["scheduler"]
    assert record.read_bytes().split(b"\0")[:-1] == [b"is-active", unit.encode()]


# --- CLEANUP_PATHS that climb out, symlinks that lead out --------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("pattern", ["{tmp}/logs/../../etc/*", "logs/../../*", "..", "{tmp}/a/../*.log.1"])
def test_cleanup_pattern_with_dot_dot_exits_78_naming_the_variable(pattern: str, env: dict[str, str],
                                                                  tmp_path: Path) -> None:
    proc = run_cli(["sweep"], {**env, "CLEANUP_PATHS": pattern.format(tmp=tmp_path)})
    _one_line_naming(proc, "CLEANUP_PATHS", "must not contain '..'")


def test_recursive_cleanup_never_follows_symlinks_out_of_its_folder(env: dict[str, str], make_ctx: Any,
                                                                    tmp_path: Path, clock: Any) -> None:
    old = clock().timestamp() - 48 * 3600
    allowed, outside = tmp_path / "cleanup", tmp_path / "precious"
    (allowed / "deep" / "er").mkdir(parents=True)
    outside.mkdir()
    for path in (allowed / "deep" / "er" / "app.log.1", outside / "keep.log.1", outside / "keep.txt"):
        path.write_text("old data")
        os.utime(path, (old, old))
    (allowed / "out").symlink_to(outside, target_is_directory=True)             # a folder leading out
    (allowed / "deep" / "loop").symlink_to(allowed, target_is_directory=True)   # a loop
    (allowed / "deep" / "link.log.2").symlink_to(outside / "keep.log.1")       # a file leading out
    (allowed / "deep" / "dangling.log.3").symlink_to(tmp_path / "nowhere")
    os.utime(allowed / "deep" / "link.log.2", (old, old), follow_symlinks=False)
    ctx = make_ctx({**env, "CLEANUP_PATHS": f"{allowed}/**/*.log.*,{allowed}/**/*"})
    record = run_routine(ctx, cleanup_disk.ROUTINE, Target("check:disk_space", "disk", "low disk"))
    assert "deleted 1 file(s)" in record.detail, record.detail
    assert not (allowed / "deep" / "er" / "app.log.1").exists()
    assert sorted(p.name for p in outside.iterdir()) == ["keep.log.1", "keep.txt"]
    assert all(os.path.islink(allowed / name) for name in ("out", "deep/loop", "deep/link.log.2",
                                                             "deep/dangling.log.3"))


# --- settings that used to pass validation and then crash, or fall back silently ----------------
# Each refused start is one line naming the variable, exit 78, no traceback, whatever the command.

BAD_SETTINGS = [
    ("DATABASE_URL", "mysql+mysqldb://root@127.0.0.1:3306/test", "mysql+pymysql://"),
    ("DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1/test", "postgresql+psycopg://"),
    ("DATABASE_URL", "oracle://scott@127.0.0.1/db", "these work"),
    ("DATABASE_URL", "sqlite:///{tmp}/no-such-folder/ledger.db", "does not exist"),
    ("ENV_FILE", "{tmp}/missing.env", "does not exist"),
    ("ENV_FILE", "{tmp}", "is not a file"),
    ("CHECK_TIMEOUT_SECONDS", "nan", "finite"),
    ("CHECK_TIMEOUT_SECONDS", "inf", "finite"),
    ("JOB_TIMEOUT_SECONDS", "-inf", "finite"),
    ("BACKOFF_MAX_SECONDS", "1e309", "finite"),
    ("ALERT_REPEAT_HOURS", "1e300", "must be at most"),
    ("SWEEP_INTERVAL", "99999999999d", "must be at most"),
    ("SWEEP_INTERVAL", "9" * 400, "must be at most"),
    ("SWEEP_INTERVAL", "0.01s", "must be at least 1s"),
    ("FLAP_WINDOW", "0s", "is not a duration"),
    ("MAX_POST_ATTEMPTS", "9" * 5000, "is not an integer"),
    ("ALERT_AFTER_FAILURES", "1000000", "must be at most"),
    ("PRECHECK_LEAD_MINUTES", "-1", "must be at least 0"),
]


@pytest.mark.parametrize(("variable", "value", "says"), BAD_SETTINGS,
                         ids=[f"{v}={x[:24]}" for v, x, _ in BAD_SETTINGS])
@pytest.mark.slow
def test_a_bad_setting_exits_78_in_one_line_naming_it(variable: str, value: str, says: str,
                                                     env: dict[str, str], tmp_path: Path) -> None:
    environ = {**env, variable: value.format(tmp=tmp_path)}
    command = ["run"] if variable in ("SWEEP_INTERVAL", "ALERT_REPEAT_HOURS") else ["check"]
    proc = run_cli(command, environ, timeout=30)  # `run` would not return if the value passed
    line = _one_line_naming(proc, f"configuration error: {variable} ", says)
    assert "Traceback" not in proc.stderr and len(line) < 400


HOSTILE_VALUES = ["nan", "-inf", "1e999", "-1", "0", "99999999999d", "9" * 5000, "\t", "x" * 10_000,
                  "::", "ÿ\u202e", "%(x)s{0}"]


@pytest.mark.parametrize("value", HOSTILE_VALUES, ids=lambda value: repr(value[:12]))
def test_no_setting_turns_a_hostile_value_into_anything_but_a_config_error(value: str) -> None:
    from utils.config import SPECS

    for spec in SPECS:
        try:
            load_settings({"ENV_FILE": "/dev/null", spec.env: value})
        except ConfigError as exc:
            assert exc.variable in {spec.env for spec in SPECS} and "\n" not in str(exc)  # or a pair
            assert value not in str(exc) or len(value) < 4 or not spec.secret


@pytest.mark.slow
def test_postgres_scheme_is_read_as_postgresql_with_psycopg(env: dict[str, str], postgres_url: str) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(postgres_url)
    libpq = f"postgres://{url.username}@{url.host}:{url.port}/{url.database}"  # libpq/Heroku spelling
    assert load_settings({"ENV_FILE": "/dev/null", "DATABASE_URL": libpq}).database_url.startswith(
        "postgresql+psycopg://")
    proc = run_cli(["check", "--json"], {**env, "DATABASE_URL": libpq})
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["database"]["status"] == "ok", checks["database"]
    assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_env_file_dev_null_means_no_file_and_the_default_sqlite_folder_is_made(tmp_path: Path) -> None:
    settings = load_settings({"ENV_FILE": "/dev/null"})
    assert settings.env_file == Path("/dev/null") and settings.env_warnings == ()
    proc = run_cli(["check", "--json"], {"ENV_FILE": "/dev/null", "LOG_DIR": str(tmp_path / "logs"),
                                         "CONNECTIVITY_URLS": "http://127.0.0.1:9"}, cwd=tmp_path)
    assert proc.returncode != EX_CONFIG, proc.stderr  # the default path's folder is created
    assert (tmp_path / "data" / "autonomous_monitor.db").is_file()
