"""Weight averaging: an exponential moving average of a model's parameters, and batch-norm statistics
recomputed for the averaged weights.

Legend: θ a parameter after step t, θ̄ its average, d the decay (0 ≤ d < 1), 1/(1 − d) the averaging
window in steps. See chapters/30-dcgan.md#dcgan-averaging.

    ema = ExponentialMovingAverage(G, decay=0.999)
    for step ...:
        ...; opt.step(); ema.update()               # θ̄ ← d·θ̄ + (1 − d)·θ
    with ema.applied():                              # θ̄ in the model, θ back on exit
        update_batch_norm(G, latent_batches)         # running statistics of the averaged weights
        samples = generate(G, 1000)

A GAN's generator (Yazıcı et al. 2019) and a noisy SGD's iterate (Polyak & Juditsky 1992) both wander
around a good point instead of settling on it; their average sits nearer to it.
"""
from __future__ import annotations

import contextlib

from ..nn.layers import _BatchNorm
from ..nn.module import Module, no_grad
from .optimizers import _check_number

__all__ = ["ExponentialMovingAverage", "update_batch_norm"]


# start-ema
class ExponentialMovingAverage:
    """θ̄ ← d·θ̄ + (1 − d)·θ for every parameter of ``model``, after each call of ``update``.

    θ̄ starts at the model's weights when this object is made. Buffers (batch norm's running
    statistics) are not averaged: the statistics of averaged weights are not the average of the
    statistics; recompute them with ``update_batch_norm`` inside ``applied()``.
    """

    def __init__(self, model: Module, decay: float = 0.999):
        if not isinstance(model, Module):
            raise TypeError(f"ExponentialMovingAverage: expected a Module, got {type(model).__name__}")
        self.decay = _check_number("ExponentialMovingAverage", "decay", decay, low=0.0, high=1.0, high_open=True)
        self.model = model
        self.params = model.parameters()
        self.averages = [p.data.copy() for p in self.params]  # θ̄, one array per parameter
        self.updates = 0

    def update(self) -> None:
        """One averaging step; call it after each ``optimizer.step()``."""
        d = self.decay
        for avg, p in zip(self.averages, self.params):
            if avg.shape != p.data.shape:
                raise ValueError(f"ExponentialMovingAverage.update: parameter of shape {tuple(p.data.shape)} "
                                 f"no longer matches its average's {tuple(avg.shape)}")
            avg *= d  # d·θ̄
            avg += (1.0 - d) * p.data  # + (1 − d)·θ, into the same array (state_dict and applied() read it)
        self.updates += 1

    @contextlib.contextmanager
    def applied(self):
        """Within the block the model holds θ̄; on exit, even on error, its own weights θ come back, and
        so do its buffers (running statistics recomputed inside the block stay inside it)."""
        live = [p.data.copy() for p in self.params]
        buffers = [(mod, name, getattr(mod, name).copy()) for _, mod, name in self.model.named_buffers()]
        try:
            for avg, p in zip(self.averages, self.params):
                p.data[...] = avg
            yield self.model
        finally:
            for w, p in zip(live, self.params):
                p.data[...] = w
            for mod, name, value in buffers:
                getattr(mod, name)[...] = value

    def state_dict(self) -> dict:
        """The averages keyed like ``model.state_dict()``'s parameters, plus the decay and update count."""
        names = [n for n, _ in self.model.named_parameters()]
        state = {n: a.copy() for n, a in zip(names, self.averages)}
        state["decay"], state["updates"] = self.decay, self.updates
        return state

    def load_state_dict(self, state: dict) -> None:
        names = [n for n, _ in self.model.named_parameters()]
        missing = [n for n in names if n not in state]
        if missing:
            raise KeyError(f"ExponentialMovingAverage.load_state_dict: missing averages {missing}")
        for n, avg in zip(names, self.averages):
            if tuple(state[n].shape) != avg.shape:
                raise ValueError(f"ExponentialMovingAverage.load_state_dict: {n} has shape "
                                 f"{tuple(state[n].shape)}, the model's is {avg.shape}")
        for n, avg in zip(names, self.averages):
            avg[...] = state[n]
        self.decay, self.updates = float(state.get("decay", self.decay)), int(state.get("updates", 0))
# end-ema


# start-update-bn
def update_batch_norm(model: Module, batches) -> int:
    """Recompute every batch-norm layer's running mean and variance as plain averages over ``batches``.

    Each batch goes through ``model`` in training mode under ``no_grad`` with momentum 1/(i + 1) on
    the i-th batch (i from 0), so after B batches running_mean = (1/B)·Σ_i μ_i, the mean of the batch
    means (and likewise the unbiased variances). Momentum and the training flag are restored
    afterwards. Returns the number of batches seen; a model without batch norm is left unchanged.
    """
    layers = [m for m in model.modules() if isinstance(m, _BatchNorm)]
    if not layers:
        return 0
    saved = [(m, m.momentum) for m in layers]
    was_training = model.training
    seen = 0
    try:
        model.train()
        with no_grad():
            for i, batch in enumerate(batches):
                for m in layers:
                    m.momentum = 1.0 / (i + 1)  # i = 0 overwrites the old statistics
                model(batch)
                seen += 1
    finally:
        for m, momentum in saved:
            m.momentum = momentum
        model.train(was_training)
    if seen == 0:
        raise ValueError("update_batch_norm: batches was empty")
    return seen
# end-update-bn
