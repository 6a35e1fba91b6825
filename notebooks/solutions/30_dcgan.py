"""Reference solutions for notebooks/30-dcgan.ipynb's "your turn" cells (chapter 30)."""
import numpy as np

import scratchnet.functional as F
from scratchnet.exercises import check_pair

YOUR_TURN = ["my_nonsaturating_loss", "my_nonsaturating_loss_backward"]


def my_nonsaturating_loss(logit):
    """L = −mean log σ(ℓ) = mean softplus(−ℓ), computed stably."""
    per = np.maximum(-logit, 0) + np.log1p(np.exp(-np.abs(logit)))  # softplus(−ℓ)
    return per.mean(), (logit,)


def my_nonsaturating_loss_backward(dL, cache):
    """∂L/∂ℓ = dL·(σ(ℓ) − 1)/N."""
    (logit,) = cache
    return dL * (F.stable_sigmoid(logit) - 1.0) / logit.size


def bce_real(logit):
    return F.binary_cross_entropy_with_logits(logit, np.ones_like(logit))


def check(strict=True):
    """The notebook's check, run on these solutions."""
    check_logits = 3.0 * np.random.default_rng(3).standard_normal((7, 1))
    return [check_pair((my_nonsaturating_loss, my_nonsaturating_loss_backward),
                       (bce_real, F.binary_cross_entropy_with_logits_backward), [check_logits], strict=strict)]
