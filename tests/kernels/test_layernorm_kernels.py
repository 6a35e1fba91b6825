"""Layer-norm Numba kernels (scratchnet/kernels/layernorm.py) against the vectorised reference.

float32 and float64; D a multiple of the lane width and not; with and without γ / β; a large
offset (the two-pass variance); non-contiguous input; every cache taken by either backward; bad dy.
"""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.kernels import layernorm as KL

TOL = {np.float32: dict(rtol=2e-5, atol=2e-5), np.float64: dict(rtol=1e-11, atol=1e-12)}


def _run(monkeypatch, flag, x, gamma, beta, dy):
    monkeypatch.setenv("SCRATCHNET_JIT", flag)
    y, cache = F.layer_norm(x, gamma, beta, eps=1e-5)
    dx, dgamma, dbeta = F.layer_norm_backward(dy, cache)
    return [y, cache[0], cache[1], dx, dgamma, dbeta]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(64, 192), (4, 33, 37), (2, 3, 17, 64), (5000, 1)])
@pytest.mark.parametrize("affine", [(True, True), (False, False), (True, False), (False, True)])
def test_layer_norm_kernels_match_reference(monkeypatch, dtype, shape, affine):
    rng = np.random.default_rng(7)
    D = shape[-1]
    x = (rng.standard_normal(shape) * 2.0 + 3.0).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    gamma = rng.standard_normal(D).astype(dtype) if affine[0] else None
    beta = rng.standard_normal(D).astype(dtype) if affine[1] else None
    assert x.size >= KL.MIN_SIZE
    fast, ref = (_run(monkeypatch, f, x, gamma, beta, dy) for f in ("1", "0"))
    for a, b in zip(fast, ref):
        if b is None:
            assert a is None
            continue
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_allclose(a, b, **TOL[dtype])
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    y, cache = F.layer_norm(x, None, None)
    assert y is cache[0]  # without γ and β the output is the cached x̂, as in the reference


def test_layer_norm_kernel_large_offset_and_view(monkeypatch):
    rng = np.random.default_rng(8)
    base = (rng.standard_normal((96, 300)) * 1e-2 + 1e4).astype(np.float64)
    x = base[:, ::2]  # a non-contiguous view, mean ≫ spread
    gamma, beta = np.ones(150), np.zeros(150)
    dy = rng.standard_normal(x.shape)
    fast, ref = (_run(monkeypatch, f, x, gamma, beta, dy) for f in ("1", "0"))
    for a, b in zip(fast, ref):
        np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-8)


def test_layer_norm_backward_checks_dy(monkeypatch):
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    x = np.ones((64, 128), np.float32)
    _, cache = F.layer_norm(x, np.ones(128, np.float32), None)
    with pytest.raises(ValueError, match="layer_norm_backward"):
        F.layer_norm_backward(np.ones((64, 127), np.float32), cache)
    with pytest.raises((TypeError, ValueError), match="layer_norm"):
        F.layer_norm(x, np.ones(127, np.float32), None)
