"""Digit scenes from MNIST: shapes, determinism, tight boxes on the ink masks, the overlap rule, and
splits that share no MNIST image. Skipped when MNIST is absent."""
import numpy as np
import pytest

from scratchnet.boxes import box_iou
from scratchnet.data import digit_scenes
from scratchnet.data.scenes import INK, _pool, _resize


@pytest.fixture(scope="module")
def mnist_root():
    import os
    import pathlib
    root = os.environ.get("SCRATCHNET_DATA")
    if not root or not (pathlib.Path(root) / "mnist").exists():
        pytest.skip("real dataset 'mnist' not available (set SCRATCHNET_DATA to a folder holding mnist/)")
    return root


@pytest.fixture(scope="module")
def scenes(mnist_root, tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:  # the record of checked files goes to a private cache
        mp.setenv("SCRATCHNET_CACHE", str(tmp_path_factory.mktemp("cache")))
        return digit_scenes(60, "train", canvas=48, max_digits=4, seed=3, root=mnist_root)


def test_shapes_and_types(scenes):
    assert scenes.images.shape == (60, 1, 48, 48) and scenes.images.dtype == np.float32
    assert 0.0 <= scenes.images.min() and scenes.images.max() <= 1.0
    for b, lab, m in zip(scenes.boxes, scenes.labels, scenes.masks):
        k = len(lab)
        assert 1 <= k <= 4 and b.shape == (k, 4) and b.dtype == np.float32
        assert lab.dtype == np.int64 and ((0 <= lab) & (lab <= 9)).all()
        assert m.shape == (k, 48, 48) and m.dtype == bool


def test_boxes_are_tight_around_the_ink_and_overlap_little(scenes):
    for img, b, m in zip(scenes.images[:, 0], scenes.boxes, scenes.masks):
        for box, mask in zip(b, m):
            rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
            assert box.tolist() == [cols[0], rows[0], cols[-1] + 1, rows[-1] + 1]
            assert (img[mask] >= INK).all()  # composited with max: the ink stays at least as bright
        iou = box_iou(b.astype(np.float64), b.astype(np.float64))
        assert (iou[~np.eye(len(b), dtype=bool)] <= 0.3 + 1e-9).all()
        assert (img[~m.any(axis=0)] < INK).all()  # no ink outside the masks


def test_deterministic_per_seed_and_split(mnist_root, scenes):
    again = digit_scenes(60, "train", canvas=48, max_digits=4, seed=3, root=mnist_root)
    np.testing.assert_array_equal(again.images, scenes.images)
    other = digit_scenes(5, "train", canvas=48, max_digits=4, seed=4, root=mnist_root)
    assert not np.array_equal(other.images, scenes.images[:5])
    val = digit_scenes(3, "val", canvas=48, seed=3, root=mnist_root)
    assert not np.array_equal(val.images, scenes.images[:3])


def test_splits_share_no_image(mnist_root):
    train, _ = _pool("train", mnist_root)
    val, _ = _pool("val", mnist_root)
    assert len(train) == 55_000 and len(val) == 5_000
    assert len(_pool("test", mnist_root)[0]) == 10_000
    key = lambda a: {row.tobytes() for row in a.reshape(len(a), -1)}  # noqa: E731
    assert len(key(train[::50]) & key(val)) == 0


def test_resize_keeps_a_constant_image_and_the_range():
    np.testing.assert_allclose(_resize(np.full((28, 28), 0.5, np.float32), 37), 0.5)
    img = np.random.default_rng(0).random((28, 28)).astype(np.float32)
    out = _resize(img, 20)
    assert out.shape == (20, 20) and out.min() >= img.min() and out.max() <= img.max()


def test_errors(mnist_root):
    with pytest.raises(ValueError, match="digit_scenes: split must be"):
        digit_scenes(2, "dev", root=mnist_root)
    with pytest.raises(ValueError, match="min_digits"):
        digit_scenes(2, "train", min_digits=3, max_digits=2, root=mnist_root)
