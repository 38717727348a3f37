"""Keep the C allocator from holding memory the Python heap has given back (glibc; a no-op elsewhere).

glibc gives each thread that allocates its own arena (up to 8 per core). The daemon's jobs run
on scheduler threads, so on a bad day each of them kept tens of MB resident that the Python heap
no longer used: the footprint benchmark's backlog grew 60 MB over 90 sweeps that way. The unit
sets `MALLOC_ARENA_MAX=2`; `limit_malloc_arenas` does the same from inside, so
`python autonomous_monitor.py run` in a terminal behaves like the service. `trim_free_memory`
after a sweep hands the pages its transient rows left free back to the system, so resident memory
follows what is in use instead of the largest job so far.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import os
from collections.abc import Mapping
from typing import Any

logger = logging.getLogger(__name__)
M_ARENA_MAX = -8  # glibc's mallopt parameter number (malloc.h)
ARENAS = 2


def limit_malloc_arenas(environ: Mapping[str, str] | None = None, arenas: int = ARENAS) -> bool:
    """Ask the C library to share at most `arenas` malloc arenas among the threads started from
    now on. True when that limit (or the person's own MALLOC_ARENA_MAX, which wins) holds; False
    where it cannot be set (not glibc): the daemon runs the same, with a larger footprint."""
    if (os.environ if environ is None else environ).get("MALLOC_ARENA_MAX"):
        return True  # glibc read it at start-up
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    done = mallopt(M_ARENA_MAX, arenas) == 1
    if not done:
        logger.debug("the C library refused mallopt(M_ARENA_MAX, %d)", arenas)
    return done


def trim_free_memory() -> bool:
    """Return the allocator's free pages to the system (`malloc_trim(0)`, every arena); True when
    some memory was released, False when none was or where it is not glibc."""
    trim = _libc_function("malloc_trim")
    if trim is None:
        return False
    trim.argtypes, trim.restype = (ctypes.c_size_t,), ctypes.c_int
    return trim(0) == 1


@functools.cache
def _libc_function(name: str) -> Any:
    """The C library's function `name`, or None where this process has none by that name."""
    try:
        return getattr(ctypes.CDLL(None), name)
    except (OSError, AttributeError):
        return None
