"""Batch and layer normalisation.

Legend: N batch, C channels/features, H, W spatial, D features (layer_norm's last axis).
Batch norm in training mode makes one call into ``scratchnet/kernels/norm.py`` each way, which runs
either the reference here or fused Numba loops.
See chapters/01-mlp.md#batchnorm.
"""
from __future__ import annotations

from typing import NamedTuple

from .._checks import check_float, check_grad, check_ndim, check_same_dtype
from ..backend import get_array_module
from ..kernels import layernorm as _layernorm_kernels
from ..kernels import norm as _kernels

__all__ = ["batch_norm", "batch_norm_backward", "layer_norm", "layer_norm_backward"]


class BatchNormCache(NamedTuple):
    xhat: object  # x's shape and dtype: the normalised input (and the output's shape and dtype)
    inv_std: object  # (C,) 1/√(σ² + ε)
    gamma: object  # (C,) or None
    has_beta: bool
    training: bool  # the batch statistics (train) or the running ones (eval) were used
    axes: tuple  # every axis but the channel axis
    bshape: tuple  # (1, C, 1, ...): a (C,) vector broadcast against x


def batch_norm(x, gamma, beta, running_mean, running_var, *, training, momentum=0.1, eps=1e-5):
    """y = γ x̂ + β with x̂ = (x − μ)/√(σ² + ε) per channel.

    x (N, C) or (N, C, H, W); gamma, beta, running_* (C,). Training uses the batch's μ, σ² (biased)
    and updates running_mean/var in place (PyTorch: running_var gets the unbiased variance);
    evaluation uses the running statistics. Backward (training), per channel over the m = N·H·W values:
        dx = (γ / √(σ²+ε)) · (dy − mean(dy) − x̂ · mean(dy ⊙ x̂)),  dγ = Σ dy ⊙ x̂,  dβ = Σ dy.
    See chapters/01-mlp.md#eq-bn-backward.
    """
    check_float("batch_norm", "x", x)
    check_ndim("batch_norm", "x", x, (2, 3, 4))
    check_same_dtype("batch_norm", x=x, gamma=gamma, beta=beta)
    C = x.shape[1]
    for name, a in (("gamma", gamma), ("beta", beta), ("running_mean", running_mean), ("running_var", running_var)):
        if a is not None and a.shape != (C,):
            raise ValueError(f"batch_norm: expected {name} of shape ({C},) for x of shape {tuple(x.shape)}, "
                             f"got {tuple(a.shape)}")
    axes, bshape = _channel_layout(x)
    if training:
        m = x.size // C
        if m < 2:
            raise ValueError(f"batch_norm: training needs more than one value per channel, got shape {tuple(x.shape)}")
        # the fused loops of kernels/norm.py (large NumPy batches), or the readable _batch_norm_train below
        y, xhat, mu, var, inv_std = _kernels.batch_norm_train(x, gamma, beta, eps=eps, reference=_batch_norm_train)
        if running_mean is not None:
            running_mean *= 1.0 - momentum
            running_mean += momentum * mu.astype(running_mean.dtype)
        if running_var is not None:
            running_var *= 1.0 - momentum
            running_var += momentum * (var * (m / (m - 1))).astype(running_var.dtype)
    else:
        mu, var = running_mean.astype(x.dtype), running_var.astype(x.dtype)
        y, xhat, inv_std = _normalize(x - mu.reshape(bshape), var, gamma, beta, eps)
    return y, BatchNormCache(xhat, inv_std, gamma, beta is not None, training, axes, bshape)


def _channel_layout(x):
    """axes: every axis of x but the channel axis; bshape (1, C, 1, ...): a (C,) vector broadcast against x."""
    return (0,) + tuple(range(2, x.ndim)), (1, x.shape[1]) + (1,) * (x.ndim - 2)


def _batch_norm_train(x, gamma, beta, *, eps):
    """The training forward, vectorised: the batch's μ and σ² (biased), then x̂ and y → y, x̂, μ, σ², 1/√(σ²+ε)."""
    axes, bshape = _channel_layout(x)
    mu = x.mean(axis=axes)  # (C,)
    xc = x - mu.reshape(bshape)  # centred
    var = (xc * xc).mean(axis=axes)  # (C,) biased
    y, xhat, inv_std = _normalize(xc, var, gamma, beta, eps)
    return y, xhat, mu, var, inv_std


def _normalize(xc, var, gamma, beta, eps):
    """x̂ = xc/√(σ² + ε) and y = γ x̂ + β from the centred input xc → y, x̂, 1/√(σ²+ε) (C,)."""
    xp = get_array_module(xc)
    _, bshape = _channel_layout(xc)
    inv_std = 1.0 / xp.sqrt(var + eps)  # (C,)
    xhat = xc * inv_std.reshape(bshape)
    y = xhat if gamma is None else xhat * gamma.reshape(bshape)
    if beta is not None:
        y = y + beta.reshape(bshape)
    return y, xhat, inv_std


def batch_norm_backward(dy, cache):
    """dx, dgamma, dbeta of ``batch_norm`` (train: through the batch statistics; eval: affine)."""
    xhat, inv_std, gamma, has_beta, training, axes, bshape = cache
    check_grad("batch_norm_backward", "dy", dy, xhat.shape, xhat.dtype)
    dbeta = dy.sum(axis=axes) if has_beta else None  # (C,)
    dgamma = (dy * xhat).sum(axis=axes) if gamma is not None else None  # (C,)
    dxhat = dy if gamma is None else dy * gamma.reshape(bshape)
    if training:
        # closed form of the staged graph x → μ, xc, σ², inv_std, x̂ (chapter 01 derives it node by node)
        mean_dxhat = dxhat.mean(axis=axes, keepdims=True)
        mean_dxhat_xhat = (dxhat * xhat).mean(axis=axes, keepdims=True)
        dx = (dxhat - mean_dxhat - xhat * mean_dxhat_xhat) * inv_std.reshape(bshape)
    else:
        dx = dxhat * inv_std.reshape(bshape)
    return dx, dgamma, dbeta


# The public backward: the readable function above (the reference, shown in the chapter) behind the
# fused route of kernels/norm.py, which takes large training-mode NumPy batches (two reads of dy, x̂).
batch_norm_backward = _kernels.fused_backward(batch_norm_backward)


def layer_norm(x, gamma, beta, *, eps=1e-5):
    """y = γ x̂ + β with x̂ = (x − μ)/√(σ² + ε) over the last axis.

    x (..., D), gamma, beta (D,) or None. Backward per row:
        dx = (1/√(σ²+ε)) · (dx̂ − mean(dx̂) − x̂ · mean(dx̂ ⊙ x̂)),  dx̂ = dy ⊙ γ.
    See chapters/01-mlp.md#layernorm.
    """
    check_float("layer_norm", "x", x)
    check_same_dtype("layer_norm", x=x, gamma=gamma, beta=beta)
    D = x.shape[-1]
    for name, a in (("gamma", gamma), ("beta", beta)):
        if a is not None and a.shape != (D,):
            raise ValueError(f"layer_norm: expected {name} of shape ({D},) for x of shape {tuple(x.shape)}, "
                             f"got {tuple(a.shape)}")
    xp = get_array_module(x)
    mu = x.mean(axis=-1, keepdims=True)  # (..., 1)
    xc = x - mu
    var = (xc * xc).mean(axis=-1, keepdims=True)  # (..., 1)
    inv_std = 1.0 / xp.sqrt(var + eps)  # (..., 1)
    xhat = xc * inv_std  # (..., D)
    y = xhat if gamma is None else xhat * gamma
    if beta is not None:
        y = y + beta if y is xhat else xp.add(y, beta, out=y)  # in place unless y is the cached x̂
    return y, (xhat, inv_std, gamma, beta is not None)


def layer_norm_backward(dy, cache):
    """dx, dgamma, dbeta of ``layer_norm``."""
    xhat, inv_std, gamma, has_beta = cache
    check_grad("layer_norm_backward", "dy", dy, xhat.shape, xhat.dtype)
    D = xhat.shape[-1]
    dbeta = dy.reshape(-1, D).sum(axis=0) if has_beta else None  # (D,)
    dgamma = (dy * xhat).reshape(-1, D).sum(axis=0) if gamma is not None else None  # (D,)
    dxhat = dy if gamma is None else dy * gamma
    dx = (dxhat - dxhat.mean(axis=-1, keepdims=True)
          - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True)) * inv_std
    return dx, dgamma, dbeta


# The public pair: the readable functions above (the reference, shown in the chapters) behind the fused
# row loops of kernels/layernorm.py, which take NumPy float32/float64 inputs of MIN_SIZE elements or more.
layer_norm = _layernorm_kernels.fused_forward(layer_norm)
layer_norm_backward = _layernorm_kernels.fused_backward(layer_norm_backward)
