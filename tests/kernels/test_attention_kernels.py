"""Masked-softmax Numba kernels (scratchnet/kernels/attention.py) against the vectorised reference.

Every route: float32 (polynomial exp) and float64 (the C library's exp), no mask, the causal mask,
a random (Tq, Tk) mask with fully-masked rows, Tk not a multiple of the lane width, Tq ≠ Tk; the
masks the loops do not take fall back to the reference; bad dp still raises the reference's error.
"""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.functional.attention import causal_mask
from scratchnet.kernels import attention as KA

TOL = {np.float32: dict(rtol=1e-5, atol=1e-6), np.float64: dict(rtol=1e-13, atol=1e-15)}


def _masks(rng, Tq, Tk):
    random = rng.random((Tq, Tk)) < 0.4
    random[0] = False  # a query that sees nothing: zero weights, zero gradient
    return {"none": None, "causal": causal_mask(Tq, Tk), "random": random}


def _both(monkeypatch, s, keep, dp):
    out = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("SCRATCHNET_JIT", flag)
        p = F.masked_softmax(s, keep)
        out[flag] = (p, F.masked_softmax_backward(dp, p))
    return out


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", [(2, 3, 40, 40), (4, 37, 53), (2, 2, 16, 130), (8, 64, 64)])
@pytest.mark.parametrize("mask", ["none", "causal", "random"])
def test_masked_softmax_kernels_match_reference(monkeypatch, dtype, shape, mask):
    rng = np.random.default_rng(3)
    s = (4 * rng.standard_normal(shape)).astype(dtype)
    dp = rng.standard_normal(shape).astype(dtype)
    keep = _masks(rng, *shape[-2:])[mask]
    assert s.size >= KA.MIN_SIZE
    out = _both(monkeypatch, s, keep, dp)
    for a, b in zip(out["1"], out["0"]):
        assert a.dtype == dtype and a.shape == shape
        np.testing.assert_allclose(a, b, **TOL[dtype])
    p = out["1"][0]
    if keep is not None:
        assert (p[..., ~keep] == 0).all()  # masked keys get exactly zero weight
        assert (p[..., 0, :] == 0).all() if mask == "random" else True
    rows = p.sum(-1)
    np.testing.assert_allclose(rows[rows > 0], 1.0, rtol=1e-5)


def test_attention_through_the_kernels_matches_reference(monkeypatch):
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((2, 3, 33, 8)).astype(np.float32) for _ in range(3))
    dy = rng.standard_normal((2, 3, 33, 8)).astype(np.float32)
    out = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("SCRATCHNET_JIT", flag)
        y, cache = F.scaled_dot_product_attention(q, k, v, causal=True)
        out[flag] = (y, *F.scaled_dot_product_attention_backward(dy, cache))
    for a, b in zip(out["1"], out["0"]):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_masks_the_loops_do_not_take_fall_back(monkeypatch):
    rng = np.random.default_rng(5)
    s = rng.standard_normal((4, 2, 32, 32)).astype(np.float32)
    keep = rng.random((4, 1, 1, 32)) < 0.7  # a per-sequence padding mask: the reference's broadcast
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    p = F.masked_softmax(s, keep)
    np.testing.assert_array_equal(p, F.masked_softmax.__wrapped__(s, keep))


def test_softmax_backward_checks_dp(monkeypatch):
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    p = F.masked_softmax(np.zeros((4, 64, 64), np.float32), None)
    with pytest.raises(ValueError, match="masked_softmax_backward"):
        F.masked_softmax_backward(np.zeros((4, 64, 63), np.float32), p)
    with pytest.raises((TypeError, ValueError), match="masked_softmax_backward"):
        F.masked_softmax_backward(np.zeros((4, 64, 64), np.float64), p)


def test_fast_wrappers_route_and_keep_the_reference(monkeypatch):
    """fast_masked_softmax / fast_softmax_backward wrap any reference: big NumPy rows take the loops
    (same numbers), small inputs and JIT off call the wrapped reference itself."""
    from scratchnet.functional.attention import masked_softmax, masked_softmax_backward
    calls = []

    def ref_forward(s, keep):
        calls.append("forward")
        return masked_softmax.__wrapped__(s, keep)

    def ref_backward(dp, p):
        calls.append("backward")
        return masked_softmax_backward.__wrapped__(dp, p)

    fwd, bwd = KA.fast_masked_softmax(ref_forward), KA.fast_softmax_backward(ref_backward)
    assert fwd.__name__ == "ref_forward" and bwd.__name__ == "ref_backward"  # functools.wraps
    rng = np.random.default_rng(6)
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    big = rng.standard_normal((4, 32, 64)).astype(np.float32)
    p = fwd(big, causal_mask(32, 64))
    bwd(rng.standard_normal(big.shape).astype(np.float32), p)
    assert calls == []  # the loops ran
    small = rng.standard_normal((2, 4, 4)).astype(np.float32)
    bwd(np.ones_like(small), fwd(small, None))
    assert calls == ["forward", "backward"]  # below MIN_SIZE: the reference
    monkeypatch.setenv("SCRATCHNET_JIT", "0")
    calls.clear()
    bwd(np.ones_like(big), fwd(big, None))
    assert calls == ["forward", "backward"]
