"""The process's freed memory handed back to the system (glibc on Linux; elsewhere nothing happens).

A MobileNet-size conversion or per-tensor measure allocates hundreds of MB for a few seconds. glibc keeps what is
freed in its heaps for reuse, and TensorFlow's many threads each get a heap of their own (an "arena"), so the
process's resident memory climbs step after step although little is in use. Measured on ``report`` of MobileNetV2-224
with 200 images: a peak of 1,694 MB as it was, 1,585 MB with two arenas, 1,4xx MB with two arenas and a trim after
each recipe and each verdict (``benchmarks/bench_big_model.py``).

- ``limit_arenas()`` caps glibc's arenas (``mallopt(M_ARENA_MAX, 2)``, what ``MALLOC_ARENA_MAX=2`` does) for the
  threads started after it: the command line calls it first thing;
- ``trim()`` returns the free pages at the top of every heap (``malloc_trim(0)``): after each recipe and verdict.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys
from functools import lru_cache
from typing import Any

ARENAS = 2
_M_ARENA_MAX = -8  # glibc's mallopt parameter


@lru_cache(maxsize=1)
def _libc() -> Any:
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "malloc_trim") and hasattr(libc, "mallopt") else None
    except OSError:  # not glibc (musl, ...): nothing to do
        return None


def limit_arenas(count: int = ARENAS) -> bool:
    """Cap glibc's heaps at ``count`` for threads started from now on; ``True`` when it took."""
    libc = _libc()
    return bool(libc is not None and libc.mallopt(_M_ARENA_MAX, int(count)))


def trim() -> bool:
    """Give the free memory at the top of every heap back to the system; ``True`` when some was."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))
