"""Knowledge distillation (chapter 35): the teacher and student MLPs, the loss module and
the training step, a whole student+loss gradcheck, overfitting one batch, jitter, errors."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import check_module
from scratchnet.models.distill import DistillationLoss, distill_step, jitter, student_mlp, teacher_mlp, train_student
from scratchnet.nn import Module
from scratchnet.nn.layers import Dropout
from scratchnet.optim import Adam


def test_architectures():
    teacher, student = teacher_mlp(rng=0), student_mlp(800, rng=0)
    assert teacher.num_parameters() == 784 * 1200 + 1200 + 1200 * 1200 + 1200 + 1200 * 10 + 10 == 2_395_210
    assert student.num_parameters() == 784 * 800 + 800 + 800 * 800 + 800 + 800 * 10 + 10 == 1_276_810
    assert sum(isinstance(m, Dropout) for m in teacher.modules()) == 3
    assert not any(isinstance(m, Dropout) for m in student.modules())
    assert teacher(np.zeros((2, 784), np.float32)).shape == (2, 10)


class _StudentWithLoss(Module):
    """student → distillation loss, as one module, for a whole-model gradient check."""

    def __init__(self, student, loss, teacher_logits, labels):
        super().__init__()
        self.student, self.loss, self.t, self.y = student, loss, teacher_logits, labels

    def forward(self, x):
        return self.loss(self.student(x), self.t, self.y)

    def backward(self, dloss):
        return self.student.backward(self.loss.backward(dloss))


@pytest.mark.parametrize("T,alpha", [(1.0, 0.5), (8.0, 0.9)])
def test_student_with_the_distillation_loss_gradcheck(T, alpha, rng):
    student = student_mlp(6, rng=0, dtype=np.float64)
    x = rng.standard_normal((3, 784))
    t, y = 3 * rng.standard_normal((3, 10)), rng.integers(0, 10, 3)
    report = check_module(_StudentWithLoss(student, DistillationLoss(T=T, alpha=alpha), t, y), x, fast=True)
    assert report.ok, report


def test_module_matches_the_functional_pair(rng):
    s, t, y = rng.standard_normal((5, 10)), rng.standard_normal((5, 10)), rng.integers(0, 10, 5)
    crit = DistillationLoss(T=4, alpha=0.7)
    loss = crit(s, t, y)
    ref, cache = F.distillation_loss(s, t, y, T=4.0, alpha=0.7)
    assert loss == ref
    np.testing.assert_array_equal(crit.backward(), F.distillation_loss_backward(1.0, cache))
    with pytest.raises(RuntimeError, match="DistillationLoss.backward: no cached forward pass"):
        crit.backward()


def test_distill_step_overfits_one_batch_toward_the_teacher(rng):
    student = student_mlp(32, rng=0)
    x = rng.standard_normal((16, 784)).astype(np.float32)
    y = rng.integers(0, 10, 16)
    t = (4 * np.eye(10)[y] + rng.standard_normal((16, 10))).astype(np.float32)  # a confident, noisy teacher
    opt, crit = Adam(student.parameters(), lr=3e-3), DistillationLoss(T=4.0, alpha=0.9)
    losses = [distill_step(student, crit, opt, x, y, t) for _ in range(150)]
    assert losses[-1] < 0.05 * losses[0]
    p_s, p_t = F.softmax(student(x) / 4.0)[0], F.softmax(t / 4.0)[0]
    assert np.abs(p_s - p_t).max() < 0.05  # it matches the soft targets, not just the labels


def test_train_student_hard_and_soft_and_the_time_limit(rng):
    X = rng.standard_normal((256, 784)).astype(np.float32)
    y = rng.integers(0, 10, 256)
    t = rng.standard_normal((256, 10)).astype(np.float32)
    student = student_mlp(16, rng=0)
    h = train_student(student, Adam(student.parameters(), lr=1e-3), (X, y, t), (X[:64], y[:64]), T=3.0, alpha=0.8,
                      epochs=3, batch_size=64, rng=0)
    assert [e["epoch"] for e in h.epochs] == [1, 2, 3] and all(0 <= e["val_error"] <= 1 for e in h.epochs)
    student = student_mlp(16, rng=0)
    h = train_student(student, Adam(student.parameters(), lr=1e-3), (X, y, None), None, epochs=50, batch_size=64,
                      rng=0, time_limit=0.0)
    assert len(h.epochs) == 1 and len(h.step_loss) == 4  # stopped after the first epoch


def test_jitter_shifts_each_image_by_at_most_two_pixels(rng):
    x = np.zeros((20, 28, 28), np.float32)
    x[:, 10:18, 12:16] = 1.0
    out = jitter(x.reshape(20, 784), rng=rng).reshape(20, 28, 28)
    shifts = set()
    for a, b in zip(x, out):
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if np.array_equal(np.roll(a, (dy, dx), axis=(0, 1)), b)]
        assert found
        shifts.add(found[0])
    assert len(shifts) > 3
    with pytest.raises(ValueError, match=r"jitter: expected flattened 28×28 images \(N, 784\)"):
        jitter(np.zeros((2, 28, 28)))
