"""Numba loop kernels of compressed sparse row (CSR) products: y = A x and Y = A B.

Legend: M rows of A, K columns of A (= rows of B), N columns of B, nnz stored entries.
A is held as ``data`` (nnz,) values, ``indices`` (nnz,) column of each value and ``indptr`` (M + 1,):
row i's entries are ``data[indptr[i]:indptr[i + 1]]``. Rows are independent outputs, so the
parallel compilations split them over threads. The vectorised references are ``_csr_matvec_ref`` /
``_csr_matmat_ref`` in ``scratchnet/kernels/sparse.py``, which chooses between them and these kernels.
See chapters/33-pruning.md#csr.
"""
from __future__ import annotations

from .._jit import njit, prange

__all__ = ["csr_matvec_kernel", "csr_matvec_kernel_serial", "csr_matmat_kernel", "csr_matmat_kernel_serial"]


# start-csr-matvec
def _csr_matvec_kernel(data, indices, indptr, x, y):
    """y[i] = Σ_{j in row i} data[j] · x[indices[j]]: one dot product per row, over its stored entries only.

    data, indices (nnz,), indptr (M + 1,), x (K,); y (M,) written in full.
    """
    M = indptr.shape[0] - 1
    for i in prange(M):  # independent rows
        acc = 0.0  # accumulated in float64 (a scalar: free), stored in y's dtype
        for j in range(indptr[i], indptr[i + 1]):  # row i's stored entries
            acc += data[j] * x[indices[j]]
        y[i] = acc
# end-csr-matvec


def _csr_matmat_kernel(data, indices, indptr, B, Y):
    """Y[i, :] = Σ_{j in row i} data[j] · B[indices[j], :]: each stored entry scales one row of B.

    data, indices (nnz,), indptr (M + 1,), B (K, N) C-contiguous; Y (M, N) zeroed by the caller.
    """
    M, N = Y.shape
    for i in prange(M):  # independent rows of Y
        y_row = Y[i]  # (N,) view
        for j in range(indptr[i], indptr[i + 1]):  # row i's stored entries
            a = data[j]
            b_row = B[indices[j]]  # (N,) the row of B this entry multiplies
            for n in range(N):  # unit stride: vectorises
                y_row[n] += a * b_row[n]


csr_matvec_kernel = njit(parallel=True)(_csr_matvec_kernel)  # prange over rows: for big matrices
csr_matvec_kernel_serial = njit(_csr_matvec_kernel)  # the same loops on one thread
csr_matmat_kernel = njit(parallel=True)(_csr_matmat_kernel)
csr_matmat_kernel_serial = njit(_csr_matmat_kernel)
