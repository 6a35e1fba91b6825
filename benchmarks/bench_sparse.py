"""Sparse workloads of chapter 33: the CSR product of a pruned layer against the dense product.

Legend: M × K the weight matrix (M output units, K inputs), N the batch (columns of the dense
operand), d the density (fraction of weights kept). All float32.

Each workload times ``csr_matmat`` (scratchnet's Numba kernel) beside PyTorch's CSR product
(``torch.sparse_csr_tensor @ dense``) when PyTorch is installed; the dense product of the same
matrix has a workload of its own (``sparse.dense_*``), so the harness's table shows CSR against
dense too. ``python -m benchmarks.bench_sparse`` prints dense / CSR time ratios at several densities.

What the measurements show (AMD EPYC, 2 cores shared with other jobs, LeNet-300-100's first layer
300 × 784 times 784 × 64, float32, fastest of 7 runs): dense 0.17 ms; CSR 1.42 ms at d = 1,
0.38 ms at 0.3, 0.12 ms at 0.1 and 0.05 ms at 0.03, so CSR wins only below d ≈ 0.1. The medians
differ: with other jobs on the cores the dense product's BLAS threads (and the parallel CSR kernel's)
wait ~10–20 ms for each other, while the serial CSR kernel does not notice. On a 4096 × 4096 layer
(N = 64) the parallel CSR kernel beat the serial one only below d ≈ 0.05; hence
``kernels/sparse.py``'s PARALLEL_MIN_WORK = 2^26 multiply-adds.
"""
from __future__ import annotations

import time

import numpy as np

from scratchnet.kernels.sparse import csr_matmat, to_csr

from .harness import torch_or_none, workload

SHAPE = (300, 784, 64)  # M, K, N: LeNet-300-100's first layer (transposed) on a batch of 64
DENSITIES = (1.0, 0.3, 0.1, 0.08, 0.03)


def _setup(density, M=SHAPE[0], K=SHAPE[1], N=SHAPE[2]):
    rng = np.random.default_rng(0)
    W = (rng.standard_normal((M, K)) * (rng.random((M, K)) < density)).astype(np.float32)  # (M, K)
    B = rng.standard_normal((K, N)).astype(np.float32)  # (K, N)
    return W, to_csr(W), B


def _csr_workload(density):
    W, A, B = _setup(density)
    csr_matmat(A, B)  # compile outside the timing

    def run_scratchnet():
        csr_matmat(A, B)

    torch = torch_or_none()
    if torch is None:
        return run_scratchnet, None
    tA = torch.sparse_csr_tensor(torch.from_numpy(A.indptr.astype(np.int64)),
                                 torch.from_numpy(A.indices.astype(np.int64)), torch.from_numpy(A.data), size=A.shape)
    tB = torch.from_numpy(B)

    def run_torch():
        tA @ tB

    return run_scratchnet, run_torch


def _dense_workload(density):
    W, _, B = _setup(density)

    def run_scratchnet():
        W @ B

    torch = torch_or_none()
    if torch is None:
        return run_scratchnet, None
    tW, tB = torch.from_numpy(W), torch.from_numpy(B)
    return run_scratchnet, lambda: tW @ tB


@workload("sparse.csr_matmat[d=0.3]", description="CSR × dense, 300×784 at density 0.3, N=64, float32")
def csr_d30():
    return _csr_workload(0.3)


@workload("sparse.csr_matmat[d=0.1]", description="CSR × dense, 300×784 at density 0.1, N=64, float32")
def csr_d10():
    return _csr_workload(0.1)


@workload("sparse.csr_matmat[d=0.03]", description="CSR × dense, 300×784 at density 0.03, N=64, float32")
def csr_d03():
    return _csr_workload(0.03)


@workload("sparse.dense_matmat", description="dense 300×784 × 784×64 float32 (the CSR workloads' baseline)")
def dense_matmat():
    return _dense_workload(1.0)


def ratio_report(repeats=7):
    """Dense / CSR time at each density for the 300 × 784 layer (N = 64); minimum of ``repeats``."""
    print(f"{'density':>8} {'dense ms':>9} {'CSR ms':>8} {'dense/CSR':>10}")
    for d in DENSITIES:
        W, A, B = _setup(d)
        csr_matmat(A, B)
        times = {}
        for name, fn in (("dense", lambda: W @ B), ("csr", lambda: csr_matmat(A, B))):
            fn()
            times[name] = min((lambda s: (fn(), time.perf_counter() - s)[1])(time.perf_counter())
                              for _ in range(repeats))
        print(f"{d:8.2f} {times['dense'] * 1e3:9.3f} {times['csr'] * 1e3:8.3f} {times['dense'] / times['csr']:10.2f}")


if __name__ == "__main__":
    ratio_report()
