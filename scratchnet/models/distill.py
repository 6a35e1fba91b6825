"""Knowledge distillation on MNIST (Hinton, Vinyals & Dean 2015, "Distilling the knowledge in a
neural network"): the teacher and student MLPs, input jitter, the distillation loss as a module,
and the student's training step and loop.

Legend: N batch, D = 784 input pixels, H hidden units, K = 10 classes, T temperature, α the
weight of the soft term. The teacher's logits on the training images are computed once (the
student is trained on unjittered images) and passed in as a third array beside images and labels.

    teacher = teacher_mlp(rng=0)                  # 784-1200-1200-10, dropout, trained with jitter
    t_logits = predict(teacher, X_train)          # (N, K), once
    student = student_mlp(800, rng=1)             # 784-800-800-10, no regularisation
    train_student(student, opt, (X_train, y_train, t_logits), (X_val, y_val), T=20, alpha=0.9, epochs=...)

See chapters/35-distillation.md.
"""
from __future__ import annotations

import time

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..data import batches
from ..data.augment import random_crop
from ..nn.layers import Dropout, Linear, ReLU
from ..nn.loss import CrossEntropyLoss
from ..nn.module import Module, Sequential
from ..train import History, evaluate

__all__ = ["mlp", "teacher_mlp", "student_mlp", "jitter", "DistillationLoss", "distill_step",
           "train_student"]


def mlp(sizes, *, dropout=0.0, input_dropout=0.0, rng=None, dtype=np.float32) -> Sequential:
    """ReLU MLP with widths ``sizes`` (D, H₁, ..., K); optional dropout on the input and after each hidden layer."""
    rng = get_rng(rng)
    layers = [Dropout(input_dropout, rng=rng)] if input_dropout else []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(Linear(a, b, rng=rng, dtype=dtype))
        if i < len(sizes) - 2:  # hidden layer
            layers.append(ReLU())
            if dropout:
                layers.append(Dropout(dropout, rng=rng))
    return Sequential(*layers)


def teacher_mlp(hidden=1200, *, dropout=0.5, input_dropout=0.2, rng=None, dtype=np.float32) -> Sequential:
    """The paper's large net: 784-1200-1200-10 ReLU, dropout 0.2 on the input and 0.5 on the hidden units."""
    return mlp((784, hidden, hidden, 10), dropout=dropout, input_dropout=input_dropout, rng=rng, dtype=dtype)


def student_mlp(hidden=800, *, rng=None, dtype=np.float32) -> Sequential:
    """The paper's small net: 784-H-H-10 ReLU (H = 800 in the paper), no regularisation."""
    return mlp((784, hidden, hidden, 10), rng=rng, dtype=dtype)


def jitter(x, *, pixels=2, rng=None, fill=None):
    """Shift each flattened 28×28 image (N, 784) by a random offset of up to ``pixels`` in each direction.

    The border that enters is ``fill`` (default: the smallest value in x, the background). → (N, 784).
    """
    if x.ndim != 2 or x.shape[1] != 784:
        raise ValueError(f"jitter: expected flattened 28×28 images (N, 784), got shape {tuple(x.shape)}")
    fill = float(x.min()) if fill is None else fill
    img = random_crop(x.reshape(-1, 1, 28, 28), padding=pixels, rng=rng, fill=fill)  # (N, 1, 28, 28)
    return img.reshape(x.shape[0], 784)


# start-distill-module
class DistillationLoss(Module):
    """L = α T² KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α) CE(s, y); ``backward()`` returns ds."""

    def __init__(self, *, T, alpha):
        super().__init__()
        self.T, self.alpha = float(T), float(alpha)

    def forward(self, student_logits, teacher_logits, target):
        loss, cache = F.distillation_loss(student_logits, teacher_logits, target, T=self.T, alpha=self.alpha)
        self.push(cache)
        return loss

    def backward(self, dloss=1.0):
        return F.distillation_loss_backward(dloss, self.pop())

    def extra_repr(self):
        return f"T={self.T}, alpha={self.alpha}"


def distill_step(student, loss_fn, optimizer, xb, yb, tb) -> float:
    """One step on a batch: images xb (B, D), labels yb (B,), the teacher's logits tb (B, K); the loss."""
    logits = student(xb)  # (B, K)
    loss = loss_fn(logits, tb, yb)
    optimizer.zero_grad()
    student.backward(loss_fn.backward())
    optimizer.step()
    return float(loss)
# end-distill-module


def _val_error(model, val):
    """Error rate of ``model`` on ``val = (X, y)`` (evaluation mode, nothing cached)."""
    return 1.0 - evaluate(model, CrossEntropyLoss(), val, batch_size=1000)["accuracy"]


def train_student(student, optimizer, train, val=None, *, T=1.0, alpha=0.0, epochs, batch_size=128, rng=None,
                  scheduler=None, time_limit=None, log=False) -> History:
    """Train ``student`` on ``train = (X, y, teacher_logits)`` with the distillation loss; with
    ``teacher_logits`` None (or alpha = 0) this is plain cross-entropy on the hard labels.

    ``scheduler`` is stepped once per optimizer step. ``time_limit`` (seconds): stop after the first
    epoch that ends past it. Returns a History: per epoch ``train_loss``, ``val_error`` and ``seconds``.
    """
    X, y, t_logits = train
    if t_logits is None:  # hard labels only: the soft term gets weight 0
        t_logits, alpha = np.zeros((len(X), 10), X.dtype), 0.0
    loss_fn = DistillationLoss(T=T, alpha=alpha)
    rng, history, start = get_rng(rng), History(), time.perf_counter()
    for epoch in range(1, epochs + 1):
        t0, losses = time.perf_counter(), []
        student.train()
        for xb, yb, tb in batches(X, y, t_logits, batch_size=batch_size, shuffle=True, rng=rng):
            losses.append(distill_step(student, loss_fn, optimizer, xb, yb, tb))
            if scheduler is not None:
                scheduler.step()
        history.step_loss.extend(losses)
        row = {"epoch": epoch, "train_loss": float(np.mean(losses))}
        if val is not None:
            row["val_error"] = _val_error(student, val)
        row["seconds"] = time.perf_counter() - t0
        history.epochs.append(row)
        history.seconds = time.perf_counter() - start
        if log:
            print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
        if time_limit is not None and history.seconds > time_limit:
            break
    return history
