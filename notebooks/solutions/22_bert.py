"""Reference solutions for notebooks/22-bert.ipynb's "your turn" cells (chapter 22)."""
import numpy as np

import scratchnet as sn
import scratchnet.functional as F
from scratchnet.exercises import check_function_output, check_pair
from scratchnet.models.bert_data import mask_tokens

YOUR_TURN = ["my_masked_lm_loss", "my_masked_lm_loss_backward", "my_mask_tokens"]


def my_masked_lm_loss(logits, target, selected):
    """Mean −log softmax(logits)[target] over the selected positions; logits (N, T, V) → (loss, cache)."""
    z = logits - logits.max(axis=-1, keepdims=True)  # (N, T, V) shifted for stability
    logp = z - np.log(np.exp(z).sum(axis=-1, keepdims=True))  # (N, T, V) log-softmax
    t = np.where(selected, target, 0)  # (N, T) a safe index at unselected positions
    nll = -np.take_along_axis(logp, t[..., None], axis=-1)[..., 0]  # (N, T)
    M = max(int(selected.sum()), 1)
    return (nll * selected).sum() / M, (logp, t, selected, M)


def my_masked_lm_loss_backward(dloss, cache):
    """dlogits (N, T, V) of my_masked_lm_loss: zero rows at unselected positions."""
    logp, t, selected, M = cache
    dz = np.exp(logp)  # (N, T, V) softmax
    np.put_along_axis(dz, t[..., None], np.take_along_axis(dz, t[..., None], axis=-1) - 1.0, axis=-1)
    return dz * (selected[..., None] * dloss / M)


def my_mask_tokens(ids, *, n_chars, mask_id, p=0.15, rng=None, maskable=None):
    """BERT's 80/10/10 corruption of ids (N, T) → (inputs (N, T), selected (N, T) bool)."""
    rng = sn.get_rng(rng)
    maskable = ids < n_chars if maskable is None else maskable
    u, v = rng.random(ids.shape), rng.random(ids.shape)  # selection, then the 80/10/10 choice
    r = rng.integers(0, n_chars, ids.shape)  # random characters
    selected = (u < p) & maskable
    inputs = np.where(selected & (v < 0.8), mask_id, ids)
    inputs = np.where(selected & (v >= 0.8) & (v < 0.9), r, inputs)
    return inputs, selected


def check(strict=True):
    """The notebook's checks, run on these solutions."""
    r_ = np.random.default_rng(3)
    logits, target = r_.standard_normal((3, 6, 7)), r_.integers(0, 7, (3, 6))
    selected = r_.random((3, 6)) < 0.3
    selected[0, 0] = True
    ids = np.random.default_rng(4).integers(0, 11, (6, 40))
    return [
        check_pair((my_masked_lm_loss, my_masked_lm_loss_backward), (F.masked_lm_loss, F.masked_lm_loss_backward),
                   [logits, target, selected], strict=strict),
        check_function_output(my_mask_tokens, mask_tokens, [ids], options=dict(n_chars=8, mask_id=10, p=0.3, rng=0),
                              strict=strict),
    ]
