"""A character-level language model (char-rnn, Karpathy 2015): embedding → RNN/LSTM/GRU → linear.

Legend: N streams (batch), T characters per window, V vocabulary, E embedding size, H hidden units.
Trained with truncated BPTT on contiguous windows: the recurrent layer is ``stateful``, so the
state at the end of one window starts the next while no gradient crosses the boundary.
See chapters/14-rnn-bptt.md#charlm.
"""
from __future__ import annotations

import numpy as np

from .._random import get_rng
from ..backend import asnumpy, get_array_module
from ..nn import GRU, LSTM, RNN, Embedding, Linear, Module, no_grad

__all__ = ["CharVocabulary", "CharLM", "lm_windows", "sample"]

_CELLS = {"rnn": RNN, "lstm": LSTM, "gru": GRU}


class CharVocabulary:
    """Characters ↔ ids (sorted characters of a text)."""

    def __init__(self, text):
        self.chars = sorted(set(text))
        self.index = {c: i for i, c in enumerate(self.chars)}

    def __len__(self):
        return len(self.chars)

    def encode(self, text):
        unknown = set(text) - self.index.keys()
        if unknown:
            raise ValueError(f"CharVocabulary.encode: characters not in the vocabulary: {sorted(unknown)[:10]}")
        return np.array([self.index[c] for c in text], dtype=np.int64)  # (len,)

    def decode(self, ids):
        return "".join(self.chars[int(i)] for i in np.asarray(ids).reshape(-1))


class CharLM(Module):
    """ids (N, T) → logits (N, T, V). ``cell`` is "rnn", "lstm" or "gru"; the recurrent layer keeps
    its final state between calls (``stateful``) for truncated BPTT; ``reset_state()`` forgets it."""

    def __init__(self, vocab_size, hidden_size=128, *, embed_dim=32, cell="lstm", num_layers=1, dropout=0.0,
                 rng=None, dtype=np.float32):
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"CharLM: cell must be one of {sorted(_CELLS)}, got {cell!r}")
        rng = get_rng(rng)
        self.vocab_size, self.cell = vocab_size, cell
        self.embed = Embedding(vocab_size, embed_dim, rng=rng, dtype=dtype)
        self.rnn = _CELLS[cell](embed_dim, hidden_size, num_layers, dropout=dropout, stateful=True, rng=rng,
                                dtype=dtype)
        self.head = Linear(hidden_size, vocab_size, rng=rng, dtype=dtype)

    def forward(self, ids):
        y = self.rnn(self.embed(ids))[0]  # (N, T, H)
        return self.head(y)  # (N, T, V)

    def backward(self, dlogits):
        dy = self.head.backward(dlogits)  # (N, T, H)
        self.embed.backward(self.rnn.backward((dy,)))  # the final state's gradient is cut (truncated BPTT)
        return None  # integer ids get no gradient

    def reset_state(self):
        self.rnn.reset_state()

    def config(self):
        return {"class": "CharLM", "vocab_size": self.vocab_size, "cell": self.cell}


def lm_windows(ids, *, batch_size, seq_len):
    """Truncated-BPTT batches: the text is cut into ``batch_size`` contiguous streams and read in
    consecutive windows, so row n of one batch continues row n of the previous one.

    ids (L,) → list of (x, y) with x, y (batch_size, seq_len) and y the next characters.
    """
    n = (len(ids) - 1) // batch_size  # characters per stream
    if n < seq_len:
        raise ValueError(f"lm_windows: {len(ids)} characters are too few for {batch_size} streams of {seq_len}")
    streams = np.asarray(ids)[:n * batch_size + 1]
    xs = streams[:-1][:n * batch_size].reshape(batch_size, n)  # (N, n)
    ys = streams[1:][:n * batch_size].reshape(batch_size, n)  # (N, n) shifted by one character
    return [(xs[:, k:k + seq_len], ys[:, k:k + seq_len]) for k in range(0, n - seq_len + 1, seq_len)]


def sample(model, vocab, prompt, length, *, temperature=1.0, rng=None):
    """Generate ``length`` characters after ``prompt``: p(c) ∝ exp(logit_c / temperature).

    The model's carried state is saved and restored, so sampling between training steps does not
    disturb truncated BPTT.
    """
    if temperature <= 0:
        raise ValueError(f"sample: temperature must be positive, got {temperature}")
    rng = get_rng(rng)
    saved, was_training = model.rnn.state, model.training
    model.eval()
    model.reset_state()
    xp = get_array_module(model.head.weight.data)
    out = list(prompt)
    with no_grad():
        logits = model(xp.asarray(vocab.encode(prompt)[None]))[:, -1]  # (1, V) after the prompt
        for _ in range(length):  # one character per step, feeding back the sample
            z = asnumpy(logits[0]).astype(np.float64) / temperature
            p = np.exp(z - z.max())
            c = int(rng.choice(len(p), p=p / p.sum()))
            out.append(vocab.chars[c])
            logits = model(xp.asarray(np.array([[c]])))[:, -1]
    model.rnn.state = saved
    model.train(was_training)
    return "".join(out)
