"""scratchnet.exercises: the one-call checks behind the notebooks' "your turn" cells."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet import nn
from scratchnet.exercises import check_function_output, check_pair, check_train_step, reference_train_step
from scratchnet.optim import SGD


def _x(rng, shape=(4, 5)):
    x = rng.standard_normal(shape)
    return x + np.sign(x) * 0.1  # off relu's kink


def test_a_correct_pair_passes_and_is_handed_back(rng, capsys):
    def my_relu(x):
        mask = x > 0
        return x * mask, mask

    def my_relu_backward(dy, mask):
        return dy * mask

    v = check_pair((my_relu, my_relu_backward), (F.relu, F.relu_backward), [_x(rng)])
    assert v.ok and v.implemented
    fwd, bwd = v
    assert fwd is my_relu and bwd is my_relu_backward
    out = capsys.readouterr().out
    assert "correct" in out and "gradient check" in out


def test_a_stub_hands_back_the_library_pair(rng, capsys):
    def stub(*args, **kwargs):
        raise NotImplementedError("your turn")

    v = check_pair((stub, stub), (F.relu, F.relu_backward), [_x(rng)])
    assert not v.implemented and not v.ok
    fwd, bwd = v
    assert fwd is F.relu and bwd is F.relu_backward
    assert "not filled in yet" in capsys.readouterr().out


def test_a_wrong_backward_is_reported_with_the_worst_index(rng):
    def wrong_backward(dy, cache):
        return dy  # forgot the mask

    v = check_pair((F.relu, wrong_backward), (F.relu, F.relu_backward), [_x(rng)], quiet=True)
    assert not v.ok and "backward" in str(v) and "index" in str(v)
    with pytest.raises(AssertionError, match="NOT correct"):
        check_pair((F.relu, wrong_backward), (F.relu, F.relu_backward), [_x(rng)], quiet=True, strict=True)


def test_a_wrong_shape_is_named(rng):
    v = check_pair((lambda x: (x.sum(0), None), F.relu_backward), (F.relu, F.relu_backward), [_x(rng)], quiet=True)
    assert not v.ok and "shape" in str(v)


def test_a_function_without_backward(rng):
    x = rng.standard_normal((3, 4))
    v = check_function_output(lambda a: np.exp(a) / np.exp(a).sum(-1, keepdims=True),
                              lambda a: F.softmax(a)[0], [x], quiet=True)
    assert v.ok


def _make_model():
    rng = np.random.default_rng(3)
    model = nn.Sequential(nn.Linear(6, 5, rng=rng), nn.ReLU(), nn.Linear(5, 3, rng=rng))
    return model.astype(np.float64)


def test_training_step_matches_the_reference(rng):
    xb, yb = rng.standard_normal((8, 6)), rng.integers(0, 3, 8)
    v = check_train_step(reference_train_step, _make_model, lambda m: SGD(m.parameters(), lr=0.1),
                         nn.CrossEntropyLoss(), xb, yb, quiet=True)
    assert v.ok

    def forgets_zero_grad(model, loss_fn, opt, xb, yb):
        loss = loss_fn(model(xb), yb)
        model.backward(loss_fn.backward())
        opt.step()
        return float(loss)

    v = check_train_step(forgets_zero_grad, _make_model, lambda m: SGD(m.parameters(), lr=0.1),
                         nn.CrossEntropyLoss(), xb, yb, quiet=True)
    assert not v.ok


def test_wrt_leaves_a_float_input_without_gradient(rng):
    """A float input that gets no gradient (a target) is left out of the gradient check with wrt=."""
    pred, target = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))

    def my_mse(p, t):
        diff = p - t
        return (diff ** 2).mean(), (diff, p.size)

    def my_mse_backward(dloss, cache):
        diff, n = cache
        return 2.0 * diff * dloss / n

    v = check_pair((my_mse, my_mse_backward), (F.mse_loss, F.mse_loss_backward), [pred, target], wrt=[0], quiet=True)
    assert v.ok, str(v)
