"""``njit``: numba.njit(cache=True), or the identity when Numba is missing.

``use_jit()`` tells ops whether to take the Numba loop kernels or the vectorised ``xp`` reference;
set ``SCRATCHNET_JIT=0`` to force the reference (``NUMBA_DISABLE_JIT=1`` instead runs the loop
kernels interpreted, for stepping through them in a debugger).
"""
from __future__ import annotations

import os

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
    return _numba.njit(*args, **kwargs)


prange = _numba.prange if _numba is not None else range


def use_jit() -> bool:
    """True unless SCRATCHNET_JIT=0 (or Numba is missing): take the Numba kernels."""
    return HAVE_NUMBA and os.environ.get("SCRATCHNET_JIT", "1") != "0"
