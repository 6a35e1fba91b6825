"""Recurrent networks: the Elman RNN (this file), the LSTM (``lstm.py``) and the GRU (``gru.py``).

Legend: N batch, T time, D input features, H hidden units, G gates (RNN 1, LSTM 4, GRU 3).
Sequences are batch-first (N, T, D). Inside, the loops run time-major (T, N, ·) so each step
reads one contiguous slab. ``lengths`` (N,) integers: positions t ≥ lengths[n] give zero output and
zero gradient, and the state stops changing there, so the final state is the state at each
sequence's own length. An initial state given as None means zeros, and its gradient is None
(like ``linear``'s db without a bias): backward always returns the same number of gradients.
See chapters/14-rnn-bptt.md.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .._checks import check_float, check_int, check_ndim, check_same_dtype
from ..backend import get_array_module

__all__ = ["rnn_step", "rnn_step_backward", "rnn", "rnn_backward",
           "reverse_padded", "reverse_padded_backward", "length_mask"]

_NONLINEARITIES = ("tanh", "relu")


# -- shared helpers (also used by lstm.py and gru.py) ---------------------------------------------
def _sigmoid(x):
    """σ(x) = ½ tanh(x/2) + ½: the same function, overflow-free, one transcendental call."""
    xp = get_array_module(x)
    y = xp.tanh(x * 0.5)  # (...)
    y *= 0.5
    y += 0.5
    return y


def _check_weights(op, D, wx, wh, biases, G):
    """Validate wx (D, G·H), wh (H, G·H) and each bias (G·H,); return H."""
    check_ndim(op, "wx", wx, 2)
    check_ndim(op, "wh", wh, 2)
    H = wh.shape[0]
    if wh.shape != (H, G * H):
        raise ValueError(f"{op}: expected wh of shape (H, {G}·H), got {tuple(wh.shape)}")
    if wx.shape != (D, G * H):
        raise ValueError(f"{op}: expected wx of shape (D, {G}·H) = ({D}, {G * H}) for inputs with D={D} "
                         f"and H={H}, got {tuple(wx.shape)}")
    for name, b in biases.items():
        if b is not None and b.shape != (G * H,):
            raise ValueError(f"{op}: expected {name} of shape ({G * H},), got {tuple(b.shape)}")
    return H


def _check_states(op, N, H, states):
    for name, s in states.items():
        if s is not None and s.shape != (N, H):
            raise ValueError(f"{op}: expected {name} of shape (N, H) = ({N}, {H}), got {tuple(s.shape)}")


def length_mask(lengths, N, T, xp=np, *, op="length_mask"):
    """Time-major validity mask (T, N): m[t, n] = t < lengths[n]; None when every sequence is full."""
    if lengths is None:
        return None
    lengths = lengths if hasattr(lengths, "dtype") else np.asarray(lengths)
    check_int(op, "lengths", lengths)
    if lengths.shape != (N,):
        raise ValueError(f"{op}: expected lengths of shape (N,) = ({N},), got {tuple(lengths.shape)}")
    lo, hi = (int(lengths.min()), int(lengths.max())) if N else (T, T)
    if lo < 0 or hi > T:
        raise ValueError(f"{op}: lengths must lie in [0, T] = [0, {T}], got values in [{lo}, {hi}]")
    if lo == T:
        return None  # every sequence is full: no masking needed
    return xp.arange(T)[:, None] < xp.asarray(lengths)[None, :]  # (T, N) bool


def _check_sequence(op, x, wx, wh, biases, G, lengths, **states):
    """Validate a sequence op's inputs; return N, T, D, H and the (T, N) mask (or None)."""
    check_float(op, "x", x)
    check_ndim(op, "x", x, 3)
    check_same_dtype(op, x=x, wx=wx, wh=wh, **biases, **states)
    N, T, D = x.shape
    H = _check_weights(op, D, wx, wh, biases, G)
    _check_states(op, N, H, states)
    return N, T, D, H, length_mask(lengths, N, T, get_array_module(x), op=op)


def _check_step(op, x, wx, wh, biases, G, **states):
    """Validate a single step's inputs x (N, D) and states (N, H); return H."""
    check_float(op, "x", x)
    check_ndim(op, "x", x, 2)
    check_same_dtype(op, x=x, wx=wx, wh=wh, **biases, **states)
    H = _check_weights(op, x.shape[1], wx, wh, biases, G)
    _check_states(op, x.shape[0], H, states)
    return H


def _project(x, wx, b):
    """The input projection of every time step in ONE matmul: (T, N, D) @ (D, G·H) → (T, N, G·H)."""
    xp = get_array_module(x)
    N, T, D = x.shape
    xt = xp.ascontiguousarray(x.transpose(1, 0, 2))  # (T, N, D) time-major copy
    xw = (xt.reshape(T * N, D) @ wx).reshape(T, N, wx.shape[1])  # (T, N, G·H)
    if b is not None:
        xw += b
    return xt, xw


def _input_grads(xt, wx, dxw):
    """dx (batch-first), dwx and db from the pre-activation gradients dxw (T, N, G·H) of ``_project``."""
    xp = get_array_module(dxw)
    T, N, D = xt.shape
    GH = dxw.shape[2]
    dxw2 = dxw.reshape(T * N, GH)
    dx = xp.ascontiguousarray((dxw2 @ wx.T).reshape(T, N, D).transpose(1, 0, 2))  # (N, T, D)
    dwx = xt.reshape(T * N, D).T @ dxw2  # (D, G·H)
    return dx, dwx, dxw2.sum(axis=0)


def _state_grads(hs, h0, dhw):
    """dwh = Σ_t h_{t−1}ᵀ dhw_t as ONE matmul over the stacked previous states."""
    T, N, H = hs.shape
    GH = dhw.shape[2]
    dwh = h0.T @ dhw[0]  # (H, G·H): the first step's previous state is h0
    if T > 1:
        dwh += hs[:-1].reshape((T - 1) * N, H).T @ dhw[1:].reshape((T - 1) * N, GH)
    return dwh


def _batch_first(hs, mask):
    """Outputs y (N, T, H) from the time-major states, zero past each sequence's length."""
    xp = get_array_module(hs)
    if mask is not None:
        hs = hs * mask[:, :, None]
    return xp.ascontiguousarray(hs.transpose(1, 0, 2))  # (N, T, H)


def _time_major(dy):
    """Upstream output gradient (N, T, H) → time-major (T, N, H), or None."""
    xp = get_array_module(dy)
    return None if dy is None else xp.ascontiguousarray(dy.transpose(1, 0, 2))


def _upstream(grads, k):
    """Split a sequence backward's tuple of upstream gradients (None = zeros) into k entries."""
    grads = tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
    return grads + (None,) * (k - len(grads))


def _zeros_or_copy(xp, a, shape, dtype):
    return xp.zeros(shape, dtype=dtype) if a is None else a.copy()


# -- Elman RNN -------------------------------------------------------------------------------------
def _activate(a, nonlinearity):
    xp = get_array_module(a)
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"rnn: nonlinearity must be one of {_NONLINEARITIES}, got {nonlinearity!r}")
    return xp.tanh(a) if nonlinearity == "tanh" else xp.maximum(a, 0)


def _activation_grad(h, nonlinearity):
    """f'(a) written with the output h = f(a): 1 − h² for tanh, [h > 0] for relu."""
    return 1.0 - h * h if nonlinearity == "tanh" else (h > 0).astype(h.dtype)


def rnn_step(x, h, wx, wh, b, *, nonlinearity="tanh"):
    """One Elman step h' = f(x wx + h wh + b).

    x (N, D), h (N, H) or None (zeros), wx (D, H), wh (H, H), b (H,) or None → h' (N, H).
    Backward: da = dh' ⊙ f'(a); dx = da wxᵀ, dh = da whᵀ, dwx = xᵀ da, dwh = hᵀ da, db = Σ da.
    See chapters/14-rnn-bptt.md#eq-rnn-step-backward.
    """
    H = _check_step("rnn_step", x, wx, wh, {"b": b}, 1, h=h)
    xp = get_array_module(x, h, wx, wh, b)
    h_prev = xp.zeros((x.shape[0], H), dtype=x.dtype) if h is None else h  # (N, H)
    a = x @ wx + h_prev @ wh  # (N, H) pre-activation
    if b is not None:
        a += b
    h_new = _activate(a, nonlinearity)  # (N, H)
    return h_new, (x, h_prev, h is not None, wx, wh, b is not None, h_new, nonlinearity)


def rnn_step_backward(dh_new, cache):
    """dx, dh, dwx, dwh, db of ``rnn_step`` (dh is None when h was None, db when b was)."""
    x, h_prev, has_h, wx, wh, has_b, h_new, nonlinearity = cache
    da = dh_new * _activation_grad(h_new, nonlinearity)  # (N, H)
    dx = da @ wx.T  # (N, D)
    dh = da @ wh.T if has_h else None  # (N, H)
    return dx, dh, x.T @ da, h_prev.T @ da, da.sum(axis=0) if has_b else None


class RNNCache(NamedTuple):
    xt: object  # (T, N, D) time-major input
    h0: object  # (N, H) initial state (zeros when none was given)
    has_h0: bool
    wx: object
    wh: object
    has_b: bool
    hs: object  # (T, N, H) states after each step (held constant past a sequence's length)
    mask: object  # (T, N) bool or None
    nonlinearity: str


def rnn(x, h0, wx, wh, b, *, nonlinearity="tanh", lengths=None):
    """Elman RNN over a sequence: h_t = f(x_t wx + h_{t−1} wh + b), y_t = h_t.

    x (N, T, D), h0 (N, H) or None, wx (D, H), wh (H, H), b (H,) or None → (y (N, T, H), h_n (N, H)).
    Backward (BPTT), from t = T−1 down to 0 with dh_T = dh_n:
        da_t = (dy_t + dh_t) ⊙ f'(a_t),  dh_{t−1} = da_t whᵀ,  dwh = Σ_t h_{t−1}ᵀ da_t.
    See chapters/14-rnn-bptt.md#eq-bptt.
    """
    N, T, D, H, mask = _check_sequence("rnn", x, wx, wh, {"b": b}, 1, lengths, h0=h0)
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"rnn: nonlinearity must be one of {_NONLINEARITIES}, got {nonlinearity!r}")
    xp = get_array_module(x, h0, wx, wh, b)
    xt, xw = _project(x, wx, b)  # (T, N, D), (T, N, H)
    h0_ = xp.zeros((N, H), dtype=x.dtype) if h0 is None else h0  # (N, H)
    hs = xp.empty((T, N, H), dtype=x.dtype)  # states after each step
    h = h0_
    for t in range(T):  # the recurrence: only h_{t−1} wh is left inside the loop
        h_new = _activate(xw[t] + h @ wh, nonlinearity)  # (N, H)
        h = h_new if mask is None else xp.where(mask[t][:, None], h_new, h)
        hs[t] = h
    cache = RNNCache(xt, h0_, h0 is not None, wx, wh, b is not None, hs, mask, nonlinearity)
    return (_batch_first(hs, mask), h.copy()), cache


def rnn_backward(grads, cache):
    """dx, dh0, dwx, dwh, db of ``rnn`` from (dy, dh_n); either may be None (zeros)."""
    xt, h0, has_h0, wx, wh, has_b, hs, mask, nonlinearity = cache
    dy, dh_n = _upstream(grads, 2)
    xp = get_array_module(hs)
    T, N, H = hs.shape
    dys = _time_major(dy)  # (T, N, H) or None
    dh = _zeros_or_copy(xp, dh_n, (N, H), hs.dtype)  # gradient reaching h_t from the future
    da = xp.empty_like(hs)  # (T, N, H) pre-activation gradients
    for t in range(T - 1, -1, -1):  # walk the recurrence backwards, carrying dh
        dh_t = dh if dys is None else dh + dys[t]
        da[t] = dh_t * _activation_grad(hs[t], nonlinearity)
        if mask is None:
            dh = da[t] @ wh.T
        else:  # past a sequence's length: no gradient to the step, dh passes through unchanged
            m = mask[t][:, None]
            da[t] *= m
            dh = xp.where(m, da[t] @ wh.T, dh)
    dx, dwx, db = _input_grads(xt, wx, da)
    dwh = _state_grads(hs, h0, da)
    return dx, dh if has_h0 else None, dwx, dwh, db if has_b else None


# -- reversing padded sequences (the backward direction of a bidirectional layer) -------------------
def reverse_padded(x, lengths=None):
    """Reverse each sequence's valid part in time; positions past its length stay where they are.

    x (N, T, ...), lengths (N,) or None → y (N, T, ...). A permutation that is its own inverse,
    so backward applies it again: dx = reverse_padded(dy).
    """
    xp = get_array_module(x)
    N, T = x.shape[:2]
    if lengths is None:
        return xp.ascontiguousarray(x[:, ::-1]), (None,)
    mask = length_mask(lengths, N, T, xp, op="reverse_padded")
    if mask is None:
        return xp.ascontiguousarray(x[:, ::-1]), (None,)
    L = xp.asarray(lengths if hasattr(lengths, "dtype") else np.asarray(lengths))[:, None]  # (N, 1)
    t = xp.arange(T)[None, :]  # (1, T)
    idx = xp.where(t < L, L - 1 - t, t)  # (N, T) source position of each output position
    return _gather_time(x, idx), (idx,)


def reverse_padded_backward(dy, cache):
    """dx of ``reverse_padded`` (the same permutation)."""
    (idx,) = cache
    xp = get_array_module(dy)
    return xp.ascontiguousarray(dy[:, ::-1]) if idx is None else _gather_time(dy, idx)


def _gather_time(x, idx):
    xp = get_array_module(x)
    idx = idx.reshape(idx.shape + (1,) * (x.ndim - 2))
    return xp.take_along_axis(x, idx, axis=1)  # (N, T, ...)


from .lstm import *  # noqa: E402,F401,F403
from .lstm import __all__ as _lstm_all  # noqa: E402
from .gru import *  # noqa: E402,F401,F403
from .gru import __all__ as _gru_all  # noqa: E402

__all__ += _lstm_all + _gru_all
