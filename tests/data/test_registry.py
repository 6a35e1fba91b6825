"""The dataset registry, the data root, and the real datasets' checksums and readers."""
import re

import numpy as np
import pytest

from scratchnet.data import (
    data_root,
    dataset_info,
    list_datasets,
    load_optdigits,
    load_registry,
    load_tinyshakespeare,
    registry,
    verify_dataset,
)

NAMES = ["bccd", "fashion-mnist", "fsdd", "mnist", "tinyshakespeare", "uci-optdigits"]


def test_registry_entries_are_complete():
    assert list_datasets() == NAMES
    for name, entry in load_registry().items():
        assert entry["description"] and entry["license"], name
        assert sum(k in entry for k in ("mirrors", "archive", "manual")) == 1, name
        for rel, info in entry["files"].items():
            assert re.fullmatch(r"[0-9a-f]{64}", info["sha256"]), (name, rel)
            assert isinstance(info["size"], int) and info["size"] > 0, (name, rel)
            assert not rel.startswith("/") and ".." not in rel.split("/"), (name, rel)
        for url in entry.get("mirrors", []) + entry.get("archive", {}).get("urls", []):
            assert url.startswith(("https://", "http://")), (name, url)
    assert len(dataset_info("fsdd")["files"]) == 3001
    assert dataset_info("mnist")["files"]["train-images-idx3-ubyte.gz"]["size"] == 9912422


def test_unknown_dataset():
    with pytest.raises(ValueError, match="unknown dataset 'mnsit'; registered: bccd, "):
        dataset_info("mnsit")


def test_data_root_order(monkeypatch, tmp_path):
    monkeypatch.setenv("SCRATCHNET_DATA", str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.delenv("SCRATCHNET_DATA")
    assert data_root() == registry._REPO_DATASETS  # running from the repository
    monkeypatch.setattr(registry, "_REPO_DATASETS", tmp_path / "not-a-checkout")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert data_root() == tmp_path / ".cache" / "scratchnet"


@pytest.mark.parametrize("name", NAMES)
def test_real_files_match_the_registry(dataset_dir, name):
    assert verify_dataset(name, root=dataset_dir(name).parent) == ([], [])


@pytest.mark.parametrize("split, n, counts", [
    ("train", 3823, [376, 389, 380, 389, 387, 376, 377, 387, 380, 382]),
    ("test", 1797, [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]),
])
def test_optdigits(dataset_dir, split, n, counts):
    X, y = load_optdigits(split, root=dataset_dir("uci-optdigits").parent, download=False)
    assert X.shape == (n, 8, 8) and X.dtype == np.uint8 and X.max() == 16
    assert y.shape == (n,) and y.dtype == np.int64
    assert np.bincount(y).tolist() == counts


def test_tinyshakespeare(dataset_dir):
    text = load_tinyshakespeare(root=dataset_dir("tinyshakespeare").parent, download=False)
    assert len(text) == 1115394 and len(set(text)) == 65
    assert text.startswith("First Citizen:")
