"""Keep freed memory for reuse: the C allocator's settings for a training loop.

A training step allocates the same large arrays (activations, caches, gradients) every iteration.
glibc's malloc serves blocks above a threshold with fresh ``mmap`` pages and returns them to the
system on ``free``; the next step's arrays then page-fault on first touch, and on a virtual machine
those faults cost milliseconds per step (chapters/15-lstm.md measures it on the LSTM benchmark).
Raising the mmap threshold to its maximum and the trim threshold far above it keeps freed blocks in
the heap, where the next iteration reuses them — what PyTorch's caching allocators do for their own
tensors.

``import scratchnet`` changes nothing: the settings are process-wide, so they are an explicit call,
``keep_freed_memory()`` (also ``scratchnet.keep_freed_memory``), made by ``fit``, by the
``scratchnet`` command before it runs benchmarks (as ``benchmarks/harness.py`` does), and by the
kernel of ``scratchnet run``, which asks for it with ``SCRATCHNET_MALLOC=keep`` (an import of
scratchnet applies the settings only when that variable says so). Linux with glibc only;
``SCRATCHNET_MALLOC=default`` leaves the allocator alone everywhere. The cost is that the process
keeps its peak heap instead of shrinking after it.
"""
from __future__ import annotations

import ctypes
import os
import sys

__all__ = ["keep_freed_memory", "apply_if_requested"]

_M_TRIM_THRESHOLD, _M_TOP_PAD, _M_MMAP_THRESHOLD = -1, -2, -3  # mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 << 20  # glibc's largest allowed value on 64-bit systems: 32 MiB
TRIM_THRESHOLD = 1 << 30  # return heap memory to the system only above 1 GiB free at the top
TOP_PAD = 64 << 20  # grow the heap in 64 MiB steps
_applied = None  # what the latest keep_freed_memory() call returned; None: never called in this process


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds so freed large arrays are reused; True when applied.

    Process-wide and lasting; calling it again is harmless. False (nothing changed) off Linux/glibc
    or with ``SCRATCHNET_MALLOC=default``.
    """
    global _applied
    _applied = _set_thresholds()
    return _applied


def apply_if_requested() -> bool:
    """``keep_freed_memory()`` when ``SCRATCHNET_MALLOC=keep`` asks for it (``scratchnet run`` sets it
    for its notebook kernel), else nothing; True when applied."""
    return os.environ.get("SCRATCHNET_MALLOC", "") == "keep" and keep_freed_memory()


def _set_thresholds() -> bool:
    if not sys.platform.startswith("linux") or os.environ.get("SCRATCHNET_MALLOC", "") == "default":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (musl, ...): leave the allocator alone
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    return all(mallopt(param, value) == 1 for param, value in
               ((_M_MMAP_THRESHOLD, MMAP_THRESHOLD), (_M_TRIM_THRESHOLD, TRIM_THRESHOLD), (_M_TOP_PAD, TOP_PAD)))
