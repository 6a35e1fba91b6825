"""The depthwise route of conv2d (groups = C_in, C_out = m·C_in): the direct Numba loops of
``kernels/conv_loops.py`` against the vectorised reference (unfold + grouped GEMM), for every option
that changes the loops, and the routing rules of ``kernels/conv.py``."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.kernels import conv as routes
from scratchnet.kernels import conv_loops

# (N, C_in, m, H, W, kernel, stride, padding, dilation)
CASES = [
    (2, 3, 1, 7, 8, 3, 1, 1, 1),
    (2, 3, 2, 9, 7, 3, 2, 1, 1),  # multiplier 2, stride 2, odd sizes
    (3, 4, 3, 10, 10, 3, 2, 2, 2),  # multiplier 3, dilation 2
    (2, 2, 1, 5, 6, 5, 1, 0, 1),  # 5×5, no padding
    (1, 2, 2, 4, 4, 3, 3, 3, 1),  # padding wider than the image reaches
    (2, 3, 1, 6, 6, (3, 2), (1, 2), (0, 1), (2, 1)),  # rectangular kernel, mixed options
    (0, 3, 1, 5, 5, 3, 1, 1, 1),  # an empty batch
]


def _inputs(case, dtype, rng, bias=True):
    N, C, m, H, W, k, s, p, d = case
    kh, kw = (k, k) if isinstance(k, int) else k
    x = rng.standard_normal((N, C, H, W)).astype(dtype)  # (N, C_in, H, W)
    w = rng.standard_normal((C * m, 1, kh, kw)).astype(dtype)  # (m·C_in, 1, KH, KW)
    b = rng.standard_normal(C * m).astype(dtype) if bias else None  # (m·C_in,)
    return x, w, b, dict(stride=s, padding=p, dilation=d, groups=C)


def _run(x, w, b, opts, rng):
    y, cache = F.conv2d(x, w, b, **opts)
    dy = rng.standard_normal(y.shape).astype(x.dtype)
    return y, F.conv2d_backward(dy, cache), cache


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", CASES, ids=[f"case{i}" for i in range(len(CASES))])
def test_depthwise_kernel_matches_reference(case, dtype, monkeypatch):
    x, w, b, opts = _inputs(case, dtype, np.random.default_rng(0))
    y, grads, cache = _run(x, w, b, opts, np.random.default_rng(1))
    assert cache.cols is None and cache.x is x  # the direct loops ran (and kept x for the backward)
    monkeypatch.setenv("SCRATCHNET_JIT", "0")
    y_ref, grads_ref, cache_ref = _run(x, w, b, opts, np.random.default_rng(1))
    assert cache_ref.cols is not None  # SCRATCHNET_JIT=0: the reference's columns and GEMMs
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-10, atol=1e-12)
    assert y.dtype == dtype and y.shape == y_ref.shape
    np.testing.assert_allclose(y, y_ref, **tol)
    for name, g, g_ref in zip(("dx", "dw", "db"), grads, grads_ref):
        assert g.dtype == dtype and g.shape == g_ref.shape, name
        np.testing.assert_allclose(g, g_ref, **tol, err_msg=name)


def test_depthwise_without_bias_and_noncontiguous_inputs(monkeypatch):
    rng = np.random.default_rng(2)
    x, w, _, opts = _inputs(CASES[1], np.float64, rng, bias=False)
    xt = np.ascontiguousarray(x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)  # same values, other strides
    y, cache = F.conv2d(xt, w, None, **opts)
    dy = rng.standard_normal(y.shape[::-1]).T  # a transposed (non-contiguous) upstream gradient
    dx, dw, db = F.conv2d_backward(dy, cache)
    assert db is None
    monkeypatch.setenv("SCRATCHNET_JIT", "0")
    y_ref, cache_ref = F.conv2d(x, w, None, **opts)
    dx_ref, dw_ref, _ = F.conv2d_backward(np.ascontiguousarray(dy), cache_ref)
    np.testing.assert_allclose(y, y_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dw, dw_ref, rtol=1e-10, atol=1e-12)


def test_parallel_and_serial_kernels_agree():
    """Both compilations of each loop, called directly on a layer below and above the threshold."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 6, 9, 9)).astype(np.float32)  # (N, C_in, H, W)
    w = rng.standard_normal((12, 1, 3, 3)).astype(np.float32)  # m = 2
    b = rng.standard_normal(12).astype(np.float32)
    args = (2, 2, 2, 1, 1, 1, 1)  # m, stride, padding, dilation
    outs = []
    for fwd, bx, bw in ((conv_loops.depthwise_forward_kernel, conv_loops.depthwise_backward_input_kernel,
                         conv_loops.depthwise_backward_weight_kernel),
                        (conv_loops.depthwise_forward_kernel_serial, conv_loops.depthwise_backward_input_kernel_serial,
                         conv_loops.depthwise_backward_weight_kernel_serial)):
        y = np.empty((4, 12, 5, 5), np.float32)
        fwd(x, w, b, y, *args)
        dx, dw = np.empty_like(x), np.empty_like(w)
        bx(y, w, dx, *args)
        bw(y, x, dw, *args)
        outs.append((y, dx, dw))
    for a, c in zip(*outs):
        np.testing.assert_array_equal(a, c)  # the same loops per output: the same rounding


def test_routing_rules(monkeypatch):
    monkeypatch.setattr(routes, "WIDE_MAX_FILTERS", 0)  # small stride-1 layers keep the whole-batch GEMMs
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 4, 6, 6))
    _, cache = F.conv2d(x, rng.standard_normal((4, 1, 3, 3)), None, padding=1, groups=4)
    assert cache.cols is None  # depthwise: the direct loops
    _, cache = F.conv2d(x, rng.standard_normal((4, 2, 3, 3)), None, padding=1, groups=2)
    assert cache.cols is not None  # grouped but not depthwise: the GEMMs
    x1 = rng.standard_normal((2, 1, 6, 6))
    _, cache = F.conv2d(x1, rng.standard_normal((3, 1, 3, 3)), None)
    assert cache.cols is not None  # one input channel (LeNet's C1) keeps the GEMM route
    x16 = x.astype(np.float16)
    y16, cache = F.conv2d(x16, rng.standard_normal((4, 1, 3, 3)).astype(np.float16), None, padding=1, groups=4)
    assert cache.cols is not None and y16.dtype == np.float16  # float16: the vectorised reference
    assert not routes._depthwise_parallel((2, 4, 6, 6), np.zeros((4, 1, 3, 3)))
    assert routes._depthwise_parallel((64, 128, 16, 16), np.zeros((128, 1, 3, 3)))


def test_wrong_upstream_gradient_is_a_clear_error():
    rng = np.random.default_rng(5)
    x, w, b, opts = _inputs(CASES[1], np.float64, rng)
    y, cache = F.conv2d(x, w, b, **opts)
    with pytest.raises(ValueError, match="conv2d_backward"):
        F.conv2d_backward(np.zeros(y.shape[:-1] + (y.shape[-1] + 1,)), cache)


def test_depthwise_backward_route_matches_the_grouped_gemm(monkeypatch):
    """``routes._depthwise_backward`` (the direct loops) against the reference pair (SCRATCHNET_JIT=0)."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 7, 6))  # (N, C_in, H, W)
    w = rng.standard_normal((6, 1, 3, 3))  # multiplier m = 2
    dy = rng.standard_normal((2, 6, 4, 3))  # (N, C_out, OH, OW)
    monkeypatch.setenv("SCRATCHNET_JIT", "0")
    _, cache = F.conv2d(x, w, None, stride=2, padding=1, groups=3)
    ref_dx, ref_dw, _ = F.conv2d_backward(dy, cache)
    dx, dw = routes._depthwise_backward(dy, x, w, cache.g)
    np.testing.assert_allclose(dx, ref_dx, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dw, ref_dw, rtol=1e-10, atol=1e-12)
