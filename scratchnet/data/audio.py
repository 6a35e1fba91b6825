"""Speech data: the Free Spoken Digit Dataset (FSDD) wav files, log-mel / MFCC features, padding,
and a connected-digit set built from it for CTC.

Legend: N utterances, T frames, D feature dimensions, S transcript length (characters).
Reads ``dataset_path("fsdd")/recordings/{digit}_{speaker}_{index}.wav`` (8 kHz mono 16-bit). The
upstream split: recordings with index 0–4 are the test set (300), 5–49 the training set (2,700).
Features need librosa and soundfile: ``pip install "scratchnet[audio]"``.
See chapters/17-ctc.md#data.
"""
from __future__ import annotations

import re
from typing import NamedTuple

import numpy as np

from .registry import dataset_path

__all__ = ["Utterance", "ConnectedUtterance", "load_fsdd", "log_mel", "mfcc", "normalize_features", "pad_batch",
           "CharVocab", "DIGIT_VOCAB", "connected_digits", "FSDD_SPEAKERS"]

FSDD_SR = 8000
FSDD_SPEAKERS = ("george", "jackson", "lucas", "nicolas", "theo", "yweweler")
_NAME = re.compile(r"^(\d)_([a-z]+)_(\d+)\.wav$")


class Utterance(NamedTuple):
    """One FSDD recording: waveform float32 (samples,) in [−1, 1], sample rate, digit, speaker, index."""
    wave: np.ndarray
    sr: int
    digit: int
    speaker: str
    index: int  # the take number 0–49 (0–4: test split)

    @property
    def text(self) -> str:
        """The transcript: the digit as a character ("7")."""
        return str(self.digit)


class ConnectedUtterance(NamedTuple):
    """Several digits of one speaker in one waveform, its transcript ("3 7 1") and its sources."""
    wave: np.ndarray
    sr: int
    text: str
    speaker: str
    sources: tuple  # ((digit, index), ...) of the FSDD recordings used, in order


def _require(module: str):
    try:
        return __import__(module)
    except ImportError as err:
        raise ImportError(f"scratchnet.data.audio needs {module} for this step: "
                          f'pip install "scratchnet[audio]"  (librosa and soundfile)') from err


def load_fsdd(split="train", *, root=None, download=True, speakers=None):
    """The FSDD recordings of one split as a list of ``Utterance`` sorted by (speaker, digit, index).

    split: "train" (index 5–49, 2,700 files), "test" (index 0–4, 300 files) or "all". ``speakers``
    keeps only the named speakers. Each item unpacks as ``wave, sr, digit, speaker, index``.
    ``root`` is the data root holding ``fsdd/`` (default ``data_root()``); missing files are
    downloaded and checked unless ``download=False``.
    """
    if split not in ("train", "test", "all"):
        raise ValueError(f"load_fsdd: split must be 'train', 'test' or 'all', got {split!r}")
    sf = _require("soundfile")
    folder = dataset_path("fsdd", root=root, download=download) / "recordings"
    items = []
    for path in folder.iterdir():  # one file name per pass: keep the wavs of this split
        m = _NAME.match(path.name)
        if m is None:
            continue
        digit, speaker, index = m.group(1), m.group(2), int(m.group(3))
        if (split == "test" and index > 4) or (split == "train" and index <= 4):
            continue
        if speakers is not None and speaker not in speakers:
            continue
        items.append((speaker, int(digit), index, path))
    if not items:
        raise FileNotFoundError(f"load_fsdd: no recordings named '{{digit}}_{{speaker}}_{{index}}.wav' in {folder}")
    out = []
    for speaker, digit, index, path in sorted(items):  # read in a stable order
        wave, sr = sf.read(str(path), dtype="float32", always_2d=False)  # (samples,)
        if wave.ndim != 1 or sr != FSDD_SR:
            raise ValueError(f"load_fsdd: {path.name} is not 8 kHz mono (sr={sr}, shape {wave.shape})")
        out.append(Utterance(wave, sr, digit, speaker, index))
    return out


# -- features ------------------------------------------------------------------------------------
def _frames(sr, win_ms, hop_ms):
    win = int(round(sr * win_ms / 1000))
    hop = int(round(sr * hop_ms / 1000))
    n_fft = 1 << (win - 1).bit_length()  # the next power of two ≥ the window
    return win, hop, n_fft


def log_mel(wave, sr=FSDD_SR, *, n_mels=40, win_ms=25, hop_ms=10, fmin=0.0, fmax=None, eps=1e-6):
    """Log mel filterbank energies (T, n_mels) float32: log(eps + mel power) per frame.

    Hann windows of ``win_ms`` every ``hop_ms`` (centred frames: T = 1 + samples // hop), FFT size
    the next power of two. At 8 kHz: 200-sample windows, 80-sample hop, 256-point FFT.
    """
    librosa = _require("librosa")
    win, hop, n_fft = _frames(sr, win_ms, hop_ms)
    mel = librosa.feature.melspectrogram(y=np.asarray(wave, dtype=np.float32), sr=sr, n_fft=n_fft,
                                         win_length=win, hop_length=hop, n_mels=n_mels, fmin=fmin,
                                         fmax=fmax if fmax is not None else sr / 2, power=2.0)  # (n_mels, T)
    return np.log(mel + eps).T.astype(np.float32)  # (T, n_mels)


def mfcc(wave, sr=FSDD_SR, *, n_mfcc=13, n_mels=40, win_ms=25, hop_ms=10):
    """MFCCs (T, n_mfcc) float32: the DCT-II of the log (dB) mel energies, first n_mfcc kept."""
    librosa = _require("librosa")
    win, hop, n_fft = _frames(sr, win_ms, hop_ms)
    mel = librosa.feature.melspectrogram(y=np.asarray(wave, dtype=np.float32), sr=sr, n_fft=n_fft,
                                         win_length=win, hop_length=hop, n_mels=n_mels, fmax=sr / 2)  # (n_mels, T)
    coeffs = librosa.feature.mfcc(S=librosa.power_to_db(mel), n_mfcc=n_mfcc)  # (n_mfcc, T)
    return coeffs.T.astype(np.float32)  # (T, n_mfcc)


def normalize_features(feats, *, eps=1e-5):
    """Per-utterance mean/variance normalisation over time: (x − mean_t) / (std_t + eps), (T, D)."""
    feats = np.asarray(feats)
    mean = feats.mean(axis=0, keepdims=True)  # (1, D)
    std = feats.std(axis=0, keepdims=True)  # (1, D)
    return ((feats - mean) / (std + eps)).astype(feats.dtype)


def pad_batch(seqs, *, value=0.0, dtype=None):
    """Stack a list of (T_i, D) arrays (or (T_i,) integer sequences) into (N, T_max, D), lengths (N,).

    Positions past each length hold ``value``; lengths is int64.
    """
    if len(seqs) == 0:
        raise ValueError("pad_batch: got an empty list")
    seqs = [np.asarray(s) for s in seqs]
    tail = seqs[0].shape[1:]
    for i, s in enumerate(seqs):  # every item must share the trailing shape
        if s.shape[1:] != tail:
            raise ValueError(f"pad_batch: item {i} has shape {s.shape}, expected (T_i,) + {tail}")
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)  # (N,)
    dtype = dtype or seqs[0].dtype
    out = np.full((len(seqs), max(int(lengths.max()), 1)) + tail, value, dtype=dtype)  # (N, T_max, ...)
    for i, s in enumerate(seqs):  # copy each sequence into its row
        out[i, :len(s)] = s
    return out, lengths


# -- transcripts -----------------------------------------------------------------------------------
class CharVocab:
    """Characters ↔ class ids for CTC, the blank at index ``0``: ids 1.. are ``chars`` in order.

    >>> v = CharVocab(" 0123456789"); v.encode("3 7")  → [4, 1, 8]; v.decode([4, 1, 8]) → "3 7"
    """

    blank = 0

    def __init__(self, chars):
        if len(set(chars)) != len(chars):
            raise ValueError(f"CharVocab: characters must be distinct, got {chars!r}")
        self.chars = "".join(chars)
        self.index = {c: i + 1 for i, c in enumerate(self.chars)}

    def __len__(self):
        """The number of classes, the blank included (C of the CTC output layer)."""
        return len(self.chars) + 1

    def encode(self, text):
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise ValueError(f"CharVocab.encode: characters {unknown} are not in the vocabulary {self.chars!r}")
        return [self.index[c] for c in text]

    def decode(self, ids):
        """Ids → text; the blank (and any id outside the vocabulary) is dropped."""
        return "".join(self.chars[i - 1] for i in (int(j) for j in ids) if 1 <= i <= len(self.chars))

    def encode_batch(self, texts):
        """Padded targets (N, S_max) int64 (padding = blank) and target lengths (N,)."""
        return pad_batch([np.array(self.encode(t), dtype=np.int64) for t in texts], value=self.blank)

    def __repr__(self):
        return f"CharVocab({self.chars!r}, blank=0)"


DIGIT_VOCAB = CharVocab(" 0123456789")  # blank 0, space 1, digits '0'..'9' → 2..11 (C = 12)


def connected_digits(utterances, *, n_sequences, min_len=2, max_len=5, rng, silence_ms=(50, 200),
                     noise=1e-4):
    """Connected-digit utterances: ``min_len``..``max_len`` FSDD digits of ONE speaker, concatenated
    with random silences (uniform in ``silence_ms``) before, between and after them.

    ``utterances`` is a list of single-digit ``Utterance`` (pass one split, so the train and test
    sets never share a recording). The silence holds Gaussian noise of std ``noise`` (a silent but
    not digitally-zero channel). Returns a list of ``ConnectedUtterance`` with text like "3 7 1 9".
    """
    if not 1 <= min_len <= max_len:
        raise ValueError(f"connected_digits: need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    by_speaker = {}
    for u in utterances:  # group the recordings by speaker
        by_speaker.setdefault(u.speaker, []).append(u)
    speakers = sorted(by_speaker)
    if not speakers:
        raise ValueError("connected_digits: no utterances given")
    sr = utterances[0].sr
    out = []
    for _ in range(n_sequences):  # one sequence: a speaker, then its digits
        speaker = speakers[rng.integers(len(speakers))]
        pool = by_speaker[speaker]
        picks = [pool[i] for i in rng.integers(len(pool), size=rng.integers(min_len, max_len + 1))]
        pieces = []
        for u in picks:  # silence, then the digit
            pieces.append(_silence(rng, sr, silence_ms, noise))
            pieces.append(u.wave)
        pieces.append(_silence(rng, sr, silence_ms, noise))
        wave = np.concatenate(pieces).astype(np.float32)  # (samples,)
        out.append(ConnectedUtterance(wave, sr, " ".join(u.text for u in picks), speaker,
                                      tuple((u.digit, u.index) for u in picks)))
    return out


def _silence(rng, sr, silence_ms, noise):
    n = int(sr * rng.uniform(*silence_ms) / 1000)
    return (noise * rng.standard_normal(n)).astype(np.float32)  # (n,)
