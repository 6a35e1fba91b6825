"""Reference solutions for notebooks/16-gru.ipynb's "your turn" cells (chapter 16)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair

YOUR_TURN = ["my_gru_step", "my_gru_step_backward"]


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def my_gru_step(x, h, wx, wh, bx, bh):
    """One GRU step in PyTorch's form: x (N, D), h (N, H), wx (D, 3H), wh (H, 3H), bx, bh (3H,) → (h', cache)."""
    H = h.shape[1]
    u, v = x @ wx + bx, h @ wh + bh  # (N, 3H) each, blocks r, z, n
    r = _sigmoid(u[:, :H] + v[:, :H])  # (N, H) reset gate
    z = _sigmoid(u[:, H:2 * H] + v[:, H:2 * H])  # (N, H) update gate
    vn = v[:, 2 * H:]  # (N, H) the term the reset gate scales
    n = np.tanh(u[:, 2 * H:] + r * vn)  # (N, H) candidate
    h_new = (1 - z) * n + z * h  # (N, H) the interpolation
    return h_new, (x, h, wx, wh, r, z, n, vn)


def my_gru_step_backward(dh_new, cache):
    """dx, dh, dwx, dwh, dbx, dbh, one line per node in reverse."""
    x, h, wx, wh, r, z, n, vn = cache
    dn, dz, dh = dh_new * (1 - z), dh_new * (h - n), dh_new * z  # the direct path: diag(z)
    da_n = dn * (1 - n ** 2)
    dr, dvn = da_n * vn, da_n * r
    da_r, da_z = dr * r * (1 - r), dz * z * (1 - z)
    du = np.concatenate([da_r, da_z, da_n], axis=1)  # (N, 3H)
    dv = np.concatenate([da_r, da_z, dvn], axis=1)  # (N, 3H)
    return du @ wx.T, dh + dv @ wh.T, x.T @ du, h.T @ dv, du.sum(axis=0), dv.sum(axis=0)


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    r0 = np.random.default_rng(3)
    inputs = [r0.standard_normal((4, 3)), r0.standard_normal((4, 5)), r0.standard_normal((3, 15)) * 0.5,
              r0.standard_normal((5, 15)) * 0.5, r0.standard_normal(15) * 0.1, r0.standard_normal(15) * 0.1]
    return [
        check_pair((my_gru_step, my_gru_step_backward), (F.gru_step, F.gru_step_backward), inputs, strict=strict),
    ]
