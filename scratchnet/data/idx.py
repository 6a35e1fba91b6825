"""The idx format of MNIST and Fashion-MNIST, read straight from the upstream ``.gz`` files.

An idx file is a 4-byte magic ``00 00 <type> <ndim>``, then ``ndim`` big-endian uint32 sizes, then
the values in C order, big-endian (type 0x08 ubyte, 0x09 byte, 0x0B int16, 0x0C int32, 0x0D float32,
0x0E float64). Legend: N examples, H, W image height and width (28 × 28).
"""
from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

from .registry import dataset_path

__all__ = ["read_idx", "load_mnist", "load_fashion_mnist", "FASHION_MNIST_CLASSES"]

_TYPES = {0x08: "u1", 0x09: "i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}  # type code -> dtype
_SPLITS = {"train": "train", "test": "t10k"}  # split -> upstream file prefix
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")


def read_idx(path) -> np.ndarray:
    """The array stored in an idx file, gzip-compressed or raw (told apart by the gzip magic bytes).

    Returns a writable array in native byte order with the file's shape and type (uint8 for
    MNIST). A wrong magic number, a short header, missing or extra data bytes, or a damaged gzip
    stream raise ValueError naming the file.
    """
    path = Path(path)
    with open(path, "rb") as f:
        compressed = f.read(2) == b"\x1f\x8b"
    try:
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as f:
            return _parse(f, path)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:  # a cut or damaged gzip stream
        raise ValueError(f"read_idx: {path} is not a complete gzip file ({err}); "
                         f"delete it and download it again") from err


def _parse(f, path: Path) -> np.ndarray:
    """Header, sizes, then exactly prod(sizes) values: anything else is an error."""
    magic = f.read(4)
    if len(magic) < 4:
        raise ValueError(f"read_idx: {path} is truncated: {len(magic)} bytes, shorter than the 4-byte magic number")
    if magic[:2] != b"\0\0" or magic[2] not in _TYPES or magic[3] == 0:
        raise ValueError(f"read_idx: {path} is not an idx file: magic bytes {magic.hex(' ')}, expected "
                         f"00 00 <type in {', '.join(f'{t:02x}' for t in _TYPES)}> <ndim ≥ 1>")
    ndim = magic[3]
    sizes = f.read(4 * ndim)
    if len(sizes) < 4 * ndim:
        raise ValueError(f"read_idx: {path} is truncated inside its header ({ndim} sizes expected)")
    shape = struct.unpack(f">{ndim}I", sizes)
    dtype = np.dtype(_TYPES[magic[2]])
    data = np.empty(int(np.prod(shape, dtype=np.int64)) * dtype.itemsize, dtype=np.uint8)  # the raw bytes
    got = _read_into(f, data)
    if got < data.size:
        raise ValueError(f"read_idx: {path} is truncated: {got:,} of {data.size:,} data bytes for shape {shape}")
    if f.read(1):
        raise ValueError(f"read_idx: {path} has bytes after the {data.size:,} data bytes of shape {shape}; "
                         f"not a valid idx file")
    values = data.view(dtype).reshape(shape)  # big-endian view of the bytes
    return values if dtype.itemsize == 1 else values.astype(dtype.newbyteorder("="))


def _read_into(f, buffer) -> int:
    """Fill ``buffer`` from ``f`` (gzip reads may come in pieces); returns the bytes read."""
    view, got = memoryview(buffer), 0
    while got < len(view):  # one read per pass until full or end of file
        n = f.readinto(view[got:])
        if not n:
            break
        got += n
    return got


def load_mnist(split="train", *, root=None, download=True):
    """MNIST digits: ``(images uint8 (N, 28, 28), labels int64 (N,))``, N = 60000 (train) or 10000 (test).

    Reads the upstream idx ``.gz`` files in ``dataset_path("mnist")``, downloading them if missing.
    """
    return _load_idx_pair("mnist", split, root=root, download=download, op="load_mnist")


def load_fashion_mnist(split="train", *, root=None, download=True):
    """Fashion-MNIST: ``(images uint8 (N, 28, 28), labels int64 (N,))``, classes ``FASHION_MNIST_CLASSES``."""
    return _load_idx_pair("fashion-mnist", split, root=root, download=download, op="load_fashion_mnist")


def _load_idx_pair(name, split, *, root, download, op):
    """Images and labels of one split, checked against each other."""
    if split not in _SPLITS:
        raise ValueError(f"{op}: split must be 'train' or 'test', got {split!r}")
    folder = dataset_path(name, root=root, download=download)
    images = read_idx(folder / f"{_SPLITS[split]}-images-idx3-ubyte.gz")  # (N, 28, 28) uint8
    labels = read_idx(folder / f"{_SPLITS[split]}-labels-idx1-ubyte.gz")  # (N,) uint8
    if images.dtype != np.uint8 or images.ndim != 3 or labels.ndim != 1 or len(labels) != len(images):
        raise ValueError(f"{op}: expected uint8 images (N, H, W) and labels (N,) in {folder}, got "
                         f"{images.dtype} {images.shape} and {labels.dtype} {labels.shape}")
    return images, labels.astype(np.int64)
