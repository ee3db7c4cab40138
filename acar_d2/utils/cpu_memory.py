"""
Keeping freed CPU memory in the process, so that a model's activations reuse it.

A CPU forward allocates every activation anew. With glibc's defaults a large block (above a
threshold that adapts up to 32 MB on 64-bit Linux) is a fresh ``mmap`` returned to the system when
freed, and the top of the heap is given back above a trim threshold: the next forward touches
new pages again, and the kernel zero-fills each 4 KB page on a fault. SlowFast's res2 activations
(1 x 256 x 8 x 64 x 64 float32 = 33.5 MB) are above the largest threshold. Measured on the 2-core
development machine (``tools/benchmarks/benchmark_inference.py``, docs/DEMO.md "Speed"): one
1x1x1 convolution 64 -> 256 channels on that map took 14.6 ms with the defaults and 5.8 ms with
the memory kept; the R50 eval forward 15-34% less time for the plain model, 5-12% for the
inference path's (seven runs; each time against the same model in a process with the defaults).

:func:`keep_freed_memory` asks glibc (``mallopt``) to serve every block from the heap
(``M_MMAP_MAX`` 0) and to keep up to ``trim_bytes`` of freed memory at its top
(``M_TRIM_THRESHOLD``): the process then holds its peak working set instead of giving it back
between forwards (what jemalloc / tcmalloc, which PyTorch's CPU tuning guide recommends, do on
their own). A process-wide setting; the inference path (``MODEL.INFERENCE.KEEP_FREED_MEMORY``)
applies it on a CPU, and it is a no-op where the C library is not glibc.
"""
import ctypes
import ctypes.util
import logging
from typing import Optional

__all__ = ["keep_freed_memory", "freed_memory_kept"]

logger = logging.getLogger(__name__)

# mallopt parameters of glibc's malloc.h
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4

_KEPT: Optional[int] = None


def _glibc() -> Optional[ctypes.CDLL]:
    """The process's glibc, or None (another C library, or none to be found)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()
        return libc
    except (OSError, AttributeError):
        return None


def keep_freed_memory(trim_bytes: int = 1 << 30) -> bool:
    """
    Serve every allocation of this process from the heap and keep up to ``trim_bytes`` of freed
    memory there (glibc ``mallopt``), so that repeated forwards reuse pages already mapped.

    Args:
        trim_bytes (int): freed memory at the top of the heap above which glibc gives memory
            back to the system (default 1 GiB: more than one R50 SlowFast forward's activations).
            The price is resident memory: the fp32 R50 predictor over five clip sizes settles at
            1.86 GB (flat from the 10th forward to the 25th) against 1.29 GB with the defaults.
    Returns:
        bool: whether the setting is in effect (False where the C library is not glibc).
    """
    global _KEPT
    if _KEPT is not None and _KEPT >= trim_bytes:
        return True
    libc = _glibc()
    if libc is None:
        logger.info("Freed CPU memory is not kept: the C library is not glibc")
        return False
    ok = libc.mallopt(_M_MMAP_MAX, 0) == 1 and libc.mallopt(_M_TRIM_THRESHOLD, int(trim_bytes)) == 1
    if ok:
        _KEPT = int(trim_bytes)
        logger.info("Freed CPU memory is kept for reuse (glibc: no mmap blocks, trim above %d MB)",
                    trim_bytes >> 20)
    return ok


def freed_memory_kept() -> bool:
    """Whether :func:`keep_freed_memory` is in effect in this process."""
    return _KEPT is not None
