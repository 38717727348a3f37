"""`disk`: free space by deleting only old files that CLEANUP_PATHS allows.

Only regular files (never symlinks or folders) that match a pattern, resolve inside the fixed
folder the pattern starts with, are older than CLEANUP_MIN_AGE_HOURS, are not live logs, and are
not named in the `media_paths` of a post still to be published (one not `posted`, `gave_up` or
`skipped`). When the ledger cannot be read, nothing is deleted: a pending post may need any file.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from recovery.base import FixOutcome, Routine, Target, requeue
from utils.db import posts
from utils.logging_setup import FAILURE_LOG, FAILURE_LOGGER, MAIN_LOG

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "cleanup_disk"
_MAGIC = re.compile(r"[*?\[]")
CODE_DIR = Path(__file__).resolve().parents[2]  # the monitor's own files are never candidates
failure_log = logging.getLogger(FAILURE_LOGGER)
FINISHED = ("posted", "gave_up", "skipped")  # a post in any other state may still need its media


class LedgerUnreadable(Exception):
    """The ledger could not be read, so the files pending posts need are not known."""


def pattern_root(pattern: str) -> Path | None:
    """The fixed folder a pattern starts with (resolved); None when the pattern is refused."""
    parts = Path(pattern).parts
    if ".." in parts:
        return None
    fixed = parts[: next((i for i, part in enumerate(parts) if _MAGIC.search(part)), len(parts))]
    if not fixed:  # "*.log" would mean wherever the process happens to run
        return None
    named = Path(os.path.abspath(Path(*fixed)))
    root = named.resolve()
    # Never a whole filesystem, never a folder that holds the monitor's code, and never a folder
    # that is itself a link to somewhere else.
    if root == Path(root.anchor) or CODE_DIR.is_relative_to(root) or root != named:
        return None
    return root


def _live_logs(ctx: MonitorContext) -> set[Path]:
    settings = ctx.settings
    live = {(settings.log_dir / name).resolve() for name in (MAIN_LOG, FAILURE_LOG)}
    return live | {Path(path).resolve() for path in settings.pipeline_log_files}


def _open_files() -> set[Path]:
    import psutil

    found: set[Path] = set()
    for proc in psutil.process_iter():
        try:
            found.update(Path(item.path) for item in proc.open_files())
        except (psutil.Error, OSError):
            continue
    return found


def pending_media(ctx: MonitorContext) -> tuple[set[Path], list[str], list[str]]:
    """The files named by posts not yet finished; the raw values that are not a clean list of
    absolute paths (any file whose name they mention is kept); and why each such value is off.
    Raises LedgerUnreadable when the ledger cannot be read at all."""
    query = select(posts.c.id, posts.c.media_paths).where(
        posts.c.media_paths.is_not(None), posts.c.status.not_in(FINISHED))
    try:
        with ctx.engine.connect() as conn:
            rows = conn.execute(query).all()
    except SQLAlchemyError as exc:
        raise LedgerUnreadable(f"cannot read posts.media_paths ({type(exc).__name__}): deleted "
                               "nothing, as a post waiting to be published may need any file") from exc
    needed: set[Path] = set()
    mentioned, problems = [], []
    for post_id, raw in rows:
        paths, problem = _media_list(raw)
        needed.update(Path(os.path.abspath(path)).resolve() for path in paths)
        if problem:
            mentioned.append(str(raw))
            problems.append(f"post {post_id}: media_paths {problem}; kept every file it names")
    return needed, mentioned, problems


def _media_list(raw: object) -> tuple[list[str], str | None]:
    """The paths of one `media_paths` value (a JSON list of absolute paths; a bare path is one)."""
    text = str(raw).strip()
    if not text:
        return [], None
    try:
        value = json.loads(text)
    except ValueError:
        if text.startswith(("[", "{", '"')):
            return [], "is not valid JSON"
        value = [text]  # a pipeline that stored one path without JSON
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        return [], "is not a JSON list of paths"
    relative = [item for item in value if not os.path.isabs(item)]
    return [item for item in value if os.path.isabs(item)], (
        f"has relative paths {relative[:3]} (use absolute paths)" if relative else None)


def candidates(ctx: MonitorContext) -> tuple[list[tuple[Path, int]], list[str]]:
    """(file, size) pairs that may be deleted, and the patterns refused (with why)."""
    files, refused, _kept, _problems = _sorted_candidates(ctx)
    return files, refused


def _sorted_candidates(ctx: MonitorContext
                       ) -> tuple[list[tuple[Path, int]], list[str], list[Path], list[str]]:
    """What may be deleted, the patterns refused, the matching files kept for pending posts, and
    the `media_paths` values that could not be read."""
    needed, mentioned, problems = pending_media(ctx)
    cutoff = ctx.now().timestamp() - ctx.settings.cleanup_min_age_hours * 3600
    live, opened = _live_logs(ctx), None
    chosen: dict[Path, int] = {}
    refused = []
    for pattern in ctx.settings.cleanup_paths:
        root = pattern_root(pattern)
        if root is None:
            refused.append(f"{pattern} (contains '..', covers a whole filesystem or starts in a "
                           "symbolic link: name the real folder)")
            continue
        for match in glob.glob(pattern, recursive=True):
            try:
                info = os.lstat(match)
                real = Path(match).resolve()
            except OSError:
                continue
            if not stat.S_ISREG(info.st_mode) or not real.is_relative_to(root):
                continue  # a symlink, a folder, or a path that leads outside the allowed folder
            if info.st_mtime > cutoff or real in live or real.name in (MAIN_LOG, FAILURE_LOG):
                continue
            if real.name.endswith(".log"):
                opened = _open_files() if opened is None else opened
                if real in opened:
                    continue
            chosen[real] = info.st_size
    protected = {path for path in chosen if path in needed or any(path.name in text for text in mentioned)}
    files = sorted((path, size) for path, size in chosen.items() if path not in protected)
    kept = sorted(protected)
    return files, refused, kept, problems


def _notes(refused: list[str], kept: list[Path], problems: list[str]) -> str:
    notes = ""
    if kept:
        notes += (f"; kept {len(kept)} file(s) a post waiting to be published needs: "
                  + ", ".join(str(path) for path in kept[:10]))
    if refused:
        notes += f"; refused patterns: {'; '.join(refused)}"
    if problems:
        notes += f"; unreadable: {'; '.join(problems[:5])}"
    return notes


def plan(ctx: MonitorContext, target: Target) -> str:
    """What fix() would do: the files and bytes it would free, and what it would keep."""
    try:
        files, refused, kept, problems = _sorted_candidates(ctx)
    except LedgerUnreadable as exc:
        return f"delete nothing: {exc}"
    listed = ", ".join(str(path) for path, _ in files[:20]) or "nothing"
    return (f"delete {len(files)} file(s), freeing {sum(size for _, size in files)} bytes: {listed}"
            + _notes(refused, kept, problems))


def fix(ctx: MonitorContext, target: Target) -> FixOutcome:
    """Delete the candidates, logging each file and the bytes freed; never a file a pending post
    names, and nothing at all when the ledger cannot be read."""
    try:
        files, refused, kept, problems = _sorted_candidates(ctx)
    except LedgerUnreadable as exc:
        return FixOutcome("failed", str(exc), needs_human=True)
    freed, deleted, errors = 0, 0, []
    for path, size in files:
        try:
            path.unlink()
        except OSError as exc:
            errors.append(f"{path}: {exc.strerror or exc}")
            continue
        freed += size
        deleted += 1
        failure_log.info("cleanup_disk deleted %s (%d bytes)", path, size)
    detail = f"deleted {deleted} file(s), freed {freed} bytes" + _notes(refused, kept, problems)
    if errors:
        detail += f"; could not delete: {'; '.join(errors[:5])}"
    return FixOutcome("fixed", detail + requeue(ctx, target))


ROUTINE = Routine(NAME, fix, plan, verify_check="disk_space")
