"""Connected-digit sequences under chapter 18's protocol, shared by the sequence-to-sequence speech
chapters: training sequences from FSDD training recordings 10–49, validation sequences from the
held-out training recordings 5–9, test sequences from the test recordings 0–4 (the official split).

Legend: T frames, D = 40 log-mel features per frame (10 ms hop), per-utterance normalised.
Each split draws its sequences from its own recordings only, so no recording is shared between
splits; every sequence is 2–4 digits of one speaker (``connected_digits``). See chapters/24-las.md#las-data.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .audio import connected_digits, load_fsdd, log_mel, normalize_features

__all__ = ["SpeechSplit", "fsdd_features", "connected_digit_splits"]


class SpeechSplit(NamedTuple):
    """One split: features (list of (T_i, D) float32), transcripts ("3 7 1"), the ConnectedUtterances."""
    X: list
    texts: list
    utterances: list


def fsdd_features(u):
    """Chapter 18's features: 40 log-mel energies per 10 ms frame, normalised per utterance, (T, 40)."""
    return normalize_features(log_mel(u.wave, u.sr))


def connected_digit_splits(n_train, n_val, n_test, *, seed=0, min_len=2, max_len=4, root=None,
                           features=fsdd_features, progress=None):
    """{"train", "val", "test"} → ``SpeechSplit``: connected-digit sequences of each split drawn with
    ``numpy.random.default_rng(seed)``; ``progress`` wraps the feature loop of the training split."""
    rng = np.random.default_rng(seed)
    train_digits, test_digits = load_fsdd("train", root=root), load_fsdd("test", root=root)
    pools = {"train": [u for u in train_digits if u.index > 9],  # recordings 10–49: training only
             "val": [u for u in train_digits if u.index <= 9],  # recordings 5–9: validation only
             "test": test_digits}  # recordings 0–4: the official test split
    out = {}
    for name, n in (("train", n_train), ("val", n_val), ("test", n_test)):  # in a fixed order
        utts = connected_digits(pools[name], n_sequences=n, min_len=min_len, max_len=max_len, rng=rng)
        items = progress(utts) if progress is not None and name == "train" else utts
        out[name] = SpeechSplit([features(u) for u in items], [u.text for u in utts], utts)
    return out
