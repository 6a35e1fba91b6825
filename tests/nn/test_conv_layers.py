"""Conv2d, ConvTranspose2d, pooling and LRN layers: module gradchecks, init, errors, save/load."""
import numpy as np
import pytest

from scratchnet import nn
from scratchnet.gradcheck import assert_module_gradients


@pytest.mark.parametrize("layer", [
    lambda: nn.Conv2d(4, 6, 3, stride=2, padding=1, groups=2, rng=0),
    lambda: nn.Conv2d(4, 4, (3, 2), dilation=(1, 2), groups=4, bias=False, init="he", rng=0),
    lambda: nn.ConvTranspose2d(4, 6, 3, stride=2, padding=1, output_padding=1, groups=2, rng=0),
    lambda: nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False),
    lambda: nn.GlobalAvgPool2d(),
    lambda: nn.LocalResponseNorm(3, alpha=0.5, beta=0.75, k=1.0),
])
def test_layer_gradcheck(layer, rng):
    m = layer().astype(np.float64)
    assert_module_gradients(m, rng.standard_normal((2, 4, 5, 6)))


def test_maxpool_layer_gradcheck(rng):
    x = (rng.permutation(2 * 3 * 6 * 6).reshape(2, 3, 6, 6) / 5.0).astype(np.float64)
    assert_module_gradients(nn.MaxPool2d(3, stride=2, padding=1), x)


def test_conv_init_and_shapes():
    c = nn.Conv2d(8, 16, 3, groups=2, rng=np.random.default_rng(0))
    assert c.weight.shape == (16, 4, 3, 3) and c.bias.shape == (16,) and c.weight.dtype == np.float32
    assert np.abs(c.weight.data).max() <= 1 / np.sqrt(36)  # PyTorch default: U(±1/√fan_in)
    h = nn.Conv2d(64, 64, 3, init="he", rng=0)
    assert abs(h.weight.data.std() - np.sqrt(2 / 576)) < 0.003 and not h.bias.data.any()
    t = nn.ConvTranspose2d(8, 6, 4, groups=2, rng=0)
    assert t.weight.shape == (8, 3, 4, 4)
    x = np.zeros((2, 8, 5, 5), np.float32)
    assert c(x).shape == (2, 16, 3, 3)
    with pytest.raises(ValueError, match="divisible by groups"):
        nn.Conv2d(6, 4, 3, groups=4)
    with pytest.raises(ValueError, match="init"):
        nn.Conv2d(2, 2, 3, init="bogus")
    with pytest.raises(RuntimeError, match="no cached forward"):
        nn.Conv2d(2, 2, 3).backward(np.zeros((1, 2, 1, 1), np.float32))


def test_conv_save_load(tmp_path):
    a, b = nn.Conv2d(3, 4, 3, rng=0), nn.Conv2d(3, 4, 3, rng=1)
    a.save(tmp_path / "c.npz")
    b.load(tmp_path / "c.npz")
    np.testing.assert_array_equal(a.weight.data, b.weight.data)


@pytest.mark.parametrize("jit", ["1", "0"])
@pytest.mark.parametrize("layer", [lambda: nn.Conv2d(3, 4, 3, padding=1, rng=0), lambda: nn.MaxPool2d(2),
                                   lambda: nn.AvgPool2d(3, stride=2, padding=1),
                                   lambda: nn.ConvTranspose2d(3, 2, 2, 2, rng=0)])
def test_layer_backward_rejects_a_wrong_dy(layer, jit, monkeypatch, rng):
    """A dy of another shape or dtype is a clear error naming the op; the layer's cache survives it."""
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    m = layer()
    y = m(rng.standard_normal((2, 3, 8, 8)).astype(np.float32))
    with pytest.raises(ValueError, match="_backward: expected upstream gradient dy of shape"):
        m.backward(np.ones((2, y.shape[1], 40, 40), np.float32))
    with pytest.raises(TypeError, match="_backward: expected upstream gradient dy of dtype float32"):
        m.backward(np.ones(y.shape))
    assert m.backward(np.ones_like(y)).shape == (2, 3, 8, 8)
