"""Plots for the notebooks: training curves, image grids, filters, confusion matrices, attention
maps and CTC alignments. Each function returns the matplotlib Figure.

matplotlib is imported inside the functions (``pip install "scratchnet[viz]"``), so the core
library never needs it. Arrays may live on the GPU: every function plots a CPU copy
(``backend.asnumpy``). In a notebook end the call with ``;`` so the figure is drawn once.

Legend: N images, C channels, H×W image size, K classes, T time frames, Tq×Tk attention map.
"""
from __future__ import annotations

import math

import numpy as np

from .backend import asnumpy

__all__ = ["plot_history", "image_grid", "plot_confusion", "show_filters", "plot_attention",
           "plot_lines", "plot_ctc_alignment"]


def _plt():
    """matplotlib.pyplot, or a clear message saying how to install it."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as e:  # the core library does not depend on matplotlib
        raise ImportError('scratchnet.viz needs matplotlib: pip install "scratchnet[viz]"') from e
    return plt


def _grid_shape(n: int, nrow):
    """(rows, columns) for n panels with ``nrow`` panels per row (default: about square)."""
    cols = nrow or max(1, math.ceil(math.sqrt(n)))
    return math.ceil(n / cols), cols


def _as_images(images) -> np.ndarray:
    """(N, H, W) or (N, H, W, 3) float array from (N, H, W), (N, 1, H, W), (N, 3, H, W) or (N, H, W, 3)."""
    a = np.asarray(asnumpy(images))
    if a.ndim == 2:  # one image
        a = a[None]
    if a.ndim == 4 and a.shape[1] in (1, 3) and a.shape[-1] not in (1, 3):
        a = a.transpose(0, 2, 3, 1)  # channels last for imshow
    if a.ndim == 4 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (3, 4):
        raise ValueError(f"image_grid: expected images (N, H, W), (N, C, H, W) or (N, H, W, C), got shape {a.shape}")
    if a.ndim == 4 and a.dtype.kind == "f":  # RGB floats: rescale each image to [0, 1]
        lo = a.min(axis=(1, 2, 3), keepdims=True)
        hi = a.max(axis=(1, 2, 3), keepdims=True)
        a = (a - lo) / np.maximum(hi - lo, 1e-12)
    return a


def image_grid(images, *, nrow=None, titles=None, cmap="gray"):
    """A grid of images, ``nrow`` per row (as torchvision's make_grid), optional title per image."""
    plt = _plt()
    imgs = _as_images(images)
    rows, cols = _grid_shape(len(imgs), nrow)
    fig, axes = plt.subplots(rows, cols, figsize=(1.3 * cols, 1.3 * rows + (0.3 * rows if titles else 0)),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):  # one panel per image; spare panels stay blank
        ax.axis("off")
        if i < len(imgs):
            ax.imshow(imgs[i], cmap=cmap if imgs[i].ndim == 2 else None)
            if titles is not None:
                ax.set_title(str(titles[i]), fontsize=8)
    fig.tight_layout()
    return fig


def show_filters(w, *, nrow=None):
    """Learned filters as images.

    Linear weights (D, M) with D a square (784 → 28×28): one image per output unit (column).
    Conv weights (C_out, C_in, kh, kw): one RGB image per filter when C_in == 3, one gray image per
    filter when C_in == 1, else each (output, input) kernel with one row per output filter (first 16×16).
    """
    w = np.asarray(asnumpy(w))
    if w.ndim == 2:
        side = math.isqrt(w.shape[0])
        if side * side != w.shape[0]:
            raise ValueError(f"show_filters: linear weights need a square input size (784 = 28×28), got {w.shape}")
        return image_grid(w.T.reshape(-1, side, side), nrow=nrow)  # (M, side, side)
    if w.ndim != 4:
        raise ValueError(f"show_filters: expected (D, M) linear or (C_out, C_in, kh, kw) conv weights, got {w.shape}")
    c_out, c_in = w.shape[:2]
    if c_in in (1, 3):
        return image_grid(w, nrow=nrow)
    kernels = w[:16, :16]  # (≤16, ≤16, kh, kw)
    return image_grid(kernels.reshape(-1, *w.shape[2:]), nrow=nrow or kernels.shape[1])


def plot_history(history, *, metrics=("loss", "accuracy")):
    """Train and validation curves per epoch, one panel per metric; the per-step loss drawn faint
    behind the loss curves. ``history``: a ``train.History`` or its ``to_dict()``."""
    plt = _plt()
    h = history if isinstance(history, dict) else history.to_dict()
    epochs, step_loss = h["epochs"], h.get("step_loss", [])
    shown = [m for m in metrics if any(f"{p}{m}" in e for e in epochs for p in ("train_", "val_"))]
    if not shown:
        keys = sorted({k for e in epochs for k in e})
        raise ValueError(f"plot_history: none of {metrics} was recorded; keys: {keys}")
    fig, axes = plt.subplots(1, len(shown), figsize=(4.5 * len(shown), 3.2), squeeze=False)
    for ax, metric in zip(axes.flat, shown):  # one panel per metric
        if metric == "loss" and step_loss and epochs:
            x = np.arange(1, len(step_loss) + 1) * (len(epochs) / len(step_loss))  # steps in epoch units
            ax.plot(x, step_loss, color="0.6", alpha=0.35, lw=0.8, label="train (per step)")
        for prefix, style in (("train_", "-o"), ("val_", "-s")):
            pts = [(e["epoch"], e[prefix + metric]) for e in epochs if e.get(prefix + metric) is not None]
            if pts:
                ax.plot(*zip(*pts), style, ms=3, label=prefix.rstrip("_"))
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_confusion(cm, *, labels=None, normalize=False):
    """A (K, K) confusion matrix (rows true, columns predicted), counts written in each cell when
    K ≤ 20; ``normalize=True`` shows each row as fractions of that true class."""
    plt = _plt()
    cm = np.asarray(asnumpy(cm), dtype=np.float64)
    if normalize:
        cm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    k = cm.shape[0]
    labels = list(labels) if labels is not None else [str(i) for i in range(k)]
    fig, ax = plt.subplots(figsize=(0.45 * k + 2, 0.45 * k + 1.5))
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set(xticks=range(k), yticks=range(k), xlabel="predicted", ylabel="true")
    ax.set_xticklabels(labels, rotation=90 if k > 10 else 0)
    ax.set_yticklabels(labels)
    if k <= 20:
        for i in range(k):  # one number per cell, dark text on light cells
            for j in range(k):
                text = f"{cm[i, j]:.2f}" if normalize else f"{int(cm[i, j])}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7,
                        color="white" if cm[i, j] > 0.6 * cm.max() else "black")
    fig.tight_layout()
    return fig


def plot_attention(weights, *, xlabels=None, ylabels=None):
    """Attention weights (Tq, Tk) as a heat map: rows are queries, columns keys. Leading axes of
    size one are dropped; (heads, Tq, Tk) gives one panel per head."""
    plt = _plt()
    a = np.asarray(asnumpy(weights), dtype=np.float64)
    while a.ndim > 2 and a.shape[0] == 1:
        a = a[0]
    if a.ndim == 2:
        a = a[None]
    if a.ndim != 3:
        raise ValueError(f"plot_attention: expected (Tq, Tk) or (heads, Tq, Tk), got shape {np.shape(weights)}")
    rows, cols = _grid_shape(len(a), min(len(a), 4))
    fig, axes = plt.subplots(rows, cols, figsize=(3.5 * cols + 0.5, 3.2 * rows), squeeze=False)
    for h, ax in enumerate(axes.flat):  # one panel per head
        if h >= len(a):
            ax.axis("off")
            continue
        im = ax.imshow(a[h], cmap="viridis", aspect="auto", vmin=0.0)
        if len(a) > 1:
            ax.set_title(f"head {h}", fontsize=9)
        if xlabels is not None:
            ax.set_xticks(range(len(xlabels)), [str(s) for s in xlabels], rotation=90, fontsize=7)
        if ylabels is not None:
            ax.set_yticks(range(len(ylabels)), [str(s) for s in ylabels], fontsize=7)
        ax.set_xlabel("key")
        ax.set_ylabel("query")
        fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    return fig


def plot_lines(xs, ys_dict, *, xlabel, ylabel, logy=False, title=None):
    """Several named curves on one axis: ``ys_dict`` maps a label to its y values; ``xs`` is shared,
    or a dict with the same labels."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, ys in ys_dict.items():  # one curve per entry
        x = xs[name] if isinstance(xs, dict) else xs
        ax.plot(asnumpy(x), asnumpy(ys), "-o", ms=3, label=str(name))
    ax.set(xlabel=xlabel, ylabel=ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_ctc_alignment(probs, *, labels=None, blank=0, min_peak=0.1):
    """CTC posteriors over time: a (C, T) heat map above the per-frame curves, the blank drawn as a
    grey filled area and each class whose peak exceeds ``min_peak`` as a labelled line.

    probs: (T, C) probabilities, or log-probabilities (detected as all ≤ 0), of one utterance.
    labels: a name per class index (the blank's included).
    """
    plt = _plt()
    p = np.asarray(asnumpy(probs), dtype=np.float64)
    if p.ndim == 3 and p.shape[0] == 1:
        p = p[0]
    if p.ndim != 2:
        raise ValueError(f"plot_ctc_alignment: expected (T, C) posteriors of one utterance, "
                         f"got shape {np.shape(probs)}")
    if (p <= 0).all():  # log-probabilities
        p = np.exp(p)
    T, C = p.shape
    names = [str(s) for s in labels] if labels is not None else [str(c) for c in range(C)]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True, gridspec_kw={"height_ratios": [1, 1.3]})
    top.imshow(p.T, aspect="auto", cmap="magma", origin="lower", interpolation="nearest")
    top.set_ylabel("class")
    if C <= 40:
        top.set_yticks(range(C), names, fontsize=6)
    t = np.arange(T)
    bottom.fill_between(t, p[:, blank], color="0.8", step="mid", label=f"blank ({names[blank]})")
    for c in range(C):  # one line per class that is ever likely
        if c != blank and p[:, c].max() >= min_peak:
            bottom.plot(t, p[:, c], lw=1.2, label=names[c])
    bottom.set(xlabel="frame", ylabel="posterior", ylim=(0, 1.02))
    bottom.legend(fontsize=7, ncol=min(6, C), loc="upper right")
    fig.tight_layout()
    return fig
