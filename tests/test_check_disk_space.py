"""`disk_space` against a real 4 MiB tmpfs that the test mounts and fills with real files."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from checks import disk_space
from checks.base import Status, run_one

SIZE = 4 * 2**20


def run(ctx: Any) -> Any:
    return run_one("disk_space", disk_space.check, ctx)


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A fresh 4 MiB tmpfs (needs root / CAP_SYS_ADMIN), unmounted afterwards."""
    mount_point = tmp_path / "small"
    mount_point.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={SIZE}", "tmpfs", str(mount_point)],
                          capture_output=True, text=True, timeout=10, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip() or proc.returncode}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], capture_output=True, timeout=10, check=False)


def fill_to(mount_point: Path, free_percent: float) -> float:
    """Write real files until about `free_percent` is left; returns the free percent reached."""
    usage = psutil.disk_usage(str(mount_point))
    to_write = usage.free - int(usage.total * free_percent / 100)
    with open(mount_point / f"fill-{len(os.listdir(mount_point))}.bin", "wb") as handle:
        handle.write(os.urandom(to_write))
    usage = psutil.disk_usage(str(mount_point))
    return usage.free / usage.total * 100


def ctx_for(make_ctx: Any, env: dict, *paths: Path | str) -> Any:
    return make_ctx({**env, "DISK_PATHS": ",".join(str(p) for p in paths),
                     "DISK_WARN_FREE_PERCENT": "15", "DISK_CRIT_FREE_PERCENT": "5"})


def test_empty_tmpfs_is_ok_with_free_bytes_and_percent(tmpfs: Path, env: dict, make_ctx: Any) -> None:
    result = run(ctx_for(make_ctx, env, tmpfs))
    assert result.status is Status.OK, result.detail
    measured = result.data["paths"][str(tmpfs)]
    assert measured["total_bytes"] == SIZE
    assert measured["free_bytes"] == psutil.disk_usage(str(tmpfs)).free
    assert measured["free_percent"] == 100
    assert result.detail == f"{tmpfs} 100% free (4.00 MiB)"


def test_filled_past_warn_is_warning_then_past_crit_is_critical(tmpfs: Path, env: dict,
                                                                 make_ctx: Any) -> None:
    ctx = ctx_for(make_ctx, env, tmpfs)
    reached = fill_to(tmpfs, 10)
    assert 5 < reached < 15
    warning = run(ctx)
    assert warning.status is Status.WARNING and warning.failure_class == "disk"
    measured = warning.data["paths"][str(tmpfs)]
    assert measured["free_percent"] == pytest.approx(reached, abs=0.01)
    assert measured["free_bytes"] == psutil.disk_usage(str(tmpfs)).free
    assert "disk space getting low" in warning.detail and str(tmpfs) in warning.detail

    reached = fill_to(tmpfs, 2)
    assert reached < 5
    critical = run(ctx)
    assert critical.status is Status.CRITICAL and critical.failure_class == "disk"
    assert critical.data["paths"][str(tmpfs)]["free_percent"] == pytest.approx(reached, abs=0.01)
    free_kib = psutil.disk_usage(str(tmpfs)).free / 1024
    assert critical.detail == f"low disk space: {tmpfs} {round(reached, 2):g}% free ({free_kib:.2f} KiB)"

    for leftover in tmpfs.iterdir():  # freeing space brings it back to ok
        leftover.unlink()
    assert run(ctx).status is Status.OK


def test_missing_path_is_unknown_and_says_so(env: dict, make_ctx: Any, tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "folder"
    result = run(ctx_for(make_ctx, env, missing))
    assert result.status is Status.UNKNOWN
    assert result.detail == f"{missing} does not exist"
    assert result.data["paths"][str(missing)] == {"exists": False}


def test_several_paths_the_worst_wins(tmpfs: Path, env: dict, make_ctx: Any, tmp_path: Path) -> None:
    missing = tmp_path / "gone"
    healthy = tmp_path  # the container's disk: plenty free compared with a full tmpfs
    assert run(ctx_for(make_ctx, env, healthy, missing)).status is Status.UNKNOWN
    fill_to(tmpfs, 10)
    warning = run(ctx_for(make_ctx, env, healthy, tmpfs))
    assert warning.status is Status.WARNING
    assert str(tmpfs) in warning.detail and f"{healthy} " not in warning.detail
    fill_to(tmpfs, 2)
    critical = run(ctx_for(make_ctx, env, healthy, missing, tmpfs))
    assert critical.status is Status.CRITICAL  # critical beats unknown and ok
    assert str(tmpfs) in critical.detail and str(missing) not in critical.detail
    assert set(critical.data["paths"]) == {str(healthy), str(missing), str(tmpfs)}
    assert critical.data["paths"][str(healthy)]["free_bytes"] > 0
