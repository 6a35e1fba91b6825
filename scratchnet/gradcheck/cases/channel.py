"""Gradient-check cases of the pieces the multi-branch convolutional networks add (chapters 09–13):
channel concatenation, per-channel gating, ReLU6 / hardtanh and drop-path (float64)."""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ..checker import check_function
from ..registry import register_case


def _rng():
    return np.random.default_rng(1234)


def _off_kinks(shape, rng, kinks):
    """Uniform values over the interesting range, kept ≥ 0.05 away from every kink."""
    x = rng.uniform(min(kinks) - 2, max(kinks) + 2, shape)
    for k in kinks:
        near = np.abs(x - k) < 0.05
        x[near] = k + 0.1 * np.sign(x[near] - k + 1e-12)
    return x


@register_case("channel.concat")
def concat_case():
    r = _rng()
    reports = []
    for sizes, axis, shape in [((3, 1, 2), 1, (2, None, 3, 3)), ((2, 4), 1, (1, None, 2, 5)),
                               ((1,), 1, (2, None, 2, 2)), ((3, 2), -1, (2, 3, None))]:
        xs = [r.standard_normal(tuple(c if d is None else d for d in shape)) for c in sizes]
        reports.append(check_function(lambda *a, axis=axis: F.concat(list(a), axis=axis), F.concat_backward, xs,
                                      title=f"concat[{len(sizes)} inputs, sizes {sizes}, axis={axis}]"))
    return reports


@register_case("channel.scale_channels")
def scale_channels_case():
    r = _rng()
    return [check_function(F.scale_channels, F.scale_channels_backward,
                           [r.standard_normal((n, c, h, w)), r.uniform(0.1, 1.0, (n, c))],
                           title=f"scale_channels[{(n, c, h, w)}]")
            for n, c, h, w in [(2, 3, 4, 4), (1, 5, 2, 3), (3, 1, 1, 1)]]


@register_case("core.hardtanh")
def hardtanh_case():
    r = _rng()
    reports = []
    for lo, hi in [(-1.0, 1.0), (0.0, 6.0), (-0.5, 2.0)]:
        for shape in ((3, 4), (2, 3, 5)):
            reports.append(check_function(F.hardtanh, F.hardtanh_backward, [_off_kinks(shape, r, (lo, hi))],
                                          min_val=lo, max_val=hi, title=f"hardtanh[{shape}, [{lo}, {hi}]]"))
    return reports


@register_case("core.relu6")
def relu6_case():
    r = _rng()
    return [check_function(F.relu6, F.relu6_backward, [_off_kinks(shape, r, (0.0, 6.0))], title=f"relu6[{shape}]")
            for shape in ((4, 5), (2, 3, 2, 2))]


@register_case("core.drop_path")
def drop_path_case():
    r = _rng()
    reports = []
    for shape, p in [((4, 3, 2, 2), 0.5), ((3, 5), 0.25), ((5, 2, 3), 0.2)]:
        mask = (np.arange(shape[0]) % 2 == 0) / (1 - p)  # samples 0, 2, ... kept, the others dropped
        for training in (True, False):
            reports.append(check_function(F.drop_path, F.drop_path_backward, [r.standard_normal(shape)], p=p,
                                          mask=mask, training=training,
                                          title=f"drop_path[{shape}, p={p}, fixed mask, training={training}]"))
    return reports
