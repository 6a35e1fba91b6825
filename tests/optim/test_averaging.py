"""ExponentialMovingAverage and update_batch_norm: the averaging recursion, the swap in and out of the
averaged weights, and batch-norm statistics recomputed as plain averages over batches."""
import numpy as np
import pytest

from scratchnet import nn
from scratchnet.optim import SGD, ExponentialMovingAverage, update_batch_norm


def _model(rng=0):
    return nn.Sequential(nn.Linear(3, 4, rng=rng), nn.BatchNorm1d(4), nn.ReLU(), nn.Linear(4, 2, rng=rng + 1))


def test_update_follows_the_recursion():
    model = _model()
    ema = ExponentialMovingAverage(model, decay=0.9)
    expected = [p.data.astype(np.float64) for p in model.parameters()]
    rng = np.random.default_rng(0)
    for _ in range(5):
        for p in model.parameters():
            p.data += rng.standard_normal(p.data.shape).astype(p.data.dtype)
        ema.update()
        expected = [0.9 * e + 0.1 * p.data for e, p in zip(expected, model.parameters())]
    for e, a in zip(expected, ema.averages):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)
    assert ema.updates == 5


def test_decay_zero_tracks_the_weights_and_applied_restores_them():
    model = _model()
    ema = ExponentialMovingAverage(model, decay=0.0)
    x = np.random.default_rng(1).standard_normal((8, 3)).astype(np.float32)
    model.zero_grad()
    model(x)
    model.backward(np.ones((8, 2), np.float32))
    SGD(model.parameters(), lr=0.1).step()
    ema.update()
    for a, p in zip(ema.averages, model.parameters()):
        np.testing.assert_array_equal(a, p.data)
    live = [p.data.copy() for p in model.parameters()]
    ema.averages[0][...] = 7.0
    with ema.applied() as m:
        assert m is model
        assert np.all(model.parameters()[0].data == 7.0)
    for w, p in zip(live, model.parameters()):
        np.testing.assert_array_equal(w, p.data)


def test_applied_restores_on_error():
    model = _model()
    ema = ExponentialMovingAverage(model, decay=0.5)
    live = [p.data.copy() for p in model.parameters()]
    ema.averages[1][...] = -3.0
    with pytest.raises(RuntimeError):
        with ema.applied():
            raise RuntimeError("inside")
    for w, p in zip(live, model.parameters()):
        np.testing.assert_array_equal(w, p.data)


def test_state_dict_round_trip_and_errors():
    model = _model()
    ema = ExponentialMovingAverage(model, decay=0.99)
    for a in ema.averages:
        a += 1.0
    ema.updates = 3
    state = ema.state_dict()
    other = ExponentialMovingAverage(_model(), decay=0.5)
    other.load_state_dict(state)
    assert other.decay == 0.99 and other.updates == 3
    for a, b in zip(ema.averages, other.averages):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(KeyError, match="ExponentialMovingAverage.load_state_dict"):
        other.load_state_dict({"decay": 0.9})
    bad = dict(state)
    bad["layers.0.weight"] = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict(bad)


@pytest.mark.parametrize("decay", [-0.1, 1.0, 1.5, float("nan")])
def test_bad_decay(decay):
    with pytest.raises(ValueError, match="ExponentialMovingAverage: expected decay"):
        ExponentialMovingAverage(_model(), decay=decay)


def test_needs_a_module():
    with pytest.raises(TypeError, match="expected a Module"):
        ExponentialMovingAverage([np.zeros(3)])


def test_update_batch_norm_is_the_plain_average_of_batch_statistics():
    model = _model()
    model.eval()
    bn = model.layers[1]
    bn.running_mean[...] = 100.0
    rng = np.random.default_rng(2)
    batches = [rng.standard_normal((16, 3)).astype(np.float32) * (i + 1) for i in range(4)]
    assert update_batch_norm(model, batches) == 4
    h = [b @ model.layers[0].weight.data + model.layers[0].bias.data for b in batches]   # BN's inputs
    np.testing.assert_allclose(bn.running_mean, np.mean([a.mean(0) for a in h], axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(bn.running_var, np.mean([a.var(0, ddof=1) for a in h], axis=0), rtol=1e-4)
    assert bn.momentum == 0.1 and not model.training and not bn.caches


def test_update_batch_norm_without_batch_norm_and_with_no_batches():
    plain = nn.Sequential(nn.Linear(3, 2, rng=0))
    assert update_batch_norm(plain, [np.zeros((2, 3), np.float32)]) == 0
    with pytest.raises(ValueError, match="update_batch_norm: batches was empty"):
        update_batch_norm(_model(), [])


def test_applied_keeps_batch_norm_statistics_recomputed_inside():
    model = _model()
    bn = model.layers[1]
    before = bn.running_mean.copy(), bn.running_var.copy()
    ema = ExponentialMovingAverage(model, decay=0.9)
    batch = np.random.default_rng(3).standard_normal((16, 3)).astype(np.float32) + 5
    with ema.applied():
        update_batch_norm(model, [batch])
        assert not np.allclose(bn.running_mean, before[0])
    np.testing.assert_array_equal(bn.running_mean, before[0])
    np.testing.assert_array_equal(bn.running_var, before[1])
