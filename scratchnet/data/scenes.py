"""Digit scenes: MNIST digits scattered on a blank canvas, with boxes, labels and ink masks — a
small, exactly-labelled detection and instance-segmentation set that trains in minutes on a CPU.

    scenes = digit_scenes(2000, "train", canvas=64)
    scenes.images            # float32 (n, 1, 64, 64) in [0, 1]
    scenes.boxes[i]          # float32 (k_i, 4) (x1, y1, x2, y2), tight around digit i's ink
    scenes.labels[i]         # int64 (k_i,) the digits 0-9
    scenes.masks[i]          # bool (k_i, 64, 64) each digit's ink

Legend: n scenes, k_i digits in scene i, S canvas size (S × S). Splits share no digit image:
"train" draws from a fixed seeded subset of 55,000 MNIST training images, "val" from the other
5,000, "test" from the 10,000 test images. See chapters/27-rcnn.md#digit-scenes and
chapters/29-mask-rcnn.md#digit-scenes.

The scene rule, per scene: k uniform in [min_digits, max_digits]; each digit is an MNIST image
rescaled (bilinear) by a factor uniform in ``scale``, placed uniformly at random with its ink
inside the canvas; a placement whose box has IoU > ``max_iou`` with any earlier box of the scene is
redrawn, up to 50 times, after which that digit is left out (so a scene may hold fewer than k
digits, never fewer than one). Digits are composited with a pixelwise maximum. A digit's ink is
its pixels ≥ ``INK`` (after rescaling, intensities in [0, 1]); its box is the tight box of its ink
on the pixel-edge grid (x2 = last ink column + 1). Overlapping masks may share pixels.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .idx import load_mnist

__all__ = ["digit_scenes", "Scenes", "INK", "SPLIT_SEED"]

INK = 0.3  # intensity from which a pixel counts as ink (mask, box)
SPLIT_SEED = 20240521  # fixes the 55,000 / 5,000 split of MNIST's training images
_TRAIN_SIZE = 55_000
_TRIES = 50  # placements tried per digit before it is left out


class Scenes(NamedTuple):
    """Images (n, 1, S, S) float32, and per scene: boxes (k, 4) float32, labels (k,) int64, masks (k, S, S) bool."""
    images: np.ndarray
    boxes: list
    labels: list
    masks: list


def _pool(split, root):
    """The MNIST images (m, 28, 28) float32 in [0, 1] and labels (m,) int64 of a split."""
    if split not in ("train", "val", "test"):
        raise ValueError(f"digit_scenes: split must be 'train', 'val' or 'test', got {split!r}")
    images, labels = load_mnist("test" if split == "test" else "train", root=root)
    if split != "test":
        order = np.random.default_rng(SPLIT_SEED).permutation(len(images))  # (60000,) the fixed split
        idx = np.sort(order[:_TRAIN_SIZE] if split == "train" else order[_TRAIN_SIZE:])
        images, labels = images[idx], labels[idx]
    return images.astype(np.float32) / 255.0, labels


def _resize(img, size):
    """Bilinear resize of a (h, w) image to (size, size), half-pixel centres, edges clamped."""
    h, w = img.shape
    ys = np.clip((np.arange(size) + 0.5) * h / size - 0.5, 0, h - 1)  # (size,) source rows
    xs = np.clip((np.arange(size) + 0.5) * w / size - 0.5, 0, w - 1)  # (size,) source columns
    y0, x0 = np.floor(ys).astype(int), np.floor(xs).astype(int)
    y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    top = img[y0][:, x0] * (1 - fx) + img[y0][:, x1] * fx  # (size, size)
    bottom = img[y1][:, x0] * (1 - fx) + img[y1][:, x1] * fx
    return (top * (1 - fy) + bottom * fy).astype(np.float32)


def _ink_patch(img, factor):
    """The rescaled digit cropped to its ink: (patch (h, w) float32, ink (h, w) bool)."""
    patch = _resize(img, max(8, int(round(28 * factor))))
    ink = patch >= INK
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if rows.size == 0:  # a digit with no ink at this threshold (never seen in MNIST): keep it whole
        return patch, np.ones_like(ink)
    crop = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    return patch[crop], ink[crop]


def _iou_one(box, others):
    """IoU of one box (4,) with boxes (m, 4)."""
    if not others:
        return np.zeros(0)
    o = np.asarray(others)
    w = np.clip(np.minimum(box[2], o[:, 2]) - np.maximum(box[0], o[:, 0]), 0, None)
    h = np.clip(np.minimum(box[3], o[:, 3]) - np.maximum(box[1], o[:, 1]), 0, None)
    inter = w * h
    area = (box[2] - box[0]) * (box[3] - box[1])
    return inter / (area + (o[:, 2] - o[:, 0]) * (o[:, 3] - o[:, 1]) - inter)


def _scene(rng, pool, pool_labels, canvas, k, max_iou, scale):
    """One scene: (image (S, S), boxes (k', 4), labels (k',), masks (k', S, S)), k' ≤ k digits."""
    image = np.zeros((canvas, canvas), dtype=np.float32)
    boxes, labels, masks = [], [], []
    for _ in range(k):  # one digit at a time
        j = int(rng.integers(len(pool)))
        patch, ink = _ink_patch(pool[j], rng.uniform(*scale))
        h, w = min(patch.shape[0], canvas), min(patch.shape[1], canvas)
        patch, ink = patch[:h, :w], ink[:h, :w]
        for _ in range(_TRIES):  # draw placements until one overlaps little enough
            y, x = int(rng.integers(canvas - h + 1)), int(rng.integers(canvas - w + 1))
            box = np.array([x, y, x + w, y + h], dtype=np.float64)
            if not boxes or _iou_one(box, boxes).max() <= max_iou:
                break
        else:
            continue  # no room: this digit is left out
        np.maximum(image[y:y + h, x:x + w], patch, out=image[y:y + h, x:x + w])  # composite with max
        mask = np.zeros((canvas, canvas), dtype=bool)
        mask[y:y + h, x:x + w] = ink
        rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
        box = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float64)  # tight on the ink
        boxes.append(box), labels.append(pool_labels[j]), masks.append(mask)
    return (image, np.asarray(boxes, dtype=np.float32).reshape(-1, 4), np.asarray(labels, dtype=np.int64),
            np.stack(masks))


def digit_scenes(n, split, *, canvas=64, min_digits=1, max_digits=5, max_iou=0.3, scale=(0.7, 1.4),
                 seed=0, root=None) -> Scenes:
    """``n`` digit scenes of one split (see the module docstring for the rule); deterministic for
    (split, seed). Different splits draw from disjoint MNIST images."""
    if n < 0 or not 1 <= min_digits <= max_digits:
        raise ValueError(f"digit_scenes: need n ≥ 0 and 1 ≤ min_digits ≤ max_digits, got n={n}, "
                         f"min_digits={min_digits}, max_digits={max_digits}")
    if canvas < 8 or not 0 < scale[0] <= scale[1]:
        raise ValueError(f"digit_scenes: need canvas ≥ 8 and 0 < scale[0] ≤ scale[1], got canvas={canvas}, "
                         f"scale={scale}")
    pool, pool_labels = _pool(split, root)
    rng = np.random.default_rng([seed, ("train", "val", "test").index(split)])
    images = np.zeros((n, 1, canvas, canvas), dtype=np.float32)  # (n, 1, S, S)
    boxes, labels, masks = [], [], []
    for i in range(n):  # one scene at a time
        k = int(rng.integers(min_digits, max_digits + 1))
        images[i, 0], b, lab, m = _scene(rng, pool, pool_labels, canvas, k, max_iou, scale)
        boxes.append(b), labels.append(lab), masks.append(m)
    return Scenes(images, boxes, labels, masks)
