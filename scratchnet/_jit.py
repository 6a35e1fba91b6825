"""``njit``: numba.njit(cache=True), or the identity when Numba is missing.

``use_jit()`` tells ops whether to take the Numba loop kernels or the vectorised ``xp`` reference,
and ``jit_route(*arrays)`` is the one dispatch test every ``kernels/<family>.py`` route file uses;
set ``SCRATCHNET_JIT=0`` to force the reference (``NUMBA_DISABLE_JIT=1`` instead runs the loop
kernels interpreted, for stepping through them in a debugger).
"""
from __future__ import annotations

import os
import types

try:
    import numba as _numba
except Exception:  # pragma: no cover - numba is a required dependency, but stay importable
    _numba = None

__all__ = ["njit", "prange", "use_jit", "jit_route", "JIT_DTYPES", "HAVE_NUMBA"]

HAVE_NUMBA = _numba is not None


def njit(*args, **kwargs):
    """``numba.njit(cache=True, ...)``; used bare (``@njit``) or with options (``@njit(parallel=True)``)."""
    if _numba is None:
        if args and callable(args[0]):
            return args[0]
        return lambda f: f
    kwargs.setdefault("cache", True)
    if args and callable(args[0]) and len(args) == 1 and not kwargs.keys() - {"cache"}:
        return _numba.njit(**kwargs)(args[0])
    decorate = _numba.njit(*args, **kwargs)
    if kwargs.get("parallel") and kwargs["cache"]:
        return lambda f: decorate(_variant(f, "parallel"))
    return decorate


def _variant(f, tag):
    """A copy of ``f`` whose qualified name carries ``tag``.

    Numba keys its on-disk cache by module, qualified name and line, not by options: a parallel
    and a serial compilation of one Python function would share one cache entry, and whichever
    was written first would be loaded for both (a "parallel" kernel silently running serially).
    """
    g = types.FunctionType(f.__code__, f.__globals__, f.__name__, f.__defaults__, f.__closure__)
    g.__qualname__ = f"{f.__qualname__}__{tag}"
    g.__module__, g.__doc__ = f.__module__, f.__doc__
    return g


prange = _numba.prange if _numba is not None else range


def use_jit() -> bool:
    """True unless SCRATCHNET_JIT=0 (or Numba is missing): take the Numba kernels."""
    return HAVE_NUMBA and os.environ.get("SCRATCHNET_JIT", "1") != "0"


JIT_DTYPES = ("float32", "float64")  # the float dtypes the Numba kernels are compiled for


def jit_route(*arrays) -> bool:
    """True when the Numba loop kernels should run on ``arrays`` (None entries ignored).

    That is: JIT on (``use_jit()``), every array a NumPy array (a CuPy array takes the CUDA kernels
    where ``kernels.cuda.cuda_route`` allows, else the vectorised path), and every float array
    float32 or float64 (float16 takes the vectorised path, which NumPy supports, instead of failing
    inside Numba). Integer arrays (indices, lengths) do not vote on the dtype. The single dispatch
    test of the Numba kernels.
    """
    if not use_jit():
        return False
    for a in arrays:
        if a is None:
            continue
        if type(a).__module__.split(".")[0] == "cupy":
            return False
        kind = a.dtype.kind
        if kind == "f" and a.dtype.name not in JIT_DTYPES:
            return False
    return True
