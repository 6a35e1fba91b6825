"""Numba loop kernels (``*_loops``) and, where a benchmark asks, CuPy kernels (``*_cupy``).

Kernel files hold only kernels: constants are arguments, outputs are preallocated by the caller,
no fastmath, ``parallel=True`` only over independent outputs. Each has a vectorised reference
in ``scratchnet.functional`` and a test comparing the two.
"""
