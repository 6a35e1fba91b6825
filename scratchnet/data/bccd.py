"""BCCD, the blood-cell detection set: 364 microscope images (640 × 480 JPEG) with PASCAL VOC
boxes for red cells (RBC), white cells (WBC) and platelets, read from the upstream files.

    data = load_bccd("train", size=(192, 256))
    data.images            # float32 (n, 3, 192, 256) in [0, 1]
    data.boxes[i]          # float32 (k_i, 4) (x1, y1, x2, y2) in pixels of the resized image
    data.labels[i]         # int64 (k_i,) indices into CLASSES
    data.difficult[i]      # bool (k_i,) the VOC "difficult" flag
    data.ids[i]            # "BloodImage_00000"

Legend: n images, k_i boxes of image i, H, W the output size. The splits are the dataset's own
``BCCD/ImageSets/Main/{train,val,test}.txt`` (205 / 87 / 72 ids); an id listed there without both
its xml and its jpg raises FileNotFoundError naming it (every listed id has both upstream).
Boxes: VOC's 1-based inclusive pixel indices become pixel edges (x1 = xmin − 1, y1 = ymin − 1,
x2 = xmax, y2 = ymax), clipped to the image, then scaled to ``size``. An annotation with
xmax ≤ xmin or ymax ≤ ymin (zero area as written; two RBCs upstream) is dropped. Images are
decoded and resized (bilinear) with Pillow. Nothing is cached on disk.
See chapters/27-rcnn.md#bccd.
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .registry import dataset_path

__all__ = ["CLASSES", "Detections", "load_bccd", "parse_voc_xml"]

CLASSES = ("RBC", "WBC", "Platelets")
_SPLITS = ("train", "val", "test", "trainval")


class Detections(NamedTuple):
    """Images (n, 3, H, W) float32 and per image: boxes (k, 4) float32, labels (k,) int64,
    difficult (k,) bool; ids the image names."""
    images: np.ndarray
    boxes: list
    labels: list
    difficult: list
    ids: list


def parse_voc_xml(path, classes=CLASSES):
    """One VOC annotation → (image (width, height), boxes (k, 4) float32 pixel edges clipped to the
    image, labels (k,) int64, difficult (k,) bool). Zero-area annotations are dropped; an unknown
    class name raises ValueError naming the file."""
    root = ET.parse(path).getroot()
    size = root.find("size")
    width, height = int(size.findtext("width")), int(size.findtext("height"))
    boxes, labels, difficult = [], [], []
    for obj in root.iter("object"):  # one annotated object at a time
        name = (obj.findtext("name") or "").strip()
        if name not in classes:
            raise ValueError(f"parse_voc_xml: {path} has an object of class {name!r}, expected one of {classes}")
        bb = obj.find("bndbox")
        xmin, ymin, xmax, ymax = (float(bb.findtext(t)) for t in ("xmin", "ymin", "xmax", "ymax"))
        if xmax <= xmin or ymax <= ymin:
            continue  # zero area as annotated: not an object one can detect
        box = [min(max(xmin - 1, 0), width), min(max(ymin - 1, 0), height), min(xmax, width), min(ymax, height)]
        boxes.append(box)
        labels.append(classes.index(name))
        difficult.append((obj.findtext("difficult") or "0").strip() == "1")
    return ((width, height), np.asarray(boxes, dtype=np.float32).reshape(-1, 4),
            np.asarray(labels, dtype=np.int64), np.asarray(difficult, dtype=bool))


def _image(path, size):
    """A JPEG as float32 (3, H, W) in [0, 1], resized bilinearly to ``size`` = (H, W)."""
    try:
        from PIL import Image
    except ImportError as err:  # pragma: no cover - Pillow comes with matplotlib
        raise ImportError('load_bccd: decoding JPEG needs Pillow (pip install pillow, or "scratchnet[viz]")') from err
    with Image.open(path) as im:
        im = im.convert("RGB")
        if im.size != (size[1], size[0]):
            im = im.resize((size[1], size[0]), Image.BILINEAR)
        return np.asarray(im, dtype=np.float32).transpose(2, 0, 1) / 255.0  # (3, H, W)


def load_bccd(split, *, size=(192, 256), root=None, download=True) -> Detections:
    """The images and boxes of one split ("train", "val", "test", or "trainval"), resized to
    ``size`` = (H, W) with the boxes scaled to match (see the module docstring)."""
    if split not in _SPLITS:
        raise ValueError(f"load_bccd: split must be one of {_SPLITS}, got {split!r}")
    H, W = size
    base = Path(dataset_path("bccd", root=root, download=download)) / "BCCD"
    ids = [line.strip() for line in (base / "ImageSets" / "Main" / f"{split}.txt").read_text().splitlines()
           if line.strip()]
    missing = [i for i in ids if not (base / "Annotations" / f"{i}.xml").is_file()
               or not (base / "JPEGImages" / f"{i}.jpg").is_file()]
    if missing:
        raise FileNotFoundError(f"load_bccd: split {split!r} lists ids without an annotation or image in "
                                f"{base}: {', '.join(missing[:10])}")
    images = np.empty((len(ids), 3, H, W), dtype=np.float32)  # (n, 3, H, W)
    boxes, labels, difficult = [], [], []
    for n, i in enumerate(ids):  # one image at a time
        (width, height), b, lab, dif = parse_voc_xml(base / "Annotations" / f"{i}.xml")
        images[n] = _image(base / "JPEGImages" / f"{i}.jpg", size)
        scale = np.array([W / width, H / height, W / width, H / height], dtype=np.float32)
        boxes.append(b * scale), labels.append(lab), difficult.append(dif)
    return Detections(images, boxes, labels, difficult, ids)
