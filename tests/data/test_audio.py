"""FSDD reader on the real files, audio features at 8 kHz, padding, the connected-digit set."""
import numpy as np
import pytest

from scratchnet.data.audio import (
    DIGIT_VOCAB,
    CharVocab,
    Utterance,
    connected_digits,
    load_fsdd,
    log_mel,
    mfcc,
    normalize_features,
    pad_batch,
)


@pytest.fixture(scope="module")
def fsdd(request):
    import os
    import pathlib
    root = os.environ.get("SCRATCHNET_DATA")
    if not root or not (pathlib.Path(root) / "fsdd").exists():
        pytest.skip("real dataset 'fsdd' not available (set SCRATCHNET_DATA to a folder holding fsdd/)")
    return {"train": load_fsdd("train", root=root), "test": load_fsdd("test", root=root)}


def test_fsdd_split(fsdd, dataset_dir):
    dataset_dir("fsdd")
    train, test = fsdd["train"], fsdd["test"]
    assert len(train) == 2700 and len(test) == 300
    assert all(u.index <= 4 for u in test) and all(u.index >= 5 for u in train)
    assert {u.speaker for u in train} == {"george", "jackson", "lucas", "nicolas", "theo", "yweweler"}
    assert sorted({u.digit for u in test}) == list(range(10))
    u = train[0]
    wave, sr, digit, speaker, index = u
    assert isinstance(digit, int) and u.text == str(digit)
    assert u.sr == 8000 and u.wave.dtype == np.float32 and u.wave.ndim == 1
    assert np.abs(u.wave).max() <= 1.0
    assert 0.1 < min(len(u.wave) for u in train) / 8000 and max(len(u.wave) for u in train) / 8000 < 2.5


def test_fsdd_errors():
    with pytest.raises(ValueError, match="split"):
        load_fsdd("valid")


def test_features_shapes():
    pytest.importorskip("librosa")
    wave = np.sin(2 * np.pi * 440 * np.arange(4000) / 8000).astype(np.float32)  # 0.5 s
    lm = log_mel(wave)
    assert lm.shape == (1 + 4000 // 80, 40) and lm.dtype == np.float32 and np.isfinite(lm).all()
    # the 440 Hz tone lands in a low mel band
    assert lm.mean(0).argmax() < 20
    assert mfcc(wave).shape == (51, 13)
    assert log_mel(wave, n_mels=20, hop_ms=20).shape == (1 + 4000 // 160, 20)
    z = normalize_features(lm)
    np.testing.assert_allclose(z.mean(0), 0, atol=1e-4)


def test_pad_batch():
    x, lengths = pad_batch([np.ones((3, 2)), np.ones((5, 2)), np.ones((1, 2))])
    assert x.shape == (3, 5, 2) and lengths.tolist() == [3, 5, 1]
    assert x[0, 3:].sum() == 0 and x[1].sum() == 10
    with pytest.raises(ValueError, match="pad_batch"):
        pad_batch([np.ones((3, 2)), np.ones((3, 4))])


def test_vocab():
    assert len(DIGIT_VOCAB) == 12 and DIGIT_VOCAB.blank == 0
    ids = DIGIT_VOCAB.encode("3 7 1")
    assert ids == [5, 1, 9, 1, 3] and DIGIT_VOCAB.decode(ids) == "3 7 1"
    targets, lengths = DIGIT_VOCAB.encode_batch(["1", "2 3"])
    assert targets.tolist() == [[3, 0, 0], [4, 1, 5]] and lengths.tolist() == [1, 3]
    with pytest.raises(ValueError, match="vocabulary"):
        DIGIT_VOCAB.encode("3a")
    with pytest.raises(ValueError):
        CharVocab("aa")


def test_connected_digits_synthetic():
    rng = np.random.default_rng(0)
    utts = [Utterance(np.full(800, d + 1, np.float32) / 20, 8000, d, spk, 7)
            for spk in ("a", "b") for d in range(10)]
    seqs = connected_digits(utts, n_sequences=20, min_len=2, max_len=4, rng=rng, silence_ms=(50, 100))
    for s in seqs:
        digits = s.text.split(" ")
        assert 2 <= len(digits) <= 4 and s.speaker in ("a", "b")
        assert [str(d) for d, _ in s.sources] == digits
        # the waveform holds exactly those digits' samples, of the named speaker, plus short silences
        loud = s.wave[np.abs(s.wave) > 0.01]
        assert len(loud) == 800 * len(digits)
        assert sorted(set(np.round(loud * 20 - 1).astype(int).tolist())) == sorted({int(d) for d in digits})
        assert 800 * len(digits) + 400 * (len(digits) + 1) <= len(s.wave) <= 800 * len(digits) + 800 * (len(digits) + 1)


def test_connected_digits_real(fsdd):
    rng = np.random.default_rng(0)
    test = fsdd["test"]
    seqs = connected_digits(test, n_sequences=8, rng=rng)
    for s in seqs:
        # each spoken digit, in order, is a test recording of this sequence's one speaker
        blob, pos = s.wave.tobytes(), 0
        assert all(index <= 4 for _, index in s.sources)
        for d in s.text.split(" "):
            hits = [blob.find(u.wave.tobytes(), pos) for u in test if u.speaker == s.speaker and u.text == d]
            hits = [h for h in hits if h >= 0 and h % 4 == 0]
            assert hits, f"digit {d} of {s.text!r} is not a test recording of {s.speaker}"
            pos = min(hits) + 4
