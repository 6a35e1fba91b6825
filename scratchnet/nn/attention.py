"""Attention layers: MultiHeadAttention, additive/dot encoder–decoder attention, positional encodings.

Legend: N batch, Tq query positions, Tk key positions, E embed_dim, H heads, hd = E / H head width.
Mask conventions: the functional ``F.scaled_dot_product_attention`` takes ``mask`` with
**True = keep**; the module follows PyTorch's ``nn.MultiheadAttention``, whose ``key_padding_mask``
(N, Tk) and boolean ``attn_mask`` (Tq, Tk) or (N·H, Tq, Tk) use **True = masked (not allowed)**.
The module converts with ``keep = ~attn_mask & ~key_padding_mask``. See chapters/19-attention.md#masks.
"""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..backend import get_array_module
from . import init
from .layers import Linear
from .module import Module, Parameter, is_grad_enabled

__all__ = ["MultiHeadAttention", "AdditiveAttention", "DotAttention",
           "SinusoidalPositionalEncoding", "LearnedPositionalEncoding", "sinusoidal_table"]


def _own_rng(rng):
    """A private generator (so dropout draws do not depend on other layers' draws)."""
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(get_rng(rng).integers(2**63))


def _xavier_linear(d_in, d_out, bias, rng, dtype):
    """A Linear with Xavier-uniform weights and zero bias (nn.MultiheadAttention's init)."""
    lin = Linear(d_in, d_out, bias=bias, rng=rng, dtype=dtype)
    lin.weight.data = init.glorot_uniform((d_in, d_out), rng=rng, dtype=dtype)
    lin.weight.grad = np.zeros_like(lin.weight.data)
    if bias:
        lin.bias.data[...] = 0
    return lin


# start-mha
class MultiHeadAttention(Module):
    """H heads of scaled dot-product attention between separate q/k/v projections, then out_proj.

    forward(query (N, Tq, E), key (N, Tk, kdim) = query, value (N, Tk, vdim) = key, *,
    key_padding_mask (N, Tk) True = pad, attn_mask (Tq, Tk) | (N·H, Tq, Tk) True = masked,
    causal, need_weights, use_cache) → y (N, Tq, E) [, weights (N, Tq, Tk) averaged over heads].
    backward(dy) returns dquery for self-attention (key/value omitted), (dquery, dkey) when only
    value is omitted (cross-attention on a memory), else (dquery, dkey, dvalue).
    """

    def __init__(self, embed_dim, num_heads, *, dropout=0.0, bias=True, kdim=None, vdim=None, rng=None,
                 dtype=np.float32):
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"MultiHeadAttention: embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
        self.embed_dim, self.num_heads, self.dropout = embed_dim, num_heads, dropout
        self.kdim, self.vdim = kdim or embed_dim, vdim or embed_dim
        rng = get_rng(rng)
        self.q_proj = _xavier_linear(embed_dim, embed_dim, bias, rng, dtype)
        self.k_proj = _xavier_linear(self.kdim, embed_dim, bias, rng, dtype)
        self.v_proj = _xavier_linear(self.vdim, embed_dim, bias, rng, dtype)
        self.out_proj = Linear(embed_dim, embed_dim, bias=bias, rng=rng, dtype=dtype)
        if bias:
            self.out_proj.bias.data[...] = 0
        self.rng = _own_rng(rng)
        self.kv_cache = None  # (k, v) heads (N, H, T_past, hd) while generating with use_cache=True

    def _split(self, x):
        N, T, _ = x.shape
        return x.reshape(N, T, self.num_heads, -1).transpose(0, 2, 1, 3)  # (N, H, T, hd)

    def _keep(self, xp, N, Tq, Tk, key_padding_mask, attn_mask):
        """PyTorch's True = masked module masks → one True = keep mask (N, H|1, Tq|1, Tk) or None."""
        keep = None
        if key_padding_mask is not None:
            if key_padding_mask.dtype.kind != "b" or key_padding_mask.shape != (N, Tk):
                raise ValueError(f"MultiHeadAttention: expected a boolean key_padding_mask of shape (N, Tk) = "
                                 f"{(N, Tk)} (True = pad), got {key_padding_mask.dtype} "
                                 f"{tuple(key_padding_mask.shape)}")
            keep = ~key_padding_mask[:, None, None, :]  # (N, 1, 1, Tk)
        if attn_mask is not None:
            if attn_mask.dtype.kind != "b":
                raise TypeError("MultiHeadAttention: attn_mask must be boolean (True = not allowed); additive float "
                                f"masks are not supported, got dtype {attn_mask.dtype}")
            if attn_mask.shape == (Tq, Tk):
                am = ~attn_mask  # (Tq, Tk)
            elif attn_mask.shape == (N * self.num_heads, Tq, Tk):
                am = ~attn_mask.reshape(N, self.num_heads, Tq, Tk)  # (N, H, Tq, Tk)
            else:
                raise ValueError(f"MultiHeadAttention: expected attn_mask of shape (Tq, Tk) = {(Tq, Tk)} or "
                                 f"(N·H, Tq, Tk) = {(N * self.num_heads, Tq, Tk)}, got {tuple(attn_mask.shape)}")
            keep = am if keep is None else keep & am
        return keep

    def forward(self, query, key=None, value=None, *, key_padding_mask=None, attn_mask=None, causal=False,
                need_weights=False, use_cache=False):
        mode = 1 if key is None else (2 if value is None else 3)  # how many input gradients backward returns
        key = query if key is None else key
        value = key if value is None else value
        if query.ndim != 3 or query.shape[-1] != self.embed_dim or key.ndim != 3 or key.shape[-1] != self.kdim \
                or value.ndim != 3 or value.shape[-1] != self.vdim or key.shape[:2] != value.shape[:2] \
                or key.shape[0] != query.shape[0]:
            raise ValueError(f"MultiHeadAttention({self.embed_dim}, {self.num_heads}): expected query (N, Tq, "
                             f"{self.embed_dim}), key (N, Tk, {self.kdim}), value (N, Tk, {self.vdim}); got "
                             f"{tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
        xp = get_array_module(query, key, value)
        q = self._split(self.q_proj(query))  # (N, H, Tq, hd)
        k = self._split(self.k_proj(key))  # (N, H, Tk, hd)
        v = self._split(self.v_proj(value))  # (N, H, Tk, hd)
        if use_cache:  # generation: prepend the keys/values of earlier positions
            if is_grad_enabled():
                raise RuntimeError("MultiHeadAttention: use_cache=True is for generation; call it inside "
                                   "scratchnet.no_grad() (there is no backward through the k/v cache)")
            if self.kv_cache is not None:
                k = xp.concatenate([self.kv_cache[0], k], axis=2)  # (N, H, T_past + Tk, hd)
                v = xp.concatenate([self.kv_cache[1], v], axis=2)
            self.kv_cache = (k, v)
        N, H, Tq, Tk = q.shape[0], self.num_heads, q.shape[2], k.shape[2]
        keep = self._keep(xp, N, Tq, Tk, key_padding_mask, attn_mask)
        dmask = None
        if self.training and self.dropout > 0 and is_grad_enabled():
            dmask = F.dropout_mask((N, H, Tq, Tk), self.dropout, rng=self.rng, dtype=q.dtype, xp=xp)  # (N, H, Tq, Tk)
        o, sdpa_cache = F.scaled_dot_product_attention(q, k, v, mask=keep, causal=causal, dropout_mask=dmask)
        o = o.transpose(0, 2, 1, 3).reshape(N, Tq, self.embed_dim)  # (N, Tq, E) heads side by side
        y = self.out_proj(o)  # (N, Tq, E)
        self.push((sdpa_cache, mode))
        if need_weights:
            return y, sdpa_cache.p.mean(axis=1)  # (N, Tq, Tk) averaged over heads, as PyTorch
        return y

    def backward(self, dy):
        sdpa_cache, mode = self.pop()
        N, Tq, E = dy.shape
        do = self.out_proj.backward(dy)  # (N, Tq, E)
        do = self._split(do)  # (N, H, Tq, hd)
        dq, dk, dv = F.scaled_dot_product_attention_backward(do, sdpa_cache)
        merge = lambda a: a.transpose(0, 2, 1, 3).reshape(N, a.shape[2], E)  # noqa: E731  (N, T, E)
        dvalue = self.v_proj.backward(merge(dv))  # (N, Tk, vdim)
        dkey = self.k_proj.backward(merge(dk))  # (N, Tk, kdim)
        dquery = self.q_proj.backward(merge(dq))  # (N, Tq, E)
        if mode == 1:
            return dquery + dkey + dvalue
        if mode == 2:
            return dquery, dkey + dvalue
        return dquery, dkey, dvalue

    def last_attention_weights(self):
        """(N, H, Tq, Tk) attention weights of the most recent forward still waiting for its backward
        (before attention dropout), read from its cache; for plots."""
        if not self._caches:
            raise RuntimeError("MultiHeadAttention.last_attention_weights: no cached forward pass (call "
                               "forward outside no_grad() first)")
        return self._caches[-1][0].p

    def reset_cache(self):
        """Forget the cached keys/values of generation."""
        self.kv_cache = None

    def extra_repr(self):
        return f"{self.embed_dim}, num_heads={self.num_heads}, dropout={self.dropout}"
# end-mha


class AdditiveAttention(Module):
    """Bahdanau attention with parameters wq (Dq, A), wk (Dk, A), v (A,); returns (context, weights)."""

    def __init__(self, query_dim, key_dim, attn_dim, *, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.wq = Parameter(init.glorot_uniform((query_dim, attn_dim), rng=rng, dtype=dtype))
        self.wk = Parameter(init.glorot_uniform((key_dim, attn_dim), rng=rng, dtype=dtype))
        bound = 1 / math.sqrt(attn_dim)
        self.v = Parameter(init.uniform((attn_dim,), -bound, bound, rng=rng, dtype=dtype))

    def forward(self, query, keys, values, *, mask=None):
        out, cache = F.additive_attention(query, keys, values, self.wq.data, self.wk.data, self.v.data, mask=mask)
        self.push(cache)
        return out

    def backward(self, dout):
        dq, dk, dvals, dwq, dwk, dv = F.additive_attention_backward(dout, self.pop())
        self.wq.grad += dwq
        self.wk.grad += dwk
        self.v.grad += dv
        return dq, dk, dvals


class DotAttention(Module):
    """Luong attention: "dot" (no parameters) or "general" (w (Dq, Dk)); returns (context, weights)."""

    def __init__(self, query_dim, key_dim, *, general=True, rng=None, dtype=np.float32):
        super().__init__()
        self.w = Parameter(init.glorot_uniform((query_dim, key_dim), rng=rng, dtype=dtype)) if general else None

    def forward(self, query, keys, values, *, mask=None):
        out, cache = F.dot_attention(query, keys, values, None if self.w is None else self.w.data, mask=mask)
        self.push(cache)
        return out

    def backward(self, dout):
        grads = F.dot_attention_backward(dout, self.pop())
        if self.w is not None:
            self.w.grad += grads[3]
        return grads[:3]


def sinusoidal_table(max_len, d_model, dtype=np.float32):
    """PE[t, 2i] = sin(t / 10000^{2i/d}), PE[t, 2i+1] = cos(t / 10000^{2i/d}) (Vaswani et al. 2017)."""
    t = np.arange(max_len)[:, None]  # (T, 1)
    freq = np.exp(-math.log(10000.0) * np.arange(0, d_model, 2) / d_model)  # (ceil(d/2),)
    pe = np.zeros((max_len, d_model))  # (T, d)
    pe[:, 0::2] = np.sin(t * freq)
    pe[:, 1::2] = np.cos(t * freq[: d_model // 2])
    return pe.astype(dtype)


def _check_len(name, x, offset, max_len, d_model):
    if x.ndim != 3 or x.shape[-1] != d_model:
        raise ValueError(f"{name}: expected input (N, T, {d_model}), got shape {tuple(x.shape)}")
    if offset + x.shape[1] > max_len:
        raise ValueError(f"{name}: sequence of length {x.shape[1]} at offset {offset} is longer than the "
                         f"positional table (max_len={max_len})")


class SinusoidalPositionalEncoding(Module):
    """y = x + PE[offset : offset + T] with the fixed sinusoidal table (no parameters)."""

    def __init__(self, max_len, d_model, *, dtype=np.float32):
        super().__init__()
        self.max_len, self.d_model = max_len, d_model
        self.register_buffer("pe", sinusoidal_table(max_len, d_model, dtype))

    def forward(self, x, *, offset=0):
        _check_len("SinusoidalPositionalEncoding", x, offset, self.max_len, self.d_model)
        return x + self.pe[offset: offset + x.shape[1]].astype(x.dtype)  # (N, T, D)

    def backward(self, dy):
        return dy


class LearnedPositionalEncoding(Module):
    """y = x + W[offset : offset + T] with a trained table W (max_len, d_model), N(0, 0.02²) init."""

    def __init__(self, max_len, d_model, *, rng=None, dtype=np.float32):
        super().__init__()
        self.max_len, self.d_model = max_len, d_model
        self.weight = Parameter(init.normal((max_len, d_model), 0.02, rng=rng, dtype=dtype))

    def forward(self, x, *, offset=0):
        _check_len("LearnedPositionalEncoding", x, offset, self.max_len, self.d_model)
        self.push((offset, x.shape[1]))
        return x + self.weight.data[offset: offset + x.shape[1]]  # (N, T, D)

    def backward(self, dy):
        offset, T = self.pop()
        self.weight.grad[offset: offset + T] += dy.sum(axis=0)  # (T, D) summed over the batch
        return dy
