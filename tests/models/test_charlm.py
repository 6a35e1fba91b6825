"""Character language model: gradcheck end to end, overfitting one batch, truncated-BPTT windows,
sampling, and the ‖∂h_T/∂h_t‖ measurement."""
import numpy as np
import pytest

from scratchnet.gradcheck import assert_module_gradients
from scratchnet.models.charlm import CharLM, CharVocabulary, lm_windows, sample
from scratchnet.nn import RNN, CrossEntropyLoss, hidden_jacobian_norms
from scratchnet.optim import Adam, clip_grad_norm


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_charlm_gradcheck(rng, cell):
    m = CharLM(5, 4, embed_dim=3, cell=cell, rng=0).astype(np.float64)
    m.rnn.stateful = False  # each gradcheck forward must start from the same state
    ids = rng.integers(0, 5, size=(2, 4))
    assert_module_gradients(m, [ids])


def test_charlm_overfits_one_batch():
    text = "hello world, hello recurrent world. "
    vocab = CharVocabulary(text)
    ids = vocab.encode(text * 2)
    x, y = ids[None, :-1], ids[None, 1:]
    m = CharLM(len(vocab), 32, embed_dim=8, cell="lstm", rng=0)
    m.rnn.stateful = False
    crit, opt = CrossEntropyLoss(), Adam(m.parameters(), lr=3e-2)
    for _ in range(150):
        loss = crit(m(x), y)
        opt.zero_grad()
        m.backward(crit.backward())
        clip_grad_norm(m.parameters(), 5.0)
        opt.step()
    assert float(loss) < 0.1


def test_lm_windows_are_contiguous():
    ids = np.arange(41)
    wins = lm_windows(ids, batch_size=2, seq_len=5)
    assert len(wins) == 4 and wins[0][0].shape == (2, 5)
    np.testing.assert_array_equal(wins[0][0][0], [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(wins[1][0][0], [5, 6, 7, 8, 9])  # row 0 continues
    np.testing.assert_array_equal(wins[0][1], wins[0][0] + 1)
    with pytest.raises(ValueError, match="too few"):
        lm_windows(ids[:5], batch_size=2, seq_len=5)


def test_sample_is_seeded_and_keeps_state():
    vocab = CharVocabulary("abcdef")
    m = CharLM(len(vocab), 8, embed_dim=4, rng=0)
    m(np.zeros((3, 4), dtype=np.int64))
    state = m.rnn.state
    s1 = sample(m, vocab, "ab", 20, temperature=0.8, rng=np.random.default_rng(1))
    s2 = sample(m, vocab, "ab", 20, temperature=0.8, rng=np.random.default_rng(1))
    assert s1 == s2 and len(s1) == 22 and s1.startswith("ab")
    assert m.rnn.state is state
    with pytest.raises(ValueError, match="temperature"):
        sample(m, vocab, "a", 3, temperature=0)


def test_jacobian_norms_vanish_for_small_recurrent_weights(rng):
    m = RNN(3, 8, rng=0).astype(np.float64)
    m.weight_hh_l0.data *= 0.3
    norms = hidden_jacobian_norms(m, rng.standard_normal((2, 20, 3)))
    assert norms[-1] == pytest.approx(1.0)
    assert norms[0] < 1e-4 * norms[-2]
