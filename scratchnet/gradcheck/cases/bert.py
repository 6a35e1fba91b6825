"""Gradient-check cases of chapter 22 (BERT): the masked-LM loss, the encoder with its three embeddings,
the MLM model (tied decoder) and the [CLS] classifier, each with padding and segments."""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ..checker import check_function, check_module
from ..registry import register_case


def _rng():
    return np.random.default_rng(2222)


def _inputs(r, N=2, T=5, V=9):
    ids = r.integers(0, V, (N, T))
    segments = (np.arange(T)[None, :] >= 3).astype(np.int64).repeat(N, 0)  # (N, T) two segments
    pad = np.zeros((N, T), bool)
    pad[1, 4:] = True  # the second sequence is one shorter
    return ids, segments, pad


@register_case("bert.masked_lm_loss")
def masked_lm_loss_case():
    r = _rng()
    reps = []
    for shape in ((2, 5, 7), (3, 4, 11)):
        logits, target = r.standard_normal(shape), r.integers(0, shape[-1], shape[:2])
        selected = r.random(shape[:2]) < 0.4
        selected[0, 0] = True  # at least one position counts
        reps.append(check_function(F.masked_lm_loss, F.masked_lm_loss_backward, [logits, target, selected],
                                   names=["logits", "target", "selected"], title=f"masked_lm_loss{shape}"))
    return reps


@register_case("bert.encoder")
def encoder_case():
    from ...models.bert import BertEncoder
    ids, segments, pad = _inputs(_rng())
    enc = BertEncoder(9, 6, n_layer=2, n_head=2, d_model=8, dim_feedforward=12, dropout=0.1, rng=0)
    return check_module(enc.astype(np.float64), [ids, segments, pad])


@register_case("bert.mlm")
def mlm_case():
    from ...models.bert import BertForMaskedLM
    ids, segments, pad = _inputs(_rng())
    model = BertForMaskedLM(9, 6, n_layer=2, n_head=2, d_model=8, dim_feedforward=12, dropout=0.1, rng=0)
    return check_module(model.astype(np.float64), [ids, segments, pad])


@register_case("bert.classifier")
def classifier_case():
    from ...models.bert import BertForSequenceClassification
    ids, segments, pad = _inputs(_rng())
    model = BertForSequenceClassification(9, 6, 3, n_layer=1, n_head=2, d_model=8, dim_feedforward=12,
                                          dropout=0.1, rng=0)
    return check_module(model.astype(np.float64), [ids, segments, pad])
