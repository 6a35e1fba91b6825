"""Sequence error rates: edit distance, character error rate (CER), word error rate (WER).

CER = (substitutions + deletions + insertions) / reference characters, summed over the corpus;
WER the same over whitespace-separated words. See chapters/17-ctc.md#error-rates.
"""
from __future__ import annotations

__all__ = ["edit_distance", "cer", "wer"]


def edit_distance(ref, hyp) -> int:
    """Levenshtein distance between two sequences (strings, lists of ints or words)."""
    ref, hyp = list(ref), list(hyp)
    prev = list(range(len(hyp) + 1))  # distances from the empty prefix of ref
    for i, r in enumerate(ref, 1):  # one reference item per row of the table
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, 1):  # one hypothesis item per column
            cur[j] = min(prev[j] + 1,  # deletion of r
                         cur[j - 1] + 1,  # insertion of h
                         prev[j - 1] + (r != h))  # substitution (free when equal)
        prev = cur
    return prev[-1]


def _pairs(op, refs, hyps):
    if isinstance(refs, str) != isinstance(hyps, str):
        raise TypeError(f"{op}: give two strings or two lists of strings, got {type(refs).__name__} and {type(hyps).__name__}")
    if isinstance(refs, str):
        refs, hyps = [refs], [hyps]
    refs, hyps = list(refs), list(hyps)
    if len(refs) != len(hyps):
        raise ValueError(f"{op}: {len(refs)} references but {len(hyps)} hypotheses")
    return refs, hyps


def _rate(op, refs, hyps, split):
    refs, hyps = _pairs(op, refs, hyps)
    errors = sum(edit_distance(split(r), split(h)) for r, h in zip(refs, hyps))
    total = sum(len(split(r)) for r in refs)
    if total == 0:
        return 0.0 if errors == 0 else float("inf")
    return errors / total


def cer(refs, hyps) -> float:
    """Character error rate over a corpus (a string each, or lists of strings); spaces count."""
    return _rate("cer", refs, hyps, list)


def wer(refs, hyps) -> float:
    """Word error rate over a corpus: edit distance on ``str.split()`` words / reference words."""
    return _rate("wer", refs, hyps, str.split)
