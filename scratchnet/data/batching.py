"""Mini-batches, train/validation splits and one-hot targets for arrays that share their first axis.

    for xb, yb in batches(X, y, batch_size=64, rng=rng): ...
    (X_tr, y_tr), (X_val, y_val) = train_val_split(X, y, val_fraction=0.1, rng=rng)

Legend: N examples, B batch size, K classes. Arrays may be NumPy or CuPy; the order is drawn with a
NumPy ``rng`` on the CPU either way.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_int
from .._random import get_rng
from ..backend import get_array_module

__all__ = ["batches", "train_val_split", "one_hot"]


def _check_arrays(op: str, arrays) -> int:
    """The shared length N of ``arrays``; TypeError/ValueError naming the culprit otherwise."""
    if not arrays:
        raise ValueError(f"{op}: give at least one array")
    for i, a in enumerate(arrays):
        if not hasattr(a, "shape") or len(a.shape) == 0:
            raise TypeError(f"{op}: argument {i} must be an array with a first (example) axis, got "
                            f"{type(a).__name__}{getattr(a, 'shape', '')}")
    lengths = [a.shape[0] for a in arrays]
    if len(set(lengths)) > 1:
        shapes = ", ".join(str(tuple(a.shape)) for a in arrays)
        raise ValueError(f"{op}: all arrays must have the same length along axis 0, got shapes {shapes}")
    return lengths[0]


def _take(a, index):
    """Rows ``index`` of ``a``: a view for a slice, a copy (on ``a``'s device) for an index array."""
    if isinstance(index, slice):
        return a[index]
    return a[get_array_module(a).asarray(index)]


class Batches:
    """The iterator returned by ``batches``; ``len()`` is the number of batches (for progress bars)."""

    def __init__(self, arrays, order, starts, batch_size):
        self.arrays, self.order, self.batch_size = arrays, order, batch_size
        self.starts = iter(starts)
        self.count = len(starts)

    def __len__(self):
        return self.count

    def __iter__(self):
        return self

    def __next__(self):
        start = next(self.starts)
        stop = start + self.batch_size
        index = slice(start, stop) if self.order is None else self.order[start:stop]
        return tuple(_take(a, index) for a in self.arrays)


def batches(*arrays, batch_size, shuffle=True, rng=None, drop_last=False) -> Batches:
    """Yield tuples ``(a[idx], b[idx], ...)`` of at most ``batch_size`` rows, covering each row once.

    arrays: share their first axis N. shuffle: a fresh permutation drawn from ``rng`` (a Generator,
    an int seed, or None for the library's default generator) when this is called, so each call is
    one epoch. drop_last: skip the final batch when it is shorter than ``batch_size``.
    Without shuffling the batches are views of the inputs.
    """
    n = _check_arrays("batches", arrays)
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batches: batch_size must be a positive integer, got {batch_size!r}")
    order = get_rng(rng).permutation(n) if shuffle else None  # (N,) one epoch's order
    stop = n - n % batch_size if drop_last else n
    return Batches(arrays, order, range(0, stop, int(batch_size)), int(batch_size))


def train_val_split(*arrays, val_fraction=0.1, rng=None):
    """Split shuffled rows into ``((a_train, b_train, ...), (a_val, b_val, ...))`` (copies, in shuffled order).

    The validation part has ``round(N · val_fraction)`` rows (at least one, and one row at least is
    left for training). ``rng`` as in ``batches``.
    """
    n = _check_arrays("train_val_split", arrays)
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"train_val_split: val_fraction must be in (0, 1), got {val_fraction!r}")
    if n < 2:
        raise ValueError(f"train_val_split: need at least 2 rows to split, got {n}")
    n_val = min(max(int(round(n * val_fraction)), 1), n - 1)
    order = get_rng(rng).permutation(n)  # (N,)
    val_idx, train_idx = order[:n_val], order[n_val:]
    return tuple(_take(a, train_idx) for a in arrays), tuple(_take(a, val_idx) for a in arrays)


def one_hot(labels, num_classes, dtype=np.float32):
    """(..., K) array with a 1 at each label: ``one_hot([2, 0], 3) = [[0, 0, 1], [1, 0, 0]]``.

    labels: integers in 0..num_classes-1, any shape, NumPy or CuPy (the result follows them).
    """
    check_int("one_hot", "labels", labels)
    xp = get_array_module(labels)
    if labels.size and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"one_hot: labels must lie in 0..{num_classes - 1}, got values from "
                         f"{int(labels.min())} to {int(labels.max())}")
    return xp.eye(num_classes, dtype=dtype)[labels]  # (..., K)
