"""The njit wrapper: a parallel and a serial compilation of one function never share a cache entry."""
import pytest

from scratchnet._jit import HAVE_NUMBA, _variant, njit, prange


def test_parallel_variant_has_its_own_cache_name():
    from scratchnet.kernels import pool_loops
    par = getattr(pool_loops.max_pool2d_kernel, "py_func", None)
    ser = getattr(pool_loops.max_pool2d_kernel_serial, "py_func", None)
    if par is None or ser is None:
        pytest.skip("Numba JIT disabled: kernels are plain functions")
    assert par.__qualname__ == ser.__qualname__ + "__parallel"  # distinct on-disk cache entries
    assert par.__code__ is ser.__code__  # the same loops


def test_variant_keeps_behaviour():
    def f(x):
        return 2 * x
    g = _variant(f, "parallel")
    assert g(3) == 6 and g.__name__ == "f" and g.__qualname__.endswith("f__parallel")


@pytest.mark.skipif(not HAVE_NUMBA, reason="numba not installed")
def test_parallel_kernel_matches_serial():
    import numpy as np

    def total(a, out):
        for i in prange(a.shape[0]):  # independent rows
            out[i] = a[i].sum()

    a = np.arange(12.0).reshape(4, 3)
    o1, o2 = np.empty(4), np.empty(4)
    njit(parallel=True, cache=False)(total)(a, o1)
    njit(total)(a, o2)
    np.testing.assert_array_equal(o1, o2)
