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


# -- a backward that raises keeps the caches -------------------------------------------------------------
def _grads(model):
    return [p.grad.copy() for p in model.parameters()]


@pytest.mark.parametrize("make, x_shape, dy_shape, bad_shape", [
    (lambda rng: nn.Linear(5, 3, rng=rng), (4, 5), (4, 3), (4, 4)),
    (lambda rng: nn.Sequential(nn.Linear(5, 8, rng=rng), nn.ReLU(), nn.Linear(8, 3, rng=rng)), (4, 5), (4, 3), (4, 2)),
    (lambda rng: nn.Conv2d(2, 3, 3, padding=1, rng=rng), (2, 2, 5, 5), (2, 3, 5, 5), (2, 4, 5, 5)),
])
def test_backward_that_raises_keeps_the_cache_for_a_retry(rng, make, x_shape, dy_shape, bad_shape):
    x = rng.standard_normal(x_shape).astype(np.float32)
    dy = rng.standard_normal(dy_shape).astype(np.float32)
    clean = make(np.random.default_rng(1))
    clean(x)
    dx_clean = clean.backward(dy)
    model = make(np.random.default_rng(1))
    model(x)
    before = [len(m.caches) for m in model.modules()]
    with pytest.raises((ValueError, TypeError)):
        model.backward(np.ones(bad_shape, np.float32))
    assert [len(m.caches) for m in model.modules()] == before  # nothing popped for good
    dx = model.backward(dy)  # the retry works ...
    np.testing.assert_array_equal(dx, dx_clean)
    for g, g_clean in zip(_grads(model), _grads(clean)):  # ... and gives a clean run's gradients
        np.testing.assert_array_equal(g, g_clean)
    assert all(not m.caches for m in model.modules())


def test_composite_backward_that_raises_midway_restores_every_child(rng):
    class Recompute(nn.Module):  # a user module: its backward pops one child, re-runs the other, then fails
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Linear(3, 4, rng=rng), nn.Linear(4, 2, rng=rng)
            self.fail = True

        def forward(self, x):
            self.push(x)
            return self.b(self.a(x))

        def backward(self, dy):
            x = self.pop()
            dh = self.b.backward(dy)
            self.a(x)  # pushes a second cache onto a (a recomputation)
            if self.fail:
                raise RuntimeError("boom")
            self.a.pop()
            return self.a.backward(dh)

    model = Recompute()
    x = rng.standard_normal((5, 3)).astype(np.float32)
    model(x)
    stacks = [(m, list(m.caches)) for m in model.modules()]
    with pytest.raises(RuntimeError, match="boom"):
        model.backward(np.ones((5, 2), np.float32))
    for m, caches in stacks:  # the pop of model and of b pushed back, the push on a undone
        assert len(m.caches) == len(caches) and all(c is d for c, d in zip(m.caches, caches))
    model.fail = False
    assert model.backward(np.ones((5, 2), np.float32)).shape == (5, 3)
    assert Recompute.backward.__qualname__.endswith("Recompute.backward")  # the wrapper keeps the name


# -- save and load never leave a half-written file or a half-loaded model ---------------------------------
def _params(model):
    return {k: v.copy() for k, v in model.state_dict().items()}


def _assert_unchanged(model, before):
    after = model.state_dict()
    assert list(after) == list(before)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])


def test_save_that_fails_midway_keeps_the_old_checkpoint(rng, tmp_path, monkeypatch):
    path = tmp_path / "model.npz"
    old = small_mlp(rng)
    old.save(path)
    real_savez = np.savez

    def savez_then_crash(file, **arrays):
        real_savez(file, **arrays)
        file.write(b"half of something")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", savez_then_crash)
    with pytest.raises(OSError, match="disk full"):
        small_mlp(np.random.default_rng(5)).save(path)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]  # no temporary file left
    fresh = small_mlp(np.random.default_rng(7))
    fresh.load(path)
    _assert_unchanged(fresh, _params(old))


def test_save_replaces_the_old_checkpoint(rng, tmp_path):
    path = tmp_path / "model.npz"
    small_mlp(np.random.default_rng(3)).save(path)
    new = small_mlp(rng)
    new.save(str(path))
    fresh = small_mlp(np.random.default_rng(4)).load(path)
    _assert_unchanged(fresh, _params(new))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]


def _corrupt(kind, raw):
    if kind == "truncated":
        return raw[: len(raw) // 2]
    if kind == "flipped byte":  # inside the first array's data: only the zip CRC notices
        b = bytearray(raw)
        b[raw.index(b"\x93NUMPY") + 128 + 3] ^= 0x01
        return bytes(b)
    if kind == "empty":
        return b""
    if kind == "not a zip":
        return b"hello, I am a text file\n" * 10
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["truncated", "flipped byte", "empty", "not a zip"])
def test_corrupt_checkpoint_is_one_clear_error_and_leaves_the_model_unchanged(rng, tmp_path, kind):
    path = tmp_path / "model.npz"
    small_mlp(rng).save(path)
    path.write_bytes(_corrupt(kind, path.read_bytes()))
    model = small_mlp(np.random.default_rng(8))
    before = _params(model)
    with pytest.raises(nn.CheckpointError, match="model.npz") as info:
        model.load(path)
    assert isinstance(info.value, ValueError)
    _assert_unchanged(model, before)


def test_checkpoint_with_bad_json_is_a_checkpoint_error(rng, tmp_path):
    path = tmp_path / "model.npz"
    w = np.ones((3, 2), np.float32)
    np.savez(path, __meta__=np.array('{"keys": ["weight", "bias"'), arr_0=w, arr_1=np.ones(2, np.float32))
    model = nn.Linear(3, 2, rng=rng)
    before = _params(model)
    with pytest.raises(nn.CheckpointError, match=r"model\.npz is corrupt .*JSONDecodeError"):
        model.load(path)
    _assert_unchanged(model, before)


def test_wrong_shape_in_the_last_key_leaves_every_parameter_unchanged(rng, tmp_path):
    path = tmp_path / "model.npz"
    src = nn.Sequential(nn.Linear(5, 8, rng=rng), nn.ReLU(), nn.Linear(8, 3, rng=rng))
    src.save(path)
    model = nn.Sequential(nn.Linear(5, 8, rng=rng), nn.ReLU(), nn.Linear(8, 4, rng=rng))  # last layer differs
    before = _params(model)
    with pytest.raises(nn.CheckpointError, match=r"model\.npz does not fit .*layers\.2\.weight has shape"):
        model.load(path)
    _assert_unchanged(model, before)  # layers.0 was not copied either
    state = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Linear(8, 4)).state_dict()
    state["layers.2.bias"] = np.zeros(5, np.float32)  # only the last key is wrong
    with pytest.raises(ValueError, match="layers.2.bias has shape"):
        model.load_state_dict(state)
    _assert_unchanged(model, before)
    state["layers.2.bias"] = np.arange(4)  # int → float casts
    model.load_state_dict(state)
    np.testing.assert_array_equal(model[2].bias.data, [0, 1, 2, 3])
    state["layers.2.bias"] = np.array(["a", "b", "c", "d"])
    before = _params(model)
    with pytest.raises(TypeError, match="layers.2.bias has dtype float32 in the model but <U1"):
        model.load_state_dict(state)
    _assert_unchanged(model, before)
