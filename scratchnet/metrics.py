"""Evaluation metrics: classification accuracy and the confusion matrix; sequence error rates
(edit distance, character error rate CER, word error rate WER).

CER = (substitutions + deletions + insertions) / reference characters, summed over the corpus;
WER the same over whitespace-separated words. See chapters/17-ctc.md#error-rates.

Legend: N examples, T time steps, K classes.
"""
from __future__ import annotations

import numpy as np

from .backend import asnumpy, get_array_module

__all__ = ["accuracy", "confusion_matrix", "edit_distance", "cer", "wer"]


# -- classification ----------------------------------------------------------------------------------
def _is_classification(logits, y) -> bool:
    """Integer targets indexing the last axis of the logits: what CrossEntropyLoss trains on."""
    return (y is not None and hasattr(y, "dtype") and y.dtype.kind in "iu"
            and tuple(logits.shape[:-1]) == tuple(y.shape))


def _correct(logits, y):
    """(number of correct argmax predictions, number of counted targets); negative targets
    (``ignore_index=-100``) are not counted."""
    xp = get_array_module(logits, y)
    valid = y >= 0  # (N[, T]) positions that count
    hits = (logits.argmax(axis=-1) == y) & valid
    return int(xp.count_nonzero(hits)), int(xp.count_nonzero(valid))


def accuracy(logits, y) -> float:
    """Fraction of targets whose class has the largest logit. logits (N, K) or (N, T, K), y (N[, T])
    integers; negative targets are ignored."""
    if not _is_classification(logits, y):
        raise ValueError(f"accuracy: expected logits (..., K) and integer targets of shape logits.shape[:-1]; "
                         f"got logits {tuple(logits.shape)}, targets {tuple(getattr(y, 'shape', ()))} "
                         f"{getattr(y, 'dtype', type(y).__name__)}")
    hits, count = _correct(logits, y)
    return hits / max(count, 1)


def confusion_matrix(pred, y, num_classes: int) -> np.ndarray:
    """(K, K) int64 counts on the CPU: row = true class, column = predicted class.

    ``pred`` are class indices shaped like ``y``, or logits with one more (last) axis.
    """
    pred, y = asnumpy(pred), asnumpy(y)
    if pred.ndim == y.ndim + 1:
        pred = pred.argmax(axis=-1)
    if pred.shape != y.shape:
        raise ValueError(f"confusion_matrix: pred {pred.shape} and targets {y.shape} differ in shape")
    pred, y = pred.reshape(-1).astype(np.int64), y.reshape(-1).astype(np.int64)
    for name, a in (("pred", pred), ("targets", y)):
        if a.size and (a.min() < 0 or a.max() >= num_classes):
            raise ValueError(f"confusion_matrix: {name} must lie in [0, {num_classes}), "
                             f"got range [{a.min()}, {a.max()}]")
    counts = np.bincount(y * num_classes + pred, minlength=num_classes * num_classes)  # (K·K,)
    return counts.reshape(num_classes, num_classes)


# -- sequences ---------------------------------------------------------------------------------------


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
        raise TypeError(f"{op}: give two strings or two lists of strings, got {type(refs).__name__} and "
                        f"{type(hyps).__name__}")
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
