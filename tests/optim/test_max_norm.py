"""max_norm_: column norms after the projection, vectors inside the ball untouched, Linear's convention."""
import numpy as np
import pytest

from scratchnet import nn
from scratchnet.nn import Parameter
from scratchnet.optim import SGD, max_norm_


def test_by_hand(xp):
    w = Parameter(xp.asarray([[3.0, 0.3], [4.0, 0.4]]))  # columns: ‖(3, 4)‖ = 5, ‖(0.3, 0.4)‖ = 0.5
    largest = max_norm_(w, 2.0)
    assert isinstance(largest, float) and largest == pytest.approx(5.0)
    np.testing.assert_allclose(np.asarray(w.data[:, 0].tolist()), [1.2, 1.6], rtol=1e-12)  # (3, 4) · 2/5
    np.testing.assert_array_equal(np.asarray(w.data[:, 1].tolist()), [0.3, 0.4])  # inside the ball: untouched


def test_norms_after_projection(xp):
    rng = np.random.default_rng(0)
    data = rng.standard_normal((50, 20)) * rng.uniform(0.1, 2.0, 20)  # column norms ≈ 0.7 … 14
    w = Parameter(xp.asarray(data.copy()))  # a copy: the projection is in place
    before = np.linalg.norm(data, axis=0)
    max_norm_(w, 3.0)
    after = np.linalg.norm(np.asarray(w.data.tolist()), axis=0)
    np.testing.assert_allclose(after, np.minimum(before, 3.0), rtol=1e-12)
    outside = before > 3.0
    assert outside.any() and (~outside).any()
    np.testing.assert_array_equal(np.asarray(w.data.tolist())[:, ~outside], data[:, ~outside])
    got = np.asarray(w.data.tolist())[:, outside]
    np.testing.assert_allclose(got / np.linalg.norm(got, axis=0), data[:, outside] / before[outside], rtol=1e-12)


def test_linear_convention_columns_are_units():
    """Linear's weight is (D_in, D_out): unit j's incoming vector is the column W[:, j]."""
    layer = nn.Linear(6, 4, rng=np.random.default_rng(0)).astype(np.float64)
    layer.weight.data *= 10.0
    bias = layer.bias.data.copy()
    max_norm_(layer, 1.5)
    np.testing.assert_allclose(np.linalg.norm(layer.weight.data, axis=0), 1.5, rtol=1e-12)  # per column
    assert not np.allclose(np.linalg.norm(layer.weight.data, axis=1), 1.5)  # rows are not the units
    np.testing.assert_array_equal(layer.bias.data, bias)  # biases are not constrained


def test_axis_and_iterables_and_dtype():
    rng = np.random.default_rng(1)
    a = Parameter((rng.standard_normal((4, 3, 2)) * 5).astype(np.float32))  # units on axis 0
    b = nn.Linear(5, 3, rng=rng)
    b.weight.data *= 20.0
    ref = a.data.copy()
    max_norm_([a], 1.0, axis=0)
    norms = np.sqrt((a.data.astype(np.float64) ** 2).sum(axis=(1, 2)))
    np.testing.assert_allclose(norms, np.minimum(np.sqrt((ref.astype(np.float64) ** 2).sum(axis=(1, 2))), 1.0),
                               rtol=1e-5)
    assert a.data.dtype == np.float32
    max_norm_([b, a], 1.0)  # layers and Parameters mixed
    assert np.linalg.norm(b.weight.data, axis=0).max() <= 1.0 + 1e-6


def test_in_place_keeps_optimizer_state_and_leaves_optimizer_alone():
    layer = nn.Linear(3, 2, rng=np.random.default_rng(2)).astype(np.float64)
    opt = SGD(layer.parameters(), lr=0.5, momentum=0.9)
    array = layer.weight.data
    layer.weight.grad[...] = -10.0
    opt.step()
    max_norm_(layer, 0.5)
    assert layer.weight.data is array  # same array: the optimizer's references stay valid
    np.testing.assert_allclose(np.linalg.norm(layer.weight.data, axis=0), 0.5, rtol=1e-12)


def test_zero_column_and_errors():
    w = Parameter(np.zeros((3, 2)))
    assert max_norm_(w, 1.0) == 0.0 and not np.isnan(w.data).any()
    with pytest.raises(ValueError, match="max_norm"):
        max_norm_(w, -1.0)
    with pytest.raises(TypeError, match="max_norm_"):
        max_norm_([np.zeros((3, 2))], 1.0)
