"""Gradient checking: the checker, and the catalogue of cases that `scratchnet gradcheck` runs.

    from scratchnet.gradcheck import assert_gradients, run_cases
    assert_gradients(F.linear, F.linear_backward, [x, w, b])    # AssertionError with the table if off
    for name, report in run_cases("ctc."): print(report)

The package, bottom layer first (each module imports only those above it in this list):

- ``checker``: ``check_function`` / ``check_module`` compare every analytic gradient with central
  differences in float64 and return a ``GradcheckReport``; ``assert_gradients`` /
  ``assert_module_gradients`` raise with it; ``TOLERANCES`` keyed by dtype.
- ``registry``: ``CASES`` and the ``@register_case("family.op[option]")`` decorator.
- ``cases/``: one module per op family (core, recurrent, ctc, energy, conv, attention, resnet),
  each registering small float64 checks with every option that changes the math; they import
  ``checker`` and ``registry`` only.
- ``catalogue``: ``load_catalogue`` imports ``cases/`` on first use; ``catalogue_names``,
  ``run_case`` and ``run_cases`` list and run them. The tests parametrise over every name.
"""
from .catalogue import catalogue_names, load_catalogue, run_case, run_cases
from .checker import (
    TOLERANCES,
    GradcheckReport,
    GradResult,
    assert_gradients,
    assert_module_gradients,
    check_function,
    check_module,
)
from .registry import CASES, register_case

__all__ = ["TOLERANCES", "GradResult", "GradcheckReport", "check_function", "check_module",
           "assert_gradients", "assert_module_gradients", "register_case", "CASES", "catalogue_names",
           "load_catalogue", "run_case", "run_cases"]
