"""Magnitude pruning (chapter 33): layer-wise thresholds and masks, the optimizer never reviving a
pruned weight, the prune–retrain schedule, CSR inference, whole-model gradchecks, overfitting one
batch while pruned, save/load of the masks, errors."""
import numpy as np
import pytest

from scratchnet import nn
from scratchnet.gradcheck.cases import compress  # noqa: F401  (registers the compression cases)
from scratchnet.gradcheck.registry import CASES
from scratchnet.models.pruning import (
    LeNet5Caffe,
    LeNet300100,
    MaskedLinear,
    apply_masks,
    layer_thresholds,
    magnitude_masks,
    masked_layers,
    prune_retrain,
    sensitivity,
    sparse_forward,
    sparsity_report,
    to_sparse,
)
from scratchnet.optim import SGD, Adam, AdamW

SPARSITY = {"layers.0": 0.92, "layers.2": 0.91, "layers.4": 0.74}  # Han et al.'s LeNet-300-100 densities


def _small_mlp(rng, dtype=np.float64):
    kw = dict(rng=rng, dtype=dtype)
    return nn.Sequential(MaskedLinear(12, 16, **kw), nn.ReLU(), MaskedLinear(16, 4, **kw))


def _steps(model, opt, x, y, n):
    loss_fn = nn.CrossEntropyLoss()
    for _ in range(n):
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        model.backward(loss_fn.backward())
        opt.step()
    return float(loss)


def test_parameter_counts():
    assert LeNet300100(rng=0).num_parameters() == 784 * 300 + 300 + 300 * 100 + 100 + 100 * 10 + 10 == 266_610
    assert LeNet5Caffe(rng=0).num_parameters() == 520 + 25_050 + 400_500 + 5_010 == 431_080


@pytest.mark.parametrize("case", ["compress.lenet300100[pruned]", "compress.lenet5caffe[pruned]"])
def test_whole_model_gradcheck(case):
    assert CASES[case]().ok


def test_layer_wise_thresholds_reach_each_layers_sparsity():
    model = LeNet300100(rng=0)
    thresholds = layer_thresholds(model, SPARSITY)
    apply_masks(model, magnitude_masks(model, SPARSITY))
    rows = {r["name"]: r for r in sparsity_report(model)}
    for name, layer in masked_layers(model):
        assert rows[name]["density"] == pytest.approx(1 - SPARSITY[name], abs=1e-3)
        w = np.abs(layer.weight.data)
        assert w[layer.mask == 1].min() > thresholds[name]  # every kept weight is above the threshold
        assert np.all(layer.weight.data[layer.mask == 0] == 0)
    assert rows["total"]["weights"] == 266_200 and rows["total"]["density"] < 1 / 12  # ≥ 12× fewer


def test_masks_only_shrink_from_stage_to_stage(rng):
    model = LeNet300100(rng=0)
    previous = None
    for s in (0.5, 0.8, 0.9):
        apply_masks(model, magnitude_masks(model, s))
        mask = model.layers[0].mask.copy()
        if previous is not None:
            assert np.all(mask <= previous)
        previous = mask
    assert model.layers[0].mask.mean() == pytest.approx(0.1, abs=1e-3)


@pytest.mark.parametrize("make_opt", [
    lambda p: SGD(p, lr=0.1, momentum=0.9, weight_decay=1e-2),
    lambda p: SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2),
    lambda p: Adam(p, lr=1e-2, weight_decay=1e-2),
    lambda p: AdamW(p, lr=1e-2, weight_decay=0.1),
], ids=["sgd-momentum-wd", "sgd-nesterov", "adam-l2", "adamw"])
def test_the_optimizer_never_revives_a_pruned_weight(make_opt, rng):
    model = _small_mlp(rng)
    x, y = rng.standard_normal((20, 12)), rng.integers(0, 4, 20)
    opt = make_opt(model.parameters())
    _steps(model, opt, x, y, 5)  # dense training first: the optimizer now holds momentum / moments
    apply_masks(model, magnitude_masks(model, 0.7), opt)
    _steps(model, opt, x, y, 10)
    for _, layer in masked_layers(model):
        assert np.all(layer.weight.data[layer.mask == 0] == 0)
        assert np.all(layer.weight.grad[layer.mask == 0] == 0)


def test_without_clearing_the_optimizer_state_momentum_moves_pruned_weights(rng):
    """The pitfall apply_masks(..., optimizer) avoids; the forward still uses w ⊙ mask, so the outputs stay right."""
    model = _small_mlp(rng)
    x, y = rng.standard_normal((20, 12)), rng.integers(0, 4, 20)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    _steps(model, opt, x, y, 5)
    apply_masks(model, magnitude_masks(model, 0.7))  # optimizer not passed: stale momentum
    _steps(model, opt, x, y, 3)
    layer = model.layers[0]
    assert np.abs(layer.weight.data[layer.mask == 0]).max() > 0
    clean = [m.weight.data * m.mask for _, m in masked_layers(model)]
    out = model(x)
    for (_, m), w in zip(masked_layers(model), clean):
        m.weight.data[...] = w
    np.testing.assert_allclose(model(x), out)


def test_prune_retrain_schedule_records_each_stage(rng):
    model = _small_mlp(rng)
    x, y = rng.standard_normal((32, 12)), rng.integers(0, 4, 32)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    records = prune_retrain(model, [0.3, 0.6, {"layers.0": 0.8}], lambda stage: {"loss": _steps(model, opt, x, y, 3)},
                            optimizer=opt)
    assert [r["stage"] for r in records] == [0, 1, 2]
    densities = [r["report"][0]["density"] for r in records]
    assert densities == pytest.approx([0.7, 0.4, 0.2], abs=0.01)
    assert records[-1]["report"][1]["density"] == pytest.approx(0.4, abs=0.02)  # layers.2 left at stage 1's
    assert all(np.isfinite(r["loss"]) for r in records)


def test_sensitivity_restores_the_layer(rng):
    model = LeNet300100(rng=0, dtype=np.float64)
    x = rng.standard_normal((8, 784))
    before = model(x)
    scores = sensitivity(model, "layers.2", [0.0, 0.5, 0.99], lambda m: float(np.abs(m(x) - before).max()))
    assert scores[0] == 0 and scores[2] > scores[1] > 0
    np.testing.assert_array_equal(model(x), before)
    assert model.layers[2].mask.all()


def test_sparse_forward_equals_the_dense_forward(rng):
    model = LeNet300100(rng=0)
    apply_masks(model, magnitude_masks(model, SPARSITY))
    x = rng.standard_normal((10, 784)).astype(np.float32)
    csrs = to_sparse(model)
    assert csrs["layers.0"].shape == (300, 784) and csrs["layers.0"].nnz == int(model.layers[0].mask.sum())
    np.testing.assert_allclose(sparse_forward(model, x, csrs), model(x), rtol=1e-4, atol=1e-5)


def test_overfits_one_batch_while_pruned(rng):
    model = LeNet300100(rng=0)
    x, y = rng.standard_normal((32, 784)).astype(np.float32), rng.integers(0, 10, 32)
    opt = Adam(model.parameters(), lr=3e-3)
    apply_masks(model, magnitude_masks(model, SPARSITY), opt)
    loss = _steps(model, opt, x, y, 60)
    assert loss < 0.05
    assert (model(x).argmax(1) == y).all()
    assert sparsity_report(model)[-1]["density"] < 1 / 12


def test_masks_are_saved_and_loaded(tmp_path):
    model = LeNet300100(rng=0)
    apply_masks(model, magnitude_masks(model, 0.9))
    model.save(tmp_path / "pruned.npz")
    other = LeNet300100(rng=1)
    other.load(tmp_path / "pruned.npz")
    np.testing.assert_array_equal(other.layers[0].mask, model.layers[0].mask)
    assert sparsity_report(other)[-1]["density"] == pytest.approx(0.1, abs=1e-3)


def test_errors():
    model = LeNet300100(rng=0)
    with pytest.raises(ValueError, match=r"LeNet300100: expected input \(N, 784\)"):
        model(np.zeros((2, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"LeNet5Caffe: expected input \(N, 1, 28, 28\)"):
        LeNet5Caffe(rng=0)(np.zeros((2, 1, 32, 32), np.float32))
    with pytest.raises(ValueError, match=r"MaskedLinear\(12, 16\): expected input \(..., 12\), got shape \(2, 5\)"):
        _small_mlp(np.random.default_rng(0))(np.zeros((2, 5)))
    with pytest.raises(ValueError, match="no masked layer named"):
        magnitude_masks(model, {"fc9": 0.5})
    with pytest.raises(ValueError, match=r"sparsity of 'layers.0' must be in \[0, 1\)"):
        magnitude_masks(model, {"layers.0": 1.0})
    with pytest.raises(ValueError, match="apply_masks: mask for 'layers.0' has shape"):
        apply_masks(model, {"layers.0": np.ones((3, 3), np.float32)})
