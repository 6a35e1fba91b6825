"""Helpers shared by the recurrent family (``recurrent.py``: the Elman RNN, ``lstm.py``, ``gru.py``):
input checks, the length mask, the one-matmul input projection and its gradients, the
batch-first / time-major transposes, and the check of a backward's upstream gradients.

Legend: N batch, T time, D input features, H hidden units, G gates (RNN 1, LSTM 4, GRU 3).
Sequences are batch-first (N, T, D) outside; inside, the loops run time-major (T, N, ·) so each
step reads one contiguous slab. See chapters/14-rnn-bptt.md.
"""
from __future__ import annotations

import numpy as np

from .._checks import check_float, check_grad, check_int, check_ndim, check_same_dtype
from ..backend import get_array_module

__all__ = ["length_mask", "check_sequence", "check_step", "project_inputs", "input_grads", "state_grads",
           "batch_first", "time_major", "upstream_grads", "zeros_or_copy"]


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
    """Validate each given state (N, H); None entries (zeros) are allowed."""
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


def check_sequence(op, x, wx, wh, biases, G, lengths, **states):
    """Validate a sequence op's inputs; return N, T, D, H and the (T, N) mask (or None)."""
    check_float(op, "x", x)
    check_ndim(op, "x", x, 3)
    check_same_dtype(op, x=x, wx=wx, wh=wh, **biases, **states)
    N, T, D = x.shape
    H = _check_weights(op, D, wx, wh, biases, G)
    _check_states(op, N, H, states)
    return N, T, D, H, length_mask(lengths, N, T, get_array_module(x), op=op)


def check_step(op, x, wx, wh, biases, G, **states):
    """Validate a single step's inputs x (N, D) and states (N, H); return H."""
    check_float(op, "x", x)
    check_ndim(op, "x", x, 2)
    check_same_dtype(op, x=x, wx=wx, wh=wh, **biases, **states)
    H = _check_weights(op, x.shape[1], wx, wh, biases, G)
    _check_states(op, x.shape[0], H, states)
    return H


def project_inputs(x, wx, b):
    """The input projection of every time step in ONE matmul: (T, N, D) @ (D, G·H) → (T, N, G·H).

    Returns the time-major input xt (kept for dwx) and xw = x wx + b, time-major.
    """
    xp = get_array_module(x)
    N, T, D = x.shape
    xt = xp.ascontiguousarray(x.transpose(1, 0, 2))  # (T, N, D) time-major copy
    xw = (xt.reshape(T * N, D) @ wx).reshape(T, N, wx.shape[1])  # (T, N, G·H)
    if b is not None:
        xw += b
    return xt, xw


def input_grads(xt, wx, dxw):
    """dx (batch-first), dwx and db from the pre-activation gradients dxw (T, N, G·H) of ``project_inputs``."""
    xp = get_array_module(dxw)
    T, N, D = xt.shape
    GH = dxw.shape[2]
    dxw2 = dxw.reshape(T * N, GH)
    dx = xp.ascontiguousarray((dxw2 @ wx.T).reshape(T, N, D).transpose(1, 0, 2))  # (N, T, D)
    dwx = xt.reshape(T * N, D).T @ dxw2  # (D, G·H)
    return dx, dwx, dxw2.sum(axis=0)


def state_grads(hs, h0, dhw):
    """dwh = Σ_t h_{t−1}ᵀ dhw_t as ONE matmul over the stacked previous states."""
    T, N, H = hs.shape
    GH = dhw.shape[2]
    dwh = h0.T @ dhw[0]  # (H, G·H): the first step's previous state is h0
    if T > 1:
        dwh += hs[:-1].reshape((T - 1) * N, H).T @ dhw[1:].reshape((T - 1) * N, GH)
    return dwh


def batch_first(hs, mask):
    """Outputs y (N, T, H) from the time-major states, zero past each sequence's length."""
    xp = get_array_module(hs)
    if mask is not None:
        hs = hs * mask[:, :, None]
    return xp.ascontiguousarray(hs.transpose(1, 0, 2))  # (N, T, H)


def time_major(dy):
    """Upstream output gradient (N, T, H) → time-major (T, N, H), or None."""
    if dy is None:
        return None
    xp = get_array_module(dy)
    return xp.ascontiguousarray(dy.transpose(1, 0, 2))  # (T, N, H)


def upstream_grads(op, grads, expected, dtype):
    """A backward's upstream gradients, each checked against its forward output, BEFORE any work.

    ``grads`` is a tuple (or, for a one-output forward, a single array); missing trailing entries and
    None entries mean zeros and stay None. ``expected`` maps each gradient's name to the shape its
    forward output had, in order; ``dtype`` is the forward's dtype. A wrong shape is a ValueError
    and a wrong dtype a TypeError naming ``op``, never an out-of-bounds write in a compiled loop.
    """
    grads = tuple(grads) if isinstance(grads, (tuple, list)) else (grads,)
    if len(grads) > len(expected):
        raise ValueError(f"{op}: expected at most {len(expected)} upstream gradients ({', '.join(expected)}), "
                         f"got {len(grads)}")
    grads = grads + (None,) * (len(expected) - len(grads))
    for (name, shape), g in zip(expected.items(), grads):
        if g is not None:
            check_grad(op, name, g, shape, dtype)
    return grads


def zeros_or_copy(xp, a, shape, dtype):
    """A fresh (writable) copy of ``a``, or zeros of ``shape`` when ``a`` is None."""
    return xp.zeros(shape, dtype=dtype) if a is None else a.copy()
