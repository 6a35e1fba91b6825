"""Magnitude pruning with retraining (Han, Pool, Tran & Dally 2015, "Learning both weights and
connections for efficient neural networks"): masked layers, layer-wise thresholds, the iterative
prune–retrain schedule, CSR export, and the two MNIST networks of the paper.

Legend: N batch, D_in / D_out features, C channels, s sparsity (fraction of a layer's weights set
to zero), nnz nonzero weights. A masked layer's ``mask`` buffer has its weight's shape (1 kept, 0
pruned); the forward uses w ⊙ mask and the backward masks dw, so a pruned weight stays at zero.

    model = LeNet300100(rng=0)                     # dense: every mask is all ones
    ... train ...
    masks = magnitude_masks(model, {"layers.0": 0.92, "layers.2": 0.91, "layers.4": 0.74})
    apply_masks(model, masks, optimizer)           # zero the weights and the optimizer's state there
    ... retrain, prune further, retrain ...

See chapters/33-pruning.md.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..backend import device_of, to_device
from ..kernels.sparse import csr_matmat, to_csr
from ..nn.conv import Conv2d, MaxPool2d
from ..nn.layers import Flatten, Linear, ReLU
from ..nn.module import Sequential, no_grad

__all__ = ["MaskedLinear", "MaskedConv2d", "LeNet300100", "LeNet5Caffe", "masked_layers", "layer_thresholds",
           "magnitude_masks", "apply_masks", "sparsity_report", "prune_retrain", "sensitivity", "csr_linear",
           "to_sparse", "sparse_forward"]


# start-masked-layers
class MaskedLinear(Linear):
    """Linear whose weight is used as w ⊙ mask (mask (D_in, D_out), all ones until pruned)."""

    def __init__(self, in_features, out_features, bias=True, *, rng=None, dtype=np.float32):
        super().__init__(in_features, out_features, bias, rng=rng, dtype=dtype)
        self.register_buffer("mask", np.ones_like(self.weight.data))  # (D_in, D_out)

    def forward(self, x):
        if x.shape[-1] != self.in_features:
            raise ValueError(f"MaskedLinear({self.in_features}, {self.out_features}): expected input (..., "
                             f"{self.in_features}), got shape {tuple(x.shape)}")
        y, cache = F.masked_linear(x, self.weight.data, None if self.bias is None else self.bias.data,
                                   mask=self.mask)
        self.push(cache)
        return y

    def backward(self, dy):
        dx, dw, db = F.masked_linear_backward(dy, self.pop())  # dw is already ⊙ mask
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx
# end-masked-layers


class MaskedConv2d(Conv2d):
    """Conv2d whose weight is used as w ⊙ mask (mask (C_out, C_in/groups, KH, KW), all ones until pruned)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.register_buffer("mask", np.ones_like(self.weight.data))  # (C_out, C_in/groups, KH, KW)

    def forward(self, x):
        y, cache = F.masked_conv2d(x, self.weight.data, None if self.bias is None else self.bias.data,
                                   mask=self.mask, **self.opts)
        self.push(cache)
        return y

    def backward(self, dy):
        dx, dw, db = F.masked_conv2d_backward(dy, self.pop())
        self.weight.grad += dw
        if self.bias is not None:
            self.bias.grad += db
        return dx


class LeNet300100(Sequential):
    """LeNet-300-100: 784 → 300 → 100 → 10 with ReLU, all layers masked (266,610 parameters).

    Input (N, 784) flattened MNIST → (N, 10) logits.
    """

    def __init__(self, num_classes=10, *, rng=None, dtype=np.float32):
        kw = dict(rng=rng, dtype=dtype)
        super().__init__(MaskedLinear(784, 300, **kw), ReLU(), MaskedLinear(300, 100, **kw), ReLU(),
                         MaskedLinear(100, num_classes, **kw))

    def forward(self, x):
        if x.ndim != 2 or x.shape[1] != 784:
            raise ValueError(f"LeNet300100: expected input (N, 784) (flattened 28×28 images), "
                             f"got shape {tuple(x.shape)}")
        return super().forward(x)


class LeNet5Caffe(Sequential):
    """The "LeNet-5" of Han et al. (Caffe's MNIST example): conv 20@5×5 → max-pool → conv 50@5×5 →
    max-pool → 500 ReLU → 10, all weights masked (431,080 parameters). As in Caffe, the convolutions
    have no nonlinearity of their own (the max-pooling is the only one before the ReLU).

    Input (N, 1, 28, 28) → (N, 10) logits.
    """

    def __init__(self, num_classes=10, *, rng=None, dtype=np.float32):
        kw = dict(rng=rng, dtype=dtype)
        super().__init__(MaskedConv2d(1, 20, 5, **kw), MaxPool2d(2),  # 20@12×12
                         MaskedConv2d(20, 50, 5, **kw), MaxPool2d(2), Flatten(),  # 50@4×4 = 800
                         MaskedLinear(800, 500, **kw), ReLU(), MaskedLinear(500, num_classes, **kw))

    def forward(self, x):
        if x.ndim != 4 or x.shape[1:] != (1, 28, 28):
            raise ValueError(f"LeNet5Caffe: expected input (N, 1, 28, 28), got shape {tuple(x.shape)}")
        return super().forward(x)


# -- thresholds and masks -------------------------------------------------------------------------------
def masked_layers(model) -> list:
    """(name, layer) for every MaskedLinear / MaskedConv2d of ``model``, in forward order."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (MaskedLinear, MaskedConv2d))]


def _per_layer(model, sparsity) -> dict:
    """A sparsity for every masked layer: one float for all, or a dict name → float (others untouched)."""
    layers = dict(masked_layers(model))
    if not isinstance(sparsity, dict):
        sparsity = {n: sparsity for n in layers}
    unknown = sorted(set(sparsity) - set(layers))
    if unknown:
        raise ValueError(f"magnitude pruning: no masked layer named {unknown}; the masked layers are {sorted(layers)}")
    for n, s in sparsity.items():
        if not 0.0 <= s < 1.0:
            raise ValueError(f"magnitude pruning: sparsity of {n!r} must be in [0, 1), got {s}")
    return {n: (layers[n], float(s)) for n, s in sparsity.items()}


# start-thresholds
def layer_thresholds(model, sparsity) -> dict:
    """name → the magnitude below which a fraction ``sparsity`` of the layer's weights lie.

    One threshold per layer (Han et al. §3.3: layers differ in sensitivity, so they are pruned
    differently). Already-pruned weights count as zeros, the smallest magnitudes of all.
    """
    thresholds = {}
    for name, (layer, s) in _per_layer(model, sparsity).items():
        magnitude = np.abs(layer.weight.data * layer.mask).ravel()  # (size,)
        k = int(round(s * magnitude.size))  # how many weights to remove
        thresholds[name] = 0.0 if k == 0 else float(np.partition(magnitude, k - 1)[k - 1])
    return thresholds


def magnitude_masks(model, sparsity) -> dict:
    """name → the new mask: keep the weights whose |w| exceeds the layer's threshold (and were kept before)."""
    layers = dict(masked_layers(model))
    masks = {}
    for name, t in layer_thresholds(model, sparsity).items():
        layer = layers[name]
        keep = np.abs(layer.weight.data) > t if t > 0 else np.ones(layer.mask.shape, bool)
        masks[name] = (keep & (layer.mask != 0)).astype(layer.mask.dtype)  # a pruned weight never returns
    return masks
# end-thresholds


# start-apply-masks
def apply_masks(model, masks, optimizer=None) -> None:
    """Install ``masks`` (name → 0/1 array): set each layer's mask, zero its pruned weights, and zero the
    optimizer's per-weight state there (a momentum buffer or Adam moment left over from dense training
    would otherwise move a pruned weight off zero)."""
    layers = dict(masked_layers(model))
    for name, mask in masks.items():
        layer = layers[name]
        if mask.shape != layer.mask.shape:
            raise ValueError(f"apply_masks: mask for {name!r} has shape {tuple(mask.shape)}, "
                             f"the layer's weight {tuple(layer.mask.shape)}")
        layer.mask[...] = mask
        layer.weight.data *= layer.mask  # pruned weights are exactly zero
        if optimizer is not None:
            for value in optimizer.state.get(id(layer.weight), {}).values():
                if hasattr(value, "shape") and value.shape == mask.shape:
                    # momentum / moments: no stored push at a pruned weight (the state may still be on the
                    # GPU, where fit(..., device="gpu") left it, while the model is back on the CPU)
                    value *= to_device(layer.mask, device_of(value))
# end-apply-masks


def sparsity_report(model) -> list:
    """One dict per masked layer: name, weights, nonzero (kept), density; and a last row "total"."""
    rows = []
    for name, layer in masked_layers(model):
        kept = int(np.count_nonzero(layer.weight.data * layer.mask))
        rows.append(dict(name=name, weights=int(layer.mask.size), nonzero=kept, density=kept / layer.mask.size))
    total, kept = sum(r["weights"] for r in rows), sum(r["nonzero"] for r in rows)
    rows.append(dict(name="total", weights=total, nonzero=kept, density=kept / max(total, 1)))
    return rows


def prune_retrain(model, schedule, retrain, optimizer=None) -> list:
    """Han et al.'s iterative pruning: for each stage's sparsity (a float or name → float, rising from
    stage to stage), prune by magnitude, then call ``retrain(stage)`` (which trains the masked model
    and returns a dict of what it measured). Returns one dict per stage: the sparsities, the report,
    and what ``retrain`` returned."""
    records = []
    for stage, sparsity in enumerate(schedule):
        apply_masks(model, magnitude_masks(model, sparsity), optimizer)
        record = {"stage": stage, "sparsity": sparsity, "report": sparsity_report(model)}
        record.update(retrain(stage) or {})
        records.append(record)
    return records


def sensitivity(model, name, sparsities, score) -> list:
    """``score(model)`` with only layer ``name`` pruned to each sparsity (no retraining); the weights
    and mask are restored afterwards. Han et al.'s Figure 5: how much each layer tolerates."""
    layer = dict(masked_layers(model))[name]
    saved_w, saved_m = layer.weight.data.copy(), layer.mask.copy()
    out = []
    try:
        for s in sparsities:
            apply_masks(model, magnitude_masks(model, {name: s}))
            out.append(score(model))
            layer.weight.data[...], layer.mask[...] = saved_w, saved_m
    finally:
        layer.weight.data[...], layer.mask[...] = saved_w, saved_m
    return out


# -- sparse inference -------------------------------------------------------------------------------------
def csr_linear(x, A, b=None):
    """y = x (w ⊙ mask) + b with the weights stored as A = CSR of (w ⊙ mask)ᵀ (D_out, D_in): y = (A xᵀ)ᵀ + b.

    x (N, D_in) → y (N, D_out). Row j of A holds only output unit j's surviving incoming weights.
    """
    y = csr_matmat(A, np.ascontiguousarray(x.T)).T  # (N, D_out)
    return y + b if b is not None else y


def to_sparse(model) -> dict:
    """name → CSR of (w ⊙ mask)ᵀ (D_out, D_in) for every MaskedLinear of ``model``: its compressed storage."""
    return {name: to_csr(np.ascontiguousarray((m.weight.data * m.mask).T))
            for name, m in masked_layers(model) if isinstance(m, MaskedLinear)}


def sparse_forward(model, x, csrs=None):
    """The logits of a Sequential ``model`` with every MaskedLinear run from CSR storage (``csrs`` from
    ``to_sparse``, made here if None), every other layer as usual; nothing is cached."""
    csrs = to_sparse(model) if csrs is None else csrs
    with no_grad():
        for i, layer in enumerate(model.layers):
            if isinstance(layer, MaskedLinear):
                x = csr_linear(x, csrs[f"layers.{i}"], None if layer.bias is None else layer.bias.data)
            else:
                x = layer(x)
    return x
