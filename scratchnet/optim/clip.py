"""Gradient clipping by the global L2 norm (PyTorch's ``torch.nn.utils.clip_grad_norm_``).

Legend: g_i the gradient of parameter i, ‖g‖ = √(Σ_i ‖g_i‖²) the norm over all of them, c ``max_norm``.
See chapters/01-mlp.md#gradient-clipping.
"""
from __future__ import annotations

import math

import numpy as np

from ..backend import get_array_module
from ..nn.module import Parameter
from .optimizers import _check_number

__all__ = ["clip_grad_norm"]


def _sum_of_squares(grads) -> float:
    """Σ_i ‖g_i‖² as a Python float. NumPy norms are summed on the host in order (free: no device);
    CuPy norms stay on the GPU, are summed there in float64, and cross the bus once, in ``float``."""
    squares, on_device = 0.0, []
    for g in grads:
        xp = get_array_module(g)
        norm_i = xp.linalg.norm(g.reshape(-1))  # ‖g_i‖, a 0-d array on g's device
        if xp is np:
            norm_i = float(norm_i)
            squares += norm_i * norm_i
        else:
            on_device.append(norm_i.astype(xp.float64) ** 2)  # no synchronisation here
    if on_device:
        squares += float(get_array_module(on_device[0]).stack(on_device).sum())  # the one synchronisation
    return squares


def clip_grad_norm(params, max_norm, eps=1e-6, *, error_if_nonfinite=False) -> float:
    """Rescale the gradients in place so that their global L2 norm is at most ``max_norm``.

        ‖g‖ = √(Σ_i ‖g_i‖²),   s = c / (‖g‖ + ε),   g_i ← s · g_i   when s < 1

    ``params``: a Parameter or an iterable of them (those with ``grad is None`` are skipped).
    Returns ‖g‖ before clipping, as a Python float (log it: spikes announce divergence).
    A NaN/inf norm leaves NaN gradients, as in PyTorch, unless ``error_if_nonfinite=True``.
    GPU gradients cost one device→host synchronisation per call (the returned float), not one per parameter.
    """
    max_norm = _check_number("clip_grad_norm", "max_norm", max_norm)
    eps = _check_number("clip_grad_norm", "eps", eps)
    plist = [params] if isinstance(params, Parameter) else list(params)
    for p in plist:
        if not isinstance(p, Parameter):
            raise TypeError(f"clip_grad_norm: expected scratchnet Parameters, got {type(p).__name__}")
    grads = [p.grad for p in plist if p.grad is not None]
    if not grads:
        return 0.0
    total_norm = math.sqrt(_sum_of_squares(grads))  # ‖g‖
    if error_if_nonfinite and not math.isfinite(total_norm):
        raise RuntimeError(f"clip_grad_norm: the total gradient norm is {total_norm}; "
                           "pass error_if_nonfinite=False to clip anyway")
    scale = max_norm / (total_norm + eps)  # s
    if not scale >= 1.0:  # also true for NaN, which then spreads as in PyTorch
        for g in grads:
            g *= scale  # a Python float keeps the gradient's dtype
    return total_norm
