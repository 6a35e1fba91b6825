"""Pooling and LRN: gradchecks (tie-free inputs), Numba kernels vs references, PyTorch parity, errors."""
import re

import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.functional.pool import _max_pool_backward_ref, _max_pool_ref, _pool_geometry
from scratchnet.gradcheck import assert_gradients
from scratchnet.gradcheck.cases.conv import POOL_CONFIGS, distinct


@pytest.mark.parametrize("xs,opts", POOL_CONFIGS)
def test_max_pool_gradcheck(xs, opts, rng):
    assert_gradients(F.max_pool2d, F.max_pool2d_backward, [distinct(xs, rng)], **opts)


@pytest.mark.parametrize("cip", [True, False])
@pytest.mark.parametrize("xs,opts", POOL_CONFIGS)
def test_avg_pool_gradcheck(xs, opts, cip, rng):
    assert_gradients(F.avg_pool2d, F.avg_pool2d_backward, [rng.standard_normal(xs)], count_include_pad=cip, **opts)


def test_global_avg_pool_gradcheck(rng):
    assert_gradients(F.global_avg_pool2d, F.global_avg_pool2d_backward, [rng.standard_normal((2, 3, 4, 5))])


@pytest.mark.parametrize("size", [1, 2, 3, 5])
def test_lrn_gradcheck(size, rng):
    assert_gradients(F.local_response_norm, F.local_response_norm_backward, [rng.standard_normal((2, 6, 3, 2))],
                     size=size, alpha=0.5, beta=0.75, k=1.0)


@pytest.mark.parametrize("xs,opts", POOL_CONFIGS)
def test_max_pool_kernels_match_references(xs, opts, rng, monkeypatch):
    x = distinct(xs, rng)
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    y, cache = F.max_pool2d(x, **opts)
    dy = rng.standard_normal(y.shape)
    dx = F.max_pool2d_backward(dy, cache)
    g = _pool_geometry("max_pool2d", x, opts["kernel_size"], opts.get("stride"), opts.get("padding", 0))
    y_ref, arg_ref = _max_pool_ref(x, g)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(cache[0], arg_ref)
    np.testing.assert_allclose(dx, _max_pool_backward_ref(dy, arg_ref, g, *xs[2:]), rtol=1e-12, atol=1e-12)
    monkeypatch.setenv("SCRATCHNET_JIT", "0")  # the whole op through the reference path
    y0, cache0 = F.max_pool2d(x, **opts)
    np.testing.assert_array_equal(y, y0)
    np.testing.assert_allclose(dx, F.max_pool2d_backward(dy, cache0), rtol=1e-12, atol=1e-12)


def test_max_pool_ties_pick_the_first(monkeypatch):
    x = np.zeros((1, 1, 2, 2))
    for flag in ("1", "0"):
        monkeypatch.setenv("SCRATCHNET_JIT", flag)
        y, cache = F.max_pool2d(x, kernel_size=2)
        assert cache[0].ravel()[0] == 0


def test_pool_on_xp(xp):
    x = xp.arange(32, dtype=xp.float32).reshape(1, 2, 4, 4)
    y, cache = F.max_pool2d(x, kernel_size=2)
    assert y.dtype == xp.float32 and float(y[0, 0, 0, 0]) == 5.0
    assert F.max_pool2d_backward(xp.ones_like(y), cache).shape == x.shape
    y, cache = F.avg_pool2d(x, kernel_size=2)
    assert y.dtype == xp.float32 and float(y[0, 0, 0, 0]) == 2.5


def test_errors(rng):
    x = rng.standard_normal((1, 2, 4, 4))
    with pytest.raises(ValueError, match="at most half"):
        F.max_pool2d(x, kernel_size=2, padding=2)
    with pytest.raises(ValueError, match="larger than the padded input"):
        F.avg_pool2d(x, kernel_size=5)
    with pytest.raises(ValueError, match="expected x to be 4-D"):
        F.max_pool2d(x[0], kernel_size=2)
    with pytest.raises(TypeError, match="kernel_size"):
        F.max_pool2d(x, kernel_size=(2, 2, 2))


def _torch_parity(fn, bwd, tfn, x, rng, **opts):
    torch = pytest.importorskip("torch")
    y, cache = fn(x, **opts)
    dy = rng.standard_normal(y.shape)
    dx = bwd(dy, cache)
    tx = torch.tensor(x, requires_grad=True)
    ty = tfn(tx)
    ty.backward(torch.tensor(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("xs,opts", POOL_CONFIGS)
def test_pools_match_pytorch(xs, opts, rng):
    torch = pytest.importorskip("torch")
    tf = torch.nn.functional
    x = distinct(xs, rng)
    _torch_parity(F.max_pool2d, F.max_pool2d_backward, lambda t: tf.max_pool2d(t, **opts), x, rng, **opts)
    for cip in (True, False):
        _torch_parity(F.avg_pool2d, F.avg_pool2d_backward, lambda t: tf.avg_pool2d(t, count_include_pad=cip, **opts),
                      x, rng, count_include_pad=cip, **opts)
    _torch_parity(F.global_avg_pool2d, F.global_avg_pool2d_backward, lambda t: t.mean(dim=(2, 3)), x, rng)


@pytest.mark.parametrize("size,alpha,beta,k", [(5, 1e-4, 0.75, 2.0), (4, 0.3, 0.6, 1.0), (2, 1.0, 1.5, 0.5)])
def test_lrn_matches_pytorch(size, alpha, beta, k, rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((2, 7, 3, 4)) * 3
    _torch_parity(F.local_response_norm, F.local_response_norm_backward,
                  lambda t: torch.nn.functional.local_response_norm(t, size, alpha=alpha, beta=beta, k=k),
                  x, rng, size=size, alpha=alpha, beta=beta, k=k)


@pytest.mark.parametrize("k,s,p", [(3, 2, 1), (3, 2, 0), (2, 1, 1), (3, 1, 1), (4, 3, 2)])
@pytest.mark.parametrize("special", [False, True])
def test_parallel_and_serial_pool_kernels_agree(k, s, p, special, rng):
    """The general kernels against the references, with NaN, ±∞ and ties (special) in the input."""
    from scratchnet.kernels import pool_loops as K
    x = distinct((2, 3, 7, 5), rng)
    if special:  # the first NaN wins; ±∞ in one window forces the exact redo; ties keep the first
        x.reshape(-1)[::11] = np.nan
        x.reshape(-1)[5], x.reshape(-1)[6] = np.inf, -np.inf
        x.reshape(-1)[20] = x.reshape(-1)[21]
        x[1, 2] = -np.inf  # a plane of −∞: the first real tap wins, never the padding
    g = _pool_geometry("max_pool2d", x, k, s, p)
    y_ref, arg_ref = _max_pool_ref(x, g)
    dy = rng.standard_normal(y_ref.shape)
    for fwd, bwd in ((K.max_pool2d_kernel, K.max_pool2d_backward_kernel),
                     (K.max_pool2d_kernel_serial, K.max_pool2d_backward_kernel_serial)):
        y, arg = np.empty_like(y_ref), np.empty(y_ref.shape, np.int64)
        fwd(x, y, arg, k, k, s, s, p, p)
        np.testing.assert_array_equal(y, y_ref)
        np.testing.assert_array_equal(arg, arg_ref)
        dx = np.zeros_like(x)
        bwd(dy, arg, dx, k, s, s, p, p)
        np.testing.assert_allclose(dx, _max_pool_backward_ref(dy, arg_ref, g, 7, 5), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (1, 2, 7, 5), (2, 1, 2, 3)])  # even, odd (a row/column in no window)
def test_max_pool2x2_kernels_match_references(shape, dtype, rng):
    from scratchnet.kernels import pool_loops as K
    x = distinct(shape, rng).astype(dtype)
    x.reshape(-1)[::7] = np.nan  # NaNs win (the first one in a window), as in the general kernel
    x.reshape(-1)[3] = x.reshape(-1)[4]  # and a tie
    g = _pool_geometry("max_pool2d", x, 2, None, 0)
    y_ref, arg_ref = _max_pool_ref(x, g)
    y, arg = np.empty_like(y_ref), np.empty(y_ref.shape, np.int8)
    K.max_pool2x2_kernel_serial(x, y, arg)
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    y2, arg2 = np.empty_like(y_ref), np.empty(y_ref.shape, np.int64)  # the general kernel agrees
    K.max_pool2d_kernel_serial(x, y2, arg2, 2, 2, 2, 2, 0, 0)
    np.testing.assert_array_equal(arg2, arg)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = np.full_like(x, np.nan)  # the kernel must write every entry
    K.max_pool2x2_backward_kernel_serial(dy, arg, dx)
    np.testing.assert_array_equal(dx, _max_pool_backward_ref(dy, arg_ref, g, *shape[2:]))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 6, 8), (1, 2, 7, 5)])  # even, odd (a row/column in no window)
def test_pool2x2_fast_paths_match_general_path(shape, dtype, rng, monkeypatch):
    """2×2 / stride-2 max and average pooling against the general paths they bypass."""
    from scratchnet.kernels import pool
    x = distinct(shape, rng).astype(dtype)
    dy = rng.standard_normal((shape[0], shape[1], shape[2] // 2, shape[3] // 2)).astype(dtype)
    out = []
    for fast in (True, False):
        monkeypatch.setattr(pool, "_is_2x2", lambda g, fast=fast: fast and tuple(g[:6]) == (2, 2, 2, 2, 0, 0))
        res = []
        for fwd, bwd in ((F.max_pool2d, F.max_pool2d_backward), (F.avg_pool2d, F.avg_pool2d_backward)):
            y, cache = fwd(x, kernel_size=2)
            res += [y, bwd(dy, cache)]
        out.append(res)
    for a, r in zip(*out):
        assert a.dtype == dtype and a.shape == r.shape
        np.testing.assert_allclose(a, r, rtol=1e-6 if dtype == np.float32 else 1e-12)


@pytest.mark.parametrize("dtype,ulps", [(np.float32, 4), (np.float64, 4)])
def test_lrn_inverse_power_three_quarters_matches_pow(dtype, ulps, rng):
    """AlexNet's β = 3/4 through square roots equals s ** −0.75 to a few ulps (other β use pow)."""
    from scratchnet.functional.pool import _inverse_power
    s = (2.0 + rng.random(1000) * 1e3).astype(dtype)
    np.testing.assert_array_max_ulp(_inverse_power(s, 0.75), s ** dtype(-0.75), maxulp=ulps)
    np.testing.assert_array_equal(_inverse_power(s, 0.6), s ** -0.6)
    assert _inverse_power(s, 0.75).dtype == dtype


# -- upstream-gradient checks, float16, empty batches ------------------------------------------------
POOL_PAIRS = [("max_pool2d", F.max_pool2d, F.max_pool2d_backward, dict(kernel_size=2)),
              ("max_pool2d", F.max_pool2d, F.max_pool2d_backward, dict(kernel_size=3, stride=2, padding=1)),
              ("avg_pool2d", F.avg_pool2d, F.avg_pool2d_backward, dict(kernel_size=2)),
              ("avg_pool2d", F.avg_pool2d, F.avg_pool2d_backward,
               dict(kernel_size=3, stride=2, padding=1, count_include_pad=False)),
              ("global_avg_pool2d", F.global_avg_pool2d, F.global_avg_pool2d_backward, {}),
              ("local_response_norm", F.local_response_norm, F.local_response_norm_backward, dict(size=3))]


@pytest.mark.parametrize("jit", ["1", "0"])
def test_max_pool_backward_rejects_a_dy_of_another_shape(jit, monkeypatch, rng):
    """A dy larger than the cached output once made the Numba scatter write past dx (a crashed process),
    a smaller one read past it (garbage): both are now a ValueError naming the expected shape."""
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    y, c = F.max_pool2d(rng.standard_normal((2, 3, 8, 8)), kernel_size=2)
    for dy in (np.ones((2, 3, 40, 40)), np.ones((1, 3, 4, 4))):
        with pytest.raises(ValueError, match=r"max_pool2d_backward: expected upstream gradient dy of shape "
                                             r"\(2, 3, 4, 4\).*got shape"):
            F.max_pool2d_backward(dy, c)


@pytest.mark.parametrize("jit", ["1", "0"])
@pytest.mark.parametrize("name,fwd,bwd,opts", POOL_PAIRS, ids=lambda v: v if isinstance(v, str) else None)
def test_backward_rejects_a_wrong_dy(name, fwd, bwd, opts, jit, monkeypatch, rng):
    """Wrong shape → ValueError, wrong dtype (float32 for a float64 forward) → TypeError, before any kernel."""
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    y, cache = fwd(distinct((2, 3, 8, 6), rng), **opts)
    shape = y.shape
    for bad in [shape[:-1] + (shape[-1] + 7,), (1,) + shape[1:], shape[:-1], shape + (1,)]:
        with pytest.raises(ValueError, match=rf"{name}_backward: expected upstream gradient dy of shape "
                                             rf"{re.escape(str(tuple(shape)))}"):
            bwd(np.ones(bad), cache)
    with pytest.raises(TypeError, match=rf"{name}_backward: .*dtype float64.*got dtype float32"):
        bwd(np.ones(shape, np.float32), cache)
    assert bwd(np.ones(shape), cache).shape == (2, 3, 8, 6)  # the cache is still good


@pytest.mark.parametrize("jit", ["1", "0"])
@pytest.mark.parametrize("name,fwd,bwd,opts", POOL_PAIRS, ids=lambda v: v if isinstance(v, str) else None)
def test_float16_takes_the_reference_and_keeps_its_dtype(name, fwd, bwd, opts, jit, monkeypatch, rng):
    """float16 (which the Numba kernels are not compiled for) runs the vectorised path and stays float16."""
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    x = distinct((2, 3, 8, 6), rng) / 20  # distinct in float16 too: no new ties
    y, cache = fwd(x.astype(np.float16), **opts)
    y32, cache32 = fwd(x.astype(np.float32), **opts)
    dy = np.cos(y32)
    dx, dx32 = bwd(dy.astype(np.float16), cache), bwd(dy, cache32)
    for a, r in ((y, y32), (dx, dx32)):
        assert a.dtype == np.float16 and a.shape == r.shape
        np.testing.assert_allclose(a.astype(np.float32), r, rtol=1e-2, atol=1e-2 * np.abs(r).max())


@pytest.mark.parametrize("jit", ["1", "0"])
@pytest.mark.parametrize("name,fwd,bwd,opts", POOL_PAIRS, ids=lambda v: v if isinstance(v, str) else None)
def test_empty_batch(name, fwd, bwd, opts, jit, monkeypatch, rng):
    """N = 0: an empty output of the right shape and an empty dx."""
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    y, cache = fwd(np.ones((0, 3, 8, 6)), **opts)
    y2, _ = fwd(np.ones((2, 3, 8, 6)), **opts)
    assert y.shape == (0,) + y2.shape[1:] and y.dtype == np.float64
    dx = bwd(np.ones_like(y), cache)
    assert dx.shape == (0, 3, 8, 6) and dx.dtype == np.float64
