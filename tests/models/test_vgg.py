"""Scaled-down VGG: a 3×3 stack gradcheck (with and without BN), the whole net, the receptive-field
and parameter arithmetic of the chapter, overfitting one batch."""
import numpy as np
import pytest

from scratchnet.gradcheck import assert_module_gradients
from scratchnet.models.vgg import VGG, VGG_CONFIGS, VGGBlock, conv_params, receptive_field
from scratchnet.nn import BatchNorm2d, Conv2d, CrossEntropyLoss
from scratchnet.testing import overfit_batch


@pytest.mark.parametrize("n_convs", [1, 2, 3])
@pytest.mark.parametrize("batch_norm", [False, True])
def test_vgg_block_gradcheck(rng, n_convs, batch_norm):
    blk = VGGBlock(2, 3, n_convs, batch_norm=batch_norm, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 2, 6, 6))
    assert_module_gradients(blk, x, fast=n_convs > 1)


def test_vgg_block_eval_mode_gradcheck(rng):
    blk = VGGBlock(2, 3, 2, batch_norm=True, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 2, 6, 6))
    blk(x)  # one training pass moves the running statistics off (0, 1)
    blk.clear_caches()
    assert_module_gradients(blk.eval(), x, fast=True)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_tiny_vgg_gradcheck(rng, batch_norm):
    net = VGG((2, 2, "M", 3, "M"), num_classes=3, image_size=8, batch_norm=batch_norm, hidden=5, dropout=0.5,
              rng=rng, dtype=np.float64)
    assert_module_gradients(net, rng.standard_normal((3, 1, 8, 8)), fast=True)


def test_receptive_field_and_parameters():
    assert receptive_field([(3, 1)] * 2) == 5 and receptive_field([(3, 1)] * 3) == 7
    assert receptive_field([(3, 1), (2, 2), (3, 1)]) == 8  # a pool doubles the step of what follows
    C = 64
    assert conv_params(C, C, 3, bias=False) * 2 == 18 * C * C < conv_params(C, C, 5, bias=False) == 25 * C * C
    assert conv_params(C, C, 3, bias=False) * 3 == 27 * C * C < 49 * C * C


def test_configs_and_options(rng):
    for name, spec in VGG_CONFIGS.items():
        net = VGG(name, rng=rng)
        convs = [m for m in net.layers if isinstance(m, Conv2d)]
        assert len(convs) == sum(1 for c in spec if c != "M")
        assert all(c.kernel_size == (3, 3) for c in convs)
        assert net(np.zeros((2, 1, 28, 28), np.float32)).shape == (2, 10)
    plain = VGG("B", batch_norm=False, dropout=0, rng=rng)
    assert not any(isinstance(m, BatchNorm2d) for m in plain.layers)
    assert all(c.bias is not None for c in plain.layers if isinstance(c, Conv2d))
    with pytest.raises(ValueError, match="VGG: expected input"):
        plain(np.zeros((2, 3, 28, 28), np.float32))


def test_overfit_one_batch(rng):
    net = VGG((8, "M", 16, "M"), batch_norm=True, hidden=32, dropout=0.0, rng=rng)
    x = rng.standard_normal((16, 1, 28, 28)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    assert overfit_batch(net, CrossEntropyLoss(), x, y, steps=40, lr=3e-3) < 0.05
