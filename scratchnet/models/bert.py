"""BERT (Devlin et al. 2019) at character level: a bidirectional encoder pre-trained by masked-LM.

Legend: N batch, T positions (≤ max_len), D d_model, V vocabulary, S segments, K classes.
    ids (N, T), segments (N, T) → tok_emb + seg_emb + pos_emb → LN → drop → n_layer × pre-LN
    bidirectional TransformerEncoderLayer (key padding mask) → ln_f → h (N, T, D);
    MLM head: logits = LN(GELU(h W_t + b_t)) Eᵀ + b (N, T, V), E the token embedding (tied);
    classifier: logits = W_c drop(tanh(h[:, 0] W_p + b_p)) + b_c (N, K) on the [CLS] position.
See chapters/22-bert.md.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..backend import get_array_module
from ..nn import init
from ..nn.attention import LearnedPositionalEncoding, sinusoidal_table
from ..nn.layers import GELU, Dropout, Embedding, LayerNorm, Linear, Tanh
from ..nn.module import Module, Parameter
from ..nn.transformer import TransformerEncoderLayer

__all__ = ["BertEncoder", "BertForMaskedLM", "BertForSequenceClassification"]


# start-encoder
class BertEncoder(Module):
    """Token + segment + position embeddings, an embedding LayerNorm, pre-LN bidirectional blocks, final LN."""

    def __init__(self, vocab_size, max_len, *, n_layer=4, n_head=4, d_model=128, dim_feedforward=None,
                 n_segments=2, dropout=0.0, pos_init="normal", rng=None, dtype=np.float32):
        super().__init__()
        rng = get_rng(rng)
        if pos_init not in ("normal", "sinusoid"):
            raise ValueError(f"BertEncoder: pos_init must be 'normal' or 'sinusoid', got {pos_init!r}")
        self.vocab_size, self.max_len, self.d_model = vocab_size, max_len, d_model
        self.cfg = dict(vocab_size=vocab_size, max_len=max_len, n_layer=n_layer, n_head=n_head, d_model=d_model,
                        dim_feedforward=dim_feedforward or 4 * d_model, n_segments=n_segments, dropout=dropout,
                        pos_init=pos_init)
        self.tok_emb = Embedding(vocab_size, d_model, rng=rng, dtype=dtype)
        self.tok_emb.weight.data = init.normal((vocab_size, d_model), 0.02, rng=rng, dtype=dtype)  # BERT's init
        self.seg_emb = Embedding(n_segments, d_model, rng=rng, dtype=dtype)
        self.seg_emb.weight.data = init.normal((n_segments, d_model), 0.02, rng=rng, dtype=dtype)
        self.pos_emb = LearnedPositionalEncoding(max_len, d_model, rng=rng, dtype=dtype)
        if pos_init == "sinusoid":  # still learned, but starts from chapter 20's table at the embeddings' scale
            self.pos_emb.weight.data = 0.05 * sinusoidal_table(max_len, d_model, dtype)  # (max_len, D)
        self.emb_norm = LayerNorm(d_model, dtype=dtype)
        self.drop = Dropout(dropout, rng=rng)
        self.blocks = [TransformerEncoderLayer(d_model, n_head, dim_feedforward or 4 * d_model, dropout, "gelu",
                                               norm_first=True, rng=rng, dtype=dtype) for _ in range(n_layer)]
        self.ln_f = LayerNorm(d_model, dtype=dtype)

    def forward(self, ids, segments=None, key_padding_mask=None):
        """ids (N, T) ints; segments (N, T) ints or None (all 0); key_padding_mask (N, T) True = pad → h (N, T, D)."""
        if ids.ndim != 2 or ids.shape[1] > self.max_len:
            raise ValueError(f"BertEncoder: expected ids (N, T ≤ {self.max_len}), got shape {tuple(ids.shape)}")
        if segments is None:
            segments = get_array_module(ids).zeros_like(ids)  # (N, T) one segment
        if segments.shape != ids.shape:
            raise ValueError(f"BertEncoder: segments shape {tuple(segments.shape)} != ids shape {tuple(ids.shape)}")
        e = self.pos_emb(self.tok_emb(ids) + self.seg_emb(segments))  # (N, T, D) the three embeddings summed
        x = self.drop(self.emb_norm(e))  # (N, T, D)
        for block in self.blocks:
            x = block(x, src_key_padding_mask=key_padding_mask, causal=False)  # (N, T, D) every position sees all
        return self.ln_f(x)  # (N, T, D)

    def backward(self, dh):
        """Reverse order of forward; the ids get no gradient, the three tables get scatter-adds."""
        dx = self.ln_f.backward(dh)  # (N, T, D)
        for block in reversed(self.blocks):
            dx = block.backward(dx)
        de = self.emb_norm.backward(self.drop.backward(dx))  # (N, T, D) gradient at the embedding sum
        de = self.pos_emb.backward(de)  # adds Σ_n de into the position table; passes de on
        self.tok_emb.backward(de)  # a sum sends the same de to each of its terms
        self.seg_emb.backward(de)
        return None
# end-encoder

    def config(self):
        return {"class": "BertEncoder", **self.cfg}


# start-mlm
class BertForMaskedLM(Module):
    """The encoder and BERT's MLM head: dense → GELU → LayerNorm → tied decoder Eᵀ plus a bias per token."""

    def __init__(self, vocab_size, max_len, *, rng=None, dtype=np.float32, **encoder_kw):
        super().__init__()
        rng = get_rng(rng)
        self.encoder = BertEncoder(vocab_size, max_len, rng=rng, dtype=dtype, **encoder_kw)
        d = self.encoder.d_model
        self.transform = Linear(d, d, rng=rng, dtype=dtype)
        self.act = GELU()
        self.transform_norm = LayerNorm(d, dtype=dtype)
        self.decoder_bias = Parameter(np.zeros(vocab_size, dtype=dtype))  # (V,) the only untied decoder part

    def forward(self, ids, segments=None, key_padding_mask=None):
        """→ logits (N, T, V) at every position; the loss decides which positions count."""
        h = self.encoder(ids, segments, key_padding_mask)  # (N, T, D)
        g = self.transform_norm(self.act(self.transform(h)))  # (N, T, D)
        logits, cache = F.linear(g, self.encoder.tok_emb.weight.data.T, self.decoder_bias.data)  # (N, T, V)
        self.push(cache)
        return logits

    def backward(self, dlogits):
        dg, dEt, db = F.linear_backward(dlogits, self.pop())  # dEt (D, V)
        self.encoder.tok_emb.weight.grad += dEt.T  # the head's share of the tied E
        self.decoder_bias.grad += db
        dh = self.transform.backward(self.act.backward(self.transform_norm.backward(dg)))  # (N, T, D)
        return self.encoder.backward(dh)  # the lookup's share of E is added in there
# end-mlm

    def config(self):
        return {"class": "BertForMaskedLM", **self.encoder.cfg}


# start-classifier
class BertForSequenceClassification(Module):
    """The encoder, BERT's pooler tanh(W_p h_[CLS] + b_p), dropout and a linear classifier over K classes."""

    def __init__(self, vocab_size, max_len, num_classes, *, rng=None, dtype=np.float32, **encoder_kw):
        super().__init__()
        rng = get_rng(rng)
        self.encoder = BertEncoder(vocab_size, max_len, rng=rng, dtype=dtype, **encoder_kw)
        d = self.encoder.d_model
        self.pooler, self.pool_act = Linear(d, d, rng=rng, dtype=dtype), Tanh()
        self.drop = Dropout(encoder_kw.get("dropout", 0.0), rng=rng)
        self.classifier = Linear(d, num_classes, rng=rng, dtype=dtype)
        self.num_classes = num_classes

    def forward(self, ids, segments=None, key_padding_mask=None):
        """→ logits (N, K) from the first ([CLS]) position's final state."""
        h = self.encoder(ids, segments, key_padding_mask)  # (N, T, D)
        self.push(h.shape)
        pooled = self.pool_act(self.pooler(h[:, 0]))  # (N, D)
        return self.classifier(self.drop(pooled))  # (N, K)

    def backward(self, dlogits):
        shape = self.pop()
        dpooled = self.drop.backward(self.classifier.backward(dlogits))  # (N, D)
        dh = get_array_module(dpooled).zeros(shape, dtype=dpooled.dtype)  # (N, T, D) only [CLS] feeds the head ...
        dh[:, 0] = self.pooler.backward(self.pool_act.backward(dpooled))  # ... but attention spreads it to all
        return self.encoder.backward(dh)
# end-classifier

    def config(self):
        return {"class": "BertForSequenceClassification", "num_classes": self.num_classes, **self.encoder.cfg}
