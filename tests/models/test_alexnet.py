"""Scaled-down AlexNet: end-to-end gradcheck with LRN and dropout (fixed rng), the ablation
switches, overfitting one batch, the input pipeline and augmentation hook."""
import numpy as np
import pytest

from scratchnet.gradcheck import assert_module_gradients
from scratchnet.models.alexnet import AlexNet, fashion_input, make_prepare
from scratchnet.nn import CrossEntropyLoss, Dropout, LocalResponseNorm
from scratchnet.testing import overfit_batch


@pytest.mark.parametrize("lrn,dropout", [(True, 0.5), (False, 0.0)])
def test_tiny_alexnet_gradcheck(rng, lrn, dropout):
    net = AlexNet(num_classes=4, image_size=16, widths=(3, 4, 4, 4, 3), hidden=6, lrn=lrn, dropout=dropout,
                  rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 1, 16, 16))
    assert_module_gradients(net, x, fast=True)


def test_lrn_matters_in_gradcheck(rng):
    """With α large the LRN layers change the function; the check still passes."""
    net = AlexNet(num_classes=3, image_size=16, widths=(3, 4, 4, 4, 3), hidden=5, dropout=0.5, rng=rng,
                  dtype=np.float64)
    for m in net.modules():
        if isinstance(m, LocalResponseNorm):
            m.opts["alpha"] = 2.0
    assert_module_gradients(net, rng.standard_normal((2, 1, 16, 16)), fast=True)


def test_ablation_switches(rng):
    full = AlexNet(rng=rng)
    kinds = [type(m).__name__ for m in full.layers]
    assert kinds.count("LocalResponseNorm") == 2 and kinds.count("Dropout") == 2
    assert kinds.count("MaxPool2d") == 3 and kinds.count("Conv2d") == 5 and kinds.count("Linear") == 3
    bare = AlexNet(lrn=False, dropout=0, rng=rng)
    assert not any(isinstance(m, (LocalResponseNorm, Dropout)) for m in bare.layers)
    assert full.num_parameters() == bare.num_parameters()
    assert full(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
    with pytest.raises(ValueError, match=r"AlexNet: expected input \(N, 1, 28, 28\)"):
        full(np.zeros((2, 1, 32, 32), np.float32))
    with pytest.raises(ValueError, match="too small"):
        AlexNet(image_size=6, pool_padding=0)
    assert full.layers[-6].weight.shape == (64 * 4 * 4, 512)  # padded pools: 28 → 14 → 7 → 4
    assert AlexNet(pool_padding=0, rng=rng).layers[-6].weight.shape == (64 * 2 * 2, 512)  # 28 → 13 → 6 → 2


def test_dropout_only_in_training(rng):
    net = AlexNet(widths=(4, 4, 4, 4, 4), hidden=16, rng=rng)
    x = rng.standard_normal((3, 1, 28, 28)).astype(np.float32)
    net.eval()
    np.testing.assert_array_equal(net(x), net(x))
    net.train()
    assert not np.allclose(net(x), net(x))
    net.clear_caches()


def test_overfit_one_batch(rng):
    net = AlexNet(widths=(8, 8, 8, 8, 8), hidden=32, dropout=0.0, rng=rng)
    x = rng.standard_normal((16, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    assert overfit_batch(net, CrossEntropyLoss(), x, y, steps=60, lr=3e-3) < 0.05


def test_input_and_prepare(rng):
    img = rng.integers(0, 256, (5, 28, 28)).astype(np.uint8)
    x = fashion_input(img)
    assert x.shape == (5, 1, 28, 28) and x.dtype == np.float32
    prep = make_prepare(rng=np.random.default_rng(1))
    xa, ya = prep(img, np.arange(5), True)
    xe, _ = prep(img, None, False)
    np.testing.assert_array_equal(xe, x)
    assert xa.shape == x.shape and not np.array_equal(xa, x)
    # augmented values are the image's values or the background
    background = np.float32((0 - 0.2860) / 0.3530)
    assert np.isin(xa, np.append(x.ravel(), background)).all()
