"""Optimizers with PyTorch's update rules: SGD (momentum, Nesterov), Adam (AMSGrad), AdamW, RMSprop.

Legend: p parameter, g gradient, t step count (from 1), η learning rate (``lr``), λ weight decay,
m first moment, v second moment, b momentum buffer, ε the small constant in a denominator.

An optimizer holds Parameters (each once, even when a model shares one) and one learning rate
``opt.lr`` that the schedules in ``scratchnet.optim.schedules`` change. Every update is in place
(``p.data -= ...``), so a parameter keeps its array, dtype and device; the per-parameter state is
created on the parameter's device at its first step. Given the same parameters and gradients,
the trajectories equal PyTorch's (``torch.optim``) to rounding.
See chapters/01-mlp.md#optimizers.

Parameters may also come in PyTorch-style groups that override any option except ``lr``::

    decay = [p for n, p in model.named_parameters() if n.endswith("weight")]
    rest = [p for n, p in model.named_parameters() if not n.endswith("weight")]
    opt = AdamW([{"params": decay}, {"params": rest, "weight_decay": 0.0}], lr=3e-4)
"""
from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from ..backend import device_of, get_array_module, is_cupy, to_device
from ..kernels import optim as fused
from ..nn.module import Parameter

__all__ = ["Optimizer", "SGD", "Adam", "AdamW", "RMSprop"]


def _check_number(owner: str, name: str, value, *, low=0.0, high=None, high_open=False) -> float:
    """``value`` as a float, or a ValueError naming the optimizer, the option and the valid range."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{owner}: {name} must be a number, got {type(value).__name__}")
    value = float(value)
    too_high = high is not None and (value >= high if high_open else value > high)
    if not math.isfinite(value) or value < low or too_high:
        upper = "" if high is None else (f", {high})" if high_open else f", {high}]")
        want = f"in [{low}{upper}" if high is not None else f">= {low}"
        raise ValueError(f"{owner}: expected {name} {want}, got {value}")
    return value


class Optimizer:
    """Base class: the parameter groups, one ``lr``, per-parameter state, ``zero_grad``, ``step``.

    A subclass lists its options in ``defaults`` (passed to ``__init__``), the names of its
    per-parameter state arrays in ``_state_names``, and writes ``_update(p, state, **options)``.
    """

    _state_names: tuple = ()

    def __init__(self, params, lr, **defaults):
        name = type(self).__name__
        self.lr = lr  # validated by the property below
        self.defaults = {k: self._check_option(k, v) for k, v in defaults.items()}
        self.param_groups = self._build_groups(params)
        n = sum(len(g["params"]) for g in self.param_groups)
        if n == 0:
            raise ValueError(f"{name}: got an empty parameter list (did the model register its Parameters? "
                             "pass model.parameters())")
        self.state = {}  # id(p) -> {state name: array or int}, filled at a parameter's first step

    # -- options -------------------------------------------------------------------------
    @property
    def lr(self) -> float:
        """The learning rate η used by the next ``step`` (schedules set it)."""
        return self._lr

    @lr.setter
    def lr(self, value) -> None:
        self._lr = _check_number(type(self).__name__, "lr", value)

    def _check_option(self, key, value):
        """Validate one option (subclasses add ranges); returns the stored value."""
        return value

    def _build_groups(self, params):
        """Groups of unique Parameters: an iterable of Parameters, or of dicts {"params": [...], **options}."""
        name = type(self).__name__
        if isinstance(params, Parameter):
            raise TypeError(f"{name}: params must be an iterable of Parameters (e.g. model.parameters()), "
                            "got a single Parameter; wrap it in a list")
        items = list(params)
        raw_groups = items if items and all(isinstance(i, dict) for i in items) else [{"params": items}]
        seen, groups = set(), []
        for raw in raw_groups:
            if "params" not in raw:
                raise ValueError(f"{name}: a parameter group needs a 'params' entry, got keys {sorted(raw)}")
            unknown = sorted(set(raw) - {"params"} - set(self.defaults))
            if "lr" in unknown:
                raise ValueError(f"{name}: per-group 'lr' is not supported; there is one opt.lr for all groups")
            if unknown:
                raise ValueError(f"{name}: unknown option(s) {unknown} in a parameter group; "
                                 f"valid options are {sorted(self.defaults)}")
            group = {"params": []}
            group.update(self.defaults)
            group.update({k: self._check_option(k, v) for k, v in raw.items() if k != "params"})
            plist = [raw["params"]] if isinstance(raw["params"], Parameter) else list(raw["params"])
            for p in plist:
                if not isinstance(p, Parameter):
                    raise TypeError(f"{name}: expected scratchnet Parameters, got {type(p).__name__}")
                if id(p) not in seen:  # a shared Parameter is updated once
                    seen.add(id(p))
                    group["params"].append(p)
            groups.append(group)
        return groups

    @property
    def params(self) -> list:
        """Every Parameter, in group order (the order used by ``state_dict``)."""
        return [p for g in self.param_groups for p in g["params"]]

    # -- the loop ------------------------------------------------------------------------
    def zero_grad(self) -> None:
        """Set every parameter's gradient to zero (layers ADD into ``.grad``)."""
        for p in self.params:
            if p.grad is not None:
                p.grad[...] = 0

    def step(self) -> None:
        """Apply one update to every parameter that has a gradient."""
        for group in self.param_groups:
            options = {k: v for k, v in group.items() if k != "params"}
            for p in group["params"]:
                if p.grad is None:
                    continue
                if p.grad.shape != p.data.shape:
                    raise ValueError(f"{type(self).__name__}.step: gradient of shape {tuple(p.grad.shape)} "
                                     f"for a parameter of shape {tuple(p.data.shape)}")
                self._update(p, self._state_for(p), **options)

    def _update(self, p, state, **options) -> None:
        raise NotImplementedError(f"{type(self).__name__} does not define _update")

    def _state_for(self, p) -> dict:
        """The parameter's state, moved/cast to follow the parameter after ``module.to`` / ``astype``."""
        state = self.state.setdefault(id(p), {})
        for key, value in state.items():
            if hasattr(value, "dtype") and (is_cupy(value) != is_cupy(p.data) or value.dtype != p.data.dtype):
                state[key] = to_device(value, device_of(p.data)).astype(p.data.dtype)
        return state

    # -- saving --------------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """NumPy arrays only (``np.savez``-able, never pickled): ``lr`` and ``state.<i>.<name>``,
        where ``i`` indexes ``self.params``."""
        sd = OrderedDict(lr=np.array(self.lr))
        for i, p in enumerate(self.params):
            for key, value in self.state.get(id(p), {}).items():
                sd[f"state.{i}.{key}"] = np.array(to_device(value, "cpu") if hasattr(value, "shape") else value,
                                                  copy=True)
        return sd

    def load_state_dict(self, state) -> "Optimizer":
        """Restore ``lr`` and the per-parameter state saved by ``state_dict`` (onto each parameter's device)."""
        name = type(self).__name__
        params = self.params
        new_state = {}
        for key, value in state.items():
            if key == "lr":
                continue
            parts = key.split(".")
            if len(parts) != 3 or parts[0] != "state" or not parts[1].isdigit() or parts[2] not in self._state_names:
                raise KeyError(f"{name}.load_state_dict: unexpected key {key!r} (expected 'lr' or "
                               f"'state.<i>.<name>' with name in {self._state_names})")
            i, sname = int(parts[1]), parts[2]
            if i >= len(params):
                raise KeyError(f"{name}.load_state_dict: state for parameter {i} but this optimizer has {len(params)}")
            p, value = params[i], np.asarray(value)
            if sname == "step":
                entry = int(value)
            elif value.shape != p.data.shape:
                raise ValueError(f"{name}.load_state_dict: {key} has shape {value.shape} but parameter {i} "
                                 f"has shape {tuple(p.data.shape)}")
            else:
                xp = get_array_module(p.data)
                entry = xp.array(value, dtype=p.data.dtype)  # a copy on the parameter's device
            new_state.setdefault(id(p), {})[sname] = entry
        if "lr" in state:
            self.lr = float(np.asarray(state["lr"]))
        self.state = new_state
        return self

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v}" for k, v in self.defaults.items())
        n = sum(p.data.size for p in self.params)
        return f"{type(self).__name__}(lr={self.lr}, {opts}; {len(self.params)} tensors, {n} values)"


class SGD(Optimizer):
    """Stochastic gradient descent with optional momentum, dampening, Nesterov and L2 weight decay.

        d = g + λ p                                  (weight decay, if λ ≠ 0)
        b₁ = d;  b_t = μ b_{t−1} + (1 − τ) d          (momentum μ, dampening τ, if μ ≠ 0)
        d = d + μ b_t  (Nesterov)   or   d = b_t     (classical)
        p ← p − η d

    PyTorch's form: the first buffer is d itself (not (1 − τ) d), and the learning rate multiplies
    the buffer instead of living inside it, so changing η rescales the step at once.
    """

    _state_names = ("momentum_buffer",)

    def __init__(self, params, lr, momentum=0.0, dampening=0.0, nesterov=False, weight_decay=0.0):
        super().__init__(params, lr, momentum=momentum, dampening=dampening, nesterov=bool(nesterov),
                         weight_decay=weight_decay)
        if self.defaults["nesterov"] and (self.defaults["momentum"] <= 0 or self.defaults["dampening"] != 0):
            raise ValueError(f"SGD: nesterov=True needs momentum > 0 and dampening = 0, got "
                             f"momentum={momentum}, dampening={dampening}")

    def _check_option(self, key, value):
        if key == "nesterov":
            return bool(value)
        return _check_number("SGD", key, value)

    def _update(self, p, state, *, momentum, dampening, nesterov, weight_decay):
        grad = p.grad
        if weight_decay != 0:
            grad = grad + weight_decay * p.data  # d = g + λ p (a new array: p.grad stays as computed)
        if momentum != 0:
            buf = state.get("momentum_buffer")
            if buf is None:
                buf = state["momentum_buffer"] = grad.copy()  # b₁ = d
            else:
                buf *= momentum
                buf += (1.0 - dampening) * grad  # b_t = μ b_{t−1} + (1 − τ) d
            grad = grad + momentum * buf if nesterov else buf
        p.data -= self.lr * grad  # p ← p − η d


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015), optionally AMSGrad; ``weight_decay`` adds L2 to the gradient.

        g = g + λ p                                   (if λ ≠ 0; AdamW decays p instead)
        m_t = β₁ m_{t−1} + (1 − β₁) g
        v_t = β₂ v_{t−1} + (1 − β₂) g²
        v̂_t = max(v̂_{t−1}, v_t)  (AMSGrad)   or   v̂_t = v_t
        p ← p − η/(1 − β₁ᵗ) · m_t / (√v̂_t / √(1 − β₂ᵗ) + ε)

    PyTorch's placement of ε (outside the bias-corrected square root) is kept exactly.
    """

    _state_names = ("step", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
    _decoupled = False

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, amsgrad=False):
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=bool(amsgrad))

    def _check_option(self, key, value):
        owner = type(self).__name__
        if key == "amsgrad":
            return bool(value)
        if key == "betas":
            if not isinstance(value, (tuple, list)) or len(value) != 2:
                raise ValueError(f"{owner}: betas must be a pair (beta1, beta2), got {value!r}")
            return tuple(_check_number(owner, f"betas[{i}]", b, high=1.0, high_open=True) for i, b in enumerate(value))
        return _check_number(owner, key, value)

    def _update(self, p, state, *, betas, eps, weight_decay, amsgrad):
        xp = get_array_module(p.data)
        beta1, beta2 = betas
        grad = p.grad
        if weight_decay != 0:
            if self._decoupled:
                p.data *= 1.0 - self.lr * weight_decay  # p ← (1 − ηλ) p, outside the adaptive scaling
            else:
                grad = grad + weight_decay * p.data  # g = g + λ p, then scaled like the gradient
        if "step" not in state:
            state["step"] = 0
            state["exp_avg"] = xp.zeros_like(p.data)  # m₀ = 0
            state["exp_avg_sq"] = xp.zeros_like(p.data)  # v₀ = 0
        if amsgrad and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = xp.zeros_like(p.data)  # v̂₀ = 0
        state["step"] = t = state["step"] + 1
        m, v = state["exp_avg"], state["exp_avg_sq"]
        bias_correction1 = 1.0 - beta1 ** t
        bias_correction2_sqrt = math.sqrt(1.0 - beta2 ** t)
        step_size = self.lr / bias_correction1
        if fused.adam_update(p.data, grad, m, v, state.get("max_exp_avg_sq") if amsgrad else None, beta1=beta1,
                             beta2=beta2, step_size=step_size, bias_correction2_sqrt=bias_correction2_sqrt, eps=eps):
            return  # the same update in one fused pass (kernels/optim.py); the lines below are its reference
        m *= beta1
        m += (1.0 - beta1) * grad  # m_t = β₁ m + (1 − β₁) g
        grad_sq = grad * grad  # g² (same shape as p)
        grad_sq *= 1.0 - beta2
        v *= beta2
        v += grad_sq  # v_t = β₂ v + (1 − β₂) g²
        if amsgrad:
            v_hat = state["max_exp_avg_sq"]
            xp.maximum(v_hat, v, out=v_hat)  # v̂_t = max(v̂_{t−1}, v_t)
        else:
            v_hat = v
        denom = xp.sqrt(v_hat)  # (same shape as p)
        denom /= bias_correction2_sqrt
        denom += eps  # √v̂ / √(1 − β₂ᵗ) + ε
        update = xp.divide(m, denom, out=denom)  # m_t / denom, written over denom (one temporary less)
        update *= step_size
        p.data -= update  # p ← p − η/(1 − β₁ᵗ) · m_t / denom


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019).

        p ← p − η λ p                                 (before the Adam step, not through g)
        then the Adam update of ``Adam`` with the raw gradient g.

    The decay is not divided by √v̂, so every weight shrinks at the same rate ηλ per step.
    """

    _decoupled = True

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False):
        super().__init__(params, lr, betas=betas, eps=eps, weight_decay=weight_decay, amsgrad=amsgrad)


class RMSprop(Optimizer):
    """RMSprop (Hinton's lecture 6e), optionally centred and with momentum.

        g = g + λ p                                   (if λ ≠ 0)
        s_t = α s_{t−1} + (1 − α) g²
        a_t = α a_{t−1} + (1 − α) g,  r = √(s_t − a_t²) + ε   (centred)   or   r = √s_t + ε
        b_t = μ b_{t−1} + g / r,  p ← p − η b_t                (momentum μ > 0)
        p ← p − η g / r                                        (μ = 0)
    """

    _state_names = ("square_avg", "grad_avg", "momentum_buffer")

    def __init__(self, params, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        super().__init__(params, lr, alpha=alpha, eps=eps, weight_decay=weight_decay, momentum=momentum,
                         centered=bool(centered))

    def _check_option(self, key, value):
        if key == "centered":
            return bool(value)
        return _check_number("RMSprop", key, value)

    def _update(self, p, state, *, alpha, eps, weight_decay, momentum, centered):
        xp = get_array_module(p.data)
        grad = p.grad
        if weight_decay != 0:
            grad = grad + weight_decay * p.data  # g = g + λ p
        if "square_avg" not in state:
            state["square_avg"] = xp.zeros_like(p.data)  # s₀ = 0
        if centered and "grad_avg" not in state:
            state["grad_avg"] = xp.zeros_like(p.data)  # a₀ = 0
        if momentum > 0 and "momentum_buffer" not in state:
            state["momentum_buffer"] = xp.zeros_like(p.data)  # b₀ = 0
        square_avg = state["square_avg"]
        square_avg *= alpha
        square_avg += (1.0 - alpha) * (grad * grad)  # s_t = α s + (1 − α) g²
        if centered:
            grad_avg = state["grad_avg"]
            grad_avg *= alpha
            grad_avg += (1.0 - alpha) * grad  # a_t = α a + (1 − α) g
            rms = xp.sqrt(square_avg - grad_avg * grad_avg)  # √(s − a²): a running standard deviation
        else:
            rms = xp.sqrt(square_avg)
        rms += eps  # r
        if momentum > 0:
            buf = state["momentum_buffer"]
            buf *= momentum
            buf += grad / rms  # b_t = μ b + g / r
            p.data -= self.lr * buf
        else:
            p.data -= self.lr * (grad / rms)  # p ← p − η g / r
