"""The Winograd route of conv2d (scratchnet/kernels/winograd.py, winograd_loops.py): each tile kernel
against its vectorised reference, the route against the reference convolution (float32 within the
rounding the transforms add, float64 to the last bits), a float64 gradcheck of the route, the cached
and the re-transformed backward, blocks of samples, and which layers take it."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_gradients
from scratchnet.kernels import conv as routes
from scratchnet.kernels import winograd as wg
from scratchnet.kernels import winograd_loops as wl

# (S, C, H, W, padding): sizes that are and are not multiples of 4, padding 0, 1 and 2, uneven padding
TILE_CASES = [(2, 3, 8, 8, (1, 1)), (1, 2, 7, 9, (1, 1)), (3, 2, 6, 5, (0, 0)), (2, 1, 5, 6, (2, 2)),
              (1, 3, 9, 4, (2, 1))]


def _tile_counts(H, W, ph, pw):
    OH, OW = H + 2 * ph - 2, W + 2 * pw - 2
    return OH, OW, -(-OH // 4), -(-OW // 4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("S,C,H,W,pad", TILE_CASES)
def test_tile_kernels_match_references(S, C, H, W, pad, dtype, rng):
    """The four Numba tile transforms = their vectorised references (the planes' padded stride included)."""
    ph, pw = pad
    OH, OW, TH, TW = _tile_counts(H, W, ph, pw)
    T = S * TH * TW
    consts = wg._consts(dtype)
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    x = rng.standard_normal((S, C, H, W)).astype(dtype)
    V = wg._planes(C, T, dtype)
    P, tmp = wg._scratch(TH, TW, dtype)
    wl.input_tiles_kernel(x, V, TH, TW, ph, pw, consts, P, tmp)
    np.testing.assert_allclose(V, wg.input_tiles_ref(x, TH, TW, ph, pw), **tol)
    M = rng.standard_normal((36, C, T)).astype(dtype)
    bias = rng.standard_normal(C).astype(dtype)
    y = np.empty((S, C, OH, OW), dtype=dtype)
    wl.output_tiles_kernel(M, bias, y, TH, TW, consts, tmp)
    np.testing.assert_allclose(y, wg.output_tiles_ref(M, S, OH, OW, TH, TW) + bias.reshape(C, 1, 1), **tol)
    dy = rng.standard_normal((S, C, OH, OW)).astype(dtype)
    dM = wg._planes(C, T, dtype)
    wl.output_tiles_adjoint_kernel(dy, dM, TH, TW, consts, tmp)
    np.testing.assert_allclose(dM, wg.output_tiles_adjoint_ref(dy, TH, TW), **tol)
    dV = rng.standard_normal((36, C, T)).astype(dtype)
    dx = np.full((S, C, H, W), np.nan, dtype=dtype)  # written in full
    wl.input_tiles_adjoint_kernel(dV, dx, TH, TW, ph, pw, consts, np.empty_like(P), tmp)
    np.testing.assert_allclose(dx, wg.input_tiles_adjoint_ref(dV, x.shape, TH, TW, ph, pw), **tol)


@pytest.mark.parametrize("S,C,H,W,pad", TILE_CASES[:3])
def test_adjoint_references_are_transposes(S, C, H, W, pad, rng):
    """⟨tiles(x), dV⟩ = ⟨x, tilesᵀ(dV)⟩ and ⟨untile(M), dy⟩ = ⟨M, untileᵀ(dy)⟩, and likewise for the
    filter transform: each backward transform is the forward one transposed (float64)."""
    ph, pw = pad
    OH, OW, TH, TW = _tile_counts(H, W, ph, pw)
    x, dV = rng.standard_normal((S, C, H, W)), rng.standard_normal((36, C, S * TH * TW))
    assert np.isclose(np.vdot(wg.input_tiles_ref(x, TH, TW, ph, pw), dV),
                      np.vdot(x, wg.input_tiles_adjoint_ref(dV, x.shape, TH, TW, ph, pw)))
    M, dy = rng.standard_normal((36, C, S * TH * TW)), rng.standard_normal((S, C, OH, OW))
    assert np.isclose(np.vdot(wg.output_tiles_ref(M, S, OH, OW, TH, TW), dy),
                      np.vdot(M, wg.output_tiles_adjoint_ref(dy, TH, TW)))
    w, dU = rng.standard_normal((4, C, 3, 3)), rng.standard_normal((36, 4, C))
    assert np.isclose(np.vdot(wg._filters(w), dU), np.vdot(w, wg._filters_backward(dU)))


# (x shape, C_out, padding): channels at the route's threshold, odd sizes, padding 0 to 2, one sample
ROUTE_CASES = [((2, 8, 7, 9), 16, 1), ((3, 16, 8, 8), 8, 1), ((1, 12, 6, 5), 12, 0), ((2, 8, 5, 6), 16, 2),
               ((2, 16, 12, 10), 16, (1, 2))]


def _run(x, w, b, padding, seed=1):
    y, cache = F.conv2d(x, w, b, padding=padding)
    dy = np.random.default_rng(seed).standard_normal(y.shape).astype(x.dtype)
    return (y,) + F.conv2d_backward(dy, cache), cache


@pytest.mark.parametrize("cached", [True, False])
@pytest.mark.parametrize("block", [None, 1, 2])
@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("xs,co,padding", ROUTE_CASES)
def test_route_matches_reference(xs, co, padding, dtype, bias, block, cached, rng, monkeypatch):
    """The Winograd route (tiles cached or transformed again; whole batch or blocks of 1 and 2 samples,
    a short last block) = the reference's GEMMs on unfolded columns (SCRATCHNET_JIT=0)."""
    x = rng.standard_normal(xs).astype(dtype)
    w = (rng.standard_normal((co, xs[1], 3, 3)) / np.sqrt(9 * xs[1])).astype(dtype)
    b = rng.standard_normal(co).astype(dtype) if bias else None
    monkeypatch.setenv("SCRATCHNET_JIT", "0")
    ref, ref_cache = _run(x, w, b, padding)
    assert ref_cache.cols is not None and not isinstance(ref_cache.cols, wg.WinogradTiles)
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    if block is not None:
        monkeypatch.setattr(wg, "_block", lambda N, *_: min(N, block))
    if not cached:
        monkeypatch.setattr(wg, "WINOGRAD_CACHE_BYTES", 0)
    got, cache = _run(x, w, b, padding)
    assert isinstance(cache.cols, wg.WinogradTiles) is cached and (cache.x is x) is not cached
    tol = 2e-5 if dtype == np.float32 else 1e-12  # relative to each result's largest entry
    for a, r in zip(got, ref):
        if r is None:
            assert a is None
            continue
        assert a.dtype == dtype and a.shape == r.shape
        np.testing.assert_allclose(a, r, rtol=0, atol=tol * np.abs(r).max())


def test_float32_error_is_bounded_at_a_resnet_layer(rng):
    """A 64-channel ResNet layer in float32: y, dx and dw within 1e-5 of their scale of the float64
    convolution."""
    x = rng.standard_normal((2, 64, 16, 16))
    w = rng.standard_normal((64, 64, 3, 3)) / 24
    dy = rng.standard_normal((2, 64, 16, 16))
    exact = _run_with_dy(x, w, dy)
    wino = _run_with_dy(x.astype(np.float32), w.astype(np.float32), dy.astype(np.float32))
    for a, e in zip(wino, exact):
        assert np.abs(a - e).max() <= 1e-5 * np.abs(e).max()


def _run_with_dy(x, w, dy):
    y, cache = F.conv2d(x, w, None, padding=1)
    return (y,) + F.conv2d_backward(dy, cache)[:2]


@pytest.mark.parametrize("cached", [True, False])
@pytest.mark.parametrize("xs,co,padding", [((2, 8, 6, 7), 16, 1), ((1, 8, 5, 5), 16, 2)])
def test_route_gradcheck(xs, co, padding, cached, rng, monkeypatch):
    """Float64 gradient check of conv2d on the Winograd route (bias, odd sizes, padding 1 and 2)."""
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    if not cached:
        monkeypatch.setattr(wg, "WINOGRAD_CACHE_BYTES", 0)
    x, w, b = rng.standard_normal(xs), rng.standard_normal((co, xs[1], 3, 3)), rng.standard_normal(co)
    _, cache = F.conv2d(x, w, b, padding=padding)
    assert (isinstance(cache.cols, wg.WinogradTiles) if cached else cache.cols is None)
    assert_gradients(F.conv2d, F.conv2d_backward, [x, w, b], padding=padding)


def test_backward_twice_on_one_cache(rng, monkeypatch):
    """The cached tiles are read, not overwritten: a second backward on the same cache agrees."""
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    x, w = rng.standard_normal((2, 8, 8, 8)), rng.standard_normal((16, 8, 3, 3))
    y, cache = F.conv2d(x, w, None, padding=1)
    dy = rng.standard_normal(y.shape)
    first = F.conv2d_backward(dy, cache)
    second = F.conv2d_backward(dy, cache)
    for a, b in zip(first[:2], second[:2]):
        np.testing.assert_array_equal(a, b)


def test_non_contiguous_inputs(rng, monkeypatch):
    """Strided x and dy give the same results as their contiguous copies."""
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    x = rng.standard_normal((2, 16, 9, 16))[:, :, :, ::2]
    w = rng.standard_normal((8, 16, 3, 3))
    y, cache = F.conv2d(x, w, None, padding=1)
    dy = rng.standard_normal(y.shape[:3] + (2 * y.shape[3],))[:, :, :, ::2]
    got = (y,) + F.conv2d_backward(dy, cache)[:2]
    y2, cache2 = F.conv2d(np.ascontiguousarray(x), w, None, padding=1)
    want = (y2,) + F.conv2d_backward(np.ascontiguousarray(dy), cache2)[:2]
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("c_in,c_out,opts,taken", [
    (8, 16, dict(padding=1), True), (16, 8, dict(), True), (64, 64, dict(padding=1), True),
    (8, 8, dict(padding=1), False),  # 64 filter planes
    (4, 32, dict(padding=1), False), (32, 4, dict(padding=1), False),  # under 8 channels
    (16, 16, dict(padding=1, stride=2), False), (16, 16, dict(padding=2, dilation=2), False),
    (16, 16, dict(padding=1, groups=2), False)])
def test_route_choice(c_in, c_out, opts, taken, rng, monkeypatch):
    """3×3, stride 1, no dilation or groups, ≥ 8 channels in and out and ≥ 128 filter planes: Winograd."""
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    x = rng.standard_normal((2, c_in, 8, 8)).astype(np.float32)
    w = rng.standard_normal((c_out, c_in // opts.get("groups", 1), 3, 3)).astype(np.float32)
    _, cache = F.conv2d(x, w, None, **opts)
    assert routes.winograd.is_winograd(x, w, cache.g, opts.get("groups", 1)) is taken
    assert isinstance(cache.cols, wg.WinogradTiles) is taken


def test_float16_and_no_jit_keep_the_reference(rng, monkeypatch):
    """float16, or SCRATCHNET_JIT=0: the vectorised reference, whatever the layer."""
    x = rng.standard_normal((2, 16, 8, 8))
    w = rng.standard_normal((16, 16, 3, 3))
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    _, cache = F.conv2d(x.astype(np.float16), w.astype(np.float16), None, padding=1)
    assert not isinstance(cache.cols, wg.WinogradTiles) and cache.cols is not None
    monkeypatch.setenv("SCRATCHNET_JIT", "0")
    _, cache = F.conv2d(x, w, None, padding=1)
    assert not isinstance(cache.cols, wg.WinogradTiles) and cache.cols is not None


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv2d_winograd_backward_called_directly(dtype, rng, monkeypatch):
    """``conv2d_winograd`` / ``conv2d_winograd_backward`` as a pair: the backward from the kept tiles and
    from x alone agree with each other and with the reference's dx, dw (db is the functional op's)."""
    x = rng.standard_normal((3, 8, 9, 7)).astype(dtype)
    w = (rng.standard_normal((16, 8, 3, 3)) / 9).astype(dtype)
    monkeypatch.setenv("SCRATCHNET_JIT", "0")
    y_ref, cache = F.conv2d(x, w, None, padding=1)
    dy = rng.standard_normal(y_ref.shape).astype(dtype)
    dx_ref, dw_ref, _ = F.conv2d_backward(dy, cache)
    y, tiles = wg.conv2d_winograd(x, w, None, cache.g)
    assert isinstance(tiles, wg.WinogradTiles) and tiles.V.shape == (36, 8, 3 * 3 * 2)
    tol = dict(rtol=0, atol=(2e-5 if dtype == np.float32 else 1e-12) * np.abs(y_ref).max())
    np.testing.assert_allclose(y, y_ref, **tol)
    from_tiles = wg.conv2d_winograd_backward(dy, None, w, cache.g, tiles=tiles)
    from_x = wg.conv2d_winograd_backward(dy, x, w, cache.g)
    for a, b, r in zip(from_tiles, from_x, (dx_ref, dw_ref)):
        assert a.dtype == dtype and a.shape == r.shape
        np.testing.assert_allclose(a, b, rtol=1e-5 if dtype == np.float32 else 1e-13, atol=1e-6)
        np.testing.assert_allclose(a, r, rtol=0, atol=(2e-5 if dtype == np.float32 else 1e-12) * np.abs(r).max())
