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


@pytest.mark.parametrize("size,k,opts,wide", [(9, 3, dict(padding=1), True), (14, 5, dict(), True),
                                              (14, 3, dict(dilation=2), True), (9, 5, dict(), False),
                                              (5, 5, dict(), False), (9, 3, dict(stride=2, padding=1), False),
                                              (9, 1, dict(), False), (9, 1, dict(stride=2), False)])
def test_wide_route_choice(size, k, opts, wide):
    """Stride 1 with a window to unfold and at most one dropped output per two kept (C3's 14 → 10 is, 9 → 5
    with k 5 and LeNet's C5 are not): wide columns; a stride, or a 1×1 stride-1 window: the exact ones."""
    _, cache = F.conv2d(np.zeros((1, 1, size, size)), np.zeros((1, 1, k, k)), None, **opts)
    assert routes._is_wide(cache.g) is wide


@pytest.mark.parametrize("c_out,groups,streams", [(16, 1, True), (17, 1, False), (32, 2, True), (34, 2, False)])
def test_small_stride1_layers_stream_wide(c_out, groups, streams, rng, monkeypatch):
    """A small stride-1 layer (whole batch's columns under STREAM_MIN_BATCH_BYTES) streams when it has at
    most WIDE_MAX_FILTERS filters per group, and keeps the whole-batch GEMMs otherwise."""
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    x = rng.standard_normal((4, 4, 10, 10)).astype(np.float32)
    w = rng.standard_normal((c_out, 4 // groups, 3, 3)).astype(np.float32)
    _, cache = F.conv2d(x, w, None, padding=1, groups=groups)
    assert (cache.cols is None) is streams


@pytest.mark.parametrize("xs,co,k,opts", [((3, 4, 7, 6), 6, 3, dict(padding=1)),
                                          ((3, 2, 8, 7), 4, 3, dict(padding=(2, 1), dilation=(2, 1))),
                                          ((2, 4, 6, 6), 6, 3, dict(groups=2)),
                                          ((2, 3, 5, 9), 2, (2, 4), dict(padding=(0, 3)))])
def test_wide_route_gradcheck_and_strided_arrays(xs, co, k, opts, rng, monkeypatch):
    """The wide columns pass gradcheck (float64, blocks of 2 with a short last block; padding, dilation,
    groups, a non-square window) and read non-contiguous x and dy as the reference does."""
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    monkeypatch.setattr(routes, "STREAM_MIN_BATCH_BYTES", 0)
    monkeypatch.setattr(routes, "_block_size", lambda N, *_: min(N, 2))
    calls = []
    wide = routes._conv2d_wide
    monkeypatch.setattr(routes, "_conv2d_wide", lambda *a: calls.append(1) or wide(*a))
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal(xs)
    w = rng.standard_normal((co, xs[1] // opts.get("groups", 1), kh, kw)) / (kh * kw)
    b = rng.standard_normal(co)
    assert_gradients(F.conv2d, F.conv2d_backward, [x, w, b], **opts)
    assert calls
    xt = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)  # same values, strided
    y, cache = F.conv2d(xt, w, b, **opts)
    dy = np.asfortranarray(rng.standard_normal(y.shape))  # a non-C-contiguous upstream gradient
    got = (y,) + F.conv2d_backward(dy, cache)
    monkeypatch.setenv("SCRATCHNET_JIT", "0")
    y_ref, cache_ref = F.conv2d(x, w, b, **opts)
    ref = (y_ref,) + F.conv2d_backward(np.ascontiguousarray(dy), cache_ref)
    for a, r in zip(got, ref):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12)


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
    ((64, 6, 14, 14), 32, 5, 0, "whole batch"),  # C3 with 32 filters at batch 64: 3.7 MiB
    ((64, 6, 14, 14), 16, 5, 0, "streamed"),  # LeNet's C3 itself: 16 filters, stride 1 (WIDE_MAX_FILTERS)
    ((128, 16, 28, 28), 32, 3, 1, "streamed"),  # ResNet-20's first stage at batch 128: 55 MiB
    ((4, 16, 28, 28), 32, 3, 1, "whole batch"),  # the same layer at batch 4: 1.7 MiB
])
def test_route_chosen_by_batch_bytes(shape, co, k, pad, route, monkeypatch):
    """float32 layers whose whole-batch columns pass STREAM_MIN_BATCH_BYTES stream (and cache x, not columns),
    as do small stride-1 layers of at most WIDE_MAX_FILTERS filters. (The Winograd route, which takes the
    3×3 layers here first, is turned off: these are the rules for the layers it does not take.)"""
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    monkeypatch.setattr(routes.winograd, "WINOGRAD_MIN_CHANNELS", 10 ** 9)
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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,opts", [(5, dict()), (3, dict(padding=1)), (3, dict(padding=(1, 2), dilation=(2, 1)))])
def test_unfold_wide_kernel_against_reference_columns(k, opts, dtype, rng):
    """The wide kernel's columns, their dropped columns cut off, are the reference unfold's; its fold of
    columns that are zero where dropped equals the reference fold."""
    from scratchnet.kernels import conv_loops
    x = rng.standard_normal((2, 3, 9, 8)).astype(dtype)
    _, cache = F.conv2d(x, np.zeros((1, 3, k, k), dtype), None, **opts)
    g = cache.g
    N, C, H, W = x.shape
    Wp = W + 2 * g.pw
    pad = np.empty((H + 2 * g.ph) * Wp, dtype)
    wide = np.full((N, C * k * k, g.oh * Wp), np.nan, dtype)
    conv_loops.unfold_wide_kernel(x, wide, True, k, k, Wp, g.ph, g.pw, g.dh, g.dw, pad)
    exact = routes.unfold(x, g, reference=F.conv._unfold_ref).reshape(N, C * k * k, g.oh, g.ow)
    np.testing.assert_array_equal(wide.reshape(N, -1, g.oh, Wp)[..., :g.ow], exact)
    cols = rng.standard_normal(exact.shape).astype(dtype)
    wide_cols = np.zeros_like(wide).reshape(N, -1, g.oh, Wp)
    wide_cols[..., :g.ow] = cols
    dx = np.empty_like(x)
    conv_loops.fold_wide_kernel(wide_cols.reshape(wide.shape), dx, True, k, k, Wp, g.ph, g.pw, g.dh, g.dw, pad)
    ref = F.conv._fold_ref(cols.reshape(N, C, k, k, g.oh, g.ow), g, H, W)
    np.testing.assert_allclose(dx, ref, rtol=1e-6 if dtype == np.float32 else 1e-12, atol=1e-6)
