"""Thin layer classes over ``scratchnet.functional``: forward calls F.op and pushes the cache;
backward pops it, adds parameter gradients into ``.grad`` and returns the input gradient."""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._random import get_rng
from . import init
from .module import Module, Parameter

__all__ = ["Linear", "Embedding", "Identity", "Flatten", "Reshape", "Dropout", "DropPath",
           "BatchNorm1d", "BatchNorm2d", "LayerNorm",
           "ReLU", "ReLU6", "Hardtanh", "LeakyReLU", "Sigmoid", "Tanh", "GELU", "SiLU", "Softplus", "Softmax",
           "LogSoftmax"]


class Linear(Module):
    """y = x @ w + b with w (in_features, out_features); PyTorch's default U(±1/√in) init."""

    def __init__(self, in_features, out_features, bias=True, *, rng=None, dtype=np.float32):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        bound = 1.0 / math.sqrt(in_features)
        rng = get_rng(rng)
        self.weight = Parameter(init.uniform((in_features, out_features), -bound, bound, rng=rng, dtype=dtype))
        self.bias = Parameter(init.uniform((out_features,), -bound, bound, rng=rng, dtype=dtype)) if bias else None

    def forward(self, x):
        if x.shape[-1] != self.in_features:
            raise ValueError(f"Linear({self.in_features}, {self.out_features}): expected input (..., "
                             f"{self.in_features}), got shape {tuple(x.shape)}")
        y, cache = F.linear(x, self.weight.data, None if self.bias is None else self.bias.data)
        self.push(cache)
        return y

    def backward(self, dy):
        dx, dw, db = F.linear_backward(dy, self.pop())
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"


class Embedding(Module):
    """A (num_embeddings, embedding_dim) table looked up by integer ids; N(0, 1) init as PyTorch."""

    def __init__(self, num_embeddings, embedding_dim, *, rng=None, dtype=np.float32):
        super().__init__()
        self.weight = Parameter(init.normal((num_embeddings, embedding_dim), 1.0, rng=rng, dtype=dtype))

    def forward(self, ids):
        y, cache = F.embedding(ids, self.weight.data)
        self.push(cache)
        return y

    def backward(self, dy):
        self.weight.grad += F.embedding_backward(dy, self.pop())
        return None  # integer ids get no gradient


class _Stateless(Module):
    """A parameter-free layer: ``_fn(x, **opts)`` forward, ``_bwd(dy, cache)`` backward."""
    _fn = _bwd = None

    def __init__(self, **opts):
        super().__init__()
        self.opts = opts

    def forward(self, x):
        y, cache = type(self)._fn(x, **self.opts)
        self.push(cache)
        return y

    def backward(self, dy):
        return type(self)._bwd(dy, self.pop())

    def extra_repr(self):
        return ", ".join(f"{k}={v}" for k, v in self.opts.items())


def _stateless(name, fn, bwd, doc):
    return type(name, (_Stateless,), {"_fn": staticmethod(fn), "_bwd": staticmethod(bwd), "__doc__": doc})


ReLU = _stateless("ReLU", F.relu, F.relu_backward, "max(x, 0).")
Sigmoid = _stateless("Sigmoid", F.sigmoid, F.sigmoid_backward, "1 / (1 + e^{-x}).")
Tanh = _stateless("Tanh", F.tanh, F.tanh_backward, "tanh(x).")
SiLU = _stateless("SiLU", F.silu, F.silu_backward, "x σ(x).")
ReLU6 = _stateless("ReLU6", F.relu6, F.relu6_backward, "min(max(x, 0), 6).")
Softplus = _stateless("Softplus", F.softplus, F.softplus_backward, "log(1 + eˣ).")


class LeakyReLU(_Stateless):
    """x if x > 0 else slope·x."""
    _fn, _bwd = staticmethod(F.leaky_relu), staticmethod(F.leaky_relu_backward)

    def __init__(self, slope=0.01):
        super().__init__(slope=slope)


class Hardtanh(_Stateless):
    """clip(x, min_val, max_val)."""
    _fn, _bwd = staticmethod(F.hardtanh), staticmethod(F.hardtanh_backward)

    def __init__(self, min_val=-1.0, max_val=1.0):
        super().__init__(min_val=min_val, max_val=max_val)


class GELU(_Stateless):
    """x Φ(x), exact or with the tanh approximation."""
    _fn, _bwd = staticmethod(F.gelu), staticmethod(F.gelu_backward)

    def __init__(self, approximate="none"):
        super().__init__(approximate=approximate)


class Softmax(_Stateless):
    _fn, _bwd = staticmethod(F.softmax), staticmethod(F.softmax_backward)

    def __init__(self, axis=-1):
        super().__init__(axis=axis)


class LogSoftmax(_Stateless):
    _fn, _bwd = staticmethod(F.log_softmax), staticmethod(F.log_softmax_backward)

    def __init__(self, axis=-1):
        super().__init__(axis=axis)


class Flatten(_Stateless):
    """(N, d1, d2, ...) → (N, d1·d2·...)."""
    _fn, _bwd = staticmethod(F.flatten), staticmethod(F.flatten_backward)

    def __init__(self, start_axis=1):
        super().__init__(start_axis=start_axis)


class Reshape(_Stateless):
    _fn, _bwd = staticmethod(F.reshape), staticmethod(F.reshape_backward)

    def __init__(self, *shape):
        super().__init__(shape=tuple(shape))


class Identity(Module):
    def forward(self, x):
        return x

    def backward(self, dy):
        return dy


class Dropout(Module):
    """Inverted dropout with its own generator (``rng``); the identity in eval mode."""

    def __init__(self, p=0.5, *, rng=None):
        super().__init__()
        self.p = p
        own = isinstance(rng, np.random.Generator)
        self.rng = rng if own else np.random.default_rng(get_rng(rng).integers(2**63))

    def forward(self, x):
        y, cache = F.dropout(x, p=self.p, training=self.training, rng=self.rng)
        self.push(cache)
        return y

    def backward(self, dy):
        return F.dropout_backward(dy, self.pop())

    def extra_repr(self):
        return f"p={self.p}"


class DropPath(Dropout):
    """Stochastic depth: each sample's input is kept (scaled by 1/(1 − p)) or zeroed whole; eval: identity.

    ``forward(x, mask=None)``: an explicit (N,) mask overrides the module's generator (gradchecks).
    """

    def forward(self, x, mask=None):
        y, cache = F.drop_path(x, p=self.p, training=self.training, rng=self.rng, mask=mask)
        self.push(cache)
        return y

    def backward(self, dy):
        return F.drop_path_backward(dy, self.pop())


class _BatchNorm(Module):
    """Shared body of BatchNorm1d/2d: γ, β parameters and running_mean/var buffers."""
    _ndims = (2,)

    def __init__(self, num_features, *, eps=1e-5, momentum=0.1, affine=True, dtype=np.float32):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.weight = Parameter(np.ones(num_features, dtype)) if affine else None
        self.bias = Parameter(np.zeros(num_features, dtype)) if affine else None
        self.register_buffer("running_mean", np.zeros(num_features, dtype))
        self.register_buffer("running_var", np.ones(num_features, dtype))

    def forward(self, x):
        name = type(self).__name__
        if x.ndim not in self._ndims or x.shape[1] != self.num_features:
            raise ValueError(f"{name}({self.num_features}): expected input of rank {self._ndims} with "
                             f"{self.num_features} channels on axis 1, got shape {tuple(x.shape)}")
        y, cache = F.batch_norm(x, None if self.weight is None else self.weight.data,
                                None if self.bias is None else self.bias.data,
                                self.running_mean, self.running_var, training=self.training,
                                momentum=self.momentum, eps=self.eps)
        self.push(cache)
        return y

    def backward(self, dy):
        dx, dgamma, dbeta = F.batch_norm_backward(dy, self.pop())
        if self.weight is not None:
            self.weight.grad += dgamma
            self.bias.grad += dbeta
        return dx

    def extra_repr(self):
        return f"{self.num_features}, eps={self.eps}, momentum={self.momentum}"


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) inputs."""
    _ndims = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) inputs, statistics per channel."""
    _ndims = (4,)


class LayerNorm(Module):
    """Normalise over the last axis with learned γ, β."""

    def __init__(self, normalized_shape, *, eps=1e-5, elementwise_affine=True, dtype=np.float32):
        super().__init__()
        self.normalized_shape, self.eps = normalized_shape, eps
        self.weight = Parameter(np.ones(normalized_shape, dtype)) if elementwise_affine else None
        self.bias = Parameter(np.zeros(normalized_shape, dtype)) if elementwise_affine else None

    def forward(self, x):
        if x.shape[-1] != self.normalized_shape:
            raise ValueError(f"LayerNorm({self.normalized_shape}): expected input (..., {self.normalized_shape}), "
                             f"got shape {tuple(x.shape)}")
        y, cache = F.layer_norm(x, None if self.weight is None else self.weight.data,
                                None if self.bias is None else self.bias.data, eps=self.eps)
        self.push(cache)
        return y

    def backward(self, dy):
        dx, dgamma, dbeta = F.layer_norm_backward(dy, self.pop())
        if self.weight is not None:
            self.weight.grad += dgamma
            self.bias.grad += dbeta
        return dx
