"""Gradient-check cases of the energy-based and stacked family: the RBM free energy, the DSN module
(the lower weights' gradient through the closed-form ridge U), and a DBN's fine-tuning MLP."""
from __future__ import annotations

import numpy as np

from ... import functional as F
from ..checker import check_function, check_module
from ..registry import register_case


def _rng():
    return np.random.default_rng(1234)


@register_case("energy.free_energy[bernoulli]")
def free_energy_bernoulli_case():
    r = _rng()
    v = (r.random((5, 6)) < 0.5).astype(np.float64)
    return check_function(F.free_energy, F.free_energy_backward,
                          [v, r.standard_normal((6, 4)), r.standard_normal(6), r.standard_normal(4)],
                          visible="bernoulli", title="free_energy[bernoulli]")


@register_case("energy.free_energy[gaussian]")
def free_energy_gaussian_case():
    r = _rng()
    return check_function(F.free_energy, F.free_energy_backward,
                          [r.standard_normal((5, 6)), r.standard_normal((6, 4)), r.standard_normal(6),
                           r.standard_normal(4)], visible="gaussian", title="free_energy[gaussian]")


@register_case("energy.dsn_module")
def dsn_module_case():
    reports = []
    for lam in (0.0, 0.5):  # λ = 0 is the paper's pseudo-inverse form; λ > 0 adds the ridge term
        r = _rng()
        x, w, t = r.standard_normal((20, 6)), r.standard_normal((6, 5)), np.eye(3)[r.integers(0, 3, 20)]
        reports.append(check_function(F.dsn_module, F.dsn_module_backward, [x, w, t], wrt=[0, 1], lam=lam,
                                      names=["x", "w"], title=f"dsn_module[lam={lam}]"))
    return reports


@register_case("energy.dbn_mlp")
def dbn_mlp_case():
    from ...models.dbn import DBN
    dbn = DBN([8, 6, 5], n_labels=3, rng=np.random.default_rng(0))
    mlp = dbn.to_mlp(rng=np.random.default_rng(1)).astype(np.float64)
    x = (_rng().random((3, 8)) < 0.5).astype(np.float64)
    return check_module(mlp, x)
