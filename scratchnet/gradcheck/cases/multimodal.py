"""Gradient-check cases of multimodal fusion (chapters/32-multimodal.md): the fusion pairs (concatenation,
weighted log-probabilities, the gate, modality dropout with each kind of fill), the audio encoder, and
each model as a module, with and without modality dropout."""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ...models.multimodal import AudioEncoder, EarlyFusion, IntermediateFusion, LateFusion, Unimodal
from ..checker import check_function, check_module
from ..registry import register_case

D_AUDIO = 4  # audio features per frame in the small models below
MASK_SEED = 6  # the modality-dropout masks' generator: its first draw for 3 pairs drops an image and two audios


def _rng():
    return np.random.default_rng(3232)


@register_case("multimodal.concat_fusion")
def concat_fusion_case():
    r = _rng()
    f, bw = F.concat_fusion, F.concat_fusion_backward
    return [check_function(f, bw, [r.standard_normal((4, a)), r.standard_normal((4, b))], names=["a", "b"],
                           title=f"concat_fusion[{a}+{b}]") for a, b in ((3, 5), (1, 1), (6, 2))]


@register_case("multimodal.late_fusion")
def late_fusion_case():
    r = _rng()
    out = []
    for M, w in ((2, np.zeros(2)), (2, np.array([1.5, -0.7])), (3, r.standard_normal(3))):
        logps = F.log_softmax(r.standard_normal((5, M, 4)))[0]  # (N, M, K) real log-probabilities
        out.append(check_function(F.late_fusion, F.late_fusion_backward, [logps, w], names=["logps", "w"],
                                  title=f"late_fusion[M={M}, w={np.round(w, 2).tolist()}]"))
    return out


@register_case("multimodal.gated_fusion")
def gated_fusion_case():
    r = _rng()
    out = []
    for shape in ((4, 3), (1, 6)):
        ha, hb = np.tanh(r.standard_normal(shape)), np.tanh(r.standard_normal(shape))
        z = 1 / (1 + np.exp(-r.standard_normal(shape)))
        out.append(check_function(F.gated_fusion, F.gated_fusion_backward, [ha, hb, z], names=["ha", "hb", "z"],
                                  title=f"gated_fusion[{shape}]"))
    return out


@register_case("multimodal.modality_dropout")
def modality_dropout_case():
    r = _rng()
    f, bw = F.modality_dropout, F.modality_dropout_backward
    mask = np.array([1, 0, 1, 0, 0])
    cases = [("image, blank image fill", (5, 1, 6, 6), (1, 6, 6)),
             ("image, scalar fill", (5, 1, 6, 6), ()),
             ("frames, one frame of fill", (5, 3, 4), (4,)),
             ("features, learned vector", (5, 7), (7,))]
    out = [check_function(f, bw, [r.standard_normal(xs), r.standard_normal(fs)], names=["x", "fill"], mask=mask,
                          title=f"modality_dropout[{what}]") for what, xs, fs in cases]
    out.append(check_function(f, bw, [r.standard_normal((5, 7)), r.standard_normal(7)], names=["x", "fill"],
                              mask=np.ones(5, dtype=bool), title="modality_dropout[nothing dropped]"))
    return out


def _small(cls, **kw):
    return cls(n_features=D_AUDIO, features=6, hidden=5, channels=(2, 3), rng=1, dtype=np.float64, **kw)


def _inputs(r):
    image, audio = r.standard_normal((3, 1, 28, 28)), r.standard_normal((3, 5, D_AUDIO))  # (N, 1, 28, 28), (N, T, D)
    return [image, audio], {"lengths": np.array([5, 2, 4])}


def _model_case(model, title):
    r = _rng()
    inputs, kw = _inputs(r)
    if model.p_drop:
        model.set_missing(-0.4, r.standard_normal(D_AUDIO))
        model.rng = np.random.default_rng(MASK_SEED)  # only the masks draw from it now
    report = check_module(model, inputs, forward_kwargs=kw, fast=True)
    report.title = title
    return report


@register_case("multimodal.audio_encoder")
def audio_encoder_case():
    r = _rng()
    enc = AudioEncoder(D_AUDIO, 6, 5, rng=1, dtype=np.float64)
    report = check_module(enc, [r.standard_normal((3, 5, D_AUDIO))], forward_kwargs={"lengths": np.array([5, 1, 3])})
    report.title = "AudioEncoder[lengths]"
    return report


@register_case("multimodal.unimodal")
def unimodal_case():
    return [_model_case(_small(Unimodal, modality=m), f"Unimodal[{m}]") for m in ("image", "audio")]


@register_case("multimodal.early_fusion")
def early_fusion_case():
    return [_model_case(_small(EarlyFusion, p_drop=p), f"EarlyFusion[p_drop={p}]") for p in (0.0, 0.6)]


@register_case("multimodal.late_fusion_model")
def late_fusion_model_case():
    out = []
    for p in (0.0, 0.6):
        model = _small(LateFusion, p_drop=p)
        model.w.data[...] = [0.4, -0.3]  # unequal weights: α away from (½, ½)
        out.append(_model_case(model, f"LateFusion[p_drop={p}]"))
    return out


@register_case("multimodal.intermediate_fusion")
def intermediate_fusion_case():
    return [_model_case(_small(IntermediateFusion, p_drop=p), f"IntermediateFusion[p_drop={p}]") for p in (0.0, 0.6)]
