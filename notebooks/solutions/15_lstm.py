"""Reference solutions for notebooks/15-lstm.ipynb's "your turn" cells (chapter 15)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair

YOUR_TURN = ["my_lstm_step", "my_lstm_step_backward"]


def _sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def my_lstm_step(x, h, c, wx, wh, b):
    """One LSTM step: x (N, D), h, c (N, H), wx (D, 4H), wh (H, 4H), b (4H,) → ((h', c'), cache)."""
    H = h.shape[1]
    z = x @ wx + h @ wh + b  # (N, 4H) blocks i, f, g, o
    i, f = _sigmoid(z[:, :H]), _sigmoid(z[:, H:2 * H])  # (N, H) each
    g, o = np.tanh(z[:, 2 * H:3 * H]), _sigmoid(z[:, 3 * H:])
    c_new = f * c + i * g  # (N, H) the carousel
    tau = np.tanh(c_new)  # (N, H)
    h_new = o * tau  # (N, H)
    return (h_new, c_new), (x, h, c, wx, wh, i, f, g, o, tau)


def my_lstm_step_backward(grads, cache):
    """dx, dh, dc, dwx, dwh, db from grads = (dh', dc'), one line per node in reverse."""
    dh_new, dc_new = grads
    x, h, c, wx, wh, i, f, g, o, tau = cache
    do = dh_new * tau
    dc = dc_new + dh_new * o * (1 - tau ** 2)  # c' has two consumers: tanh and the next step
    di, df, dg, dc_prev = dc * g, dc * c, dc * i, dc * f
    dz = np.concatenate([di * i * (1 - i), df * f * (1 - f), dg * (1 - g ** 2), do * o * (1 - o)], axis=1)
    return dz @ wx.T, dz @ wh.T, dc_prev, x.T @ dz, h.T @ dz, dz.sum(axis=0)


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    r0 = np.random.default_rng(3)
    inputs = [r0.standard_normal((4, 3)), r0.standard_normal((4, 5)), r0.standard_normal((4, 5)),
              r0.standard_normal((3, 20)) * 0.5, r0.standard_normal((5, 20)) * 0.5, r0.standard_normal(20) * 0.1]
    return [
        check_pair((my_lstm_step, my_lstm_step_backward), (F.lstm_step, F.lstm_step_backward), inputs,
                   strict=strict),
    ]
