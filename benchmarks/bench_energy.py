"""Energy-based and stacked workloads: an RBM CD-1 update on MNIST-sized data and a DSN module solve.

Legend: N batch, D visible/input units, H hidden units, L DSN hidden units, C outputs.
PyTorch has no RBM or DSN, so the torch column is empty; ``python -m benchmarks.bench_energy``
prints throughput and GEMM efficiency (achieved GFLOP/s over a measured float32 matmul peak).
The DSN workload's ridge solve is ``scratchnet.linalg.ridge_solve`` (HᵀH, then one L × L solve).
"""
from __future__ import annotations

import time

import numpy as np

import scratchnet.functional as F
from scratchnet.models.rbm import RBM

from .harness import workload

RBM_SHAPE = (100, 784, 500)  # N, D, H: Salakhutdinov & Murray's MNIST RBM, batch 100
DSN_SHAPE = (10000, 785, 1000, 10)  # N, D + 1, L, C


def _rbm_setup():
    rng = np.random.default_rng(0)
    N, D, H = RBM_SHAPE
    rbm = RBM(D, H, rng=rng)
    v = (rng.random((N, D)) < 0.13).astype(np.float32)  # (N, D) MNIST-like density of on pixels

    def run():  # one CD-1 update: the statistics and the momentum step as in RBM.fit
        dw, db, dc, _, _ = rbm.cd_grads(v, k=1, rng=rng)
        rbm.weight.data -= 0.05 * dw
        rbm.vbias.data -= 0.05 * db
        rbm.hbias.data -= 0.05 * dc
    return run


def _rbm_flops():
    N, D, H = RBM_SHAPE  # GEMMs: P(h|v0), E[v|h0], P(h|v1), and two N×D×H products for ΔW
    return 5 * 2 * N * D * H


def _dsn_setup():
    rng = np.random.default_rng(0)
    N, D, L, C = DSN_SHAPE
    x = rng.random((N, D), dtype=np.float32)  # (N, D)
    w = (0.05 * rng.standard_normal((D, L))).astype(np.float32)  # (D, L)
    t = np.eye(C, dtype=np.float32)[rng.integers(0, C, N)]  # (N, C)

    def run():  # forward (σ(XW), the ridge solve) and the gradient through U
        out, cache = F.dsn_module(x, w, t, lam=1.0)
        F.dsn_module_backward((1.0, None, None), cache)
    return run


def _dsn_flops():
    N, D, L, C = DSN_SHAPE  # XW, HᵀH, solve (L³/3 + 2L²C ×2), HᵀT, HU; backward: HᵀȲ, HQ/RQᵀ, XᵀdA, dA Wᵀ
    return 2 * N * D * L * 3 + 2 * N * L * L + 2 * (L ** 3) // 3 * 2 + 2 * N * L * C * 6


@workload("energy.rbm_cd1_update", description="RBM 784-500 Bernoulli, N=100, one CD-1 update, float32")
def rbm_cd1_update():
    return _rbm_setup(), None


@workload("energy.dsn_module_solve",
          description="DSN module N=10000, 785→1000→10: σ(XW), ridge U, dW through U, float32")
def dsn_module_solve():
    return _dsn_setup(), None


def _median_seconds(fn, repeats=5):
    fn()
    times = []
    for _ in range(repeats):  # median of repeats after one warm-up
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def matmul_peak(n=1024):
    """Measured float32 GEMM GFLOP/s of numpy (n×n @ n×n): the yardstick for efficiency."""
    rng = np.random.default_rng(0)
    a, b = rng.random((n, n), dtype=np.float32), rng.random((n, n), dtype=np.float32)
    return 2 * n ** 3 / _median_seconds(lambda: a @ b) / 1e9


def report():
    peak = matmul_peak()
    print(f"numpy float32 matmul peak (1024³): {peak:.1f} GFLOP/s")
    s = _median_seconds(_rbm_setup())
    gf = _rbm_flops() / s / 1e9
    print(f"RBM CD-1 update (N=100, 784-500): {s * 1e3:.1f} ms → {RBM_SHAPE[0] / s:,.0f} samples/s, "
          f"MNIST epoch (600 updates) ≈ {600 * s:.1f} s, {gf:.1f} GFLOP/s = {100 * gf / peak:.0f}% of peak")
    rng = np.random.default_rng(0)
    N, D, H = RBM_SHAPE
    v, w = rng.random((N, D), dtype=np.float32), rng.random((D, H), dtype=np.float32)
    p = rng.random((N, H), dtype=np.float32)
    gemm = _median_seconds(lambda: (v @ w, p @ w.T, v @ w, v.T @ p, v.T @ p))
    print(f"  of which the five GEMMs alone: {gemm * 1e3:.1f} ms ({100 * gemm / s:.0f}%); the rest (sigmoids, "
          f"uniform draws, comparisons) is what a Numba Gibbs kernel could speed up")
    s = _median_seconds(_dsn_setup(), repeats=3)
    gf = _dsn_flops() / s / 1e9
    print(f"DSN module forward+backward (N=10000, 785→1000→10): {s * 1e3:.0f} ms → "
          f"{DSN_SHAPE[0] / s:,.0f} samples/s, {gf:.1f} GFLOP/s = {100 * gf / peak:.0f}% of peak")


if __name__ == "__main__":
    report()
