"""Every backward checks its upstream gradient(s) before any work: a wrong shape is a ValueError and
a wrong dtype a TypeError, both naming the op; the right one passes. Ops with a Numba route (GELU,
CTC) are checked with the JIT on and off."""
import numpy as np
import pytest

import scratchnet.functional as F

R = np.random.default_rng(7)
DT = np.float64  # the forward's dtype; the wrong dtype is float32


def _a(*shape, dtype=DT):
    return R.standard_normal(shape).astype(dtype)


def _ctc(reduction):
    lp = F.log_softmax(_a(2, 6, 4))[0]
    targets, il, tl = np.array([[1, 2], [3, 0]]), np.array([6, 5]), np.array([2, 1])
    return F.ctc_loss(lp, targets, il, tl, reduction=reduction)


def _elementwise(name, **opts):
    return lambda: getattr(F, name)(_a(3, 5), **opts)


# name → forward() returning (out, cache); the backward is F.<name>_backward (or given)
FORWARDS = {
    "relu": _elementwise("relu"),
    "leaky_relu": _elementwise("leaky_relu", slope=0.1),
    "sigmoid": _elementwise("sigmoid"),
    "tanh": _elementwise("tanh"),
    "silu": _elementwise("silu"),
    "softplus": _elementwise("softplus"),
    "gelu": _elementwise("gelu"),
    "gelu[tanh]": _elementwise("gelu", approximate="tanh"),
    "softmax": _elementwise("softmax", axis=0),
    "log_softmax": _elementwise("log_softmax"),
    "linear": lambda: F.linear(_a(4, 3), _a(3, 2), _a(2)),
    "linear[3-D]": lambda: F.linear(_a(2, 4, 3), _a(3, 2), None),
    "embedding": lambda: F.embedding(np.array([[0, 2], [1, 1]]), _a(3, 5)),
    "dropout": lambda: F.dropout(_a(3, 4), p=0.5, rng=np.random.default_rng(0)),
    "dropout[eval]": lambda: F.dropout(_a(3, 4), p=0.5, training=False),
    "relu6": _elementwise("relu6"),
    "hardtanh": _elementwise("hardtanh", min_val=-0.5, max_val=0.5),
    "drop_path": lambda: F.drop_path(_a(3, 2, 2, 2), p=0.5, rng=np.random.default_rng(0)),
    "drop_path[eval]": lambda: F.drop_path(_a(3, 2, 2), p=0.5, training=False),
    "concat": lambda: F.concat([_a(2, 3, 2, 2), _a(2, 1, 2, 2)]),
    "concat[axis=-1]": lambda: F.concat([_a(2, 3), _a(2, 4), _a(2, 1)], axis=-1),
    "scale_channels": lambda: F.scale_channels(_a(2, 3, 4, 4), _a(2, 3)),
    "batch_norm": lambda: F.batch_norm(_a(4, 3), _a(3), _a(3), None, None, training=True),
    "batch_norm[4-D eval]": lambda: F.batch_norm(_a(2, 3, 2, 2), None, None, np.zeros(3), np.ones(3), training=False),
    "layer_norm": lambda: F.layer_norm(_a(2, 3, 4), _a(4), _a(4)),
    "flatten": lambda: F.flatten(_a(2, 3, 4)),
    "reshape": lambda: F.reshape(_a(2, 6), shape=(3, 4)),
    "cross_entropy": lambda: F.cross_entropy(_a(5, 4), np.array([0, 1, 2, 3, 0])),
    "cross_entropy[none]": lambda: F.cross_entropy(_a(2, 3, 4), np.zeros((2, 3), int), reduction="none"),
    "mse_loss": lambda: F.mse_loss(_a(3, 4), _a(3, 4)),
    "mse_loss[none]": lambda: F.mse_loss(_a(3, 4), _a(3, 4), reduction="none"),
    "binary_cross_entropy_with_logits": lambda: F.binary_cross_entropy_with_logits(_a(3, 4), R.random((3, 4))),
    "binary_cross_entropy_with_logits[none]": lambda: F.binary_cross_entropy_with_logits(
        _a(3, 4), R.random((3, 4)), reduction="none"),
    "kl_div": lambda: F.kl_div(F.log_softmax(_a(3, 4))[0], F.softmax(_a(3, 4))[0], reduction="batchmean"),
    "kl_div[none]": lambda: F.kl_div(F.log_softmax(_a(3, 4))[0], F.softmax(_a(3, 4))[0], reduction="none"),
    "scaled_dot_product_attention": lambda: F.scaled_dot_product_attention(_a(2, 3, 4), _a(2, 5, 4), _a(2, 5, 6)),
    "additive_attention": lambda: F.additive_attention(_a(2, 3), _a(2, 4, 5), _a(2, 4, 6), _a(3, 7), _a(5, 7), _a(7)),
    "dot_attention": lambda: F.dot_attention(_a(2, 3), _a(2, 4, 5), _a(2, 4, 6), _a(3, 5)),
    "free_energy": lambda: F.free_energy(_a(3, 4), _a(4, 5), _a(4), _a(5)),
    "dsn_module": lambda: F.dsn_module(_a(6, 3), _a(3, 4), _a(6, 2), lam=0.5),
    "ctc_loss": lambda: _ctc("mean"),
    "ctc_loss[none]": lambda: _ctc("none"),
    "masked_linear": lambda: F.masked_linear(_a(4, 3), _a(3, 2), _a(2), mask=np.ones((3, 2))),
    "masked_conv2d": lambda: F.masked_conv2d(_a(2, 2, 5, 5), _a(3, 2, 3, 3), _a(3), mask=np.ones((3, 2, 3, 3))),
    "soft_target_loss": lambda: F.soft_target_loss(_a(3, 4), _a(3, 4), T=2.0),
    "distillation_loss": lambda: F.distillation_loss(_a(3, 4), _a(3, 4), np.array([0, 3, 1]), T=2.0, alpha=0.5),
    "patchify": lambda: F.patchify(_a(2, 3, 4, 6), patch_size=2),
    "unpatchify": lambda: F.unpatchify(_a(2, 6, 12), patch_size=2, image_size=(4, 6), channels=3),
    "prepend_token": lambda: F.prepend_token(_a(2, 3, 4), _a(4)),
    "masked_lm_loss": lambda: F.masked_lm_loss(_a(2, 3, 4), np.array([[0, 1, 2], [3, 0, 1]]), R.random((2, 3)) < 0.5),
    "linear_input_grad": lambda: F.linear_input_grad(_a(4, 3), _a(5, 3)),
    "conv2d_input_grad": lambda: F.conv2d_input_grad(_a(2, 3, 3, 3), _a(3, 2, 4, 4), input_size=(7, 7), stride=2,
                                                     padding=1),
    "leaky_relu_input_grad": lambda: F.leaky_relu_input_grad(_a(3, 5), _a(3, 5), slope=0.2),
    "smooth_leaky_relu": _elementwise("smooth_leaky_relu"),
    "smooth_leaky_relu_input_grad": lambda: F.smooth_leaky_relu_input_grad(_a(3, 5), _a(3, 5)),
    "gradient_penalty": lambda: F.gradient_penalty(_a(4, 1, 3, 3), lam=10.0),
    "concat_fusion": lambda: F.concat_fusion(_a(3, 4), _a(3, 2)),
    "late_fusion": lambda: F.late_fusion(_a(3, 2, 4), _a(2)),
    "gated_fusion": lambda: F.gated_fusion(_a(3, 4), _a(3, 4), R.random((3, 4))),
    "modality_dropout": lambda: F.modality_dropout(_a(3, 1, 4, 4), _a(1, 4, 4), mask=np.array([1, 0, 1])),
    "conv_subsample": lambda: F.conv_subsample(_a(2, 9, 8), _a(3, 1, 3, 3), _a(3), _a(3, 3, 3, 3), _a(3)),
    "fake_quant": lambda: F.fake_quant(_a(3, 4), np.array(0.1), 0),
    "fake_quant[per-channel]": lambda: F.fake_quant(_a(2, 3, 4), np.full(3, 0.1), np.zeros(3, np.int32), axis=1),
    "pyramid_concat": lambda: F.pyramid_concat(_a(2, 5, 3)),
    "location_attention": lambda: F.location_attention(_a(2, 3), _a(2, 4, 5), _a(2, 4, 6), _a(2, 4), _a(3, 7),
                                                       _a(5, 7), _a(2, 3), _a(2, 7), _a(7)),
    "yolo_v1_loss": lambda: F.yolo_v1_loss(R.uniform(0.1, 0.9, (2, 3, 3, 12)), F.yolo_targets(
        [np.array([[4.0, 6.0, 30.0, 40.0]]), np.zeros((0, 4))], [np.array([1]), np.zeros(0, int)], 3, (48, 48),
        num_classes=2, dtype=DT)),
    "gumbel_softmax": lambda: F.gumbel_softmax(_a(3, 2, 5), tau=0.7, noise=_a(3, 2, 5)),
    "gumbel_softmax[soft]": lambda: F.gumbel_softmax(_a(3, 5), tau=2.0, hard=False, noise=_a(3, 5)),
    "contrastive_loss": lambda: F.contrastive_loss(_a(4, 3), _a(4, 3), np.array([[1, 2], [0, 3], [3, 1], [0, 2]])),
    "diversity_loss": lambda: F.diversity_loss(_a(5, 2, 4)),
    "smooth_l1_loss": lambda: F.smooth_l1_loss(_a(3, 4), _a(3, 4), beta=0.5),
    "smooth_l1_loss[none]": lambda: F.smooth_l1_loss(_a(3, 4), _a(3, 4), weight=R.random((3, 4)), reduction="none"),
    "roi_pool": lambda: F.roi_pool(_a(2, 3, 6, 7), np.array([[0, 0.5, 1.0, 4.2, 5.1], [1, 2.0, 0.0, 6.0, 3.5]]), 2),
    "roi_align": lambda: F.roi_align(_a(2, 3, 6, 7), np.array([[0, 0.5, 1.0, 4.2, 5.1], [1, 2.0, 0.0, 6.0, 3.5]]),
                                     (2, 3), 0.5, sampling_ratio=0),
    "rpn_loss": lambda: F.rpn_loss(_a(6), _a(6, 4), np.array([1, 0, -1, 1, 0, 0]), _a(6, 4)),
    "fast_rcnn_loss": lambda: F.fast_rcnn_loss(_a(4, 3), _a(4, 12), np.array([0, 2, 1, 0]), _a(4, 4)),
    "mask_loss": lambda: F.mask_loss(_a(4, 3, 5, 5), np.array([0, 3, 1, 2]), (R.random((4, 5, 5)) < 0.5).astype(DT)),
}
JITTED = ["gelu", "ctc_loss", "ctc_loss[none]"]  # ops with a Numba route: checked with the JIT on and off
JITTED += ["roi_pool", "roi_align"]
CASES = [(case, "1") for case in FORWARDS] + [(case, "0") for case in JITTED]  # (case, SCRATCHNET_JIT)


def _setup(case, jit, monkeypatch):
    monkeypatch.setenv("SCRATCHNET_JIT", jit)
    op = case.split("[")[0]
    out, cache = FORWARDS[case]()
    return getattr(F, op + "_backward"), cache, out, op + "_backward"


def _like(y, shape=None, dtype=DT):
    """A random upstream gradient of ``y``'s shape (or ``shape``) and ``dtype``."""
    return R.standard_normal(np.shape(y) if shape is None else shape).astype(dtype)


def _wrong_shape(y):
    shape = np.shape(y)
    return (3,) if shape == () else shape[:-1] + (shape[-1] + 1,)


def _upstreams(out):
    """(right, [wrong shape variants], [wrong dtype variants]) for a forward output: one upstream per
    output of a multi-output forward (a tuple), each wrong variant spoiling one entry."""
    if isinstance(out, tuple):
        right = tuple(_like(y) for y in out)
        shapes = [right[:i] + (_like(y, _wrong_shape(y)),) + right[i + 1:] for i, y in enumerate(out)]
        dtypes = [right[:i] + (_like(y, dtype=np.float32),) + right[i + 1:] for i, y in enumerate(out)]
        return right, shapes, dtypes
    return _like(out), [_like(out, _wrong_shape(out))], [_like(out, dtype=np.float32)]


@pytest.mark.parametrize("case,jit", CASES)
def test_right_upstream_passes(case, jit, monkeypatch):
    backward, cache, out, _ = _setup(case, jit, monkeypatch)
    right, _, _ = _upstreams(out)
    grads = backward(right, cache)
    for g in grads if isinstance(grads, tuple) else (grads,):
        assert g is None or g.dtype == DT


@pytest.mark.parametrize("case,jit", CASES)
def test_wrong_shape_raises_value_error_naming_the_op(case, jit, monkeypatch):
    backward, cache, out, name = _setup(case, jit, monkeypatch)
    for wrong in _upstreams(out)[1]:
        with pytest.raises(ValueError, match=rf"^{name}: expected upstream gradient .* of shape"):
            backward(wrong, cache)


@pytest.mark.parametrize("case,jit", CASES)
def test_wrong_dtype_raises_type_error_naming_the_op(case, jit, monkeypatch):
    backward, cache, out, name = _setup(case, jit, monkeypatch)
    for wrong in _upstreams(out)[2]:
        with pytest.raises(TypeError, match=rf"^{name}: expected upstream gradient .* of dtype float64"):
            backward(wrong, cache)


@pytest.mark.parametrize("case", ["linear", "embedding", "sigmoid", "cross_entropy[none]", "ctc_loss[none]"])
def test_integer_upstream_raises_type_error(case, monkeypatch):
    backward, cache, out, name = _setup(case, "1", monkeypatch)
    with pytest.raises(TypeError, match=rf"^{name}: expected upstream gradient .* float array"):
        backward(np.ones(np.shape(out), dtype=np.int64), cache)


def test_the_reported_defects():
    """gelu: a dy of another length used to run the Numba loop past dy's end; linear: dy (2, 2, 2) for
    x (4, 3) used to return dx (2, 2, 3); batch_norm: dy (C,) used to broadcast."""
    _, cache = F.gelu(np.ones(10, np.float32))
    with pytest.raises(ValueError, match=r"gelu_backward: .* shape \(10,\) .* got shape \(4,\)"):
        F.gelu_backward(np.ones(4, np.float32), cache)
    _, cache = F.linear(np.ones((4, 3)), np.ones((3, 2)), None)
    with pytest.raises(ValueError, match=r"linear_backward: .* shape \(4, 2\) .* got shape \(2, 2, 2\)"):
        F.linear_backward(np.ones((2, 2, 2)), cache)
    _, cache = F.batch_norm(np.ones((5, 3)) + np.arange(5)[:, None], None, None, None, None, training=True)
    with pytest.raises(ValueError, match=r"batch_norm_backward: .* shape \(5, 3\) .* got shape \(3,\)"):
        F.batch_norm_backward(np.ones(3), cache)


@pytest.mark.parametrize("case", ["cross_entropy", "mse_loss", "binary_cross_entropy_with_logits", "kl_div",
                                  "ctc_loss", "dsn_module"])
def test_a_scalar_loss_takes_a_python_number_or_a_0d_array_of_its_dtype(case, monkeypatch):
    backward, cache, out, name = _setup(case, "1", monkeypatch)
    scalar = (lambda g: (g, None, None)) if case == "dsn_module" else (lambda g: g)
    want = backward(scalar(2.0), cache)
    for same in (2, np.float64(2.0), np.array(2.0)):
        got = backward(scalar(same), cache)
        for a, b in zip(*(g if isinstance(g, tuple) else (g,) for g in (got, want))):
            np.testing.assert_array_equal(a, b)
    for wrong in (np.float32(2.0), np.array([2.0]), True, "2"):
        with pytest.raises((TypeError, ValueError), match=rf"^{name}: "):
            backward(scalar(wrong), cache)


def test_float32_scalar_loss_rejects_a_float64_upstream():
    """A NumPy float64 upstream would widen a float32 gradient (NumPy scalars are not weak like Python floats)."""
    loss, cache = F.cross_entropy(np.ones((2, 3), np.float32), np.array([0, 1]))
    assert F.cross_entropy_backward(1.0, cache).dtype == np.float32
    assert F.cross_entropy_backward(np.float32(1.0), cache).dtype == np.float32
    with pytest.raises(TypeError, match="cross_entropy_backward: .* dtype float32"):
        F.cross_entropy_backward(np.float64(1.0), cache)


@pytest.mark.parametrize("case", ["additive_attention", "dot_attention", "dsn_module"])
def test_multi_output_backward_wants_a_tuple_of_the_right_length(case, monkeypatch):
    backward, cache, out, name = _setup(case, "1", monkeypatch)
    right, _, _ = _upstreams(out)
    for wrong in (right[0], right[:-1], right + (None,)):
        with pytest.raises(TypeError, match=rf"^{name}: expected dout = "):
            backward(wrong, cache)
    backward((None,) * len(out), cache)  # None = a zero upstream gradient


def test_masked_softmax_backward_checks_dp(rng):
    from scratchnet.functional.attention import masked_softmax, masked_softmax_backward
    p = masked_softmax(rng.standard_normal((2, 5)), None)
    with pytest.raises(ValueError, match="masked_softmax_backward"):
        masked_softmax_backward(np.ones((2, 4)), p)
    with pytest.raises(TypeError, match="masked_softmax_backward"):
        masked_softmax_backward(np.ones((2, 5), np.float32), p)


def test_a_wider_dropout_mask_is_rejected_in_the_forward(rng):
    """A float64 attention-dropout mask would silently make a float32 attention output float64."""
    q, k, v = (rng.standard_normal((2, 3, 4)).astype(np.float32) for _ in range(3))
    with pytest.raises(TypeError, match="scaled_dot_product_attention: all float inputs must share"):
        F.scaled_dot_product_attention(q, k, v, dropout_mask=np.ones((2, 3, 3)))


@pytest.mark.parametrize("case,fields", [
    ("batch_norm", 7), ("cross_entropy", 6), ("binary_cross_entropy_with_logits", 5), ("additive_attention", 8),
    ("dot_attention", 6), ("scaled_dot_product_attention", 6), ("free_energy", 5), ("dsn_module", 7),
    ("ctc_loss", 10),
])
def test_caches_of_more_than_four_fields_are_named_tuples(case, fields):
    _, cache = FORWARDS[case]()
    assert len(cache) == fields and hasattr(cache, "_fields") and len(cache._fields) == fields
