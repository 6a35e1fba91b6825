"""Numba loop kernel of the Adam update: one pass over a parameter's numbers.

Legend: n numbers of one parameter (flattened), p parameter, g gradient, m first moment, v second
moment, v̂ the AMSGrad running maximum. The readable reference is ``Adam._update`` in
``scratchnet/optim/optimizers.py``; ``scratchnet/kernels/optim.py`` chooses. The reference makes
about eleven passes over the parameter's size, five of them writing a temporary; this loop reads
p, g, m, v once and writes p, m, v once, with the same operations in the same order (no fastmath),
so both give the same numbers.
"""
from __future__ import annotations

import math

from .._jit import njit

__all__ = ["adam_update_kernel"]


@njit(error_model="numpy")
def adam_update_kernel(p, g, m, v, v_max, amsgrad, beta1, beta2, step_size, bias_correction2_sqrt, eps):
    """One Adam step in place: m, v (and v_max when amsgrad), then p.

    p, g, m, v, v_max (n,) of one dtype, C-contiguous (v_max unused when amsgrad is False);
    the scalars are Python floats, cast to p's dtype as NumPy casts them in the reference.
    """
    t = p.dtype.type
    b1, c1 = t(beta1), t(1.0 - beta1)
    b2, c2 = t(beta2), t(1.0 - beta2)
    step, bc2, e = t(step_size), t(bias_correction2_sqrt), t(eps)
    for i in range(p.shape[0]):  # every number independently
        gi = g[i]
        mi = m[i] * b1 + c1 * gi  # m_t = β₁ m + (1 − β₁) g
        vi = v[i] * b2 + (gi * gi) * c2  # v_t = β₂ v + (1 − β₂) g²
        m[i] = mi
        v[i] = vi
        if amsgrad:  # v̂_t = max(v̂_{t−1}, v_t), NaN-propagating like np.maximum
            vh = v_max[i]
            if vi > vh or math.isnan(vi):
                vh = vi
            v_max[i] = vh
        else:
            vh = vi
        denom = math.sqrt(vh) / bc2 + e  # √v̂ / √(1 − β₂ᵗ) + ε
        p[i] -= (mi / denom) * step  # p ← p − η/(1 − β₁ᵗ) · m_t / denom
