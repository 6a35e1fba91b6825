"""Channel concatenation, per-channel gating, ReLU6 / hardtanh and drop-path: values, errors and the
Modules (the gradients are in the gradient-check catalogue, cases/channel.py)."""
import numpy as np
import pytest

import scratchnet.functional as F
import scratchnet.nn as nn

R = np.random.default_rng(0)


def test_concat_splits_the_gradient_by_slices():
    a, b = R.standard_normal((2, 3, 4, 4)), R.standard_normal((2, 5, 4, 4))
    y, cache = F.concat([a, b])
    np.testing.assert_array_equal(y[:, :3], a)
    np.testing.assert_array_equal(y[:, 3:], b)
    dy = R.standard_normal(y.shape)
    da, db = F.concat_backward(dy, cache)
    np.testing.assert_array_equal(da, dy[:, :3])
    np.testing.assert_array_equal(db, dy[:, 3:])


def test_concat_rejects_mismatched_inputs():
    with pytest.raises(ValueError, match=r"concat: xs\[1\] of shape \(2, 3, 5, 4\)"):
        F.concat([np.ones((2, 3, 4, 4)), np.ones((2, 3, 5, 4))])
    with pytest.raises(ValueError, match="concat: xs\\[1\\] .* dtype float32"):
        F.concat([np.ones((2, 3)), np.ones((2, 3), np.float32)])
    with pytest.raises(ValueError, match="at least one"):
        F.concat([])


def test_scale_channels_values_and_errors():
    x, s = R.standard_normal((2, 3, 2, 2)), R.standard_normal((2, 3))
    y, _ = F.scale_channels(x, s)
    np.testing.assert_allclose(y[1, 2], x[1, 2] * s[1, 2])
    with pytest.raises(ValueError, match=r"scale_channels: expected s of shape \(2, 3\)"):
        F.scale_channels(x, s[:, :2])


def test_relu6_and_hardtanh_values():
    x = np.array([-3.0, -0.5, 0.5, 5.0, 7.0])
    np.testing.assert_array_equal(F.relu6(x)[0], [0, 0, 0.5, 5, 6])
    np.testing.assert_array_equal(F.hardtanh(x)[0], [-1, -0.5, 0.5, 1, 1])
    dx = F.relu6_backward(np.ones(5), F.relu6(x)[1])
    np.testing.assert_array_equal(dx, [0, 0, 1, 1, 0])
    with pytest.raises(ValueError, match="hardtanh: need min_val < max_val"):
        F.hardtanh(x, min_val=1.0, max_val=1.0)


def test_drop_path_drops_whole_samples():
    x = R.standard_normal((1000, 2, 3))
    y, _ = F.drop_path(x, p=0.3, rng=np.random.default_rng(1))
    kept = np.abs(y).reshape(1000, -1).sum(1) > 0
    assert 0.6 < kept.mean() < 0.8  # about 1 − p of the samples survive ...
    np.testing.assert_allclose(y[kept], x[kept] / 0.7)  # ... scaled by 1/(1 − p), whole
    assert F.drop_path(x, p=0.3, training=False)[0] is x
    with pytest.raises(ValueError, match=r"drop_path: mask must have shape \(1000,\)"):
        F.drop_path(x, p=0.3, mask=np.ones((1000, 2)))


def test_modules():
    x = R.standard_normal((4, 2, 3, 3)) * 4
    m = nn.ReLU6()
    np.testing.assert_array_equal(m(x), np.clip(x, 0, 6))
    np.testing.assert_array_equal(m.backward(np.ones_like(x)), (x > 0) & (x < 6))
    dp = nn.DropPath(0.5, rng=np.random.default_rng(0))
    mask = np.array([2.0, 0.0, 2.0, 0.0])
    y = dp(x, mask=mask)
    np.testing.assert_array_equal(y, x * mask[:, None, None, None])
    np.testing.assert_array_equal(dp.backward(np.ones_like(x)), np.ones_like(x) * mask[:, None, None, None])
    dp.eval()
    assert dp(x) is x


def test_relu6_matches_pytorch():
    torch = pytest.importorskip("torch")
    x = R.standard_normal((3, 4)) * 5
    np.testing.assert_array_equal(F.relu6(x)[0], torch.nn.functional.relu6(torch.from_numpy(x)).numpy())
    np.testing.assert_array_equal(F.hardtanh(x, min_val=-2.0, max_val=3.0)[0],
                                  torch.nn.functional.hardtanh(torch.from_numpy(x), -2.0, 3.0).numpy())
