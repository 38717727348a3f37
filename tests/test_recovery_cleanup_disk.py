"""cleanup_disk deletes only old, regular, allowed files inside the allowed folders."""

from __future__ import annotations

import os

import pytest

from recovery.base import Target, run_routine
from recovery.routines import cleanup_disk
from utils.config import ConfigError, load_settings

DISK = Target("check:disk_space", "disk", "low disk space: / 3% free")


def _file(path, age_hours: float, now_ts: float, text: str = "data") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    os.utime(path, (now_ts - age_hours * 3600, now_ts - age_hours * 3600))


@pytest.fixture
def tree(tmp_path, clock):
    now_ts = clock().timestamp()
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    _file(allowed / "app.log.1", 48, now_ts, "x" * 1000)        # deleted
    _file(allowed / "app.log.2", 1, now_ts)                    # too young
    _file(allowed / "closed.log", 48, now_ts)                  # old and not open: deleted
    _file(allowed / "held-open.log", 48, now_ts)               # open right now: kept
    _file(allowed / "autonomous_monitor.log", 48, now_ts)      # the monitor's live log: kept
    _file(outside / "precious.txt", 48, now_ts)
    _file(outside / "precious.log.1", 48, now_ts)
    (allowed / "link.log.3").symlink_to(outside / "precious.log.1")
    (allowed / "escape").symlink_to(outside, target_is_directory=True)
    return allowed, outside


def test_only_allowed_old_regular_files_are_deleted(env, make_ctx, tree):
    allowed, outside = tree
    patterns = f"{allowed}/*.log*,{allowed}/*/*,{allowed}/escape/*"
    ctx = make_ctx({**env, "CLEANUP_PATHS": patterns, "CLEANUP_MIN_AGE_HOURS": "24"})
    with open(allowed / "held-open.log", "a"):
        record = run_routine(ctx, cleanup_disk.ROUTINE, DISK)
    assert (record.outcome, record.verified) == ("fixed", True)
    assert f"{allowed}/escape/* (contains" in record.detail
    assert "deleted 2 file(s), freed 1004 bytes" in record.detail
    remaining = sorted(p.name for p in allowed.iterdir())
    assert remaining == ["app.log.2", "autonomous_monitor.log", "escape", "held-open.log", "link.log.3"]
    assert sorted(p.name for p in outside.iterdir()) == ["precious.log.1", "precious.txt"]


def test_dot_dot_and_whole_filesystem_patterns_are_refused(env, make_ctx, tree):
    allowed, outside = tree
    with pytest.raises(ConfigError):
        load_settings({**env, "CLEANUP_PATHS": f"{allowed}/../outside/*"})
    ctx = make_ctx(env, cleanup_paths=(f"{allowed}/../outside/*", "/*", "/*/*.txt"),
                   cleanup_min_age_hours=0)
    record = run_routine(ctx, cleanup_disk.ROUTINE, DISK)
    assert "deleted 0 file(s)" in record.detail and "refused patterns" in record.detail
    assert (outside / "precious.txt").exists()


def test_dry_run_lists_what_would_go_and_deletes_nothing(env, make_ctx, tree):
    allowed, _ = tree
    ctx = make_ctx({**env, "CLEANUP_PATHS": f"{allowed}/*.log.[0-9]*", "DRY_RUN": "true"})
    record = run_routine(ctx, cleanup_disk.ROUTINE, DISK)
    assert record.outcome == "dry_run" and "would delete 1 file(s)" in record.detail
    assert (allowed / "app.log.1").exists()


def test_every_deleted_file_is_logged(env, make_ctx, tree, caplog):
    allowed, _ = tree
    ctx = make_ctx({**env, "CLEANUP_PATHS": f"{allowed}/*.log.[0-9]*"})
    with caplog.at_level("INFO"):
        run_routine(ctx, cleanup_disk.ROUTINE, DISK)
    assert f"cleanup_disk deleted {allowed / 'app.log.1'} (1000 bytes)" in caplog.text


def test_patterns_without_a_folder_or_over_the_monitor_code_are_refused(env, make_ctx, tree):
    for pattern in ("*.log", "*/old.txt"):
        with pytest.raises(ConfigError, match="must start with a folder"):
            load_settings({**env, "CLEANUP_PATHS": pattern})
    code = cleanup_disk.CODE_DIR
    old = code / "README.md"
    before = old.stat().st_mtime
    os.utime(old, (before - 10 * 86400, before - 10 * 86400))  # old enough to be a candidate
    try:
        ctx = make_ctx(env, cleanup_paths=(f"{code}/*.md", f"{code.parent}/*/*.md"),
                       cleanup_min_age_hours=0)
        record = run_routine(ctx, cleanup_disk.ROUTINE, DISK)
        assert "deleted 0 file(s)" in record.detail and "refused patterns" in record.detail
        assert old.exists()
    finally:
        os.utime(old, (before, before))


# --- files that posts waiting to be published still need (posts.media_paths) -------------------

@pytest.mark.slow
@pytest.mark.parametrize("backend", ["sqlite", "postgres_url", "mysql_url"])
def test_cleanup_keeps_a_file_a_scheduled_post_needs_and_deletes_an_old_unreferenced_one(
        backend, request, env, make_ctx, clock, tmp_path):
    import json

    from sqlalchemy import insert

    from utils.db import posts

    url = env["DATABASE_URL"] if backend == "sqlite" else request.getfixturevalue(backend)
    now_ts = clock().timestamp()
    media = tmp_path / "media"
    for name in ("tomorrow.png", "old-unused.png", "posted-long-ago.png", "typo.png", "relative.png"):
        _file(media / name, 72, now_ts, "p" * 500)
    ctx = make_ctx({**env, "DATABASE_URL": url, "CLEANUP_PATHS": f"{media}/*.png"})
    with ctx.engine.begin() as conn:
        conn.execute(insert(posts), [
            {"text": "with a picture", "status": "scheduled", "scheduled_at": clock(),
             "media_paths": json.dumps([str(media / "tomorrow.png")])},
            {"text": "done", "status": "posted", "scheduled_at": clock(),
             "media_paths": json.dumps([str(media / "posted-long-ago.png")])},
            {"text": "hostile", "status": "failed", "scheduled_at": clock(), "media_paths": "{\"a\": 1}"},
            {"text": "a typo", "status": "scheduled", "scheduled_at": clock(),
             "media_paths": f'["{media / "typo.png"}", '},  # broken JSON: what it names is kept
            {"text": "relative", "status": "retry_scheduled", "scheduled_at": clock(),
             "media_paths": json.dumps(["media/relative.png"])}])

    planned = run_routine(make_ctx({**env, "DATABASE_URL": url, "CLEANUP_PATHS": f"{media}/*.png",
                                    "DRY_RUN": "true"}), cleanup_disk.ROUTINE, DISK)
    assert planned.outcome == "dry_run" and "freeing 1000 bytes" in planned.detail
    assert "kept 3 file(s) a post waiting to be published needs" in planned.detail
    assert "post 3: media_paths is not a JSON list of paths" in planned.detail
    assert "post 4: media_paths is not valid JSON; kept every file it names" in planned.detail
    assert "post 5: media_paths has relative paths" in planned.detail
    assert len(list(media.iterdir())) == 5  # a dry run deletes nothing

    record = run_routine(ctx, cleanup_disk.ROUTINE, DISK)
    assert "deleted 2 file(s), freed 1000 bytes" in record.detail
    assert sorted(p.name for p in media.iterdir()) == ["relative.png", "tomorrow.png", "typo.png"]


def test_cleanup_deletes_nothing_when_the_ledger_cannot_be_read(env, make_ctx, clock, tmp_path):
    now_ts = clock().timestamp()
    _file(tmp_path / "media" / "maybe-needed.png", 72, now_ts)
    ctx = make_ctx({**env, "CLEANUP_PATHS": f"{tmp_path / 'media'}/*.png"})
    ctx.engine  # noqa: B018 - the tables exist; then the ledger goes away
    with ctx.engine.begin() as conn:
        conn.exec_driver_sql("DROP TABLE posts")
    record = run_routine(ctx, cleanup_disk.ROUTINE, DISK)
    assert record.outcome == "failed" and record.needs_human
    assert "deleted nothing, as a post waiting to be published may need any file" in record.detail
    assert (tmp_path / "media" / "maybe-needed.png").exists()
