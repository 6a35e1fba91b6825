"""The library's default random generator. Randomness always comes in explicitly as ``rng=``;
when it does not, ``default_rng()`` is used, which ``scratchnet.seed(n)`` resets."""
from __future__ import annotations

import numpy as np

__all__ = ["seed", "default_rng", "get_rng"]

_DEFAULT = np.random.default_rng(0)


def seed(n: int) -> np.random.Generator:
    """Reset the default generator to ``numpy.random.default_rng(n)`` and return it."""
    global _DEFAULT
    _DEFAULT = np.random.default_rng(n)
    return _DEFAULT


def default_rng() -> np.random.Generator:
    """The current default generator (set by ``seed``)."""
    return _DEFAULT


def get_rng(rng=None) -> np.random.Generator:
    """``rng`` itself, a new generator from an int seed, or the default generator for None."""
    if rng is None:
        return _DEFAULT
    if isinstance(rng, (int, np.integer)):
        return np.random.default_rng(int(rng))
    if isinstance(rng, np.random.Generator):
        return rng
    raise TypeError(f"rng must be a numpy.random.Generator, an int seed or None, got {type(rng).__name__}")
