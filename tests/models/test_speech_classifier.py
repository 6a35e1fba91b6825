"""Spoken-digit classifier: gradcheck end to end (last state and mean pooling, bidirectional),
overfitting one batch, length bucketing, and (with the real data) a short FSDD run."""
import numpy as np
import pytest

from scratchnet.gradcheck import assert_module_gradients
from scratchnet.models.speech_classifier import SpeechClassifier, bucketed_batches
from scratchnet.nn import CrossEntropyLoss
from scratchnet.optim import Adam


@pytest.mark.parametrize("cell", ["lstm", "gru"])
@pytest.mark.parametrize("pool,bidi,layers", [("last", False, 1), ("last", True, 2), ("mean", True, 1)])
def test_classifier_gradcheck(rng, cell, pool, bidi, layers):
    m = SpeechClassifier(3, 2, 4, cell=cell, pool=pool, bidirectional=bidi, num_layers=layers,
                         rng=0).astype(np.float64)
    x = rng.standard_normal((3, 5, 3))
    assert_module_gradients(m, [x], forward_kwargs={"lengths": np.array([5, 2, 4])})


@pytest.mark.parametrize("cell,bidi", [("lstm", False), ("gru", True)])
def test_classifier_overfits_one_batch(rng, cell, bidi):
    x = rng.standard_normal((16, 12, 5)).astype(np.float32)
    lengths = rng.integers(4, 13, size=16)
    y = rng.integers(0, 10, size=16)
    m = SpeechClassifier(5, 32, 10, cell=cell, bidirectional=bidi, pool="mean", rng=0)
    crit, opt = CrossEntropyLoss(), Adam(m.parameters(), lr=1e-2)
    for _ in range(120):
        loss = crit(m((x, lengths)), y)
        opt.zero_grad()
        m.backward(crit.backward())
        opt.step()
    assert float(loss) < 0.05


def test_padding_does_not_change_logits(rng):
    m = SpeechClassifier(3, 4, 5, cell="lstm", bidirectional=True, pool="mean", rng=0)
    x = rng.standard_normal((1, 6, 3)).astype(np.float32)
    padded = np.concatenate([x, rng.standard_normal((1, 4, 3)).astype(np.float32)], axis=1)
    np.testing.assert_allclose(m(x), m(padded, lengths=np.array([6])), rtol=1e-5, atol=1e-6)


def test_bucketed_batches_cover_everything_once(rng):
    feats = [np.full((n, 2), n, np.float32) for n in rng.integers(1, 30, size=25)]
    lengths = np.array([len(f) for f in feats])
    labels = np.arange(25)
    seen = []
    for (x, L), y in bucketed_batches(feats, lengths, labels, batch_size=4, rng=rng):
        assert x.shape[1] == L.max()
        for row, i in enumerate(y):
            np.testing.assert_array_equal(x[row, :L[row]], feats[i])
            assert np.all(x[row, L[row]:] == 0)
        seen += list(y)
    assert sorted(seen) == list(range(25))


def test_fsdd_short_run(dataset_dir):
    dataset_dir("fsdd")
    pytest.importorskip("librosa")
    from scratchnet.data import load_fsdd, log_mel, normalize_features
    utts = load_fsdd("train", speakers=("jackson",))[::15]  # 30 utterances
    feats = [normalize_features(log_mel(u.wave)) for u in utts]
    lengths = np.array([len(f) for f in feats])
    y = np.array([u.digit for u in utts])
    m = SpeechClassifier(feats[0].shape[1], 16, 10, cell="gru", rng=0)
    crit, opt = CrossEntropyLoss(), Adam(m.parameters(), lr=1e-2)
    losses = []
    for _ in range(3):
        for (xb, lb), yb in bucketed_batches(feats, lengths, y, batch_size=10, rng=0):
            losses.append(float(crit(m((xb, lb)), yb)))
            opt.zero_grad()
            m.backward(crit.backward())
            opt.step()
    assert np.isfinite(losses).all() and np.mean(losses[-3:]) < np.mean(losses[:3])


def test_spec_augment_masks_without_mutating(rng):
    from scratchnet.models.speech_classifier import spec_augment
    x = rng.standard_normal((3, 20, 80)).astype(np.float32) + 5.0
    lengths = np.array([20, 10, 5])
    y = spec_augment(x, lengths, rng=np.random.default_rng(0), freq_width=6, time_masks=1, time_width=0.5)
    assert y.shape == x.shape and y.dtype == x.dtype and np.all(x > 0)  # the input is untouched
    zero = y == 0
    assert zero.any() and np.all((y == x) | zero)
    # a masked band is masked in both stacked frames
    cols = zero.all(axis=1)  # (N, D) columns zero at every step
    np.testing.assert_array_equal(cols[:, :40], cols[:, 40:])
