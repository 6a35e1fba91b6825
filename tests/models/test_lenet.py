"""LeNet-5 (paper and modern): architecture facts, module gradchecks, overfit-one-batch, real MNIST input."""
import numpy as np
import pytest

from scratchnet import nn
from scratchnet.gradcheck import assert_module_gradients
from scratchnet.models.lenet import C3_TABLE, LeNet5, LeNet5Modern, lenet_input
from scratchnet.testing import overfit_batch


def test_paper_architecture():
    m = LeNet5(rng=0)
    assert sum(len(c) for c in C3_TABLE) == 60  # Table I: 60 connections
    c3 = m.layers[4]
    assert c3.num_connections() * 25 + 16 == 1516  # the paper's C3 parameter count
    assert m.num_trainable() == 156 + 12 + 1516 + 32 + 48120 + 10164 + 850
    assert not (c3.weight.data * (1 - c3.mask)).any()
    x = np.zeros((3, 1, 32, 32), np.float32)
    assert m(x).shape == (3, 10) and LeNet5Modern(rng=0)(x).shape == (3, 10)
    with pytest.raises(ValueError, match="32, 32"):
        m(np.zeros((3, 1, 28, 28), np.float32))


@pytest.mark.parametrize("cls", [LeNet5, LeNet5Modern])
def test_module_gradcheck(cls, rng):
    m = cls(rng=0).astype(np.float64)
    assert_module_gradients(m, rng.standard_normal((2, 1, 32, 32)), fast=True, n_dirs=2)


def test_subsampling_and_connection_table_gradcheck(rng):
    m = LeNet5(rng=0).astype(np.float64)
    part = nn.Sequential(*m.layers[2:8])  # S2, tanh, C3 (masked), tanh, S4, tanh
    assert_module_gradients(part, rng.standard_normal((1, 6, 14, 12)))
    # the masked weights receive no gradient
    assert not (m.layers[4].weight.grad * (1 - m.layers[4].mask)).any()


@pytest.mark.parametrize("make,lr", [(lambda: LeNet5(init="lecun", rng=0), 1e-2), (lambda: LeNet5(rng=0), 1e-2),
                                     (lambda: LeNet5Modern(rng=0), 3e-3)])
def test_overfit_one_batch(make, lr):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 1, 32, 32)).astype(np.float32)
    y = rng.integers(0, 10, 8)
    m = make()
    assert overfit_batch(m, nn.CrossEntropyLoss(), x, y, steps=100, lr=lr) < 0.05
    assert (m(x).argmax(1) == y).all()


def test_lenet_input(dataset_dir):
    dataset_dir("mnist")
    from scratchnet.data import load_mnist
    images, _ = load_mnist("test")
    x = lenet_input(images[:500])
    assert x.shape == (500, 1, 32, 32) and x.dtype == np.float32
    assert float(x.min()) >= -0.1 - 1e-6 and float(x.max()) <= 1.175 + 1e-6 and abs(float(x.mean())) < 0.2
    assert (x[:, :, :2] == np.float32(-0.1)).all()
