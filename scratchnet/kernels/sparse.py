"""Compressed sparse row (CSR) storage and its products, the storage of a pruned layer.

Legend: M rows, K columns of the sparse matrix A, N columns of the dense operand B, nnz stored
(nonzero) entries. ``to_csr(W)`` keeps only W's nonzeros: ``data`` (nnz,) their values,
``indices`` (nnz,) their columns, ``indptr`` (M + 1,) where each row starts (row i holds entries
``indptr[i]:indptr[i + 1]``), so a matrix with a fraction s of nonzeros takes about
s·M·K·(value + index) + (M + 1)·index bytes instead of M·K·value.

Routes (tests/kernels/test_sparse.py compares every one with the dense product):

- csr_matvec (A x) and csr_matmat (A B): the Numba kernels of ``sparse_loops.py`` when ``jit_route``
  allows (NumPy float32/float64, JIT on), parallel over rows from PARALLEL_MIN_WORK (2^26) multiply-adds;
  else the vectorised references below (CuPy, float16, ``SCRATCHNET_JIT=0``): gather, multiply,
  and a segmented sum by row.

The timings (CSR against the dense product at several sparsities) are in ``benchmarks/bench_sparse.py``.
See chapters/33-pruning.md#csr.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._jit import jit_route
from ..backend import get_array_module, scatter_add
from . import sparse_loops

__all__ = ["CSR", "to_csr", "to_dense", "csr_matvec", "csr_matmat", "csr_nbytes", "PARALLEL_MIN_WORK"]

# below this many multiply-adds the serial kernels win: waking the thread pool costs ~10 ms on a busy
# 2-core machine, more than a 300×784 layer's whole product (benchmarks/bench_sparse.py)
PARALLEL_MIN_WORK = 1 << 26


class CSR(NamedTuple):
    data: object  # (nnz,) the stored values, row by row
    indices: object  # (nnz,) int32 column of each stored value
    indptr: object  # (M + 1,) int32 (int64 past 2³¹ entries) start of each row in data / indices
    shape: tuple  # (M, K)

    @property
    def nnz(self) -> int:
        return int(self.data.shape[0])


# start-to-csr
def to_csr(W) -> CSR:
    """The CSR form of a 2-D array W (M, K): its nonzeros in row-major order, their columns, the row starts."""
    if not hasattr(W, "ndim") or W.ndim != 2:
        raise ValueError(f"to_csr: expected a 2-D array (M, K), got shape {tuple(getattr(W, 'shape', ()))}")
    xp = get_array_module(W)
    rows, cols = xp.nonzero(W)  # (nnz,) each, sorted by row then column
    counts = xp.bincount(rows, minlength=W.shape[0])  # (M,) nonzeros per row
    itype = np.int32 if W.size < 2 ** 31 else np.int64
    indptr = xp.zeros(W.shape[0] + 1, dtype=itype)  # (M + 1,)
    indptr[1:] = xp.cumsum(counts)
    return CSR(W[rows, cols], cols.astype(itype), indptr, tuple(W.shape))
# end-to-csr


def to_dense(A: CSR):
    """The (M, K) array of a CSR matrix (zeros where nothing is stored)."""
    xp = get_array_module(A.data)
    W = xp.zeros(A.shape, dtype=A.data.dtype)  # (M, K)
    W[_row_ids(A), A.indices] = A.data
    return W


def csr_nbytes(A: CSR) -> int:
    """Bytes of the three CSR arrays (values, column indices, row pointers)."""
    return int(A.data.nbytes + A.indices.nbytes + A.indptr.nbytes)


def _row_ids(A: CSR):
    """(nnz,) the row of each stored entry."""
    xp = get_array_module(A.indptr)
    return xp.repeat(xp.arange(A.shape[0]), xp.diff(A.indptr))


def _check(op, A, b, axis_len_name):
    if not isinstance(A, CSR):
        raise TypeError(f"{op}: expected a CSR matrix (from to_csr), got {type(A).__name__}")
    if b.shape[0] != A.shape[1]:
        raise ValueError(f"{op}: A is {A.shape[0]}×{A.shape[1]} but {axis_len_name} has {b.shape[0]} rows "
                         f"(shape {tuple(b.shape)})")
    if b.dtype != A.data.dtype:
        raise TypeError(f"{op}: A holds {A.data.dtype} but the dense operand is {b.dtype}")


# -- the vectorised references (also the CuPy path) ------------------------------------------------
def _csr_matvec_ref(A: CSR, x):
    """y = A x: gather x at the stored columns, multiply, sum each row's products."""
    xp = get_array_module(x)
    prod = A.data * x[A.indices]  # (nnz,)
    y = xp.zeros(A.shape[0], dtype=x.dtype)  # (M,)
    scatter_add(y, _row_ids(A), prod)  # y[row] += product, repeated rows accumulate
    return y


def _csr_matmat_ref(A: CSR, B):
    """Y = A B: each stored entry scales the row of B its column names; the scaled rows summed by row."""
    xp = get_array_module(B)
    prod = A.data[:, None] * B[A.indices]  # (nnz, N)
    Y = xp.zeros((A.shape[0], B.shape[1]), dtype=B.dtype)  # (M, N)
    scatter_add(Y, _row_ids(A), prod)  # Y[row] += scaled row of B
    return Y


# -- the routes --------------------------------------------------------------------------------------
def csr_matvec(A: CSR, x):
    """y = A x for A (M, K) in CSR and x (K,): the Numba kernel or the vectorised reference."""
    _check("csr_matvec", A, x, "x")
    if x.ndim != 1:
        raise ValueError(f"csr_matvec: expected x of shape ({A.shape[1]},), got {tuple(x.shape)}")
    if not jit_route(A.data, x):
        return _csr_matvec_ref(A, x)
    y = np.empty(A.shape[0], dtype=x.dtype)  # (M,) written in full by the kernel
    kernel = sparse_loops.csr_matvec_kernel if A.nnz >= PARALLEL_MIN_WORK else sparse_loops.csr_matvec_kernel_serial
    kernel(A.data, A.indices, A.indptr, np.ascontiguousarray(x), y)
    return y


def csr_matmat(A: CSR, B):
    """Y = A B for A (M, K) in CSR and B (K, N) dense: the Numba kernel or the vectorised reference."""
    _check("csr_matmat", A, B, "B")
    if B.ndim != 2:
        raise ValueError(f"csr_matmat: expected B of shape ({A.shape[1]}, N), got {tuple(B.shape)}")
    if not jit_route(A.data, B):
        return _csr_matmat_ref(A, B)
    Y = np.zeros((A.shape[0], B.shape[1]), dtype=B.dtype)  # (M, N) the kernel adds into it
    parallel = A.nnz * B.shape[1] >= PARALLEL_MIN_WORK
    kernel = sparse_loops.csr_matmat_kernel if parallel else sparse_loops.csr_matmat_kernel_serial
    kernel(A.data, A.indices, A.indptr, np.ascontiguousarray(B), Y)
    return Y
