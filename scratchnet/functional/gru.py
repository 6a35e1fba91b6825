"""Gated recurrent unit (Cho et al. 2014) in PyTorch's form: the reset gate scales h wh_n + bh_n.

Legend: N batch, T time, D input features, H hidden units; gate blocks in the order r, z, n along
the 3H axis of wx (D, 3H), wh (H, 3H), bx and bh (3H,). See chapters/16-gru.md.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._jit import use_jit
from ..backend import get_array_module
from .recurrent import (
    _batch_first,
    _check_sequence,
    _check_step,
    _input_grads,
    _project,
    _sigmoid,
    _state_grads,
    _time_major,
    _upstream,
    _zeros_or_copy,
)

__all__ = ["gru_step", "gru_step_backward", "gru", "gru_backward"]


def _gru_cell(xw, hw, h, H, gates):
    """New state from xw = x wx + bx and hw = h wh + bh (N, 3H); fills gates (N, 3H) with r, z, n."""
    xp = get_array_module(xw)
    if use_jit() and xp is np and xw.dtype == hw.dtype == h.dtype == np.float32:
        # the same math in one fused float32 loop (scratchnet/kernels/recurrent_loops.py)
        from ..kernels.recurrent_loops import gru_cell_float32_kernel
        h_new = np.empty_like(h)  # (N, H)
        c = np.ascontiguousarray
        gru_cell_float32_kernel(c(xw), c(hw), c(h), np.float32(0.5), gates, h_new)
        return h_new
    gates[:, :2 * H] = _sigmoid(xw[:, :2 * H] + hw[:, :2 * H])  # r, z
    r, z = gates[:, :H], gates[:, H:2 * H]
    gates[:, 2 * H:] = xp.tanh(xw[:, 2 * H:] + r * hw[:, 2 * H:])  # n, the candidate
    n = gates[:, 2 * H:]
    return n + z * (h - n)  # (N, H) h' = (1 − z) ⊙ n + z ⊙ h


def _gru_cell_backward(dh_new, h_prev, gates, hn, H, dxw, dhw):
    """Fill dxw and dhw (N, 3H), the gradients of xw and hw; return the direct part dh_new ⊙ z."""
    r, z, n = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:]
    dan = dh_new * (1.0 - z) * (1.0 - n * n)  # (N, H) through n = tanh(a_n)
    dxw[:, :H] = dan * hn * r * (1.0 - r)  # dr ⊙ σ'
    dxw[:, H:2 * H] = dh_new * (h_prev - n) * z * (1.0 - z)  # dz ⊙ σ'
    dxw[:, 2 * H:] = dan
    dhw[:, :2 * H] = dxw[:, :2 * H]  # r and z see x wx and h wh through the same sum
    dhw[:, 2 * H:] = dan * r  # h wh_n + bh_n enters through r ⊙ (·)
    return dh_new * z


def gru_step(x, h, wx, wh, bx, bh):
    """One GRU step: r, z = σ(x wx + bx + h wh + bh)_{r,z}; n = tanh(x wx_n + bx_n + r ⊙ (h wh_n + bh_n));
    h' = (1 − z) ⊙ n + z ⊙ h.

    x (N, D), h (N, H) or None (zeros), wx (D, 3H), wh (H, 3H), bx, bh (3H,) or None → h' (N, H).
    Backward: da_n = dh'(1−z)(1−n²); dz = dh'(h−n); dr = da_n ⊙ (h wh_n + bh_n);
    dh = dh' ⊙ z + [da_r, da_z, da_n ⊙ r] whᵀ. See chapters/16-gru.md#eq-gru-backward.
    """
    H = _check_step("gru_step", x, wx, wh, {"bx": bx, "bh": bh}, 3, h=h)
    xp = get_array_module(x, h, wx, wh, bx, bh)
    N = x.shape[0]
    h_prev = xp.zeros((N, H), dtype=x.dtype) if h is None else h  # (N, H)
    xw = x @ wx if bx is None else x @ wx + bx  # (N, 3H)
    hw = h_prev @ wh if bh is None else h_prev @ wh + bh  # (N, 3H)
    gates = xp.empty_like(xw)  # (N, 3H) r, z, n
    h_new = _gru_cell(xw, hw, h_prev, H, gates)
    cache = (x, h_prev, (h is not None, bx is not None, bh is not None), wx, wh, gates, hw[:, 2 * H:].copy())
    return h_new, cache


def gru_step_backward(dh_new, cache):
    """dx, dh, dwx, dwh, dbx, dbh of ``gru_step`` (None for inputs that were None)."""
    x, h_prev, (has_h, has_bx, has_bh), wx, wh, gates, hn = cache
    xp = get_array_module(x)
    dxw, dhw = xp.empty_like(gates), xp.empty_like(gates)  # (N, 3H) each
    dh_direct = _gru_cell_backward(dh_new, h_prev, gates, hn, h_prev.shape[1], dxw, dhw)
    dh = dh_direct + dhw @ wh.T if has_h else None  # (N, H)
    return (dxw @ wx.T, dh, x.T @ dxw, h_prev.T @ dhw, dxw.sum(axis=0) if has_bx else None,
            dhw.sum(axis=0) if has_bh else None)


class GRUCache(NamedTuple):
    xt: object  # (T, N, D) time-major input
    h0: object  # (N, H) initial state (zeros when none was given)
    given: tuple  # (h0 given, bx given, bh given)
    wx: object
    wh: object
    hs: object  # (T, N, H) states after each step (constant past a sequence's length)
    gates: object  # (T, N, 3H) r, z, n
    hns: object  # (T, N, H) h_{t−1} wh_n + bh_n, the term the reset gate scales
    mask: object  # (T, N) bool or None


def gru(x, h0, wx, wh, bx, bh, *, lengths=None):
    """GRU over a sequence (gate order r, z, n, PyTorch's form); y_t = h_t.

    x (N, T, D), h0 (N, H) or None, wx (D, 3H), wh (H, 3H), bx, bh (3H,) or None → (y (N, T, H), h_n (N, H)).
    Backward from t = T−1 down to 0 with dh_T = dh_n: ``gru_step_backward`` at every step with
    dh' = dy_t + dh_t; dwx = Σ xᵀ dxw, dwh = Σ h_{t−1}ᵀ dhw. See chapters/16-gru.md#eq-gru-bptt.
    """
    N, T, D, H, mask = _check_sequence("gru", x, wx, wh, {"bx": bx, "bh": bh}, 3, lengths, h0=h0)
    xp = get_array_module(x, h0, wx, wh, bx, bh)
    xt, xw = _project(x, wx, bx)  # (T, N, D), (T, N, 3H)
    h0_ = xp.zeros((N, H), dtype=x.dtype) if h0 is None else h0  # (N, H)
    hs, hns = xp.empty((T, N, H), dtype=x.dtype), xp.empty((T, N, H), dtype=x.dtype)  # (T, N, H)
    gates = xp.empty((T, N, 3 * H), dtype=x.dtype)  # (T, N, 3H)
    h = h0_
    for t in range(T):  # the recurrence: only h_{t−1} wh is left inside the loop
        hw = h @ wh if bh is None else h @ wh + bh  # (N, 3H)
        h_new = _gru_cell(xw[t], hw, h, H, gates[t])
        hns[t] = hw[:, 2 * H:]
        h = h_new if mask is None else xp.where(mask[t][:, None], h_new, h)
        hs[t] = h
    cache = GRUCache(xt, h0_, (h0 is not None, bx is not None, bh is not None), wx, wh, hs, gates, hns, mask)
    return (_batch_first(hs, mask), h.copy()), cache


def gru_backward(grads, cache):
    """dx, dh0, dwx, dwh, dbx, dbh of ``gru`` from (dy, dh_n); either may be None (zeros)."""
    xt, h0, (has_h0, has_bx, has_bh), wx, wh, hs, gates, hns, mask = cache
    dy, dh_n = _upstream(grads, 2)
    xp = get_array_module(hs)
    T, N, H = hs.shape
    dys = _time_major(dy)  # (T, N, H) or None
    dh = _zeros_or_copy(xp, dh_n, (N, H), hs.dtype)  # gradient reaching h_t from the future
    dhw = xp.empty_like(gates)  # (T, N, 3H) gradient of h wh + bh
    dan = xp.empty_like(hs)  # (T, N, H) gradient of a_n (the x wx_n + bx_n part of dxw)
    whT = xp.ascontiguousarray(wh.T)  # (3H, H)
    walk = _walk_back_fused if use_jit() and xp is np else _walk_back
    dh = walk(dys, dh, gates, hns, hs, h0, mask, whT, dhw, dan)
    dxw = dhw.copy()  # (T, N, 3H) r and z see x wx and h wh through the same sum ...
    dxw[..., 2 * H:] = dan  # ... while x wx_n + bx_n is outside the reset gate
    dx, dwx, dbx = _input_grads(xt, wx, dxw)
    dwh = _state_grads(hs, h0, dhw)
    dbh = dhw.reshape(T * N, 3 * H).sum(axis=0)  # (3H,)
    return dx, dh if has_h0 else None, dwx, dwh, dbx if has_bx else None, dbh if has_bh else None


def _walk_back(dys, dh, gates, hns, hs, h0, mask, whT, dhw, dan):
    """The backward time loop: fill dhw (T, N, 3H) and dan (T, N, H); return dh_{−1}. Everything that
    does not depend on the carried dh is computed for all steps at once, before the loop."""
    xp = get_array_module(gates)
    T, N, H = hs.shape
    r, z, n = gates[..., :H], gates[..., H:2 * H], gates[..., 2 * H:]  # (T, N, H) views
    h_prev = xp.concatenate([h0[None], hs[:-1]])  # (T, N, H) h_{t−1}
    dn_factor = (1.0 - z) * (1.0 - n * n)  # (T, N, H) ∂h_t/∂a_n
    dr_factor = hns * r * (1.0 - r)  # (T, N, H) ∂a_n/∂a_r
    dz_factor = (h_prev - n) * z * (1.0 - z)  # (T, N, H) ∂h_t/∂a_z
    for t in range(T - 1, -1, -1):  # walk the recurrence backwards, carrying dh
        dh_t = dh if dys is None else dh + dys[t]
        xp.multiply(dh_t, dn_factor[t], out=dan[t])
        xp.multiply(dan[t], dr_factor[t], out=dhw[t, :, :H])  # da_r
        xp.multiply(dh_t, dz_factor[t], out=dhw[t, :, H:2 * H])  # da_z
        xp.multiply(dan[t], r[t], out=dhw[t, :, 2 * H:])  # h wh_n + bh_n enters through r ⊙ (·)
        if mask is None:
            dh = dh_t * z[t] + dhw[t] @ whT
        else:  # past a sequence's length: no gradient to the step, dh passes through unchanged
            m = mask[t][:, None]
            dhw[t] *= m
            dan[t] *= m
            dh = xp.where(m, dh_t * z[t] + dhw[t] @ whT, dh)
    return dh


def _walk_back_fused(dys, dh, gates, hns, hs, h0, mask, whT, dhw, dan):
    """``_walk_back`` with each step's elementwise work in one Numba loop that computes the local
    derivatives on the fly (no (T, N, ·) temporaries); the matmul by whᵀ stays in NumPy."""
    from ..kernels.recurrent_loops import gru_backward_step_kernel
    T, N, H = hs.shape
    zeros = np.zeros((N, H), dtype=hs.dtype)  # dy_t when no dy was given
    keep_all = np.ones(N, dtype=bool)  # (N,) every sequence still running
    dh_direct = np.empty((N, H), dtype=hs.dtype)  # (N, H) dh_t ⊙ z, the path that skips the gates
    one = hs.dtype.type(1)
    for t in range(T - 1, -1, -1):  # walk the recurrence backwards, carrying dh
        keep = keep_all if mask is None else mask[t]
        dy_t = zeros if dys is None else dys[t]
        h_prev = hs[t - 1] if t > 0 else h0
        gru_backward_step_kernel(dh, dy_t, gates[t], hns[t], h_prev, keep, dhw[t], dan[t], dh_direct, one)
        dh_new = dh_direct + dhw[t] @ whT  # (N, H)
        dh = dh_new if mask is None else np.where(keep[:, None], dh_new, dh)  # past a length: dh passes
    return dh
