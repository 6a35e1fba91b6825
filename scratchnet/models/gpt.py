"""A decoder-only character-level GPT (Radford et al. 2018/2019; nanoGPT's layout) with a k/v cache.

Legend: N batch, T positions (≤ block_size), D d_model, V vocabulary.
    ids (N, T) → tok_emb + pos_emb → drop → n_layer × pre-LN causal TransformerEncoderLayer → ln_f
    → logits = h Wᵀ (W the token embedding when tie_weights) (N, T, V).
See chapters/21-gpt.md.
"""
from __future__ import annotations

import os
import pathlib

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..backend import asnumpy, get_array_module
from ..nn import init
from ..nn.attention import LearnedPositionalEncoding
from ..nn.layers import Dropout, Embedding, LayerNorm, Linear
from ..nn.module import Module, no_grad
from ..nn.transformer import TransformerEncoderLayer

__all__ = ["GPT", "CharTokenizer", "get_batch", "load_text"]


# start-gpt
class GPT(Module):
    """Token + learned position embeddings, pre-LN causal blocks, final LayerNorm, (tied) output head.

    ``norm_first=False`` builds post-LN blocks instead (chapter 20 compares the two).
    """

    def __init__(self, vocab_size, block_size, *, n_layer=4, n_head=4, d_model=128, dim_feedforward=None,
                 dropout=0.0, tie_weights=True, norm_first=True, rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.vocab_size, self.block_size, self.tie_weights = vocab_size, block_size, tie_weights
        self.cfg = dict(vocab_size=vocab_size, block_size=block_size, n_layer=n_layer, n_head=n_head,
                        d_model=d_model, dim_feedforward=dim_feedforward or 4 * d_model, dropout=dropout,
                        tie_weights=tie_weights, norm_first=norm_first)
        self.tok_emb = Embedding(vocab_size, d_model, rng=rng, dtype=dtype)
        self.tok_emb.weight.data = init.normal((vocab_size, d_model), 0.02, rng=rng, dtype=dtype)  # GPT-2 init
        self.pos_emb = LearnedPositionalEncoding(block_size, d_model, rng=rng, dtype=dtype)
        self.drop = Dropout(dropout, rng=rng)
        self.blocks = [TransformerEncoderLayer(d_model, n_head, dim_feedforward or 4 * d_model, dropout, "gelu",
                                               norm_first=norm_first, rng=rng, dtype=dtype) for _ in range(n_layer)]
        self.ln_f = LayerNorm(d_model, dtype=dtype)
        self.head = None if tie_weights else Linear(d_model, vocab_size, bias=False, rng=rng, dtype=dtype)

    def forward(self, ids, *, use_cache=False):
        """ids (N, T) integers → logits (N, T, V). ``use_cache``: ids continue the cached positions."""
        N, T = ids.shape
        offset = self._cached_len() if use_cache else 0
        if offset + T > self.block_size:
            raise ValueError(f"GPT: {offset + T} positions exceed block_size={self.block_size}")
        x = self.drop(self.pos_emb(self.tok_emb(ids), offset=offset))  # (N, T, D)
        for block in self.blocks:
            x = block(x, causal=True, use_cache=use_cache)  # (N, T, D)
        h = self.ln_f(x)  # (N, T, D)
        if self.head is not None:
            return self.head(h)  # (N, T, V)
        logits, cache = F.linear(h, self.tok_emb.weight.data.T)  # (N, T, V) tied: h Wᵀ
        self.push(cache)
        return logits

    def backward(self, dlogits):
        """Walk the network in reverse; the tied W gets gradient from the head AND the lookup."""
        if self.head is not None:
            dh = self.head.backward(dlogits)
        else:
            dh, dwt, _ = F.linear_backward(dlogits, self.pop())  # dwt (D, V)
            self.tok_emb.weight.grad += dwt.T  # first use of the shared Parameter
        dx = self.ln_f.backward(dh)  # (N, T, D)
        for block in reversed(self.blocks):
            dx = block.backward(dx)
        self.tok_emb.backward(self.pos_emb.backward(self.drop.backward(dx)))  # second use: adds into .grad
        return None  # token ids get no gradient
# end-gpt

    # -- generation with and without the key/value cache ----------------------------------------
    def _cached_len(self):
        kv = self.blocks[0].self_attn.kv_cache if self.blocks else None
        return 0 if kv is None else kv[0].shape[2]

    def reset_cache(self):
        for block in self.blocks:
            block.self_attn.reset_cache()

    # start-generate
    def generate(self, ids, max_new_tokens, *, temperature=1.0, top_k=None, rng=None, use_cache=True):
        """Append ``max_new_tokens`` sampled tokens to ids (N, T0); returns (N, T0 + max_new_tokens).

        With ``use_cache`` each step feeds only the newest token and attends over the cached keys
        and values of earlier positions (O(T) work per step instead of O(T²)); when the window
        would pass block_size the cache is rebuilt from the last block_size tokens, exactly as the
        uncached path crops its input.
        """
        rng = get_rng(rng)
        xp = get_array_module(ids)
        was_training = self.training
        self.eval()
        self.reset_cache()
        out = ids
        try:
            with no_grad():
                for _ in range(max_new_tokens):  # one new token per iteration
                    if not use_cache:
                        logits = self(out[:, -self.block_size:])[:, -1]  # (N, V)
                    elif self._cached_len() == 0 or self._cached_len() + 1 > self.block_size:
                        self.reset_cache()
                        logits = self(out[:, -self.block_size:], use_cache=True)[:, -1]  # refill the cache
                    else:
                        logits = self(out[:, -1:], use_cache=True)[:, -1]  # only the newest token
                    nxt = sample_next(logits, temperature=temperature, top_k=top_k, rng=rng)  # (N,)
                    out = xp.concatenate([out, xp.asarray(nxt)[:, None].astype(out.dtype)], axis=1)
        finally:
            self.reset_cache()
            self.train(was_training)
        return out
    # end-generate

    def config(self):
        return {"class": "GPT", **self.cfg}


def sample_next(logits, *, temperature=1.0, top_k=None, rng=None):
    """Sample one id per row from softmax(logits / temperature), optionally among the top_k only."""
    logits = np.asarray(asnumpy(logits), dtype=np.float64) / max(temperature, 1e-8)  # (N, V) sampled on the CPU
    if top_k is not None:
        kth = np.sort(logits, axis=-1)[:, -top_k][:, None]  # (N, 1)
        logits = np.where(logits < kth, -np.inf, logits)
    p = np.exp(logits - logits.max(axis=-1, keepdims=True))  # (N, V)
    p /= p.sum(axis=-1, keepdims=True)
    u = get_rng(rng).random((p.shape[0], 1))  # (N, 1) one uniform per row
    return np.minimum((p.cumsum(axis=-1) < u).sum(axis=-1), p.shape[1] - 1)  # (N,) inverse CDF


class CharTokenizer:
    """Characters ↔ integer ids over the sorted set of characters of a text."""

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.stoi = {c: i for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, s):
        return np.array([self.stoi[c] for c in s], dtype=np.int64)

    def decode(self, ids):
        return "".join(self.chars[int(i)] for i in np.asarray(ids).reshape(-1))


def get_batch(data, block_size, batch_size, rng=None):
    """Random windows of a 1-D id array: x (B, T) and the next-character targets y (B, T)."""
    rng = get_rng(rng)
    starts = rng.integers(0, len(data) - block_size - 1, size=batch_size)  # (B,)
    idx = starts[:, None] + np.arange(block_size)[None, :]  # (B, T)
    return data[idx], data[idx + 1]


def load_text(name="tinyshakespeare"):
    """The text of Tiny Shakespeare via scratchnet.data when available, else from the data root."""
    try:
        from .. import data
        if hasattr(data, "load_tinyshakespeare"):
            return data.load_tinyshakespeare()
        if hasattr(data, "dataset_path"):
            return (pathlib.Path(data.dataset_path(name)) / "input.txt").read_text(encoding="utf-8")
    except ImportError:
        pass
    root = pathlib.Path(os.environ.get("SCRATCHNET_DATA", pathlib.Path.home() / ".cache" / "scratchnet"))
    path = root / name / "input.txt"
    if not path.exists():
        raise FileNotFoundError(f"load_text: {path} not found; "
                                f"set SCRATCHNET_DATA to a folder holding {name}/input.txt")
    return path.read_text(encoding="utf-8")
