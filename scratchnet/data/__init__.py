"""Datasets in their upstream formats, the registry that fetches and checks them, and batching.

    from scratchnet.data import load_mnist, batches
    X, y = load_mnist("train")                      # uint8 (60000, 28, 28), int64 (60000,)
    for xb, yb in batches(X, y, batch_size=64, rng=rng): ...

Files live under ``data_root()/<name>/`` ($SCRATCHNET_DATA, else the repository's datasets/, else
~/.cache/scratchnet); ``dataset_path(name)`` checks them by sha256 and downloads what is missing.
"""
from .audio import (  # noqa: F401
    DIGIT_VOCAB,
    CharVocab,
    ConnectedUtterance,
    Utterance,
    connected_digits,
    load_fsdd,
    log_mel,
    mfcc,
    normalize_features,
    pad_batch,
)
from .batching import Batches, batches, one_hot, train_val_split  # noqa: F401
from .bccd import CLASSES as BCCD_CLASSES  # noqa: F401
from .bccd import Detections, load_bccd, parse_voc_xml  # noqa: F401
from .download import ChecksumError, DownloadError, download, sha256_file  # noqa: F401
from .idx import FASHION_MNIST_CLASSES, load_fashion_mnist, load_mnist, read_idx  # noqa: F401
from .optdigits import load_optdigits  # noqa: F401
from .registry import cache_root, data_root, dataset_info, dataset_path, list_datasets, load_registry, verify_dataset  # noqa: F401
from .scenes import Scenes, digit_scenes  # noqa: F401
from .tinyshakespeare import load_tinyshakespeare, parse_speeches  # noqa: F401
