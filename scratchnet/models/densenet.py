"""Densely connected networks (Huang, Liu, van der Maaten & Weinberger 2017, "Densely connected
convolutional networks"), the DenseNet-BC family for small images.

Legend: N batch, C channels (C_0 entering a block, C_l = C_0 + l·k entering layer l), H, W spatial
size, L layers per block, k growth rate, θ compression.

A dense block feeds every layer the concatenation of the block's input and all earlier layers'
outputs: x_l = H_l([x_0, x_1, ..., x_{l-1}]), and returns [x_0, ..., x_L]. H_l is the composite
BN-ReLU-Conv (DenseNet-B: BN-ReLU-1×1 conv to 4k channels, then BN-ReLU-3×3 conv to k). A feature
map x_j is read by every later layer and by the block's output, so its gradient is the SUM over
those consumers, accumulated by the hand-written backward in reverse. Two memory layouts give the
same numbers: "naive" concatenates into a new array for every layer (memory quadratic in L),
"shared" writes each layer's k channels into one buffer per block, lets each layer read a prefix
view and recomputes the layer's BN-ReLU-1×1 head in backward (memory linear in L).
See chapters/11-densenet.md#dense-backward and chapters/11-densenet.md#dense-memory.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .._checks import check_grad
from .._random import get_rng
from ..backend import get_array_module
from ..nn.conv import AvgPool2d, Conv2d, GlobalAvgPool2d
from ..nn.layers import BatchNorm2d, Linear, ReLU
from ..nn.module import Module, Sequential, no_grad

__all__ = ["DenseLayer", "DenseBlock", "Transition", "DenseNet", "cache_bytes"]

MEMORY_MODES = ("naive", "shared")


def _conv(cin, cout, k, rng, dtype):
    """A k×k conv without bias (the next BN's β or the block's own BN replaces it), He init."""
    return Conv2d(cin, cout, k, padding=k // 2, bias=False, init="he", rng=rng, dtype=dtype)


def _check_input(name, x, channels):
    if x.ndim != 4 or x.shape[1] != channels:
        raise ValueError(f"{name}: expected input (N, {channels}, H, W), got shape {tuple(x.shape)}")


class DenseLayer(Module):
    """H_l: [BN-ReLU-1×1 conv to 4k] (the bottleneck, DenseNet-B) then BN-ReLU-3×3 conv to k.

    (N, C_l, H, W) → (N, k, H, W): only the k new channels; the block does the concatenation.
    ``head`` is the part that reads the C_l input channels (BN-ReLU-1×1 with the bottleneck,
    BN-ReLU without); ``tail`` the rest. See chapters/11-densenet.md#eq-dense-layer.
    """

    def __init__(self, in_channels, growth_rate, *, bottleneck=True, bn_size=4, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.in_channels, self.growth_rate, self.bottleneck = in_channels, growth_rate, bottleneck
        if bottleneck:
            mid = bn_size * growth_rate  # 4k channels
            self.head = Sequential(BatchNorm2d(in_channels, dtype=dtype), ReLU(),
                                   _conv(in_channels, mid, 1, rng, dtype))
            self.tail = Sequential(BatchNorm2d(mid, dtype=dtype), ReLU(), _conv(mid, growth_rate, 3, rng, dtype))
        else:
            self.head = Sequential(BatchNorm2d(in_channels, dtype=dtype), ReLU())
            self.tail = Sequential(_conv(in_channels, growth_rate, 3, rng, dtype))

    def forward(self, x):
        _check_input(f"DenseLayer({self.in_channels}, {self.growth_rate})", x, self.in_channels)
        return self.tail(self.head(x))

    def backward(self, dy):
        return self.head.backward(self.tail.backward(dy))  # tail, then head, in reverse

    def head_without_cache(self, x):
        """The head's output with nothing cached (the shared layout's forward)."""
        _check_input(f"DenseLayer({self.in_channels}, {self.growth_rate})", x, self.in_channels)
        with no_grad():
            return self.head(x)

    def head_recompute(self, x):
        """Run the head again, caching this time, leaving BN's running statistics as they were."""
        bn = self.head.layers[0]
        saved = bn.running_mean.copy(), bn.running_var.copy()  # forward already updated them once
        h = self.head(x)
        bn.running_mean[...], bn.running_var[...] = saved
        return h

    def extra_repr(self):
        return f"{self.in_channels}, growth_rate={self.growth_rate}, bottleneck={self.bottleneck}"


class DenseBlock(Module):
    """L dense layers: (N, C_0, H, W) → (N, C_0 + L·k, H, W), the input and every layer's k maps.

    ``memory="naive"``: each layer's input is a fresh concatenation (F.concat) of all maps so far.
    ``memory="shared"``: one (N, C_0 + L·k, H, W) buffer per forward; layer l reads the prefix view
    buf[:, :C_l] and writes its k maps into buf[:, C_l:C_l + k]; its head is recomputed in backward.
    Both give the same outputs and gradients. See chapters/11-densenet.md#dense-backward.
    """

    def __init__(self, in_channels, num_layers, growth_rate, *, bottleneck=True, memory="naive", rng=None,
                 dtype=np.float32):
        super().__init__()
        if memory not in MEMORY_MODES:
            raise ValueError(f"DenseBlock: memory must be 'naive' or 'shared', got {memory!r}")
        if num_layers < 1:
            raise ValueError(f"DenseBlock: num_layers must be at least 1, got {num_layers}")
        rng = get_rng(rng)
        self.in_channels, self.num_layers, self.growth_rate = in_channels, num_layers, growth_rate
        self.bottleneck, self.memory = bottleneck, memory
        self.out_channels = in_channels + num_layers * growth_rate
        self.layers = [DenseLayer(in_channels + i * growth_rate, growth_rate, bottleneck=bottleneck, rng=rng,
                                  dtype=dtype) for i in range(num_layers)]

    def forward(self, x):
        _check_input(f"DenseBlock({self.in_channels}, L={self.num_layers}, k={self.growth_rate})", x,
                     self.in_channels)
        return self._forward_naive(x) if self.memory == "naive" else self._forward_shared(x)

    def backward(self, dy):
        return self._backward_naive(dy) if self.memory == "naive" else self._backward_shared(dy)

    # start-naive
    def _forward_naive(self, x):
        feats, concat_caches = [x], []  # x_0, then each layer's k new maps
        for layer in self.layers:
            inp, c = F.concat(feats, axis=1)  # [x_0, ..., x_{l-1}]: a NEW (N, C_l, H, W) array
            feats.append(layer(inp))  # x_l = H_l(inp), (N, k, H, W)
            concat_caches.append(c)
        y, c_out = F.concat(feats, axis=1)  # the block's output [x_0, ..., x_L]
        self.push((concat_caches, c_out))
        return y

    def _backward_naive(self, dy):
        concat_caches, c_out = self.pop()
        dfeats = list(F.concat_backward(dy, c_out))  # the output is every map's first consumer
        for i in reversed(range(self.num_layers)):  # layer i makes x_{i+1}
            # every consumer of x_{i+1} (later layers, the output) is done: dfeats[i + 1] is complete
            dinp = self.layers[i].backward(dfeats[i + 1])  # d[x_0, ..., x_i] through the layer
            for j, dpart in enumerate(F.concat_backward(dinp, concat_caches[i])):
                dfeats[j] = dfeats[j] + dpart  # the sum over consumers: this layer read x_j
        return dfeats[0]  # dx_0
    # end-naive

    # start-shared
    def _forward_shared(self, x):
        N, C0, H, W = x.shape
        xp = get_array_module(x)
        buf = xp.empty((N, self.out_channels, H, W), dtype=x.dtype)  # the block's only feature storage
        buf[:, :C0] = x
        for layer in self.layers:
            c = layer.in_channels  # C_l = C_0 + l·k
            h = layer.head_without_cache(buf[:, :c])  # a prefix VIEW, nothing cached (recomputed later)
            buf[:, c:c + self.growth_rate] = layer.tail(h)  # x_l written in place: k channels
        self.push(buf)  # linear in L: the maps themselves, which are the block's output anyway
        return buf

    def _backward_shared(self, dy):
        buf = self.pop()
        check_grad("DenseBlock.backward", "dy", dy, buf.shape, buf.dtype)
        dbuf = dy.copy()  # one gradient buffer: channel block j accumulates dx_j from every consumer
        for layer in reversed(self.layers):
            c = layer.in_channels
            dh = layer.tail.backward(dbuf[:, c:c + self.growth_rate])  # dx_l is complete: all readers done
            layer.head_recompute(buf[:, :c])  # BN-ReLU-1×1 again, cached this time
            dbuf[:, :c] += layer.head.backward(dh)  # the sum over consumers, in place on the prefix
        return dbuf[:, :self.in_channels]  # dx_0
    # end-shared

    def extra_repr(self):
        return (f"{self.in_channels} → {self.out_channels}, L={self.num_layers}, k={self.growth_rate}, "
                f"bottleneck={self.bottleneck}, memory={self.memory!r}")


class Transition(Sequential):
    """BN-ReLU-1×1 conv to ⌊θ·C⌋ channels-2×2 average pool: (N, C, H, W) → (N, ⌊θC⌋, H/2, W/2).

    θ < 1 is the compression of DenseNet-C. See chapters/11-densenet.md#eq-transition.
    """

    def __init__(self, in_channels, compression=0.5, *, rng=None, dtype=np.float32):
        if not 0 < compression <= 1:
            raise ValueError(f"Transition: compression must be in (0, 1], got {compression}")
        rng = get_rng(rng)
        out = int(np.floor(compression * in_channels))
        super().__init__(BatchNorm2d(in_channels, dtype=dtype), ReLU(), _conv(in_channels, out, 1, rng, dtype),
                         AvgPool2d(2))
        self.in_channels, self.out_channels, self.compression = in_channels, out, compression

    def forward(self, x):
        _check_input(f"Transition({self.in_channels})", x, self.in_channels)
        return super().forward(x)

    def extra_repr(self):
        return f"{self.in_channels} → {self.out_channels}, compression={self.compression}"


class DenseNet(Module):
    """DenseNet(-BC) for small images: 3×3 stem conv (2k channels), dense blocks joined by transitions,
    BN-ReLU, global average pooling, linear. Input (N, in_channels, H, W) → logits (N, num_classes).

    ``block_config``: layers per block; ``stem_pool``: a 2×2 average pool after the stem (28×28 images
    then enter the first block at 14×14, which keeps a CPU epoch short). See
    chapters/11-densenet.md#densenet-bc.
    """

    def __init__(self, block_config=(6, 6, 6), growth_rate=12, num_classes=10, *, in_channels=1, compression=0.5,
                 bottleneck=True, stem_channels=None, stem_pool=False, memory="naive", rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.block_config, self.growth_rate, self.compression = tuple(block_config), growth_rate, compression
        self.bottleneck, self.memory, self.in_channels, self.stem_pool = bottleneck, memory, in_channels, stem_pool
        c = stem_channels or 2 * growth_rate
        self.stem = Sequential(_conv(in_channels, c, 3, rng, dtype), *([AvgPool2d(2)] if stem_pool else []))
        self.blocks, self.transitions = [], []
        for i, n in enumerate(self.block_config):
            block = DenseBlock(c, n, growth_rate, bottleneck=bottleneck, memory=memory, rng=rng, dtype=dtype)
            self.blocks.append(block)
            c = block.out_channels
            if i < len(self.block_config) - 1:
                self.transitions.append(Transition(c, compression, rng=rng, dtype=dtype))
                c = self.transitions[-1].out_channels
        self.head = Sequential(BatchNorm2d(c, dtype=dtype), ReLU(), GlobalAvgPool2d())
        self.fc = Linear(c, num_classes, rng=rng, dtype=dtype)
        self.num_features = c

    def forward(self, x):
        _check_input("DenseNet", x, self.in_channels)
        h = self.stem(x)
        for i, block in enumerate(self.blocks):
            h = block(h)  # (N, C + L·k, H, W)
            if i < len(self.transitions):
                h = self.transitions[i](h)  # compress, halve H and W
        return self.fc(self.head(h))

    # start-densenet-backward
    def backward(self, dy):
        dh = self.head.backward(self.fc.backward(dy))
        for i in reversed(range(len(self.blocks))):  # forward in reverse: transition i, then block i
            if i < len(self.transitions):
                dh = self.transitions[i].backward(dh)
            dh = self.blocks[i].backward(dh)
        return self.stem.backward(dh)
    # end-densenet-backward

    def set_memory(self, memory):
        """Switch every block between the 'naive' and 'shared' layouts (same parameters, same math)."""
        if memory not in MEMORY_MODES:
            raise ValueError(f"DenseNet: memory must be 'naive' or 'shared', got {memory!r}")
        self.memory = memory
        for block in self.blocks:
            block.memory = memory
        return self

    def config(self):
        return {"class": "DenseNet", "block_config": list(self.block_config), "growth_rate": self.growth_rate,
                "compression": self.compression, "bottleneck": self.bottleneck, "stem_pool": self.stem_pool}

    def extra_repr(self):
        return (f"block_config={self.block_config}, growth_rate={self.growth_rate}, "
                f"compression={self.compression}, bottleneck={self.bottleneck}, memory={self.memory!r}")


def _arrays(obj, seen, out):
    """Every ndarray reachable from a cache (tuples, lists, dicts, NamedTuples), by its owner's memory."""
    if isinstance(obj, np.ndarray):
        base = obj
        while isinstance(base.base, np.ndarray):
            base = base.base  # a view: count the array that owns the memory, once
        if id(base) not in seen:
            seen.add(id(base))
            out.append(base)
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            _arrays(o, seen, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _arrays(o, seen, out)


def cache_bytes(module, exclude=()):
    """Bytes of the arrays held in ``module``'s cache stacks (and its children's) after a forward:
    what the backward pass needs kept alive. Views are counted once, by the memory they share.
    ``exclude``: arrays (e.g. the input batch) left out of the count. See chapters/11-densenet.md#dense-memory.
    """
    seen = {id(a) for a in exclude} | {id(p.data) for p in module.parameters()}  # weights are not caches
    out = []
    for m in module.modules():
        _arrays(list(m._caches), seen, out)
    return sum(int(a.nbytes) for a in out)
