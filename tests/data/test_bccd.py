"""BCCD: VOC xml parsing on hand-written files, the loader on a tiny fake dataset, and the real splits
(205 / 87 / 72 images) when the dataset is present."""
import numpy as np
import pytest

from scratchnet.data import BCCD_CLASSES, load_bccd, parse_voc_xml
from scratchnet.data import bccd as bccd_module


def _obj(name, difficult, box):
    flag = "" if difficult is None else f"<difficult>{difficult}</difficult>"
    coords = "".join(f"<{t}>{v}</{t}>" for t, v in zip(("xmin", "ymin", "xmax", "ymax"), box))
    return f"<object><name>{name}</name>{flag}<bndbox>{coords}</bndbox></object>"


XML = ("<annotation><size><width>40</width><height>30</height><depth>3</depth></size>"
       + _obj(" WBC ", 0, (5, 3, 20, 12)) + _obj("RBC", 1, (30, 20, 45, 31)) + _obj("RBC", 0, (10, 10, 10, 10))
       + _obj("Platelets", None, (1, 1, 4, 4)) + "</annotation>")


def test_parse_voc_xml(tmp_path):
    path = tmp_path / "a.xml"
    path.write_text(XML)
    (w, h), boxes, labels, difficult = parse_voc_xml(path)
    assert (w, h) == (40, 30)
    # 1-based inclusive pixels → edges; the box past the image is clipped; the zero-area one is dropped
    np.testing.assert_array_equal(boxes, [[4, 2, 20, 12], [29, 19, 40, 30], [0, 0, 4, 4]])
    assert labels.tolist() == [1, 0, 2] and difficult.tolist() == [False, True, False]
    assert boxes.dtype == np.float32 and labels.dtype == np.int64
    path.write_text(XML.replace("Platelets", "Neutrophil"))
    with pytest.raises(ValueError, match="class 'Neutrophil'"):
        parse_voc_xml(path)


def _fake_dataset(tmp_path, ids, with_image=True):
    Image = pytest.importorskip("PIL.Image")  # Pillow decodes the JPEGs (it comes with matplotlib)
    base = tmp_path / "bccd" / "BCCD"
    for sub in ("Annotations", "JPEGImages", "ImageSets/Main"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    (base / "ImageSets/Main/train.txt").write_text("\n".join(ids) + "\n")
    for i in ids:
        (base / "Annotations" / f"{i}.xml").write_text(XML)
        if with_image:
            Image.fromarray(np.full((30, 40, 3), 200, np.uint8)).save(base / "JPEGImages" / f"{i}.jpg")
    return base.parent


def test_loader_on_a_fake_dataset(tmp_path, monkeypatch):
    folder = _fake_dataset(tmp_path, ["img0", "img1"])
    monkeypatch.setattr(bccd_module, "dataset_path", lambda name, **kw: folder)
    data = load_bccd("train", size=(15, 80))
    assert data.images.shape == (2, 3, 15, 80) and data.images.dtype == np.float32
    np.testing.assert_allclose(data.images, 200 / 255, atol=2 / 255)
    np.testing.assert_allclose(data.boxes[0][0], [8, 1, 40, 6])  # x scaled by 2, y by ½
    assert data.ids == ["img0", "img1"] and data.labels[1].tolist() == [1, 0, 2]


def test_missing_files_are_named(tmp_path, monkeypatch):
    folder = _fake_dataset(tmp_path, ["img0"], with_image=False)
    monkeypatch.setattr(bccd_module, "dataset_path", lambda name, **kw: folder)
    with pytest.raises(FileNotFoundError, match="img0"):
        load_bccd("train")
    with pytest.raises(ValueError, match="load_bccd: split must be one of"):
        load_bccd("dev")


@pytest.mark.parametrize("split,n", [("train", 205), ("val", 87), ("test", 72)])
def test_real_splits(dataset_dir, split, n):
    root = dataset_dir("bccd").parent
    data = load_bccd(split, size=(96, 128), root=root, download=False)
    assert data.images.shape == (n, 3, 96, 128) and len(data.boxes) == len(data.ids) == n
    assert 0.0 <= data.images.min() and data.images.max() <= 1.0 and data.images.std() > 0.05
    for b, lab in zip(data.boxes, data.labels):
        assert len(b) >= 1 and (b[:, 2] > b[:, 0]).all() and (b[:, 3] > b[:, 1]).all()
        assert b.min() >= 0 and (b[:, [0, 2]] <= 128).all() and (b[:, [1, 3]] <= 96).all()
        assert set(lab.tolist()) <= set(range(len(BCCD_CLASSES)))


def test_real_object_counts(dataset_dir):
    root = dataset_dir("bccd").parent
    counts = np.zeros(3, int)
    for split in ("trainval", "test"):
        data = load_bccd(split, size=(48, 64), root=root, download=False)
        counts += np.bincount(np.concatenate(data.labels), minlength=3)
    # 4888 annotated objects, less the two zero-area RBC boxes
    assert counts.tolist() == [4155 - 2, 372, 361]
