"""Gated recurrent unit (Cho et al. 2014) in PyTorch's form: the reset gate scales h wh_n + bh_n.

Legend: N batch, T time, D input features, H hidden units; gate blocks in the order r, z, n along
the 3H axis of wx (D, 3H), wh (H, 3H), bx and bh (3H,). This file is the readable reference;
``scratchnet/kernels/recurrent.py`` chooses between it and the fused Numba loops.
See chapters/16-gru.md.
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

__all__ = ["gru_step", "gru_step_backward", "gru", "gru_backward"]


def _gru_cell(xw, hw, h):
    """One step's gate math from xw = x wx + bx and hw = h wh + bh (N, 3H) and the state h (N, H).

    Returns the gates (N, 3H) r, z, n and the new state h' (N, H).
    """
    xp = get_array_module(xw)
    H = h.shape[1]
    r = sigmoid(xw[:, :H] + hw[:, :H])  # (N, H) reset gate
    z = sigmoid(xw[:, H:2 * H] + hw[:, H:2 * H])  # (N, H) update gate
    n = xp.tanh(xw[:, 2 * H:] + r * hw[:, 2 * H:])  # (N, H) candidate: r scales h wh_n + bh_n
    h_new = (1.0 - z) * n + z * h  # (N, H) the interpolation
    gates = xp.concatenate([r, z, n], axis=1)  # (N, 3H)
    return gates, h_new


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


class GRUStepCache(NamedTuple):
    x: object  # (N, D) the step's input
    h_prev: object  # (N, H) previous state (zeros when none was given)
    given: tuple  # (h given, bx given, bh given)
    wx: object
    wh: object
    gates: object  # (N, 3H) r, z, n
    hn: object  # (N, H) h wh_n + bh_n, the term the reset gate scales


def gru_step(x, h, wx, wh, bx, bh):
    """One GRU step: r, z = σ(x wx + bx + h wh + bh)_{r,z}; n = tanh(x wx_n + bx_n + r ⊙ (h wh_n + bh_n));
    h' = (1 − z) ⊙ n + z ⊙ h.

    x (N, D), h (N, H) or None (zeros), wx (D, 3H), wh (H, 3H), bx, bh (3H,) or None → h' (N, H).
    Backward: da_n = dh'(1−z)(1−n²); dz = dh'(h−n); dr = da_n ⊙ (h wh_n + bh_n);
    dh = dh' ⊙ z + [da_r, da_z, da_n ⊙ r] whᵀ. See chapters/16-gru.md#eq-gru-backward.
    """
    H = check_step("gru_step", x, wx, wh, {"bx": bx, "bh": bh}, 3, h=h)
    xp = get_array_module(x, h, wx, wh, bx, bh)
    N = x.shape[0]
    h_prev = xp.zeros((N, H), dtype=x.dtype) if h is None else h  # (N, H)
    xw = x @ wx if bx is None else x @ wx + bx  # (N, 3H)
    hw = h_prev @ wh if bh is None else h_prev @ wh + bh  # (N, 3H)
    gates, h_new = route.gru_cell(xw, hw, h_prev, reference=_gru_cell)  # the fused cell or _gru_cell
    given = (h is not None, bx is not None, bh is not None)
    return h_new, GRUStepCache(x, h_prev, given, wx, wh, gates, hw[:, 2 * H:].copy())


def gru_step_backward(dh_new, cache):
    """dx, dh, dwx, dwh, dbx, dbh of ``gru_step`` (None for inputs that were None); dh_new None = zeros."""
    x, h_prev, (has_h, has_bx, has_bh), wx, wh, gates, hn = cache
    (dh_new,) = upstream_grads("gru_step_backward", dh_new, {"dh_new": h_prev.shape}, gates.dtype)
    xp = get_array_module(x)
    dh_new = xp.zeros_like(h_prev) if dh_new is None else dh_new  # (N, H)
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


def _forward_loop(xw, h0, wh, bh, mask):
    """The forward time loop from the input projections xw (T, N, 3H) and h0 (N, H):
    returns hs (T, N, H), gates (T, N, 3H) and hns (T, N, H)."""
    xp = get_array_module(xw)
    T, N, _ = xw.shape
    H = h0.shape[1]
    hs, hns = xp.empty((T, N, H), dtype=xw.dtype), xp.empty((T, N, H), dtype=xw.dtype)  # (T, N, H)
    gates = xp.empty_like(xw)  # (T, N, 3H)
    h = h0
    for t in range(T):  # the recurrence: only h_{t−1} wh is left inside the loop
        hw = h @ wh if bh is None else h @ wh + bh  # (N, 3H)
        gates[t], h_new = _gru_cell(xw[t], hw, h)
        hns[t] = hw[:, 2 * H:]
        hs[t] = h_new if mask is None else xp.where(mask[t][:, None], h_new, h)  # past a length: h carried
        h = hs[t]
    return hs, gates, hns


def gru(x, h0, wx, wh, bx, bh, *, lengths=None):
    """GRU over a sequence (gate order r, z, n, PyTorch's form); y_t = h_t.

    x (N, T, D), h0 (N, H) or None, wx (D, 3H), wh (H, 3H), bx, bh (3H,) or None → (y (N, T, H), h_n (N, H)).
    Backward from t = T−1 down to 0 with dh_T = dh_n: ``gru_step_backward`` at every step with
    dh' = dy_t + dh_t; dwx = Σ xᵀ dxw, dwh = Σ h_{t−1}ᵀ dhw. See chapters/16-gru.md#eq-gru-bptt.
    """
    N, T, D, H, mask = check_sequence("gru", x, wx, wh, {"bx": bx, "bh": bh}, 3, lengths, h0=h0)
    xp = get_array_module(x, h0, wx, wh, bx, bh)
    xt, xw = project_inputs(x, wx, bx)  # (T, N, D), (T, N, 3H)
    h0_ = xp.zeros((N, H), dtype=x.dtype) if h0 is None else h0  # (N, H)
    hs, gates, hns = route.gru_forward(xw, h0_, wh, bh, mask, reference=_forward_loop)  # fused loop or _forward_loop
    h_n = hs[-1].copy() if T else h0_.copy()  # (N, H) the state at each sequence's own length
    cache = GRUCache(xt, h0_, (h0 is not None, bx is not None, bh is not None), wx, wh, hs, gates, hns, mask)
    return (batch_first(hs, mask), h_n), cache


def gru_backward(grads, cache):
    """dx, dh0, dwx, dwh, dbx, dbh of ``gru`` from (dy, dh_n); either may be None (zeros)."""
    xt, h0, (has_h0, has_bx, has_bh), wx, wh, hs, gates, hns, mask = cache
    T, N, H = hs.shape
    dy, dh_n = upstream_grads("gru_backward", grads, {"dy": (N, T, H), "dh_n": (N, H)}, hs.dtype)
    xp = get_array_module(hs)
    dys = time_major(dy)  # (T, N, H) or None
    dh = zeros_or_copy(xp, dh_n, (N, H), hs.dtype)  # gradient reaching h_t from the future
    dhw = xp.empty_like(gates)  # (T, N, 3H) gradient of h wh + bh
    dan = xp.empty_like(hs)  # (T, N, H) gradient of a_n (the x wx_n + bx_n part of dxw)
    whT = xp.ascontiguousarray(wh.T)  # (3H, H)
    # the fused Numba walk or _walk_back; both fill dhw and dan
    dh = route.gru_walk_back(dys, dh, gates, hns, hs, h0, mask, whT, dhw, dan, reference=_walk_back)
    dxw = dhw.copy()  # (T, N, 3H) r and z see x wx and h wh through the same sum ...
    dxw[..., 2 * H:] = dan  # ... while x wx_n + bx_n is outside the reset gate
    dx, dwx, dbx = input_grads(xt, wx, dxw)
    dwh = state_grads(hs, h0, dhw)
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
