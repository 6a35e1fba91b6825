"""The int8 kernels of chapter 34: the Numba GEMM, convolution and requantisation against their vectorised
int64 references bit for bit (serial and parallel kernels), against float products of the same integers,
the fixed-point multiplier against float rounding, and errors."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.kernels import int8, int8_loops
from scratchnet.kernels.int8 import qconv2d_acc, qlinear_acc, quantize_multiplier, requantize


def _i8(rng, shape, lo=-128):
    return rng.integers(lo, 128, shape).astype(np.int8)


@pytest.mark.parametrize("jit", ["1", "0"])
@pytest.mark.parametrize("zx", [-128, 0, 17])
def test_qlinear_acc_is_the_exact_integer_product(jit, zx, rng, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    x, w, b = _i8(rng, (9, 37)), _i8(rng, (37, 11), -127), rng.integers(-5000, 5000, 11).astype(np.int32)
    acc = qlinear_acc(x, w, b, x_zero_point=zx)
    assert acc.dtype == np.int32
    np.testing.assert_array_equal(acc, (x.astype(np.int64) - zx) @ w.astype(np.int64) + b)


@pytest.mark.parametrize("opts", [dict(), dict(stride=2, padding=1), dict(padding=2, dilation=2),
                                  dict(padding=1, groups=2), dict(stride=2, padding=1, groups=6)],
                         ids=["plain", "stride2-pad1", "dilation2", "groups2", "depthwise"])
def test_qconv2d_kernel_equals_reference_and_float_conv(opts, rng, monkeypatch):
    groups = opts.get("groups", 1)
    x, w = _i8(rng, (2, 6, 9, 8)), _i8(rng, (6, 6 // groups, 3, 3), -127)
    b = rng.integers(-300, 300, 6).astype(np.int32)
    monkeypatch.setenv("SCRATCHNET_JIT", "1")
    fast = qconv2d_acc(x, w, b, x_zero_point=-5, **opts)
    monkeypatch.setenv("SCRATCHNET_JIT", "0")
    ref = qconv2d_acc(x, w, b, x_zero_point=-5, **opts)
    np.testing.assert_array_equal(fast, ref)
    # padding with the zero point is padding with real 0: the float conv of the centred input, exact in float64
    y, _ = F.conv2d(x.astype(np.float64) + 5, w.astype(np.float64), b.astype(np.float64), **opts)
    np.testing.assert_array_equal(ref, y)


def test_parallel_kernels_equal_serial(rng):
    x, w, b = _i8(rng, (16, 40)), _i8(rng, (40, 24), -127), rng.integers(-99, 99, 24).astype(np.int32)
    a_par, a_ser = np.empty((16, 24), np.int32), np.empty((16, 24), np.int32)
    int8_loops.qgemm_kernel(x, 3, w, b, a_par)
    int8_loops.qgemm_kernel_serial(x, 3, w, b, a_ser)
    np.testing.assert_array_equal(a_par, a_ser)
    m0, sh = quantize_multiplier(np.linspace(1e-3, 0.3, 24))
    o_par, o_ser = np.empty((16, 24, 1), np.int8), np.empty((16, 24, 1), np.int8)
    int8_loops.requantize_kernel(a_par.reshape(16, 24, 1), m0, sh, -128, -128, 127, o_par)
    int8_loops.requantize_kernel_serial(a_par.reshape(16, 24, 1), m0, sh, -128, -128, 127, o_ser)
    np.testing.assert_array_equal(o_par, o_ser)
    xc = np.pad(_i8(rng, (3, 4, 6, 6)).astype(np.int16), ((0, 0), (0, 0), (1, 1), (1, 1)))
    wc, bc = _i8(rng, (4, 2, 3, 3), -127), np.zeros(4, np.int32)
    c_par, c_ser = np.empty((3, 4, 36), np.int32), np.empty((3, 4, 36), np.int32)
    int8_loops.qconv2d_kernel(xc, wc.reshape(4, -1), 3, 3, bc, 1, 1, 1, 1, 6, c_par)
    int8_loops.qconv2d_kernel_serial(xc, wc.reshape(4, -1), 3, 3, bc, 1, 1, 1, 1, 6, c_ser)
    np.testing.assert_array_equal(c_par, c_ser)


def test_quantize_multiplier(rng):
    M = np.concatenate([rng.uniform(1e-6, 1.0, 50), [0.5, 1.0, 0.999999999, 3.0]])
    m0, shift = quantize_multiplier(M)
    assert np.all((m0 >= 2 ** 30) & (m0 < 2 ** 31)) and np.all(shift >= 1)
    np.testing.assert_allclose(m0 * 2.0 ** -shift.astype(float), M, rtol=2 ** -30)
    assert quantize_multiplier(1e-30) == (np.array([0]), np.array([1]))
    with pytest.raises(ValueError, match="quantize_multiplier"):
        quantize_multiplier(-1.0)


@pytest.mark.parametrize("jit", ["1", "0"])
def test_requantize_matches_float_rounding(jit, rng, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    acc = rng.integers(-2 ** 24, 2 ** 24, (7, 5, 6)).astype(np.int32)
    M = rng.uniform(1e-6, 1e-4, 5)
    m0, shift = quantize_multiplier(M)
    q = requantize(acc, m0, shift, zero_point=-20)
    ideal = np.clip(np.floor(acc * M[None, :, None] + 0.5) - 20, -128, 127)  # round half up, as the shift does
    assert q.dtype == np.int8 and np.abs(q - ideal).max() <= 1 and (q == ideal).mean() > 0.999


def test_requantize_kernel_equals_reference_exactly(rng, monkeypatch):
    acc = rng.integers(-2 ** 30, 2 ** 30, (4, 9, 33)).astype(np.int32)
    m0, shift = quantize_multiplier(rng.uniform(1e-9, 0.9, 9))
    out = []
    for jit in ("1", "0"):
        monkeypatch.setenv("SCRATCHNET_JIT", jit)
        out.append(requantize(acc, m0, shift, zero_point=3))
    np.testing.assert_array_equal(*out)


def test_errors(rng):
    x, w = _i8(rng, (2, 4)), _i8(rng, (4, 3))
    with pytest.raises(TypeError, match="qlinear_acc: expected x to be an int8 array"):
        qlinear_acc(x.astype(np.float32), w, x_zero_point=0)
    with pytest.raises(ValueError, match="qlinear_acc: expected x"):
        qlinear_acc(x, _i8(rng, (5, 3)), x_zero_point=0)
    with pytest.raises(ValueError, match="qlinear_acc: expected bias"):
        qlinear_acc(x, w, np.zeros(3, np.int64), x_zero_point=0)
    with pytest.raises(ValueError, match="could overflow"):
        qlinear_acc(_i8(rng, (1, int8.MAX_TERMS + 1)), _i8(rng, (int8.MAX_TERMS + 1, 1)), x_zero_point=0)
    with pytest.raises(ValueError, match="qconv2d_acc"):
        qconv2d_acc(_i8(rng, (1, 4, 5, 5)), _i8(rng, (2, 3, 3, 3)), x_zero_point=0)
    with pytest.raises(TypeError, match="requantize"):
        requantize(np.zeros((2, 3), np.int64), np.ones(3, np.int64), np.ones(3, np.int64), zero_point=0)
