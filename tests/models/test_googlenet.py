"""GoogLeNet: the Inception module's hand-written backward (split by channel slices, sum of the
branches' dx), its options, the auxiliary head and loss, the whole network, overfitting one batch,
training through ``fit`` and PyTorch parity of the Inception module."""
import numpy as np
import pytest

from scratchnet.gradcheck import assert_module_gradients
from scratchnet.gradcheck.cases.googlenet import TotalLoss, tiny_googlenet
from scratchnet.models.googlenet import AuxClassifier, GoogLeNet, GoogLeNetLoss, Inception
from scratchnet.testing import overfit_batch, settle_eval, torch_twin
from scratchnet.train import evaluate, fit

WIDTHS = dict(c1=2, c3_reduce=2, c3=3, c5_reduce=1, c5=2)


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("pool_proj,batch_norm,kernel5,shape", [
    (2, True, 5, (2, 3, 5, 4)),   # the four branches
    (0, True, 5, (3, 3, 4, 4)),   # no pool branch
    (2, False, 5, (2, 3, 4, 5)),  # the paper's module: no batch norm, conv biases
    (2, True, 3, (2, 3, 3, 3)),   # torchvision's 3×3 "5×5" branch
])
def test_inception_gradcheck(rng, pool_proj, batch_norm, kernel5, shape, training):
    blk = Inception(3, **WIDTHS, pool_proj=pool_proj, batch_norm=batch_norm, kernel5=kernel5, rng=rng,
                    dtype=np.float64)
    if not batch_norm:
        for name, p in blk.named_parameters():
            if name.endswith("bias"):  # off the ReLU kinks
                p.data[...] = 0.1 * rng.standard_normal(p.shape)
    if not training:
        settle_eval(blk, rng)
    assert blk.out_channels == 2 + 3 + 2 + pool_proj and len(blk.branches) == (4 if pool_proj else 3)
    # every entry for the four-branch module in training mode; random directions for the others
    assert_module_gradients(blk, rng.standard_normal(shape), fast=not (training and pool_proj and kernel5 == 5
                                                                        and batch_norm))


def test_inception_backward_is_split_then_sum(rng):
    """dx = Σ_b J_bᵀ dy_b, with dy_b the channel slice of dy that branch b filled."""
    blk = Inception(3, **WIDTHS, pool_proj=2, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 3, 4, 4))
    y = blk(x)
    assert y.shape == (2, 9, 4, 4)
    dy = rng.standard_normal(y.shape)
    dx = blk.backward(dy)
    start, total = 0, np.zeros_like(x)
    for branch in blk.branches:
        out = branch(x)  # the branch alone, on the same x
        c = out.shape[1]
        np.testing.assert_allclose(y[:, start:start + c], out)  # its slice of the concatenation
        total += branch.backward(dy[:, start:start + c])
        start += c
    np.testing.assert_allclose(dx, total, atol=1e-12)


@pytest.mark.parametrize("training", [True, False])
def test_aux_head_gradcheck(rng, training):
    head = AuxClassifier(4, 3, conv_channels=3, hidden=5, map_size=7, rng=rng, dtype=np.float64)
    if not training:
        settle_eval(head, rng)
    assert head(np.zeros((2, 4, 7, 7))).shape == (2, 3)
    head.clear_caches()
    assert_module_gradients(head, rng.standard_normal((4, 4, 7, 7)), fast=True, n_dirs=4)


@pytest.mark.parametrize("batch_norm", [True, False])
def test_model_with_aux_loss_gradcheck(batch_norm):
    """The whole network through CE(main) + 0.3·Σ CE(aux): the aux heads' gradients join the trunk."""
    rng = np.random.default_rng(3)
    target = rng.integers(0, 3, 4)
    loss = TotalLoss(tiny_googlenet(rng, batch_norm=batch_norm), target)
    assert_module_gradients(loss, rng.standard_normal((4, 1, 12, 12)), fast=True, n_dirs=2)


def test_aux_gradient_enters_at_the_tap(rng):
    """A gradient given to the head on 4a alone reaches 4a and everything below it, and nothing above."""
    model = tiny_googlenet(rng)  # layout 3a, M, 4a (tap), 4d (tap)
    logits = model(rng.standard_normal((4, 1, 12, 12)))
    assert len(model.aux_logits) == 2
    model.zero_grad()
    model.backward((np.zeros_like(logits), rng.standard_normal(model.aux_logits[0].shape),
                    np.zeros_like(model.aux_logits[1])))
    above = list(model.head.parameters()) + list(model.blocks[3].parameters()) + list(model.aux_heads[1].parameters())
    below = [model.blocks[2], model.blocks[0], model.stem, model.aux_heads[0]]
    assert all(np.all(p.grad == 0) for p in above)
    assert all(any(np.any(p.grad != 0) for p in m.parameters()) for m in below)


def test_loss_combines_main_and_aux(rng):
    import scratchnet.functional as F

    model = tiny_googlenet(rng, dtype=np.float32)
    crit = GoogLeNetLoss(model, aux_weight=0.3)
    x, y = rng.standard_normal((4, 1, 12, 12)).astype(np.float32), rng.integers(0, 3, 4)
    logits = model(x)
    loss = crit(logits, y)
    main, aux = crit.last_terms
    assert np.isclose(main, float(F.cross_entropy(logits, y)[0]), rtol=1e-6)
    assert np.isclose(aux[1], float(F.cross_entropy(model.aux_logits[1], y)[0]), rtol=1e-6)
    assert len(aux) == 2 and np.isclose(float(loss), main + 0.3 * sum(aux), rtol=1e-6)
    grads = crit.backward()
    assert len(grads) == 3 and np.allclose(grads[1], 0.3 * F.cross_entropy_backward(1.0, F.cross_entropy(
        model.aux_logits[0], y)[1]), atol=1e-7)
    model.clear_caches()
    model.eval()
    crit(model(x), y)  # evaluation: no aux heads, the plain cross-entropy
    assert model.aux_logits == [] and isinstance(crit.backward(), np.ndarray)


def test_backward_without_aux_gradients_drops_their_caches(rng):
    model = tiny_googlenet(rng)
    y = model(rng.standard_normal((2, 1, 12, 12)))
    model.backward(np.ones_like(y))  # dlogits only: the aux heads get zero gradient
    assert all(not m.caches for m in model.modules())
    model(rng.standard_normal((2, 1, 12, 12)))
    with pytest.raises(ValueError, match="2 auxiliary gradients"):
        model.backward((np.ones_like(y),))
    model.clear_caches()


def test_wrong_inputs(rng):
    with pytest.raises(ValueError, match=r"Inception: expected input \(N, 3, H, W\)"):
        Inception(3, **WIDTHS, pool_proj=2, rng=rng)(np.zeros((2, 4, 5, 5), np.float32))
    with pytest.raises(ValueError, match=r"GoogLeNet: expected input \(N, 1, 28, 28\)"):
        GoogLeNet(width=1 / 16, rng=rng)(np.zeros((2, 1, 32, 32), np.float32))
    with pytest.raises(ValueError, match="AuxClassifier: map_size 2"):
        AuxClassifier(4, map_size=2, rng=rng)
    blk = Inception(3, **WIDTHS, pool_proj=2, rng=rng)
    y = blk(np.zeros((2, 3, 4, 4), np.float32))
    with pytest.raises(ValueError, match="concat_backward"):
        blk.backward(np.zeros((2, y.shape[1] + 1, 4, 4), np.float32))


def test_shapes_and_options(rng):
    model = GoogLeNet(width=1 / 16, rng=rng)
    assert model(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
    assert [a.shape for a in model.aux_logits] == [(2, 10), (2, 10)]
    model.clear_caches()
    plain = GoogLeNet(width=1 / 16, aux=False, batch_norm=False, rng=rng)
    assert plain.aux_heads == [] and not any(type(m).__name__ == "BatchNorm2d" for m in plain.modules())
    assert all(c.bias is not None for c in plain.modules() if type(c).__name__ == "Conv2d")
    assert model.num_parameters() > plain.num_parameters()
    assert model.config()["layout"][-1] == "5b"


def test_overfit_one_batch(rng):
    model = tiny_googlenet(rng, dtype=np.float32)
    x = rng.standard_normal((16, 1, 12, 12)).astype(np.float32)
    y = rng.integers(0, 3, 16)
    for head in model.aux_heads + [model.head]:  # no dropout noise while memorising
        for m in head.modules():
            if hasattr(m, "p"):
                m.p = 0.0
    assert overfit_batch(model, GoogLeNetLoss(model), x, y, steps=80, lr=1e-2) < 0.05


def test_trains_with_fit(rng):
    """``fit`` needs nothing new: the loss reads the aux logits, backward hands back a tuple."""
    from scratchnet.optim import SGD

    model = tiny_googlenet(rng, dtype=np.float32)
    x = rng.standard_normal((32, 1, 12, 12)).astype(np.float32)
    y = rng.integers(0, 3, 32)
    crit = GoogLeNetLoss(model)
    hist = fit(model, crit, SGD(model.parameters(), lr=0.05, momentum=0.9), (x, y), (x[:8], y[:8]), epochs=2,
               batch_size=8, rng=rng, disable=True)
    assert len(hist.epochs) == 2 and "val_accuracy" in hist.epochs[-1]
    assert all(not m.caches for m in model.modules())
    assert np.isfinite(evaluate(model, crit, (x, y))["loss"])


def test_inception_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    blk = Inception(4, c1=3, c3_reduce=2, c3=4, c5_reduce=2, c5=3, pool_proj=2, rng=rng, dtype=np.float64)
    for bn in [m for m in blk.modules() if hasattr(m, "running_var")]:
        bn.weight.data[...] = rng.uniform(0.5, 1.5, bn.weight.shape)
        bn.bias.data[...] = rng.standard_normal(bn.bias.shape) * 0.3


    branches = [torch_twin(b) for b in blk.branches]
    x = rng.standard_normal((3, 4, 6, 5))
    xt = torch.tensor(x, requires_grad=True)
    yt = torch.cat([b(xt) for b in branches], dim=1)
    y = blk(x)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-10)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    np.testing.assert_allclose(blk.backward(dy), xt.grad.numpy(), rtol=1e-8, atol=1e-10)
    for ours, theirs in zip(blk.branches, branches, strict=True):
        for a, b in zip([p.grad for p in ours.parameters()], [p.grad.numpy() for p in theirs.parameters()],
                        strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-8, atol=1e-10)
        for a, b in zip([m for m in ours.layers if hasattr(m, "running_var")],
                        [m for m in theirs if isinstance(m, tnn.BatchNorm2d)], strict=True):
            np.testing.assert_allclose(a.running_var, b.running_var.numpy(), rtol=1e-10)
