"""Transformer encoder and decoder layers (batch-first, post-LN or pre-LN), with hand-written backward.

Legend: N batch, T target/sequence length, S source (memory) length, D d_model, F dim_feedforward.
Semantics follow PyTorch's ``nn.TransformerEncoderLayer`` / ``nn.TransformerDecoderLayer`` with
``batch_first=True``; masks are PyTorch's (True = masked). See chapters/20-transformer.md.
"""
from __future__ import annotations

import numpy as np

from .._random import get_rng
from .attention import MultiHeadAttention
from .layers import GELU, Dropout, LayerNorm, Linear, ReLU
from .module import Module

__all__ = ["FeedForward", "TransformerEncoderLayer", "TransformerDecoderLayer"]


def _activation(name):
    if name == "relu":
        return ReLU()
    if name == "gelu":
        return GELU()
    raise ValueError(f"transformer layer: activation must be 'relu' or 'gelu', got {name!r}")


class FeedForward(Module):
    """Position-wise MLP: linear2(dropout(act(linear1(x)))), D → F → D."""

    def __init__(self, d_model, dim_feedforward, dropout=0.1, activation="relu", *, bias=True, rng=None,
                 dtype=np.float32):
        super().__init__()
        self.linear1 = Linear(d_model, dim_feedforward, bias=bias, rng=rng, dtype=dtype)
        self.act = _activation(activation)
        self.dropout = Dropout(dropout, rng=rng)
        self.linear2 = Linear(dim_feedforward, d_model, bias=bias, rng=rng, dtype=dtype)

    def forward(self, x):
        return self.linear2(self.dropout(self.act(self.linear1(x))))  # (N, T, D)

    def backward(self, dy):
        return self.linear1.backward(self.act.backward(self.dropout.backward(self.linear2.backward(dy))))


# start-encoder
class TransformerEncoderLayer(Module):
    """Self-attention and feed-forward sublayers, each with a residual and a LayerNorm.

    post-LN (norm_first=False):  x = LN1(x + Drop(SA(x)));  x = LN2(x + Drop(FF(x)))
    pre-LN  (norm_first=True):   x = x + Drop(SA(LN1(x)));  x = x + Drop(FF(LN2(x)))
    forward(src (N, T, D), *, src_mask (T, T) True = masked, src_key_padding_mask (N, T) True = pad,
    causal, use_cache) → (N, T, D).
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", *,
                 norm_first=False, layer_norm_eps=1e-5, bias=True, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout=dropout, bias=bias, rng=rng, dtype=dtype)
        self.ff = FeedForward(d_model, dim_feedforward, dropout, activation, bias=bias, rng=rng, dtype=dtype)
        self.norm1 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self.norm2 = LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype)
        self.dropout1, self.dropout2 = Dropout(dropout, rng=rng), Dropout(dropout, rng=rng)

    def _sa(self, x, opts):
        return self.dropout1(self.self_attn(x, **opts))  # (N, T, D)

    def forward(self, src, *, src_mask=None, src_key_padding_mask=None, causal=False, use_cache=False):
        opts = dict(attn_mask=src_mask, key_padding_mask=src_key_padding_mask, causal=causal, use_cache=use_cache)
        x = src
        if self.norm_first:
            x = x + self._sa(self.norm1(x), opts)  # (N, T, D)
            x = x + self.dropout2(self.ff(self.norm2(x)))  # (N, T, D)
        else:
            x = self.norm1(x + self._sa(x, opts))
            x = self.norm2(x + self.dropout2(self.ff(x)))
        return x

    def backward(self, dy):
        # the forward read bottom-up; a residual x + f(x) sends dy both through f and straight past it
        if self.norm_first:
            dx = dy + self.norm2.backward(self.ff.backward(self.dropout2.backward(dy)))  # through the FF residual
            return dx + self.norm1.backward(self.self_attn.backward(self.dropout1.backward(dx)))  # and the SA one
        dh = self.norm2.backward(dy)  # gradient at h = x1 + FF(x1)
        dx1 = dh + self.ff.backward(self.dropout2.backward(dh))
        dz = self.norm1.backward(dx1)  # gradient at z = x + SA(x)
        return dz + self.self_attn.backward(self.dropout1.backward(dz))
# end-encoder


# start-decoder
class TransformerDecoderLayer(Module):
    """Masked self-attention, cross-attention over the encoder memory, feed-forward (PyTorch order).

    forward(tgt (N, T, D), memory (N, S, D), *, tgt_mask, memory_mask, tgt_key_padding_mask,
    memory_key_padding_mask, causal (on the self-attention)) → (N, T, D);
    backward(dy) → (dtgt, dmemory).
    """

    def __init__(self, d_model, nhead, dim_feedforward=2048, dropout=0.1, activation="relu", *,
                 norm_first=False, layer_norm_eps=1e-5, bias=True, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.norm_first = norm_first
        self.self_attn = MultiHeadAttention(d_model, nhead, dropout=dropout, bias=bias, rng=rng, dtype=dtype)
        self.cross_attn = MultiHeadAttention(d_model, nhead, dropout=dropout, bias=bias, rng=rng, dtype=dtype)
        self.ff = FeedForward(d_model, dim_feedforward, dropout, activation, bias=bias, rng=rng, dtype=dtype)
        self.norm1, self.norm2, self.norm3 = (LayerNorm(d_model, eps=layer_norm_eps, dtype=dtype) for _ in range(3))
        self.dropout1, self.dropout2, self.dropout3 = (Dropout(dropout, rng=rng) for _ in range(3))

    def forward(self, tgt, memory, *, tgt_mask=None, memory_mask=None, tgt_key_padding_mask=None,
                memory_key_padding_mask=None, causal=False):
        sa = lambda x: self.dropout1(self.self_attn(x, attn_mask=tgt_mask, key_padding_mask=tgt_key_padding_mask,  # noqa: E731
                                                    causal=causal))
        ca = lambda x: self.dropout2(self.cross_attn(x, memory, attn_mask=memory_mask,  # noqa: E731
                                                     key_padding_mask=memory_key_padding_mask))
        ff = lambda x: self.dropout3(self.ff(x))  # noqa: E731
        x = tgt
        if self.norm_first:
            x = x + sa(self.norm1(x))  # (N, T, D)
            x = x + ca(self.norm2(x))
            x = x + ff(self.norm3(x))
        else:
            x = self.norm1(x + sa(x))
            x = self.norm2(x + ca(x))
            x = self.norm3(x + ff(x))
        return x

    def backward(self, dy):
        ca_back = lambda d: self.cross_attn.backward(self.dropout2.backward(d))  # noqa: E731  (dx, dmemory)
        if self.norm_first:
            dx = dy + self.norm3.backward(self.ff.backward(self.dropout3.backward(dy)))
            dxa, dmemory = ca_back(dx)
            dx = dx + self.norm2.backward(dxa)
            dx = dx + self.norm1.backward(self.self_attn.backward(self.dropout1.backward(dx)))
            return dx, dmemory
        dh = self.norm3.backward(dy)
        dx = dh + self.ff.backward(self.dropout3.backward(dh))
        dh = self.norm2.backward(dx)
        dxa, dmemory = ca_back(dh)
        dx = dh + dxa
        dh = self.norm1.backward(dx)
        dx = dh + self.self_attn.backward(self.dropout1.backward(dh))
        return dx, dmemory
# end-decoder
