"""The daemon bounds glibc's malloc arenas itself (`daemon/allocator.py`), as the unit's
MALLOC_ARENA_MAX=2 does: threads that allocate share two arenas instead of one each."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# Eight threads allocate (blocks above pymalloc's 512 bytes come from malloc), all alive at once;
# then glibc's malloc_info counts the arenas (`<heap nr=…>`).
PROBE = """
import ctypes, re, sys, threading
from daemon.allocator import limit_malloc_arenas, trim_free_memory
if sys.argv[1] == "limit":
    print("limited", limit_malloc_arenas())
barrier = threading.Barrier(9)
def work():
    kept = [bytes(2000 + i % 100) for i in range(2000)]
    barrier.wait()
threads = [threading.Thread(target=work) for _ in range(8)]
[t.start() for t in threads]; barrier.wait(); [t.join() for t in threads]
libc = ctypes.CDLL(None)
libc.fopen.restype = ctypes.c_void_p
out = libc.fopen(sys.argv[2].encode(), b"w")
libc.malloc_info(0, ctypes.c_void_p(out)); libc.fclose(ctypes.c_void_p(out))
print("arenas", len(re.findall("<heap nr=", open(sys.argv[2]).read())))
"""


def _arenas(mode: str, tmp_path: Path, **env: str) -> list[str]:
    env = {"PATH": "/usr/bin:/bin", **env}  # no MALLOC_ARENA_MAX from outside unless given
    done = subprocess.run([sys.executable, "-c", PROBE, mode, str(tmp_path / f"{mode}.xml")], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=60, check=True)
    return done.stdout.split()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_threads_share_two_arenas_once_limited(tmp_path: Path) -> None:
    free = _arenas("free", tmp_path)
    limited = _arenas("limit", tmp_path)
    assert int(free[-1]) > 2  # without the limit each thread takes its own: the test can tell
    assert limited[:2] == ["limited", "True"] and int(limited[-1]) <= 2


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_the_persons_own_malloc_arena_max_wins(tmp_path: Path) -> None:
    found = _arenas("limit", tmp_path, MALLOC_ARENA_MAX="4")
    assert found[:2] == ["limited", "True"] and 2 < int(found[-1]) <= 4
