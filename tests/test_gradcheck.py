"""The gradient checker itself: it passes right gradients, fails wrong ones, and reads well."""
import numpy as np
import pytest

import scratchnet.functional as F
from scratchnet.gradcheck import TOLERANCES, assert_gradients, check_function


def wrong_tanh_backward(dy, cache):
    (y,) = cache
    return dy * (1.0 - y)  # forgot the square


def test_detects_wrong_gradient_and_reports_worst_index(rng):
    x = rng.standard_normal((3, 4))
    report = check_function(F.tanh, wrong_tanh_backward, [x])
    assert not report.ok
    row = report.results[0]
    assert row.shape == (3, 4) and len(row.worst_index) == 2 and row.rel_err > 1e-2
    with pytest.raises(AssertionError, match="gradcheck tanh: FAIL"):
        assert_gradients(F.tanh, wrong_tanh_backward, [x])


def test_fast_mode_uses_projections(rng):
    x, w = rng.standard_normal((20, 30)), rng.standard_normal((30, 10))
    report = check_function(F.linear, F.linear_backward, [x, w, None], fast=True, n_dirs=5)
    assert report.ok and report.results[0].shape == (5,)
    bad = check_function(F.tanh, wrong_tanh_backward, [x], fast=True)
    assert not bad.ok


def test_report_table_is_readable(rng):
    text = str(check_function(F.sigmoid, F.sigmoid_backward, [rng.standard_normal(5)]))
    assert "gradcheck sigmoid: PASS" in text and "rel err" in text and "worst index" in text


def test_inputs_are_not_mutated_by_the_check(rng):
    x = rng.standard_normal((4, 3))
    rm, rv = np.zeros(3), np.ones(3)
    before = x.copy()
    check_function(F.batch_norm, F.batch_norm_backward, [x, np.ones(3), np.zeros(3), rm, rv], wrt=[0, 1, 2],
                   training=True)
    np.testing.assert_array_equal(x, before)


def test_tolerances_follow_pytorch_defaults():
    assert TOLERANCES[np.dtype(np.float64)] == dict(eps=1e-6, atol=1e-5, rtol=1e-3)
