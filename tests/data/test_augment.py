"""Random crop with padding and horizontal flips: shapes, reproducibility, contents."""
import numpy as np
import pytest

from scratchnet.data.augment import augment, random_crop, random_hflip


def test_random_crop_is_a_shifted_window():
    x = np.arange(2 * 1 * 5 * 5, dtype=np.float32).reshape(2, 1, 5, 5)
    y = random_crop(x, padding=2, rng=np.random.default_rng(0))
    assert y.shape == x.shape and y.dtype == x.dtype
    xpad = np.pad(x, ((0, 0), (0, 0), (2, 2), (2, 2)))
    for n in range(2):  # every crop appears somewhere in its padded image
        hits = [(i, j) for i in range(5) for j in range(5) if np.array_equal(xpad[n, :, i:i + 5, j:j + 5], y[n])]
        assert hits
    np.testing.assert_array_equal(y, random_crop(x, padding=2, rng=np.random.default_rng(0)))
    assert random_crop(x, padding=1, size=3, rng=0).shape == (2, 1, 3, 3)
    with pytest.raises(ValueError, match="larger than the padded image"):
        random_crop(x, padding=0, size=6)


def test_random_hflip():
    x = np.random.default_rng(1).standard_normal((64, 2, 3, 4))
    y = random_hflip(x, rng=np.random.default_rng(3))
    flipped = [np.array_equal(y[n], x[n, :, :, ::-1]) for n in range(64)]
    kept = [np.array_equal(y[n], x[n]) for n in range(64)]
    assert all(f or k for f, k in zip(flipped, kept)) and 10 < sum(flipped) < 54
    np.testing.assert_array_equal(random_hflip(x, p=0.0, rng=0), x)
    assert augment(x, padding=1, rng=np.random.default_rng(0)).shape == x.shape
