"""conv2d / conv_transpose2d: gradchecks over every option, the adjoint identity, kernels vs
references, PyTorch parity and clear errors."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.functional.conv import Geometry, _fold_ref, _unfold_ref, col2im, im2col
from scratchnet.gradcheck import assert_gradients
from scratchnet.gradcheck.cases.conv import CONV_CONFIGS, TRANSPOSE_CONFIGS, conv_inputs, transpose_inputs
from scratchnet.kernels import conv as routes
from scratchnet.kernels.winograd import WinogradTiles


@pytest.mark.parametrize("xs,co,k,opts", CONV_CONFIGS)
def test_conv2d_gradcheck(xs, co, k, opts, rng):
    assert_gradients(F.conv2d, F.conv2d_backward, conv_inputs(xs, co, k, opts, rng), **opts)


def test_conv2d_gradcheck_no_bias(rng):
    xs, co, k, opts = CONV_CONFIGS[2]
    assert_gradients(F.conv2d, F.conv2d_backward, conv_inputs(xs, co, k, opts, rng, bias=False), **opts)


@pytest.mark.parametrize("xs,co,k,opts", TRANSPOSE_CONFIGS)
def test_conv_transpose2d_gradcheck(xs, co, k, opts, rng):
    assert_gradients(F.conv_transpose2d, F.conv_transpose2d_backward, transpose_inputs(xs, co, k, opts, rng), **opts)


@pytest.mark.parametrize("xs,co,k,opts", CONV_CONFIGS)
def test_conv_transpose_is_the_adjoint(xs, co, k, opts, rng):
    """⟨conv(x), y⟩ = ⟨x, convT(y)⟩ with the same weight, for every config."""
    x, w, _ = conv_inputs(xs, co, k, opts, rng, bias=False)
    y, _ = F.conv2d(x, w, None, **opts)
    u = rng.standard_normal(y.shape)
    # output_padding recovers the rows a strided conv dropped
    H, W = xs[2:]
    full = [(u.shape[2 + a] - 1) * s - 2 * p + d * (k[a] - 1) + 1
            for a, (s, p, d) in enumerate(zip(*[F.conv._pair("t", n, opts.get(n, dv))
                                                 for n, dv in (("stride", 1), ("padding", 0), ("dilation", 1))]))]
    op = (H - full[0], W - full[1])
    xt, _ = F.conv_transpose2d(u, w, None, output_padding=op, **opts)
    assert xt.shape == x.shape
    np.testing.assert_allclose(np.vdot(y, u), np.vdot(x, xt), rtol=1e-10)


def test_dtype_is_kept(xp):
    x = xp.ones((1, 2, 5, 5), dtype=xp.float32)
    w = xp.ones((3, 2, 3, 3), dtype=xp.float32)
    y, cache = F.conv2d(x, w, xp.zeros(3, dtype=xp.float32), padding=1)
    assert y.dtype == xp.float32 and y.shape == (1, 3, 5, 5)
    dx, dw, db = F.conv2d_backward(y, cache)
    assert dx.dtype == dw.dtype == db.dtype == xp.float32


@pytest.mark.parametrize("g", [Geometry(3, 2, 2, 1, 1, 2, 1, 2, 4, 5), Geometry(2, 3, 1, 3, 0, 1, 2, 1, 5, 3)])
def test_im2col_col2im_kernels_match_references(g, monkeypatch, rng):
    H = (g.oh - 1) * g.sh + g.dh * (g.kh - 1) + 1 - 2 * g.ph
    W = (g.ow - 1) * g.sw + g.dw * (g.kw - 1) + 1 - 2 * g.pw
    x = rng.standard_normal((2, 3, H, W))
    cols = rng.standard_normal((3, g.kh, g.kw, 2, g.oh, g.ow))
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    fast_cols, fast_dx = im2col(x, g), col2im(cols, g, H, W)
    monkeypatch.setenv("SCRATCHNET_JIT", "0")
    np.testing.assert_array_equal(fast_cols, im2col(x, g))
    np.testing.assert_array_equal(fast_cols, _unfold_ref(x, g).transpose(1, 2, 3, 0, 4, 5))  # channel-first
    np.testing.assert_allclose(fast_dx, _fold_ref(cols.transpose(3, 0, 1, 2, 4, 5), g, H, W), rtol=1e-12, atol=1e-12)
    # col2im is the adjoint of im2col
    np.testing.assert_allclose(np.vdot(fast_cols, cols), np.vdot(x, fast_dx), rtol=1e-10)


def test_jit_and_reference_paths_agree(monkeypatch, rng):
    xs, co, k, opts = CONV_CONFIGS[2]
    x, w, b = conv_inputs(xs, co, k, opts, rng)
    out = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("SCRATCHNET_JIT", flag)
        y, cache = F.conv2d(x, w, b, **opts)
        out[flag] = (y,) + F.conv2d_backward(np.ones_like(y), cache)
    for a, r in zip(out["1"], out["0"]):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12)


def test_errors(rng):
    x = rng.standard_normal((1, 4, 5, 5))
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.conv2d(x, rng.standard_normal((2, 4, 7, 7)))
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.conv2d(x, rng.standard_normal((2, 4, 3, 3)), dilation=3)
    with pytest.raises(ValueError, match="not divisible by groups"):
        F.conv2d(x, rng.standard_normal((2, 1, 3, 3)), groups=3)
    with pytest.raises(ValueError, match="output channels 3 are not divisible"):
        F.conv2d(x, rng.standard_normal((3, 2, 3, 3)), groups=2)
    with pytest.raises(ValueError, match="expects 8 input channels"):
        F.conv2d(x, rng.standard_normal((2, 8, 3, 3)))
    with pytest.raises(ValueError, match="expected x to be 4-D"):
        F.conv2d(x[0], rng.standard_normal((2, 4, 3, 3)))
    with pytest.raises(ValueError, match="expected w to be 4-D"):
        F.conv2d(x, rng.standard_normal((2, 4, 3)))
    with pytest.raises(TypeError, match="share one dtype"):
        F.conv2d(x.astype(np.float32), rng.standard_normal((2, 4, 3, 3)))
    with pytest.raises(ValueError, match="expected b of shape"):
        F.conv2d(x, rng.standard_normal((2, 4, 3, 3)), rng.standard_normal(3))
    with pytest.raises(ValueError, match="output_padding"):
        F.conv_transpose2d(x, rng.standard_normal((4, 2, 3, 3)), stride=2, output_padding=2)
    with pytest.raises(ValueError, match="expects 3 input channels"):
        F.conv_transpose2d(x, rng.standard_normal((3, 2, 3, 3)))


@pytest.mark.parametrize("xs,co,k,opts", CONV_CONFIGS)
def test_conv2d_matches_pytorch(xs, co, k, opts, rng):
    torch = pytest.importorskip("torch")
    x, w, b = conv_inputs(xs, co, k, opts, rng)
    y, cache = F.conv2d(x, w, b, **opts)
    dy = rng.standard_normal(y.shape)
    grads = F.conv2d_backward(dy, cache)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv2d(tx, tw, tb, **opts)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    for g, t in zip(grads, (tx, tw, tb)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("xs,co,k,opts", TRANSPOSE_CONFIGS)
def test_conv_transpose2d_matches_pytorch(xs, co, k, opts, rng):
    torch = pytest.importorskip("torch")
    x, w, b = transpose_inputs(xs, co, k, opts, rng)
    y, cache = F.conv_transpose2d(x, w, b, **opts)
    dy = rng.standard_normal(y.shape)
    grads = F.conv_transpose2d_backward(dy, cache)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    ty = torch.nn.functional.conv_transpose2d(tx, tw, tb, **opts)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    for g, t in zip(grads, (tx, tw, tb)):
        np.testing.assert_allclose(g, t.grad.numpy(), rtol=1e-10, atol=1e-10)


# geometries for the unfold/fold kernels: odd sizes, stride, padding (also past the kernel), dilation
KERNEL_GEOMETRIES = [Geometry(3, 2, 2, 1, 1, 2, 1, 2, 4, 5), Geometry(2, 3, 1, 3, 0, 1, 2, 1, 5, 3),
                     Geometry(5, 5, 1, 1, 0, 0, 1, 1, 3, 4), Geometry(3, 3, 1, 1, 1, 1, 1, 1, 7, 6),
                     Geometry(3, 3, 2, 2, 3, 3, 1, 1, 5, 4)]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("g", KERNEL_GEOMETRIES)
def test_parallel_and_serial_kernels_match_reference(g, dtype, rng):
    from scratchnet.kernels.conv_loops import fold_kernel, fold_kernel_serial, unfold_kernel, unfold_kernel_serial
    H = (g.oh - 1) * g.sh + g.dh * (g.kh - 1) + 1 - 2 * g.ph
    W = (g.ow - 1) * g.sw + g.dw * (g.kw - 1) + 1 - 2 * g.pw
    x = rng.standard_normal((2, 3, H, W)).astype(dtype)
    cols = rng.standard_normal((2, 3, g.kh, g.kw, g.oh, g.ow)).astype(dtype)
    ref_cols, ref_dx = _unfold_ref(x, g), _fold_ref(cols, g, H, W)
    tol = 1e-6 if dtype == np.float32 else 1e-12
    L = g.oh * g.ow
    for unfold_k, fold_k in ((unfold_kernel, fold_kernel), (unfold_kernel_serial, fold_kernel_serial)):
        for batch_first, order in ((True, (0, 1, 2, 3, 4, 5)), (False, (1, 2, 3, 0, 4, 5))):
            out = np.full(ref_cols.transpose(order).shape, np.nan, dtype)  # the kernel must write every entry
            rows = (2, -1) if batch_first else (-1, 2)
            unfold_k(x, out.reshape(*rows, L), batch_first, g.kh, g.kw, g.ow, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw)
            np.testing.assert_array_equal(out, ref_cols.transpose(order))
            dx = np.full_like(x, np.nan)
            c_in = np.ascontiguousarray(cols.transpose(order)).reshape(*rows, L)
            fold_k(c_in, dx, batch_first, g.kh, g.kw, g.ow, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw)
            assert dx.dtype == dtype
            np.testing.assert_allclose(dx, ref_dx, rtol=tol, atol=tol)


@pytest.mark.parametrize("xs,co,k,opts", CONV_CONFIGS)
def test_streamed_and_whole_batch_gemms_agree(xs, co, k, opts, rng, monkeypatch):
    """The two GEMM layouts of conv2d (streamed sample by sample, whole batch) give the same numbers."""
    x, w, b = conv_inputs(xs, co, k, opts, rng)
    monkeypatch.setenv("SCRATCHNET_JIT", "1")  # streaming is a route of the Numba kernels
    monkeypatch.setattr(routes, "_is_depthwise", lambda x, w: False)  # the GEMM routes, also for groups = C_in
    out = []
    for streamed in (False, True):
        monkeypatch.setattr(routes, "_streamed", lambda *args, s=streamed: s)
        y, cache = F.conv2d(x, w, b, **opts)
        assert (cache.cols is None) == streamed
        out.append((y,) + F.conv2d_backward(np.cos(y), cache))
    for a, r in zip(out[1], out[0]):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("xs,co,k,opts", CONV_CONFIGS)
def test_streamed_conv_gradcheck(xs, co, k, opts, rng, monkeypatch):
    """The streamed conv2d (one sample at a time, x re-unfolded in the backward) passes gradcheck on its own."""
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    monkeypatch.setattr(routes, "_streamed", lambda *args: True)
    monkeypatch.setattr(routes, "_is_depthwise", lambda x, w: False)  # stream groups = C_in layers too
    assert_gradients(F.conv2d, F.conv2d_backward, conv_inputs(xs, co, k, opts, rng), **opts)


@pytest.mark.parametrize("jit", ["1", "0"])
def test_route_chosen_by_size(jit, rng, monkeypatch):
    """A 3×3 stride-1 layer with enough channels takes Winograd (caches its tiles); a large layer that does
    not (64 → 4 channels at 32×32) streams (caches x, no columns), and so does LeNet's C3 (16 filters,
    stride 1: wide columns); a small strided layer unfolds the whole batch (caches the columns, not x).
    SCRATCHNET_JIT=0: the whole batch always."""
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    for shape, co, k, opts, route in [((2, 6, 14, 14), 16, 5, dict(), "streamed"),
                                      ((2, 64, 32, 32), 4, 3, dict(padding=1), "streamed"),
                                      ((2, 64, 7, 7), 64, 3, dict(padding=1), "winograd"),
                                      ((2, 64, 7, 7), 64, 3, dict(padding=1, stride=2), "whole batch")]:
        route = route if jit == "1" else "whole batch"
        x = rng.standard_normal(shape).astype(np.float32)
        w = rng.standard_normal((co, shape[1], k, k)).astype(np.float32)
        _, cache = F.conv2d(x, w, None, **opts)
        got = ("streamed" if cache.cols is None else "winograd" if isinstance(cache.cols, WinogradTiles)
               else "whole batch")
        assert got == route, (shape, got)
        assert (cache.x is x) == (route == "streamed")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dense_conv_matches_reference(dtype, rng, monkeypatch):
    """A kernel covering the whole input (LeNet's C5) takes the no-unfold path; JIT and reference agree."""
    x = rng.standard_normal((3, 4, 5, 5)).astype(dtype)
    w = rng.standard_normal((6, 4, 5, 5)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    out = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("SCRATCHNET_JIT", flag)
        y, cache = F.conv2d(x, w, b)
        out[flag] = (y,) + F.conv2d_backward(np.ones_like(y), cache)
    np.testing.assert_allclose(out["1"][0].reshape(3, 6), x.reshape(3, -1) @ w.reshape(6, -1).T + b, rtol=1e-5)
    for a, r in zip(out["1"], out["0"]):
        assert a.dtype == dtype
        np.testing.assert_allclose(a, r, rtol=1e-5 if dtype == np.float32 else 1e-12, atol=1e-6)
    if dtype == np.float64:
        assert_gradients(F.conv2d, F.conv2d_backward, [x, w, b])


# -- upstream-gradient checks, float16, empty batches ------------------------------------------------
# (SCRATCHNET_JIT, conv2d's route): streaming is a route of the Numba kernels
ROUTES = [("1", "whole batch"), ("1", "streamed"), ("0", "whole batch")]


def _conv_pairs(rng, dtype=np.float64, N=2):
    """(name, forward, backward, inputs, options) of both convolutions on a small (N, 4, 8, 7) input."""
    x = rng.standard_normal((N, 4, 8, 7)).astype(dtype)
    w = (rng.standard_normal((6, 2, 3, 3)) / 3).astype(dtype)  # conv2d: (C_out, C_in/G, KH, KW)
    wt = (rng.standard_normal((4, 3, 3, 3)) / 3).astype(dtype)  # conv_transpose2d: (C_in, C_out/G, KH, KW)
    b = rng.standard_normal(6).astype(dtype)  # (C_out,)
    return [("conv2d", F.conv2d, F.conv2d_backward, (x, w, b), dict(stride=2, padding=1, groups=2)),
            ("conv_transpose2d", F.conv_transpose2d, F.conv_transpose2d_backward, (x, wt, b),
             dict(stride=2, padding=1, output_padding=1, groups=2))]


@pytest.mark.parametrize("jit,route", ROUTES)
def test_backward_rejects_a_wrong_dy(jit, route, rng, monkeypatch):
    """A dy of the wrong shape is a ValueError and one of the wrong dtype a TypeError, before any kernel runs."""
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    monkeypatch.setattr(routes, "_streamed", lambda *args: route == "streamed")
    for name, fwd, bwd, inputs, opts in _conv_pairs(rng):
        y, cache = fwd(*inputs, **opts)
        assert name != "conv2d" or (cache.cols is None) == (route == "streamed")
        N, C, OH, OW = y.shape
        for shape in [(N, C, OH + 5, OW + 5), (N, C, OH - 1, OW), (1, C, OH, OW), (N, C + 1, OH, OW), (N, C, OH)]:
            with pytest.raises(ValueError, match=rf"{name}_backward: expected upstream gradient dy of shape "
                                                 rf"\({N}, {C}, {OH}, {OW}\).*got shape"):
                bwd(np.ones(shape), cache)
        with pytest.raises(TypeError, match=rf"{name}_backward: .*dtype float64.*got dtype float32"):
            bwd(np.ones(y.shape, np.float32), cache)
        bwd(np.ones(y.shape), cache)  # the cache is still good


@pytest.mark.parametrize("jit", ["1", "0"])
def test_fold_rejects_columns_that_do_not_match_the_geometry(jit, rng, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    g = Geometry(3, 3, 2, 2, 1, 1, 1, 1, 4, 4)  # a 3×3 window, stride 2, padding 1 on an 8×8 image
    with pytest.raises(ValueError, match=r"fold: expected upstream gradient cols of shape \(2, 3, 3, 3, 4, 4\)"):
        F.fold(np.ones((2, 3, 3, 3, 5, 5)), g, 8, 8)
    with pytest.raises(ValueError, match=r"fold: expected upstream gradient cols of shape \(3, 3, 3, 2, 4, 4\)"):
        F.col2im(np.ones((3, 2, 3, 2, 4, 4)), g, 8, 8)
    with pytest.raises(ValueError, match="fold: an image of size H×W = 20×20 has a 10×10 output grid"):
        F.col2im(np.ones((3, 3, 3, 2, 4, 4)), g, 20, 20)
    with pytest.raises(ValueError, match="expected cols to be 6-D"):
        F.fold(np.ones((2, 27, 16)), g, 8, 8)
    with pytest.raises(ValueError, match=r"fold: expected out of shape \(2, 3, 8, 8\)"):
        F.fold(np.ones((2, 3, 3, 3, 4, 4)), g, 8, 8, out=np.empty((3, 2, 8, 8)))
    with pytest.raises(ValueError, match="unfold: expected out to be a C-contiguous array of 864 numbers"):
        F.unfold(np.ones((2, 3, 8, 8)), g, out=np.empty((2, 3, 3, 3, 4, 5)))
    with pytest.raises(ValueError, match="unfold: expected out to be a C-contiguous"):
        F.unfold(np.ones((2, 3, 8, 8)), g, out=np.empty((16, 54)).T)


@pytest.mark.parametrize("jit,route", ROUTES)
def test_float16_takes_the_reference_and_keeps_its_dtype(jit, route, rng, monkeypatch):
    """float16 (which the Numba kernels are not compiled for) runs the vectorised path and stays float16."""
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    monkeypatch.setattr(routes, "_streamed", lambda *args: route == "streamed")
    seed = int(rng.integers(1 << 30))
    half = _conv_pairs(np.random.default_rng(seed), np.float16)
    single = _conv_pairs(np.random.default_rng(seed), np.float32)
    for (name, fwd, bwd, inputs, opts), (_, _, _, inputs32, _) in zip(half, single):
        y, cache = fwd(*inputs, **opts)
        dy = np.cos(y)
        got = (y,) + bwd(dy, cache)
        y32, cache32 = fwd(*inputs32, **opts)
        want = (y32,) + bwd(dy.astype(np.float32), cache32)
        for a, r in zip(got, want):
            assert a.dtype == np.float16, name
            np.testing.assert_allclose(a.astype(np.float32), r, rtol=2e-2, atol=2e-2 * np.abs(r).max())


@pytest.mark.parametrize("jit,route", ROUTES)
def test_empty_batch(jit, route, rng, monkeypatch):
    """N = 0: empty outputs of the right shapes, an empty dx and zero dw, db."""
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    monkeypatch.setattr(routes, "_streamed", lambda *args: route == "streamed")
    for name, fwd, bwd, (x, w, b), opts in _conv_pairs(rng, N=0):
        y, cache = fwd(x, w, b, **opts)
        y2, _ = fwd(np.ones((2,) + x.shape[1:]), w, b, **opts)
        assert y.shape == (0,) + y2.shape[1:] and y.dtype == x.dtype, name
        dx, dw, db = bwd(np.ones_like(y), cache)
        assert dx.shape == x.shape and dw.shape == w.shape and db.shape == b.shape, name
        assert not dw.any() and not db.any(), name
    for shape, co, k, opts in [((0, 3, 5, 5), 2, (1, 1), {}), ((0, 4, 5, 5), 6, (5, 5), {})]:  # 1×1 and dense
        x, w, b = conv_inputs(shape, co, k, opts, rng)
        y, cache = F.conv2d(x, w, b, **opts)
        dx, dw, db = F.conv2d_backward(np.ones_like(y), cache)
        assert y.shape[0] == 0 and dx.shape == x.shape and not dw.any() and not db.any()


@pytest.mark.parametrize("jit", ["1", "0"])
@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("g,H,W", [(Geometry(1, 1, 1, 1, 0, 0, 1, 1, 5, 4), 5, 4),  # 1×1: columns = x
                                   (Geometry(5, 4, 1, 1, 0, 0, 1, 1, 1, 1), 5, 4),  # one window (LeNet's C5)
                                   (Geometry(3, 2, 2, 1, 1, 0, 1, 2, 3, 2), 5, 4)])  # the kernels
def test_unfold_fold_routes_match_references(g, H, W, batch_first, jit, rng, monkeypatch):
    """Every unfold/fold route (shortcuts, Numba kernels, into ``out`` or not) against the references."""
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    order = (0, 1, 2, 3, 4, 5) if batch_first else (1, 2, 3, 0, 4, 5)
    x = rng.standard_normal((2, 3, H, W))
    cols = rng.standard_normal(_unfold_ref(x, g).transpose(order).shape)
    ref_cols, ref_dx = _unfold_ref(x, g).transpose(order), _fold_ref(cols.transpose(np.argsort(order)), g, H, W)
    np.testing.assert_array_equal(F.unfold(x, g, batch_first=batch_first), ref_cols)
    np.testing.assert_allclose(F.fold(cols, g, H, W, batch_first=batch_first), ref_dx, rtol=1e-12, atol=1e-12)
    out = np.full(ref_cols.size, np.nan)
    np.testing.assert_array_equal(F.unfold(x, g, batch_first=batch_first, out=out), ref_cols)
    dx = np.full(x.shape, np.nan)
    assert F.fold(cols, g, H, W, batch_first=batch_first, out=dx) is dx
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_whole_batch_gemm_reference_equals_the_routed_conv(rng, dtype):
    """``_conv2d_gemm`` / ``_conv2d_gemm_backward`` (the chapter's reference) give what ``conv2d`` returns."""
    from scratchnet.functional.conv import _conv2d_gemm, _conv2d_gemm_backward, _geometry
    x = rng.standard_normal((3, 4, 9, 8)).astype(dtype)
    w = rng.standard_normal((6, 2, 3, 3)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    g = _geometry("conv2d", x.shape[2:], w.shape[2:], 2, 1, 1, x.shape)
    y_ref, cols = _conv2d_gemm(x, w, b, g, 2)
    y, cache = F.conv2d(x, w, b, stride=2, padding=1, groups=2)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx_ref, dw_ref = _conv2d_gemm_backward(dy, cols, w, g, x.shape)
    dx, dw, _ = F.conv2d_backward(dy, cache)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(y_ref, y, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx_ref, dx, rtol=tol, atol=tol)
    np.testing.assert_allclose(dw_ref, dw, rtol=tol, atol=tol)
