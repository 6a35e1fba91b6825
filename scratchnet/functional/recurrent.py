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

from .._checks import check_grad
from ..backend import get_array_module
from ._seq import (
    batch_first,
    check_sequence,
    check_step,
    input_grads,
    length_mask,
    project_inputs,
    state_grads,
    time_major,
    upstream_grads,
    zeros_or_copy,
)

__all__ = ["rnn_step", "rnn_step_backward", "rnn", "rnn_backward",
           "reverse_padded", "reverse_padded_backward", "length_mask"]

_NONLINEARITIES = ("tanh", "relu")


# -- Elman RNN -------------------------------------------------------------------------------------
def _activate(a, nonlinearity):
    xp = get_array_module(a)
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"rnn: nonlinearity must be one of {_NONLINEARITIES}, got {nonlinearity!r}")
    return xp.tanh(a) if nonlinearity == "tanh" else xp.maximum(a, 0)


def _activation_grad(h, nonlinearity):
    """f'(a) written with the output h = f(a): 1 − h² for tanh, [h > 0] for relu."""
    return 1.0 - h * h if nonlinearity == "tanh" else (h > 0).astype(h.dtype)


class RNNStepCache(NamedTuple):
    x: object  # (N, D) the step's input
    h_prev: object  # (N, H) previous state (zeros when none was given)
    has_h: bool
    wx: object
    wh: object
    has_b: bool
    h_new: object  # (N, H) the new state: f' is written with it, and it fixes dh_new's shape and dtype
    nonlinearity: str


def rnn_step(x, h, wx, wh, b, *, nonlinearity="tanh"):
    """One Elman step h' = f(x wx + h wh + b).

    x (N, D), h (N, H) or None (zeros), wx (D, H), wh (H, H), b (H,) or None → h' (N, H).
    Backward: da = dh' ⊙ f'(a); dx = da wxᵀ, dh = da whᵀ, dwx = xᵀ da, dwh = hᵀ da, db = Σ da.
    See chapters/14-rnn-bptt.md#eq-rnn-step-backward.
    """
    H = check_step("rnn_step", x, wx, wh, {"b": b}, 1, h=h)
    xp = get_array_module(x, h, wx, wh, b)
    h_prev = xp.zeros((x.shape[0], H), dtype=x.dtype) if h is None else h  # (N, H)
    a = x @ wx + h_prev @ wh  # (N, H) pre-activation
    if b is not None:
        a += b
    h_new = _activate(a, nonlinearity)  # (N, H)
    return h_new, RNNStepCache(x, h_prev, h is not None, wx, wh, b is not None, h_new, nonlinearity)


def rnn_step_backward(dh_new, cache):
    """dx, dh, dwx, dwh, db of ``rnn_step`` (dh is None when h was None, db when b was); dh_new None = zeros."""
    x, h_prev, has_h, wx, wh, has_b, h_new, nonlinearity = cache
    (dh_new,) = upstream_grads("rnn_step_backward", dh_new, {"dh_new": h_new.shape}, h_new.dtype)
    xp = get_array_module(h_new)
    dh_new = xp.zeros_like(h_new) if dh_new is None else dh_new  # (N, H)
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
    N, T, D, H, mask = check_sequence("rnn", x, wx, wh, {"b": b}, 1, lengths, h0=h0)
    if nonlinearity not in _NONLINEARITIES:
        raise ValueError(f"rnn: nonlinearity must be one of {_NONLINEARITIES}, got {nonlinearity!r}")
    xp = get_array_module(x, h0, wx, wh, b)
    xt, xw = project_inputs(x, wx, b)  # (T, N, D), (T, N, H)
    h0_ = xp.zeros((N, H), dtype=x.dtype) if h0 is None else h0  # (N, H)
    hs = xp.empty((T, N, H), dtype=x.dtype)  # states after each step
    h = h0_
    for t in range(T):  # the recurrence: only h_{t−1} wh is left inside the loop
        h_new = _activate(xw[t] + h @ wh, nonlinearity)  # (N, H)
        h = h_new if mask is None else xp.where(mask[t][:, None], h_new, h)
        hs[t] = h
    cache = RNNCache(xt, h0_, h0 is not None, wx, wh, b is not None, hs, mask, nonlinearity)
    return (batch_first(hs, mask), h.copy()), cache


def rnn_backward(grads, cache):
    """dx, dh0, dwx, dwh, db of ``rnn`` from (dy, dh_n); either may be None (zeros)."""
    xt, h0, has_h0, wx, wh, has_b, hs, mask, nonlinearity = cache
    T, N, H = hs.shape
    dy, dh_n = upstream_grads("rnn_backward", grads, {"dy": (N, T, H), "dh_n": (N, H)}, hs.dtype)
    xp = get_array_module(hs)
    dys = time_major(dy)  # (T, N, H) or None
    dh = zeros_or_copy(xp, dh_n, (N, H), hs.dtype)  # gradient reaching h_t from the future
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
    dx, dwx, db = input_grads(xt, wx, da)
    dwh = state_grads(hs, h0, da)
    return dx, dh if has_h0 else None, dwx, dwh, db if has_b else None


# -- reversing padded sequences (the backward direction of a bidirectional layer) -------------------
def reverse_padded(x, lengths=None):
    """Reverse each sequence's valid part in time; positions past its length stay where they are.

    x (N, T, ...), lengths (N,) or None → y (N, T, ...). A permutation of the time axis that is its
    own inverse, so backward applies it again: dx = reverse_padded(dy) (dy (N, T, ...), any trailing
    shape: a bidirectional layer also applies it to its outputs).
    """
    xp = get_array_module(x)
    N, T = x.shape[:2]
    mask = length_mask(lengths, N, T, xp, op="reverse_padded")
    if mask is None:
        return xp.ascontiguousarray(x[:, ::-1]), (None, (N, T))
    L = xp.asarray(lengths if hasattr(lengths, "dtype") else np.asarray(lengths))[:, None]  # (N, 1)
    t = xp.arange(T)[None, :]  # (1, T)
    idx = xp.where(t < L, L - 1 - t, t)  # (N, T) source position of each output position
    return _gather_time(x, idx), (idx, (N, T))


def reverse_padded_backward(dy, cache):
    """dx of ``reverse_padded`` (the same permutation)."""
    idx, (N, T) = cache
    check_grad("reverse_padded_backward", "dy", dy, (N, T) + tuple(getattr(dy, "shape", ()))[2:])
    xp = get_array_module(dy)
    return xp.ascontiguousarray(dy[:, ::-1]) if idx is None else _gather_time(dy, idx)


def _gather_time(x, idx):
    xp = get_array_module(x)
    idx = idx.reshape(idx.shape + (1,) * (x.ndim - 2))
    return xp.take_along_axis(x, idx, axis=1)  # (N, T, ...)


