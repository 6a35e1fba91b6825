"""Listen, Attend and Spell (chapter 24): gradient checks of the listener and the whole model (content
and location-aware attention, scheduled sampling), the teacher-forced step walk against the full
forward, beam search of width 1 against greedy decoding, overfitting one batch, wrong inputs."""
import numpy as np
import pytest

import scratchnet as sn
import scratchnet.nn as nn
from scratchnet.data import DIGIT_VOCAB
from scratchnet.gradcheck import check_module
from scratchnet.gradcheck.cases import las as cases
from scratchnet.models.las import EOS, LAS, PAD, Listener, las_targets, las_text


def small_las(attention="location", **kw):
    return LAS(4, 6, listener_hidden=4, levels=2, speller_hidden=8, embed_dim=4, attn_dim=6, attention=attention,
               n_filters=3, width=3, rng=0, **kw).astype(np.float64)


def test_gradcheck_location_attention_and_scheduled_sampling():
    report = cases.las_location_case()  # every parameter and the input, element by element
    assert report.ok, str(report)


def test_gradcheck_content_attention(rng):
    """Random projections (fast=True) keep this one quick; the catalogue runs it element by element."""
    report = check_module(cases.tiny_las("content"), cases.tiny_batch(rng), fast=True)
    assert report.ok, str(report)


def test_listener_shapes_and_lengths(rng):
    listener = Listener(4, 3, levels=2, rng=0)
    h, lengths = listener(rng.standard_normal((2, 11, 4)).astype(np.float32), np.array([11, 6]))
    assert h.shape == (2, 2, 6) and h.dtype == np.float32
    np.testing.assert_array_equal(lengths, [2, 1])
    assert np.all(h[1, 1:] == 0)  # past its own length the listener output is zero
    assert listener.backward(np.ones_like(h)).shape == (2, 11, 4)


@pytest.mark.parametrize("attention", ["content", "location"])
def test_teacher_forced_steps_equal_the_full_forward(rng, attention):
    model = small_las(attention).eval()
    x, lengths = rng.standard_normal((3, 12, 4)), np.array([12, 9, 8])
    targets = np.array([[1, 2, 3, EOS], [4, 5, EOS, PAD], [2, EOS, PAD, PAD]])
    with sn.no_grad():
        full = model(x, lengths, targets)
        h, mask = model.listen(x, lengths)
        state = model.speller.init_state(h, mask)
        prev = np.full(3, EOS)
        for i in range(targets.shape[1]):  # the decoder one step at a time, fed the reference
            logits, state = model.speller.step(prev, state, h, mask)
            np.testing.assert_allclose(logits, full[:, i], atol=1e-12)
            prev = np.where(targets[:, i] == PAD, EOS, targets[:, i])


@pytest.mark.parametrize("attention", ["content", "location"])
def test_beam_of_width_one_is_greedy(rng, attention):
    model = small_las(attention)
    x, lengths = rng.standard_normal((4, 16, 4)), np.array([16, 13, 9, 16])
    greedy = model.greedy_decode(x, lengths, max_len=7)
    beam = model.beam_search(x, lengths, beam_width=1, max_len=7, length_norm=0.7)
    assert greedy == beam
    wide = model.beam_search(x, lengths, beam_width=3, max_len=7)
    assert len(wide) == 4 and all(EOS not in hyp for hyp in wide)


def test_greedy_returns_alignments(rng):
    model = small_las()
    hyps, alignments = model.greedy_decode(rng.standard_normal((2, 16, 4)), np.array([16, 9]), max_len=5,
                                           return_attention=True)
    assert alignments[1].shape[1] == 2 and alignments[0].shape[1] == 4  # U_n = ⌊T_n / 4⌋
    assert all(a.shape[0] == min(len(h) + 1, 5) for h, a in zip(hyps, alignments))
    np.testing.assert_allclose(alignments[0].sum(axis=1), 1.0)


def test_las_overfits_one_batch(rng):
    model = LAS(4, 6, listener_hidden=8, levels=1, speller_hidden=16, embed_dim=8, attn_dim=8, rng=0)
    x, lengths = rng.standard_normal((4, 10, 4)).astype(np.float32), np.array([10, 10, 8, 6])
    targets = np.array([[1, 2, 3, EOS], [4, 5, EOS, PAD], [2, 2, EOS, PAD], [5, EOS, PAD, PAD]])
    crit = nn.CrossEntropyLoss(ignore_index=PAD)
    opt = sn.optim.Adam(model.parameters(), lr=3e-2)
    for _ in range(60):  # one fixed batch, teacher forcing
        loss = crit(model(x, lengths, targets), targets)
        opt.zero_grad()
        model.backward(crit.backward())
        opt.step()
    assert float(loss) < 0.05
    model.eval()
    want = [[int(t) for t in row[:list(row).index(EOS)]] for row in targets]
    assert [[int(t) for t in h] for h in model.greedy_decode(x, lengths, max_len=6)] == want


def test_scheduled_sampling_changes_inputs_only_in_training(rng):
    model = small_las(sampling_prob=1.0)
    x, lengths = rng.standard_normal((2, 12, 4)), np.array([12, 12])
    targets = np.array([[1, 2, 3, EOS], [4, 5, 1, EOS]])
    with sn.no_grad():
        teacher = model(x, lengths, targets, sampling_prob=0.0)
        sampled = model(x, lengths, targets)
        model.eval()
        evaluated = model(x, lengths, targets)
    np.testing.assert_allclose(teacher[:, 0], sampled[:, 0])  # the first input is always <sos>
    assert not np.allclose(teacher, sampled)
    np.testing.assert_allclose(teacher, evaluated)


def test_targets_and_text():
    t = las_targets(["3 7", "1"], DIGIT_VOCAB)
    assert t.dtype == np.int64 and t.shape == (2, 4)
    np.testing.assert_array_equal(t[1], [DIGIT_VOCAB.encode("1")[0], EOS, PAD, PAD])
    assert las_text(t[0], DIGIT_VOCAB) == "3 7" and las_text([5, 6], DIGIT_VOCAB) == DIGIT_VOCAB.decode([5, 6])


def test_wrong_inputs(rng):
    model = small_las()
    with pytest.raises(ValueError, match=r"Listener: expected x \(N, T, D\) and lengths .* at least 2\^levels = 4"):
        model(rng.standard_normal((2, 8, 4)), np.array([8, 3]), np.array([[1, EOS], [2, EOS]]))
    with pytest.raises(ValueError, match="LAS: expected integer targets"):
        model(rng.standard_normal((2, 8, 4)), np.array([8, 8]), np.ones((2, 2)))
    with pytest.raises(ValueError, match="Speller: attention must be"):
        LAS(4, 6, attention="dot")
    with pytest.raises(RuntimeError, match="no cached forward pass"):
        small_las().backward(np.ones((2, 2, 6)))
