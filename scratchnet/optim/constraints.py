"""Max-norm constraint: after a step, shrink each unit's incoming weight vector back into a ball.

Legend: W (D_in, D_out) a ``Linear`` weight, column w_j = W[:, j] the D_in weights into unit j,
c ``max_norm``. See chapters/01-mlp.md#max-norm.
"""
from __future__ import annotations

from ..backend import get_array_module
from ..nn.module import Module, Parameter
from .optimizers import _check_number

__all__ = ["max_norm_"]


def _weights(targets) -> list:
    """The Parameters to constrain: a Parameter, a Module (its ``weight``), or an iterable of either."""
    items = [targets] if isinstance(targets, (Parameter, Module)) else list(targets)
    out = []
    for t in items:
        w = t.weight if isinstance(t, Module) else t
        if not isinstance(w, Parameter):
            raise TypeError(f"max_norm_: expected Parameters or layers with a weight, got {type(t).__name__}")
        out.append(w)
    return out


# start-max-norm
def max_norm_(targets, max_norm, *, axis=-1, eps=1e-12) -> float:
    """Project in place every unit's incoming weight vector onto the ball of radius ``max_norm``.

        ‖w_j‖ = √(Σ_i W_ij²),   w_j ← w_j · min(1, c / ‖w_j‖)

    ``targets``: a Parameter, a layer (its ``weight``), or an iterable of either. ``axis`` indexes the
    units: -1 for ``Linear``'s (D_in, D_out) weight, whose columns are the units' incoming vectors;
    the norm runs over every other axis. Vectors already inside the ball are untouched (a step
    within the ball is unconstrained). Biases are not constrained. Returns the largest norm before
    the projection, as a Python float. Call it after ``optimizer.step()``.
    """
    c = _check_number("max_norm_", "max_norm", max_norm)
    largest = 0.0
    for w in _weights(targets):
        xp = get_array_module(w.data)
        unit = axis % w.data.ndim
        others = tuple(a for a in range(w.data.ndim) if a != unit)
        norms = xp.sqrt((w.data * w.data).sum(axis=others, keepdims=True))  # ‖w_j‖, (1, D_out) for Linear
        largest = max(largest, float(norms.max()))
        scale = xp.minimum(1.0, c / xp.maximum(norms, eps))  # 1 inside the ball, c / ‖w_j‖ outside
        w.data *= scale.astype(w.data.dtype)  # in place: the optimizer's references stay valid
    return largest
# end-max-norm
