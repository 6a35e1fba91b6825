"""The one reduction the row kernels share: a dot product of two rows in LANES partial sums.

No fastmath in the kernels (``kernels/__init__``), and a strict-order sum does not vectorise; a
running sum per lane, updated elementwise in blocks of LANES, does, and costs a few ulps of order
against NumPy's pairwise sum. The caller's ``lanes`` array sets the precision of the partial sums
(float64 lanes accumulate float32 products in float64). A row sum is the dot product with a row
of ones. Used by ``attention_loops.py`` (softmax) and ``layernorm_loops.py``.
"""
from __future__ import annotations

from .._jit import njit

__all__ = ["LANES", "row_dot"]

LANES = 16  # partial sums per row: one AVX-512 float32 vector, two float64 ones


@njit(error_model="numpy")
def row_dot(a, b, lanes):
    """Σ_j a[j] b[j] of two rows of one length, in LANES partial sums of ``lanes``' dtype."""
    D = a.size
    for lane in range(LANES):
        lanes[lane] = 0
    for j0 in range(0, D - D % LANES, LANES):  # whole blocks: a fixed-width loop the compiler vectorises
        for lane in range(LANES):
            lanes[lane] += a[j0 + lane] * b[j0 + lane]
    for j in range(D - D % LANES, D):  # the tail
        lanes[0] += a[j] * b[j]
    return lanes.sum()
