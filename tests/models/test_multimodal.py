"""Audio-visual fusion models (chapter 32): the pairing, the modality-dropout mask, whole-model
gradchecks (each fusion, with and without modality dropout), overfitting one batch, the training loop,
the degradations, save/load, errors."""
import numpy as np
import pytest

from scratchnet import functional as F
from scratchnet.gradcheck.cases import multimodal  # noqa: F401  (registers the multimodal cases)
from scratchnet.gradcheck.registry import CASES
from scratchnet.models.multimodal import (
    EarlyFusion,
    IntermediateFusion,
    LateFusion,
    Unimodal,
    accuracy,
    add_noise,
    modality_keep_mask,
    noisy_images,
    pair_by_label,
    paired_batches,
    train_bimodal,
)
from scratchnet.optim import Adam

D = 6
SMALL = dict(features=16, hidden=12, channels=(4, 8))


def _batch(rng, n=8, t=7, dtype=np.float32):
    image = rng.standard_normal((n, 1, 28, 28)).astype(dtype)
    audio = rng.standard_normal((n, t, D)).astype(dtype)
    lengths = rng.integers(2, t + 1, n)
    return image, audio, lengths, rng.integers(0, 10, n)


def _models(**kw):
    return [Unimodal("image", D, rng=0, **SMALL), Unimodal("audio", D, rng=0, **SMALL),
            EarlyFusion(D, rng=0, **SMALL, **kw), LateFusion(D, rng=0, **SMALL, **kw),
            IntermediateFusion(D, rng=0, **SMALL, **kw)]


@pytest.mark.parametrize("case", ["multimodal.audio_encoder", "multimodal.unimodal", "multimodal.early_fusion",
                                  "multimodal.late_fusion_model", "multimodal.intermediate_fusion"])
def test_whole_model_gradchecks(case):
    reports = CASES[case]()
    reports = reports if isinstance(reports, list) else [reports]
    assert all(r.ok for r in reports), "\n".join(str(r) for r in reports if not r.ok)


def test_the_gradcheck_cases_really_drop_each_modality():
    keep = modality_keep_mask(3, 0.6, rng=np.random.default_rng(multimodal.MASK_SEED))  # the cases' first mask
    assert keep[:, 0].min() == 0 and keep[:, 1].min() == 0


def test_pair_by_label_pairs_same_digits_without_repeats_and_is_seeded(rng):
    labels, image_labels = rng.integers(0, 10, 200), rng.integers(0, 10, 5000)
    idx = pair_by_label(labels, image_labels, rng=3)
    np.testing.assert_array_equal(image_labels[idx], labels)
    assert len(np.unique(idx)) == len(idx)  # enough images: no image used twice
    np.testing.assert_array_equal(idx, pair_by_label(labels, image_labels, rng=3))
    assert not np.array_equal(idx, pair_by_label(labels, image_labels, rng=4))
    few = pair_by_label(np.zeros(5, int), np.array([0, 0, 1]), rng=0)  # fewer images than utterances: cycles
    assert set(few) == {0, 1}
    with pytest.raises(ValueError, match="pair_by_label: no image of label 2"):
        pair_by_label(np.array([2]), np.array([0, 1]))


def test_modality_keep_mask_never_drops_both(rng):
    keep = modality_keep_mask(20000, 0.4, rng=rng)
    assert keep.min(axis=1).min() >= 0 and keep.sum(axis=1).min() == 1
    assert abs((keep.sum(axis=1) == 1).mean() - 0.4) < 0.02  # a sample loses one modality with probability p
    assert abs((keep[:, 0] == 0).mean() - 0.2) < 0.02  # each modality p / 2
    assert modality_keep_mask(50, 0.0, rng=rng).min() == 1


def test_modality_keep_mask_per_modality_probabilities(rng):
    keep = modality_keep_mask(20000, (0.5, 0.1), rng=rng)  # (p_image, p_audio)
    assert keep.sum(axis=1).min() == 1
    assert abs((keep[:, 0] == 0).mean() - 0.5) < 0.02 and abs((keep[:, 1] == 0).mean() - 0.1) < 0.02
    model = EarlyFusion(D, rng=0, p_drop=(0.5, 0.1), **SMALL)
    assert model.p_drop == (0.5, 0.1)
    with pytest.raises(ValueError, match="EarlyFusion: p_drop must be in"):
        EarlyFusion(D, p_drop=(0.7, 0.4))


@pytest.mark.parametrize("idx", range(5))
def test_overfit_one_batch(idx, rng):
    image, audio, lengths, y = _batch(rng)
    model = _models()[idx]
    opt = Adam(model.parameters(), lr=1e-2)
    for _ in range(80):
        loss, cache = F.cross_entropy(model(image, audio, lengths), y)
        opt.zero_grad()
        model.backward(F.cross_entropy_backward(1.0, cache))
        opt.step()
    assert float(loss) < 0.05, type(model).__name__


def test_backward_returns_none_for_the_unused_modality(rng):
    image, audio, lengths, _ = _batch(rng, dtype=np.float64)
    for model, unused in [(Unimodal("image", D, rng=0, dtype=np.float64, **SMALL), 1),
                          (Unimodal("audio", D, rng=0, dtype=np.float64, **SMALL), 0)]:
        out = model(image, audio, lengths)
        grads = model.backward(np.ones_like(out))
        assert grads[unused] is None and grads[1 - unused].shape == (image, audio)[1 - unused].shape


def test_modality_dropout_uses_the_fills_in_training_only(rng):
    image, audio, lengths, _ = _batch(rng, n=64)
    model = EarlyFusion(D, rng=0, p_drop=0.9, **SMALL).set_missing(-0.5, np.full(D, 2.0))
    blank = np.full_like(image, -0.5)
    model.eval()
    out = model(image, audio, lengths)
    np.testing.assert_array_equal(out, model(image, audio, lengths))  # no dropout in evaluation
    model.train()
    seen = model(image, audio, lengths)
    assert not np.allclose(seen, out)
    model.eval()
    only_audio = model(blank, audio, lengths)  # what a sample that lost its image looks like
    model.train()
    keep = modality_keep_mask(64, 0.9, rng=np.random.default_rng(0))
    assert keep.min() == 0 and only_audio.shape == out.shape


def test_late_fusion_weights_are_learned_and_start_equal(rng):
    image, audio, lengths, y = _batch(rng)
    model = LateFusion(D, rng=0, **SMALL)
    np.testing.assert_allclose(model.alpha, [0.5, 0.5])
    opt = Adam(model.parameters(), lr=1e-2)
    for _ in range(5):
        loss, cache = F.cross_entropy(model(image, audio, lengths), y)
        opt.zero_grad()
        model.backward(F.cross_entropy_backward(1.0, cache))
        opt.step()
    assert model.w.grad.any() and abs(model.alpha.sum() - 1) < 1e-12


def test_intermediate_fusion_gates_in_unit_interval(rng):
    image, audio, lengths, _ = _batch(rng)
    model = IntermediateFusion(D, rng=0, **SMALL)
    z = model.gates(image, audio, lengths)
    assert z.shape == (8, 64) and np.all((z > 0) & (z < 1))
    assert model.caches == () and model.image.caches == ()  # nothing cached outside training


def test_train_bimodal_accuracy_and_time_limit(rng):
    image, audio, lengths, y = _batch(rng, n=40)
    feats = [audio[i, :lengths[i]] for i in range(40)]
    data = (image, feats, lengths, y)
    model = EarlyFusion(D, rng=0, **SMALL)
    rows = train_bimodal(model, Adam(model.parameters(), lr=1e-2), data, data, epochs=30, batch_size=8,
                         rng=np.random.default_rng(0))
    assert rows[-1]["train_loss"] < rows[0]["train_loss"] and rows[-1]["val_accuracy"] == accuracy(model, data) > 0.9
    rows = train_bimodal(model, Adam(model.parameters(), lr=1e-3), data, epochs=50, batch_size=8, time_limit=0.0)
    assert len(rows) == 1 and "val_accuracy" not in rows[0]
    scores = iter([0.2, 0.9, 0.5])  # the second epoch is the best: its weights come back
    model = EarlyFusion(D, rng=0, **SMALL)
    snaps = []
    rows = train_bimodal(model, Adam(model.parameters(), lr=1e-2), data, data, epochs=3, batch_size=8, keep_best=True,
                         score=lambda m: (snaps.append(m.state_dict()), next(scores))[1])
    assert [r["val_score"] for r in rows] == [0.2, 0.9, 0.5]
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(v, snaps[1][k])
    seen = np.concatenate([yb for _, yb in paired_batches(*data, batch_size=16, shuffle=False)])
    np.testing.assert_array_equal(np.sort(seen), np.sort(y))


def test_degradations(rng):
    wave = np.sin(np.linspace(0, 200, 8000)).astype(np.float32)
    noisy = add_noise(wave, -5.0, rng=rng)
    snr = 10 * np.log10(np.mean(wave ** 2) / np.mean((noisy - wave) ** 2))
    assert abs(snr + 5.0) < 0.2 and noisy.dtype == np.float32
    x = rng.random((500, 1, 28, 28)).astype(np.float32)
    y = noisy_images(x, 0.8, rng=rng)
    assert y.dtype == np.float32 and abs((y - x).std() - 0.8) < 0.01


def test_save_load_round_trip(tmp_path, rng):
    image, audio, lengths, _ = _batch(rng)
    model = IntermediateFusion(D, rng=0, p_drop=0.3, **SMALL).set_missing(-0.4, np.arange(D))
    model.eval()
    out = model(image, audio, lengths)
    model.save(tmp_path / "gmu")
    other = IntermediateFusion(D, rng=5, p_drop=0.3, **SMALL).load(tmp_path / "gmu")
    other.eval()
    np.testing.assert_allclose(other(image, audio, lengths), out)
    np.testing.assert_array_equal(other.audio_fill, np.arange(D))


def test_errors_name_the_model(rng):
    image, audio, lengths, _ = _batch(rng)
    model = EarlyFusion(D, rng=0, **SMALL)
    with pytest.raises(ValueError, match=r"EarlyFusion: expected image \(N, 1, 28, 28\), got shape \(8, 28, 28\)"):
        model(image[:, 0], audio, lengths)
    with pytest.raises(ValueError, match=r"EarlyFusion: expected audio \(N, T, 6\) with N = 8"):
        model(image, audio[:5], lengths)
    with pytest.raises(ValueError, match=r"EarlyFusion: expected lengths \(8,\)"):
        model(image, audio, lengths[:3])
    with pytest.raises(ValueError, match="LateFusion: p_drop must be in"):
        LateFusion(D, p_drop=1.0)
    with pytest.raises(ValueError, match="Unimodal: modality must be"):
        Unimodal("video", D)
    with pytest.raises(RuntimeError, match="no cached forward pass"):
        model.backward(np.ones((8, 10), np.float32))
