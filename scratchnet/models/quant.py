"""int8 quantisation of a trained network: fold batch norm, calibrate, convert to int8 layers (post-training
quantisation, PTQ), or fine-tune with fake quantisation first (quantisation-aware training, QAT).

Legend: N batch, C channels, s scale, z zero point, [q_min, q_max] = [−128, 127] for activations and
[−127, 127] for weights (symmetric, z = 0; per-tensor or per output channel).

    qnet = fuse(model)                      # BN folded into the conv; ReLU fused; float, fake quant off
    calibrate(qnet, X_calib)                # observers record each activation's range (training data)
    int8 = convert(qnet, per_channel=True)  # int8 weights, int32 biases, fixed-point multipliers
    logits = int8(x)                        # runs the int8 kernels; float in, float logits out
    qnet.enable_fake_quant(); fit(qnet, ...) # QAT: train through fake quantisation (STE), then convert

Works for chains of Conv2d / Linear (each optionally followed by BatchNorm2d and ReLU / ReLU6) with
max pooling, flattening and global average pooling between them: chapter 06's LeNet5Modern and
chapter 12's MobileNet (V1). See chapters/34-quantization.md.
"""
from __future__ import annotations

import numpy as np

from .. import functional as F
from ..functional.quant import affine_params, quantize
from ..kernels.int8 import qconv2d_acc, qlinear_acc, quantize_multiplier, requantize
from ..nn.conv import Conv2d, GlobalAvgPool2d, MaxPool2d
from ..nn.layers import BatchNorm2d, Flatten, Linear, ReLU, ReLU6
from ..nn.module import Module, Parameter, Sequential
from .mobilenet import DepthwiseSeparable, MobileNet, StandardConvBlock

__all__ = ["Observer", "QuantConv2d", "QuantLinear", "QuantNet", "Int8Net", "fuse", "calibrate", "convert",
           "float_weight_bytes", "int8_weight_bytes", "QA", "QW"]

QA, QW = (-128, 127), (-127, 127)  # activation and weight integer ranges
_ACTS = {None: (None, None), "relu": (F.relu, F.relu_backward), "relu6": (F.relu6, F.relu6_backward)}


class Observer(Module):
    """Records an activation's range: running min/max (``momentum=None``) or an exponential moving
    average (QAT); ``method="percentile"`` averages each batch's (100 − p)-th and p-th percentiles."""

    def __init__(self, method="minmax", *, momentum=None, percentile=99.99, max_samples=1 << 16, rng=0):
        super().__init__()
        if method not in ("minmax", "percentile"):
            raise ValueError(f"Observer: method must be 'minmax' or 'percentile', got {method!r}")
        self.method, self.momentum, self.percentile, self.max_samples = method, momentum, percentile, max_samples
        self.rng = np.random.default_rng(rng)
        self.register_buffer("lo", np.array(np.inf))
        self.register_buffer("hi", np.array(-np.inf))
        self.register_buffer("batches", np.array(0))

    def update(self, a):
        if self.method == "minmax":
            lo, hi = F.calibrate_minmax(a)
        else:
            flat = a.ravel()
            if flat.size > self.max_samples:  # a random subsample is enough for a percentile
                flat = flat[self.rng.integers(0, flat.size, self.max_samples)]
            lo, hi = F.calibrate_percentile(flat, self.percentile)
        n = int(self.batches)
        if n == 0:
            new = float(lo), float(hi)
        elif self.momentum is not None:  # EMA, as in QAT
            m = self.momentum
            new = (1 - m) * float(self.lo) + m * float(lo), (1 - m) * float(self.hi) + m * float(hi)
        elif self.method == "minmax":  # the range of everything seen
            new = min(float(self.lo), float(lo)), max(float(self.hi), float(hi))
        else:  # the mean of the batches' percentiles
            new = (n * float(self.lo) + float(lo)) / (n + 1), (n * float(self.hi) + float(hi)) / (n + 1)
        self.lo[...], self.hi[...], self.batches[...] = new[0], new[1], n + 1

    def qparams(self):
        """(s, z) of the observed range on [−128, 127]."""
        if int(self.batches) == 0:
            raise RuntimeError("Observer: no data observed yet (run calibrate first)")
        return affine_params(float(self.lo), float(self.hi), qmin=QA[0], qmax=QA[1])


def weight_qparams(w, axis, per_channel):
    """Symmetric scales of a weight: max |w| per output channel (``axis``) or over the tensor, / 127."""
    axes = tuple(a for a in range(w.ndim) if a != axis)
    amax = np.abs(w).max(axis=axes) if per_channel else np.full(w.shape[axis], np.abs(w).max())
    s, z = affine_params(-amax, amax, qmin=QW[0], qmax=QW[1], symmetric=True, dtype=w.dtype)
    return s, z


def _frozen_residual(frozen, site, a, s, axis):
    """None (round as usual) unless frozen: then the residual δ recorded at the site's first call, plus a
    fixed jitter in ±0.1 that keeps values off the clip points and pooling ties. The STE is the exact
    gradient of fake quantisation with *any* frozen residual, so the gradient check stays exact."""
    if frozen is None:
        return None
    if site not in frozen:
        jitter = np.random.default_rng(len(frozen)).uniform(-0.1, 0.1, a.shape)
        frozen[site] = F.rounding_residual(a, s, axis=axis) + jitter
    return frozen[site]


# start-quant-layer
class _QuantLayer(Module):
    """A conv or linear layer with its activation fused, fake-quantising its weight and output when
    ``fake_quant`` is on (QAT), observing its output in training mode (calibration and QAT)."""
    _fn = _bwd = None
    axis = 0  # the weight's output-channel axis

    def __init__(self, weight, bias, act=None, *, opts=None, per_channel=True, quantize_output=True, observer=None):
        super().__init__()
        self.weight, self.bias = Parameter(weight.copy()), Parameter(bias.copy())
        self.act, self.opts, self.per_channel = act, dict(opts or {}), per_channel
        self.quantize_output, self.fake_quant, self._frozen = quantize_output, False, None
        self.obs = observer or Observer()

    def _fq(self, site, a, s, z, qrange, axis=None):
        """fake_quant, with this site's frozen rounding residual when frozen (gradient checks)."""
        residual = _frozen_residual(self._frozen, site, a, s, axis)
        return F.fake_quant(a, s, z, qmin=qrange[0], qmax=qrange[1], axis=axis, residual=residual)

    def forward(self, x):
        w, cw = self.weight.data, None
        if self.fake_quant:  # ŵ = fake_quant(w): the weights the int8 layer will use
            s_w, z_w = self._frozen["s_w"] if self._frozen else weight_qparams(w, self.axis, self.per_channel)
            w, cw = self._fq("w", w, s_w, z_w, QW, axis=self.axis)
        u, cu = type(self)._fn(x, w, self.bias.data, **self.opts)  # the conv / affine map
        fn = _ACTS[self.act][0]
        a, ca = fn(u) if fn else (u, None)  # the fused activation
        if self.training and self._frozen is None and self.quantize_output:
            self.obs.update(a)  # calibration / QAT: record the output's range
        y, cy = a, None
        if self.fake_quant and self.quantize_output:  # what the next int8 layer will read
            y, cy = self._fq("y", a, *self.obs.qparams(), QA)
        self.push((cw, cu, ca, cy))
        return y

    def backward(self, dy):
        cw, cu, ca, cy = self.pop()
        da = F.fake_quant_backward(dy, cy)[0] if cy is not None else dy  # STE: dy where a was in range
        du = _ACTS[self.act][1](da, ca) if self.act else da  # through the activation
        dx, dw_hat, db = type(self)._bwd(du, cu)  # through the conv / affine map, with ŵ
        dw = F.fake_quant_backward(dw_hat, cw)[0] if cw is not None else dw_hat  # STE: ŵ → w
        self.weight.grad += dw
        self.bias.grad += db
        return dx
# end-quant-layer

    def freeze_rounding(self, headroom=1.0):
        """Fix the weight scales (× ``headroom``) and record each site's rounding residual at the next
        forward, reusing it afterwards: the forward becomes smooth, so a gradient check is honest."""
        s_w, z_w = weight_qparams(self.weight.data, self.axis, self.per_channel)
        self._frozen = {"s_w": (s_w * headroom, z_w)}

    def extra_repr(self):
        return f"{tuple(self.weight.shape)}, act={self.act}, per_channel={self.per_channel}"


class QuantConv2d(_QuantLayer):
    """Conv2d (BN folded in) + activation, quantisation-aware. Weight (C_out, C_in/groups, KH, KW)."""
    _fn, _bwd = staticmethod(F.conv2d), staticmethod(F.conv2d_backward)
    axis = 0


class QuantLinear(_QuantLayer):
    """Linear + activation, quantisation-aware. Weight (D_in, D_out): output channels on axis 1."""
    _fn, _bwd = staticmethod(F.linear), staticmethod(F.linear_backward)
    axis = 1


class QuantNet(Module):
    """The fused chain: input fake-quant (when on), then each layer; backward in reverse."""

    def __init__(self, layers, observer=None):
        super().__init__()
        self.layers, self.input_obs, self.fake_quant, self._frozen = list(layers), observer or Observer(), False, None

    def forward(self, x):
        cx = None
        if self.training and self._frozen is None:
            self.input_obs.update(x)
        if self.fake_quant:
            s, z = self.input_obs.qparams()
            residual = _frozen_residual(self._frozen, "x", x, s, None)
            x, cx = F.fake_quant(x, s, z, qmin=QA[0], qmax=QA[1], residual=residual)
        self.push(cx)
        for layer in self.layers:
            x = layer(x)
        return x

    def backward(self, dy):
        for layer in reversed(self.layers):
            dy = layer.backward(dy)
        cx = self.pop()
        return F.fake_quant_backward(dy, cx)[0] if cx is not None else dy

    def quant_layers(self):
        return [m for m in self.layers if isinstance(m, _QuantLayer)]

    def enable_fake_quant(self, on=True, *, momentum=0.01):
        """QAT: fake quantisation on, observers switched to an EMA of the range (``momentum``)."""
        self.fake_quant = on
        for m in self.quant_layers():
            m.fake_quant = on
        for obs in [self.input_obs] + [m.obs for m in self.quant_layers()]:
            obs.momentum = momentum if on else None
        return self

    def freeze_rounding(self, headroom=1.0):
        """Freeze every rounding residual and scale, and widen the observed ranges by ``headroom`` − 1 of their span
        on each side (gradient checks: no value then sits on a clip point)."""
        self._frozen = {}
        for m in self.quant_layers():
            m.freeze_rounding(headroom)
        for obs in [self.input_obs] + [m.obs for m in self.quant_layers()]:
            span = (obs.hi - obs.lo) * (headroom - 1)  # both ways: real 0 is then no longer the code q_min
            obs.lo -= span
            obs.hi += span
        return self

    def set_per_channel(self, per_channel):
        for m in self.quant_layers():
            m.per_channel = per_channel
        return self


# -- folding and fusing -----------------------------------------------------------------------------
def _float_layers(model):
    """The model as a flat chain of layers (Sequential, or a MobileNet V1 without a head)."""
    if isinstance(model, Sequential):
        return list(model.layers)
    if isinstance(model, MobileNet) and model.head is None:
        chain = [model.stem, model.stem_bn, model.stem_act]
        for blk in model.blocks:
            if isinstance(blk, DepthwiseSeparable):
                chain += [blk.dw, blk.bn1, blk.relu1, blk.pw, blk.bn2, blk.relu2]
            elif isinstance(blk, StandardConvBlock):
                chain += [blk.conv, blk.bn, blk.relu]
        return chain + [model.pool, model.fc]
    raise ValueError(f"fuse: expected a Sequential or a MobileNet (V1) chain, got {type(model).__name__} "
                     "(residual additions are not supported)")


# start-fold-bn
def fold_bn(w, b, bn):
    """Conv weight and bias with an eval-mode BatchNorm2d folded in: w' = w·γ/σ per output channel,
    b' = (b − μ)·γ/σ + β with σ = √(running_var + ε)."""
    g = bn.weight.data / np.sqrt(bn.running_var + bn.eps)  # (C_out,)
    return w * g.reshape(-1, 1, 1, 1), (b - bn.running_mean) * g + bn.bias.data
# end-fold-bn


def fuse(model, *, per_channel=True, observer="minmax", percentile=99.99):
    """A ``QuantNet`` computing what ``model`` computes in eval mode: BN folded, activations fused."""
    chain, layers, i = _float_layers(model), [], 0
    make_obs = lambda: Observer(observer, percentile=percentile)  # noqa: E731
    while i < len(chain):
        m = chain[i]
        if isinstance(m, (Conv2d, Linear)):
            w, c_out = m.weight.data.copy(), m.weight.shape[0 if isinstance(m, Conv2d) else 1]
            b = m.bias.data.copy() if m.bias is not None else np.zeros(c_out, w.dtype)
            if i + 1 < len(chain) and isinstance(chain[i + 1], BatchNorm2d):
                w, b = fold_bn(w, b, chain[i + 1])
                i += 1
            act = None
            if i + 1 < len(chain) and isinstance(chain[i + 1], (ReLU, ReLU6)):
                act = "relu" if isinstance(chain[i + 1], ReLU) else "relu6"
                i += 1
            cls, opts = (QuantConv2d, dict(m.opts)) if isinstance(m, Conv2d) else (QuantLinear, {})
            layers.append(cls(w.astype(m.weight.dtype), b.astype(m.weight.dtype), act, opts=opts,
                              per_channel=per_channel, observer=make_obs()))
        elif isinstance(m, MaxPool2d):
            layers.append(MaxPool2d(**m.opts))
        elif isinstance(m, (Flatten, GlobalAvgPool2d)):
            layers.append(type(m)(**m.opts))
        else:
            raise ValueError(f"fuse: cannot quantise a {type(m).__name__} here (layer {i} of the chain)")
        i += 1
    quant = [m for m in layers if isinstance(m, _QuantLayer)]
    if not quant or layers[-1] is not quant[-1]:
        raise ValueError("fuse: the chain must end with a Conv2d or Linear layer (the logits)")
    quant[-1].quantize_output = False  # the logits leave the int8 path as floats
    return QuantNet(layers, make_obs()).eval()


def calibrate(net, X, *, batch_size=256):
    """Run ``net`` on calibration inputs X (training data) in training mode without gradients, so that
    every observer records its activation's range; the observers are reset first."""
    from ..nn.module import no_grad
    for obs in [net.input_obs] + [m.obs for m in net.quant_layers()]:
        obs.lo[...], obs.hi[...], obs.batches[...] = np.inf, -np.inf, 0
    net.train()
    with no_grad():
        for start in range(0, len(X), batch_size):
            net(X[start:start + batch_size])
    return net.eval()


# -- the int8 network -----------------------------------------------------------------------------------
# start-int8-layer
class Int8Layer(Module):
    """An int8 conv or linear layer: acc = b_q + Σ (x_q − z_x)·w_q in int32, then either the next
    layer's codes y_q = clip(round(acc·M) + z_y) (M = s_x·s_w/s_y as m₀·2^(−shift)) or, for the
    logits, the floats acc·s_x·s_w."""

    def __init__(self, layer, s_x, z_x, out_qparams):
        super().__init__()
        w, b = layer.weight.data, layer.bias.data
        s_w, _ = weight_qparams(w, layer.axis, layer.per_channel)  # (C_out,)
        self.kind, self.opts, self.act = type(layer).__name__, dict(layer.opts), layer.act
        self.register_buffer("w_q", quantize(w, s_w, 0, qmin=QW[0], qmax=QW[1], axis=layer.axis))
        s_acc = (np.float64(s_x) * s_w.astype(np.float64))  # (C_out,) the scale of one unit of acc
        self.register_buffer("b_q", np.round(b / s_acc).astype(np.int32))  # the bias on acc's scale
        self.register_buffer("s_acc", s_acc.astype(np.float32))
        self.z_x, self.out_qparams = int(z_x), out_qparams
        if out_qparams is not None:
            m0, shift = quantize_multiplier(s_acc / np.float64(out_qparams[0]))
            self.register_buffer("m0", m0.astype(np.int32))  # < 2^31
            self.register_buffer("shift", shift.astype(np.int32))

    def forward(self, x_q):
        if self.kind == "QuantConv2d":
            acc = qconv2d_acc(x_q, self.w_q, self.b_q, x_zero_point=self.z_x, **self.opts)  # (N, C, OH, OW)
        else:
            acc = qlinear_acc(x_q, self.w_q, self.b_q, x_zero_point=self.z_x)  # (N, M)
        if self.out_qparams is None:  # the logits
            return acc.astype(np.float32) * self.s_acc  # (N, M) float logits
        # requantise; the clip at q_min (real 0 when z_y = −128) is the fused ReLU
        return requantize(acc, self.m0, self.shift, zero_point=int(self.out_qparams[1]), qmin=QA[0], qmax=QA[1])
# end-int8-layer


class Int8MaxPool(Module):
    """Max pooling on the codes: the affine map q ↦ (q − z)s is increasing, so max commutes with it."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        if padding:
            raise ValueError("Int8MaxPool: padding is not supported")
        self.k, self.s = kernel_size, stride or kernel_size

    def forward(self, q):
        win = np.lib.stride_tricks.sliding_window_view(q, (self.k, self.k), axis=(2, 3))[:, :, ::self.s, ::self.s]
        return win.max(axis=(-2, -1))


class Int8GlobalAvgPool(Module):
    """(N, C, H, W) codes → (N, C): the rounded mean of the codes (same scale and zero point)."""

    def forward(self, q):
        L = q.shape[2] * q.shape[3]
        total = q.astype(np.int64).sum(axis=(2, 3))  # (N, C)
        return ((2 * total + L) // (2 * L)).astype(np.int8)  # round to nearest, ties up


class Int8Flatten(Module):
    def forward(self, q):
        return q.reshape(q.shape[0], -1)


class Int8Net(Module):
    """Quantise the float input with the calibrated (s, z), run the int8 layers, return float logits."""

    def __init__(self, layers, s_in, z_in):
        super().__init__()
        self.layers, self.s_in, self.z_in = layers, s_in, z_in

    def forward(self, x):
        q = quantize(x, self.s_in, self.z_in, qmin=QA[0], qmax=QA[1])
        for layer in self.layers:
            q = layer(q)
        return q

    def backward(self, dy):
        raise RuntimeError("Int8Net: inference only (train the QuantNet with fake quantisation instead)")


def convert(net, *, per_channel=None):
    """The int8 network of a calibrated ``QuantNet`` (weights per channel unless ``per_channel=False``)."""
    if per_channel is not None:
        net.set_per_channel(per_channel)
    s, z = net.input_obs.qparams()
    layers = []
    for m in net.layers:
        if isinstance(m, _QuantLayer):
            out = m.obs.qparams() if m.quantize_output else None
            layers.append(Int8Layer(m, s, z, out))
            s, z = out if out is not None else (None, None)
        elif isinstance(m, MaxPool2d):
            layers.append(Int8MaxPool(**m.opts))
        elif isinstance(m, GlobalAvgPool2d):
            layers.append(Int8GlobalAvgPool())
        else:
            layers.append(Int8Flatten())
    return Int8Net(layers, *net.input_obs.qparams()).eval()


def float_weight_bytes(model):
    """Bytes of every parameter of a float model (weights, biases, BN's γ and β)."""
    return int(sum(p.data.nbytes for p in model.parameters()))


def int8_weight_bytes(net):
    """Bytes an int8 network stores: int8 weights, int32 biases, per-channel scales and multipliers."""
    return int(sum(getattr(m, name).nbytes for _, m, name in net.named_buffers()))
