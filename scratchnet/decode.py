"""Decoding CTC outputs: greedy (best path) and prefix beam search.

Legend: N batch, T time (frames), C classes (the blank included).
A CTC output sequence π (one class per frame) maps to a labelling by B: merge repeated classes,
then drop blanks (B(a a _ a b b _) = a a b). See chapters/17-ctc.md#decoding.
"""
from __future__ import annotations

import math

import numpy as np

from ._checks import check_float, check_ndim
from .backend import asnumpy

__all__ = ["ctc_collapse", "ctc_greedy_decode", "ctc_beam_search"]


def ctc_collapse(path, *, blank=0):
    """B(π): merge runs of the same class, then drop blanks. ``path`` is a sequence of ints."""
    out, prev = [], None
    for k in path:  # one frame per pass
        k = int(k)
        if k != prev and k != blank:
            out.append(k)
        prev = k
    return out


def _prepare(op, log_probs, lengths):
    check_float(op, "log_probs", log_probs)
    check_ndim(op, "log_probs", log_probs, (2, 3))
    lp = np.asarray(asnumpy(log_probs))
    if lp.ndim == 2:  # a single sequence (T, C)
        lp = lp[None]
    N, T, _ = lp.shape
    lens = np.full(N, T, dtype=np.int64) if lengths is None else np.asarray(asnumpy(lengths), dtype=np.int64)
    if lens.shape != (N,) or (N and (lens.min() < 0 or lens.max() > T)):
        raise ValueError(f"{op}: lengths must be ({N},) integers in [0, {T}], got {lens}")
    return lp, lens


def ctc_greedy_decode(log_probs, *, blank=0, lengths=None):
    """Best-path decoding: B(argmax_k y_t(k) for every frame). log_probs (N, T, C) or (T, C).

    Returns a list of N label lists. Fast, but it scores single paths, not labellings: a labelling
    whose probability is spread over many paths can beat the best path's labelling (see beam search).
    """
    lp, lens = _prepare("ctc_greedy_decode", log_probs, lengths)
    best = lp.argmax(axis=-1)  # (N, T)
    return [ctc_collapse(best[n, :lens[n]], blank=blank) for n in range(lp.shape[0])]


def _lae(a, b):
    """log(e^a + e^b) for Python floats, −inf safe."""
    if a < b:
        a, b = b, a
    return a if b == -math.inf else a + math.log1p(math.exp(b - a))


def _beam_one(lp, blank, beam_width):
    """Prefix beam search over one (T, C) array; returns [(labels tuple, log score)] best first."""
    NEG = -math.inf
    beams = {(): (0.0, NEG)}  # prefix -> (log P(prefix, ends in blank), log P(prefix, ends in a label))
    C = lp.shape[1]
    for t in range(lp.shape[0]):  # extend every kept prefix by one frame
        row = lp[t].tolist()
        nxt = {}
        for prefix, (pb, pnb) in beams.items():  # each kept prefix
            total = _lae(pb, pnb)
            b, nb = nxt.get(prefix, (NEG, NEG))
            b = _lae(b, total + row[blank])  # a blank keeps the prefix, now ending in blank
            if prefix:  # repeating the last label without a blank also keeps the prefix
                nb = _lae(nb, pnb + row[prefix[-1]])
            nxt[prefix] = (b, nb)
            for k in range(C):  # each label that may extend the prefix
                if k == blank:
                    continue
                new = prefix + (k,)
                # the same label again only counts as new after a blank (a a → a, a _ a → a a)
                src = pb if prefix and prefix[-1] == k else total
                b2, nb2 = nxt.get(new, (NEG, NEG))
                nxt[new] = (b2, _lae(nb2, src + row[k]))
        ranked = sorted(nxt.items(), key=lambda kv: _lae(*kv[1]), reverse=True)
        beams = dict(ranked[:beam_width])
    return sorted(((p, _lae(*s)) for p, s in beams.items()), key=lambda ps: ps[1], reverse=True)


def ctc_beam_search(log_probs, *, beam_width=8, blank=0, lengths=None, return_scores=False):
    """Prefix beam search: keep the ``beam_width`` labellings with the largest probability so far,
    each scored by the sum over all its paths (split into 'ends in blank' / 'ends in a label').

    log_probs (N, T, C) or (T, C). Returns a list of N label lists (and, with return_scores, a list
    of their log-probabilities). beam_width=1 is close to greedy; larger finds labellings whose
    mass is spread over many paths. See chapters/17-ctc.md#decoding.
    """
    if beam_width < 1:
        raise ValueError(f"ctc_beam_search: beam_width must be >= 1, got {beam_width}")
    lp, lens = _prepare("ctc_beam_search", log_probs, lengths)
    results = [_beam_one(lp[n, :lens[n]].astype(np.float64), blank, beam_width)[0] for n in range(lp.shape[0])]
    labels = [list(p) for p, _ in results]
    return (labels, [s for _, s in results]) if return_scores else labels
