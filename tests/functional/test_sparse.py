"""CSR storage and the sparse products of chapter 33: the Numba kernels (serial and parallel) and the
vectorised references, each against the dense product, exactly (integer-valued entries make every
sum exact in floating point) and to rounding on real values; errors."""
import numpy as np
import pytest

from scratchnet.kernels import sparse
from scratchnet.kernels.sparse import CSR, csr_matmat, csr_matvec, csr_nbytes, to_csr, to_dense


def _sparse_int(rng, shape, density, dtype=np.float64):
    """Small integers (exact in floating point) at a fraction ``density`` of the positions."""
    W = rng.integers(-4, 5, shape).astype(dtype)
    return W * (rng.random(shape) < density)


def test_to_csr_of_a_small_matrix():
    W = np.array([[0, 2, 0, 0], [0, 0, 0, 0], [1, 0, 0, 3]], dtype=np.float32)
    A = to_csr(W)
    np.testing.assert_array_equal(A.data, [2, 1, 3])
    np.testing.assert_array_equal(A.indices, [1, 0, 3])
    np.testing.assert_array_equal(A.indptr, [0, 1, 1, 3])
    assert A.shape == (3, 4) and A.nnz == 3 and A.data.dtype == np.float32 and A.indices.dtype == np.int32
    np.testing.assert_array_equal(to_dense(A), W)
    assert csr_nbytes(A) == 3 * 4 + 3 * 4 + 4 * 4


@pytest.mark.parametrize("jit", ["1", "0"])
@pytest.mark.parametrize("density", [0.0, 0.02, 0.1, 0.5, 1.0])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_products_equal_the_dense_product_exactly(jit, density, dtype, rng, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    W = _sparse_int(rng, (37, 23), density, dtype)
    W[5] = 0  # an empty row
    A = to_csr(W)
    np.testing.assert_array_equal(to_dense(A), W)
    x = rng.integers(-3, 4, 23).astype(dtype)
    B = rng.integers(-3, 4, (23, 9)).astype(dtype)
    y, Y = csr_matvec(A, x), csr_matmat(A, B)
    assert y.dtype == dtype and Y.dtype == dtype
    np.testing.assert_array_equal(y, W @ x)
    np.testing.assert_array_equal(Y, W @ B)


@pytest.mark.parametrize("density", [0.05, 0.3])
def test_kernels_match_references_on_real_values(density, rng, monkeypatch):
    W = rng.standard_normal((64, 50)) * (rng.random((64, 50)) < density)
    A = to_csr(W)
    x, B = rng.standard_normal(50), rng.standard_normal((50, 17))
    for parallel in (False, True):
        monkeypatch.setattr(sparse, "PARALLEL_MIN_WORK", 0 if parallel else 1 << 60)
        np.testing.assert_allclose(csr_matvec(A, x), sparse._csr_matvec_ref(A, x), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(csr_matmat(A, B), sparse._csr_matmat_ref(A, B), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(csr_matmat(A, B), W @ B, rtol=1e-12, atol=1e-12)


def test_float32_close_to_the_dense_product(rng):
    W = (rng.standard_normal((300, 784)) * (rng.random((300, 784)) < 0.08)).astype(np.float32)
    X = rng.standard_normal((784, 32)).astype(np.float32)
    np.testing.assert_allclose(csr_matmat(to_csr(W), X), W @ X, rtol=1e-4, atol=1e-4)


def test_a_non_contiguous_operand_is_handled(rng):
    W = _sparse_int(rng, (6, 8), 0.4)
    B = rng.integers(-3, 4, (9, 8)).astype(np.float64).T  # (8, 9) Fortran-ordered view
    np.testing.assert_array_equal(csr_matmat(to_csr(W), B), W @ B)


def test_errors(rng):
    A = to_csr(_sparse_int(rng, (4, 5), 0.5))
    with pytest.raises(ValueError, match=r"csr_matvec: A is 4×5 but x has 4 rows"):
        csr_matvec(A, np.ones(4))
    with pytest.raises(ValueError, match=r"csr_matmat: A is 4×5 but B has 3 rows"):
        csr_matmat(A, np.ones((3, 2)))
    with pytest.raises(ValueError, match="csr_matmat: expected B of shape"):
        csr_matmat(A, np.ones(5))
    with pytest.raises(TypeError, match="csr_matvec: A holds float64 but the dense operand is float32"):
        csr_matvec(A, np.ones(5, np.float32))
    with pytest.raises(TypeError, match="csr_matvec: expected a CSR matrix"):
        csr_matvec(np.ones((4, 5)), np.ones(5))
    with pytest.raises(ValueError, match="to_csr: expected a 2-D array"):
        to_csr(np.ones(3))
    assert isinstance(A, CSR)
