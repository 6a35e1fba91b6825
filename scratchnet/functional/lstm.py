"""Long short-term memory (Hochreiter & Schmidhuber 1997, with the forget gate of Gers et al. 2000).

Legend: N batch, T time, D input features, H hidden units; gate blocks in the order i, f, g, o
along the 4H axis of wx (D, 4H), wh (H, 4H) and b (4H,). See chapters/15-lstm.md.
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
    _state_grads,
    _time_major,
    _upstream,
    _zeros_or_copy,
)

__all__ = ["lstm_step", "lstm_step_backward", "lstm", "lstm_backward"]


def _gate_affine(H, dtype, xp):
    """Per-block scale a and shift s with act(z) = a·tanh(a·z) + s: σ(z) = ½ tanh(z/2) + ½ for i, f, o
    and tanh(z) for g, so all four blocks take ONE tanh call."""
    a = xp.full(4 * H, 0.5, dtype=dtype)  # (4H,)
    a[2 * H:3 * H] = 1.0
    return a, 1.0 - a  # the shift is ½ where the scale is ½ and 0 where it is 1


def _lstm_cell(za, c, H, affine, gates, c_new, tanh_c, h_new):
    """One step's gate math, written into the given (N, ·) buffers: gates (4H) i, f, g, o from the
    *scaled* pre-activations za = a ⊙ z, then c' = f ⊙ c + i ⊙ g, tanh(c') and h' = o ⊙ tanh(c')."""
    xp = get_array_module(za)
    a, s = affine
    if _fused_cell(xp, za, c):  # the same math in one fused float32 loop (scratchnet/kernels/recurrent_loops.py)
        from ..kernels.recurrent_loops import lstm_cell_float32_kernel
        gates[...] = 0  # the kernel adds gates (there: the input projection) to its first argument
        lstm_cell_float32_kernel(np.ascontiguousarray(za), np.ascontiguousarray(c), a, s, gates, c_new, tanh_c, h_new)
        return
    xp.tanh(za, out=gates)  # (N, 4H) one tanh for the four blocks
    gates *= a
    gates += s
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    xp.multiply(f, c, out=c_new)
    c_new += i * g  # the additive cell update: the constant-error carousel
    xp.tanh(c_new, out=tanh_c)
    xp.multiply(o, tanh_c, out=h_new)


def _fused_cell(xp, za, c):
    """Take the float32 Numba cell kernel?"""
    return use_jit() and xp is np and za.dtype == np.float32 and c.dtype == np.float32


def _lstm_cell_backward(dh_new, dc_new, gates, tanh_c, c_prev, H, dz):
    """Fill dz (N, 4H) with the pre-activation gradients; return dc_prev."""
    i, f, g, o = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
    dc = dc_new + dh_new * o * (1.0 - tanh_c * tanh_c)  # (N, H) both paths into c_t
    dz[:, :H] = dc * g * i * (1.0 - i)  # di ⊙ σ'
    dz[:, H:2 * H] = dc * c_prev * f * (1.0 - f)  # df ⊙ σ'
    dz[:, 2 * H:3 * H] = dc * i * (1.0 - g * g)  # dg ⊙ tanh'
    dz[:, 3 * H:] = dh_new * tanh_c * o * (1.0 - o)  # do ⊙ σ'
    return dc * f  # the carousel: dc_{t−1} = dc_t ⊙ f_t


def lstm_step(x, h, c, wx, wh, b):
    """One LSTM step: z = x wx + h wh + b; i, f, o = σ(z_i, z_f, z_o), g = tanh(z_g);
    c' = f ⊙ c + i ⊙ g; h' = o ⊙ tanh(c').

    x (N, D), h, c (N, H) or None (zeros), wx (D, 4H), wh (H, 4H), b (4H,) or None → (h', c').
    Backward: dc = dc' + dh' ⊙ o ⊙ (1 − tanh²c'); dz = [dc⊙g, dc⊙c, dc⊙i, dh'⊙tanh c'] ⊙ act'(z);
    dx = dz wxᵀ, dh = dz whᵀ, dc_prev = dc ⊙ f. See chapters/15-lstm.md#eq-lstm-backward.
    """
    H = _check_step("lstm_step", x, wx, wh, {"b": b}, 4, h=h, c=c)
    xp = get_array_module(x, h, c, wx, wh, b)
    N = x.shape[0]
    h_prev = xp.zeros((N, H), dtype=x.dtype) if h is None else h  # (N, H)
    c_prev = xp.zeros((N, H), dtype=x.dtype) if c is None else c  # (N, H)
    z = x @ wx + h_prev @ wh  # (N, 4H)
    if b is not None:
        z += b
    affine = _gate_affine(H, x.dtype, xp)
    gates = xp.empty_like(z)  # (N, 4H)
    h_new, c_new, tanh_c = (xp.empty_like(c_prev) for _ in range(3))  # (N, H) each
    _lstm_cell(z * affine[0], c_prev, H, affine, gates, c_new, tanh_c, h_new)
    cache = (x, h_prev, c_prev, h is not None, c is not None, wx, wh, b is not None, gates, tanh_c)
    return (h_new, c_new), cache


def lstm_step_backward(grads, cache):
    """dx, dh, dc, dwx, dwh, db of ``lstm_step`` from (dh', dc'), either None (zeros)."""
    x, h_prev, c_prev, has_h, has_c, wx, wh, has_b, gates, tanh_c = cache
    dh_new, dc_new = _upstream(grads, 2)
    xp = get_array_module(x)
    dh_new = xp.zeros_like(h_prev) if dh_new is None else dh_new
    dc_new = xp.zeros_like(c_prev) if dc_new is None else dc_new
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


def lstm(x, h0, c0, wx, wh, b, *, lengths=None):
    """LSTM over a sequence (gate order i, f, g, o); y_t = h_t.

    x (N, T, D), h0, c0 (N, H) or None, wx (D, 4H), wh (H, 4H), b (4H,) or None
    → (y (N, T, H), h_n (N, H), c_n (N, H)).
    Backward from t = T−1 down to 0 with dh_T = dh_n, dc_T = dc_n: ``lstm_step_backward`` at every
    step with dh' = dy_t + dh_t, then dwx = Σ xᵀ dz, dwh = Σ h_{t−1}ᵀ dz. See chapters/15-lstm.md#eq-lstm-bptt.
    """
    N, T, D, H, mask = _check_sequence("lstm", x, wx, wh, {"b": b}, 4, lengths, h0=h0, c0=c0)
    xp = get_array_module(x, h0, c0, wx, wh, b)
    affine = _gate_affine(H, x.dtype, xp)
    a = affine[0]
    # the scale a of the gate activations folded into the weights: a ⊙ z = x (wx a) + h (wh a) + b a
    xt, xw = _project(x, wx * a, None if b is None else b * a)  # (T, N, D), (T, N, 4H)
    wh_a = wh * a  # (H, 4H)
    h0_ = xp.zeros((N, H), dtype=x.dtype) if h0 is None else h0  # (N, H)
    c0_ = xp.zeros((N, H), dtype=x.dtype) if c0 is None else c0  # (N, H)
    hs, cs, tanh_cs = (xp.empty((T, N, H), dtype=x.dtype) for _ in range(3))  # (T, N, H) each
    gates = xw  # (T, N, 4H) step t's gates overwrite its input projection once za has absorbed it
    za = xp.empty((N, 4 * H), dtype=x.dtype)  # (N, 4H) scaled pre-activations of one step
    h, c = h0_, c0_
    fused = _fused_cell(xp, za, c0_)
    if fused:  # the kernel adds the input projection itself and overwrites it with the gates
        from ..kernels.recurrent_loops import lstm_cell_float32_kernel
        c = np.ascontiguousarray(c0_)
    for t in range(T):  # the recurrence: only h_{t−1} wh is left inside the loop
        xp.matmul(h, wh_a, out=za)
        if fused:
            lstm_cell_float32_kernel(za, c, affine[0], affine[1], gates[t], cs[t], tanh_cs[t], hs[t])
        else:
            za += xw[t]
            _lstm_cell(za, c, H, affine, gates[t], cs[t], tanh_cs[t], hs[t])
        if mask is not None:  # past a sequence's length the state is carried unchanged
            keep = ~mask[t][:, None]
            xp.copyto(hs[t], xp.broadcast_to(h, hs[t].shape), where=keep)
            xp.copyto(cs[t], xp.broadcast_to(c, cs[t].shape), where=keep)
        h, c = hs[t], cs[t]
    cache = LSTMCache(xt, h0_, c0_, (h0 is not None, c0 is not None, b is not None), wx, wh, hs, cs,
                      gates, tanh_cs, mask)
    return (_batch_first(hs, mask), h.copy(), c.copy()), cache


def lstm_backward(grads, cache):
    """dx, dh0, dc0, dwx, dwh, db of ``lstm`` from (dy, dh_n, dc_n); any may be None (zeros)."""
    xt, h0, c0, given, wx, wh, hs, cs, gates, tanh_cs, mask = cache
    dy, dh_n, dc_n = _upstream(grads, 3)
    xp = get_array_module(hs)
    T, N, H = hs.shape
    dys = _time_major(dy)  # (T, N, H) or None
    dh = _zeros_or_copy(xp, dh_n, (N, H), hs.dtype)  # gradient reaching h_t from the future
    dc = _zeros_or_copy(xp, dc_n, (N, H), hs.dtype)  # gradient reaching c_t from the future
    dz = xp.empty((T, N, 4, H), dtype=hs.dtype)  # pre-activation gradients, blocks i, f, g, o
    whT = xp.ascontiguousarray(wh.T)  # (4H, H)
    walk = _walk_back_fused if use_jit() and xp is np else _walk_back
    dh, dc = walk(dys, dh, dc, gates, tanh_cs, cs, c0, mask, whT, dz)
    dz = dz.reshape(T, N, 4 * H)
    dx, dwx, db = _input_grads(xt, wx, dz)
    dwh = _state_grads(hs, h0, dz)
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


def _walk_back_fused(dys, dh, dc, gates, tanh_cs, cs, c0, mask, whT, dz):
    """``_walk_back`` with each step's elementwise work in one Numba loop that computes the local
    derivatives on the fly (no (T, N, ·) temporaries); the matmul by whᵀ stays in NumPy."""
    from ..kernels.recurrent_loops import lstm_backward_step_kernel
    T, N, H = cs.shape
    dc = np.ascontiguousarray(dc, dtype=cs.dtype)  # (N, H) updated in place by the kernel
    zeros = np.zeros((N, H), dtype=cs.dtype)  # dy_t when no dy was given
    keep_all = np.ones(N, dtype=bool)  # (N,) every sequence still running
    one = cs.dtype.type(1)
    for t in range(T - 1, -1, -1):  # walk the recurrence backwards, carrying dh and dc
        keep = keep_all if mask is None else mask[t]
        dy_t = zeros if dys is None else dys[t]
        c_prev = cs[t - 1] if t > 0 else c0
        lstm_backward_step_kernel(dh, dy_t, dc, gates[t], tanh_cs[t], c_prev, keep, dz[t], one)
        dh_new = dz[t].reshape(N, 4 * H) @ whT  # (N, H)
        dh = dh_new if mask is None else np.where(keep[:, None], dh_new, dh)  # past a length: dh passes
    return dh, dc
