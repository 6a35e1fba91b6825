"""An encoder–decoder toy that needs attention: reverse a string of digits.

Legend: N batch, T string length, V vocabulary (10 digits), E embedding, H annotation width.
    encoder: h_j = tanh(W (emb(x_j) + pos_j) + b)          (N, T, H) one annotation per input digit
    decoder step t: c_t, α_t = attention(q_t, h, h)         q_t a learned query per output position
                    logits_t = c_t W_o + b_o                (N, V)
The answer y_t = x_{T−1−t} sits at one input position that depends on t, so a decoder that only
saw a fixed summary of the input (say the mean of h) cannot solve it; attention learns to point
at position T−1−t and its weights form an anti-diagonal. See chapters/19-attention.md#toy.
"""
from __future__ import annotations

import numpy as np

from .._random import get_rng
from ..backend import get_array_module
from ..nn import init
from ..nn.attention import AdditiveAttention, DotAttention, LearnedPositionalEncoding
from ..nn.layers import Embedding, Linear, Tanh
from ..nn.module import Module, Parameter

__all__ = ["AttentionSeq2Seq", "reversal_batch"]


def reversal_batch(n, length, *, vocab_size=10, rng=None):
    """n random digit strings x (n, length) and their reversals y (n, length)."""
    x = get_rng(rng).integers(0, vocab_size, size=(n, length))  # (n, T)
    return x, x[:, ::-1].copy()


# start-seq2seq
class AttentionSeq2Seq(Module):
    """Embedding + position → tanh annotations; per output step a learned query attends over them."""

    def __init__(self, vocab_size, max_len, *, d_emb=32, d_hidden=64, d_attn=32, attention="additive",
                 rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        self.max_len = max_len
        self.embed = Embedding(vocab_size, d_emb, rng=rng, dtype=dtype)
        self.pos = LearnedPositionalEncoding(max_len, d_emb, rng=rng, dtype=dtype)
        self.pos.weight.data = init.normal((max_len, d_emb), 1.0, rng=rng, dtype=dtype)  # as strong as the tokens
        self.enc, self.enc_act = Linear(d_emb, d_hidden, rng=rng, dtype=dtype), Tanh()
        self.queries = Parameter(init.normal((max_len, d_hidden), 1.0, rng=rng, dtype=dtype))  # (T, H)
        if attention == "additive":
            self.attn = AdditiveAttention(d_hidden, d_hidden, d_attn, rng=rng, dtype=dtype)
        elif attention in ("dot", "general"):
            self.attn = DotAttention(d_hidden, d_hidden, general=attention == "general", rng=rng, dtype=dtype)
        else:
            raise ValueError(f"AttentionSeq2Seq: attention must be 'additive', 'dot' or 'general', got {attention!r}")
        self.out = Linear(d_hidden, vocab_size, rng=rng, dtype=dtype)
        self.last_weights = None  # (N, T_out, T_in) attention maps of the latest forward

    def forward(self, ids):
        xp = get_array_module(self.queries.data)
        N, T = ids.shape
        h = self.enc_act(self.enc(self.pos(self.embed(ids))))  # (N, T, H) annotations
        contexts, weights = [], []
        for t in range(T):  # one decoder step per output position
            q = xp.broadcast_to(self.queries.data[t], (N, h.shape[2])).copy()  # (N, H)
            c, a = self.attn(q, h, h)  # (N, H), (N, T)
            contexts.append(c)
            weights.append(a)
        self.last_weights = xp.stack(weights, axis=1)  # (N, T, T)
        return self.out(xp.stack(contexts, axis=1))  # (N, T, V)

    def backward(self, dlogits):
        dc = self.out.backward(dlogits)  # (N, T, H)
        T = dc.shape[1]
        dh = None
        for t in reversed(range(T)):  # the attention calls in reverse (their caches form a stack)
            dq, dkeys, dvalues = self.attn.backward((dc[:, t], None))
            self.queries.grad[t] += dq.sum(axis=0)  # the query row was shared by the batch
            dh = dkeys + dvalues if dh is None else dh + dkeys + dvalues  # h served as keys and values
        self.embed.backward(self.pos.backward(self.enc.backward(self.enc_act.backward(dh))))
        return None  # integer ids get no gradient
# end-seq2seq
