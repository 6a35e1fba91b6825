"""Evaluating generators of MNIST-like digits: a LeNet-feature Fréchet distance ("LeNet-FID"), the
classifier-based Inception Score, the class histogram of generated samples, and sample grids.

Legend: N samples, K feature size (84: LeNet's penultimate layer), C classes (10).

FID(μ1, Σ1; μ2, Σ2) = ‖μ1 − μ2‖² + tr(Σ1 + Σ2 − 2 (Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2}) between Gaussians
fitted to the features of two sample sets (Heusel et al. 2017), computed with symmetric
eigendecompositions. The features come from a LeNet-5 trained on MNIST, not from Inception-v3: the
numbers are NOT comparable to the Inception-FIDs of papers; compare them with the real-vs-real floor.
See chapters/30-dcgan.md#evaluation.
"""
from __future__ import annotations

import time

import numpy as np

from .. import functional as F
from ..data import batches
from ..nn.module import no_grad
from ..optim import Adam
from .lenet import LeNet5Modern

__all__ = ["sqrtm_psd", "frechet_distance", "gaussian_stats", "fid_from_features", "inception_score",
           "class_histogram", "within_factor_of_uniform", "to_lenet_input", "FeatureClassifier",
           "evaluate_samples", "class_mix_fid", "tile"]


def sqrtm_psd(a):
    """The symmetric square root of a symmetric positive semi-definite matrix: V diag(√λ) Vᵀ (λ < 0 → 0)."""
    lam, v = np.linalg.eigh((a + a.T) / 2)  # symmetrised against round-off
    return (v * np.sqrt(np.clip(lam, 0, None))) @ v.T


# start-frechet
def frechet_distance(mu1, sigma1, mu2, sigma2):
    """‖μ1 − μ2‖² + tr Σ1 + tr Σ2 − 2 tr (Σ1^{1/2} Σ2 Σ1^{1/2})^{1/2}.

    The product Σ1^{1/2} Σ2 Σ1^{1/2} is symmetric PSD and has the eigenvalues of Σ1 Σ2, so
    tr (Σ1 Σ2)^{1/2} = Σ_i √λ_i of that symmetric matrix: two eigendecompositions, no complex numbers.
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (mu1.size, mu1.size):
        raise ValueError(f"frechet_distance: expected means (K,) and covariances (K, K) of one K, got "
                         f"{mu1.shape}, {s1.shape}, {mu2.shape}, {s2.shape}")
    root1 = sqrtm_psd(s1)
    m = root1 @ s2 @ root1  # (K, K) symmetric PSD
    tr_covmean = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0, None)).sum()
    return float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * tr_covmean)
# end-frechet


def gaussian_stats(features):
    """Mean (K,) and unbiased covariance (K, K) of features (N, K)."""
    f = np.asarray(features, np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"gaussian_stats: expected features (N ≥ 2, K), got shape {f.shape}")
    return f.mean(axis=0), np.cov(f, rowvar=False)


def fid_from_features(f1, f2):
    """Fréchet distance between Gaussians fitted to two feature sets (N1, K) and (N2, K)."""
    return frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))


# start-inception-score
def inception_score(probs, *, splits=10):
    """exp(E_x KL(p(y|x) ‖ p(y))) per split of the class probabilities (N, C); returns (mean, std).

    Between 1 (every sample gets the same distribution) and C (confident and uniformly spread classes).
    """
    p = np.asarray(probs, np.float64)
    scores = []
    for part in np.array_split(p, splits):
        py = part.mean(axis=0, keepdims=True)  # (1, C) the marginal p(y) of the split
        kl = (part * (np.log(part + 1e-12) - np.log(py + 1e-12))).sum(axis=1)  # (n,)
        scores.append(np.exp(kl.mean()))
    return float(np.mean(scores)), float(np.std(scores))
# end-inception-score


def class_histogram(labels, num_classes=10):
    """Fraction of samples per predicted class: (C,)."""
    return np.bincount(np.asarray(labels), minlength=num_classes)[:num_classes] / max(len(labels), 1)


def within_factor_of_uniform(hist, factor=2.0):
    """True when every class frequency lies in [1/(factor·C), factor/C]."""
    c = len(hist)
    return bool(np.all(hist >= 1 / (factor * c)) and np.all(hist <= factor / c))


def to_lenet_input(x):
    """Images in [−1, 1] (N, 1, 28, 28) → LeNet's input (N, 1, 32, 32): background −0.1, ink 1.175, padded by 2."""
    u = (np.asarray(x, np.float32) + 1) / 2  # [0, 1]
    z = (-0.1 + 1.275 * u).astype(np.float32)
    return np.pad(z, ((0, 0), (0, 0), (2, 2), (2, 2)), constant_values=np.float32(-0.1))


class FeatureClassifier:
    """A LeNet5Modern trained on real digits; ``features`` = its 84-d penultimate layer (after ReLU)."""

    def __init__(self, rng=0):
        self.model = LeNet5Modern(rng=rng)
        self.model.eval()

    def fit(self, x, y, *, epochs=2, batch_size=128, lr=2e-3, max_seconds=None, rng=0):
        """Adam on images in [−1, 1] (N, 1, 28, 28) and labels (N,); stops early at ``max_seconds``."""
        opt, t0 = Adam(self.model.parameters(), lr=lr), time.time()
        self.model.train()
        for _ in range(epochs):
            for xb, yb in batches(x, y, batch_size=batch_size, rng=np.random.default_rng(rng)):
                loss, cache = F.cross_entropy(self.model(to_lenet_input(xb)), yb)
                opt.zero_grad()
                self.model.backward(F.cross_entropy_backward(1.0, cache))
                opt.step()
                if max_seconds is not None and time.time() - t0 > max_seconds:
                    break
            rng += 1
        self.model.eval()
        return self

    def _run(self, x, upto, batch_size=500):
        out = []
        with no_grad():
            for i in range(0, len(x), batch_size):
                h = to_lenet_input(x[i:i + batch_size])
                for layer in self.model.layers[:upto]:
                    h = layer(h)
                out.append(h)
        return np.concatenate(out)

    def features(self, x):
        """(N, 84): the penultimate layer's activations."""
        return self._run(x, len(self.model.layers) - 1)

    def probs(self, x):
        """(N, 10) class probabilities."""
        return F.softmax(self._run(x, len(self.model.layers)).astype(np.float64))[0]

    def accuracy(self, x, y):
        return float((self.probs(x).argmax(1) == y).mean())


def evaluate_samples(classifier, samples, real_features, *, splits=10):
    """LeNet-FID against ``real_features``, Inception Score, class histogram of ``samples`` (N, 1, 28, 28)."""
    probs = classifier.probs(samples)  # (N, 10)
    hist = class_histogram(probs.argmax(1))
    score, score_std = inception_score(probs, splits=splits)
    return dict(fid=fid_from_features(classifier.features(samples), real_features), inception_score=score,
                inception_score_std=score_std, histogram=hist, uniform_within_2x=within_factor_of_uniform(hist))


# start-class-mix
def class_mix_fid(classifier, images, histogram, real_features, *, n=None, rng=0):
    """The LeNet-FID that a generator's class mix alone explains.

    Draw ``n`` real ``images`` (N, 1, 28, 28) so that the classifier reads them with the class
    frequencies ``histogram`` (C,) — e.g. a generator's class histogram — and return their LeNet-FID
    against ``real_features``. Real digits in the generator's proportions: every bit of this FID comes
    from the proportions, none from the strokes. ``n`` defaults to len(real_features).
    """
    hist = np.asarray(histogram, np.float64)
    if hist.ndim != 1 or np.any(hist < 0) or not np.isclose(hist.sum(), 1.0, atol=1e-6):
        raise ValueError(f"class_mix_fid: expected a histogram of non-negative frequencies summing to 1, "
                         f"got {np.round(hist, 4)} (sum {hist.sum():.4f})")
    rng = np.random.default_rng(rng)
    n = len(real_features) if n is None else int(n)
    labels = classifier.probs(images).argmax(1)  # the classifier's reading, as for the generated samples
    counts = np.floor(hist * n).astype(int)  # per class, the remainder to the largest fractions
    counts[np.argsort(hist * n - counts)[::-1][:n - counts.sum()]] += 1
    picks = []
    for k, c in enumerate(counts):
        pool = np.flatnonzero(labels == k)
        if c and not len(pool):
            raise ValueError(f"class_mix_fid: the histogram asks for class {k}, which no image is read as")
        picks.append(rng.choice(pool, c, replace=c > len(pool)) if c else pool[:0])
    idx = np.concatenate(picks)
    return fid_from_features(classifier.features(images[idx]), real_features)
# end-class-mix


def tile(images, nrow):
    """Images (N, 1, H, W) in [−1, 1] → one (rows·(H+2), nrow·(W+2)) array in [0, 1], a 1-pixel border each."""
    x = (np.asarray(images)[:, 0] + 1) / 2  # (N, H, W)
    n, H, W = x.shape
    rows = -(-n // nrow)
    out = np.ones((rows * (H + 2), nrow * (W + 2)))  # (rows·(H+2), nrow·(W+2))
    for k in range(n):
        r, c = divmod(k, nrow)
        out[r * (H + 2) + 1:r * (H + 2) + 1 + H, c * (W + 2) + 1:c * (W + 2) + 1 + W] = x[k]
    return out
