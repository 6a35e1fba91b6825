"""A model summary: every layer's output shape, parameter count and multiply-adds, in forward order.

Legend: N batch, C channels, H, W spatial size, D_in / D_out features, G groups, KH, KW kernel.

``summary(model, input_shape)`` runs one forward pass (evaluation mode, nothing cached) on a batch of
random inputs and records what each leaf layer (a module without sub-modules) produced. Multiply-adds
(MACs) are counted per input example, for the layers whose cost is a product of weights and inputs:

- ``Conv2d``: C_out · OH · OW · (C_in / G) · KH · KW  (each output value is a dot product of that length)
- ``ConvTranspose2d``: C_in · H · W · (C_out / G) · KH · KW  (each input value is scattered that often)
- ``Linear``: (number of output rows) · D_in · D_out
- ``RNN`` / ``LSTM`` / ``GRU``: T · gates · H · (D + H) per layer and direction

Elementwise layers, normalisations, pooling and embeddings count 0 (their cost is linear in the activations, a
rounding error next to the convolutions, and the papers' mult-add counts leave them out too). A layer
with parameters of a kind not listed above shows "?" and makes the total a lower bound.
See chapters/12-mobilenet.md#summary.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..nn.module import Module, no_grad

__all__ = ["summary", "ModelSummary", "layer_macs"]


def _conv_macs(m, x, y):
    C_out, C_in_per_group, KH, KW = m.weight.data.shape
    return int(np.prod(y.shape[1:])) * C_in_per_group * KH * KW  # C_out·OH·OW · (C_in/G)·KH·KW


def _conv_transpose_macs(m, x, y):
    C_in, C_out_per_group, KH, KW = m.weight.data.shape
    return int(np.prod(x.shape[1:])) * C_out_per_group * KH * KW  # C_in·H·W · (C_out/G)·KH·KW


def _linear_macs(m, x, y):
    D_in, D_out = m.weight.data.shape
    return int(np.prod(y.shape[1:-1], dtype=np.int64)) * D_in * D_out  # rows per example · D_in · D_out


def _recurrent_macs(m, x, y):
    """T · gates·H · (D + H) for every layer and direction, from the weights' shapes."""
    T = x.shape[1]
    total = 0
    for name, p in m.named_parameters():
        if name.split(".")[-1].startswith(("wx", "wh", "weight_ih", "weight_hh")) and p.data.ndim == 2:
            total += T * p.data.shape[0] * p.data.shape[1]  # (D or H) × gates·H
    return total


_MACS = {"Conv2d": _conv_macs, "ConvTranspose2d": _conv_transpose_macs, "Linear": _linear_macs,
         "RNN": _recurrent_macs, "LSTM": _recurrent_macs, "GRU": _recurrent_macs}


def layer_macs(module, x, y):
    """Multiply-adds per example of one call ``y = module(x)``; 0 for parameter-free layers, None if unknown."""
    kind = type(module).__name__
    count = _MACS.get(kind)
    if count is not None:
        return count(module, x, y)
    if not module.num_parameters() or "Norm" in kind or kind == "Embedding":
        return 0  # elementwise, pooling, normalisation (a scale and shift per value), a table lookup
    return None


def _leaves(model):
    """(name, module) for the layers the table shows: modules without sub-modules, plus the recurrent
    layers (whose cost is counted whole)."""
    out = []
    for name, m in model.named_modules():
        kids = [c for _, c in m._children() if isinstance(c, Module)]
        if m is not model and (not kids or type(m).__name__ in _MACS):
            if not any(name.startswith(p + ".") for p, _ in out):  # not inside a layer already counted
                out.append((name, m))
    return out or [("", model)]


@dataclass
class ModelSummary:
    """The rows of a summary (dicts: name, type, output_shape, params, macs) and their totals."""
    model_name: str
    input_shape: tuple
    rows: list = field(default_factory=list)
    total_params: int = 0
    trainable_params: int = 0

    @property
    def total_macs(self) -> int:
        """Multiply-adds per example (a lower bound if a row is unknown, see ``macs_complete``)."""
        return sum(r["macs"] or 0 for r in self.rows)

    @property
    def macs_complete(self) -> bool:
        return all(r["macs"] is not None for r in self.rows)

    def __str__(self):
        header = ("layer", "type", "output shape", "params", "mult-adds")
        body = [(r["name"], r["type"], str(r["output_shape"]), f"{r['params']:,}",
                 "?" if r["macs"] is None else f"{r['macs']:,}") for r in self.rows]
        widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
        right = (False, False, False, True, True)

        def line(cells):
            return "  ".join(c.rjust(w) if r else c.ljust(w) for c, w, r in zip(cells, widths, right)).rstrip()

        rule = "-" * len(line(header))
        bound = "" if self.macs_complete else " (lower bound: a layer's cost is unknown)"
        return "\n".join([f"{self.model_name}, input (N, {', '.join(map(str, self.input_shape))})", rule,
                          line(header), rule, *map(line, body), rule,
                          f"total parameters: {self.total_params:,} (trainable {self.trainable_params:,})",
                          f"mult-adds per example: {self.total_macs:,} = {self.total_macs / 1e6:.2f} M{bound}"])

    def _repr_pretty_(self, p, cycle):  # IPython shows the table, not the dataclass fields
        p.text(str(self))


def summary(model, input_shape, *, batch_size=2, dtype=None, rng=None) -> ModelSummary:
    """Run ``model`` once on random input of shape (batch_size, *input_shape) and tabulate its layers.

    The model is put in evaluation mode for the pass (batch norm uses running statistics, dropout is
    off) and restored afterwards; nothing is cached, no parameter changes. Parameters shared between
    layers are counted once in the totals. Multi-input models are out of scope (pass a wrapper).
    """
    leaves = _leaves(model)
    if dtype is None:
        params = model.parameters()
        dtype = params[0].data.dtype if params else np.float32
    rng = np.random.default_rng(0) if rng is None else rng
    x = rng.standard_normal((batch_size,) + tuple(input_shape)).astype(dtype)  # (N, *input_shape)
    rows, seen = [], set()

    def wrap(name, m):
        inner = m.forward

        def forward(*args, **kwargs):
            y = inner(*args, **kwargs)
            first = y[0] if isinstance(y, tuple) else y
            new = [p for p in m.parameters() if id(p) not in seen]
            seen.update(id(p) for p in new)
            shape = "(" + ", ".join(["N", *map(str, first.shape[1:])]) + ")"  # the batch axis shown as N
            rows.append({"name": name, "type": type(m).__name__, "output_shape": shape,
                         "params": sum(int(p.data.size) for p in new),
                         "macs": layer_macs(m, args[0], first)})
            return y
        return forward

    modes = {id(m): m.training for m in model.modules()}
    for name, m in leaves:
        m.forward = wrap(name, m)  # an instance attribute shadows the class's forward for this pass
    try:
        model.eval()
        with no_grad():
            model(x)
    finally:
        for _, m in leaves:
            del m.forward
        for m in model.modules():
            m.training = modes[id(m)]
    params = model.parameters()
    total = sum(int(p.data.size) for p in params)
    return ModelSummary(type(model).__name__, tuple(input_shape), rows, total, total)
