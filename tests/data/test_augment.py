"""Random crop with padding, horizontal flips, shifted copies, random affine maps and elastic distortions:
shapes, reproducibility, contents."""
import numpy as np
import pytest

from scratchnet.data.augment import (
    augment,
    elastic_distort,
    random_affine,
    random_crop,
    random_hflip,
    resize_bilinear,
    shift,
    shifted_copies,
)


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


# --- random_affine and elastic_distort (chapter 06's distortions) ---

def _images(shape=(3, 2, 9, 9), dtype=np.float32):
    return np.random.default_rng(0).standard_normal(shape).astype(dtype)


def test_distortions_with_identity_parameters_give_the_input_back():
    x = _images()
    np.testing.assert_array_equal(random_affine(x, degrees=0, scale=0, translate=0, rng=0), x)
    np.testing.assert_array_equal(random_affine(x, degrees=(0, 0), scale=(1, 1), translate=(0, 0), shear=0, rng=1), x)
    np.testing.assert_array_equal(elastic_distort(x, alpha=0, sigma=4, rng=0), x)


def test_random_affine_integer_translation_is_an_exact_shift():
    x = _images()
    for t in (2, -3):
        y = random_affine(x, degrees=0, scale=0, translate=(t, t), rng=0, fill=-1.0)
        np.testing.assert_array_equal(y, shift(x, t, t, fill=-1.0))


def test_random_affine_rotation_by_90_degrees_is_rot90():
    x = _images((2, 1, 8, 8), np.float64)
    y = random_affine(x, degrees=(90, 90), scale=0, translate=0, rng=0)
    np.testing.assert_allclose(y[..., 1:-1, 1:-1], np.rot90(x, axes=(2, 3))[..., 1:-1, 1:-1], atol=1e-12)
    y = random_affine(x, degrees=(-90, -90), scale=0, translate=0, rng=0)  # clockwise
    np.testing.assert_allclose(y[..., 1:-1, 1:-1], np.rot90(x, k=-1, axes=(2, 3))[..., 1:-1, 1:-1], atol=1e-12)


def test_random_affine_scale_and_shear_move_pixels_where_expected():
    x = np.zeros((1, 1, 9, 9))
    x[0, 0, 4, 6] = 1.0  # two columns right of the centre (4, 4)
    y = random_affine(x, degrees=0, scale=(2, 2), translate=0, rng=0)
    assert y[0, 0, 4, 8] == 1.0  # twice as far from the centre
    x = np.zeros((1, 1, 9, 9))
    x[0, 0, 6, 4] = 1.0  # two rows below the centre
    y = random_affine(x, degrees=0, scale=0, translate=0, shear=(45, 45), rng=0)
    assert abs(y[0, 0, 6, 6] - 1.0) < 1e-12  # a 45° shear moves it two columns right


def test_distortions_are_deterministic_and_keep_shape_and_dtype():
    for dtype in (np.float32, np.float64):
        x = _images((4, 2, 12, 10), dtype)
        for f, kw in [(random_affine, dict(degrees=15, scale=0.1, translate=2, shear=10)),
                      (elastic_distort, dict(alpha=8, sigma=3))]:
            a, b = f(x, rng=np.random.default_rng(5), **kw), f(x, rng=np.random.default_rng(5), **kw)
            assert a.shape == x.shape and a.dtype == x.dtype
            np.testing.assert_array_equal(a, b)
            assert not np.array_equal(a, f(x, rng=np.random.default_rng(6), **kw))
            per_image = np.abs(a - x).reshape(4, -1).max(1)
            assert (per_image > 0).all()  # every image is moved, each in its own way


def test_elastic_distortion_is_small_and_smooth_for_simards_setting():
    x = np.zeros((64, 1, 28, 28))
    x[:, :, 10:18, 10:18] = 1.0
    y = elastic_distort(x, alpha=34, sigma=4, rng=0)
    assert 0.0 <= y.min() and y.max() <= 1.0 + 1e-12  # bilinear: a convex combination of pixels and fill
    assert 0.02 < np.abs(y - x).mean() < 0.2  # visible but not destructive


def test_distortion_bad_inputs_name_the_function():
    x = _images()
    with pytest.raises(ValueError, match="random_affine: expected x to be 4-D"):
        random_affine(x[0], degrees=10, scale=0.1, translate=1)
    with pytest.raises(ValueError, match="random_affine: degrees"):
        random_affine(x, degrees=(10, -10), scale=0.1, translate=1)
    with pytest.raises(ValueError, match="random_affine: scale factors must stay positive"):
        random_affine(x, degrees=0, scale=1.5, translate=0)
    with pytest.raises(ValueError, match="elastic_distort: expected x to be 4-D"):
        elastic_distort(x[0], alpha=1, sigma=2)
    with pytest.raises(ValueError, match="elastic_distort: need sigma > 0"):
        elastic_distort(x, alpha=1, sigma=0)


def test_elastic_smoothing_matches_scipy_gaussian_filter():
    ndimage = pytest.importorskip("scipy.ndimage")
    from scratchnet.data.augment import _gaussian_matrix
    field = np.random.default_rng(0).uniform(-1, 1, (3, 32, 20))
    for sigma in (1.0, 4.0, 9.0):
        ref = ndimage.gaussian_filter(field, sigma=(0, sigma, sigma), mode="reflect", truncate=4.0)
        np.testing.assert_allclose(_gaussian_matrix(32, sigma) @ field @ _gaussian_matrix(20, sigma).T, ref,
                                   atol=1e-12)
