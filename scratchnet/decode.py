"""Decoding CTC outputs: greedy (best path) and prefix beam search, optionally with a character
n-gram language model (Deep Speech's decoder).

Legend: N batch, T time (frames), C classes (the blank included).
A CTC output sequence π (one class per frame) maps to a labelling by B: merge repeated classes,
then drop blanks (B(a a _ a b b _) = a a b). See chapters/17-ctc.md#decoding.
"""
from __future__ import annotations

import math

import numpy as np

from ._checks import check_float, check_ndim
from .backend import asnumpy

__all__ = ["ctc_collapse", "ctc_greedy_decode", "ctc_beam_search", "CharNGramLM"]


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


class CharNGramLM:
    """A label n-gram language model with add-k smoothing, estimated from transcripts.

    P(k | h) = (count(h, k) + k_add) / (count(h) + k_add·(C + 1)) over the C labels and an end
    symbol, h the previous ``order − 1`` labels (padded at the start). Labels are the decoder's
    integer ids; the blank never occurs in a transcript. See chapters/18-deep-speech.md#decoding-lm.
    """

    END = -1  # the end-of-transcript symbol (scored once, after the last label)

    def __init__(self, order=2, *, k_add=0.01):
        if order < 1 or k_add <= 0:
            raise ValueError(f"CharNGramLM: need order >= 1 and k_add > 0, got order={order}, k_add={k_add}")
        self.order, self.k_add = order, k_add
        self.counts, self.context_counts, self.num_labels = {}, {}, 0

    def fit(self, transcripts, num_labels):
        """Count n-grams in ``transcripts`` (sequences of label ids); num_labels = C (blank included)."""
        self.num_labels = num_labels
        for seq in transcripts:  # one transcript per pass
            padded = [None] * (self.order - 1) + [int(k) for k in seq] + [self.END]
            for i in range(self.order - 1, len(padded)):  # each label with its history
                h = tuple(padded[i - self.order + 1:i])
                self.counts[h + (padded[i],)] = self.counts.get(h + (padded[i],), 0) + 1
                self.context_counts[h] = self.context_counts.get(h, 0) + 1
        return self

    def log_prob(self, prefix, k):
        """log P(k | the last order − 1 labels of ``prefix``); k may be ``CharNGramLM.END``."""
        if not self.num_labels:
            raise RuntimeError("CharNGramLM.log_prob: fit the model on transcripts first")
        h = tuple(([None] * (self.order - 1) + list(prefix))[len(prefix):]) if self.order > 1 else ()
        num = self.counts.get(h + (k,), 0) + self.k_add
        return math.log(num / (self.context_counts.get(h, 0) + self.k_add * (self.num_labels + 1)))


def _beam_one(lp, blank, beam_width, lm=None, lm_weight=0.0, insertion_bonus=0.0):
    """Prefix beam search over one (T, C) array; returns [(labels tuple, log score)] best first.

    With ``lm``, extending a prefix by label k also adds lm_weight · log P_lm(k | prefix) +
    insertion_bonus (Hannun et al. 2014, eq. 6), and the final ranking adds the end symbol's score.
    """
    NEG = -math.inf
    beams = {(): (0.0, NEG)}  # prefix -> (log P(prefix, ends in blank), log P(prefix, ends in a label))
    C = lp.shape[1]
    fused = {}  # (prefix, k) -> the language-model term of extending prefix by k

    def lm_term(prefix, k):
        if lm is None:
            return 0.0
        if (prefix, k) not in fused:
            fused[prefix, k] = lm_weight * lm.log_prob(prefix, k) + (insertion_bonus if k != lm.END else 0.0)
        return fused[prefix, k]

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
                nxt[new] = (b2, _lae(nb2, src + row[k] + lm_term(prefix, k)))
        ranked = sorted(nxt.items(), key=lambda kv: _lae(*kv[1]), reverse=True)
        beams = dict(ranked[:beam_width])
    end = (lambda p: lm_term(p, lm.END)) if lm is not None else (lambda p: 0.0)
    return sorted(((p, _lae(*s) + end(p)) for p, s in beams.items()), key=lambda ps: ps[1], reverse=True)


def ctc_beam_search(log_probs, *, beam_width=8, blank=0, lengths=None, return_scores=False, lm=None,
                    lm_weight=0.5, insertion_bonus=0.0):
    """Prefix beam search: keep the ``beam_width`` labellings with the largest probability so far,
    each scored by the sum over all its paths (split into 'ends in blank' / 'ends in a label').

    log_probs (N, T, C) or (T, C). Returns a list of N label lists (and, with return_scores, a list
    of their scores). beam_width=1 is close to greedy; larger finds labellings whose mass is spread
    over many paths. With ``lm`` (a fitted ``CharNGramLM``) the score of a labelling c is
    log P_ctc(c | x) + lm_weight · log P_lm(c) + insertion_bonus · |c|, Deep Speech's decoder.
    See chapters/17-ctc.md#decoding and chapters/18-deep-speech.md#decoding-lm.
    """
    if beam_width < 1:
        raise ValueError(f"ctc_beam_search: beam_width must be >= 1, got {beam_width}")
    if lm is not None and not isinstance(lm, CharNGramLM):
        raise TypeError(f"ctc_beam_search: lm must be a CharNGramLM, got {type(lm).__name__}")
    lp, lens = _prepare("ctc_beam_search", log_probs, lengths)
    if lm is not None and lm.num_labels != lp.shape[-1]:
        raise ValueError(f"ctc_beam_search: the language model was fitted for {lm.num_labels} classes but "
                         f"log_probs has C={lp.shape[-1]}")
    results = [_beam_one(lp[n, :lens[n]].astype(np.float64), blank, beam_width, lm, lm_weight, insertion_bonus)[0]
               for n in range(lp.shape[0])]
    labels = [list(p) for p, _ in results]
    return (labels, [s for _, s in results]) if return_scores else labels
