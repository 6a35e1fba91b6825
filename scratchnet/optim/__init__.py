"""Optimizers, learning-rate schedules, gradient clipping and the max-norm constraint.

    opt = Adam(model.parameters(), lr=1e-3)
    sched = WarmupCosine(opt, warmup_steps=100, total_steps=10_000)
    ...; opt.zero_grad(); model.backward(dlogits); clip_grad_norm(model.parameters(), 1.0)
    opt.step(); sched.step()
    ema = ExponentialMovingAverage(model, 0.999); ...; ema.update()   # averaged weights for evaluation
"""
from .averaging import ExponentialMovingAverage, update_batch_norm  # noqa: F401
from .clip import clip_grad_norm  # noqa: F401
from .constraints import max_norm_  # noqa: F401
from .optimizers import SGD, Adam, AdamW, Optimizer, RMSprop  # noqa: F401
from .schedules import CosineAnnealingLR, LambdaLR, LRScheduler, StepLR, WallClockCosine, WarmupCosine  # noqa: F401

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop", "LRScheduler", "StepLR", "CosineAnnealingLR",
           "WarmupCosine", "LambdaLR", "WallClockCosine",
           "clip_grad_norm", "max_norm_", "ExponentialMovingAverage", "update_batch_norm"]
