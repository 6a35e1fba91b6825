"""Learning-rate schedules: each sets ``optimizer.lr`` from the number of ``.step()`` calls so far.

Legend: t the schedule's step count (``last_epoch``, 0 at construction), η₀ the optimizer's lr
when the schedule was built (``base_lr``), η_t the lr after t calls to ``.step()``.

Call ``scheduler.step()`` after ``optimizer.step()``, once per epoch or once per batch, as in
PyTorch. Building a schedule already sets ``optimizer.lr`` to η_0 (0 at the start of a warm-up). Each
schedule computes η_t in closed form from (η₀, t); PyTorch's ``torch.optim.lr_scheduler``
gives the same values (it updates recursively, so the last digits may differ).
See chapters/01-mlp.md#schedules.
"""
from __future__ import annotations

import math
import time

from .optimizers import Optimizer, _check_number

__all__ = ["LRScheduler", "StepLR", "CosineAnnealingLR", "WarmupCosine", "LambdaLR", "WallClockCosine"]


def _check_int(owner: str, name: str, value, low: int) -> int:
    if isinstance(value, bool) or not hasattr(value, "__index__"):  # int or NumPy integer
        raise TypeError(f"{owner}: {name} must be an integer, got {type(value).__name__}")
    value = int(value)
    if value < low:
        raise ValueError(f"{owner}: expected {name} >= {low}, got {value}")
    return value


class LRScheduler:
    """Base class: ``step()`` advances t and sets ``optimizer.lr = get_lr()``; subclasses write ``lr_at(t)``."""

    def __init__(self, optimizer):
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(self).__name__}: expected a scratchnet optimizer, got {type(optimizer).__name__}")
        self.optimizer = optimizer
        self.base_lr = optimizer.lr  # η₀
        self.last_epoch = 0  # t
        optimizer.lr = self.get_lr()

    def lr_at(self, t: int) -> float:
        raise NotImplementedError(f"{type(self).__name__} does not define lr_at")

    def get_lr(self) -> float:
        """η_t for the current step count t."""
        return float(self.lr_at(self.last_epoch))

    def get_last_lr(self) -> list:
        """``[optimizer.lr]``, as PyTorch's ``get_last_lr`` (one group)."""
        return [self.optimizer.lr]

    def step(self) -> float:
        """t ← t + 1 and optimizer.lr ← η_t; returns the new lr."""
        self.last_epoch += 1
        self.optimizer.lr = self.get_lr()
        return self.optimizer.lr

    def state_dict(self) -> dict:
        return {"last_epoch": self.last_epoch, "base_lr": self.base_lr}

    def load_state_dict(self, state) -> "LRScheduler":
        self.last_epoch = int(state["last_epoch"])
        self.base_lr = float(state["base_lr"])
        self.optimizer.lr = self.get_lr()
        return self

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_lr={self.base_lr}, t={self.last_epoch}, lr={self.optimizer.lr})"


class StepLR(LRScheduler):
    """η_t = η₀ · γ^⌊t / step_size⌋ (decay by γ every ``step_size`` steps)."""

    def __init__(self, optimizer, step_size, gamma=0.1):
        self.step_size = _check_int("StepLR", "step_size", step_size, 1)
        self.gamma = _check_number("StepLR", "gamma", gamma)
        super().__init__(optimizer)

    def lr_at(self, t):
        return self.base_lr * self.gamma ** (t // self.step_size)


class CosineAnnealingLR(LRScheduler):
    """η_t = η_min + (η₀ − η_min) · (1 + cos(π t / T_max)) / 2.

    Past T_max the cosine continues (it climbs back towards η₀ by 2·T_max), as in PyTorch.
    """

    def __init__(self, optimizer, T_max, eta_min=0.0):
        self.T_max = _check_int("CosineAnnealingLR", "T_max", T_max, 1)
        self.eta_min = _check_number("CosineAnnealingLR", "eta_min", eta_min)
        super().__init__(optimizer)

    def lr_at(self, t):
        return self.eta_min + (self.base_lr - self.eta_min) * (1.0 + math.cos(math.pi * t / self.T_max)) / 2.0


class WarmupCosine(LRScheduler):
    """Linear warm-up from 0, then a half cosine down to ``min_lr``, then flat at ``min_lr``.

        η_t = η₀ · t / W                                           for t < W (W = warmup_steps)
        η_t = η_min + (η₀ − η_min) · (1 + cos(π · min(1, (t − W)/(S − W)))) / 2   for t ≥ W

    with S = total_steps. The first step therefore runs at η_0 = 0 when W > 0 (the convention of
    ``transformers.get_cosine_schedule_with_warmup``, which this equals for min_lr = 0).
    """

    def __init__(self, optimizer, warmup_steps, total_steps, min_lr=0.0):
        self.warmup_steps = _check_int("WarmupCosine", "warmup_steps", warmup_steps, 0)
        self.total_steps = _check_int("WarmupCosine", "total_steps", total_steps, 1)
        if self.total_steps < self.warmup_steps:
            raise ValueError(f"WarmupCosine: total_steps ({total_steps}) must be >= warmup_steps ({warmup_steps})")
        self.min_lr = _check_number("WarmupCosine", "min_lr", min_lr)
        super().__init__(optimizer)

    def lr_at(self, t):
        W, S = self.warmup_steps, self.total_steps
        if t < W:
            return self.base_lr * t / W  # linear warm-up
        progress = min(1.0, (t - W) / max(1, S - W))  # 0 → 1 over the cosine phase
        return self.min_lr + (self.base_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress)) / 2.0


class LambdaLR(LRScheduler):
    """η_t = η₀ · fn(t) for any Python function ``fn`` of the step count."""

    def __init__(self, optimizer, fn):
        if not callable(fn):
            raise TypeError(f"LambdaLR: fn must be callable (t -> factor), got {type(fn).__name__}")
        self.fn = fn
        super().__init__(optimizer)

    def lr_at(self, t):
        factor = self.fn(t)
        return self.base_lr * float(factor)


class WallClockCosine(LRScheduler):
    """Linear warm-up over ``warmup_steps``, then a half cosine to ``min_lr`` laid over wall-clock time.

        η = η₀ · t / W                                  for t < W
        η = η_min + (η₀ − η_min) · (1 + cos(π · min(1, (τ − τ_W) / (τ_end − τ_W)))) / 2   after

    with τ the clock, τ_W the time the warm-up ended and τ_end = creation time + ``minutes``. A step
    schedule needs the number of steps in advance; this one needs only the budget, so the decay ends
    with the budget however fast the machine turns out to be (the price: runs are not bit-reproducible).
    """

    def __init__(self, optimizer, warmup_steps, minutes, min_lr=0.0, *, clock=time.perf_counter):
        self.warmup_steps, self.min_lr, self.clock = int(warmup_steps), float(min_lr), clock
        self.end = clock() + 60.0 * float(minutes)
        self.warm_end = None  # τ_W, set at the first step after the warm-up
        super().__init__(optimizer)

    def lr_at(self, t):
        if t < self.warmup_steps:
            return self.base_lr * t / self.warmup_steps  # linear warm-up
        now = self.clock()
        if self.warm_end is None:
            self.warm_end = now
        progress = min(1.0, (now - self.warm_end) / max(1e-9, self.end - self.warm_end))  # 0 → 1 over the budget
        return self.min_lr + (self.base_lr - self.min_lr) * (1.0 + math.cos(math.pi * progress)) / 2.0
