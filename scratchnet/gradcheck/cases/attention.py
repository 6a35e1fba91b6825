"""Gradient-check cases of attention: scaled dot-product (masks, causal, dropout), additive, dot,
MultiHeadAttention (self and cross), transformer layers (post-LN and pre-LN) and a tiny GPT."""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ..checker import check_function, check_module
from ..registry import register_case


def _rng():
    return np.random.default_rng(1234)


def _qkv(r, lead=(2, 3), Tq=4, Tk=5, dk=6, dv=3):
    return (r.standard_normal(lead + (Tq, dk)), r.standard_normal(lead + (Tk, dk)), r.standard_normal(lead + (Tk, dv)))


@register_case("attention.sdpa")
def sdpa_case():
    r = _rng()
    q, k, v = _qkv(r)
    keep = r.random((2, 1, 4, 5)) > 0.3
    keep[0, 0, 1] = False  # one fully-masked row: zero output, zero gradient
    dmask = (r.random((2, 3, 4, 5)) > 0.25) / 0.75
    f, b = F.scaled_dot_product_attention, F.scaled_dot_product_attention_backward
    q2, k2, v2 = _qkv(r, Tq=5)
    n = ["q", "k", "v"]
    return [check_function(f, b, [q, k, v], names=n, title="sdpa[cross Tq≠Tk]"),
            check_function(f, b, [q, k, v], names=n, mask=keep, title="sdpa[mask]"),
            check_function(f, b, [q2, k2, v2], names=n, causal=True, title="sdpa[causal]"),
            check_function(f, b, [q, k, v], names=n, causal=True, mask=keep, dropout_mask=dmask,
                           title="sdpa[causal+mask+dropout]")]


@register_case("attention.additive")
def additive_case():
    r = _rng()
    args = [r.standard_normal((3, 4)), r.standard_normal((3, 5, 6)), r.standard_normal((3, 5, 2)),
            r.standard_normal((4, 7)), r.standard_normal((6, 7)), r.standard_normal(7)]
    mask = r.random((3, 5)) > 0.3
    mask[:, 0] = True
    n = ["query", "keys", "values", "wq", "wk", "v"]
    return [check_function(F.additive_attention, F.additive_attention_backward, args, names=n, title="additive"),
            check_function(F.additive_attention, F.additive_attention_backward, args, names=n, mask=mask,
                           title="additive[mask]")]


@register_case("attention.dot")
def dot_case():
    r = _rng()
    keys, values = r.standard_normal((3, 5, 6)), r.standard_normal((3, 5, 2))
    mask = r.random((3, 5)) > 0.3
    mask[:, 0] = True
    return [check_function(F.dot_attention, F.dot_attention_backward, [r.standard_normal((3, 6)), keys, values],
                           title="dot"),
            check_function(F.dot_attention, F.dot_attention_backward,
                           [r.standard_normal((3, 4)), keys, values, r.standard_normal((4, 6))], mask=mask,
                           title="dot[general, mask]")]


@register_case("attention.mha")
def mha_case():
    from ...nn import MultiHeadAttention
    r = _rng()
    x = r.standard_normal((2, 4, 8))
    mem = r.standard_normal((2, 6, 5))
    pad = np.zeros((2, 6), bool)
    pad[1, 4:] = True
    self_attn = MultiHeadAttention(8, 2, rng=0).astype(np.float64)
    cross = MultiHeadAttention(8, 4, kdim=5, vdim=5, dropout=0.2, rng=1).astype(np.float64)
    return [check_module(self_attn, [x], forward_kwargs=dict(causal=True)),
            check_module(cross, [x, mem], forward_kwargs=dict(key_padding_mask=pad))]


@register_case("attention.transformer")
def transformer_case():
    from ...nn import TransformerDecoderLayer, TransformerEncoderLayer
    r = _rng()
    x, mem = r.standard_normal((2, 4, 8)), r.standard_normal((2, 5, 8))
    reps = []
    for norm_first in (False, True):
        enc = TransformerEncoderLayer(8, 2, 12, 0.1, "gelu", norm_first=norm_first, rng=0).astype(np.float64)
        dec = TransformerDecoderLayer(8, 2, 12, 0.1, "relu", norm_first=norm_first, rng=0).astype(np.float64)
        reps += [check_module(enc, [x], forward_kwargs=dict(causal=True)),
                 check_module(dec, [x + 0.05, mem], forward_kwargs=dict(causal=True))]
    return reps


@register_case("attention.gpt")
def gpt_case():
    from ...models.gpt import GPT
    r = _rng()
    model = GPT(7, 6, n_layer=2, n_head=2, d_model=8, dropout=0.1, tie_weights=True, rng=0).astype(np.float64)
    return check_module(model, [r.integers(0, 7, (2, 5))])
