"""The fast route of the Adam update: one fused Numba pass per parameter.

``Adam._update`` in ``scratchnet/optim/optimizers.py`` is the readable reference (the chapter shows
it); once it has applied the weight decay and created the state, it offers the update to
``adam_update`` here, which runs the loop of ``optim_loops.py`` when ``jit_route`` allows (JIT on,
NumPy arrays, float32/float64), every array is C-contiguous and of one dtype, and the parameter
has at least MIN_SIZE numbers; otherwise it returns False and the reference carries on (CuPy,
float16, small or strided parameters). tests/kernels/test_optim_kernels.py compares the routes;
the timing is ``core.adam_step_1M`` in ``benchmarks/bench_core.py``.
"""
from __future__ import annotations

from .._jit import jit_route
from . import optim_loops as K

__all__ = ["adam_update", "MIN_SIZE"]

MIN_SIZE = 1 << 12  # numbers below which the reference's few NumPy calls cost no more than the loop's call


def adam_update(p, g, m, v, v_max, *, beta1, beta2, step_size, bias_correction2_sqrt, eps):
    """Apply one Adam step in place by the fused loop and return True, or return False (nothing
    changed) when the route does not apply. v_max is the AMSGrad maximum, or None."""
    arrays = (p, g, m, v) if v_max is None else (p, g, m, v, v_max)
    if p.size < MIN_SIZE or not jit_route(*arrays):
        return False
    if any(a.dtype != p.dtype or a.shape != p.shape or not a.flags.c_contiguous for a in arrays):
        return False
    flat = [a.reshape(-1) for a in arrays]  # views: contiguous
    # without AMSGrad the kernel never reads its v_max argument: v stands in for it (no allocation)
    K.adam_update_kernel(flat[0], flat[1], flat[2], flat[3], flat[4] if v_max is not None else flat[3],
                         v_max is not None, float(beta1), float(beta2), float(step_size),
                         float(bias_correction2_sqrt), float(eps))
    return True
