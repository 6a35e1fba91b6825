"""read_idx on small generated idx files (gzip and raw, several types, damaged files) and the
MNIST / Fashion-MNIST loaders on the real files."""
import gzip
import struct

import numpy as np
import pytest

from scratchnet.data import load_fashion_mnist, load_mnist, read_idx

_CODES = {np.uint8: 0x08, np.int8: 0x09, np.int16: 0x0B, np.int32: 0x0C, np.float32: 0x0D, np.float64: 0x0E}


def _idx_bytes(a):
    """The idx encoding of ``a``, written here from the format description (independent of the reader)."""
    header = bytes([0, 0, _CODES[a.dtype.type], a.ndim]) + struct.pack(f">{a.ndim}I", *a.shape)
    return header + a.astype(a.dtype.newbyteorder(">")).tobytes()


def _write(path, data, compress):
    path.write_bytes(gzip.compress(data) if compress else data)
    return path


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("shape", [(7,), (3, 4, 5)])
def test_ubyte_round_trip(tmp_path, rng, compress, shape):
    a = rng.integers(0, 256, size=shape).astype(np.uint8)
    out = read_idx(_write(tmp_path / "a.idx", _idx_bytes(a), compress))
    assert out.dtype == np.uint8 and out.shape == shape
    np.testing.assert_array_equal(out, a)
    out[...] = 0  # the result is an ordinary writable array


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.float32, np.float64])
def test_wider_types_come_back_in_native_byte_order(tmp_path, rng, dtype):
    a = (rng.standard_normal((4, 3)) * 100).astype(dtype)
    out = read_idx(_write(tmp_path / "a.idx.gz", _idx_bytes(a), True))
    assert out.dtype == np.dtype(dtype) and out.dtype.isnative
    np.testing.assert_array_equal(out, a)


@pytest.mark.parametrize("compress", [False, True])
def test_corrupt_magic(tmp_path, compress):
    data = bytearray(_idx_bytes(np.zeros(4, np.uint8)))
    data[0] = 0x12
    with pytest.raises(ValueError, match="not an idx file"):
        read_idx(_write(tmp_path / "a", bytes(data), compress))


def test_unknown_type_code(tmp_path):
    data = bytearray(_idx_bytes(np.zeros(4, np.uint8)))
    data[2] = 0x07
    with pytest.raises(ValueError, match="magic bytes 00 00 07 01"):
        read_idx(_write(tmp_path / "a", bytes(data), False))


@pytest.mark.parametrize("compress", [False, True])
def test_truncated_data(tmp_path, compress):
    data = _idx_bytes(np.ones((2, 3, 3), np.uint8))[:-5]
    with pytest.raises(ValueError, match="truncated: 13 of 18 data bytes"):
        read_idx(_write(tmp_path / "a", data, compress))


@pytest.mark.parametrize("cut", [2, 9])  # inside the magic, inside the sizes
def test_truncated_header(tmp_path, cut):
    data = _idx_bytes(np.ones((2, 3, 3), np.uint8))[:cut]
    with pytest.raises(ValueError, match="truncated"):
        read_idx(_write(tmp_path / "a", data, False))


def test_trailing_bytes(tmp_path):
    data = _idx_bytes(np.ones(4, np.uint8)) + b"\0"
    with pytest.raises(ValueError, match="bytes after"):
        read_idx(_write(tmp_path / "a", data, True))


def test_cut_gzip_stream(tmp_path):
    data = gzip.compress(_idx_bytes(np.arange(200, dtype=np.uint8)))
    (tmp_path / "a.gz").write_bytes(data[:-12])  # loses the trailer and part of the stream
    with pytest.raises(ValueError, match="not a complete gzip file"):
        read_idx(tmp_path / "a.gz")


# -- real files ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("split, n, counts", [
    ("train", 60000, [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]),
    ("test", 10000, [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]),
])
def test_mnist(dataset_dir, split, n, counts):
    root = dataset_dir("mnist").parent
    X, y = load_mnist(split, root=root, download=False)
    assert X.shape == (n, 28, 28) and X.dtype == np.uint8
    assert y.shape == (n,) and y.dtype == np.int64
    assert np.bincount(y, minlength=10).tolist() == counts
    assert X.min() == 0 and X.max() == 255
    if split == "train":
        assert y[:5].tolist() == [5, 0, 4, 1, 9]


def test_fashion_mnist(dataset_dir):
    X, y = load_fashion_mnist("test", root=dataset_dir("fashion-mnist").parent, download=False)
    assert X.shape == (10000, 28, 28) and X.dtype == np.uint8 and y.dtype == np.int64
    assert np.bincount(y).tolist() == [1000] * 10


def test_bad_split():
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        load_mnist("valid")
