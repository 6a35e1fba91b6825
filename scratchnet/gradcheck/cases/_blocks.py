"""Shared by the case modules of the convolutional families (resnet, googlenet, densenet, mobilenet,
efficientnet): a module checked in training mode, or in evaluation mode with non-trivial running
statistics. Not a case module itself (it registers nothing)."""
from __future__ import annotations

import numpy as np

from ..checker import check_module


def eval_mode(module, rng):
    """Non-trivial running statistics, then evaluation mode (BN becomes an affine map, dropout and
    drop-path the identity)."""
    for bn in [m for m in module.modules() if hasattr(m, "running_var")]:
        bn.running_mean[...] = 0.3 * rng.standard_normal(bn.running_mean.shape)
        bn.running_var[...] = rng.uniform(0.5, 2.0, bn.running_var.shape)
    return module.eval()


def module_case(make, input_shape, title, *, training, fast, seed):
    """A zero-argument case: build ``make(rng)``, set its mode, check it on a standard normal input."""
    def run():
        rng = np.random.default_rng(seed)
        module = make(rng)
        if not training:
            eval_mode(module, rng)
        report = check_module(module, rng.standard_normal(input_shape), fast=fast)
        report.title = title
        return report
    return run
