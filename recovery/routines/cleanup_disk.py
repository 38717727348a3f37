"""`disk`: free space by deleting only old files that CLEANUP_PATHS allows.

Only regular files (never symlinks or folders) that match a pattern, resolve inside the fixed
folder the pattern starts with, are older than CLEANUP_MIN_AGE_HOURS and are not live logs.
"""

from __future__ import annotations

import glob
import logging
import os
import re
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from recovery.base import FixOutcome, Routine, Target, requeue
from utils.logging_setup import FAILURE_LOG, FAILURE_LOGGER, MAIN_LOG

if TYPE_CHECKING:
    from utils.context import MonitorContext

NAME = "cleanup_disk"
_MAGIC = re.compile(r"[*?\[]")
CODE_DIR = Path(__file__).resolve().parents[2]  # the monitor's own files are never candidates
failure_log = logging.getLogger(FAILURE_LOGGER)


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


def candidates(ctx: MonitorContext) -> tuple[list[tuple[Path, int]], list[str]]:
    """(file, size) pairs that may be deleted, and the patterns refused (with why)."""
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
    return sorted(chosen.items()), refused


def plan(ctx: MonitorContext, target: Target) -> str:
    """What fix() would do."""
    files, refused = candidates(ctx)
    listed = ", ".join(str(path) for path, _ in files[:20]) or "nothing"
    return (f"delete {len(files)} file(s), {sum(size for _, size in files)} bytes: {listed}"
            + (f"; refused patterns: {'; '.join(refused)}" if refused else ""))


def fix(ctx: MonitorContext, target: Target) -> FixOutcome:
    """Delete the candidates, logging each file and the bytes freed."""
    files, refused = candidates(ctx)
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
    detail = f"deleted {deleted} file(s), freed {freed} bytes"
    if refused:
        detail += f"; refused patterns: {'; '.join(refused)}"
    if errors:
        detail += f"; could not delete: {'; '.join(errors[:5])}"
    return FixOutcome("fixed", detail + requeue(ctx, target))


ROUTINE = Routine(NAME, fix, plan, verify_check="disk_space")
