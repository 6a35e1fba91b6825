"""fit / evaluate / predict and the progress bar on tiny generated problems."""
import numpy as np
import pytest

import scratchnet.train
from scratchnet import metrics, nn
from scratchnet.optim import SGD, StepLR
from scratchnet.progress import progress, progress_disabled
from scratchnet.train import History, evaluate, fit, predict


def blobs(rng, n=200):
    """Two Gaussian blobs in 2-D, labels 0/1 (float32 features, int64 labels)."""
    y = rng.integers(0, 2, n)
    x = rng.standard_normal((n, 2)) * 0.6 + np.where(y[:, None] == 1, 1.5, -1.5)
    return x.astype(np.float32), y.astype(np.int64)


def mlp(rng):
    return nn.Sequential(nn.Linear(2, 16, rng=rng), nn.ReLU(), nn.Linear(16, 2, rng=rng))


def test_fit_learns_blobs_and_fills_history(rng):
    (x, y), (xv, yv) = blobs(rng), blobs(rng, 100)
    model = mlp(rng)
    opt = SGD(model.parameters(), lr=0.1, momentum=0.9)
    hist = fit(model, nn.CrossEntropyLoss(), opt, (x, y), (xv, yv), epochs=4, batch_size=20, rng=rng,
               scheduler=StepLR(opt, step_size=2, gamma=0.5), clip_norm=5.0, disable=True)
    assert isinstance(hist, History) and len(hist.epochs) == 4
    assert len(hist.step_loss) == 4 * 10
    last = hist.epochs[-1]
    assert {"epoch", "train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "seconds"} <= set(last)
    assert last["val_accuracy"] > 0.95 and last["train_loss"] < hist.epochs[0]["train_loss"]
    assert [e["lr"] for e in hist.epochs] == pytest.approx([0.1, 0.1, 0.05, 0.05])
    assert hist.best("val_loss")["val_loss"] == min(hist["val_loss"])
    assert hist.best("val_accuracy")["val_accuracy"] == max(hist["val_accuracy"])
    assert hist.to_dict()["epochs"][0]["epoch"] == 1 and hist.seconds > 0
    assert model.training and all(not m._caches for m in model.modules())


def test_fit_prepare_per_step_schedule_and_early_stop(rng):
    x, y = blobs(rng, 60)
    model = mlp(rng)
    opt = SGD(model.parameters(), lr=0.1)
    seen = []

    def prepare(xb, yb, training):
        seen.append(training)
        return xb * 1.0, yb

    hist = fit(model, nn.CrossEntropyLoss(), opt, (x, y), (x, y), epochs=5, batch_size=30, rng=rng,
               scheduler=StepLR(opt, step_size=1, gamma=0.5), scheduler_per="step", prepare=prepare,
               disable=True, on_epoch_end=lambda epoch, h: epoch == 2)
    assert len(hist.epochs) == 2  # stopped by the callback
    assert opt.lr == pytest.approx(0.1 * 0.5 ** 4)  # 2 epochs × 2 steps
    assert True in seen and False in seen


def test_fit_regression_has_no_accuracy(rng):
    x = rng.standard_normal((40, 3)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5]], dtype=np.float32))  # (40, 1) float targets
    model = nn.Linear(3, 1, rng=rng)
    hist = fit(model, nn.MSELoss(), SGD(model.parameters(), lr=0.1), (x, y), epochs=3, batch_size=10,
               rng=rng, disable=True)
    assert "train_accuracy" not in hist.epochs[-1] and hist.epochs[-1]["train_loss"] < hist.epochs[0]["train_loss"]


def test_fit_nan_loss_raises_with_epoch_and_step(rng):
    x, y = blobs(rng, 40)
    x[25] = np.nan  # lands in some batch of the first epoch
    model = mlp(rng)
    with pytest.raises(FloatingPointError, match=r"epoch 1, step \d"):
        fit(model, nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), (x, y), epochs=2, batch_size=10,
            rng=rng, disable=True)


def test_evaluate_and_predict_restore_mode_and_cache_nothing(rng):
    x, y = blobs(rng, 50)
    model = nn.Sequential(nn.Linear(2, 8, rng=rng), nn.Dropout(p=0.5, rng=rng), nn.Linear(8, 2, rng=rng))
    model.train()
    model.layers[1].eval()  # a submodule deliberately in eval mode stays so
    loss_fn = nn.CrossEntropyLoss()
    res = evaluate(model, loss_fn, (x, y), batch_size=16)
    assert set(res) == {"loss", "accuracy"} and 0.0 <= res["accuracy"] <= 1.0
    logits = predict(model, x, batch_size=16)
    assert logits.shape == (50, 2)
    # deterministic (eval mode: dropout off) and equal to one big forward in eval mode
    np.testing.assert_allclose(predict(model, x, batch_size=7), logits, rtol=1e-6)
    assert model.training and model.layers[0].training and not model.layers[1].training
    assert all(not m._caches for m in model.modules()) and not loss_fn._caches


def test_progress_disable_rules(monkeypatch):
    assert progress_disabled(True) and not progress_disabled(False)
    monkeypatch.setenv("SCRATCHNET_PROGRESS", "0")
    assert progress_disabled(None)
    monkeypatch.setenv("SCRATCHNET_PROGRESS", "1")
    assert not progress_disabled(None)
    monkeypatch.delenv("SCRATCHNET_PROGRESS")
    assert progress_disabled(None)  # pytest captures stdout: not a terminal, not a kernel
    assert list(progress(range(3))) == [0, 1, 2]


def test_moved_helpers_are_still_importable_from_train():
    assert scratchnet.train.accuracy is metrics.accuracy
    assert scratchnet.train.confusion_matrix is metrics.confusion_matrix
    assert scratchnet.train.progress is progress and scratchnet.train.progress_disabled is progress_disabled


def test_fit_on_an_empty_training_set_raises(rng):
    x, y = blobs(rng, 20)
    model = mlp(rng)
    opt = SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match=r"fit: the training data is empty .*\(0, 2\)"):
        fit(model, loss_fn, opt, (x[:0], y[:0]), epochs=1, batch_size=4, disable=True)
    with pytest.raises(ValueError, match="fit: epoch 1 gave no training examples"):
        fit(model, loss_fn, opt, lambda: [], epochs=1, batch_size=4, disable=True)
    with pytest.raises(ValueError, match="fit: the validation data is empty"):
        fit(model, loss_fn, opt, (x, y), (x[:0], y[:0]), epochs=1, batch_size=4, disable=True)
    with pytest.raises(ValueError, match="evaluate: the data gave no examples"):
        evaluate(model, loss_fn, lambda: iter(()))
    with pytest.raises(ValueError, match="evaluate: the evaluation data is empty"):
        evaluate(model, loss_fn, (x[:0], y[:0]))


def test_fit_nan_validation_loss_stops_like_the_training_guard(rng):
    x, y = blobs(rng, 40)
    xv, yv = blobs(rng, 20)
    xv[3] = np.nan  # the training data is fine, the validation data is not
    model = mlp(rng)
    with pytest.raises(FloatingPointError, match=r"validation loss became nan after epoch 1") as info, \
            pytest.warns(RuntimeWarning, match="validation loss became nan"):
        fit(model, nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), (x, y), (xv, yv), epochs=3,
            batch_size=10, rng=rng, disable=True)
    history = info.value.history
    assert len(history.epochs) == 1 and np.isnan(history.epochs[0]["val_loss"])  # stopped after that epoch
    assert np.isfinite(history.epochs[0]["train_loss"]) and len(history.step_loss) == 4


def test_fit_keeps_freed_memory(rng, monkeypatch):
    calls = []
    monkeypatch.setattr(scratchnet.train, "keep_freed_memory", lambda: calls.append(1) or True)
    x, y = blobs(rng, 20)
    model = mlp(rng)
    fit(model, nn.CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), (x, y), epochs=1, batch_size=10,
        disable=True)
    assert calls == [1]
