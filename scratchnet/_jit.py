"""``njit``: numba.njit(cache=True), or the identity when Numba is missing.

``use_jit()`` tells ops whether to take the Numba loop kernels or the vectorised ``xp`` reference;
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

__all__ = ["njit", "prange", "use_jit", "HAVE_NUMBA"]

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
