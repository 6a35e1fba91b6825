"""Training loops: ``fit`` / ``evaluate`` / ``predict`` with progress bars and a ``History``.

    history = fit(model, CrossEntropyLoss(), SGD(model.parameters(), lr=0.1), (X, y), (Xv, yv),
                  epochs=5, batch_size=64)
    history.best("val_accuracy")            # the epoch dict with the highest validation accuracy

One training step is the whole lesson of the library, written out in ``fit``::

    model.train(); logits = model(xb); loss = loss_fn(logits, yb)
    optimizer.zero_grad(); model.backward(loss_fn.backward()); optimizer.step()

Legend: N examples, B batch, K classes.
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import asdict, dataclass, field

from ._alloc import keep_freed_memory
from ._random import get_rng
from .backend import check_device, get_array_module, to_device
from .data import batches as make_batches
from .metrics import _correct, _is_classification, accuracy, confusion_matrix  # noqa: F401  (re-exported)
from .nn.module import no_grad
from .progress import progress, progress_disabled  # noqa: F401  (re-exported)

__all__ = ["History", "fit", "fit_budget", "evaluate", "predict"]


# -- the record of a training run -------------------------------------------------------------------
@dataclass
class History:
    """What ``fit`` measured: one dict per epoch and the loss of every step.

    ``epochs[i]`` holds ``epoch``, ``train_loss``, ``train_accuracy`` (classification), ``val_loss``,
    ``val_accuracy`` (with validation data), ``lr`` (when the optimizer has one) and ``seconds``.
    """
    epochs: list = field(default_factory=list)
    step_loss: list = field(default_factory=list)
    seconds: float = 0.0

    def __getitem__(self, metric: str) -> list:
        """``history["val_loss"]``: the metric over epochs (None where an epoch lacks it)."""
        return [e.get(metric) for e in self.epochs]

    def best(self, metric: str = "val_loss", mode=None) -> dict:
        """The epoch dict where ``metric`` is best. ``mode`` "min" | "max"; by default lowest for
        losses, errors, cer, wer and perplexity, highest otherwise (accuracy)."""
        rows = [e for e in self.epochs if e.get(metric) is not None]
        if not rows:
            raise KeyError(f"History.best: no epoch recorded {metric!r}; "
                           f"recorded: {sorted({k for e in self.epochs for k in e})}")
        lower = mode == "min" if mode else any(w in metric for w in ("loss", "error", "cer", "wer", "perplexity"))
        return (min if lower else max)(rows, key=lambda e: e[metric])

    def to_dict(self) -> dict:
        """Plain Python (JSON-serialisable) copy."""
        return asdict(self)


# -- batching ------------------------------------------------------------------------------------------
def _epoch_batches(data, batch_size, *, shuffle, rng):
    """Batches of ``data``: a tuple of arrays goes through ``scratchnet.data.batches``; a callable
    returns its own iterable of batches (data that does not fit the array mould)."""
    if callable(data):
        batches = data()
    else:
        batches = make_batches(*data, batch_size=batch_size, shuffle=shuffle, rng=rng)
    return batches, (len(batches) if hasattr(batches, "__len__") else None)


def _check_not_empty(op: str, name: str, data) -> None:
    """ValueError when a tuple of arrays has no rows (a callable is checked by what it yields)."""
    if callable(data) or not isinstance(data, (tuple, list)) or not data:
        return
    first = data[0]
    if hasattr(first, "shape") and len(first.shape) and first.shape[0] == 0:
        raise ValueError(f"{op}: the {name} data is empty (its arrays have shapes "
                         f"{', '.join(str(tuple(getattr(a, 'shape', ()))) for a in data)}); nothing to "
                         f"{'train on' if name == 'training' else 'evaluate'}")


def _batch_len(xb) -> int:
    """Number of examples in a batch (an array, or a tuple of arrays for multi-input models)."""
    return xb.shape[0] if hasattr(xb, "shape") else _batch_len(xb[0])


def _move(x, device):
    """``x`` (an array, None, or a tuple of arrays for multi-input models) on ``device``; None: unchanged."""
    if device is None or x is None:
        return x
    if isinstance(x, (tuple, list)):
        return type(x)(_move(a, device) for a in x)
    return to_device(x, device)


def _split(batch):
    """(xb, yb) from a batch tuple; a single array means no targets."""
    if isinstance(batch, (tuple, list)):
        return (batch[0], batch[1]) if len(batch) > 1 else (batch[0], None)
    return batch, None


class _Meter:
    """Running sums over one pass: example-weighted loss, hit counts and custom metrics."""

    def __init__(self, metrics):
        self.metrics, self.n, self.loss, self.hits, self.count, self.custom = metrics, 0, 0.0, 0, 0, {}

    def add(self, loss_value, logits, yb, n):
        self.n += n
        self.loss += loss_value * n
        for m in self.metrics:
            if m == "accuracy":
                if _is_classification(logits, yb):
                    hits, count = _correct(logits, yb)
                    self.hits, self.count = self.hits + hits, self.count + count
            elif callable(m):  # metric(logits, yb) -> float, averaged over examples
                self.custom[m.__name__] = self.custom.get(m.__name__, 0.0) + float(m(logits, yb)) * n

    def result(self, prefix=""):
        out = {f"{prefix}loss": self.loss / max(self.n, 1)}
        if self.count:
            out[f"{prefix}accuracy"] = self.hits / self.count
        out.update({f"{prefix}{k}": v / max(self.n, 1) for k, v in self.custom.items()})
        return out


class _TrainingMode:
    """Set every submodule's training flag; restore each one's previous flag on exit."""

    def __init__(self, model, mode):
        self.model, self.mode = model, mode

    def __enter__(self):
        self.saved = [(m, m.training) for m in self.model.modules()]
        self.model.train(self.mode)

    def __exit__(self, *exc):
        for m, flag in self.saved:
            m.training = flag


# -- evaluation ------------------------------------------------------------------------------------------
def evaluate(model, loss_fn, data, *, batch_size=256, prepare=None, metrics=("accuracy",), disable=True,
             device=None) -> dict:
    """Mean loss (and accuracy for integer targets) over ``data=(X, y)`` in eval mode under ``no_grad``.

    ``device`` ('cpu' | 'gpu'): each batch is moved there after ``prepare`` (the model must already be).

    Nothing is cached and each module's training flag is restored afterwards. Raises ValueError
    when ``data`` holds no examples (a mean over nothing is not a loss of 0).
    """
    if device is not None:
        check_device(device, "evaluate")
    _check_not_empty("evaluate", "evaluation", data)
    meter = _Meter(metrics)
    batches, total = _epoch_batches(data, batch_size, shuffle=False, rng=None)
    with no_grad(), _TrainingMode(model, False):
        for batch in progress(batches, total=total, desc="eval", leave=False, disable=disable):
            xb, yb = _split(batch)
            if prepare is not None:
                xb, yb = prepare(xb, yb, False)
            xb, yb = _move(xb, device), _move(yb, device)
            logits = model(xb)
            meter.add(float(loss_fn(logits, yb)), logits, yb, _batch_len(xb))
    if meter.n == 0:
        raise ValueError("evaluate: the data gave no examples (no batches, or only empty ones)")
    return meter.result()


def predict(model, X, *, batch_size=256, prepare=None, disable=True):
    """The model's outputs (logits) for every row of ``X``, in order, in eval mode under ``no_grad``."""
    outs = []
    with no_grad(), _TrainingMode(model, False):
        for start in progress(range(0, len(X), batch_size), desc="predict", leave=False, disable=disable):
            xb = X[start:start + batch_size]
            if prepare is not None:
                xb, _ = prepare(xb, None, False)
            outs.append(model(xb))
    if not outs:
        raise ValueError("predict: X is empty")
    return get_array_module(outs[0]).concatenate(outs, axis=0)  # (N, ...) like one big forward


def _diverged(history, message) -> FloatingPointError:
    """The error ``fit`` raises when a loss stops being finite, carrying the history so far."""
    error = FloatingPointError(message)
    error.history = history
    return error


# -- training ----------------------------------------------------------------------------------------------
def fit(model, loss_fn, optimizer, train, val=None, *, epochs, batch_size, rng=None, scheduler=None,
        scheduler_per="epoch", clip_norm=None, prepare=None, disable=None, log_every=None,
        metrics=("accuracy",), on_epoch_end=None, device=None) -> History:
    """Train ``model`` with mini-batch gradient descent; returns a ``History``.

    train, val: tuples ``(X, y)`` of arrays (shuffled each epoch with ``rng``), or zero-argument
        callables returning an iterable of ``(xb, yb)`` batches.
    scheduler: stepped after every epoch (``scheduler_per="epoch"``) or optimizer step ("step").
    clip_norm: rescale the gradients to this global norm before each step (``optim.clip_grad_norm``).
    prepare: ``prepare(xb, yb, training) -> (xb, yb)``: per-batch preprocessing, augmentation or
        a move to the GPU.
    disable: progress bars (None: on in a terminal or notebook, see ``progress_disabled``).
    log_every: print a line with the running loss every this many steps (and one per epoch),
        useful where bars are off; None prints nothing.
    metrics: "accuracy" (counted when targets are integers indexing the last logit axis) and/or
        callables ``metric(logits, yb) -> float`` averaged over examples.
    on_epoch_end: ``on_epoch_end(epoch, history)``; returning True stops training.
    device: None (default) moves nothing. 'cpu' or 'gpu': ``fit`` moves the model there first
        (``model.to(device)``, in place; it stays there afterwards, and an optimizer built on its
        Parameters keeps working because the Parameter objects are the same), then every training and
        validation batch after ``prepare``. 'gpu' on a machine without CuPy or a CUDA device raises
        RuntimeError naming what is missing; another value raises ValueError. The data itself stays
        where it is (on the CPU): only the current batch crosses the bus. Build the optimizer before
        or after the move, but before its first step (an optimizer's state stays where it was made).

    Raises ValueError when the training (or validation) data holds no examples, and
    FloatingPointError when the training loss of a step, or the validation loss of an epoch,
    becomes NaN or infinite; the error names the epoch (and step) and carries ``.history``, the
    epochs finished so far.

    Training allocates the same large arrays every step, so ``fit`` first asks the C allocator to
    keep freed memory for reuse (``scratchnet.keep_freed_memory``, see ``scratchnet/_alloc.py``;
    ``SCRATCHNET_MALLOC=default`` opts out). This is process-wide and stays after ``fit`` returns.
    """
    if scheduler_per not in ("epoch", "step"):
        raise ValueError(f"fit: scheduler_per must be 'epoch' or 'step', got {scheduler_per!r}")
    if device is not None:
        check_device(device, "fit")
    _check_not_empty("fit", "training", train)
    if val is not None:
        _check_not_empty("fit", "validation", val)
    if device is not None:
        model.to(device)
    keep_freed_memory()
    rng = get_rng(rng)
    history = History()
    start = time.perf_counter()
    epoch_bar = progress(range(1, epochs + 1), desc="epochs", disable=disable)
    for epoch in epoch_bar:
        t0 = time.perf_counter()
        meter = _Meter(metrics)
        batches, total = _epoch_batches(train, batch_size, shuffle=True, rng=rng)
        model.train()
        bar = progress(batches, total=total, desc=f"epoch {epoch}", leave=False, disable=disable)
        for step, batch in enumerate(bar, 1):  # one optimizer step per mini-batch
            xb, yb = _split(batch)
            if prepare is not None:
                xb, yb = prepare(xb, yb, True)
            xb, yb = _move(xb, device), _move(yb, device)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            loss_value = float(loss)
            if not math.isfinite(loss_value):
                for m in (model, loss_fn):  # drop the half-used caches
                    getattr(m, "clear_caches", lambda: None)()
                raise _diverged(history, f"fit: the loss became {loss_value} at epoch {epoch}, step {step} (after "
                                         f"{len(history.step_loss)} good steps); lower the learning rate, clip "
                                         f"gradients (clip_norm=...) or check the inputs for NaN/inf")
            optimizer.zero_grad()
            model.backward(loss_fn.backward())
            if clip_norm is not None:
                from .optim import clip_grad_norm
                clip_grad_norm(model.parameters(), clip_norm)
            optimizer.step()
            if scheduler is not None and scheduler_per == "step":
                scheduler.step()
            history.step_loss.append(loss_value)
            meter.add(loss_value, logits, yb, _batch_len(xb))
            if step % 10 == 0:
                bar.set_postfix(loss=f"{meter.loss / meter.n:.4f}", refresh=False)
            if log_every and step % log_every == 0:
                print(f"epoch {epoch} step {step}: loss {meter.loss / meter.n:.4f}", flush=True)
        if meter.n == 0:
            raise ValueError(f"fit: epoch {epoch} gave no training examples (the training data yielded no "
                             "batches); nothing to train on")
        row = {"epoch": epoch, **meter.result("train_")}
        if val is not None:
            row.update({f"val_{k}": v for k, v in evaluate(model, loss_fn, val, batch_size=batch_size,
                                                           prepare=prepare, metrics=metrics,
                                                           device=device).items()})
        if getattr(optimizer, "lr", None) is not None:
            row["lr"] = float(optimizer.lr)
        if scheduler is not None and scheduler_per == "epoch":
            scheduler.step()
        row["seconds"] = time.perf_counter() - t0
        history.epochs.append(row)
        history.seconds = time.perf_counter() - start
        if not math.isfinite(row.get("val_loss", 0.0)):  # the training loss's guard, once per epoch
            message = (f"fit: the validation loss became {row['val_loss']} after epoch {epoch} "
                       f"(training loss {row['train_loss']:.4g}); check the validation inputs for NaN/inf and the "
                       f"running statistics of normalisation layers; history.epochs[-1] holds that epoch")
            warnings.warn(message, RuntimeWarning, stacklevel=2)  # seen even where the error is caught
            raise _diverged(history, message)
        epoch_bar.set_postfix({k: f"{v:.4f}" for k, v in row.items() if k.startswith(("train_", "val_"))})
        if log_every:
            print(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()), flush=True)
        if on_epoch_end is not None and on_epoch_end(epoch, history):
            break
    epoch_bar.close()
    return history


def fit_budget(model, loss_fn, optimizer, train, val, *, epochs, batch_size, max_minutes, rng=None,
               scheduler=None, prepare=None, clip_norm=None, log_every=None, disable=None, device=None):
    """``train.fit`` with a wall-clock cap that keeps the weights of the best validation epoch.

    Training stops after ``epochs``, or at the end of the first epoch after which another epoch as
    long as the last one would pass ``max_minutes``; the best-val_accuracy weights are loaded back
    before returning (``history.best_epoch`` says which). ``device`` is ``fit``'s: the model trains
    there and stays there, the best weights loaded back onto it (they are kept as NumPy copies).
    """
    best = {"acc": -math.inf, "state": None, "epoch": 0}
    t0 = time.perf_counter()

    def on_epoch_end(epoch, history):
        row = history.epochs[-1]
        if row["val_accuracy"] > best["acc"]:
            best.update(acc=row["val_accuracy"], state=model.state_dict(), epoch=epoch)
        minutes = (time.perf_counter() - t0) / 60
        return minutes + row["seconds"] / 60 > max_minutes  # the next epoch would not fit

    history = fit(model, loss_fn, optimizer, train, val, epochs=epochs, batch_size=batch_size, rng=rng,
                  scheduler=scheduler, scheduler_per="step", prepare=prepare, clip_norm=clip_norm,
                  log_every=log_every, disable=disable, on_epoch_end=on_epoch_end, device=device)
    model.load_state_dict(best["state"])
    history.best_epoch = best["epoch"]
    return history
