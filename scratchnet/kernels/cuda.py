"""CUDA kernels on CuPy: the prelude every kernel source starts with, compilation, and the GPU route test.

Legend: a *kernel source* is CUDA C written against the small prelude below, so that one text
compiles in two places:

- on a GPU, with NVRTC through ``cupy.RawModule`` (``compile_kernel``): ``SN_KERNEL`` is
  ``extern "C" __global__``;
- on any CPU, with the system's C compiler (``scratchnet.kernels.cuda_emulator``): each CUDA thread
  of a block becomes a POSIX thread, ``__syncthreads()`` a barrier. The tests run every kernel this
  way against its vectorised reference, so the GPU code is checked on machines without a GPU.

The sources use only what both compilers share: 1-D grids and blocks (``threadIdx.x``,
``blockIdx.x``, ``blockDim.x``, ``gridDim.x``), ``__syncthreads()``, ``__shared__`` scalars, the
``real`` type (float or double, chosen per compilation by ``SN_DOUBLE``) with ``r_exp`` / ``r_log``
/ ``r_log1p``, and ``long long`` offsets. −∞ is passed in as an argument (neither compiler has a
header both can include for it). Arguments go in as CuPy arrays (C-contiguous, of the dtype the
parameter names) and NumPy scalars of the parameter's exact type: a Python ``int`` would reach an
``int`` parameter as 64 bits; the emulator refuses both mistakes, CuPy would silently misread them.

``cuda_route(*arrays)`` is the GPU twin of ``jit_route``: CuPy arrays of float32/float64 take the
kernels, unless SCRATCHNET_JIT=0 asks for the vectorised reference (the readable path, on both devices).
"""
from __future__ import annotations

import functools
import os

import numpy as np

from ..backend import is_cupy

__all__ = ["PRELUDE", "cuda_route", "compile_kernel", "kernel_source", "block_size", "grid_size"]

PRELUDE = r"""
#ifdef __CUDACC_RTC__                      /* NVRTC, through cupy.RawModule */
#define SN_KERNEL extern "C" __global__
#define SN_DEVICE __device__ __forceinline__
#else                                      /* a C compiler: scratchnet.kernels.cuda_emulator */
#include <math.h>
#include <pthread.h>
typedef struct { unsigned int x, y, z; } sn_dim3;
static __thread sn_dim3 threadIdx, blockIdx;   /* this thread's indices (one POSIX thread per CUDA thread) */
static sn_dim3 blockDim, gridDim;
static pthread_barrier_t sn_barrier;           /* the block's barrier: blocks run one after another */
#define __syncthreads() pthread_barrier_wait(&sn_barrier)
#define __shared__ static                      /* one block at a time: a static is the block's shared memory */
#define SN_KERNEL
#define SN_DEVICE static inline
#endif
#if SN_DOUBLE
typedef double real;
#define r_exp exp
#define r_log log
#define r_log1p log1p
#else
typedef float real;
#define r_exp expf
#define r_log logf
#define r_log1p log1pf
#endif
SN_DEVICE int sn_imin(int a, int b) { return a < b ? a : b; }
SN_DEVICE int sn_imax(int a, int b) { return a > b ? a : b; }
"""

KERNEL_DTYPES = ("float32", "float64")


def kernel_source(source: str, dtype) -> str:
    """The whole text compiled for ``dtype`` (float32 → real is float, float64 → double)."""
    dtype = np.dtype(dtype)
    if dtype.name not in KERNEL_DTYPES:
        raise TypeError(f"kernel_source: the CUDA kernels are compiled for float32 and float64, got {dtype}")
    return f"#define SN_DOUBLE {int(dtype == np.float64)}\n" + PRELUDE + source


def cuda_route(*arrays) -> bool:
    """True when the CUDA kernels should run on ``arrays`` (None entries ignored): every array a CuPy
    array, every float array float32 or float64, and SCRATCHNET_JIT not 0. Integer arrays do not vote."""
    if os.environ.get("SCRATCHNET_JIT", "1") == "0":
        return False
    seen = False
    for a in arrays:
        if a is None:
            continue
        if not is_cupy(a):
            return False
        if a.dtype.kind == "f" and a.dtype.name not in KERNEL_DTYPES:
            return False
        seen = True
    return seen


@functools.lru_cache(maxsize=None)
def _module(source: str, dtype_name: str):
    import cupy  # only reached with CuPy arrays
    return cupy.RawModule(code=kernel_source(source, dtype_name))  # NVRTC, with its default options


def compile_kernel(source: str, name: str, dtype):
    """The CuPy kernel ``name`` of ``source`` compiled for ``dtype``: called as
    ``kernel((grid,), (block,), args)``. Compiled once per source and dtype (CuPy caches the binary)."""
    return _module(source, np.dtype(dtype).name).get_function(name)


def block_size(work: int, *, limit: int = 1024) -> int:
    """Threads per block for ``work`` items shared out by one block: a multiple of 32 (a warp), at
    least 32, at most ``limit`` (threads loop with stride blockDim.x over the rest)."""
    return int(min(limit, max(32, -(-work // 32) * 32)))


def grid_size(total: int, block: int, *, limit: int = 4096) -> int:
    """Blocks for ``total`` items at one item per thread, at most ``limit``: the kernels walk their
    items with a grid-stride loop, so a grid smaller than the work still covers all of it."""
    return int(max(1, min(-(-total // block), limit)))
