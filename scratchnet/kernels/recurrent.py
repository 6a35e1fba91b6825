"""The fast routes of the LSTM and the GRU: each function here takes the readable reference from
``scratchnet/functional/lstm.py`` / ``gru.py`` as ``reference=`` and either calls it or runs the
same arithmetic with the fused Numba loops of ``recurrent_loops.py``. ``jit_route`` decides
(JIT on, NumPy arrays, float32/float64); the forward cells' kernels are float32 only (their
rational tanh is a float32 approximation), the backward steps' kernels take either dtype.
Every route has a test against its reference (tests/functional/test_recurrent.py).

Legend: N batch, T time, H hidden units; gate blocks i, f, g, o (LSTM, 4H) and r, z, n (GRU, 3H).
See chapters/15-lstm.md#lstm-bptt and chapters/16-gru.md#gru-bptt.
"""
from __future__ import annotations

import numpy as np

from .._jit import jit_route

__all__ = ["lstm_cell", "lstm_forward", "lstm_walk_back", "gru_cell", "gru_forward", "gru_walk_back"]


def _fused_float32(*arrays):
    """Take the float32 forward-cell kernels? (jit_route, and every array float32; None entries ignored.)"""
    return jit_route(*arrays) and all(a.dtype == np.float32 for a in arrays if a is not None)


def _gate_affine(H, dtype):
    """Per-block scale a and shift s (4H,) with act(z) = a·tanh(a·z) + s for the LSTM's four blocks.

    σ(z) = ½ tanh(z/2) + ½ exactly, so with a = ½, s = ½ on the blocks i, f, o and a = 1, s = 0 on g
    every gate is one tanh: a single transcendental call per element in the fused cell, and
    overflow-free (no e^{−z} for very negative z). Scaling by ½ is exact in floating point.
    """
    a = np.full(4 * H, 0.5, dtype=dtype)  # (4H,)
    a[2 * H:3 * H] = 1.0
    return a, (1.0 - a).astype(dtype)  # the shift is ½ where the scale is ½ and 0 where it is 1


# -- LSTM ------------------------------------------------------------------------------------------
def lstm_cell(z, c_prev, *, reference):
    """One LSTM cell from the pre-activations z (N, 4H) and c_prev (N, H) → gates (N, 4H), c, tanh(c), h (N, H)."""
    if not _fused_float32(z, c_prev):
        return reference(z, c_prev)
    from .recurrent_loops import lstm_cell_float32_kernel
    N, H = c_prev.shape
    a, s = _gate_affine(H, np.float32)
    gates = np.zeros_like(z)  # (N, 4H) the kernel adds it (the input term of a sequence step) to z
    c_new, tanh_c, h_new = (np.empty((N, H), dtype=np.float32) for _ in range(3))  # (N, H) each
    lstm_cell_float32_kernel(np.ascontiguousarray(z), np.ascontiguousarray(c_prev), a, s, gates, c_new, tanh_c,
                             h_new)
    return gates, c_new, tanh_c, h_new


def lstm_forward(xw, h0, c0, wh, mask, *, reference):
    """The LSTM's forward time loop: xw (T, N, 4H) input projections, h0, c0 (N, H), wh (H, 4H),
    mask (T, N) or None → hs, cs, tanh_cs (T, N, H), gates (T, N, 4H).

    The fused route overwrites xw with the gates (each step's input term is read once, then its
    memory holds that step's gates): ``functional.lstm`` hands over a projection it no longer needs.
    """
    if not _fused_float32(xw, h0, c0, wh):
        return reference(xw, h0, c0, wh, mask)
    from .recurrent_loops import lstm_cell_float32_kernel
    T, N, _ = xw.shape
    H = h0.shape[1]
    a, s = _gate_affine(H, np.float32)
    hs, cs, tanh_cs = (np.empty((T, N, H), dtype=np.float32) for _ in range(3))  # (T, N, H) each
    gates = xw  # (T, N, 4H) step t's input term is overwritten by its gates
    hw = np.empty((N, 4 * H), dtype=np.float32)  # (N, 4H) one step's recurrent term h wh
    h, c = h0, np.ascontiguousarray(c0)
    for t in range(T):  # the recurrence: the GEMM in NumPy, the gate math in one fused loop
        np.matmul(h, wh, out=hw)
        lstm_cell_float32_kernel(hw, c, a, s, gates[t], cs[t], tanh_cs[t], hs[t])
        if mask is not None:  # past a sequence's length the state is carried unchanged
            keep = ~mask[t][:, None]
            np.copyto(hs[t], h, where=keep)
            np.copyto(cs[t], c, where=keep)
        h, c = hs[t], cs[t]
    return hs, cs, tanh_cs, gates


def lstm_walk_back(dys, dh, dc, gates, tanh_cs, cs, c0, mask, whT, dz, *, reference):
    """The LSTM's backward time loop: fill dz (T, N, 4, H); return dh_{−1}, dc_{−1} (N, H).

    The fused route runs each step's elementwise work as one Numba loop that computes the local
    derivatives on the fly (no (T, N, ·) temporaries); the matmul by whᵀ stays in NumPy.
    """
    if not jit_route(dys, dh, dc, gates, tanh_cs, cs, c0, whT, dz):
        return reference(dys, dh, dc, gates, tanh_cs, cs, c0, mask, whT, dz)
    from .recurrent_loops import lstm_backward_step_kernel
    T, N, H = cs.shape
    dc = np.ascontiguousarray(dc)  # (N, H) updated in place by the kernel
    dh = np.array(dh, dtype=cs.dtype, order="C")  # (N, H) a private copy, overwritten at every step
    zeros = np.zeros((N, H), dtype=cs.dtype)  # dy_t when no dy was given
    keep_all = np.ones(N, dtype=bool)  # (N,) every sequence still running
    one = cs.dtype.type(1)  # 1 in the arrays' dtype (a literal 1.0 would widen float32 to float64)
    for t in range(T - 1, -1, -1):  # walk the recurrence backwards, carrying dh and dc
        keep = keep_all if mask is None else mask[t]
        dy_t = zeros if dys is None else dys[t]
        c_prev = cs[t - 1] if t > 0 else c0
        lstm_backward_step_kernel(dh, dy_t, dc, gates[t], tanh_cs[t], c_prev, keep, dz[t], one)
        if mask is None:  # dh was read by the kernel: the new one overwrites it (no allocation per step)
            np.matmul(dz[t].reshape(N, 4 * H), whT, out=dh)  # (N, H)
        else:  # past a length: dh passes
            dh = np.where(keep[:, None], dz[t].reshape(N, 4 * H) @ whT, dh)
    return dh, dc


# -- GRU -------------------------------------------------------------------------------------------
def gru_cell(xw, hw, h, *, reference):
    """One GRU cell from xw = x wx + bx, hw = h wh + bh (N, 3H) and h (N, H) → gates (N, 3H) r, z, n, h' (N, H)."""
    if not _fused_float32(xw, hw, h):
        return reference(xw, hw, h)
    from .recurrent_loops import gru_cell_float32_kernel
    gates = np.empty_like(xw)  # (N, 3H)
    h_new = np.empty(h.shape, dtype=np.float32)  # (N, H)
    c = np.ascontiguousarray
    gru_cell_float32_kernel(c(xw), c(hw), c(h), np.float32(0.5), gates, h_new)
    return gates, h_new


def gru_forward(xw, h0, wh, bh, mask, *, reference):
    """The GRU's forward time loop: xw (T, N, 3H) input projections, h0 (N, H), wh (H, 3H), bh (3H,)
    or None, mask (T, N) or None → hs (T, N, H), gates (T, N, 3H), hns (T, N, H) = h_{t−1} wh_n + bh_n."""
    if not _fused_float32(xw, h0, wh, bh):
        return reference(xw, h0, wh, bh, mask)
    from .recurrent_loops import gru_cell_float32_kernel
    T, N, _ = xw.shape
    H = h0.shape[1]
    hs, hns = np.empty((T, N, H), dtype=np.float32), np.empty((T, N, H), dtype=np.float32)  # (T, N, H)
    gates = np.empty((T, N, 3 * H), dtype=np.float32)  # (T, N, 3H)
    hw = np.empty((N, 3 * H), dtype=np.float32)  # (N, 3H) one step's recurrent term h wh + bh
    half = np.float32(0.5)
    h = np.ascontiguousarray(h0)
    for t in range(T):  # the recurrence: the GEMM in NumPy, the gate math in one fused loop
        np.matmul(h, wh, out=hw)
        if bh is not None:
            hw += bh
        gru_cell_float32_kernel(xw[t], hw, h, half, gates[t], hs[t])
        hns[t] = hw[:, 2 * H:]
        if mask is not None:  # past a sequence's length the state is carried unchanged
            np.copyto(hs[t], h, where=~mask[t][:, None])
        h = hs[t]
    return hs, gates, hns


def gru_walk_back(dys, dh, gates, hns, hs, h0, mask, whT, dhw, dan, *, reference):
    """The GRU's backward time loop: fill dhw (T, N, 3H) and dan (T, N, H); return dh_{−1} (N, H).

    The fused route runs each step's elementwise work as one Numba loop that computes the local
    derivatives on the fly (no (T, N, ·) temporaries); the matmul by whᵀ stays in NumPy.
    """
    if not jit_route(dys, dh, gates, hns, hs, h0, whT, dhw, dan):
        return reference(dys, dh, gates, hns, hs, h0, mask, whT, dhw, dan)
    from .recurrent_loops import gru_backward_step_kernel
    T, N, H = hs.shape
    zeros = np.zeros((N, H), dtype=hs.dtype)  # dy_t when no dy was given
    keep_all = np.ones(N, dtype=bool)  # (N,) every sequence still running
    dh_direct = np.empty((N, H), dtype=hs.dtype)  # (N, H) dh_t ⊙ z, the path that skips the gates
    one = hs.dtype.type(1)  # 1 in the arrays' dtype (a literal 1.0 would widen float32 to float64)
    for t in range(T - 1, -1, -1):  # walk the recurrence backwards, carrying dh
        keep = keep_all if mask is None else mask[t]
        dy_t = zeros if dys is None else dys[t]
        h_prev = hs[t - 1] if t > 0 else h0
        gru_backward_step_kernel(dh, dy_t, gates[t], hns[t], h_prev, keep, dhw[t], dan[t], dh_direct, one)
        dh_new = dh_direct + dhw[t] @ whT  # (N, H)
        dh = dh_new if mask is None else np.where(keep[:, None], dh_new, dh)  # past a length: dh passes
    return dh
