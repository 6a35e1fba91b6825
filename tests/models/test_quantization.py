"""int8 quantisation of trained networks (chapter 34): BN folding and fusion leave the function unchanged,
calibration, conversion to the int8 path (per-tensor and per-channel), the int8 network against its
fake-quantised simulation, 4× smaller weights, QAT modules gradchecked with frozen rounding, QAT
overfitting one batch, errors."""
import numpy as np
import pytest

from scratchnet.gradcheck.cases import quant  # noqa: F401  (registers the quantisation cases)
from scratchnet.gradcheck.registry import CASES
from scratchnet.models.lenet import LeNet5Modern
from scratchnet.models.mobilenet import MobileNet, MobileNetV2
from scratchnet.models.quant import (
    Int8GlobalAvgPool,
    Int8MaxPool,
    Observer,
    QuantLinear,
    calibrate,
    convert,
    float_weight_bytes,
    fuse,
    int8_weight_bytes,
)
from scratchnet.nn import Conv2d, CrossEntropyLoss, Flatten, Linear, MaxPool2d, ReLU, Sequential
from scratchnet.optim import Adam
from scratchnet.train import predict


def _mobilenet(rng):
    model = MobileNet(alpha=0.25, blocks=((32, 2), (64, 2)), stem=16, rng=0)
    for bn in [m for m in model.modules() if hasattr(m, "running_var")]:  # BN as if trained
        bn.running_mean[...] = 0.2 * rng.standard_normal(bn.running_mean.shape)
        bn.running_var[...] = rng.uniform(0.3, 3.0, bn.running_var.shape)
        bn.weight.data[...] = rng.uniform(0.5, 1.5, bn.weight.shape)
    return model


@pytest.mark.parametrize("make,shape", [(lambda r: LeNet5Modern(rng=0), (6, 1, 32, 32)),
                                        (_mobilenet, (6, 1, 28, 28))], ids=["lenet5", "mobilenet"])
def test_fused_net_computes_the_float_model(make, shape, rng):
    model = make(rng)
    x = rng.standard_normal(shape).astype(np.float32)
    net = fuse(model)
    np.testing.assert_allclose(predict(net, x), predict(model, x), rtol=1e-4, atol=1e-5)
    assert len(net.quant_layers()) == (5 if shape[2] == 32 else 6)  # BN and ReLU folded into their layer


@pytest.mark.parametrize("per_channel", [True, False])
def test_int8_net_tracks_its_fake_quant_simulation(per_channel, rng):
    model = _mobilenet(rng)
    x = rng.standard_normal((32, 1, 28, 28)).astype(np.float32)
    net = calibrate(fuse(model), x)
    int8 = convert(net, per_channel=per_channel)
    logits = int8(x)
    assert logits.dtype == np.float32 and logits.shape == (32, 10)
    simulated = predict(net.enable_fake_quant(), x)  # fake quant: the same rounding, in float
    ref = predict(fuse(model), x)
    assert np.abs(logits - simulated).max() < 0.2 * np.abs(ref - simulated).max() + 0.02
    assert (logits.argmax(1) == ref.argmax(1)).mean() >= 0.8


def test_per_tensor_is_worse_than_per_channel_on_depthwise_layers(rng):
    model = _mobilenet(rng)
    for bn in [model.blocks[0].bn1, model.blocks[1].bn1]:  # depthwise channels of very different scales
        bn.weight.data[...] = np.exp(rng.uniform(-3, 1, bn.weight.shape))
    x = rng.standard_normal((32, 1, 28, 28)).astype(np.float32)
    net = calibrate(fuse(model), x)
    ref = predict(net, x)
    err = {pc: np.abs(convert(net, per_channel=pc)(x) - ref).mean() for pc in (True, False)}
    assert err[True] < err[False]


def test_weights_are_four_times_smaller(rng):
    model = LeNet5Modern(rng=0)
    x = rng.standard_normal((8, 1, 32, 32)).astype(np.float32)
    int8 = convert(calibrate(fuse(model), x))
    w_float = sum(layer.weight.data.nbytes for layer in model.layers if hasattr(layer, "weight"))
    w_int8 = sum(layer.w_q.nbytes for layer in int8.layers if hasattr(layer, "w_q"))
    assert w_float == 4 * w_int8
    assert 3.7 < float_weight_bytes(model) / int8_weight_bytes(int8) <= 4.0


@pytest.mark.parametrize("case", ["quant.quant_layers", "quant.quantnet[lenet]", "quant.quantnet[mobilenet]"])
def test_frozen_rounding_gradchecks(case):
    reports = CASES[case]()
    for report in reports if isinstance(reports, list) else [reports]:
        assert report.ok, report


def test_qat_overfits_one_batch(rng):
    model = Sequential(Conv2d(1, 8, 3, padding=1, rng=0), ReLU(), MaxPool2d(2), Flatten(), Linear(128, 10, rng=0))
    x, y = rng.standard_normal((32, 1, 8, 8)).astype(np.float32), rng.integers(0, 10, 32)
    net = calibrate(fuse(model), x).enable_fake_quant()
    net.train()
    opt, loss_fn = Adam(net.parameters(), lr=3e-3), CrossEntropyLoss()
    losses = []
    for _ in range(60):
        losses.append(float(loss_fn(net(x), y)))
        opt.zero_grad()
        net.backward(loss_fn.backward())
        opt.step()
    assert losses[-1] < 0.1 * losses[0]
    assert (convert(net)(x).argmax(1) == y).mean() >= 0.9  # and the int8 network learnt it too


def test_observers(rng):
    a = rng.standard_normal((4, 1000))
    mm, pc = Observer(), Observer("percentile", percentile=99.0)
    for row in a:
        mm.update(row)
        pc.update(row)
    assert float(mm.hi) == a.max() and float(mm.lo) == a.min()
    assert 2.0 < float(pc.hi) < float(mm.hi)
    ema = Observer(momentum=0.5)
    ema.update(np.array([0.0, 2.0]))
    ema.update(np.array([0.0, 4.0]))
    assert float(ema.hi) == 3.0
    with pytest.raises(RuntimeError, match="no data observed"):
        Observer().qparams()
    with pytest.raises(ValueError, match="Observer: method"):
        Observer("mse")


def test_int8_pooling_on_codes(rng):
    q = rng.integers(-128, 128, (2, 3, 6, 6)).astype(np.int8)
    np.testing.assert_array_equal(Int8MaxPool(2)(q), q.reshape(2, 3, 3, 2, 3, 2).max(axis=(3, 5)))
    mean = q.astype(float).mean(axis=(2, 3))
    assert np.abs(Int8GlobalAvgPool()(q) - mean).max() <= 0.5


def test_errors(rng):
    with pytest.raises(ValueError, match="residual additions are not supported"):
        fuse(MobileNetV2(alpha=0.25, rng=0))
    x = rng.standard_normal((4, 1, 32, 32)).astype(np.float32)
    int8 = convert(calibrate(fuse(LeNet5Modern(rng=0)), x))
    with pytest.raises(RuntimeError, match="Int8Net: inference only"):
        int8.backward(np.ones((4, 10), np.float32))
    with pytest.raises(ValueError):
        QuantLinear(np.ones((3, 2)), np.zeros(2))(np.ones((4, 5)))
