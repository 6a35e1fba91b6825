"""Numba kernels of the LSTM's and GRU's elementwise arithmetic, one fused loop per time step: the
cells' gates for float32 in the forward pass, and the step of the backward pass (any float dtype),
which computes the local derivatives on the fly instead of keeping (T, N, ·) arrays of them.

Legend: N batch, H hidden units; gate blocks i, f, g, o (LSTM, 4H) and r, z, n (GRU, 3H). The
sigmoids are written σ(z) = ½ tanh(z/2) + ½ (exact, overflow-free, one transcendental call per
element), with ``tanh_float32``, a branch-free rational tanh that vectorises. The recurrence's GEMM
stays in NumPy; ``scratchnet/kernels/recurrent.py`` calls these loops, and the readable reference
of the same arithmetic is ``scratchnet/functional/lstm.py`` / ``gru.py`` (also the CuPy path).
See chapters/15-lstm.md#eq-lstm (forward), #eq-lstm-backward and chapters/16-gru.md#eq-gru-backward.
"""
from __future__ import annotations

from .._jit import njit
from .activation_loops import tanh_float32

__all__ = ["lstm_cell_float32_kernel", "lstm_backward_step_kernel", "gru_cell_float32_kernel",
           "gru_backward_step_kernel"]


@njit(error_model="numpy")
def lstm_cell_float32_kernel(hw, c, a, s, gates, c_new, tanh_c, h_new):
    """gates = a ⊙ tanh(a ⊙ (hw + gates)) + s; c' = f ⊙ c + i ⊙ g; tanh(c'); h' = o ⊙ tanh(c').

    hw (N, 4H) the recurrent term h wh; gates (N, 4H) holds the input term x wx + b on entry and the
    gates i, f, g, o on exit (one array read and written in place: the step's input projection is
    not needed again); c, c_new, tanh_c, h_new (N, H); a, s (4H,) the per-block scale and shift
    (½, ½ for the sigmoid blocks i, f, o; 1, 0 for the tanh block g); all float32.
    """
    N, H = c.shape
    for n in range(N):  # one sample's row at a time
        for k in range(4 * H):  # the four gate blocks at once (vectorised)
            gates[n, k] = a[k] * tanh_float32(a[k] * (hw[n, k] + gates[n, k])) + s[k]
        for j in range(H):  # the additive cell update and the output gate
            cn = gates[n, H + j] * c[n, j] + gates[n, j] * gates[n, 2 * H + j]  # f c + i g
            c_new[n, j] = cn
            t = tanh_float32(cn)
            tanh_c[n, j] = t
            h_new[n, j] = gates[n, 3 * H + j] * t


@njit
def lstm_backward_step_kernel(dh, dy, dc, gates, tanh_c, c_prev, keep, dz, one):
    """One step of the LSTM backward: dh_t = dh + dy_t, dc_t = dc + dh_t o (1 − tanh² c_t),
    dz = [dc_t g i(1−i), dc_t c_{t−1} f(1−f), dc_t i(1−g²), dh_t tanh c_t o(1−o)], dc ← dc_t ⊙ f.

    dh, dy, dc, tanh_c, c_prev (N, H); gates (N, 4H) i, f, g, o; keep (N,) bool; dz (N, 4, H)
    written in full. A row with keep False (past its length) gets dz = 0 and keeps its dc. ``one`` is
    1 in the arrays' dtype (a literal 1.0 would widen float32 arithmetic to float64).
    """
    N, H = dh.shape
    for n in range(N):  # every sample
        if not keep[n]:
            for k in range(4):  # no gradient to a step past the sequence's length
                for j in range(H):
                    dz[n, k, j] = 0.0
            continue
        for j in range(H):  # every unit (vectorised)
            i = gates[n, j]
            f = gates[n, H + j]
            g = gates[n, 2 * H + j]
            o = gates[n, 3 * H + j]
            tc = tanh_c[n, j]
            dh_t = dh[n, j] + dy[n, j]
            dc_t = dc[n, j] + dh_t * o * (one - tc * tc)  # both paths into c_t
            dz[n, 0, j] = dc_t * g * i * (one - i)
            dz[n, 1, j] = dc_t * c_prev[n, j] * f * (one - f)
            dz[n, 2, j] = dc_t * i * (one - g * g)
            dz[n, 3, j] = dh_t * tc * o * (one - o)
            dc[n, j] = dc_t * f  # the carousel


@njit(error_model="numpy")
def gru_cell_float32_kernel(xw, hw, h, half, gates, h_new):
    """r, z = σ(xw + hw)_{r,z}; n = tanh(xw_n + r ⊙ hw_n); h' = n + z ⊙ (h − n), σ(v) = ½ tanh(v/2) + ½.

    xw, hw, gates (N, 3H); h, h_new (N, H); half = 0.5 as float32; all float32, outputs written in full.
    """
    N, H = h.shape
    for n in range(N):  # one sample's row at a time
        for k in range(2 * H):  # reset and update gates (vectorised)
            gates[n, k] = half * tanh_float32(half * (xw[n, k] + hw[n, k])) + half
        for j in range(H):  # the candidate and the interpolation
            r = gates[n, j]
            z = gates[n, H + j]
            cand = tanh_float32(xw[n, 2 * H + j] + r * hw[n, 2 * H + j])
            gates[n, 2 * H + j] = cand
            h_new[n, j] = cand + z * (h[n, j] - cand)


@njit
def gru_backward_step_kernel(dh, dy, gates, hn, h_prev, keep, dhw, dan, dh_direct, one):
    """One step of the GRU backward (PyTorch's form): dh_t = dh + dy_t; da_n = dh_t (1 − z)(1 − n²);
    dhw = [da_n hn r(1−r), dh_t (h_{t−1} − n) z(1−z), da_n r]; dh_direct = dh_t z.

    dh, dy, hn, h_prev, dan, dh_direct (N, H); gates, dhw (N, 3H); keep (N,) bool. Outputs written
    in full; a row with keep False (past its length) gets zeros. ``one`` is 1 in the arrays' dtype.
    """
    N, H = dh.shape
    for n in range(N):  # every sample
        if not keep[n]:
            for j in range(H):  # no gradient to a step past the sequence's length
                dhw[n, j] = 0.0
                dhw[n, H + j] = 0.0
                dhw[n, 2 * H + j] = 0.0
                dan[n, j] = 0.0
                dh_direct[n, j] = 0.0
            continue
        for j in range(H):  # every unit (vectorised)
            r = gates[n, j]
            z = gates[n, H + j]
            c = gates[n, 2 * H + j]  # the candidate n
            dh_t = dh[n, j] + dy[n, j]
            a_n = dh_t * (one - z) * (one - c * c)  # through n = tanh(a_n)
            dan[n, j] = a_n
            dhw[n, j] = a_n * hn[n, j] * r * (one - r)  # da_r
            dhw[n, H + j] = dh_t * (h_prev[n, j] - c) * z * (one - z)  # da_z
            dhw[n, 2 * H + j] = a_n * r  # h wh_n + bh_n enters through r
            dh_direct[n, j] = dh_t * z
