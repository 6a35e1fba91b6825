"""The CUDA kernels (``kernels/*_cupy.py``) against their vectorised references.

On every machine the kernels run on the CPU through ``cuda_emulator`` (the same CUDA C text built by
the C compiler, each CUDA thread a POSIX thread, ``__syncthreads`` a barrier) with the launch code of
the CuPy route unchanged; on a machine with a GPU the same comparisons run on CuPy arrays too.
"""
import math
import shutil
import subprocess

import numpy as np
import pytest

from scratchnet import backend
from scratchnet.functional import ctc as FC
from scratchnet.functional import pool as FP
from scratchnet.functional import roi as FR
from scratchnet.gradcheck import assert_gradients
from scratchnet.kernels import ctc_cupy, cuda, cuda_emulator, pool_cupy, roi_cupy

pytestmark = pytest.mark.skipif(not cuda_emulator.available(), reason="needs a C compiler for the CUDA emulator")
needs_gpu = pytest.mark.skipif(not backend.gpu_available(), reason="needs CuPy and a CUDA device")
EMU = cuda_emulator.compile_kernel


# -- the emulator itself -------------------------------------------------------------------------------
BARRIER_SOURCE = r"""
/* out[b] = sum of x over block b's slice, by a shared-memory tree: wrong without the barriers. */
SN_KERNEL void block_sum(const real* x, real* scratch, real* out, int per_block)
{
    const real* xb = x + (long long)blockIdx.x * per_block;
    real* sb = scratch + (long long)blockIdx.x * blockDim.x;
    real acc = 0;
    for (int i = threadIdx.x; i < per_block; i += blockDim.x)
        acc += xb[i];
    sb[threadIdx.x] = acc;
    __syncthreads();
    for (int half = blockDim.x / 2; half > 0; half /= 2) {
        if ((int)threadIdx.x < half)
            sb[threadIdx.x] += sb[threadIdx.x + half];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        out[blockIdx.x] = sb[0] + (real)gridDim.x * 0;
}
"""


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_emulator_runs_blocks_threads_and_barriers(dtype):
    x = np.arange(3 * 100, dtype=dtype)
    scratch, out = np.zeros(3 * 64, dtype=dtype), np.zeros(3, dtype=dtype)
    EMU(BARRIER_SOURCE, "block_sum", dtype)((3,), (64,), (x, scratch, out, np.int32(100)))
    np.testing.assert_allclose(out, x.reshape(3, 100).sum(axis=1))


def test_emulator_refuses_what_the_gpu_would_misread():
    kernel = EMU(BARRIER_SOURCE, "block_sum", np.float32)
    x, scratch, out = np.zeros(64, np.float32), np.zeros(64, np.float32), np.zeros(1, np.float32)
    with pytest.raises(TypeError, match="per_block.*NumPy scalar of dtype int32"):
        kernel((1,), (64,), (x, scratch, out, 64))  # a Python int: 64 bits on the GPU
    with pytest.raises(TypeError, match="per_block.*int32"):
        kernel((1,), (64,), (x, scratch, out, np.int64(64)))
    with pytest.raises(TypeError, match="argument x .*dtype float32, got float64"):
        kernel((1,), (64,), (x.astype(np.float64), scratch, out, np.int32(64)))
    with pytest.raises(TypeError, match="C-contiguous"):
        kernel((1,), (64,), (np.zeros(128, np.float32)[::2], scratch, out, np.int32(64)))
    with pytest.raises(TypeError, match="takes 4 arguments"):
        kernel((1,), (64,), (x, scratch, out))
    with pytest.raises(ValueError, match="1-D launches"):
        kernel((1, 2), (64,), (x, scratch, out, np.int32(64)))
    with pytest.raises(KeyError, match="no kernel 'nope'"):
        EMU(BARRIER_SOURCE, "nope", np.float32)


def test_emulator_names_a_source_that_does_not_compile():
    with pytest.raises(RuntimeError, match="does not compile as C"):
        EMU("SN_KERNEL void broken(real* x) { x[0] = undefined_name; }", "broken", np.float32)


def test_parse_kernels_reads_every_signature():
    params = cuda_emulator.parse_kernels(ctc_cupy.SOURCE)
    assert sorted(params) == ["ctc_alpha", "ctc_beta", "ctc_grad"]
    assert params["ctc_alpha"][0] == ("const real*", "lp")
    assert params["ctc_alpha"][-1] == ("real", "neg_inf")
    assert [p for _, p in cuda_emulator.parse_kernels(pool_cupy.SOURCE)["max_pool2d_forward"][:3]] == ["x", "y", "arg"]


def test_kernel_source_and_route_rules(monkeypatch):
    assert "#define SN_DOUBLE 1" in cuda.kernel_source("", np.float64)
    assert "#define SN_DOUBLE 0" in cuda.kernel_source("", np.float32)
    with pytest.raises(TypeError, match="float32 and float64"):
        cuda.kernel_source("", np.float16)
    x = np.zeros(3, np.float32)
    assert not cuda.cuda_route(x) and not cuda.cuda_route(None) and not cuda.cuda_route()  # NumPy: the CPU routes
    assert [cuda.block_size(n) for n in (1, 32, 33, 81, 5000)] == [32, 32, 64, 96, 1024]


# what NVRTC provides built in, declared for a C++ compiler: enough to check the CUDA branch's syntax and types
NVRTC_SHIM = r"""
#include <cmath>
#define __global__
#define __device__
#define __forceinline__ inline
#define __shared__ static
struct sn_shim_dim3 { unsigned int x, y, z; };
extern sn_shim_dim3 threadIdx, blockIdx, blockDim, gridDim;
void __syncthreads();
"""


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
@pytest.mark.parametrize("module", [ctc_cupy, pool_cupy, roi_cupy], ids=lambda m: m.__name__.rsplit(".", 1)[1])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cuda_branch_is_valid_cpp(tmp_path, module, dtype):
    """The text NVRTC compiles (the prelude's ``__CUDACC_RTC__`` branch) parses as C++17 without a warning."""
    (tmp_path / "shim.h").write_text(NVRTC_SHIM)
    (tmp_path / "kernels.cpp").write_text(cuda.kernel_source(module.SOURCE, dtype))
    done = subprocess.run(["g++", "-std=c++17", "-fsyntax-only", "-Wall", "-Wextra", "-Werror", "-D__CUDACC_RTC__",
                           "-include", str(tmp_path / "shim.h"), str(tmp_path / "kernels.cpp")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# -- CTC ----------------------------------------------------------------------------------------------
def _log_softmax(z):
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _ctc_case(rng, N, T, C, S, dtype, *, repeats=False, impossible=False, nan=False):
    """Inputs of one batch: lengths vary, targets may repeat labels, hold an impossible alignment or a NaN."""
    lp = _log_softmax(rng.standard_normal((N, T, C)) * 2).astype(dtype)
    targets = rng.integers(1, C, (N, S))
    if repeats and S >= 2:
        targets[0, 1] = targets[0, 0]  # a repeated label needs a blank between
    input_lengths = rng.integers(max(1, T // 2), T + 1, N)
    input_lengths[0] = T
    target_lengths = rng.integers(0, S + 1, N)
    target_lengths[0] = S
    if impossible and N > 1:
        input_lengths[1], target_lengths[1] = 1, S  # S labels cannot fit one frame
        targets[1, :] = 1 + np.arange(S) % (C - 1)
    if nan:
        lp[-1, 0, -1] = np.nan
    ext, skip, ext_lengths = FC._extend_targets(np, targets, target_lengths, 0)
    return lp, ext, skip, input_lengths.astype(np.int64), ext_lengths


def _same_lattice(a, b, tol):
    """Equal −∞ patterns and equal finite values (NaN where the other has NaN)."""
    assert np.array_equal(np.isneginf(a), np.isneginf(b))
    assert np.array_equal(np.isnan(a), np.isnan(b))
    finite = np.isfinite(a)
    np.testing.assert_allclose(a[finite], b[finite], rtol=tol, atol=tol)


CTC_CASES = [  # N, T, C, S
    (1, 1, 3, 0),      # one frame, empty target: L = 1
    (2, 5, 4, 1),
    (3, 12, 5, 4),
    (4, 30, 7, 9),     # L = 19
    (2, 40, 6, 20),    # L = 41: the longest possible for T = 40 with no repeats
]


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 2e-5)])
@pytest.mark.parametrize("N,T,C,S", CTC_CASES)
def test_ctc_kernels_match_the_reference(rng, N, T, C, S, dtype, tol):
    lp, ext, skip, il, el = _ctc_case(rng, N, T, C, S, dtype, repeats=True, impossible=N > 2)
    alpha, logp = ctc_cupy.ctc_alpha(lp, ext, skip, il, el, compile=EMU)
    alpha_ref, logp_ref = FC._alpha_route(lp, ext, skip, il, el)
    assert alpha.dtype == logp.dtype == dtype
    _same_lattice(alpha, alpha_ref, tol)
    _same_lattice(logp, logp_ref, tol)
    weight = np.where(np.isinf(logp_ref), 0.0, rng.uniform(0.5, 2.0, N)).astype(dtype)  # as ctc_loss_backward
    beta, dlp = ctc_cupy.ctc_beta_grad(lp, ext, skip, il, el, alpha, logp, weight, compile=EMU)
    beta_ref, dlp_ref = FC._beta_grad_route(lp, ext, skip, il, el, alpha_ref, logp_ref, weight)
    assert beta.shape == beta_ref.shape and dlp.dtype == dtype
    _same_lattice(beta, beta_ref, tol)
    np.testing.assert_allclose(dlp, dlp_ref, rtol=tol, atol=tol)


@pytest.mark.parametrize("N,T,C,S", [(2, 6, 4, 2), (3, 7, 5, 3)])
def test_ctc_kernels_gradcheck(rng, N, T, C, S):
    """−log p through the α kernel, its gradient from the β and gradient kernels: central differences in
    float64 (log-probabilities off the simplex: free inputs, as in the catalogue's CTC cases)."""
    lp, ext, skip, il, el = _ctc_case(rng, N, T, C, S, np.float64, repeats=True)
    lp = rng.standard_normal(lp.shape) - np.log(C)

    def forward(log_probs):
        alpha, logp = ctc_cupy.ctc_alpha(log_probs, ext, skip, il, el, compile=EMU)
        return -logp, (log_probs, alpha, logp)

    def backward(dloss, cache):
        log_probs, alpha, logp = cache
        _, dlp = ctc_cupy.ctc_beta_grad(log_probs, ext, skip, il, el, alpha, logp, dloss, compile=EMU)
        return dlp

    assert_gradients(forward, backward, [lp], names=["log_probs"])


@pytest.mark.parametrize("k,s,p", [(2, 2, 0), (3, 2, 1), (3, 1, 1)])
def test_max_pool_kernels_gradcheck(rng, k, s, p):
    """The CUDA pair in float64: distinct values 0.1 apart, so no nudge changes a window's winner."""
    x = rng.permutation(2 * 2 * 5 * 6).reshape(2, 2, 5, 6) * 0.1
    g = FP._pool_geometry("max_pool2d", x, k, s, p)
    assert_gradients(lambda x: pool_cupy.max_pool2d(x, g, compile=EMU),
                     lambda dy, arg: pool_cupy.max_pool2d_backward(dy, arg, g, x.shape, compile=EMU), [x],
                     names=["x"])


def test_ctc_kernels_loop_when_a_block_has_fewer_threads_than_states(monkeypatch, rng):
    """L = 41 states shared out by 32 threads: each thread walks two; the barriers still order the frames."""
    monkeypatch.setattr(ctc_cupy, "block_size", lambda work: 32)
    lp, ext, skip, il, el = _ctc_case(rng, 2, 40, 6, 20, np.float64)
    alpha, logp = ctc_cupy.ctc_alpha(lp, ext, skip, il, el, compile=EMU)
    alpha_ref, logp_ref = FC._alpha_route(lp, ext, skip, il, el)
    _same_lattice(alpha, alpha_ref, 1e-12)
    beta, dlp = ctc_cupy.ctc_beta_grad(lp, ext, skip, il, el, alpha, logp, np.ones(2), compile=EMU)
    beta_ref, dlp_ref = FC._beta_grad_route(lp, ext, skip, il, el, alpha_ref, logp_ref, np.ones(2))
    _same_lattice(beta, beta_ref, 1e-12)
    np.testing.assert_allclose(dlp, dlp_ref, atol=1e-12)


def test_ctc_grad_kernel_grid_stride(monkeypatch, rng):
    """More frames than one block's threads, on one block: the grid-stride loop covers them all."""
    monkeypatch.setattr(ctc_cupy, "GRAD_BLOCK", 32)
    lp, ext, skip, il, el = _ctc_case(rng, 3, 30, 5, 6, np.float64)
    alpha, logp = FC._alpha_route(lp, ext, skip, il, el)
    _, dlp = ctc_cupy.ctc_beta_grad(lp, ext, skip, il, el, alpha, logp, np.ones(3), compile=EMU)
    _, dlp_ref = FC._beta_grad_route(lp, ext, skip, il, el, alpha, logp, np.ones(3))
    np.testing.assert_allclose(dlp, dlp_ref, atol=1e-12)


def test_ctc_kernels_nan_in_nan_out(rng):
    lp, ext, skip, il, el = _ctc_case(rng, 3, 10, 5, 3, np.float32, nan=True)
    alpha, logp = ctc_cupy.ctc_alpha(lp, ext, skip, il, el, compile=EMU)
    _, logp_ref = FC._alpha_route(lp, ext, skip, il, el)
    assert np.isnan(logp[-1]) and np.array_equal(np.isnan(logp), np.isnan(logp_ref))
    _, dlp = ctc_cupy.ctc_beta_grad(lp, ext, skip, il, el, alpha, logp, np.ones(3, np.float32), compile=EMU)
    frames = np.arange(10) < il[-1]
    assert np.isnan(dlp[-1, frames]).all() and not np.isnan(dlp[-1, ~frames]).any()
    assert not np.isnan(dlp[:-1]).any()


def test_ctc_kernels_give_the_loss_and_gradient_of_the_numba_route(rng):
    """The whole pair on the emulator, next to ctc_loss / ctc_loss_backward (Numba route, reduction sum)."""
    N, T, C, S = 4, 25, 6, 5
    lp = _log_softmax(rng.standard_normal((N, T, C))).astype(np.float32)
    targets, il, tl = rng.integers(1, C, (N, S)), np.array([25, 20, 18, 25]), np.array([5, 3, 4, 0])
    loss, cache = FC.ctc_loss(lp, targets, il, tl, reduction="sum")
    dlp_numba = FC.ctc_loss_backward(np.float32(1.0), cache)
    ext, skip, el = FC._extend_targets(np, targets, tl, 0)
    alpha, logp = ctc_cupy.ctc_alpha(lp, ext, skip, il, el, compile=EMU)
    _, dlp = ctc_cupy.ctc_beta_grad(lp, ext, skip, il, el, alpha, logp, np.ones(N, np.float32), compile=EMU)
    assert -logp.sum() == pytest.approx(float(loss), rel=1e-5)
    np.testing.assert_allclose(dlp, dlp_numba, atol=2e-6)


# -- max pooling --------------------------------------------------------------------------------------
POOL_CASES = [  # (H, W), kernel, stride, padding
    ((8, 8), 2, 2, 0),
    ((7, 9), 2, 2, 0),       # odd sizes: a last row/column in no window
    ((7, 6), 3, 2, 1),       # overlapping windows with padding
    ((7, 6), 3, 1, 1),
    ((6, 6), 2, 1, 0),
    ((5, 5), 1, 1, 0),
    ((9, 8), (2, 3), (1, 2), (1, 1)),
    ((11, 10), 5, 3, 2),
]


@pytest.mark.parametrize("dtype,tol", [(np.float64, 1e-12), (np.float32, 1e-6)])
@pytest.mark.parametrize("size,k,s,p", POOL_CASES)
def test_max_pool_kernels_match_the_reference(rng, size, k, s, p, dtype, tol):
    x = rng.standard_normal((2, 3) + size).astype(dtype)
    x[0, 0, 1, :] = x[0, 0, 0, :]  # ties: the first maximum wins
    g = FP._pool_geometry("max_pool2d", x, k, s, p)
    y, arg = pool_cupy.max_pool2d(x, g, compile=EMU)
    y_ref, arg_ref = FP._max_pool_ref(x, g)
    assert y.dtype == dtype and arg.dtype == np.int64
    np.testing.assert_array_equal(y, y_ref)
    np.testing.assert_array_equal(arg, arg_ref)
    dy = rng.standard_normal(y.shape).astype(dtype)
    dx = pool_cupy.max_pool2d_backward(dy, arg, g, x.shape, compile=EMU)
    np.testing.assert_allclose(dx, FP._max_pool_backward_ref(dy, arg_ref, g, *size), rtol=tol, atol=tol)


def test_max_pool_kernels_nan_and_minus_inf_windows(rng):
    """The first NaN wins its window; a window of −∞ with padding picks its first real tap (as the reference)."""
    x = rng.standard_normal((1, 2, 6, 6)).astype(np.float32)
    x[0, 0, 2, 3] = x[0, 0, 3, 2] = np.nan
    x[0, 1, :2, :2] = -np.inf
    g = FP._pool_geometry("max_pool2d", x, 3, 2, 1)
    y, arg = pool_cupy.max_pool2d(x, g, compile=EMU)
    y_ref, arg_ref = FP._max_pool_ref(x, g)
    np.testing.assert_array_equal(arg, arg_ref)
    np.testing.assert_array_equal(y, y_ref)  # NaN where the reference has NaN (array_equal treats them equal)


def test_max_pool_kernels_grid_stride(monkeypatch, rng):
    """More outputs and pixels than one block's threads, on one block: the grid-stride loops cover them."""
    monkeypatch.setattr(pool_cupy, "MAX_GRID", 1)
    x = rng.standard_normal((2, 3, 12, 12))
    g = FP._pool_geometry("max_pool2d", x, 3, 2, 1)
    y, arg = pool_cupy.max_pool2d(x, g, compile=EMU)
    y_ref, arg_ref = FP._max_pool_ref(x, g)
    np.testing.assert_array_equal(arg, arg_ref)
    dy = rng.standard_normal(y.shape)
    dx = pool_cupy.max_pool2d_backward(dy, arg, g, x.shape, compile=EMU)
    np.testing.assert_allclose(dx, FP._max_pool_backward_ref(dy, arg_ref, g, 12, 12), atol=1e-12)


def test_max_pool_backward_kernel_takes_the_numba_routes_winners(rng):
    """The CPU route keeps int8 winners; the kernel's launcher widens them to the int64 it reads."""
    x = rng.standard_normal((2, 2, 8, 8)).astype(np.float32)
    y, cache = FP.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dx = pool_cupy.max_pool2d_backward(dy, cache.arg, cache.g, x.shape, compile=EMU)
    np.testing.assert_allclose(dx, FP.max_pool2d_backward(dy, cache), atol=1e-6)


# -- RoI pooling --------------------------------------------------------------------------------------
def _roi_inputs(rng, dtype):
    """Two feature maps and rois of several sizes: one past the map's edge, one smaller than a bin."""
    x = rng.standard_normal((2, 3, 9, 11)).astype(dtype)
    x[1, 0, 2, 3] = np.nan
    rois = np.array([[0, 0, 0, 10, 8], [1, 1, 1, 7, 6], [0, 4, 2, 30, 20], [1, 2, 2, 3, 3], [1, 0, 0, 5, 5],
                     [0, 5, 5, 5, 5]], dtype=dtype)
    return x, rois


def _roi_reference(monkeypatch, x, rois, output_size, scale=1.0):
    """The reference's y and winners, and the geometry (batch, rows, cols) roi_pool handed its route."""
    calls = []
    with monkeypatch.context() as m:
        m.setattr(FR._kernels, "roi_pool", lambda x, batch, rows, cols, reference: calls.append(
            (batch, rows, cols)) or reference(x, batch, rows, cols))
        y_ref, cache = FR.roi_pool(x, rois, output_size, scale)
    return y_ref, cache.arg, calls[0]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("output_size,scale", [((2, 2), 1.0), ((3, 4), 0.5), ((7, 7), 1.0)])
def test_roi_pool_kernel_matches_the_reference(monkeypatch, rng, dtype, output_size, scale):
    x, rois = _roi_inputs(rng, dtype)
    y_ref, arg_ref, geometry = _roi_reference(monkeypatch, x, rois, output_size, scale)
    y, arg = roi_cupy.roi_pool(x, *geometry, compile=EMU)
    assert y.dtype == dtype and arg.dtype == np.int64
    np.testing.assert_array_equal(arg, arg_ref)
    np.testing.assert_array_equal(y, y_ref)
    assert (arg == -1).any() or output_size != (7, 7)  # some bins of the small rois are empty


def test_roi_pool_kernel_grid_stride(monkeypatch, rng):
    monkeypatch.setattr(roi_cupy, "BLOCK", 32)
    monkeypatch.setattr(roi_cupy, "grid_size", lambda total, block: 1)
    x, rois = _roi_inputs(rng, np.float64)
    y_ref, arg_ref, geometry = _roi_reference(monkeypatch, x, rois, (3, 3))
    y, arg = roi_cupy.roi_pool(x, *geometry, compile=EMU)
    np.testing.assert_array_equal(arg, arg_ref)
    np.testing.assert_array_equal(y, y_ref)


# -- on a GPU: the routes themselves -------------------------------------------------------------------
@needs_gpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cupy_routes_take_the_kernels_and_match_numpy(monkeypatch, rng, dtype):
    import cupy
    calls = []
    for module, name in ((ctc_cupy, "ctc_alpha"), (ctc_cupy, "ctc_beta_grad"), (pool_cupy, "max_pool2d"),
                         (pool_cupy, "max_pool2d_backward")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _real=real, _name=name, **k: calls.append(_name) or _real(*a, **k))
    x = rng.standard_normal((4, 3, 9, 9)).astype(dtype)
    y, cache = FP.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    y_gpu, cache_gpu = FP.max_pool2d(cupy.asarray(x), kernel_size=3, stride=2, padding=1)
    dy = rng.standard_normal(y.shape).astype(dtype)
    np.testing.assert_array_equal(cupy.asnumpy(y_gpu), y)
    np.testing.assert_allclose(cupy.asnumpy(FP.max_pool2d_backward(cupy.asarray(dy), cache_gpu)),
                               FP.max_pool2d_backward(dy, cache), rtol=1e-6, atol=1e-6)
    lp = _log_softmax(rng.standard_normal((6, 50, 8))).astype(dtype)
    targets, il, tl = rng.integers(1, 8, (6, 12)), rng.integers(30, 51, 6), rng.integers(0, 13, 6)
    loss, c = FC.ctc_loss(lp, targets, il, tl)
    loss_gpu, c_gpu = FC.ctc_loss(*(cupy.asarray(a) for a in (lp, targets, il, tl)))
    tol = 1e-4 if dtype == np.float32 else 1e-10
    assert float(loss_gpu) == pytest.approx(float(loss), rel=tol)
    np.testing.assert_allclose(cupy.asnumpy(FC.ctc_loss_backward(dtype(1.0), c_gpu)),
                               FC.ctc_loss_backward(dtype(1.0), c), rtol=tol, atol=tol)
    assert sorted(set(calls)) == ["ctc_alpha", "ctc_beta_grad", "max_pool2d", "max_pool2d_backward"]


@needs_gpu
def test_cupy_roi_pool_takes_the_kernel_and_matches_numpy(rng):
    import cupy
    x, rois = _roi_inputs(rng, np.float32)
    x[1, 0, 2, 3] = 0.0  # the Numba route lets a NaN win only as a bin's first pixel; the kernel as argmax
    y, cache = FR.roi_pool(x, rois, (3, 3))
    y_gpu, cache_gpu = FR.roi_pool(cupy.asarray(x), cupy.asarray(rois), (3, 3))
    np.testing.assert_array_equal(cupy.asnumpy(cache_gpu.arg), cache.arg)
    np.testing.assert_array_equal(cupy.asnumpy(y_gpu), y)


@needs_gpu
def test_cupy_kernels_match_the_emulator(rng):
    """The GPU and the CPU emulator run one source: the same lattice and winners (float64)."""
    import cupy
    lp, ext, skip, il, el = _ctc_case(rng, 3, 12, 5, 4, np.float64, repeats=True)
    alpha_emu, logp_emu = ctc_cupy.ctc_alpha(lp, ext, skip, il, el, compile=EMU)
    alpha_gpu, logp_gpu = ctc_cupy.ctc_alpha(*(cupy.asarray(a) for a in (lp, ext, skip, il, el)))
    _same_lattice(cupy.asnumpy(alpha_gpu), alpha_emu, 1e-12)
    assert math.isclose(float(logp_gpu.sum()), float(logp_emu.sum()), rel_tol=1e-12)
