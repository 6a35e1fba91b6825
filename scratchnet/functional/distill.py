"""Knowledge distillation (Hinton, Vinyals & Dean 2015): the soft-target loss at temperature T and
the combined loss with the hard labels.

Legend: N batch, K classes, T temperature, α the weight of the soft term. ``s`` are the student's
logits (the prediction, which gets the gradient), ``t`` the teacher's (a fixed target, no gradient).
See chapters/35-distillation.md.
"""
from __future__ import annotations

from typing import NamedTuple

from .._checks import check_float, check_int, check_same_dtype
from ..backend import get_array_module
from .activation import log_softmax
from .loss import check_dloss, cross_entropy, cross_entropy_backward

__all__ = ["soft_target_loss", "soft_target_loss_backward", "distillation_loss", "distillation_loss_backward"]


def _softmax_and_log(z):
    """softmax(z) and log softmax(z) along the last axis, both from one stable log-sum-exp."""
    logp, _ = log_softmax(z)  # (N, K)
    return get_array_module(z).exp(logp), logp


def _check_logits(op, student_logits, teacher_logits, T):
    check_float(op, "student_logits", student_logits)
    check_float(op, "teacher_logits", teacher_logits)
    check_same_dtype(op, student_logits=student_logits, teacher_logits=teacher_logits)
    if student_logits.ndim != 2 or teacher_logits.shape != student_logits.shape:
        raise ValueError(f"{op}: expected student and teacher logits of one shape (N, K), got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")
    if not T > 0:
        raise ValueError(f"{op}: the temperature T must be > 0, got {T}")


# start-soft-target
def soft_target_loss(student_logits, teacher_logits, *, T):
    """ℓ = T² · (1/N) Σ_n KL(q_n ‖ p_n), q = softmax(t / T) (soft targets), p = softmax(s / T).

    student_logits, teacher_logits (N, K) → a scalar. The T² keeps the gradient's size independent of T.
    Backward: ds = T (p − q) / N. See chapters/35-distillation.md#eq-soft-grad.
    """
    _check_logits("soft_target_loss", student_logits, teacher_logits, T)
    N = student_logits.shape[0]
    q, logq = _softmax_and_log(teacher_logits / T)  # (N, K) the teacher's soft targets
    p, logp = _softmax_and_log(student_logits / T)  # (N, K) the student's softened prediction
    kl = (q * (logq - logp)).sum() / N  # mean over the batch of Σ_k q log(q / p); q > 0 everywhere
    return T * T * kl, (p, q, T)


def soft_target_loss_backward(dloss, cache):
    """dstudent_logits of ``soft_target_loss``: T² · (1/T)(p − q)/N = T (p − q)/N."""
    p, q, T = cache
    check_dloss("soft_target_loss_backward", dloss, (), p.dtype)
    N = p.shape[0]
    return (T / N * dloss) * (p - q)  # (N, K)
# end-soft-target


class DistillationCache(NamedTuple):
    soft: tuple  # soft_target_loss's cache
    hard: object  # cross_entropy's cache
    alpha: float
    dtype: object


def distillation_loss(student_logits, teacher_logits, target, *, T, alpha):
    """L = α · T² KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α) · CE(s, y), both means over the batch.

    student_logits, teacher_logits (N, K), target (N,) integer labels → a scalar.
    Backward: ds = α T (softmax(s/T) − softmax(t/T)) / N + (1 − α)(softmax(s) − onehot(y)) / N.
    See chapters/35-distillation.md#eq-distill-grad.
    """
    _check_logits("distillation_loss", student_logits, teacher_logits, T)
    check_int("distillation_loss", "target", target)
    if target.shape != student_logits.shape[:1]:
        raise ValueError(f"distillation_loss: expected target of shape ({student_logits.shape[0]},), "
                         f"got {tuple(target.shape)}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"distillation_loss: alpha must be in [0, 1], got {alpha}")
    soft, soft_cache = soft_target_loss(student_logits, teacher_logits, T=T)
    hard, hard_cache = cross_entropy(student_logits, target)
    loss = alpha * soft + (1.0 - alpha) * hard
    return loss, DistillationCache(soft_cache, hard_cache, alpha, student_logits.dtype)


def distillation_loss_backward(dloss, cache):
    """dstudent_logits of ``distillation_loss``: the two terms' gradients, weighted, added."""
    soft_cache, hard_cache, alpha, dtype = cache
    check_dloss("distillation_loss_backward", dloss, (), dtype)
    ds_soft = soft_target_loss_backward(dloss, soft_cache)  # (N, K) T (p − q) / N
    ds_hard = cross_entropy_backward(dloss, hard_cache)  # (N, K) (softmax(s) − onehot(y)) / N
    return alpha * ds_soft + (1.0 - alpha) * ds_hard
