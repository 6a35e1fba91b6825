"""Shared fixtures: the ``xp`` array module (NumPy, plus CuPy when a GPU is usable), a seeded rng,
and the data root for tests that need real datasets."""
import os
import pathlib

import numpy as np
import pytest

from scratchnet.backend import gpu_available

_MODULES = ["numpy"] + (["cupy"] if gpu_available() else [])


@pytest.fixture(params=_MODULES)
def xp(request):
    """The array module under test: every op test runs on NumPy, and on CuPy when a GPU is present."""
    if request.param == "cupy":
        import cupy
        return cupy
    return np


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture
def dataset_dir():
    """``dataset_dir("mnist")``: the real dataset's folder under $SCRATCHNET_DATA, or skip with the reason."""
    def get(name: str) -> pathlib.Path:
        root = os.environ.get("SCRATCHNET_DATA")
        if not root or not (pathlib.Path(root) / name).exists():
            pytest.skip(f"real dataset '{name}' not available (set SCRATCHNET_DATA to a folder holding {name}/)")
        return pathlib.Path(root) / name
    return get
