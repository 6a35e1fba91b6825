"""batches, train_val_split and one_hot."""
import numpy as np
import pytest

from scratchnet.data import batches, one_hot, train_val_split


def _data(n=23):
    X = np.arange(n * 2, dtype=np.float32).reshape(n, 2)  # row i is [2i, 2i+1]
    y = np.arange(n)
    return X, y


def test_every_sample_once_per_epoch():
    X, y = _data()
    parts = list(batches(X, y, batch_size=5, rng=np.random.default_rng(0)))
    assert [len(yb) for _, yb in parts] == [5, 5, 5, 5, 3]
    seen = np.concatenate([yb for _, yb in parts])
    assert sorted(seen.tolist()) == list(range(23)) and seen.tolist() != list(range(23))
    for xb, yb in parts:  # rows stay aligned across arrays
        np.testing.assert_array_equal(xb[:, 0], 2 * yb)


def test_shuffle_is_deterministic_with_rng():
    X, y = _data()
    a = [yb.tolist() for _, yb in batches(X, y, batch_size=4, rng=np.random.default_rng(7))]
    b = [yb.tolist() for _, yb in batches(X, y, batch_size=4, rng=np.random.default_rng(7))]
    assert a == b
    rng = np.random.default_rng(7)
    first = [yb.tolist() for _, yb in batches(X, y, batch_size=4, rng=rng)]
    second = [yb.tolist() for _, yb in batches(X, y, batch_size=4, rng=rng)]
    assert first == a and second != first  # one generator: a new order each epoch


def test_no_shuffle_gives_views_in_order():
    X, y = _data(10)
    parts = list(batches(X, y, batch_size=4, shuffle=False))
    assert [yb.tolist() for _, yb in parts] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert np.shares_memory(parts[0][0], X)


@pytest.mark.parametrize("shuffle", [True, False])
def test_drop_last(shuffle):
    X, y = _data(23)
    it = batches(X, y, batch_size=5, shuffle=shuffle, drop_last=True, rng=1)
    assert len(it) == 4
    parts = list(it)
    assert [len(yb) for _, yb in parts] == [5, 5, 5, 5]
    assert len(set(np.concatenate([yb for _, yb in parts]).tolist())) == 20


def test_len_and_single_array():
    X, _ = _data(10)
    it = batches(X, batch_size=3)
    assert len(it) == 4
    assert all(isinstance(b, tuple) and len(b) == 1 for b in it)


def test_errors():
    X, y = _data(10)
    with pytest.raises(ValueError, match=r"same length along axis 0, got shapes \(10, 2\), \(9,\)"):
        batches(X, y[:9], batch_size=2)
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        batches(X, batch_size=0)
    with pytest.raises(TypeError, match="argument 1 must be an array"):
        batches(X, [1, 2], batch_size=2)
    with pytest.raises(ValueError, match="at least one array"):
        batches(batch_size=2)


def test_train_val_split():
    X, y = _data(50)
    (X_tr, y_tr), (X_va, y_va) = train_val_split(X, y, val_fraction=0.2, rng=np.random.default_rng(3))
    assert len(y_va) == 10 and len(y_tr) == 40
    assert sorted(np.concatenate([y_tr, y_va]).tolist()) == list(range(50))
    np.testing.assert_array_equal(X_tr[:, 0], 2 * y_tr)
    np.testing.assert_array_equal(X_va[:, 0], 2 * y_va)
    again = train_val_split(X, y, val_fraction=0.2, rng=np.random.default_rng(3))
    np.testing.assert_array_equal(again[1][1], y_va)


def test_train_val_split_errors():
    X, y = _data(10)
    with pytest.raises(ValueError, match="val_fraction must be in"):
        train_val_split(X, y, val_fraction=1.0)
    with pytest.raises(ValueError, match="same length"):
        train_val_split(X, y[:3])
    (_,), (va,) = train_val_split(y, val_fraction=0.01, rng=0)  # rounds to 0: still one validation row
    assert len(va) == 1


def test_one_hot(xp):
    labels = xp.asarray([[2, 0], [1, 2]])
    out = one_hot(labels, 3)
    assert out.shape == (2, 2, 3) and out.dtype == np.float32
    np.testing.assert_array_equal(xp.asnumpy(out) if xp is not np else out,
                                  [[[0, 0, 1], [1, 0, 0]], [[0, 1, 0], [0, 0, 1]]])
    assert one_hot(xp.asarray([1]), 2, dtype=np.float64).dtype == np.float64


def test_one_hot_errors():
    with pytest.raises(ValueError, match=r"labels must lie in 0..2, got values from 0 to 3"):
        one_hot(np.array([0, 3]), 3)
    with pytest.raises(TypeError, match="integer array"):
        one_hot(np.array([0.0, 1.0]), 3)
