"""Audio-visual digits: an MNIST image and an FSDD utterance of the same digit, classified alone or
fused early (concatenated features), late (weighted log-probabilities) or in between (a gated
multimodal unit, Arevalo et al. 2017), with optional modality dropout in training.

Legend: N pairs, (1, 28, 28) an image, T frames, D audio features per frame, F encoder features,
J joint hidden units, K = 10 classes. Every model takes ``(image, audio, lengths)`` and returns
logits (N, K); ``backward(dlogits)`` returns ``(dimage, daudio)`` (None for an unused modality).

    idx = pair_by_label(y_audio, y_images, rng=0)     # one image of the same digit per utterance
    model = EarlyFusion(n_features=80, rng=0)          # or Unimodal, LateFusion, IntermediateFusion
    hist = train_bimodal(model, Adam(model.parameters(), lr=2e-3), train, val, epochs=20)

See chapters/32-multimodal.md.
"""
from __future__ import annotations

import time

import numpy as np

from .. import functional as F
from .._random import get_rng
from ..backend import asnumpy, get_array_module
from ..nn.conv import Conv2d, MaxPool2d
from ..nn.layers import Flatten, Linear, ReLU, Sigmoid, Tanh
from ..nn.module import Module, Parameter, Sequential, no_grad
from ..optim import clip_grad_norm
from .speech_classifier import SpeechClassifier, bucketed_batches

__all__ = ["pair_by_label", "image_encoder", "AudioEncoder", "Unimodal", "EarlyFusion", "LateFusion",
           "IntermediateFusion", "modality_keep_mask", "paired_batches", "accuracy", "train_bimodal",
           "noisy_images", "add_noise"]

IMAGE_SHAPE = (1, 28, 28)


# -- pairing and degradation ---------------------------------------------------------------------------
def pair_by_label(labels, image_labels, *, rng=None):
    """For every utterance label, the index of an image with the same label (N,), a seeded draw.

    Within a digit the images are taken in a random order without repetition, cycling only when a
    digit has fewer images than utterances. See chapters/32-multimodal.md#pairing.
    """
    rng, labels, image_labels = get_rng(rng), np.asarray(labels), np.asarray(image_labels)
    out = np.empty(len(labels), dtype=np.int64)  # (N,)
    for digit in np.unique(labels):
        where, pool = np.flatnonzero(labels == digit), np.flatnonzero(image_labels == digit)
        if len(pool) == 0:
            raise ValueError(f"pair_by_label: no image of label {digit} to pair with")
        order = rng.permutation(pool)
        out[where] = order[np.arange(len(where)) % len(order)]
    return out


def noisy_images(x, sigma, *, rng=None):
    """x + σ·ε, ε ~ N(0, 1) per pixel (x in [0, 1]); no clipping. A new array of x's dtype."""
    rng = get_rng(rng)
    return (x + sigma * rng.standard_normal(x.shape)).astype(x.dtype)


def add_noise(wave, snr_db, *, rng=None):
    """wave plus white Gaussian noise at ``snr_db`` dB below the wave's mean power (float32)."""
    rng = get_rng(rng)
    power = float(np.mean(np.square(wave))) / 10.0 ** (snr_db / 10.0)
    return (wave + np.sqrt(power) * rng.standard_normal(wave.shape)).astype(np.float32)


# -- encoders ------------------------------------------------------------------------------------------
def image_encoder(features=64, channels=(8, 16), *, rng=None, dtype=np.float32) -> Sequential:
    """conv 3×3 → ReLU → pool → conv 3×3 → ReLU → pool → linear → ReLU: (N, 1, 28, 28) → (N, F)."""
    c1, c2 = channels
    kw = dict(rng=rng, dtype=dtype)
    return Sequential(Conv2d(1, c1, 3, padding=1, **kw), ReLU(), MaxPool2d(2),  # c1@14×14
                      Conv2d(c1, c2, 3, padding=1, **kw), ReLU(), MaxPool2d(2), Flatten(),  # c2·7·7
                      Linear(c2 * 49, features, **kw), ReLU())


class AudioEncoder(Module):
    """Chapter 15's classifier as an encoder: LSTM → mean over valid frames → linear → ReLU: (N, T, D) → (N, F)."""

    def __init__(self, n_features, features=64, hidden=64, *, cell="lstm", rng=None, dtype=np.float32):
        super().__init__()
        self.net = SpeechClassifier(n_features, hidden, features, cell=cell, pool="mean", rng=rng, dtype=dtype)
        self.act = ReLU()

    def forward(self, x, lengths=None):
        return self.act(self.net(x, lengths))  # (N, F)

    def backward(self, dfeat):
        return self.net.backward(self.act.backward(dfeat))  # (N, T, D)


def modality_keep_mask(n, p, *, rng=None):
    """(n, 2) keep mask, never both dropped: with a float p a sample loses one modality (a fair coin)
    with probability p; with a pair (p_image, p_audio) it loses its image with probability p_image, else
    its audio with probability p_audio. See chapters/32-multimodal.md#modality-dropout."""
    rng = get_rng(rng)
    keep = np.ones((n, 2), dtype=np.int8)  # (n, 2) 1 = kept
    if np.ndim(p) == 0:
        drop = np.flatnonzero(rng.random(n) < p)
        keep[drop, rng.integers(0, 2, len(drop))] = 0
    else:
        u = rng.random(n)  # (n,) one draw decides both
        keep[u < p[0], 0] = 0
        keep[(u >= p[0]) & (u < p[0] + p[1]), 1] = 0
    return keep


# -- the shared input handling -------------------------------------------------------------------------
class _Bimodal(Module):
    """Input checks and modality dropout for every model; subclasses write ``_forward`` / ``_backward``."""

    def __init__(self, n_features, p_drop, rng, dtype):
        super().__init__()
        pair = np.ndim(p_drop) == 1 and len(p_drop) == 2
        total = float(np.sum(p_drop)) if pair else p_drop
        if not (pair or np.ndim(p_drop) == 0) or min(np.ravel(p_drop)) < 0 or not 0.0 <= total < 1.0:
            raise ValueError(f"{type(self).__name__}: p_drop must be in [0, 1) or a pair (p_image, p_audio) of "
                             f"sum in [0, 1), got {p_drop}")
        p_drop = tuple(float(q) for q in p_drop) if pair else float(p_drop)
        self.n_features, self.p_drop, self.rng = n_features, p_drop, get_rng(rng)
        self.register_buffer("image_fill", np.zeros(IMAGE_SHAPE, dtype=dtype))  # what a missing image becomes
        self.register_buffer("audio_fill", np.zeros(n_features, dtype=dtype))  # what a missing frame becomes

    def set_missing(self, image_fill, audio_fill):
        """The inputs that stand for a missing modality: a blank image (1, 28, 28), a frame of silence (D,)."""
        self.image_fill[...] = image_fill
        self.audio_fill[...] = audio_fill
        return self

    def _check(self, image, audio, lengths):
        name = type(self).__name__
        if image.ndim != 4 or image.shape[1:] != IMAGE_SHAPE:
            raise ValueError(f"{name}: expected image (N, 1, 28, 28), got shape {tuple(image.shape)}")
        if audio.ndim != 3 or audio.shape[2] != self.n_features or audio.shape[0] != image.shape[0]:
            raise ValueError(f"{name}: expected audio (N, T, {self.n_features}) with N = {image.shape[0]} "
                             f"(the images'), got shape {tuple(audio.shape)}")
        if lengths is not None and np.shape(lengths) != (image.shape[0],):
            raise ValueError(f"{name}: expected lengths ({image.shape[0]},), got shape {np.shape(lengths)}")

    def forward(self, image, audio, lengths=None):
        if isinstance(image, (tuple, list)):  # one batch tuple (image, audio, lengths)
            image, audio, lengths = image
        self._check(image, audio, lengths)
        drop = None
        if self.training and np.sum(self.p_drop) > 0:
            keep = modality_keep_mask(image.shape[0], self.p_drop, rng=self.rng)  # (N, 2)
            image, ci = F.modality_dropout(image, self.image_fill, mask=keep[:, 0])
            audio, ca = F.modality_dropout(audio, self.audio_fill, mask=keep[:, 1])
            drop = (ci, ca)
        self.push(drop)
        return self._forward(image, audio, lengths)

    def backward(self, dlogits):
        dimage, daudio = self._backward(dlogits)
        drop = self.pop()
        if drop is not None:  # the fills are buffers: their gradients are not kept
            dimage = None if dimage is None else F.modality_dropout_backward(dimage, drop[0])[0]
            daudio = None if daudio is None else F.modality_dropout_backward(daudio, drop[1])[0]
        return dimage, daudio


# -- the models ----------------------------------------------------------------------------------------
class Unimodal(_Bimodal):
    """One modality alone: image → CNN → linear, or audio → LSTM encoder → linear. The baselines."""

    def __init__(self, modality, n_features, *, features=64, hidden=64, channels=(8, 16), num_classes=10,
                 cell="lstm", rng=None, dtype=np.float32):
        if modality not in ("image", "audio"):
            raise ValueError(f"Unimodal: modality must be 'image' or 'audio', got {modality!r}")
        super().__init__(n_features, 0.0, rng, dtype)
        self.modality = modality
        kw = dict(rng=self.rng, dtype=dtype)
        self.encoder = (image_encoder(features, channels, **kw) if modality == "image"
                        else AudioEncoder(n_features, features, hidden, cell=cell, **kw))
        self.head = Linear(features, num_classes, **kw)

    def _forward(self, image, audio, lengths):
        feat = self.encoder(image) if self.modality == "image" else self.encoder(audio, lengths)  # (N, F)
        return self.head(feat)  # (N, K)

    def _backward(self, dlogits):
        dx = self.encoder.backward(self.head.backward(dlogits))
        return (dx, None) if self.modality == "image" else (None, dx)

    def config(self):
        return {"class": "Unimodal", "modality": self.modality}


def _encoders(self, n_features, features, hidden, channels, cell, dtype):
    kw = dict(rng=self.rng, dtype=dtype)
    self.image = image_encoder(features, channels, **kw)
    self.audio = AudioEncoder(n_features, features, hidden, cell=cell, **kw)


# start-early-fusion
class EarlyFusion(_Bimodal):
    """Features concatenated, then a joint network: [f_img, f_aud] → linear → ReLU → linear."""

    def __init__(self, n_features, *, features=64, hidden=64, joint=64, channels=(8, 16), num_classes=10,
                 cell="lstm", p_drop=0.0, rng=None, dtype=np.float32):
        super().__init__(n_features, p_drop, rng, dtype)
        _encoders(self, n_features, features, hidden, channels, cell, dtype)
        kw = dict(rng=self.rng, dtype=dtype)
        self.joint = Sequential(Linear(2 * features, joint, **kw), ReLU(), Linear(joint, num_classes, **kw))

    def _forward(self, image, audio, lengths):
        f_img = self.image(image)  # (N, F)
        f_aud = self.audio(audio, lengths)  # (N, F)
        h, cache = F.concat_fusion(f_img, f_aud)  # (N, 2F) the fusion point
        self.push(cache)
        return self.joint(h)  # (N, K)

    def _backward(self, dlogits):
        dh = self.joint.backward(dlogits)  # (N, 2F)
        df_img, df_aud = F.concat_fusion_backward(dh, self.pop())  # each encoder gets its own columns
        return self.image.backward(df_img), self.audio.backward(df_aud)
# end-early-fusion


# start-late-fusion-model
class LateFusion(_Bimodal):
    """Two complete classifiers; y = α_img log p_img + α_aud log p_aud with α = softmax(w) learned."""

    def __init__(self, n_features, *, features=64, hidden=64, channels=(8, 16), num_classes=10, cell="lstm",
                 p_drop=0.0, rng=None, dtype=np.float32):
        super().__init__(n_features, p_drop, rng, dtype)
        kw = dict(rng=self.rng, dtype=dtype)
        self.image = Sequential(image_encoder(features, channels, **kw), Linear(features, num_classes, **kw))
        self.audio = SpeechClassifier(n_features, hidden, num_classes, cell=cell, pool="mean", **kw)
        self.w = Parameter(np.zeros(2, dtype=dtype))  # α = (½, ½) at the start

    def _forward(self, image, audio, lengths):
        logp_img, c_img = F.log_softmax(self.image(image))  # (N, K)
        logp_aud, c_aud = F.log_softmax(self.audio(audio, lengths))  # (N, K)
        xp = get_array_module(logp_img)
        y, c_fuse = F.late_fusion(xp.stack([logp_img, logp_aud], axis=1), self.w.data)  # (N, K)
        self.push((c_img, c_aud, c_fuse))
        return y  # log of a weighted geometric mean: cross-entropy renormalises it

    def _backward(self, dy):
        c_img, c_aud, c_fuse = self.pop()
        dlogps, dw = F.late_fusion_backward(dy, c_fuse)  # (N, 2, K), (2,)
        self.w.grad += dw
        dz_img = F.log_softmax_backward(dlogps[:, 0], c_img)  # (N, K) through each classifier's log-softmax
        dz_aud = F.log_softmax_backward(dlogps[:, 1], c_aud)
        return self.image.backward(dz_img), self.audio.backward(dz_aud)

    @property
    def alpha(self):
        """The current modality weights softmax(w): (α_img, α_aud)."""
        w = asnumpy(self.w.data).astype(np.float64)
        e = np.exp(w - w.max())
        return e / e.sum()
# end-late-fusion-model


# start-intermediate-fusion
class IntermediateFusion(_Bimodal):
    """Gated multimodal unit: h = z ⊙ tanh(f_img W_i) + (1 − z) ⊙ tanh(f_aud W_a), z = σ([f_img, f_aud] W_z)."""

    def __init__(self, n_features, *, features=64, hidden=64, joint=64, channels=(8, 16), num_classes=10,
                 cell="lstm", p_drop=0.0, rng=None, dtype=np.float32):
        super().__init__(n_features, p_drop, rng, dtype)
        _encoders(self, n_features, features, hidden, channels, cell, dtype)
        kw = dict(rng=self.rng, dtype=dtype)
        self.proj_image = Sequential(Linear(features, joint, **kw), Tanh())
        self.proj_audio = Sequential(Linear(features, joint, **kw), Tanh())
        self.gate = Sequential(Linear(2 * features, joint, **kw), Sigmoid())
        self.head = Linear(joint, num_classes, **kw)

    def _forward(self, image, audio, lengths):
        f_img = self.image(image)  # (N, F)
        f_aud = self.audio(audio, lengths)  # (N, F)
        h_img, h_aud = self.proj_image(f_img), self.proj_audio(f_aud)  # (N, J) each in (−1, 1)
        both, c_cat = F.concat_fusion(f_img, f_aud)  # (N, 2F) what the gate reads
        z = self.gate(both)  # (N, J) in (0, 1): per sample and unit, how much to trust the image
        h, c_gmu = F.gated_fusion(h_img, h_aud, z)  # (N, J)
        self.push((c_cat, c_gmu))
        return self.head(h)  # (N, K)

    def _backward(self, dlogits):
        c_cat, c_gmu = self.pop()
        dh = self.head.backward(dlogits)  # (N, J)
        dh_img, dh_aud, dz = F.gated_fusion_backward(dh, c_gmu)
        dboth = self.gate.backward(dz)  # (N, 2F)
        df_img_gate, df_aud_gate = F.concat_fusion_backward(dboth, c_cat)
        df_img = self.proj_image.backward(dh_img) + df_img_gate  # f_img has two consumers: projection, gate
        df_aud = self.proj_audio.backward(dh_aud) + df_aud_gate
        return self.image.backward(df_img), self.audio.backward(df_aud)
# end-intermediate-fusion

    def gates(self, image, audio, lengths=None):
        """The gate z (N, J) on a batch, in evaluation mode: near 1 trusts the image, near 0 the audio."""
        with no_grad():
            f_img, f_aud = self.image(image), self.audio(audio, lengths)
            return self.gate(F.concat_fusion(f_img, f_aud)[0])


# -- data and training ---------------------------------------------------------------------------------
def paired_batches(images, feats, lengths, labels, *, batch_size, rng=None, shuffle=True):
    """Batches ((image, audio, lengths), labels) of utterances of similar length with their paired images.

    images (N, 1, 28, 28) already paired (row n goes with utterance n); feats a list of (T_n, D).
    """
    index = np.arange(len(labels))
    for (x, L), idx in bucketed_batches(feats, lengths, index, batch_size=batch_size, rng=rng, shuffle=shuffle):
        yield (images[idx], x, L), labels[idx]


def accuracy(model, data, *, batch_size=100):
    """Accuracy of ``model`` on ``data = (images, feats, lengths, labels)`` in evaluation mode."""
    was = model.training
    model.eval()
    hits = 0
    with no_grad():
        for xb, yb in paired_batches(*data, batch_size=batch_size, shuffle=False):
            hits += int((np.asarray(model(*xb)).argmax(1) == yb).sum())
    model.train(was)
    return hits / len(data[3])


def train_bimodal(model, optimizer, train, val=None, *, epochs, batch_size=32, rng=None, scheduler=None,
                  clip_norm=5.0, time_limit=None, score=None, keep_best=False, log=False):
    """Train on ``train = (images, feats, lengths, labels)`` with cross-entropy; a list of per-epoch rows.

    ``scheduler`` steps once per epoch; ``time_limit`` (s) stops after the first epoch that ends past it.
    ``score(model)`` (optional) is a validation criterion logged as ``val_score`` (default: the validation
    accuracy); with ``keep_best`` the weights of the epoch with the highest score are restored at the end.
    Each row: epoch, train_loss, val_accuracy (when ``val`` is given), val_score, seconds, ms_per_step.
    """
    rng, rows, start, best = get_rng(rng), [], time.perf_counter(), (-np.inf, None)
    for epoch in range(1, epochs + 1):
        t0, losses = time.perf_counter(), []
        model.train()
        for xb, yb in paired_batches(*train, batch_size=batch_size, rng=rng):
            loss, cache = F.cross_entropy(model(*xb), yb)
            optimizer.zero_grad()
            model.backward(F.cross_entropy_backward(1.0, cache))
            if clip_norm:
                clip_grad_norm(model.parameters(), clip_norm)
            optimizer.step()
            losses.append(float(loss))
        seconds = time.perf_counter() - t0
        row = {"epoch": epoch, "train_loss": float(np.mean(losses)), "seconds": seconds,
               "ms_per_step": 1000 * seconds / len(losses)}
        if val is not None:
            row["val_accuracy"] = accuracy(model, val)
        if score is not None or val is not None:
            row["val_score"] = float(score(model)) if score is not None else row["val_accuracy"]
            if keep_best and row["val_score"] > best[0]:
                best = (row["val_score"], {k: v.copy() for k, v in model.state_dict().items()})
        rows.append(row)
        if scheduler is not None:
            scheduler.step()
        if log:
            print(" ".join(f"{k} {v:.4g}" for k, v in row.items()), flush=True)
        if time_limit is not None and time.perf_counter() - start > time_limit:
            break
    if best[1] is not None:
        model.load_state_dict(best[1])
    return rows
