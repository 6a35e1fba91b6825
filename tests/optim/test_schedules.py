"""Learning-rate schedules: hand values, PyTorch's lr_scheduler over 30 steps, errors."""
import math

import numpy as np
import pytest

from scratchnet.nn import Parameter
from scratchnet.optim import SGD, CosineAnnealingLR, LambdaLR, StepLR, WarmupCosine


def _opt(lr=1.0):
    return SGD([Parameter(np.zeros(1))], lr=lr)


def _trace(sched, steps):
    """lr before any step, then after each of ``steps`` calls to ``.step()``."""
    lrs = [sched.optimizer.lr]
    for _ in range(steps):
        sched.step()
        lrs.append(sched.optimizer.lr)
    return lrs


def test_step_lr_by_hand():
    assert _trace(StepLR(_opt(1.0), step_size=2, gamma=0.5), 5) == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]


def test_cosine_by_hand():
    lrs = _trace(CosineAnnealingLR(_opt(1.0), T_max=4, eta_min=0.2), 4)
    # 0.2 + 0.8 (1 + cos(π t/4)) / 2 for t = 0..4
    np.testing.assert_allclose(lrs, [1.0, 0.2 + 0.4 * (1 + math.sqrt(0.5)), 0.6, 0.2 + 0.4 * (1 - math.sqrt(0.5)), 0.2])


def test_warmup_cosine_by_hand():
    sched = WarmupCosine(_opt(1.0), warmup_steps=2, total_steps=6)
    lrs = _trace(sched, 8)
    c = math.sqrt(0.5)
    # warm-up 0, 1/2, then (1 + cos(π k/4))/2 for k = 0..4, then flat at min_lr = 0
    np.testing.assert_allclose(lrs, [0.0, 0.5, 1.0, (1 + c) / 2, 0.5, (1 - c) / 2, 0.0, 0.0, 0.0], atol=1e-15)
    assert sched.get_lr() == 0.0 and sched.get_last_lr() == [0.0]
    lrs = _trace(WarmupCosine(_opt(1.0), warmup_steps=0, total_steps=2, min_lr=0.1), 3)
    np.testing.assert_allclose(lrs, [1.0, 0.55, 0.1, 0.1])


def test_lambda_lr_by_hand():
    assert _trace(LambdaLR(_opt(2.0), lambda t: 1.0 / (t + 1)), 3) == [2.0, 1.0, 2.0 / 3.0, 0.5]


def _hf_warmup_cosine(W, S, base, min_lr):
    """The same schedule written as a PyTorch LambdaLR factor (transformers' form plus a floor)."""
    def factor(t):
        if t < W:
            return t / W
        progress = min(1.0, (t - W) / max(1, S - W))
        return (min_lr + (base - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))) / base
    return factor


@pytest.mark.parametrize("name", ["step", "cosine", "cosine_past_tmax", "lambda", "warmup_cosine"])
def test_matches_pytorch_30_steps(name):
    torch = pytest.importorskip("torch")
    lrs = torch.optim.lr_scheduler
    base = 0.3
    topt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=base)
    opt = _opt(base)
    fn = lambda t: 0.9 ** t + 0.01 * t  # noqa: E731
    ours, theirs = {
        "step": (lambda: StepLR(opt, step_size=7, gamma=0.3), lambda: lrs.StepLR(topt, step_size=7, gamma=0.3)),
        "cosine": (lambda: CosineAnnealingLR(opt, T_max=30, eta_min=0.01),
                   lambda: lrs.CosineAnnealingLR(topt, T_max=30, eta_min=0.01)),
        "cosine_past_tmax": (lambda: CosineAnnealingLR(opt, T_max=8, eta_min=0.05),
                             lambda: lrs.CosineAnnealingLR(topt, T_max=8, eta_min=0.05)),
        "lambda": (lambda: LambdaLR(opt, fn), lambda: lrs.LambdaLR(topt, fn)),
        "warmup_cosine": (lambda: WarmupCosine(opt, warmup_steps=5, total_steps=25, min_lr=0.02),
                          lambda: lrs.LambdaLR(topt, _hf_warmup_cosine(5, 25, base, 0.02))),
    }[name]
    sched, tsched = ours(), theirs()
    for step in range(31):
        np.testing.assert_allclose(opt.lr, topt.param_groups[0]["lr"], rtol=1e-12, atol=1e-15,
                                   err_msg=f"{name}: lr differs from PyTorch after {step} steps")
        topt.step()
        tsched.step()
        sched.step()


def test_state_dict_resumes():
    opt = _opt(1.0)
    sched = CosineAnnealingLR(opt, T_max=10)
    for _ in range(4):
        sched.step()
    opt2 = _opt(123.0)
    sched2 = CosineAnnealingLR(opt2, T_max=10).load_state_dict(sched.state_dict())
    assert opt2.lr == opt.lr and sched2.step() == sched.step()


@pytest.mark.parametrize("make, exc, match", [
    (lambda o: StepLR(o, step_size=0), ValueError, "step_size >= 1"),
    (lambda o: StepLR(o, step_size=1.5), TypeError, "integer"),
    (lambda o: StepLR(o, step_size=2, gamma=-1.0), ValueError, "gamma"),
    (lambda o: CosineAnnealingLR(o, T_max=0), ValueError, "T_max"),
    (lambda o: WarmupCosine(o, warmup_steps=10, total_steps=5), ValueError, "total_steps"),
    (lambda o: WarmupCosine(o, warmup_steps=-1, total_steps=5), ValueError, "warmup_steps"),
    (lambda o: LambdaLR(o, 0.5), TypeError, "callable"),
    (lambda o: StepLR("not an optimizer", step_size=1), TypeError, "scratchnet optimizer"),
])
def test_errors(make, exc, match):
    with pytest.raises(exc, match=match):
        make(_opt())
