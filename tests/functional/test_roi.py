"""RoI pooling and RoIAlign: gradchecks, the Numba kernels vs the references, a line-by-line port of
torchvision's CPU loops as an oracle (always run), torchvision itself when installed, errors."""
import math

import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_gradients
from scratchnet.gradcheck.cases.detection import _rois

# (x shape, output size, spatial scale, sampling ratio, aligned)
ALIGN_CONFIGS = [((2, 3, 9, 11), (3, 3), 1.0, 2, True), ((1, 2, 8, 8), (2, 4), 0.5, 0, True),
                 ((2, 2, 7, 9), 2, 1.0, 3, False), ((1, 3, 10, 6), (4, 3), 0.25, -1, False),
                 ((3, 1, 5, 5), (7, 7), 1.0, 2, False)]
POOL_CONFIGS = [((2, 3, 9, 11), (3, 3), 1.0), ((1, 2, 8, 8), (2, 4), 0.5), ((2, 1, 6, 7), 5, 1.0)]


# -- torchvision's CPU kernels, transcribed loop for loop (roi_align_kernel.cpp, roi_pool_kernel.cpp)
def _tv_bilinear(plane, y, x):
    H, W = plane.shape
    if not (-1.0 <= y <= H and -1.0 <= x <= W):
        return 0.0
    y, x = max(y, 0.0), max(x, 0.0)
    y_low, x_low = int(y), int(x)
    if y_low >= H - 1:
        y_high = y_low = H - 1
        y = float(y_low)
    else:
        y_high = y_low + 1
    if x_low >= W - 1:
        x_high = x_low = W - 1
        x = float(x_low)
    else:
        x_high = x_low + 1
    ly, lx = y - y_low, x - x_low
    hy, hx = 1 - ly, 1 - lx
    return (hy * hx * plane[y_low, x_low] + hy * lx * plane[y_low, x_high] + ly * hx * plane[y_high, x_low]
            + ly * lx * plane[y_high, x_high])


def _tv_roi_align(x, rois, out, scale, sampling_ratio, aligned):
    PH, PW = out
    y = np.zeros((len(rois), x.shape[1], PH, PW))
    for n, roi in enumerate(rois):
        off = 0.5 if aligned else 0.0
        sw, sh, ew, eh = roi[1] * scale - off, roi[2] * scale - off, roi[3] * scale - off, roi[4] * scale - off
        rw, rh = ew - sw, eh - sh
        if not aligned:
            rw, rh = max(rw, 1.0), max(rh, 1.0)
        bh, bw = rh / PH, rw / PW
        gh = sampling_ratio if sampling_ratio > 0 else math.ceil(rh / PH)
        gw = sampling_ratio if sampling_ratio > 0 else math.ceil(rw / PW)
        count = max(gh * gw, 1)
        for c in range(x.shape[1]):
            plane = x[int(roi[0]), c]
            for ph in range(PH):
                for pw in range(PW):
                    acc = 0.0
                    for iy in range(gh):
                        yy = sh + ph * bh + (iy + 0.5) * bh / gh
                        for ix in range(gw):
                            acc += _tv_bilinear(plane, yy, sw + pw * bw + (ix + 0.5) * bw / gw)
                    y[n, c, ph, pw] = acc / count
    return y


def _c_round(v):
    return int(math.floor(abs(v) + 0.5)) * (1 if v >= 0 else -1)


def _tv_roi_pool(x, rois, out, scale):
    PH, PW = out
    H, W = x.shape[2:]
    y = np.zeros((len(rois), x.shape[1], PH, PW))
    for n, roi in enumerate(rois):
        sw, sh, ew, eh = (_c_round(v * scale) for v in roi[1:])
        rw, rh = max(ew - sw + 1, 1), max(eh - sh + 1, 1)
        bh, bw = rh / PH, rw / PW
        for ph in range(PH):
            for pw in range(PW):
                hs = min(max(math.floor(ph * bh) + sh, 0), H)
                he = min(max(math.ceil((ph + 1) * bh) + sh, 0), H)
                ws = min(max(math.floor(pw * bw) + sw, 0), W)
                we = min(max(math.ceil((pw + 1) * bw) + sw, 0), W)
                if he > hs and we > ws:
                    y[n, :, ph, pw] = x[int(roi[0]), :, hs:he, ws:we].max(axis=(1, 2))
    return y


def _pair(s):
    return (s, s) if np.isscalar(s) else s


def _distinct(shape, rng):
    return rng.permutation(int(np.prod(shape))).reshape(shape) * 0.01 - 1.0


# -- gradchecks ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("xs,out,scale,sr,aligned", ALIGN_CONFIGS)
def test_roi_align_gradcheck(xs, out, scale, sr, aligned, rng):
    rois = _rois(rng, xs[0], xs[2], xs[3], 4, scale)
    assert_gradients(F.roi_align, F.roi_align_backward, [rng.standard_normal(xs), rois, out, scale], wrt=[0],
                     sampling_ratio=sr, aligned=aligned)


@pytest.mark.parametrize("xs,out,scale", POOL_CONFIGS)
def test_roi_pool_gradcheck(xs, out, scale, rng):
    rois = _rois(rng, xs[0], xs[2], xs[3], 4, scale)
    assert_gradients(F.roi_pool, F.roi_pool_backward, [_distinct(xs, rng), rois, out, scale], wrt=[0])


# -- routes and oracles -----------------------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("xs,out,scale,sr,aligned", ALIGN_CONFIGS)
def test_roi_align_routes_match_torchvision_loops(xs, out, scale, sr, aligned, dtype, rng, monkeypatch):
    x = rng.standard_normal(xs).astype(dtype)
    rois = _rois(rng, xs[0], xs[2], xs[3], 6, scale)
    want = _tv_roi_align(x.astype(np.float64), rois.astype(dtype).astype(np.float64), _pair(out), scale, sr, aligned)
    dy = rng.standard_normal(want.shape).astype(dtype)
    tol = 1e-12 if dtype == np.float64 else 1e-5
    results = []
    for jit in ("1", "0"):
        monkeypatch.setenv("SCRATCHNET_JIT", jit)
        y, cache = F.roi_align(x, rois, out, scale, sampling_ratio=sr, aligned=aligned)
        assert y.dtype == dtype and y.shape == want.shape
        np.testing.assert_allclose(y, want, rtol=tol, atol=tol)
        results.append(F.roi_align_backward(dy, cache))
    assert results[0].dtype == dtype
    np.testing.assert_allclose(results[0], results[1], rtol=tol, atol=tol)


@pytest.mark.parametrize("xs,out,scale", POOL_CONFIGS)
def test_roi_pool_routes_match_torchvision_loops(xs, out, scale, rng, monkeypatch):
    x = _distinct(xs, rng)
    rois = _rois(rng, xs[0], xs[2], xs[3], 6, scale)
    rois[0, 1:] = np.array([xs[3] + 2, xs[2] + 2, xs[3] + 5, xs[2] + 5]) / scale  # off the map: empty bins, 0
    want = _tv_roi_pool(x, rois, _pair(out), scale)
    dy = rng.standard_normal(want.shape)
    results = []
    for jit in ("1", "0"):
        monkeypatch.setenv("SCRATCHNET_JIT", jit)
        y, cache = F.roi_pool(x, rois, out, scale)
        np.testing.assert_array_equal(y, want)
        assert (cache.arg[0] == -1).all()
        results.append((cache.arg, F.roi_pool_backward(dy, cache)))
    np.testing.assert_array_equal(results[0][0], results[1][0])
    np.testing.assert_allclose(results[0][1], results[1][1], rtol=1e-12, atol=1e-12)


def test_roi_pool_ties_pick_the_first_in_row_major_order(monkeypatch):
    x = np.zeros((1, 1, 4, 4))
    rois = np.array([[0.0, 0, 0, 3, 3]])
    for jit in ("1", "0"):
        monkeypatch.setenv("SCRATCHNET_JIT", jit)
        _, cache = F.roi_pool(x, rois, 2)
        assert cache.arg.ravel().tolist() == [0, 2, 8, 10]


def test_roi_align_is_a_bilinear_sample_at_the_bin_centre():
    """One 1×1 bin, one sample: an aligned roi [1, 1, 3, 3] samples the pixel grid at (1.5, 1.5)."""
    x = np.arange(16.0).reshape(1, 1, 4, 4)
    y, _ = F.roi_align(x, np.array([[0.0, 1, 1, 3, 3]]), 1, sampling_ratio=1, aligned=True)
    assert y.item() == pytest.approx(x[0, 0, 1:3, 1:3].mean())


def test_roi_ops_on_xp(xp, rng):
    x = rng.standard_normal((2, 3, 8, 9))
    rois = _rois(rng, 2, 8, 9, 4)
    for op in ("roi_align", "roi_pool"):
        want, _ = getattr(F, op)(x, rois, 3)
        got, cache = getattr(F, op)(xp.asarray(x), xp.asarray(rois), 3)
        np.testing.assert_allclose(xp.asnumpy(got) if hasattr(xp, "asnumpy") else got, want, rtol=1e-10)
        assert getattr(F, op + "_backward")(xp.ones_like(got), cache).shape == x.shape


def test_no_rois():
    x = np.ones((1, 2, 5, 5))
    for op in ("roi_align", "roi_pool"):
        y, cache = getattr(F, op)(x, np.zeros((0, 5)), 2)
        assert y.shape == (0, 2, 2, 2)
        np.testing.assert_array_equal(getattr(F, op + "_backward")(y, cache), np.zeros_like(x))


@pytest.mark.parametrize("xs,out,scale,sr,aligned", ALIGN_CONFIGS)
def test_roi_align_matches_torchvision(xs, out, scale, sr, aligned, rng):
    torch = pytest.importorskip("torch")
    ops = pytest.importorskip("torchvision.ops")
    x = rng.standard_normal(xs)
    rois = _rois(rng, xs[0], xs[2], xs[3], 6, scale)
    xt = torch.tensor(x, requires_grad=True)
    yt = ops.roi_align(xt, torch.tensor(rois), _pair(out), scale, sr, aligned)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(dy))
    y, cache = F.roi_align(x, rois, out, scale, sampling_ratio=sr, aligned=aligned)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(F.roi_align_backward(dy, cache), xt.grad.numpy(), rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("xs,out,scale", POOL_CONFIGS)
def test_roi_pool_matches_torchvision(xs, out, scale, rng):
    torch = pytest.importorskip("torch")
    ops = pytest.importorskip("torchvision.ops")
    x = _distinct(xs, rng)
    rois = _rois(rng, xs[0], xs[2], xs[3], 6, scale)
    xt = torch.tensor(x, requires_grad=True)
    yt = ops.roi_pool(xt, torch.tensor(rois), _pair(out), scale)
    dy = rng.standard_normal(tuple(yt.shape))
    yt.backward(torch.tensor(dy))
    y, cache = F.roi_pool(x, rois, out, scale)
    np.testing.assert_array_equal(y, yt.detach().numpy())
    np.testing.assert_allclose(F.roi_pool_backward(dy, cache), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def test_errors():
    x = np.ones((2, 3, 5, 5))
    with pytest.raises(ValueError, match=r"roi_align: expected rois of shape \(R, 5\)"):
        F.roi_align(x, np.ones((3, 4)), 2)
    with pytest.raises(ValueError, match=r"roi_pool: roi batch indices must lie in \[0, 2\)"):
        F.roi_pool(x, np.array([[2.0, 0, 0, 1, 1]]), 2)
    with pytest.raises(ValueError, match="roi_align: output_size must be a positive int"):
        F.roi_align(x, np.zeros((1, 5)), 0)
    with pytest.raises(ValueError, match="roi_align: expected x to be 4-D"):
        F.roi_align(np.ones((3, 5, 5)), np.zeros((1, 5)), 2)
    with pytest.raises(TypeError, match="roi_pool: expected x to be a float array"):
        F.roi_pool(np.ones((1, 1, 5, 5), int), np.zeros((1, 5)), 2)
    _, cache = F.roi_align(x, np.zeros((1, 5)), 2)
    with pytest.raises(ValueError, match=r"roi_align_backward: expected upstream gradient dy of shape \(1, 3, 2, 2\)"):
        F.roi_align_backward(np.ones((1, 3, 2, 3)), cache)


def test_parallel_and_serial_kernels_agree(rng, monkeypatch):
    from scratchnet.kernels import roi as routes
    x = rng.standard_normal((2, 4, 9, 10))
    rois = _rois(rng, 2, 9, 10, 7)
    runs = []
    for threshold in (1 << 30, 0):  # everything serial, then everything parallel
        monkeypatch.setattr(routes, "PARALLEL_MIN_SIZE", threshold)
        out = []
        for op in ("roi_align", "roi_pool"):
            y, cache = getattr(F, op)(x, rois, (3, 2), 0.8)
            out += [y, getattr(F, op + "_backward")(np.cos(y), cache)]
        runs.append(out)
    for a, b in zip(*runs):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
