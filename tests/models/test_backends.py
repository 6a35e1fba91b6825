"""One training step of every model family on two devices: the same initial weights and the same batch
give the same loss, parameter gradients, parameters after an SGD step and buffers (batch-norm running
statistics, observers).

Each case builds a tiny model from a seed and a batch of NumPy arrays, moves them with ``model.to(device)``
and ``backend.to_device``, and runs forward, loss and backward; the harness then takes the gradients,
steps SGD and reads everything back with ``backend.asnumpy``. The pair ("cpu", "cpu") always runs: the
step is deterministic, so the two runs agree bit for bit, which proves every builder, loss and step here.
The pair ("cpu", "gpu") runs where CuPy finds a CUDA device: float32 results within rtol 1e-4 (loss) and
rtol 1e-3, atol 1e-5 · max(1, max |x|) (gradients, parameters, buffers). Stochastic parts are off
(dropout 0, Gumbel noise in evaluation mode, the detectors' sampling drawn once on the CPU and replayed),
since the CPU and the GPU draw different masks by design.

Every input goes to the device (as ``fit(device="gpu")`` moves a whole batch) except those a model reads
with NumPy on the host, which stay NumPy arrays on both devices and are named in the case's ``host``: the
detectors' boxes, labels and replayed sampling and wav2vec 2.0's span mask and negatives (host-side
sampling by design; the models move what they draw to the device). Lengths go with the batch: the
models read them with ``asnumpy``. Models whose code
cannot run on CuPy arrays at all are listed in ``CPU_ONLY`` with the line that stops them; their GPU step
is marked xfail (strict=False, so a fix shows as XPASS). ``test_every_model_class_is_covered`` keeps a
model class from being left out silently.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Callable

import numpy as np
import pytest

import scratchnet.functional as F
import scratchnet.models as models
from scratchnet import backend, nn
from scratchnet.models.dbn import DBN
from scratchnet.models.distill import DistillationLoss, student_mlp
from scratchnet.models.dsn import DSNModule, _with_bias
from scratchnet.models.gan import Discriminator, Generator, discriminator_grads, generator_grads
from scratchnet.models.googlenet import GoogLeNet, GoogLeNetLoss
from scratchnet.models.las import EOS, LAS, PAD
from scratchnet.models.mask_rcnn import MaskRCNN
from scratchnet.models.multimodal import EarlyFusion, IntermediateFusion, LateFusion, Unimodal
from scratchnet.models.pruning import LeNet5Caffe, LeNet300100, apply_masks, magnitude_masks
from scratchnet.models.quant import calibrate, convert, fuse
from scratchnet.models.rbm import RBM
from scratchnet.models.rcnn import FasterRCNN
from scratchnet.models.wav2vec2 import Wav2Vec2, Wav2Vec2CTC, sample_negatives, span_mask
from scratchnet.models.wgan import wgan_critic_grads
from scratchnet.models.yolo import YOLO, YOLOLoss
from scratchnet.optim import SGD

needs_gpu = pytest.mark.skipif(not backend.gpu_available(), reason="needs CuPy and a CUDA device")

LR = 0.1  # the SGD step every case takes
LOSS_RTOL = 1e-4  # float32, CPU against GPU
RTOL, ATOL = 1e-3, 1e-5  # gradients, parameters and buffers (atol scaled by the array's largest magnitude)


@dataclasses.dataclass
class Case:
    """A model family's training step.

    build() → a fresh model (seeded; NumPy arrays). batch() → dict of NumPy inputs. step(model, batch) →
    the loss, after forward, loss and backward have added every parameter gradient into ``p.grad``.
    host: names of batch entries that stay NumPy arrays on every device (the model reads them with NumPy
    on the host). covers: the public model classes of ``scratchnet.models`` the step exercises.
    """
    build: Callable
    batch: Callable
    step: Callable
    covers: tuple
    host: tuple = ()


def _rng(seed=0):
    return np.random.default_rng(seed)


def _images(n, c, s, *, classes, seed=0):
    """{"x": (n, c, s, s) float32, "y": (n,) int64 labels in [0, classes)}."""
    r = _rng(seed)
    return {"x": r.standard_normal((n, c, s, s)).astype(np.float32), "y": r.integers(0, classes, n)}


def _sequences(n, t, d, *, classes, seed=0):
    """{"x": (n, t, d) float32, "lengths": (n,) int64 (the first full, the rest shorter), "y": (n,) labels}."""
    r = _rng(seed)
    lengths = np.concatenate([[t], r.integers(t // 2, t + 1, n - 1)]).astype(np.int64)
    return {"x": r.standard_normal((n, t, d)).astype(np.float32), "lengths": lengths,
            "y": r.integers(0, classes, n)}


def _tokens(n, t, vocab, *, seed=0):
    """{"ids": (n, t) int64 inputs, "y": (n, t) int64 next tokens} in [0, vocab)."""
    ids = _rng(seed).integers(0, vocab, (n, t + 1))
    return {"ids": ids[:, :-1], "y": ids[:, 1:]}


def ce_step(model, b):
    """Softmax cross-entropy of model(x) (N, K) or (N, T, K) against y."""
    crit = nn.CrossEntropyLoss()
    loss = crit(model(b["x"]), b["y"])
    model.backward(crit.backward())
    return loss


def lm_step(model, b):
    """Cross-entropy of next-token logits model(ids) (N, T, V) against y (N, T)."""
    crit = nn.CrossEntropyLoss()
    loss = crit(model(b["ids"]), b["y"])
    model.backward(crit.backward())
    return loss


def sequence_step(model, b):
    """Cross-entropy of a sequence classifier model(x, lengths) (N, K) against y."""
    crit = nn.CrossEntropyLoss()
    loss = crit(model(b["x"], b["lengths"]), b["y"])
    model.backward(crit.backward())
    return loss


# -- the cases, by family ---------------------------------------------------------------------------------------
class _Pair(nn.Module):
    """Two models trained together in one step (a GAN's generator and discriminator): parameters of both."""

    def __init__(self, first, second):
        super().__init__()
        self.first, self.second = first, second


def _rbm_batch():
    """{"v0": (5, 6) binary data, "chain": (4, 6) binary fantasy particles}, float32."""
    r = _rng(3)
    return {"v0": (r.random((5, 6)) < 0.5).astype(np.float32), "chain": (r.random((4, 6)) < 0.5).astype(np.float32)}


def rbm_step(rbm, b):
    """The negative phase at fixed particles (PCD with k = 0: no Gibbs sampling, deterministic): the
    gradient of mean F(v0) − mean F(chain), F the free energy, written into the grads by hand."""
    dw, db, dc, _, _ = rbm.cd_grads(b["v0"], k=0, chain=b["chain"])
    for p, g in zip((rbm.weight, rbm.vbias, rbm.hbias), (dw, db, dc)):  # CD is not backprop: set each grad
        p.grad[...] = g
    return rbm.free_energy(b["v0"]).mean() - rbm.free_energy(b["chain"]).mean()


class _DSNStep(nn.Module):
    """One DSN module whose weight W (D + 1, L) takes a gradient step on e(W) = ‖HU(H) − T‖²/N through the
    closed-form ridge weights U (``F.dsn_module`` / ``F.dsn_module_backward``)."""

    def __init__(self):
        super().__init__()
        self.block = DSNModule(5, 4, 3, rng=0)
        self.lam = 0.5


def dsn_step(model, b):
    """e(W)/N for inputs x (N, D) and one-hot targets t (N, C); dW by ``F.dsn_module_backward``."""
    xk = _with_bias(b["x"])  # (N, D + 1)
    (e, _, _), cache = F.dsn_module(xk, model.block.weight.data, b["t"], lam=model.lam)
    n = b["x"].shape[0]
    _, dw = F.dsn_module_backward((1.0 / n, None, None), cache, need_dx=False)
    model.block.weight.grad += dw
    return e / n


def googlenet_step(model, b):
    """Main and auxiliary cross-entropies (aux weight 0.3) through GoogLeNet's tapped backward."""
    crit = GoogLeNetLoss(model)
    loss = crit(model(b["x"]), b["y"])
    model.backward(crit.backward())
    return loss


def _googlenet():
    """A 12×12-input GoogLeNet, width 1/32: stem, 3a, pool, 4a and 4d (the two auxiliary taps)."""
    return GoogLeNet(3, image_size=12, width=1 / 32, layout=("3a", "M", "4a", "4d"), dropout=0.0, aux_dropout=0.0,
                     rng=0)


def _las():
    return LAS(4, 6, listener_hidden=4, levels=2, speller_hidden=8, embed_dim=4, attn_dim=6, attention="location",
               n_filters=3, width=3, rng=0)


def _las_batch():
    """x (3, 12, 4), lengths (3,), targets (3, 4) ending in EOS, padded with PAD."""
    b = _sequences(3, 12, 4, classes=1, seed=4)
    b["lengths"] = np.array([12, 9, 8])
    b["y"] = np.array([[1, 2, 3, EOS], [4, 5, EOS, PAD], [2, EOS, PAD, PAD]])
    return b


def las_step(model, b):
    """Teacher-forced cross-entropy over the speller's steps, PAD ignored."""
    crit = nn.CrossEntropyLoss(ignore_index=PAD)
    loss = crit(model(b["x"], b["lengths"], b["y"]), b["y"])
    model.backward(crit.backward())
    return loss


def ctc_step(model, b):
    """CTC of a model(x, lengths=) → log-probs (N, T', C) with its own output lengths, targets (N, S) padded."""
    log_probs = model(b["x"], lengths=b["lengths"])
    crit = nn.CTCLoss()
    loss = crit(log_probs, b["targets"], model.output_lengths(backend.asnumpy(b["lengths"])), b["target_lengths"])
    model.backward(crit.backward())
    return loss


def _ctc_batch(n, t, d, *, classes, s, seed):
    """x (n, t, d) float32, lengths (n,), targets (n, s) in [1, classes) (0 is the blank), target_lengths (n,)."""
    b = _sequences(n, t, d, classes=classes, seed=seed)
    r = _rng(seed + 1)
    b["targets"] = r.integers(1, classes, (n, s))
    b["target_lengths"] = np.array([s] + [max(1, s - 1 - i) for i in range(n - 1)])
    return b


def speech_transformer_step(model, b):
    """Attention cross-entropy (padding ignored) plus 0.3 · CTC on the encoder's head."""
    logits, ctc_log_probs = model(b["x"], b["ys_in"], lengths=b["lengths"])
    ce, ctc = nn.CrossEntropyLoss(ignore_index=-100), nn.CTCLoss()
    loss_att = ce(logits, b["ys_out"])
    frames = model.output_lengths(backend.asnumpy(b["lengths"]))  # a host-side helper (np.asarray)
    loss_ctc = ctc(ctc_log_probs, b["targets"], frames, b["target_lengths"])
    model.backward((ce.backward(), ctc.backward(0.3)))
    return loss_att + 0.3 * loss_ctc


def _speech_transformer_batch():
    """x (2, 30, 9), lengths (2,), decoder input/output ids (2, 4) with <sos> = <eos> = 5, CTC targets (2, 3)."""
    b = _sequences(2, 30, 9, classes=1, seed=5)
    b["lengths"] = np.array([30, 19])
    b["ys_in"] = np.array([[5, 1, 2, 3], [5, 3, 4, 5]])
    b["ys_out"] = np.array([[1, 2, 3, 5], [3, 4, 5, -100]])
    b["targets"], b["target_lengths"] = np.array([[1, 2, 3], [3, 4, 0]]), np.array([3, 2])
    return b


def _wav2vec2():
    model = Wav2Vec2(conv_layers=((3, 4, 2), (3, 3, 2)), d_model=8, nhead=2, num_layers=1, dim_feedforward=12,
                     pos_kernel=3, pos_groups=2, num_groups=2, num_vars=3, final_dim=4, dropout=0.0, hard=True, rng=0)
    model.quantizer.eval()  # Gumbel noise off: the plain argmax picks the codewords
    return model


def _wav2vec2_batch():
    """wave (2, 40) float32, lengths (2,) → 9 and 6 frames, a span mask (2, 9), 3 negatives per masked frame."""
    r = _rng(6)
    mask = span_mask(np.array([9, 6]), p=0.3, span=2, rng=1)
    return {"wave": r.standard_normal((2, 40)).astype(np.float32), "lengths": np.array([40, 30]), "mask": mask,
            "negatives": sample_negatives(mask, 3, rng=2), "targets": np.array([[1, 2, 3], [2, 4, 0]]),
            "target_lengths": np.array([3, 2])}


def wav2vec2_step(model, b):
    """The pre-training loss: contrastive over the masked frames plus the diversity term."""
    loss = model(b["wave"], b["mask"], b["negatives"], lengths=b["lengths"])
    model.backward(1.0)
    return loss


def wav2vec2_ctc_step(model, b):
    """Fine-tuning: CTC on the linear head, feature encoder trained too, with the span mask applied."""
    log_probs = model(b["wave"], lengths=b["lengths"], mask=b["mask"])
    crit = nn.CTCLoss()
    loss = crit(log_probs, b["targets"], model.output_lengths(b["lengths"]), b["target_lengths"])
    model.backward(crit.backward())
    return loss


def _scene():
    """Two 8×8 one-channel images with two and one boxes of classes in [0, 3), and a bool mask per box."""
    r = _rng(7)
    boxes = [np.array([[0.5, 1.0, 5.0, 6.5], [3.0, 2.5, 8.0, 7.0]]), np.array([[1.0, 0.0, 6.0, 4.0]])]
    masks = []
    for b in boxes:  # each image's masks: random pixels inside each box, its centre always set
        m = np.zeros((len(b), 8, 8), dtype=bool)
        for k, (x1, y1, x2, y2) in enumerate(b):  # one instance per pass
            m[k, int(y1):int(np.ceil(y2)), int(x1):int(np.ceil(x2))] = True
        masks.append(m & (r.random(m.shape) < 0.7) | _centres(b))
    return {"x": r.standard_normal((2, 1, 8, 8)).astype(np.float32), "boxes": boxes,
            "labels": [np.array([0, 2]), np.array([1])], "masks": masks}


def _centres(boxes):
    """(k, 8, 8) bool: each box's centre pixel."""
    out = np.zeros((len(boxes), 8, 8), dtype=bool)
    for k, (x1, y1, x2, y2) in enumerate(boxes):  # one centre per box
        out[k, int((y1 + y2) / 2), int((x1 + x2) / 2)] = True
    return out


_DETECTOR = dict(in_channels=1, widths=(3, 4), anchor_sizes=(4.0,), anchor_ratios=(1.0, 2.0), pool_size=2,
                 hidden=6, rpn_batch=12, roi_batch=6, pre_nms=20, post_nms=6, rng=3)


def _faster_rcnn():
    return FasterRCNN(3, **_DETECTOR)


def _mask_rcnn():
    return MaskRCNN(3, mask_size=4, mask_channels=3, mask_convs=1, **_DETECTOR)


def _detector_batch(build):
    """The scene plus ``sampled``: anchor labels and targets and the regions of interest, drawn once by
    ``build()``'s loss on the CPU (rng 0) and replayed on every device (proposals are a top-k and NMS of
    scores: a last-bit difference could reorder them)."""
    b = _scene()
    model = build()
    model.loss(b["x"], b["boxes"], b["labels"], rng=0, extra=b["masks"] if isinstance(model, MaskRCNN) else None)
    b["sampled"] = model.last_sampled
    return b


def detector_step(model, b):
    """Faster / Mask R-CNN's training loss (RPN + box head [+ mask head]) with the replayed sampling."""
    extra = b["masks"] if isinstance(model, MaskRCNN) else None
    loss = model.loss(b["x"], b["boxes"], b["labels"], sampled=b["sampled"], extra=extra)
    model.backward_loss(1.0)
    return loss


def _yolo_batch():
    """x (2, 1, 8, 8), target (2, 4, 4, 5 + 3) from one or two boxes per image (grid of 4 × 4 cells)."""
    b = _scene()
    b["target"] = F.yolo_targets(b["boxes"], b["labels"], (4, 4), (8, 8), num_classes=3)
    return b


def yolo_step(model, b):
    """YOLO v1's sum-squared loss of the head's (N, S, S, 5B + K) output against the grid targets."""
    crit = YOLOLoss(B=2)
    loss = crit(model(b["x"]), b["target"])
    model.backward(crit.backward())
    return loss


def _gan_batch():
    """real (3, 1, 28, 28) in [−1, 1], fake (3, 1, 28, 28) (an array: no gradient to a generator), z (3, 8)."""
    r = _rng(8)
    return {"real": np.tanh(r.standard_normal((3, 1, 28, 28))).astype(np.float32),
            "fake": np.tanh(r.standard_normal((3, 1, 28, 28))).astype(np.float32),
            "z": r.standard_normal((3, 8)).astype(np.float32)}


def discriminator_step(D, b):
    """BCE on real (label 1) and fake (label 0) images, two forward passes (batch norm per batch)."""
    loss, _, _ = discriminator_grads(D, b["real"], b["fake"])
    return loss


def generator_step(pair, b):
    """The non-saturating generator loss, backpropagated through the discriminator into G (D's grads zeroed)."""
    return generator_grads(pair.first, pair.second, b["z"])


def critic_gp_step(critic, b):
    """WGAN-GP: mean D(fake) − mean D(real) + 10 · the gradient penalty on interpolates (ε from rng 0)."""
    loss, _, _ = wgan_critic_grads(critic, b["real"], b["fake"], lam=10.0, rng=_rng(0))
    return loss


_MM = dict(features=8, hidden=6, channels=(2, 4))  # small encoders: a 2-4 channel CNN, an LSTM of 6


def _multimodal_batch():
    """image (3, 1, 28, 28), audio (3, 5, 4) with lengths (3,), labels (3,)."""
    r = _rng(9)
    return {"image": r.standard_normal((3, 1, 28, 28)).astype(np.float32),
            "audio": r.standard_normal((3, 5, 4)).astype(np.float32), "lengths": np.array([5, 3, 4]),
            "y": r.integers(0, 10, 3)}


def multimodal_step(model, b):
    """Cross-entropy of model(image, audio, lengths) (N, 10) against the digit labels."""
    crit = nn.CrossEntropyLoss()
    loss = crit(model(b["image"], b["audio"], b["lengths"]), b["y"])
    model.backward(crit.backward())
    return loss


def _pruned(model):
    """``model`` with every masked layer pruned to 60 % sparsity by magnitude (the masks then matter)."""
    from scratchnet.models.pruning import masked_layers
    apply_masks(model, magnitude_masks(model, {name: 0.6 for name, _ in masked_layers(model)}))
    return model


def _qat():
    """A fused, calibrated LeNet5Modern with fake quantisation on (quantisation-aware training)."""
    x = _rng(10).standard_normal((4, 1, 32, 32)).astype(np.float32)
    return calibrate(fuse(models.LeNet5Modern(rng=0)), x).enable_fake_quant().train()


def distill_step(student, b):
    """α T² KL(teacher ‖ student at temperature T) + (1 − α) CE(student, y), T = 4, α = 0.7."""
    crit = DistillationLoss(T=4.0, alpha=0.7)
    loss = crit(student(b["x"]), b["teacher"], b["y"])
    student.backward(crit.backward())
    return loss


def _distill_batch():
    """x (4, 784) float32, labels (4,), the teacher's logits (4, 10)."""
    r = _rng(11)
    return {"x": r.standard_normal((4, 784)).astype(np.float32), "y": r.integers(0, 10, 4),
            "teacher": (3 * r.standard_normal((4, 10))).astype(np.float32)}


CASES = {
    # convolutional
    "lenet5": Case(lambda: models.LeNet5(rng=0), lambda: _images(4, 1, 32, classes=10), ce_step, ("LeNet5",)),
    "lenet5_modern": Case(lambda: models.LeNet5Modern(rng=0), lambda: _images(4, 1, 32, classes=10), ce_step,
                          ("LeNet5Modern",)),
    "alexnet": Case(lambda: models.AlexNet(4, image_size=16, widths=(3, 4, 4, 4, 3), hidden=6, dropout=0.0, rng=0),
                    lambda: _images(3, 1, 16, classes=4), ce_step, ("AlexNet",)),
    "vgg": Case(lambda: models.VGG((2, 2, "M", 3, "M"), 3, image_size=8, batch_norm=True, hidden=5, dropout=0.0,
                                   rng=0), lambda: _images(3, 1, 8, classes=3), ce_step, ("VGG",)),
    "googlenet": Case(_googlenet, lambda: _images(3, 1, 12, classes=3), googlenet_step, ("GoogLeNet",)),
    "resnet": Case(lambda: models.ResNet(8, 3, width=2, rng=0), lambda: _images(3, 1, 8, classes=3), ce_step,
                   ("ResNet",)),
    "resnet_bottleneck": Case(lambda: models.ResNet(11, 3, width=2, block="bottleneck", rng=0),
                              lambda: _images(3, 1, 8, classes=3), ce_step, ("ResNet",)),
    "densenet": Case(lambda: models.DenseNet((2, 2), 3, 3, stem_pool=True, rng=0),
                     lambda: _images(2, 1, 8, classes=3), ce_step, ("DenseNet",)),
    "densenet_shared": Case(lambda: models.DenseNet((2, 2), 3, 3, stem_pool=True, memory="shared", rng=0),
                            lambda: _images(2, 1, 8, classes=3), ce_step, ("DenseNet",)),
    "mobilenet": Case(lambda: models.MobileNet(3, alpha=0.125, blocks=((16, 2), (16, 1)), stem=16, rng=0),
                      lambda: _images(2, 1, 8, classes=3), ce_step, ("MobileNet",)),
    "mobilenet_v2": Case(lambda: models.MobileNetV2(3, alpha=0.25, stages=((1, 16, 1, 2), (2, 16, 2, 1)), head=16,
                                                    rng=0), lambda: _images(2, 1, 8, classes=3), ce_step,
                         ("MobileNetV2",)),
    "efficientnet": Case(lambda: models.EfficientNet(3, stages=((1, 4, 1, 2, 3), (3, 4, 2, 1, 3), (3, 8, 1, 2, 5)),
                                                     stem=4, head=8, dropout=0.0, drop_connect=0.0, rng=0),
                         lambda: _images(2, 1, 8, classes=3), ce_step, ("EfficientNet",)),
    # energy-based and stacked
    "rbm": Case(lambda: RBM(6, 4, init_std=0.5, rng=0), _rbm_batch, rbm_step, ("RBM",)),
    "dbn": Case(lambda: DBN([6, 5, 4], rng=0).to_mlp(3, rng=1), lambda: {
        "x": (_rng(12).random((4, 6)) < 0.5).astype(np.float32), "y": np.array([0, 2, 1, 2])}, ce_step, ("DBN",)),
    "dsn": Case(_DSNStep, lambda: {"x": _rng(13).standard_normal((6, 5)).astype(np.float32),
                                   "t": np.eye(3, dtype=np.float32)[[0, 1, 2, 0, 1, 2]]}, dsn_step, ("DSN",)),
    # sequences and speech
    "charlm_rnn": Case(lambda: models.CharLM(5, 4, embed_dim=3, cell="rnn", rng=0), lambda: _tokens(2, 5, 5),
                       lm_step, ("CharLM",)),
    "charlm_lstm": Case(lambda: models.CharLM(5, 4, embed_dim=3, cell="lstm", rng=0), lambda: _tokens(2, 5, 5),
                        lm_step, ("CharLM",)),
    "charlm_gru": Case(lambda: models.CharLM(5, 4, embed_dim=3, cell="gru", rng=0), lambda: _tokens(2, 5, 5),
                       lm_step, ("CharLM",)),
    "speech_classifier": Case(lambda: models.SpeechClassifier(3, 4, 5, cell="lstm", bidirectional=True, rng=0),
                              lambda: _sequences(3, 6, 3, classes=5), sequence_step, ("SpeechClassifier",)),
    "speech_classifier_mean": Case(lambda: models.SpeechClassifier(3, 4, 5, cell="gru", pool="mean", rng=0),
                                   lambda: _sequences(3, 6, 3, classes=5), sequence_step, ("SpeechClassifier",)),
    "deepspeech": Case(lambda: models.DeepSpeech(3, 5, context=1, hidden=4, stride=2, dropout=0.0, rng=0),
                       lambda: _ctc_batch(3, 8, 3, classes=5, s=2, seed=14), ctc_step, ("DeepSpeech",)),
    "seq2seq": Case(lambda: models.AttentionSeq2Seq(10, 5, d_emb=4, d_hidden=6, d_attn=3, rng=0),
                    lambda: {"x": _rng(15).integers(0, 10, (2, 5)), "y": _rng(16).integers(0, 10, (2, 5))}, ce_step,
                    ("AttentionSeq2Seq",)),
    "las": Case(_las, _las_batch, las_step, ("LAS",)),
    # attention
    "gpt": Case(lambda: models.GPT(7, 6, n_layer=2, n_head=2, d_model=8, dim_feedforward=12, rng=0),
                lambda: _tokens(2, 6, 7), lm_step, ("GPT",)),
    "bert_mlm": Case(lambda: models.BertForMaskedLM(9, 8, n_layer=1, n_head=2, d_model=8, rng=0), lambda: {
        **_tokens(2, 6, 9, seed=17), "segments": np.array([[0, 0, 0, 1, 1, 1]] * 2),
        "pad": np.array([[False] * 6, [False] * 4 + [True] * 2])}, lambda m, b: _bert_step(m, b, mlm=True),
        ("BertForMaskedLM", "BertEncoder")),
    "bert_classifier": Case(lambda: models.BertForSequenceClassification(9, 8, 3, n_layer=1, n_head=2, d_model=8,
                                                                         rng=0),
                            lambda: {**_tokens(2, 6, 9, seed=18), "y": np.array([2, 0]),
                                     "segments": np.zeros((2, 6), np.int64),
                                     "pad": np.array([[False] * 6, [False] * 5 + [True]])},
                            lambda m, b: _bert_step(m, b, mlm=False), ("BertForSequenceClassification", "BertEncoder")),
    "vit": Case(lambda: models.ViT(4, image_size=8, patch_size=4, d_model=8, depth=2, num_heads=2, mlp_ratio=2,
                                   rng=0), lambda: _images(3, 1, 8, classes=4), ce_step, ("ViT",)),
    "speech_transformer": Case(lambda: models.SpeechTransformer(9, 6, d_model=8, nhead=2, num_encoder_layers=1,
                                                                num_decoder_layers=1, dim_feedforward=12, channels=3,
                                                                dropout=0.0, max_len=32, rng=0),
                               _speech_transformer_batch, speech_transformer_step, ("SpeechTransformer",)),
    "wav2vec2": Case(_wav2vec2, _wav2vec2_batch, wav2vec2_step, ("Wav2Vec2",),
                     host=("mask", "negatives")),
    "wav2vec2_ctc": Case(lambda: Wav2Vec2CTC(_wav2vec2(), 5, freeze_feature_encoder=False, rng=1), _wav2vec2_batch,
                         wav2vec2_ctc_step, ("Wav2Vec2CTC",), host=("mask",)),
    # detection
    "faster_rcnn": Case(_faster_rcnn, lambda: _detector_batch(_faster_rcnn), detector_step, ("FasterRCNN",),
                        host=("boxes", "labels", "masks", "sampled")),
    "mask_rcnn": Case(_mask_rcnn, lambda: _detector_batch(_mask_rcnn), detector_step, ("MaskRCNN",),
                      host=("boxes", "labels", "masks", "sampled")),
    "yolo": Case(lambda: YOLO(3, widths=(3, 4), rng=0), _yolo_batch, yolo_step, ("YOLO",),
                 host=("boxes", "labels", "masks")),
    # generative
    "dcgan_discriminator": Case(lambda: Discriminator(4, rng=1), _gan_batch, discriminator_step, ("Discriminator",)),
    "dcgan_generator": Case(lambda: _Pair(Generator(8, 4, rng=0), Discriminator(4, rng=1)), _gan_batch,
                            generator_step, ("Generator",)),
    "wgan_gp_critic": Case(lambda: models.Critic(4, rng=2), _gan_batch, critic_gp_step, ("Critic",)),
    # real-time
    "unimodal_audio": Case(lambda: Unimodal("audio", 4, rng=0, **_MM), _multimodal_batch, multimodal_step,
                           ("Unimodal",)),
    "early_fusion": Case(lambda: EarlyFusion(4, joint=6, rng=0, **_MM), _multimodal_batch, multimodal_step,
                         ("EarlyFusion",)),
    "late_fusion": Case(lambda: LateFusion(4, rng=0, **_MM), _multimodal_batch, multimodal_step, ("LateFusion",)),
    "intermediate_fusion": Case(lambda: IntermediateFusion(4, joint=6, rng=0, **_MM), _multimodal_batch,
                                multimodal_step, ("IntermediateFusion",)),
    "pruned_lenet300100": Case(lambda: _pruned(LeNet300100(rng=0)), lambda: {
        "x": _rng(19).standard_normal((3, 784)).astype(np.float32), "y": np.array([1, 7, 3])}, ce_step,
        ("LeNet300100",)),
    "pruned_lenet5_caffe": Case(lambda: _pruned(LeNet5Caffe(rng=0)), lambda: _images(2, 1, 28, classes=10), ce_step,
                                ("LeNet5Caffe",)),
    "qat_lenet5": Case(_qat, lambda: _images(4, 1, 32, classes=10, seed=20), ce_step, ("QuantNet",)),
    "distill_student": Case(lambda: student_mlp(6, rng=0), _distill_batch, distill_step, ()),
}


def _bert_step(model, b, *, mlm):
    """MLM: cross-entropy at every position (padding ignored); classifier: cross-entropy of the [CLS] logits."""
    crit = nn.CrossEntropyLoss(ignore_index=-100)
    logits = model(b["ids"], b["segments"], b["pad"])
    target = backend.get_array_module(b["y"]).where(b["pad"], -100, b["y"]) if mlm else b["y"]
    loss = crit(logits, target)
    model.backward(crit.backward())
    return loss


# model classes without a training step; each is compared by a test of its own below
NO_TRAINING_STEP = {"Int8Net": "inference only (Int8Net.backward raises): test_int8_inference_matches"}

# case → why its step cannot run on CuPy arrays (the line that stops it), found by reading the code
CPU_ONLY = {
    "qat_lenet5": "QuantNet with fake quantisation: weight_qparams → F.affine_params reads the weight's range "
                  "with np.asarray (functional/quant.py), which refuses a CuPy array",
    "int8_inference": "Int8Net: its first step, F.quantize, adds np.asarray(zero_point), a NumPy array, to the "
                      "device codes (functional/quant.py): a NumPy array in a CuPy sum",
}


# -- the harness -----------------------------------------------------------------------------------------------
def _move(value, device):
    """An array on ``device``, recursing into lists, tuples and dicts; other values unchanged."""
    if isinstance(value, dict):
        return {k: _move(v, device) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_move(v, device) for v in value)
    if isinstance(value, np.ndarray) or backend.is_cupy(value):
        return backend.to_device(value, device)
    return value


def run_step(case, device):
    """Build, move, step: (loss, {name: grad}, {name: parameter or buffer after the SGD step}), all NumPy."""
    model = case.build().to(device)
    batch = {k: (v if k in case.host else _move(v, device)) for k, v in case.batch().items()}
    model.zero_grad()
    loss = float(case.step(model, batch))
    grads = {name: backend.asnumpy(p.grad) for name, p in model.named_parameters()}
    SGD(model.parameters(), lr=LR).step()
    wrong = [name for name, p in model.named_parameters() if backend.device_of(p.data) != device]
    if wrong:
        raise AssertionError(f"run_step: parameters {wrong[:5]} left device {device!r} during the step")
    return loss, grads, model.state_dict()


def assert_close(name, got, want, *, exact):
    """``got`` equals ``want`` (bit for bit when ``exact``; else float32 tolerances scaled by want's magnitude)."""
    if got.shape != want.shape or got.dtype != want.dtype:
        raise AssertionError(f"{name}: {got.dtype} {got.shape} against {want.dtype} {want.shape}")
    if exact:
        np.testing.assert_array_equal(got, want, err_msg=name)
    else:
        scale = max(1.0, float(np.abs(want).max())) if want.size and want.dtype.kind == "f" else 1.0
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL * scale, err_msg=name)


def _pairs():
    """("cpu", "cpu") for every case; ("cpu", "gpu") skipped without a GPU, xfail for CPU_ONLY cases."""
    params = []
    for name in CASES:  # two device pairs per case
        params.append(pytest.param(name, ("cpu", "cpu"), id=f"{name}-cpu-cpu"))
        marks = [needs_gpu]
        if name in CPU_ONLY:
            marks.append(pytest.mark.xfail(reason=CPU_ONLY[name], strict=False))
        params.append(pytest.param(name, ("cpu", "gpu"), id=f"{name}-cpu-gpu", marks=marks))
    return params


@pytest.mark.parametrize("name,devices", _pairs())
def test_training_step_matches_across_devices(name, devices):
    case, (a, b) = CASES[name], devices
    loss_a, grads_a, state_a = run_step(case, a)
    loss_b, grads_b, state_b = run_step(case, b)
    exact = a == b
    assert np.isfinite(loss_a), f"{name}: loss {loss_a} on {a}"
    assert loss_b == loss_a if exact else loss_b == pytest.approx(loss_a, rel=LOSS_RTOL)
    assert grads_b.keys() == grads_a.keys() and state_b.keys() == state_a.keys()
    assert any(np.abs(g).max() > 0 for g in grads_a.values()), f"{name}: every gradient is zero"
    for key in grads_a:  # every parameter's gradient
        assert_close(f"{name}: grad of {key} ({b} against {a})", grads_b[key], grads_a[key], exact=exact)
    for key in state_a:  # every parameter after the step, and every buffer
        assert_close(f"{name}: {key} after the step ({b} against {a})", state_b[key], state_a[key], exact=exact)


def _int8_pair():
    """A converted int8 LeNet5Modern and a float32 batch (3, 1, 32, 32)."""
    x = _rng(21).standard_normal((3, 1, 32, 32)).astype(np.float32)
    return convert(calibrate(fuse(models.LeNet5Modern(rng=0)), x)), x


@pytest.mark.parametrize("devices", [("cpu", "cpu"), pytest.param(("cpu", "gpu"), marks=[
    needs_gpu, pytest.mark.xfail(reason=CPU_ONLY["int8_inference"], strict=False)])], ids=["cpu-cpu", "cpu-gpu"])
def test_int8_inference_matches(devices):
    """Int8Net (inference only): integer arithmetic, so the logits agree bit for bit on every device."""
    out = []
    for device in devices:  # one forward per device
        net, x = _int8_pair()
        with nn.no_grad():
            out.append(backend.asnumpy(net.to(device)(backend.to_device(x, device))))
    np.testing.assert_array_equal(out[1], out[0])


def test_every_model_class_is_covered():
    """Every model class that ``scratchnet.models`` exports has a step here, or a documented reason."""
    exported = {name for name, obj in vars(models).items()
                if inspect.isclass(obj) and issubclass(obj, nn.Module) and obj.__module__.startswith(models.__name__)}
    covered = {c for case in CASES.values() for c in case.covers} | set(NO_TRAINING_STEP)
    assert not exported - covered, f"model classes without a cross-device step: {sorted(exported - covered)}"
    assert not covered - exported, f"covers names that scratchnet.models does not export: {sorted(covered - exported)}"
    unknown = set(CPU_ONLY) - set(CASES) - {"int8_inference"}
    assert not unknown, f"CPU_ONLY names unknown cases: {sorted(unknown)}"


def test_host_inputs_name_batch_entries():
    """A case's ``host`` list names entries its batch has (a typo would silently move an input)."""
    for name, case in CASES.items():  # one batch per case
        missing = set(case.host) - set(case.batch())
        assert not missing, f"{name}: host names {sorted(missing)}, not in its batch"
