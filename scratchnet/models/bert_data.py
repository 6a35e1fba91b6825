"""Data for chapter 22: a character vocabulary with BERT's special tokens, the 80/10/10 masking rule,
MLM windows, the play-position split, the speaker-classification examples, and scoring helpers.

Legend: N batch, T positions, V vocabulary (characters + [PAD] [CLS] [MASK]), C characters.
See chapters/22-bert.md#bert-data.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..nn.module import no_grad
from .gpt import CharTokenizer

__all__ = ["BertVocab", "mask_tokens", "mlm_windows", "block_split", "speaker_examples", "batch_iter",
           "trim_padding", "mlm_scores", "causal_scores", "unigram_scores"]


class BertVocab(CharTokenizer):
    """Character ids 0..C−1 (sorted), then [PAD] = C, [CLS] = C + 1, [MASK] = C + 2."""

    def __init__(self, text):
        super().__init__(text)
        self.n_chars = len(self.chars)
        self.pad_id, self.cls_id, self.mask_id = self.n_chars, self.n_chars + 1, self.n_chars + 2

    @property
    def vocab_size(self):
        return self.n_chars + 3

    def decode(self, ids):
        names = {self.pad_id: "_", self.cls_id: "^", self.mask_id: "#"}
        return "".join(names.get(int(i), self.chars[int(i)] if int(i) < self.n_chars else "?")
                       for i in np.asarray(ids).reshape(-1))


# start-mask
def mask_tokens(ids, *, n_chars, mask_id, p=0.15, rng=None, maskable=None):
    """BERT's corruption: select each maskable position with probability p; of the selected, 80 % become
    [MASK], 10 % a random character, 10 % stay. Returns (inputs (N, T), selected (N, T) bool).

    Draws, in this order: u = rng.random(ids.shape) (selection, u < p), v = rng.random(ids.shape) (the
    80/10/10 choice), r = rng.integers(0, n_chars, ids.shape) (the random characters).
    """
    rng = get_rng(rng)
    maskable = (ids < n_chars) if maskable is None else maskable  # never [CLS] or [PAD]
    u, v = rng.random(ids.shape), rng.random(ids.shape)  # (N, T) each
    r = rng.integers(0, n_chars, ids.shape)  # (N, T) candidate random characters
    selected = (u < p) & maskable
    inputs = np.where(selected & (v < 0.8), mask_id, ids)  # 80 %: [MASK]
    inputs = np.where(selected & (v >= 0.8) & (v < 0.9), r, inputs)  # 10 %: a random character
    return inputs, selected  # the last 10 % keep their own character
# end-mask


def mlm_windows(data, block_size, batch_size, cls_id, rng=None, starts=None):
    """Windows [CLS] + data[s : s + block_size − 1] (N, block_size) at random (or given) starts."""
    rng = get_rng(rng)
    if starts is None:
        starts = rng.integers(1, len(data) - block_size, size=batch_size)  # (N,) s ≥ 1 leaves a left neighbour
    idx = np.asarray(starts)[:, None] + np.arange(block_size - 1)[None, :]  # (N, T − 1)
    return np.concatenate([np.full((len(starts), 1), cls_id), data[idx]], axis=1), np.asarray(starts)


def block_split(n_items, n_blocks, pattern="TTTTTTTTVS"):
    """Assign n_items (in text order) to train/val/test by contiguous blocks: item i is in block
    ⌊i·n_blocks/n_items⌋, and block b takes the split pattern[b mod len(pattern)] (T, V or S).
    Returns three boolean masks (train, val, test)."""
    block = np.arange(n_items) * n_blocks // n_items  # (n_items,)
    kind = np.array(list(pattern))[block % len(pattern)]
    return kind == "T", kind == "V", kind == "S"


def speaker_examples(speeches, speakers, vocab, max_len):
    """Speeches by the given speakers as [CLS] + the first max_len − 1 characters of the speech (name
    removed), padded with [PAD]: ids (M, max_len), labels (M,), key padding mask (M, max_len) True = pad,
    and the positions of the kept speeches in ``speeches``."""
    index = {s: k for k, s in enumerate(speakers)}
    keep = [i for i, (who, _, _) in enumerate(speeches) if who in index]
    ids = np.full((len(keep), max_len), vocab.pad_id, dtype=np.int64)  # (M, T)
    for row, i in enumerate(keep):
        body = vocab.encode(speeches[i][1][: max_len - 1])
        ids[row, 0], ids[row, 1: 1 + len(body)] = vocab.cls_id, body
    labels = np.array([index[speeches[i][0]] for i in keep], dtype=np.int64)  # (M,)
    return ids, labels, ids == vocab.pad_id, np.array(keep)


def batch_iter(n, batch_size, rng=None, shuffle=True):
    """Index arrays of consecutive mini-batches over range(n), shuffled each call when asked."""
    order = get_rng(rng).permutation(n) if shuffle else np.arange(n)
    return [order[i: i + batch_size] for i in range(0, n, batch_size)]


def trim_padding(ids, pad):
    """Drop the columns that are padding in every row (shorter attention, same result)."""
    T = int((~pad).sum(axis=1).max())
    return ids[:, :T], pad[:, :T]


def mlm_scores(model, inputs, targets, selected, batch_size=64):
    """Per-position −log p(target) and correctness of an MLM at the selected positions (1-D arrays)."""
    nll, hit = [], []
    model.eval()
    with no_grad():
        for b in batch_iter(len(inputs), batch_size, shuffle=False):
            logp = F.log_softmax(model(inputs[b]).astype(np.float64))[0]  # (N, T, V)
            sel, t = selected[b], targets[b]
            nll.append(-np.take_along_axis(logp, t[..., None], -1)[..., 0][sel])
            hit.append((logp.argmax(-1) == t)[sel])
    model.train()
    return np.concatenate(nll), np.concatenate(hit)


def causal_scores(gpt, prev, targets, selected, batch_size=64):
    """The causal model on the same characters: prev (N, T) is the text one character before targets (N, T),
    so the logits at t predict targets[:, t] from the characters to its left only."""
    nll, hit = [], []
    gpt.eval()
    with no_grad():
        for b in batch_iter(len(prev), batch_size, shuffle=False):
            logp = F.log_softmax(gpt(prev[b]).astype(np.float64))[0]  # (N, T, C)
            sel, t = selected[b], targets[b]
            nll.append(-np.take_along_axis(logp, t[..., None], -1)[..., 0][sel])
            hit.append((logp.argmax(-1) == t)[sel])
    gpt.train()
    return np.concatenate(nll), np.concatenate(hit)


def unigram_scores(train_ids, n_chars, targets, selected):
    """−log of the training frequency of each selected target, and whether it is the most frequent character."""
    freq = np.bincount(train_ids, minlength=n_chars) / len(train_ids)  # (C,)
    t = targets[selected]
    return -np.log(freq[t]), t == freq.argmax()
