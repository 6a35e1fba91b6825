"""Gradient-check cases of Listen, Attend and Spell: the pyramidal time reduction (even and odd
lengths), location-aware attention (masks, filter widths), the listener and the whole model with
content-based and location-aware attention, scheduled sampling included."""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ..checker import check_function, check_module
from ..registry import register_case


def _rng():
    return np.random.default_rng(2416)


@register_case("las.pyramid")
def pyramid_case():
    r = _rng()
    return [check_function(F.pyramid_concat, F.pyramid_concat_backward, [r.standard_normal((2, T, 3))],
                           names=["x"], title=f"pyramid_concat[T={T}]") for T in (6, 7)]


def location_args(r, N=3, Tk=6, Dq=4, Dk=5, Dv=2, A=7, K=3, width=3):
    """Random float64 inputs of ``F.location_attention``: query … v, prev_alpha a distribution."""
    prev = F.softmax(r.standard_normal((N, Tk)))[0]  # (N, Tk)
    return [r.standard_normal((N, Dq)), r.standard_normal((N, Tk, Dk)), r.standard_normal((N, Tk, Dv)), prev,
            r.standard_normal((Dq, A)), r.standard_normal((Dk, A)), r.standard_normal((K, width)),
            r.standard_normal((K, A)), r.standard_normal(A)]


@register_case("las.location")
def location_case():
    r = _rng()
    names = ["query", "keys", "values", "prev_alpha", "wq", "wk", "filters", "wf", "v"]
    mask = r.random((3, 6)) > 0.3
    mask[:, 0] = True
    f, b = F.location_attention, F.location_attention_backward
    return [check_function(f, b, location_args(r), names=names, title="location"),
            check_function(f, b, location_args(r), names=names, mask=mask, title="location[mask]"),
            check_function(f, b, location_args(r, width=1, K=2), names=names, title="location[width=1]")]


@register_case("las.listener")
def listener_case():
    from ...models.las import Listener
    r = _rng()
    listener = Listener(3, 2, levels=1, rng=0).astype(np.float64)
    return check_module(listener, [r.standard_normal((2, 7, 3)), np.array([7, 4])])  # an odd length, ragged


def tiny_las(attention, sampling_prob=0.0):
    from ...models.las import LAS
    return LAS(3, 5, listener_hidden=2, levels=1, speller_hidden=3, embed_dim=2, attn_dim=3, attention=attention,
               n_filters=2, width=3, sampling_prob=sampling_prob, rng=0).astype(np.float64)


def tiny_batch(r):
    """x (2, 6, 3), lengths, targets (2, 3) ending in EOS (0) and padded with PAD (−100)."""
    return [r.standard_normal((2, 6, 3)), np.array([6, 5]), np.array([[1, 2, 0], [3, 0, -100]])]


@register_case("las.model[content]")
def las_content_case():
    return check_module(tiny_las("content"), tiny_batch(_rng()))


@register_case("las.model[location, sampling]")
def las_location_case():
    return check_module(tiny_las("location", sampling_prob=0.5), tiny_batch(_rng()))
