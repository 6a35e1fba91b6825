"""Gradient-check cases of wav2vec 2.0: the Gumbel-softmax with fixed noise at two temperatures, the
contrastive loss with fixed distractors, the diversity loss, the Conv1d, feature-encoder and quantiser
modules, and a tiny model as one module (pre-training loss with the soft quantiser, and the CTC wrapper).
The hard (straight-through) quantiser is not a gradient of its forward, so it is tested separately."""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ..checker import check_function, check_module
from ..registry import register_case

TINY_CONV = ((3, 4, 2), (3, 3, 2))  # (C, kernel, stride): 4× fewer frames, 8 samples per frame


def _rng():
    return np.random.default_rng(2020)


def gumbel_inputs(r, shape=(3, 2, 5)):
    """Logits and fixed Gumbel noise."""
    return r.standard_normal(shape), F.gumbel_noise(shape, rng=r)


def contrastive_inputs(r, M=6, D=4, K=3):
    """c, q (M, D) and distractors (M, K): two utterances of M/2 masked frames, never the frame itself."""
    from ...models.wav2vec2 import sample_negatives
    mask = np.ones((2, M // 2), dtype=bool)
    return [r.standard_normal((M, D)), r.standard_normal((M, D)), sample_negatives(mask, K, r)]


@register_case("wav2vec2.gumbel_softmax[soft]")
def gumbel_case():
    r = _rng()
    out = []
    for tau in (0.5, 2.0):
        logits, noise = gumbel_inputs(r)
        out.append(check_function(F.gumbel_softmax, F.gumbel_softmax_backward, [logits], tau=tau, hard=False,
                                  noise=noise, names=["logits"], title=f"gumbel_softmax[soft, tau={tau}]"))
    return out


@register_case("wav2vec2.contrastive_loss")
def contrastive_case():
    r = _rng()
    return [check_function(F.contrastive_loss, F.contrastive_loss_backward, contrastive_inputs(r, M, D, K),
                           kappa=kappa, names=["c", "q"], title=f"contrastive_loss[M={M}, K={K}, kappa={kappa}]")
            for M, D, K, kappa in ((6, 4, 3, 0.1), (8, 5, 2, 0.5))]


@register_case("wav2vec2.diversity_loss")
def diversity_case():
    r = _rng()
    return [check_function(F.diversity_loss, F.diversity_loss_backward, [r.standard_normal(s)], names=["logits"],
                           title=f"diversity_loss[{s}]") for s in ((7, 2, 4), (5, 3, 3))]


@register_case("wav2vec2.conv1d")
def conv1d_case():
    from ...models.wav2vec2_parts import Conv1d
    r = _rng()
    return [check_module(Conv1d(4, 4, 3, padding=1, groups=2, rng=0).astype(np.float64), r.standard_normal((2, 4, 7))),
            check_module(Conv1d(1, 3, 4, stride=2, rng=1).astype(np.float64), r.standard_normal((2, 1, 12)))]


@register_case("wav2vec2.feature_encoder")
def feature_encoder_case():
    from ...models.wav2vec2_parts import FeatureEncoder
    return check_module(FeatureEncoder(TINY_CONV, rng=0).astype(np.float64), _rng().standard_normal((2, 30)))


@register_case("wav2vec2.quantizer[soft]")
def quantizer_case():
    from ...models.wav2vec2_parts import GumbelVectorQuantizer
    r = _rng()
    q = GumbelVectorQuantizer(3, 2, 4, 6, tau=1.5, hard=False, rng=0).astype(np.float64)  # the noise rewound
    return check_module(q, [r.standard_normal((5, 3))])


def tiny_model(hard=False, dropout=0.1):
    """The float64 model of the gradient checks: 2 conv layers of 3 channels, D = 4, one layer, 2 × 3 codes."""
    from ...models.wav2vec2 import Wav2Vec2
    return Wav2Vec2(conv_layers=TINY_CONV, d_model=4, nhead=2, num_layers=1, dim_feedforward=6, pos_kernel=3,
                    pos_groups=2, num_groups=2, num_vars=3, final_dim=4, dropout=dropout, hard=hard,
                    rng=0).astype(np.float64)


def tiny_inputs():
    """wave (2, 40) with ragged lengths (40, 30) → 9 and 6 frames; a span mask and 3 distractors per step."""
    from ...models.wav2vec2 import sample_negatives, span_mask
    r = _rng()
    wave, lengths = r.standard_normal((2, 40)), np.array([40, 30])
    mask = span_mask(np.array([9, 6]), p=0.3, span=2, rng=1)
    return wave, lengths, mask, sample_negatives(mask, 3, rng=2)


@register_case("wav2vec2.model[pretrain, soft]")
def model_pretrain_case():
    wave, lengths, mask, neg = tiny_inputs()
    return check_module(tiny_model(), [wave, mask, neg], forward_kwargs=dict(lengths=lengths))


@register_case("wav2vec2.model[ctc]")
def model_ctc_case():
    from ...models.wav2vec2 import Wav2Vec2CTC
    wave, lengths, mask, _ = tiny_inputs()
    m = Wav2Vec2CTC(tiny_model(), 5, freeze_feature_encoder=False, rng=1).astype(np.float64)
    return check_module(m, [wave], forward_kwargs=dict(lengths=lengths, mask=mask))


@register_case("wav2vec2.model[ctc, frozen]")
def model_ctc_frozen_case():
    from ...models.wav2vec2 import Wav2Vec2CTC
    wave, lengths, _, _ = tiny_inputs()
    m = Wav2Vec2CTC(tiny_model(dropout=0.0), 5, freeze_feature_encoder=True, rng=1).astype(np.float64)
    frozen = {id(p) for p in m.encoder.feature.parameters()}
    report = check_module(m, [wave], forward_kwargs=dict(lengths=lengths), check_inputs=False)
    # the frozen feature encoder gets no gradient although the loss depends on it: leave it out of the check
    keep = [res for (name, p), res in zip(m.named_parameters(), report.results) if id(p) not in frozen]
    report.results[:] = keep
    report.title = "Wav2Vec2CTC[frozen feature encoder]"
    return report
