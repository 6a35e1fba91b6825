"""Gradient-check cases of the Speech-Transformer: the convolutional subsampling pair at two shapes, the
ConvSubsampling module, and a tiny model (ragged lengths; with the CTC head and dropout, and without)."""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ..checker import check_function, check_module
from ..registry import register_case


def _rng():
    return np.random.default_rng(2018)


def _subsample_inputs(r, N, T, D, C):
    # small biases keep the pre-activations off the ReLU kink
    return [r.standard_normal((N, T, D)), r.standard_normal((C, 1, 3, 3)), 0.1 * r.standard_normal(C),
            r.standard_normal((C, C, 3, 3)) / np.sqrt(9 * C), 0.1 * r.standard_normal(C)]


@register_case("speech_transformer.conv_subsample")
def conv_subsample_case():
    r = _rng()
    names = ["x", "w1", "b1", "w2", "b2"]
    return [check_function(F.conv_subsample, F.conv_subsample_backward, _subsample_inputs(r, 2, 11, 9, 3),
                           names=names, title="conv_subsample[T=11, D=9, C=3]"),
            check_function(F.conv_subsample, F.conv_subsample_backward, _subsample_inputs(r, 1, 16, 7, 2),
                           names=names, title="conv_subsample[T=16, D=7, C=2]")]


@register_case("speech_transformer.subsampling")
def subsampling_case():
    from ...models.speech_transformer import ConvSubsampling
    r = _rng()
    m = ConvSubsampling(9, 5, channels=3, rng=0).astype(np.float64)
    return check_module(m, [r.standard_normal((2, 12, 9))])


def tiny_model(ctc_head=True, dropout=0.1):
    """The tiny float64 model of the gradient checks: 7 features, vocabulary 5, D = 4, one layer each."""
    from ...models.speech_transformer import SpeechTransformer
    return SpeechTransformer(7, 5, d_model=4, nhead=2, num_encoder_layers=1, num_decoder_layers=1,
                             dim_feedforward=6, channels=2, dropout=dropout, ctc_head=ctc_head, max_len=8,
                             rng=0).astype(np.float64)


def tiny_inputs():
    """x (2, 15, 7), teacher-forcing inputs (2, 4) (<sos> = 4) and ragged lengths (15, 11)."""
    r = _rng()
    return r.standard_normal((2, 15, 7)), np.array([[4, 1, 2, 3], [4, 2, 3, 4]]), np.array([15, 11])


@register_case("speech_transformer.model[ctc]")
def model_ctc_case():
    x, ys, lengths = tiny_inputs()
    return check_module(tiny_model(True, 0.1), [x, ys], forward_kwargs=dict(lengths=lengths))


@register_case("speech_transformer.model[attention-only]")
def model_attention_case():
    x, ys, lengths = tiny_inputs()
    return check_module(tiny_model(False, 0.0), [x, ys], forward_kwargs=dict(lengths=lengths))
