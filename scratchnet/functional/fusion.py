"""Multimodal fusion points: concatenation (early fusion), a weighted average of log-probabilities
(late fusion), a per-unit gate between two modalities (intermediate fusion, the gated multimodal
unit), and modality dropout (a whole modality replaced by a fill value for chosen samples).

Legend: N batch, F, F_a, F_b feature widths, M modalities, K classes, α = softmax(w) the late-fusion
weights, z the gate, m the per-sample keep mask of modality dropout (1 kept, 0 dropped).
See chapters/32-multimodal.md.
"""
from __future__ import annotations

from .._checks import check_float, check_grad, check_ndim, check_same_dtype
from ..backend import get_array_module
from .activation import softmax

__all__ = ["concat_fusion", "concat_fusion_backward", "late_fusion", "late_fusion_backward",
           "gated_fusion", "gated_fusion_backward", "modality_dropout", "modality_dropout_backward"]


def _check_pair_of_features(op, a, b):
    check_float(op, "a", a)
    check_float(op, "b", b)
    check_ndim(op, "a", a, 2)
    check_ndim(op, "b", b, 2)
    check_same_dtype(op, a=a, b=b)
    if a.shape[0] != b.shape[0]:
        raise ValueError(f"{op}: expected a (N, F_a) and b (N, F_b) with one batch size N, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")


# start-concat-fusion
def concat_fusion(a, b):
    """h = [a, b]: two modalities' feature vectors side by side, the input of a joint network.

    a (N, F_a), b (N, F_b) → h (N, F_a + F_b). Backward: da = dh[:, :F_a], db = dh[:, F_a:].
    See chapters/32-multimodal.md#eq-fusion-concat-backward.
    """
    _check_pair_of_features("concat_fusion", a, b)
    xp = get_array_module(a, b)
    h = xp.concatenate([a, b], axis=1)  # (N, F_a + F_b)
    return h, (a.shape[1], h.shape, h.dtype)


def concat_fusion_backward(dh, cache):
    """da, db of ``concat_fusion``: each modality gets back the columns it filled."""
    F_a, shape, dtype = cache
    check_grad("concat_fusion_backward", "dh", dh, shape, dtype)
    return dh[:, :F_a], dh[:, F_a:]  # (N, F_a), (N, F_b)
# end-concat-fusion


# start-late-fusion
def late_fusion(logps, w):
    """y = Σ_m α_m · logp_m with α = softmax(w): a learned weighted average of M modalities' log-probabilities.

    logps (N, M, K) (log_softmax of each modality's classifier), w (M,) → y (N, K), the log of a
    weighted geometric mean of the modalities' distributions (a product of experts after renormalising).
    Backward: dlogp_m = α_m dy; dw = α ⊙ (s − αᵀs), s_m = Σ_{n,k} dy ⊙ logp_m.
    See chapters/32-multimodal.md#eq-late-backward.
    """
    check_float("late_fusion", "logps", logps)
    check_float("late_fusion", "w", w)
    check_ndim("late_fusion", "logps", logps, 3)
    check_same_dtype("late_fusion", logps=logps, w=w)
    if w.shape != (logps.shape[1],):
        raise ValueError(f"late_fusion: expected w of shape ({logps.shape[1]},) (one weight per modality of "
                         f"logps {tuple(logps.shape)}), got {tuple(w.shape)}")
    alpha, _ = softmax(w)  # (M,) positive weights that sum to one
    y = (alpha[None, :, None] * logps).sum(axis=1)  # (N, K)
    return y, (logps, alpha)


def late_fusion_backward(dy, cache):
    """dlogps, dw of ``late_fusion``."""
    logps, alpha = cache
    N, M, K = logps.shape
    check_grad("late_fusion_backward", "dy", dy, (N, K), logps.dtype)
    dlogps = alpha[None, :, None] * dy[:, None, :]  # (N, M, K) each modality scaled by its weight
    dalpha = (dy[:, None, :] * logps).sum(axis=(0, 2))  # (M,) s_m: how much y moves with α_m
    dw = alpha * (dalpha - (alpha * dalpha).sum())  # (M,) the softmax Jacobian α_m (δ_mj − α_j)
    return dlogps, dw
# end-late-fusion


# start-gated-fusion
def gated_fusion(ha, hb, z):
    """h = z ⊙ ha + (1 − z) ⊙ hb: a per-sample, per-unit convex mix of two modalities (the GMU's output).

    ha, hb, z (N, F), z in (0, 1) (a sigmoid of both modalities' features) → h (N, F).
    Backward: dha = z ⊙ dh, dhb = (1 − z) ⊙ dh, dz = dh ⊙ (ha − hb).
    See chapters/32-multimodal.md#eq-gated-backward.
    """
    for name, a in (("ha", ha), ("hb", hb), ("z", z)):
        check_float("gated_fusion", name, a)
        check_ndim("gated_fusion", name, a, 2)
    check_same_dtype("gated_fusion", ha=ha, hb=hb, z=z)
    if not ha.shape == hb.shape == z.shape:
        raise ValueError(f"gated_fusion: expected ha, hb and z of one shape (N, F), got {tuple(ha.shape)}, "
                         f"{tuple(hb.shape)} and {tuple(z.shape)}")
    h = z * ha + (1 - z) * hb  # (N, F)
    return h, (ha, hb, z)


def gated_fusion_backward(dh, cache):
    """dha, dhb, dz of ``gated_fusion``."""
    ha, hb, z = cache
    check_grad("gated_fusion_backward", "dh", dh, z.shape, z.dtype)
    dha = z * dh  # (N, F)
    dhb = (1 - z) * dh  # (N, F)
    dz = dh * (ha - hb)  # (N, F) the gate moves h towards ha by (ha − hb)
    return dha, dhb, dz
# end-gated-fusion


# start-modality-dropout
def modality_dropout(x, fill, *, mask):
    """y_n = m_n x_n + (1 − m_n) fill: the samples with m_n = 0 lose this modality (it becomes ``fill``).

    x (N, ...), fill broadcastable to x.shape[1:] (a blank image, the features of silence, or a learned
    "missing" vector), mask (N,) of 0/1 (drawn by the caller, no gradient) → y like x. No rescaling:
    a missing modality at test time looks exactly like a dropped one in training.
    Backward: dx = m ⊙ dy, dfill = Σ_n (1 − m_n) dy_n (summed down to fill's shape).
    See chapters/32-multimodal.md#eq-moddrop-backward.
    """
    check_float("modality_dropout", "x", x)
    check_float("modality_dropout", "fill", fill)
    check_same_dtype("modality_dropout", x=x, fill=fill)
    if not hasattr(mask, "shape") or tuple(mask.shape) != x.shape[:1]:
        raise ValueError(f"modality_dropout: expected mask of shape ({x.shape[0]},) (one 0/1 per sample of x "
                         f"{tuple(x.shape)}), got {tuple(getattr(mask, 'shape', ()))}")
    if fill.ndim > x.ndim - 1 or any(f not in (1, s) for f, s in zip(fill.shape[::-1], x.shape[:0:-1])):
        raise ValueError(f"modality_dropout: fill of shape {tuple(fill.shape)} does not broadcast to one "
                         f"sample of x, {tuple(x.shape[1:])}")
    xp = get_array_module(x, fill)
    m = xp.asarray(mask).astype(x.dtype).reshape((-1,) + (1,) * (x.ndim - 1))  # (N, 1, ...) on x's device
    y = m * x + (1 - m) * fill  # (N, ...)
    return y, (m, fill.shape, x.shape, x.dtype)


def modality_dropout_backward(dy, cache):
    """dx, dfill of ``modality_dropout``."""
    m, fill_shape, x_shape, dtype = cache
    check_grad("modality_dropout_backward", "dy", dy, x_shape, dtype)
    dx = m * dy  # (N, ...) a dropped sample's input gets nothing
    dfill = ((1 - m) * dy).sum(axis=0)  # x.shape[1:]: the fill stood in for every dropped sample
    lead = dfill.ndim - len(fill_shape)
    dfill = dfill.sum(axis=tuple(range(lead))) if lead else dfill  # leading broadcast axes
    axes = tuple(i for i, f in enumerate(fill_shape) if f == 1 and dfill.shape[i] != 1)
    return dx, (dfill.sum(axis=axes, keepdims=True) if axes else dfill).reshape(fill_shape)
# end-modality-dropout
