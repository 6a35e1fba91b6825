"""Reference solutions for notebooks/14-rnn-bptt.ipynb's "your turn" cells (chapter 14)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair

YOUR_TURN = ["my_rnn_step", "my_rnn_step_backward", "my_rnn", "my_rnn_backward"]


def my_rnn_step(x, h, wx, wh, b):
    """One tanh step: x (N, D), h (N, H), wx (D, H), wh (H, H), b (H,) → (h', cache)."""
    a = x @ wx + h @ wh + b  # (N, H) pre-activation
    h_new = np.tanh(a)  # (N, H)
    return h_new, (x, h, wx, wh, h_new)


def my_rnn_step_backward(dh_new, cache):
    """dx, dh, dwx, dwh, db: tanh' written with the output, then the affine map."""
    x, h, wx, wh, h_new = cache
    da = dh_new * (1 - h_new ** 2)  # (N, H)
    return da @ wx.T, da @ wh.T, x.T @ da, h.T @ da, da.sum(axis=0)


def my_rnn(x, h0, wx, wh, b, *, lengths):
    """((y, h_n), cache): the step in a loop; past a sequence's length the state is frozen and y is 0."""
    N, T, _ = x.shape
    h, caches, masks, ys = h0, [], [], []
    for t in range(T):
        m = (t < np.asarray(lengths))[:, None]  # (N, 1) still inside the sequence
        h_new, c = my_rnn_step(x[:, t], h, wx, wh, b)
        h = np.where(m, h_new, h)  # the carry: h_t = m h_new + (1 − m) h_{t−1}
        ys.append(np.where(m, h, 0.0))
        caches.append(c)
        masks.append(m)
    return (np.stack(ys, axis=1), h), (caches, masks, x.shape)


def my_rnn_backward(grads, cache):
    """dx, dh0, dwx, dwh, db: BPTT in reverse; a masked step passes dh through and gets no gradient."""
    dy, dh_n = grads
    caches, masks, (N, T, D) = cache
    dx = np.zeros((N, T, D))
    dwx, dwh, db = 0.0, 0.0, 0.0
    dh_future = dh_n
    for t in reversed(range(T)):
        m = masks[t]
        dh = dh_future + np.where(m, dy[:, t], 0.0)  # two consumers: y_t and step t+1
        dxt, dh_prev, dwx_t, dwh_t, db_t = my_rnn_step_backward(np.where(m, dh, 0.0), caches[t])
        dx[:, t] = dxt
        dh_future = dh_prev + np.where(m, 0.0, dh)  # inside: through the step; past the length: unchanged
        dwx, dwh, db = dwx + dwx_t, dwh + dwh_t, db + db_t  # shared weights: one term per step
    return dx, dh_future, dwx, dwh, db


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    r0 = np.random.default_rng(3)
    step_inputs = [r0.standard_normal((4, 3)), r0.standard_normal((4, 5)), r0.standard_normal((3, 5)) * 0.5,
                   r0.standard_normal((5, 5)) * 0.5, r0.standard_normal(5) * 0.1]
    r5 = np.random.default_rng(5)
    seq_inputs = [r5.standard_normal((3, 5, 4)), r5.standard_normal((3, 3)), r5.standard_normal((4, 3)) * 0.6,
                  r5.standard_normal((3, 3)) * 0.6, r5.standard_normal(3) * 0.6]
    return [
        check_pair((my_rnn_step, my_rnn_step_backward), (F.rnn_step, F.rnn_step_backward), step_inputs,
                   strict=strict),
        check_pair((my_rnn, my_rnn_backward), (F.rnn, F.rnn_backward), seq_inputs,
                   options={"lengths": np.array([5, 2, 0])}, strict=strict),
    ]
