"""The streamed conv2d route of scratchnet/kernels/conv.py against the readable reference: the
batch-size rule (STREAM_MIN_BATCH_BYTES), the 1×1 shortcut (no unfold, no fold), and the backward's
transposed dW product, at float32 and float64 with groups, stride and dilation."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_gradients
from scratchnet.kernels import conv as routes

# (x shape, C_out, kernel, options)
CASES = [
    ((3, 4, 9, 8), 6, 3, dict(padding=1)),
    ((2, 4, 9, 9), 6, 3, dict(stride=2, padding=1, groups=2)),
    ((2, 3, 10, 9), 4, 3, dict(dilation=2, padding=2)),
    ((3, 4, 6, 5), 6, 1, dict()),  # 1×1, stride 1: the columns are x itself
    ((2, 4, 6, 5), 8, 1, dict(groups=2)),  # grouped 1×1
    ((2, 4, 7, 7), 6, 1, dict(stride=2)),  # 1×1 with a stride: unfolded
]


def _inputs(rng, xs, co, k, opts, dtype):
    x = rng.standard_normal(xs).astype(dtype)
    w = (rng.standard_normal((co, xs[1] // opts.get("groups", 1), k, k)) / k).astype(dtype)
    b = rng.standard_normal(co).astype(dtype)
    return x, w, b


def _run(x, w, b, opts, seed=1):
    y, cache = F.conv2d(x, w, b, **opts)
    dy = np.random.default_rng(seed).standard_normal(y.shape).astype(x.dtype)
    return (y,) + F.conv2d_backward(dy, cache), cache


@pytest.mark.parametrize("block", [1, 2, None])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs,co,k,opts", CASES)
def test_streamed_matches_reference(xs, co, k, opts, dtype, block, rng, monkeypatch):
    """Streamed (Numba unfold/fold, per-sample GEMMs, blocks of 1, 2 — a short last block — or all
    samples) = the reference's whole-batch GEMMs (SCRATCHNET_JIT=0)."""
    x, w, b = _inputs(rng, xs, co, k, opts, dtype)
    monkeypatch.setenv("SCRATCHNET_JIT", "0")
    ref, ref_cache = _run(x, w, b, opts)
    assert ref_cache.cols is not None
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    monkeypatch.setattr(routes, "STREAM_MIN_BATCH_BYTES", 0)  # every layer streams
    if block is not None:
        monkeypatch.setattr(routes, "_block_size", lambda N, *_: min(N, block))
    got, cache = _run(x, w, b, opts)
    assert cache.cols is None and cache.x is x
    tol = 1e-5 if dtype == np.float32 else 1e-12
    for a, r in zip(got, ref):
        assert a.dtype == dtype and a.shape == r.shape
        np.testing.assert_allclose(a, r, rtol=tol, atol=tol)


@pytest.mark.parametrize("xs,co,k,opts", CASES[3:5])
def test_streamed_pointwise_gradcheck(xs, co, k, opts, rng, monkeypatch):
    """The 1×1 shortcut of the streamed route (x[n] as the columns, dx[n] written by the GEMM) passes gradcheck."""
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    monkeypatch.setattr(routes, "STREAM_MIN_BATCH_BYTES", 0)
    x, w, b = _inputs(rng, xs, co, k, opts, np.float64)
    assert_gradients(F.conv2d, F.conv2d_backward, [x, w, b], **opts)


def test_streamed_pointwise_reads_a_non_contiguous_input(rng, monkeypatch):
    """x[n] of a transposed (non-contiguous) input still gives the right 1×1 conv."""
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    monkeypatch.setattr(routes, "STREAM_MIN_BATCH_BYTES", 0)
    x = rng.standard_normal((3, 5, 6, 4)).transpose(0, 1, 3, 2)  # (N, C, H, W) view, not C-contiguous
    w = rng.standard_normal((2, 5, 1, 1))
    got, _ = _run(x, w, None, {})
    monkeypatch.setenv("SCRATCHNET_JIT", "0")
    ref, _ = _run(np.ascontiguousarray(x), w, None, {})
    for a, r in zip(got, ref):
        if r is not None:
            np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("shape,co,k,pad,route", [
    ((64, 1, 32, 32), 6, 5, 0, "streamed"),  # LeNet's C1 at batch 64: 4.8 MiB of columns
    ((64, 6, 14, 14), 16, 5, 0, "whole batch"),  # LeNet's C3 at batch 64: 3.7 MiB
    ((128, 16, 28, 28), 16, 3, 1, "streamed"),  # ResNet-20's first stage at batch 128: 55 MiB
    ((4, 16, 28, 28), 16, 3, 1, "whole batch"),  # the same layer at batch 4: 1.7 MiB
])
def test_route_chosen_by_batch_bytes(shape, co, k, pad, route, monkeypatch):
    """float32 layers whose whole-batch columns pass STREAM_MIN_BATCH_BYTES stream (and cache x, not columns)."""
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    x = np.zeros(shape, np.float32)
    w = np.zeros((co, shape[1], k, k), np.float32)
    _, cache = F.conv2d(x, w, None, padding=pad)
    assert ("streamed" if cache.cols is None else "whole batch") == route
    assert (cache.x is x) == (route == "streamed")


@pytest.mark.parametrize("N,rows_in,L,itemsize,expected", [
    (64, 25, 784, 4, 13),  # LeNet's C1: 78 KB of columns per sample, 13 per MiB
    (32, 576, 1024, 4, 1),  # a ResNet 64-channel 3×3 layer at 32×32: one sample passes the budget
    (3, 36, 72, 8, 3),  # a tiny layer: the whole batch in one block
])
def test_block_size(N, rows_in, L, itemsize, expected):
    assert routes._block_size(N, rows_in, L, itemsize) == expected
