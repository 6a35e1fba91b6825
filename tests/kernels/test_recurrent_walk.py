"""The LSTM's fused backward walk (scratchnet/kernels/recurrent.py, dh overwritten in place at each
step) against the readable reference walk, at float32 and float64, with and without lengths; the
caller's upstream gradients are never written to."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.functional.lstm import _walk_back
from scratchnet.kernels import recurrent as route


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("lengths", [None, [6, 2, 4]])
def test_lstm_backward_jit_matches_reference(dtype, lengths, rng, monkeypatch):
    N, T, D, H = 3, 6, 4, 5
    x = rng.standard_normal((N, T, D)).astype(dtype)
    h0, c0 = (rng.standard_normal((N, H)).astype(dtype) for _ in range(2))
    wx, wh = (0.5 * rng.standard_normal(s).astype(dtype) for s in ((D, 4 * H), (H, 4 * H)))
    b = rng.standard_normal(4 * H).astype(dtype)
    dy = rng.standard_normal((N, T, H)).astype(dtype)
    dh_n, dc_n = (rng.standard_normal((N, H)).astype(dtype) for _ in range(2))
    keep = (dy.copy(), dh_n.copy(), dc_n.copy())
    lens = None if lengths is None else np.array(lengths)
    out = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("SCRATCHNET_JIT", flag)
        _, cache = F.lstm(x, h0, c0, wx, wh, b, lengths=lens)
        out[flag] = F.lstm_backward((dy, dh_n, dc_n), cache)
    for a, r in zip(out["1"], out["0"]):
        assert a.dtype == dtype
        tol = 2e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(a, r, rtol=tol, atol=tol)
    for a, k in zip((dy, dh_n, dc_n), keep):  # upstream gradients untouched
        np.testing.assert_array_equal(a, k)


def test_walk_back_route_leaves_its_dh_argument_alone(rng, monkeypatch):
    """The route copies dh before overwriting it step by step, and returns the reference's dh and dc."""
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    N, T, H = 2, 4, 3
    gates = rng.uniform(0.1, 0.9, (T, N, 4 * H))
    tanh_cs, cs = rng.uniform(-0.9, 0.9, (T, N, H)), rng.standard_normal((T, N, H))
    c0, dys = rng.standard_normal((N, H)), rng.standard_normal((T, N, H))
    whT = rng.standard_normal((4 * H, H))
    dh, dc = rng.standard_normal((N, H)), rng.standard_normal((N, H))
    dh_keep = dh.copy()
    dz = np.empty((T, N, 4, H))
    got = route.lstm_walk_back(dys, dh, dc.copy(), gates, tanh_cs, cs, c0, None, whT, dz, reference=_walk_back)
    np.testing.assert_array_equal(dh, dh_keep)
    dz_ref = np.empty_like(dz)
    ref = _walk_back(dys, dh.copy(), dc.copy(), gates, tanh_cs, cs, c0, None, whT, dz_ref)
    np.testing.assert_allclose(dz, dz_ref, rtol=1e-12, atol=1e-12)
    for a, r in zip(got, ref):
        np.testing.assert_allclose(a, r, rtol=1e-12, atol=1e-12)
