"""Module mechanics: registration, shared parameters, the cache stack, no_grad, save/load, errors."""
import json

import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn
from scratchnet.gradcheck import assert_module_gradients, check_module


def small_mlp(rng, *, dropout=0.2):
    return nn.Sequential(nn.Linear(5, 8, rng=rng), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(dropout, rng=rng),
                         nn.Linear(8, 6, rng=rng), nn.GELU(), nn.LayerNorm(6), nn.Linear(6, 3, rng=rng))


@pytest.mark.parametrize("training", [True, False])
def test_mlp_with_batchnorm_and_dropout_gradchecks(rng, training):
    model = small_mlp(rng).astype(np.float64).train(training)
    x = rng.standard_normal((7, 5))
    assert_module_gradients(model, [x])


def test_module_gradcheck_catches_a_wrong_backward(rng):
    class Broken(nn.Linear):
        def backward(self, dy):
            return 2.0 * super().backward(dy)  # wrong input gradient

    report = check_module(Broken(3, 2, rng=rng).astype(np.float64), [rng.standard_normal((4, 3))])
    assert not report.ok and "FAIL" in str(report)
    assert report.results[0].name == "input0" and not report.results[0].ok


class Tied(nn.Module):
    """The same Linear applied twice, plus a parameter shared through a list."""

    def __init__(self, rng):
        super().__init__()
        self.lin = nn.Linear(4, 4, rng=rng)
        self.again = [self.lin]



def test_shared_parameter_listed_once(rng):
    m = Tied(rng)
    names = [n for n, _ in m.named_parameters()]
    assert names == ["lin.weight", "lin.bias"]
    assert len(m.parameters()) == 2


def test_module_used_twice_backpropagates_and_accumulates(rng):
    lin = nn.Linear(4, 4, rng=rng).astype(np.float64)

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.act = lin, nn.Tanh()

        def forward(self, x):
            return self.lin(self.act(self.lin(x)))

        def backward(self, dy):
            return self.lin.backward(self.act.backward(self.lin.backward(dy)))

    assert_module_gradients(Twice(), [rng.standard_normal((3, 4))])


def test_backward_before_forward_raises():
    with pytest.raises(RuntimeError, match=r"Linear.backward: no cached forward pass"):
        nn.Linear(2, 3).backward(np.ones((1, 3), np.float32))


def test_no_grad_caches_nothing(rng):
    model = small_mlp(rng)
    with sn.no_grad():
        model(rng.standard_normal((4, 5)).astype(np.float32))
    assert all(not m._caches for m in model.modules())
    with pytest.raises(RuntimeError, match="no cached forward pass"):
        model.backward(np.ones((4, 3), np.float32))


def test_caches_lists_the_pending_forward_passes(rng):
    lin = nn.Linear(5, 3, rng=0)
    x1, x2 = rng.standard_normal((2, 5)).astype(np.float32), rng.standard_normal((4, 5)).astype(np.float32)
    lin(x1), lin(x2)
    assert [c[0].shape for c in lin.caches] == [(2, 5), (4, 5)]  # oldest first
    lin.backward(np.ones((4, 3), np.float32))
    assert len(lin.caches) == 1 and isinstance(lin.caches, tuple)
    lin.clear_caches()
    assert lin.caches == ()


def test_train_eval_switches_every_child(rng):
    model = small_mlp(rng).eval()
    assert not any(m.training for m in model.modules())
    x = rng.standard_normal((4, 5)).astype(np.float32)
    np.testing.assert_array_equal(model(x), model(x))  # eval: dropout off, running stats used
    model.train()
    assert all(m.training for m in model.modules())


def test_save_load_round_trip_exact(rng, tmp_path):
    model = small_mlp(rng)
    model(rng.standard_normal((6, 5)).astype(np.float32))  # moves the running statistics
    path = tmp_path / "model.npz"
    model.save(path)
    fresh = small_mlp(np.random.default_rng(99))
    fresh.load(path)
    for (k, a), (k2, b) in zip(model.state_dict().items(), fresh.state_dict().items()):
        assert k == k2 and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    with np.load(path, allow_pickle=False) as z:
        meta = json.loads(str(z["__meta__"]))
    assert meta["config"]["class"] == "Sequential" and "layers.1.running_mean" in meta["keys"]


def test_load_refuses_pickles(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, __meta__=np.array(json.dumps({"keys": ["w"]})), arr_0=np.array([object()], dtype=object))
    with pytest.raises(ValueError, match="never unpickle"):
        nn.Linear(2, 2).load(path)


def test_load_rejects_wrong_shapes_and_class(rng, tmp_path):
    path = tmp_path / "lin.npz"
    nn.Linear(3, 2).save(path)
    with pytest.raises(ValueError, match=r"weight has shape \(4, 2\) in the model but \(3, 2\)"):
        nn.Linear(4, 2).load(path)
    with pytest.raises(ValueError, match="saved from a Linear"):
        nn.Sequential(nn.Linear(3, 2)).load(path)


def test_bad_input_names_the_layer():
    with pytest.raises(ValueError, match=r"Linear\(4, 3\): expected input \(\.\.\., 4\), got shape \(2, 5\)"):
        nn.Linear(4, 3)(np.ones((2, 5), np.float32))
    with pytest.raises(ValueError, match=r"BatchNorm2d\(3\): expected input of rank \(4,\) with 3 channels"):
        nn.BatchNorm2d(3)(np.ones((2, 3), np.float32))
    with pytest.raises(ValueError, match=r"LayerNorm\(4\): expected input"):
        nn.LayerNorm(4)(np.ones((2, 3), np.float32))
    with pytest.raises(TypeError, match="linear: all float inputs must share one dtype"):
        nn.Linear(2, 2)(np.ones((1, 2), np.float64))


def test_parameters_default_float32_and_astype(rng):
    model = small_mlp(rng)
    assert all(p.dtype == np.float32 for p in model.parameters())
    model.astype(np.float64)
    assert all(p.dtype == np.float64 and p.grad.dtype == np.float64 for p in model.parameters())
    assert model.layers[1].running_mean.dtype == np.float64


def test_to_cpu_is_noop_and_gpu_errors_without_device(rng):
    model = small_mlp(rng)
    assert model.to("cpu") is model
    if not sn.backend.gpu_available():
        with pytest.raises(RuntimeError, match="no usable GPU"):
            model.to("gpu")


def test_seed_sets_default_generator():
    sn.seed(3)
    a = nn.Linear(3, 3).weight.data.copy()
    sn.seed(3)
    np.testing.assert_array_equal(a, nn.Linear(3, 3).weight.data)


def test_mlp_matches_pytorch_twin(rng):
    pytest.importorskip("torch")
    from scratchnet.testing import from_torch, to_torch, torch_twin
    model = small_mlp(rng, dropout=0.0).astype(np.float64)
    twin = torch_twin(model)
    x = rng.standard_normal((7, 5))
    y = model(x)
    tx = to_torch(x, requires_grad=True)
    ty = twin(tx)
    dy = rng.standard_normal(y.shape)
    ty.backward(to_torch(dy))
    np.testing.assert_allclose(y, from_torch(ty), atol=1e-10)
    np.testing.assert_allclose(model.backward(dy), from_torch(tx.grad), atol=1e-10)
    np.testing.assert_allclose(model.layers[0].weight.grad, from_torch(twin[0].weight.grad).T, atol=1e-10)
    np.testing.assert_allclose(model.layers[1].running_var, from_torch(twin[1].running_var), atol=1e-12)
