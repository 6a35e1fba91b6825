"""Dtype, error behaviour, PyTorch parity and kernels of the spine's ops. Their gradchecks (several
shapes, every option) are the registered ``core.*`` cases, run by test_gradcheck_catalogue.py."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import assert_gradients

SHAPES = [(3, 4), (2, 3, 5), (1, 7)]


def off_kinks(rng, shape):
    x = rng.standard_normal(shape)
    return x + np.sign(x) * 0.1


def test_dropout_statistics_and_eval(rng):
    x = np.ones((200, 200), np.float32)
    y, _ = F.dropout(x, p=0.4, rng=np.random.default_rng(0))
    assert y.dtype == np.float32
    assert abs(y.mean() - 1.0) < 0.02  # inverted dropout keeps the expectation
    assert set(np.unique(y)) <= {0.0, np.float32(1 / 0.6)}
    y_eval, cache = F.dropout(x, p=0.4, training=False)
    assert y_eval is x and F.dropout_backward(x, cache) is x


def test_batch_norm_running_stats_follow_pytorch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((8, 3, 4, 4))
    rm, rv = np.zeros(3), np.ones(3)
    y, _ = F.batch_norm(x, np.ones(3), np.zeros(3), rm, rv, training=True, momentum=0.2)
    trm, trv = torch.zeros(3, dtype=torch.float64), torch.ones(3, dtype=torch.float64)
    ty = torch.nn.functional.batch_norm(torch.from_numpy(x), trm, trv, torch.ones(3, dtype=torch.float64),
                                        torch.zeros(3, dtype=torch.float64), training=True, momentum=0.2)
    np.testing.assert_allclose(y, ty.numpy(), atol=1e-10)
    np.testing.assert_allclose(rm, trm.numpy(), atol=1e-12)
    np.testing.assert_allclose(rv, trv.numpy(), atol=1e-12)


@pytest.mark.parametrize("op", ["relu", "sigmoid", "tanh", "gelu", "silu", "softplus", "softmax", "log_softmax"])
def test_ops_keep_float32(xp, op):
    x = xp.asarray(np.random.default_rng(0).standard_normal((4, 5)).astype(np.float32))
    y, cache = getattr(F, op)(x)
    assert y.dtype == np.float32
    assert getattr(F, op + "_backward")(xp.ones_like(y), cache).dtype == np.float32


def test_norms_and_losses_keep_float32(rng):
    x = rng.standard_normal((6, 4)).astype(np.float32)
    g, b = np.ones(4, np.float32), np.zeros(4, np.float32)
    y, c = F.batch_norm(x, g, b, np.zeros(4, np.float32), np.ones(4, np.float32), training=True)
    assert y.dtype == np.float32 and all(a.dtype == np.float32 for a in F.batch_norm_backward(y, c))
    y, c = F.layer_norm(x, g, b)
    assert y.dtype == np.float32 and all(a.dtype == np.float32 for a in F.layer_norm_backward(y, c))
    loss, c = F.cross_entropy(x, np.array([0, 1, 2, 3, 0, 1]))
    assert F.cross_entropy_backward(1.0, c).dtype == np.float32


def test_extreme_inputs_stay_finite():
    x = np.array([-1000.0, -50.0, 0.0, 50.0, 1000.0])
    for op in ("sigmoid", "softplus", "silu", "softmax", "log_softmax", "gelu"):
        y, _ = getattr(F, op)(x)
        assert np.all(np.isfinite(y)), op
    loss, _ = F.cross_entropy(np.array([[1000.0, -1000.0]]), np.array([1]))
    assert np.isfinite(loss) and loss == pytest.approx(2000.0)
    loss, _ = F.binary_cross_entropy_with_logits(np.array([1000.0, -1000.0]), np.array([0.0, 1.0]))
    assert np.isfinite(loss)


def test_cross_entropy_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    logits = rng.standard_normal((6, 5))
    target = np.array([0, 4, 2, -100, 1, 3])
    loss, cache = F.cross_entropy(logits, target, label_smoothing=0.1)
    tl = torch.from_numpy(logits).requires_grad_()
    tloss = torch.nn.functional.cross_entropy(tl, torch.from_numpy(target), label_smoothing=0.1)
    tloss.backward()
    assert loss == pytest.approx(tloss.item(), abs=1e-12)
    np.testing.assert_allclose(F.cross_entropy_backward(1.0, cache), tl.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("name,tname,opts", [
    ("gelu", "gelu", {}), ("gelu", "gelu", {"approximate": "tanh"}), ("silu", "silu", {}),
    ("softplus", "softplus", {}), ("leaky_relu", "leaky_relu", {"slope": 0.2}),
])
def test_activations_match_pytorch(rng, name, tname, opts):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((4, 6))
    y, cache = getattr(F, name)(x, **opts)
    topts = {"negative_slope": opts["slope"]} if "slope" in opts else opts
    tx = torch.from_numpy(x).requires_grad_()
    ty = getattr(torch.nn.functional, tname)(tx, **topts)
    dy = rng.standard_normal(y.shape)
    ty.backward(torch.from_numpy(dy))
    np.testing.assert_allclose(y, ty.detach().numpy(), atol=1e-12)
    np.testing.assert_allclose(getattr(F, name + "_backward")(dy, cache), tx.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("call,match", [
    (lambda: F.linear(np.ones((2, 3)), np.ones((4, 5)), None), r"linear: x has 3 features .* w expects 4"),
    (lambda: F.linear(np.ones((2, 3), np.int64), np.ones((3, 5)), None), r"linear: expected x to be a float array"),
    (lambda: F.linear(np.ones((2, 3), np.float32), np.ones((3, 5)), None), r"linear: all float inputs must share"),
    (lambda: F.batch_norm(np.ones((2, 3)), np.ones(4), None, None, None, training=True),
     r"batch_norm: expected gamma of shape \(3,\)"),
    (lambda: F.batch_norm(np.ones(3), None, None, None, None, training=True),
     r"batch_norm: expected x to be 2-D or 3-D or 4-D"),
    (lambda: F.layer_norm(np.ones((2, 3)), np.ones(4), None), r"layer_norm: expected gamma of shape \(3,\)"),
    (lambda: F.cross_entropy(np.ones((2, 3)), np.array([0, 1, 2])),
     r"cross_entropy: expected logits .* got logits \(2, 3\), target \(3,\)"),
    (lambda: F.cross_entropy(np.ones((2, 3)), np.array([0.0, 1.0])),
     r"cross_entropy: expected target to be an integer array"),
    (lambda: F.cross_entropy(np.ones((2, 3)), np.array([0, 3])), r"target values must lie in \[0, 3\)"),
    (lambda: F.embedding(np.array([0, 5]), np.ones((5, 2))), r"embedding: ids must lie in \[0, 5\)"),
    (lambda: F.dropout(np.ones(3), p=1.0), r"dropout: p must be in \[0, 1\)"),
    (lambda: F.mse_loss(np.ones(3), np.ones(4)), r"mse_loss: pred shape \(3,\) != target shape \(4,\)"),
])
def test_clear_errors(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()


@pytest.mark.parametrize("shape", [(7,), (3, 5, 4), (4097,), (64, 1024)])  # (4097,): a partial last chunk
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_gelu_kernel_matches_reference(shape, dtype, monkeypatch):
    rng = np.random.default_rng(1)
    x = (3 * rng.standard_normal(shape)).astype(dtype)
    dy = rng.standard_normal(shape).astype(dtype)
    out = {}
    for flag in ("1", "0"):
        monkeypatch.setenv("SCRATCHNET_JIT", flag)
        y, cache = F.gelu(x)
        out[flag] = (y, F.gelu_backward(dy, cache))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-13, atol=1e-15)
    for a, b in zip(out["1"], out["0"]):
        assert a.dtype == dtype and a.shape == shape
        np.testing.assert_allclose(a, b, **tol)


def test_exp_float32_row_is_accurate_to_float32():
    from scratchnet.kernels.activation_loops import exp_float32_row
    x = np.concatenate([np.linspace(-87.0, 88.0, 200_001), [0.0, -1e-8, 1e-8]]).astype(np.float32)
    got = x.copy()
    exp_float32_row(got, np.empty(x.size, np.int32))
    exact = np.exp(x.astype(np.float64))
    assert (np.abs(got - exact) / exact).max() < 2e-7  # about two float32 ulps
    assert got[-3] == 1.0
    under = np.array([-100.0, -1e30], np.float32)
    exp_float32_row(under, np.empty(2, np.int32))  # clamped: the smallest normal, not garbage
    assert (under >= 0).all() and (under < 1e-37).all()


def test_erf_float32_is_accurate_to_float32():
    scipy_special = pytest.importorskip("scipy.special")
    from scratchnet.kernels.activation_loops import erf_float32
    x = np.linspace(-7, 7, 2001).astype(np.float32)
    got = np.array([erf_float32(v) for v in x], dtype=np.float64)
    assert np.abs(got - scipy_special.erf(x.astype(np.float64))).max() < 5e-7
    assert erf_float32(np.float32(0.0)) == 0.0 and erf_float32(np.float32(9.0)) == pytest.approx(1.0, abs=1e-7)


def test_gelu_kernel_on_a_non_contiguous_view(rng):
    x = rng.standard_normal((6, 8))[:, ::2].T  # (4, 6), strided
    dy = rng.standard_normal((4, 12))[:, ::2]  # (4, 6), strided
    y, cache = F.gelu(x)
    expected_y, expected_cache = F.gelu(np.ascontiguousarray(x))
    np.testing.assert_array_equal(y, expected_y)
    np.testing.assert_array_equal(F.gelu_backward(dy, cache), F.gelu_backward(np.ascontiguousarray(dy), expected_cache))
    assert_gradients(F.gelu, F.gelu_backward, [x])


@pytest.mark.parametrize("op,opts", [
    ("relu", {}), ("leaky_relu", {"slope": 0.1}), ("sigmoid", {}), ("tanh", {}), ("silu", {}), ("softplus", {}),
    ("gelu", {}), ("gelu", {"approximate": "tanh"}), ("softmax", {}), ("log_softmax", {}),
])
@pytest.mark.parametrize("jit", ["1", "0"])
def test_activations_keep_float16(monkeypatch, op, opts, jit):
    """float16 takes the vectorised route (no Numba kernel for it) and stays float16 both ways."""
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    x = np.random.default_rng(0).standard_normal((4, 5))
    dy = np.random.default_rng(1).standard_normal((4, 5))
    fwd, bwd = getattr(F, op), getattr(F, op + "_backward")
    y, cache = fwd(x.astype(np.float16), **opts)
    dx = bwd(dy.astype(np.float16), cache)
    assert y.dtype == np.float16 and dx.dtype == np.float16
    y64, cache64 = fwd(x, **opts)
    np.testing.assert_allclose(y, y64, rtol=1e-2, atol=1e-2)
    np.testing.assert_allclose(dx, bwd(dy, cache64), rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_exact_gelu_reference_equals_the_fused_route(rng, dtype):
    """``_gelu_exact`` / ``_gelu_exact_backward`` (the chapter's reference) give what ``F.gelu`` returns."""
    from scratchnet.functional.activation import _gelu_exact, _gelu_exact_backward
    x = (3 * rng.standard_normal((7, 33))).astype(dtype)
    dy = rng.standard_normal(x.shape).astype(dtype)
    y_ref, phi = _gelu_exact(x)
    y, cache = F.gelu(x)
    dx = F.gelu_backward(dy, cache)
    tol = 2e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(y, y_ref, rtol=tol, atol=tol)
    np.testing.assert_allclose(dx, _gelu_exact_backward(dy, x, phi), rtol=tol, atol=tol)
