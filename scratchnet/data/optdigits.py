"""UCI optical recognition of handwritten digits ("optdigits"), read from the upstream text files.

Each line of ``optdigits.tra`` / ``optdigits.tes`` is 64 comma-separated counts 0..16 (an 8 × 8 grid,
each cell counting the set pixels of a 4 × 4 block of a 32 × 32 bitmap) followed by the digit 0..9.
Legend: N examples.
"""
from __future__ import annotations

import numpy as np

from .registry import dataset_path

__all__ = ["load_optdigits"]

_FILES = {"train": "optdigits.tra", "test": "optdigits.tes"}


def load_optdigits(split="train", *, root=None, download=True):
    """``(images uint8 (N, 8, 8) with values 0..16, labels int64 (N,))``, N = 3823 (train) or 1797 (test).

    Reads ``dataset_path("uci-optdigits")``, downloading the files if missing.
    """
    if split not in _FILES:
        raise ValueError(f"load_optdigits: split must be 'train' or 'test', got {split!r}")
    path = dataset_path("uci-optdigits", root=root, download=download) / _FILES[split]
    try:
        rows = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)  # (N, 65)
    except ValueError as err:
        raise ValueError(f"load_optdigits: {path} is not 65 comma-separated integers per line ({err})") from err
    if rows.shape[1] != 65:
        raise ValueError(f"load_optdigits: expected 65 values per line in {path}, got {rows.shape[1]}")
    pixels, labels = rows[:, :64], rows[:, 64]
    if not (np.all((pixels >= 0) & (pixels <= 16)) and np.all((labels >= 0) & (labels <= 9))):
        raise ValueError(f"load_optdigits: {path} holds values outside 0..16 or labels outside 0..9")
    return pixels.astype(np.uint8).reshape(-1, 8, 8), labels  # (N, 8, 8), (N,)
