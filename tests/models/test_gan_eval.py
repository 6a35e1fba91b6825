"""LeNet-FID, Inception Score and class histograms (chapters/30-dcgan.md#evaluation): the Fréchet
distance against closed forms on Gaussians, sample estimates converging to them, the IS limits."""
import numpy as np
import pytest

from scratchnet.models.gan_eval import (
    FeatureClassifier,
    class_histogram,
    class_mix_fid,
    fid_from_features,
    frechet_distance,
    inception_score,
    sqrtm_psd,
    tile,
    to_lenet_input,
    within_factor_of_uniform,
)
from scratchnet.models.lenet import lenet_input


def _rotation(rng, k):
    q, _ = np.linalg.qr(rng.standard_normal((k, k)))
    return q


def test_sqrtm_psd(rng):
    a = rng.standard_normal((6, 6))
    s = a @ a.T
    r = sqrtm_psd(s)
    np.testing.assert_allclose(r @ r, s, atol=1e-10)
    np.testing.assert_allclose(r, r.T, atol=1e-12)


def test_one_dimensional_closed_form():
    assert frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx((1 - 3) ** 2 + (2 - 3) ** 2)


def test_diagonal_covariances(rng):
    mu1, mu2 = rng.standard_normal(5), rng.standard_normal(5)
    a, b = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
    want = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(want, rel=1e-10)


def test_commuting_covariances_in_a_rotated_basis(rng):
    q = _rotation(rng, 7)
    a, b = rng.uniform(0.1, 3, 7), rng.uniform(0.1, 3, 7)
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    mu = rng.standard_normal(7)
    want = (mu ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    assert frechet_distance(mu, s1, np.zeros(7), s2) == pytest.approx(want, rel=1e-9)


def test_general_covariances_match_the_eigenvalues_of_the_product(rng):
    a, b = rng.standard_normal((4, 4)), rng.standard_normal((4, 4))
    s1, s2 = a @ a.T + 0.1 * np.eye(4), b @ b.T + 0.1 * np.eye(4)
    tr_root = np.sqrt(np.linalg.eigvals(s1 @ s2).real).sum()  # Σ1Σ2 has positive real eigenvalues
    want = np.trace(s1) + np.trace(s2) - 2 * tr_root
    assert frechet_distance(np.zeros(4), s1, np.zeros(4), s2) == pytest.approx(want, rel=1e-8)
    assert frechet_distance(np.zeros(4), s1, np.zeros(4), s2) == pytest.approx(
        frechet_distance(np.zeros(4), s2, np.zeros(4), s1), rel=1e-8)


def test_sample_estimates_converge(rng):
    k = 4
    q = _rotation(rng, k)
    a, b = np.array([1.0, 2.0, 0.5, 1.5]), np.array([0.5, 1.0, 2.0, 1.0])
    s1, s2 = q @ np.diag(a) @ q.T, q @ np.diag(b) @ q.T
    mu2 = np.array([0.5, 0.0, -0.5, 0.2])
    exact = (mu2 ** 2).sum() + ((np.sqrt(a) - np.sqrt(b)) ** 2).sum()
    errors = []
    for n in (500, 50000):
        x1 = rng.multivariate_normal(np.zeros(k), s1, n)
        x2 = rng.multivariate_normal(mu2, s2, n)
        errors.append(abs(fid_from_features(x1, x2) - exact))
    assert errors[1] < 0.03 and errors[1] < errors[0]


def test_same_distribution_gives_nearly_zero(rng):
    x = rng.standard_normal((20000, 3))
    assert abs(fid_from_features(x[:10000], x[10000:])) < 0.01
    with pytest.raises(ValueError, match="frechet_distance: expected means"):
        frechet_distance(np.zeros(3), np.eye(2), np.zeros(3), np.eye(3))


def test_inception_score_limits():
    confident = np.eye(10)[np.arange(1000) % 10] * 0.999 + 0.0001
    assert inception_score(confident, splits=10)[0] == pytest.approx(10, rel=0.02)
    same = np.tile(np.eye(10)[3], (1000, 1))
    assert inception_score(same)[0] == pytest.approx(1.0, abs=1e-6)
    assert inception_score(np.full((100, 10), 0.1))[0] == pytest.approx(1.0)


def test_class_histogram_and_uniformity():
    h = class_histogram(np.array([0, 1, 1, 2]), 3)
    np.testing.assert_allclose(h, [0.25, 0.5, 0.25])
    assert within_factor_of_uniform(np.full(10, 0.1))
    assert within_factor_of_uniform(np.array([0.05] + [0.95 / 9] * 9))
    assert not within_factor_of_uniform(np.array([0.04] + [0.96 / 9] * 9))
    assert not within_factor_of_uniform(np.array([0.21] + [0.79 / 9] * 9))


def test_lenet_input_and_tile(rng):
    u8 = rng.integers(0, 256, (3, 28, 28)).astype(np.uint8)
    x = u8[:, None].astype(np.float32) / 127.5 - 1
    np.testing.assert_allclose(to_lenet_input(x), lenet_input(u8), atol=1e-5)
    t = tile(x, nrow=2)
    assert t.shape == (2 * 30, 2 * 30) and t.min() >= 0 and t.max() <= 1


def test_feature_classifier_shapes(rng):
    x = np.tanh(rng.standard_normal((40, 1, 28, 28))).astype(np.float32)
    y = rng.integers(0, 10, 40)
    fc = FeatureClassifier(rng=0).fit(x, y, epochs=1, batch_size=20)
    assert fc.features(x).shape == (40, 84) and fc.probs(x).shape == (40, 10)
    np.testing.assert_allclose(fc.probs(x).sum(1), 1, rtol=1e-6)


class _ReadsPixel:
    """A stand-in classifier: class = first pixel; features = the class's corner of a simplex + noise."""

    def probs(self, x):
        return np.eye(10)[x[:, 0, 0, 0].astype(int)]

    def features(self, x):
        k = x[:, 0, 0, 0].astype(int)
        return 5.0 * np.eye(10)[k] + x[:, 0, 1, :10]


def test_class_mix_fid_is_near_zero_for_the_real_mix_and_grows_with_skew(rng):
    labels = np.repeat(np.arange(10), 300)
    x = rng.standard_normal((3000, 1, 4, 10))
    x[:, 0, 0, 0] = labels
    clf = _ReadsPixel()
    real = clf.features(x)
    uniform = class_mix_fid(clf, x, np.full(10, 0.1), real, rng=1)
    mild = class_mix_fid(clf, x, np.r_[0.12, 0.08, np.full(8, 0.1)], real, rng=1)
    skewed = class_mix_fid(clf, x, np.r_[0.3, 0.02, np.full(8, 0.085)], real, rng=1)
    assert uniform < mild < skewed
    assert uniform < 0.2                             # resampling noise only
    # the mean term alone for the skewed mix: ‖5·(p − u)‖² over the simplex corners
    p = np.r_[0.3, 0.02, np.full(8, 0.085)]
    assert skewed > 25 * np.sum((p - 0.1) ** 2)


def test_class_mix_fid_errors(rng):
    x = np.zeros((20, 1, 4, 10))
    x[:10, 0, 0, 0] = 1
    real = _ReadsPixel().features(x)
    with pytest.raises(ValueError, match="class_mix_fid: expected a histogram"):
        class_mix_fid(_ReadsPixel(), x, np.full(10, 0.2), real)
    with pytest.raises(ValueError, match="asks for class 2"):
        class_mix_fid(_ReadsPixel(), x, np.r_[0.5, 0.25, 0.25, np.zeros(7)], real)
