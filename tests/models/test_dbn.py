"""DBN: greedy pretraining, the fine-tuning MLP (gradcheck, overfit), generation, clear size errors."""
import numpy as np
import pytest

from scratchnet.gradcheck import assert_module_gradients
from scratchnet.models.dbn import DBN
from scratchnet.models.rbm import RBM, base_rate_biases
from scratchnet.nn import CrossEntropyLoss


def _data(n=120, d=16, k=3, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    protos = rng.random((k, d)) < 0.5
    flip = rng.random((n, d)) < 0.1
    return (protos[y] ^ flip).astype(np.float32), y


def _pretrained(seed=0):
    x, y = _data()
    dbn = DBN([16, 12, 10, 14], n_labels=3, rng=np.random.default_rng(seed))
    hist = dbn.pretrain(x, y, epochs=3, batch_size=20, lr=0.1, rng=np.random.default_rng(seed + 1), disable=True)
    return dbn, hist, x, y


def test_pretrain_shapes_and_determinism():
    (a, hist, _, _), (b, _, _, _) = _pretrained(), _pretrained()
    assert [r.weight.data.shape for r in a.rbms] == [(16, 12), (12, 10), (13, 14)]
    assert len(hist) == 3 and all(len(h) == 3 for h in hist)
    for ra, rb in zip(a.rbms, b.rbms):
        np.testing.assert_array_equal(ra.weight.data, rb.weight.data)


@pytest.mark.parametrize("base_rate_init", [True, False])
def test_pretrain_starts_visible_biases_at_base_rates(base_rate_init):
    x, y = _data()
    dbn = DBN([16, 12, 10, 14], n_labels=3, rng=np.random.default_rng(0))
    dbn.pretrain(x, y, epochs=0, base_rate_init=base_rate_init, rng=np.random.default_rng(1), disable=True)
    bottom, top = dbn.rbms[0].vbias.data, dbn.rbms[-1].vbias.data
    if base_rate_init:
        np.testing.assert_allclose(bottom, base_rate_biases(x), rtol=1e-6)
        assert np.all(top[-3:] == 0) and np.all(top[:-3] != 0)  # label units keep 0
    else:
        assert not bottom.any() and not top.any()


def test_to_mlp_copies_rbm_weights_and_gradchecks():
    dbn, _, x, _ = _pretrained()
    mlp = dbn.to_mlp(rng=np.random.default_rng(0))
    np.testing.assert_array_equal(mlp[0].weight.data, dbn.rbms[0].weight.data)
    np.testing.assert_array_equal(mlp[4].weight.data, dbn.rbms[2].weight.data[:10])  # label rows dropped
    np.testing.assert_array_equal(mlp[4].bias.data, dbn.rbms[2].hbias.data)
    mlp.astype(np.float64)
    assert_module_gradients(mlp, x[:4].astype(np.float64))


def test_to_mlp_with_dropout_gradchecks():
    from scratchnet.nn import Dropout
    dbn, _, x, _ = _pretrained()
    mlp = dbn.to_mlp(dropout=0.3, rng=np.random.default_rng(0))
    kinds = [type(m).__name__ for m in mlp]
    assert kinds == ["Linear", "Sigmoid", "Dropout"] * 3 + ["Linear"]
    assert all(m.p == 0.3 for m in mlp if isinstance(m, Dropout))
    mlp.astype(np.float64)
    # dropout generators are rewound before every forward: the same masks each call
    assert_module_gradients(mlp, x[:4].astype(np.float64))


def test_to_mlp_with_input_dropout_gradchecks():
    from scratchnet.nn import Dropout
    dbn, _, x, _ = _pretrained()
    mlp = dbn.to_mlp(dropout=0.5, input_dropout=0.2, rng=np.random.default_rng(0))
    kinds = [type(m).__name__ for m in mlp]
    assert kinds == ["Dropout"] + ["Linear", "Sigmoid", "Dropout"] * 3 + ["Linear"]
    assert [m.p for m in mlp if isinstance(m, Dropout)] == [0.2, 0.5, 0.5, 0.5]
    np.testing.assert_array_equal(mlp[1].weight.data, dbn.rbms[0].weight.data)
    mlp.astype(np.float64)
    assert_module_gradients(mlp, x[:4].astype(np.float64))


def test_fine_tune_overfits_one_batch():
    from scratchnet.optim import Adam
    dbn, _, x, y = _pretrained()
    mlp = dbn.to_mlp(rng=np.random.default_rng(0))
    crit = CrossEntropyLoss()
    opt = Adam(mlp.parameters(), lr=1e-2)
    xb, yb = x[:16], y[:16]
    for _ in range(200):  # full-batch steps on one batch
        loss = crit(mlp(xb), yb)
        opt.zero_grad()
        mlp.backward(crit.backward())
        opt.step()
    assert loss < 0.02
    assert (mlp(xb).argmax(1) == yb).all()


def test_generate_with_clamped_labels():
    dbn, _, _, _ = _pretrained()
    g = dbn.generate(np.array([0, 1, 2, 0]), steps=5, rng=np.random.default_rng(0))
    assert g.shape == (4, 16) and g.dtype == np.float32
    assert np.all((g >= 0) & (g <= 1))


def test_mismatched_stack_is_a_clear_error():
    with pytest.raises(ValueError, match="RBM 0 has 5 hidden units but RBM 1 expects 6"):
        DBN.from_rbms([RBM(8, 5), RBM(6, 4)])
    dbn = DBN.from_rbms([RBM(8, 5), RBM(5 + 2, 4, n_labels=2)])
    assert dbn.sizes == [8, 5, 4] and dbn.n_labels == 2
    with pytest.raises(ValueError, match=r"\(N, 8\)"):
        dbn.pretrain(np.zeros((3, 7), np.float32), np.zeros(3, int), epochs=1)
    with pytest.raises(ValueError, match="labels"):
        dbn.pretrain(np.zeros((3, 8), np.float32), epochs=1)
    with pytest.raises(ValueError, match="sizes"):
        DBN([784])
