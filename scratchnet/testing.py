"""PyTorch twins for parity tests (torch is imported lazily; the library never needs it).

    twin = torch_twin(model)           # a torch.nn module with the same weights
    y_t = twin(to_torch(x))

Weight layouts differ only for Linear: scratchnet stores (D_in, D_out), PyTorch (D_out, D_in).
"""
from __future__ import annotations

import numpy as np

from .backend import asnumpy

__all__ = ["to_torch", "from_torch", "torch_twin", "TWINS", "overfit_batch", "settle_eval"]


def _torch():
    try:
        import torch
    except ImportError as e:  # pragma: no cover
        raise ImportError("scratchnet.testing needs PyTorch (pip install torch) for parity tests") from e
    return torch


def to_torch(a, requires_grad=False):
    """A torch tensor with the same values and dtype (int arrays become int64)."""
    torch = _torch()
    arr = np.asarray(asnumpy(a))
    t = torch.from_numpy(arr.astype(np.int64) if arr.dtype.kind in "iu" else arr.copy())
    return t.requires_grad_(requires_grad) if t.is_floating_point() else t


def from_torch(t):
    """A NumPy copy of a torch tensor."""
    return t.detach().cpu().numpy()


def _copy(dst, src):
    torch = _torch()
    with torch.no_grad():
        dst.copy_(torch.from_numpy(np.ascontiguousarray(asnumpy(src))))


def _linear(m, torch):
    t = torch.nn.Linear(m.in_features, m.out_features, bias=m.bias is not None, dtype=_dt(m.weight.data, torch))
    _copy(t.weight, m.weight.data.T)
    if m.bias is not None:
        _copy(t.bias, m.bias.data)
    return t


def _batchnorm(m, torch):
    cls = torch.nn.BatchNorm2d if type(m).__name__ == "BatchNorm2d" else torch.nn.BatchNorm1d
    t = cls(m.num_features, eps=m.eps, momentum=m.momentum, affine=m.weight is not None,
            dtype=_dt(m.running_mean, torch))
    if m.weight is not None:
        _copy(t.weight, m.weight.data)
        _copy(t.bias, m.bias.data)
    _copy(t.running_mean, m.running_mean)
    _copy(t.running_var, m.running_var)
    return t.train(m.training)


def _layernorm(m, torch):
    t = torch.nn.LayerNorm(m.normalized_shape, eps=m.eps, elementwise_affine=m.weight is not None,
                           dtype=_dt(m.weight.data, torch) if m.weight is not None else None)
    if m.weight is not None:
        _copy(t.weight, m.weight.data)
        _copy(t.bias, m.bias.data)
    return t


def _conv2d(m, torch):
    t = torch.nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, bias=m.bias is not None,
                        dtype=_dt(m.weight.data, torch), **m.opts)  # stride, padding, dilation, groups
    _copy(t.weight, m.weight.data)
    if m.bias is not None:
        _copy(t.bias, m.bias.data)
    return t


def _dt(a, torch):
    return torch.float64 if np.dtype(a.dtype) == np.float64 else torch.float32


def _simple(name, **kw):
    return lambda m, torch: getattr(torch.nn, name)(**{k: f(m) for k, f in kw.items()})


TWINS = {
    "Linear": _linear, "BatchNorm1d": _batchnorm, "BatchNorm2d": _batchnorm, "LayerNorm": _layernorm,
    "ReLU": _simple("ReLU"), "Sigmoid": _simple("Sigmoid"), "Tanh": _simple("Tanh"), "SiLU": _simple("SiLU"),
    "Softplus": _simple("Softplus"), "Identity": _simple("Identity"),
    "LeakyReLU": _simple("LeakyReLU", negative_slope=lambda m: m.opts["slope"]),
    "GELU": _simple("GELU", approximate=lambda m: m.opts["approximate"]),
    "Softmax": _simple("Softmax", dim=lambda m: m.opts["axis"]),
    "LogSoftmax": _simple("LogSoftmax", dim=lambda m: m.opts["axis"]),
    "Flatten": _simple("Flatten", start_dim=lambda m: m.opts["start_axis"]),
    "Dropout": _simple("Dropout", p=lambda m: m.p),
    "Conv2d": _conv2d, "ReLU6": _simple("ReLU6"),
    "Hardtanh": _simple("Hardtanh", min_val=lambda m: m.opts["min_val"], max_val=lambda m: m.opts["max_val"]),
    "MaxPool2d": _simple("MaxPool2d", kernel_size=lambda m: m.opts["kernel_size"],
                         stride=lambda m: m.opts["stride"], padding=lambda m: m.opts["padding"]),
}


def torch_twin(module):
    """A torch.nn module computing the same function with copied weights (Sequential recursively).

    Other families extend ``TWINS`` with their own builders: ``TWINS["Conv2d"] = fn(module, torch)``.
    """
    torch = _torch()
    name = type(module).__name__
    if name == "Sequential":
        return torch.nn.Sequential(*[torch_twin(m) for m in module.layers])
    if name not in TWINS:
        raise NotImplementedError(f"torch_twin: no PyTorch twin registered for {name}")
    return TWINS[name](module, torch)


def settle_eval(module, rng):
    """Give every batch norm non-trivial running statistics and affine parameters, then evaluation
    mode: an eval-mode gradcheck or parity test then exercises the affine map BN becomes."""
    for bn in [m for m in module.modules() if hasattr(m, "running_var")]:
        bn.running_mean[...] = rng.standard_normal(bn.running_mean.shape) * 0.3
        bn.running_var[...] = rng.uniform(0.5, 2.0, bn.running_var.shape)
        if bn.weight is not None:
            bn.weight.data[...] = rng.uniform(0.5, 1.5, bn.weight.shape)
            bn.bias.data[...] = rng.standard_normal(bn.bias.shape) * 0.3
    return module.eval()


def overfit_batch(model, loss_fn, x, y, *, steps, lr):
    """The overfit-one-batch test: ``steps`` Adam steps on one fixed batch; returns the last loss.

    A model whose forward and backward are right drives the loss on a single small batch towards
    zero; one that plateaus has a bug (or too little capacity) long before any real data is involved.
    """
    from .optim import Adam

    opt = Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):  # one full forward/backward/update per step
        loss = loss_fn(model(x), y)
        opt.zero_grad()
        model.backward(loss_fn.backward())
        opt.step()
    return float(loss)
