"""Long short-term memory (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

Legend: N batch, T time, D input features, H hidden units; gate blocks in the order i, f, g, o
along the 4H axis of wx (D, 4H), wh (H, 4H) and b (4H,). This file is the readable reference;
``scratchnet/kernels/recurrent.py`` chooses between it and the fused Numba loops.
See chapters/15-lstm.md.
"""
from __future__ import annotations

from typing import NamedTuple

from ..backend import get_array_module
from ..kernels import recurrent as route
from ._seq import (
    batch_first,
    check_sequence,
    check_step,
    input_grads,
    project_inputs,
    state_grads,
    time_major,
    upstream_grads,
    zeros_or_copy,
)
from .activation import stable_sigmoid as sigmoid

__all__ = ["lstm_step", "lstm_step_backward", "lstm", "lstm_backward"]


def _lstm_cell(z, c_prev):
    """One step's gate math from the pre-activations z = x wx + h wh + b (N, 4H) and c_prev (N, H).

    Returns the gates (N, 4H) i, f, g, o after their nonlinearities, the new cell c (N, H),
    tanh(c) (N, H) and the new state h (N, H).
    """
    xp = get_array_module(z)
    H = c_prev.shape[1]
    i = sigmoid(z[:, :H])  # (N, H) input gate
    f = sigmoid(z[:, H:2 * H])  # (N, H) forget gate
    g = xp.tanh(z[:, 2 * H:3 * H])  # (N, H) candidate
    o = sigmoid(z[:, 3 * H:])  # (N, H) output gate
    c = f * c_prev + i * g  # (N, H) the additive cell update: the constant-error carousel
    tanh_c = xp.tanh(c)  # (N, H)
    h = o * tanh_c  # (N, H)
    gates = xp.concatenate([i, f, g, o], axis=1)  # (N, 4H)
    return gates, c, tanh_c, h


def _lstm_cell_backward(dh_new, dc_new, gates, tanh_c, c_prev, H, dz):
    """Fill dz (N, 4H) with the pre-activation gradients; return dc_prev."""
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    dc = dc_new + dh_new * o * (1.0 - tanh_c * tanh_c)  # (N, H) both paths into c_t
    dz[:, :H] = dc * g * i * (1.0 - i)  # di ⊙ σ'
    dz[:, H:2 * H] = dc * c_prev * f * (1.0 - f)  # df ⊙ σ'
    dz[:, 2 * H:3 * H] = dc * i * (1.0 - g * g)  # dg ⊙ tanh'
    dz[:, 3 * H:] = dh_new * tanh_c * o * (1.0 - o)  # do ⊙ σ'
    return dc * f  # the carousel: dc_{t−1} = dc_t ⊙ f_t


class LSTMStepCache(NamedTuple):
    x: object  # (N, D) the step's input
    h_prev: object  # (N, H) previous states (zeros when none was given)
    c_prev: object
    has_h: bool
    has_c: bool
    wx: object
    wh: object
    has_b: bool
    gates: object  # (N, 4H) i, f, g, o after their nonlinearities
    tanh_c: object  # (N, H) tanh(c')


def lstm_step(x, h, c, wx, wh, b):
    """One LSTM step: z = x wx + h wh + b; i, f, o = σ(z_i, z_f, z_o), g = tanh(z_g);
    c' = f ⊙ c + i ⊙ g; h' = o ⊙ tanh(c').

    x (N, D), h, c (N, H) or None (zeros), wx (D, 4H), wh (H, 4H), b (4H,) or None → (h', c').
    Backward: dc = dc' + dh' ⊙ o ⊙ (1 − tanh²c'); dz = [dc⊙g, dc⊙c, dc⊙i, dh'⊙tanh c'] ⊙ act'(z);
    dx = dz wxᵀ, dh = dz whᵀ, dc_prev = dc ⊙ f. See chapters/15-lstm.md#eq-lstm-backward.
    """
    H = check_step("lstm_step", x, wx, wh, {"b": b}, 4, h=h, c=c)
    xp = get_array_module(x, h, c, wx, wh, b)
    N = x.shape[0]
    h_prev = xp.zeros((N, H), dtype=x.dtype) if h is None else h  # (N, H)
    c_prev = xp.zeros((N, H), dtype=x.dtype) if c is None else c  # (N, H)
    z = x @ wx + h_prev @ wh  # (N, 4H)
    if b is not None:
        z += b
    gates, c_new, tanh_c, h_new = route.lstm_cell(z, c_prev, reference=_lstm_cell)  # the fused cell or _lstm_cell
    cache = LSTMStepCache(x, h_prev, c_prev, h is not None, c is not None, wx, wh, b is not None, gates, tanh_c)
    return (h_new, c_new), cache


def lstm_step_backward(grads, cache):
    """dx, dh, dc, dwx, dwh, db of ``lstm_step`` from (dh', dc'), either None (zeros)."""
    x, h_prev, c_prev, has_h, has_c, wx, wh, has_b, gates, tanh_c = cache
    dh_new, dc_new = upstream_grads("lstm_step_backward", grads, {"dh_new": c_prev.shape, "dc_new": c_prev.shape},
                                    gates.dtype)
    xp = get_array_module(x)
    dh_new = xp.zeros_like(h_prev) if dh_new is None else dh_new  # (N, H)
    dc_new = xp.zeros_like(c_prev) if dc_new is None else dc_new  # (N, H)
    dz = xp.empty_like(gates)  # (N, 4H)
    dc = _lstm_cell_backward(dh_new, dc_new, gates, tanh_c, c_prev, h_prev.shape[1], dz)
    dh = dz @ wh.T if has_h else None  # (N, H)
    return (dz @ wx.T, dh, dc if has_c else None, x.T @ dz, h_prev.T @ dz,
            dz.sum(axis=0) if has_b else None)


class LSTMCache(NamedTuple):
    xt: object  # (T, N, D) time-major input
    h0: object  # (N, H) initial states (zeros when none was given)
    c0: object
    given: tuple  # (h0 given, c0 given, b given)
    wx: object
    wh: object
    hs: object  # (T, N, H) hidden states after each step (constant past a sequence's length)
    cs: object  # (T, N, H) cell states
    gates: object  # (T, N, 4H) i, f, g, o after their nonlinearities
    tanh_cs: object  # (T, N, H) tanh(c_t): cached, one transcendental call per step saved in backward
    mask: object  # (T, N) bool or None


def _forward_loop(xw, h0, c0, wh, mask):
    """The forward time loop from the input projections xw (T, N, 4H) and the initial states (N, H):
    returns hs, cs, tanh_cs (T, N, H) and gates (T, N, 4H)."""
    xp = get_array_module(xw)
    T, N, _ = xw.shape
    H = h0.shape[1]
    hs, cs, tanh_cs = (xp.empty((T, N, H), dtype=xw.dtype) for _ in range(3))  # (T, N, H) each
    gates = xp.empty_like(xw)  # (T, N, 4H)
    h, c = h0, c0
    for t in range(T):  # the recurrence: only h_{t−1} wh is left inside the loop
        gates[t], c_new, tanh_cs[t], h_new = _lstm_cell(xw[t] + h @ wh, c)
        if mask is not None:  # past a sequence's length the state is carried unchanged
            keep = mask[t][:, None]
            h_new, c_new = xp.where(keep, h_new, h), xp.where(keep, c_new, c)
        hs[t], cs[t] = h_new, c_new
        h, c = hs[t], cs[t]
    return hs, cs, tanh_cs, gates


def lstm(x, h0, c0, wx, wh, b, *, lengths=None):
    """LSTM over a sequence (gate order i, f, g, o); y_t = h_t.

    x (N, T, D), h0, c0 (N, H) or None, wx (D, 4H), wh (H, 4H), b (4H,) or None
    → (y (N, T, H), h_n (N, H), c_n (N, H)).
    Backward from t = T−1 down to 0 with dh_T = dh_n, dc_T = dc_n: ``lstm_step_backward`` at every
    step with dh' = dy_t + dh_t, then dwx = Σ xᵀ dz, dwh = Σ h_{t−1}ᵀ dz. See chapters/15-lstm.md#eq-lstm-bptt.
    """
    N, T, D, H, mask = check_sequence("lstm", x, wx, wh, {"b": b}, 4, lengths, h0=h0, c0=c0)
    xp = get_array_module(x, h0, c0, wx, wh, b)
    xt, xw = project_inputs(x, wx, b)  # (T, N, D), (T, N, 4H)
    h0_ = xp.zeros((N, H), dtype=x.dtype) if h0 is None else h0  # (N, H)
    c0_ = xp.zeros((N, H), dtype=x.dtype) if c0 is None else c0  # (N, H)
    # the fused Numba loop or _forward_loop (it may reuse xw's memory for the gates)
    hs, cs, tanh_cs, gates = route.lstm_forward(xw, h0_, c0_, wh, mask, reference=_forward_loop)
    h_n, c_n = (hs[-1].copy(), cs[-1].copy()) if T else (h0_.copy(), c0_.copy())  # (N, H) at each own length
    cache = LSTMCache(xt, h0_, c0_, (h0 is not None, c0 is not None, b is not None), wx, wh, hs, cs,
                      gates, tanh_cs, mask)
    return (batch_first(hs, mask), h_n, c_n), cache


def lstm_backward(grads, cache):
    """dx, dh0, dc0, dwx, dwh, db of ``lstm`` from (dy, dh_n, dc_n); any may be None (zeros)."""
    xt, h0, c0, given, wx, wh, hs, cs, gates, tanh_cs, mask = cache
    T, N, H = hs.shape
    dy, dh_n, dc_n = upstream_grads("lstm_backward", grads, {"dy": (N, T, H), "dh_n": (N, H), "dc_n": (N, H)},
                                    hs.dtype)
    xp = get_array_module(hs)
    dys = time_major(dy)  # (T, N, H) or None
    dh = zeros_or_copy(xp, dh_n, (N, H), hs.dtype)  # gradient reaching h_t from the future
    dc = zeros_or_copy(xp, dc_n, (N, H), hs.dtype)  # gradient reaching c_t from the future
    dz = xp.empty((T, N, 4, H), dtype=hs.dtype)  # pre-activation gradients, blocks i, f, g, o
    whT = xp.ascontiguousarray(wh.T)  # (4H, H)
    # the fused Numba walk or _walk_back; both fill dz
    dh, dc = route.lstm_walk_back(dys, dh, dc, gates, tanh_cs, cs, c0, mask, whT, dz, reference=_walk_back)
    dz = dz.reshape(T, N, 4 * H)
    dx, dwx, db = input_grads(xt, wx, dz)
    dwh = state_grads(hs, h0, dz)
    has_h0, has_c0, has_b = given
    return dx, dh if has_h0 else None, dc if has_c0 else None, dwx, dwh, db if has_b else None


def _walk_back(dys, dh, dc, gates, tanh_cs, cs, c0, mask, whT, dz):
    """The backward time loop: fill dz (T, N, 4, H); return dh_{−1}, dc_{−1}. Everything that does
    not depend on the carried dh, dc is computed for all steps at once, before the loop."""
    xp = get_array_module(gates)
    T, N, H = cs.shape
    i, f, g, o = (gates[..., k * H:(k + 1) * H] for k in range(4))  # (T, N, H) views
    act = gates * (1.0 - gates)  # (T, N, 4H) σ' = σ(1 − σ) for i, f, o ...
    act[..., 2 * H:3 * H] = 1.0 - g * g  # ... and tanh' = 1 − g² for g
    dtanh_c = o * (1.0 - tanh_cs * tanh_cs)  # (T, N, H) ∂h_t/∂c_t
    dgate_do = tanh_cs * act[..., 3 * H:]  # (T, N, H) ∂h_t/∂z_o
    dgate_dc = xp.empty((T, N, 3, H), dtype=cs.dtype)  # ∂c_t/∂(z_i, z_f, z_g)
    xp.multiply(g, act[..., :H], out=dgate_dc[:, :, 0])
    xp.multiply(cs[:-1], act[1:, :, H:2 * H], out=dgate_dc[1:, :, 1])  # c_{t−1} ⊙ f'
    xp.multiply(c0, act[0, :, H:2 * H], out=dgate_dc[0, :, 1])
    xp.multiply(i, act[..., 2 * H:3 * H], out=dgate_dc[:, :, 2])
    for t in range(T - 1, -1, -1):  # walk the recurrence backwards, carrying dh and dc
        dh_t = dh if dys is None else dh + dys[t]
        dc_t = dc + dh_t * dtanh_c[t]  # (N, H) both paths into c_t
        xp.multiply(dc_t[:, None], dgate_dc[t], out=dz[t, :, :3])  # dz_i, dz_f, dz_g
        xp.multiply(dh_t, dgate_do[t], out=dz[t, :, 3])  # dz_o
        dzt = dz[t].reshape(N, 4 * H)
        if mask is None:
            dh, dc = dzt @ whT, dc_t * f[t]  # the carousel: dc_{t−1} = dc_t ⊙ f_t
        else:  # past a sequence's length: no gradient to the step, dh and dc pass through
            m = mask[t][:, None]
            dzt *= m
            dh, dc = xp.where(m, dzt @ whT, dh), xp.where(m, dc_t * f[t], dc)
    return dh, dc
