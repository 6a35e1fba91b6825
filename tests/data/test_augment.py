"""Random crop with padding, horizontal flips and shifted copies: shapes, reproducibility, contents."""
import numpy as np
import pytest

from scratchnet.data.augment import augment, random_crop, random_hflip, resize_bilinear, shift, shifted_copies


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


def test_shift_moves_the_content_and_fills_the_border():
    x = np.arange(1 * 1 * 3 * 4, dtype=np.float32).reshape(1, 1, 3, 4) + 1
    down = shift(x, 1, 0)
    np.testing.assert_array_equal(down[0, 0, 1:], x[0, 0, :2])
    assert (down[0, 0, 0] == 0).all()
    left = shift(x, 0, -2, fill=-1.0)
    np.testing.assert_array_equal(left[0, 0, :, :2], x[0, 0, :, 2:])
    assert (left[0, 0, :, 2:] == -1).all()
    np.testing.assert_array_equal(shift(x, 0, 0), x)
    with pytest.raises(ValueError, match="shift"):
        shift(x, 3, 0)


def test_shifted_copies_are_the_image_and_four_moves():
    x = np.random.default_rng(0).random((2, 1, 5, 5)).astype(np.float32)
    out = shifted_copies(x)
    assert out.shape == (10, 1, 5, 5) and out.dtype == x.dtype
    np.testing.assert_array_equal(out[:2], x)
    for k, (dy, dx) in enumerate([(1, 0), (-1, 0), (0, 1), (0, -1)]):
        np.testing.assert_array_equal(out[2 * (k + 1):2 * (k + 2)], shift(x, dy, dx))
    with pytest.raises(ValueError, match="shifted_copies"):
        shifted_copies(x[0])
    with pytest.raises(ValueError, match="pixels must be a positive int"):
        shifted_copies(x, pixels=0)


def test_resize_bilinear_matches_pytorch():
    torch = pytest.importorskip("torch")
    x = np.random.default_rng(0).standard_normal((2, 3, 28, 28))
    for size in (16, (20, 37), 28):
        oh, ow = (size, size) if isinstance(size, int) else size
        ref = torch.nn.functional.interpolate(torch.from_numpy(x), size=(oh, ow), mode="bilinear",
                                              align_corners=False).numpy()
        np.testing.assert_allclose(resize_bilinear(x, size), ref, atol=1e-12)
    assert resize_bilinear(x, 28) is x
    with pytest.raises(ValueError, match="resize_bilinear: expected x to be 4-D"):
        resize_bilinear(x[0], 8)
