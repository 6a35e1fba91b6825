"""The int8 inference path: int8 × int8 → int32 products (a GEMM for linear layers, a convolution),
and requantisation of the int32 sums to the next layer's int8 codes by a fixed-point multiplier.

Legend: N batch, D / M input / output features, C channels, G groups, KH, KW kernel, OH, OW output
size; z_x, z_y zero points of the input and output; s_x, s_w, s_y their scales. A layer computes
acc = bias_q + Σ (x_q − z_x)·w_q in int32 (weights symmetric: z_w = 0), and the next codes
y_q = clip(round(acc · M) + z_y) with M = s_x·s_w/s_y, M ≈ m₀·2^(−shift) (``quantize_multiplier``).

Routes (tests/kernels/test_int8.py compares each pair bit for bit):

- qlinear_acc, qconv2d_acc, requantize: the Numba kernels of ``int8_loops.py`` when ``jit_route``
  allows (NumPy arrays, JIT on), parallel over samples from PARALLEL_MIN_WORK (2^26) multiply-adds;
  else the vectorised references below (CuPy, ``SCRATCHNET_JIT=0``), which compute in int64.

Timings against the float32 path are in ``benchmarks/bench_int8.py``. See chapters/34-quantization.md#int8-gemm.
"""
from __future__ import annotations

import numpy as np

from .._jit import jit_route
from ..backend import get_array_module
from . import int8_loops

__all__ = ["quantize_multiplier", "qlinear_acc", "qconv2d_acc", "requantize", "PARALLEL_MIN_WORK", "MAX_TERMS"]

PARALLEL_MIN_WORK = 1 << 26  # multiply-adds below which the serial kernels win (thread wake-up costs more)
MAX_TERMS = (2 ** 31 - 1) // (255 * 127)  # terms per int32 sum that can never overflow: 66,311


# start-quantize-multiplier
def quantize_multiplier(M):
    """M > 0 (a float or (C,)) → (m0, shift) int64 with M ≈ m0 · 2^(−shift), m0 in [2^30, 2^31).

    frexp writes M = f · 2^e with f in [½, 1); m0 = round(f · 2^31) keeps 31 bits of f, and
    shift = 31 − e. The relative error is below 2^(−31). Multipliers too small to matter (shift > 62)
    become m0 = 0, shift = 1 (an output of exactly z_y).
    """
    M = np.atleast_1d(np.asarray(M, dtype=np.float64))
    if np.any(M <= 0) or not np.all(np.isfinite(M)):
        raise ValueError(f"quantize_multiplier: multipliers must be positive and finite, got {M}")
    f, e = np.frexp(M)  # M = f · 2^e, f in [0.5, 1)
    m0 = np.round(f * 2.0 ** 31).astype(np.int64)
    full = m0 == 2 ** 31  # f rounded up to 1: renormalise
    m0[full] //= 2
    e = e + full
    shift = (31 - e).astype(np.int64)
    if np.any(shift < 1):
        raise ValueError(f"quantize_multiplier: multiplier {M.max():.3g} ≥ 2^30 is out of range")
    tiny = shift > 62
    m0[tiny], shift[tiny] = 0, 1
    return m0, shift
# end-quantize-multiplier


def _check_int8(op, name, a):
    if not hasattr(a, "dtype") or a.dtype != np.int8:
        raise TypeError(f"{op}: expected {name} to be an int8 array, got {getattr(a, 'dtype', type(a).__name__)}")


def _check_bias(op, bias, n):
    if bias is not None and (bias.dtype != np.int32 or tuple(bias.shape) != (n,)):
        raise ValueError(f"{op}: expected bias to be int32 of shape ({n},), got {bias.dtype} {tuple(bias.shape)}")


def _bias(bias, n):
    return np.zeros(n, np.int32) if bias is None else bias


# -- the vectorised references (also the CuPy path): int64, then int32 ------------------------------------
# start-qgemm-ref
def _qgemm_ref(x, zx, w, bias):
    """acc = bias + (x − z_x) w in int64 (exact), returned as int32. x (N, D), w (D, M) int8 → (N, M)."""
    acc = (x.astype(np.int64) - zx) @ w.astype(np.int64)  # (N, M)
    return (acc + bias).astype(np.int32)
# end-qgemm-ref


def _qconv2d_ref(xc, w, bias, geom, groups, out_hw):
    """The int8 convolution by unfolding: windows of the centred padded input, one int64 product per group."""
    xp = get_array_module(xc)
    sh, sw, dh, dw = geom
    N, C_in = xc.shape[:2]
    C_out, Cg, KH, KW = w.shape
    OH, OW = out_hw
    win = np.lib.stride_tricks.sliding_window_view(xc, (dh * (KH - 1) + 1, dw * (KW - 1) + 1), axis=(2, 3))
    win = win[:, :, :OH * sh:sh, :OW * sw:sw, ::dh, ::dw]  # (N, C_in, OH, OW, KH, KW)
    cols = win.reshape(N, groups, Cg, OH * OW, KH * KW).transpose(1, 2, 4, 0, 3)  # (G, Cg, K, N, L)
    cols = cols.reshape(groups, Cg * KH * KW, N * OH * OW).astype(np.int64)
    wg = w.reshape(groups, C_out // groups, Cg * KH * KW).astype(np.int64)  # (G, C_out/G, Cg·K)
    acc = (wg @ cols).reshape(C_out, N, OH, OW).transpose(1, 0, 2, 3)  # (N, C_out, OH, OW)
    return xp.ascontiguousarray(acc + bias.reshape(1, -1, 1, 1)).astype(np.int32)


def _requantize_ref(acc, m0, shift, zy, qmin, qmax):
    """clip(((acc · m0 + 2^(shift−1)) >> shift) + z_y): acc (A, C, B) int32, per-channel m0, shift (C,)."""
    m, s = m0.reshape(1, -1, 1), shift.reshape(1, -1, 1)
    v = ((acc.astype(np.int64) * m + (np.int64(1) << (s - 1))) >> s) + zy  # round to nearest, ties up
    return get_array_module(acc).clip(v, qmin, qmax).astype(np.int8)


# -- the routes ---------------------------------------------------------------------------------------------
def qlinear_acc(x, w, bias=None, *, x_zero_point):
    """acc = bias + (x − z_x) w in int32: x (N, D) int8, w (D, M) int8, bias (M,) int32 or None → (N, M)."""
    _check_int8("qlinear_acc", "x", x)
    _check_int8("qlinear_acc", "w", w)
    if x.ndim != 2 or w.ndim != 2 or x.shape[1] != w.shape[0]:
        raise ValueError(f"qlinear_acc: expected x (N, D) and w (D, M) with the same D, got {tuple(x.shape)} "
                         f"and {tuple(w.shape)}")
    if x.shape[1] > MAX_TERMS:
        raise ValueError(f"qlinear_acc: D = {x.shape[1]} terms could overflow int32 (at most {MAX_TERMS})")
    _check_bias("qlinear_acc", bias, w.shape[1])
    bias, zx = _bias(bias, w.shape[1]), int(x_zero_point)
    if not jit_route(x, w):
        return _qgemm_ref(x, zx, w, bias)
    acc = np.empty((x.shape[0], w.shape[1]), np.int32)  # (N, M) written in full by the kernel
    parallel = x.size * w.shape[1] >= PARALLEL_MIN_WORK
    kernel = int8_loops.qgemm_kernel if parallel else int8_loops.qgemm_kernel_serial
    kernel(np.ascontiguousarray(x), zx, np.ascontiguousarray(w), bias, acc)
    return acc


def _conv_geometry(x, w, stride, padding, dilation, groups):
    (sh, sw), (ph, pw), (dh, dw) = (((v, v) if isinstance(v, int) else tuple(v)) for v in (stride, padding, dilation))
    N, C_in, H, W = x.shape
    C_out, Cg, KH, KW = w.shape
    if Cg * groups != C_in or C_out % groups:
        raise ValueError(f"qconv2d_acc: w of shape {tuple(w.shape)} with groups={groups} does not fit x of "
                         f"shape {tuple(x.shape)}")
    if Cg * KH * KW > MAX_TERMS:
        raise ValueError(f"qconv2d_acc: {Cg * KH * KW} terms per output could overflow int32")
    OH, OW = (H + 2 * ph - dh * (KH - 1) - 1) // sh + 1, (W + 2 * pw - dw * (KW - 1) - 1) // sw + 1
    if OH < 1 or OW < 1:
        raise ValueError(f"qconv2d_acc: kernel {KH}×{KW} does not fit the padded input of shape {tuple(x.shape)}")
    return (sh, sw, dh, dw), (ph, pw), (OH, OW)


def qconv2d_acc(x, w, bias=None, *, x_zero_point, stride=1, padding=0, dilation=1, groups=1):
    """acc (N, C_out, OH, OW) int32 = bias + Σ w · (x − z_x) over each window, padding with z_x (real 0).

    x (N, C_in, H, W) int8, w (C_out, C_in/G, KH, KW) int8, bias (C_out,) int32 or None.
    """
    _check_int8("qconv2d_acc", "x", x)
    _check_int8("qconv2d_acc", "w", w)
    if x.ndim != 4 or w.ndim != 4:
        raise ValueError(f"qconv2d_acc: expected x (N, C, H, W) and w (C_out, C_in/G, KH, KW), got "
                         f"{tuple(x.shape)} and {tuple(w.shape)}")
    geom, (ph, pw), out_hw = _conv_geometry(x, w, stride, padding, dilation, groups)
    _check_bias("qconv2d_acc", bias, w.shape[0])
    xp = get_array_module(x)
    bias = _bias(bias, w.shape[0])
    # centre first, then pad with 0: the padding is the real value 0, the code z_x (not the code 0)
    xc = xp.pad(x.astype(np.int16) - np.int16(x_zero_point), ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    if not jit_route(x, w):
        return _qconv2d_ref(xc, w, bias, geom, groups, out_hw)
    N, C_out, (OH, OW) = x.shape[0], w.shape[0], out_hw
    acc = np.empty((N, C_out, OH * OW), np.int32)  # (N, C_out, L) written in full by the kernel
    parallel = acc.size * w[0].size >= PARALLEL_MIN_WORK
    kernel = int8_loops.qconv2d_kernel if parallel else int8_loops.qconv2d_kernel_serial
    kernel(xc, np.ascontiguousarray(w.reshape(C_out, -1)), w.shape[2], w.shape[3], bias, *geom, OW, acc)
    return acc.reshape(N, C_out, OH, OW)


def requantize(acc, m0, shift, *, zero_point, qmin=-128, qmax=127, axis=1):
    """int8 codes clip(round(acc · m0 · 2^(−shift)) + z_y, q_min, q_max), m0 and shift per channel of ``axis``."""
    if acc.dtype != np.int32:
        raise TypeError(f"requantize: expected an int32 accumulator, got {acc.dtype}")
    C = acc.shape[axis]
    m0, shift = np.broadcast_to(m0, (C,)).astype(np.int64), np.broadcast_to(shift, (C,)).astype(np.int64)
    A = int(np.prod(acc.shape[:axis]))
    acc3 = acc.reshape(A, C, -1)  # (A, C, B)
    if not jit_route(acc):
        return _requantize_ref(acc3, m0, shift, int(zero_point), qmin, qmax).reshape(acc.shape)
    out = np.empty(acc3.shape, np.int8)  # written in full by the kernel
    kernel = int8_loops.requantize_kernel if acc.size >= PARALLEL_MIN_WORK else int8_loops.requantize_kernel_serial
    kernel(np.ascontiguousarray(acc3), m0, shift, int(zero_point), qmin, qmax, out)
    return out.reshape(acc.shape)
