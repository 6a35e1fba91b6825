"""Deep Speech: module gradchecks (context window, clipped ReLU, the whole model), CTC overfit."""
import numpy as np
import pytest

import scratchnet as sn
from scratchnet import nn
from scratchnet.decode import ctc_greedy_decode
from scratchnet.gradcheck import assert_module_gradients
from scratchnet.models.deepspeech import ClippedReLU, ContextWindow, DeepSpeech, context_output_lengths
from scratchnet.optim import Adam


@pytest.mark.parametrize("context,stride", [(0, 1), (2, 1), (1, 2), (2, 3)])
def test_context_window(rng, context, stride):
    x = rng.standard_normal((2, 7, 3))
    win = ContextWindow(context, stride)
    y = win(x)
    assert y.shape == (2, int(context_output_lengths([7], stride)[0]), (2 * context + 1) * 3)
    # the centre slice of window t is frame t·stride
    np.testing.assert_array_equal(y[:, :, context * 3:(context + 1) * 3], x[:, ::stride])
    win.clear_caches()
    assert_module_gradients(win, [x])


def test_clipped_relu(rng):
    z = rng.uniform(-5, 30, size=(4, 6))
    z[np.abs(z) < 0.1] = 1.0
    z[np.abs(z - 20) < 0.1] = 10.0  # off the kinks at 0 and 20
    act = ClippedReLU(20.0)
    y = act(z)
    assert y.min() >= 0 and y.max() <= 20
    act.clear_caches()
    assert_module_gradients(act, [z])


@pytest.mark.parametrize("stride", [1, 2])
def test_deepspeech_gradcheck(rng, stride):
    model = DeepSpeech(3, 5, context=1, hidden=4, stride=stride, dropout=0.0, rng=rng, dtype=np.float64)
    x = rng.standard_normal((2, 6, 3))
    lengths = np.array([6, 4])
    assert_module_gradients(model, [x], forward_kwargs={"lengths": lengths}, fast=False)


def test_deepspeech_overfits_with_ctc(rng):
    sn.seed(0)
    model = DeepSpeech(4, 4, context=1, hidden=24, dropout=0.0, rng=rng)
    x = rng.standard_normal((3, 12, 4)).astype(np.float32)
    lengths = np.array([12, 10, 8])
    targets = np.array([[1, 2, 3], [3, 3, 0], [2, 0, 0]])
    tlen = np.array([3, 2, 1])
    crit = nn.CTCLoss()
    opt = Adam(model.parameters(), lr=1e-2)
    first = None
    for _ in range(150):
        lp = model(x, lengths)
        loss = crit(lp, targets, model.output_lengths(lengths), tlen)
        first = first if first is not None else float(loss)
        opt.zero_grad()
        model.backward(crit.backward())
        opt.step()
    assert float(loss) < 0.1 * first
    model.eval()
    with sn.no_grad():
        decoded = ctc_greedy_decode(model(x, lengths), lengths=lengths)
    assert decoded == [[1, 2, 3], [3, 3], [2]]


def test_deepspeech_save_load(tmp_path, rng):
    model = DeepSpeech(3, 5, context=1, hidden=4, rng=rng)
    model.save(tmp_path / "ds.npz")
    other = DeepSpeech(3, 5, context=1, hidden=4, rng=np.random.default_rng(1)).load(tmp_path / "ds.npz")
    for (_, a), (_, b) in zip(model.named_parameters(), other.named_parameters()):
        np.testing.assert_array_equal(a.data, b.data)
