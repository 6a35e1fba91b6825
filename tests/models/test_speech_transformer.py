"""The Speech-Transformer: gradchecks of the subsampling pair, module and whole model (float64), PyTorch
parity of the front end, padding that never leaks, teacher forcing equal to step-by-step decoding, beam 1
equal to greedy, overfitting one batch, the schedule and errors."""
import numpy as np
import pytest

import scratchnet as sn
import scratchnet.functional as F
import scratchnet.nn as nn
from scratchnet.data import pad_batch
from scratchnet.gradcheck import check_function
from scratchnet.gradcheck.cases import speech_transformer as cases
from scratchnet.models.speech_transformer import ConvSubsampling, SpeechTransformer, decoder_io, noam_factor
from scratchnet.optim import Adam


def _ok(reports):
    reports = reports if isinstance(reports, list) else [reports]
    bad = [str(r) for r in reports if not r.ok]
    assert not bad, "\n\n".join(bad)


def test_conv_subsample_gradcheck_two_shapes():
    _ok(cases.conv_subsample_case())


def test_conv_subsample_gradcheck_with_ties_avoided_float64_kink_free(rng):
    # a third shape: one sample, many channels, a non-square feature map
    x, w1, b1, w2, b2 = cases._subsample_inputs(rng, 1, 9, 12, 4)
    _ok(check_function(F.conv_subsample, F.conv_subsample_backward, [x, w1, b1, w2, b2]))


def test_subsampling_module_gradcheck():
    _ok(cases.subsampling_case())


def test_model_gradcheck_end_to_end_with_ctc_head_and_dropout():
    _ok(cases.model_ctc_case())


@pytest.mark.parametrize("T", [7, 8, 9, 10, 11, 15, 16, 100, 181])
def test_subsampled_length_is_the_output_length(T):
    r = np.random.default_rng(T)
    x, w1, b1, w2, b2 = cases._subsample_inputs(r, 1, T, 9, 2)
    y, _ = F.conv_subsample(x, w1, b1, w2, b2)
    assert y.shape[1] == int(F.subsampled_length(T)) == ((T - 3) // 2 + 1 - 3) // 2 + 1


def test_conv_subsample_matches_pytorch(rng):
    torch = pytest.importorskip("torch")
    x, w1, b1, w2, b2 = cases._subsample_inputs(rng, 2, 13, 10, 3)
    y, cache = F.conv_subsample(x, w1, b1, w2, b2)
    t = [torch.tensor(a, requires_grad=True) for a in (x, w1, b1, w2, b2)]
    h = torch.relu(torch.nn.functional.conv2d(t[0][:, None], t[1], t[2], stride=2))
    h = torch.relu(torch.nn.functional.conv2d(h, t[3], t[4], stride=2))
    yt = h.permute(0, 2, 1, 3).reshape(2, h.shape[2], -1)
    np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
    dy = rng.standard_normal(y.shape)
    yt.backward(torch.tensor(dy))
    for mine, ref in zip(F.conv_subsample_backward(dy, cache), t):
        np.testing.assert_allclose(mine, ref.grad.numpy(), rtol=1e-9, atol=1e-11)


def small_model(ctc_head=True, dropout=0.0, rng=0):
    return SpeechTransformer(9, 6, d_model=16, nhead=2, num_encoder_layers=2, num_decoder_layers=2,
                             dim_feedforward=24, channels=3, dropout=dropout, ctc_head=ctc_head, max_len=32, rng=rng)


def test_padding_never_reaches_a_valid_position(rng):
    m = small_model().eval()
    x = rng.standard_normal((2, 30, 9)).astype(np.float32)
    lengths = np.array([30, 19])
    ys = np.array([[5, 1, 2], [5, 3, 4]])
    with sn.no_grad():
        memory, pad = m.encode(x, lengths)
        logits, lp = m(x, ys, lengths=lengths)
        mem1, _ = m.encode(x[1:, :19])  # the short utterance alone, unpadded
        logits1, _ = m(x[1:, :19], ys[1:])
    S1 = int(m.output_lengths(19))
    assert pad[1].sum() == memory.shape[1] - S1 and not pad[0].any()
    np.testing.assert_allclose(memory[1, :S1], mem1[0], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(logits[1], logits1[0], rtol=1e-4, atol=1e-5)


def test_teacher_forced_logits_equal_step_by_step_decoding(rng):
    m = small_model(dropout=0.1).eval()
    x, lengths = rng.standard_normal((3, 26, 9)).astype(np.float32), np.array([26, 20, 14])
    ys = np.concatenate([np.full((3, 1), 5), rng.integers(1, 5, (3, 5))], axis=1)  # (3, 6) <sos> y1..y5
    with sn.no_grad():
        logits, _ = m(x, ys, lengths=lengths)  # one pass, all positions (teacher forcing)
        memory, pad = m.encode(x, lengths)
        for t in range(1, ys.shape[1] + 1):  # the prefix re-run, one position more each time
            step = m.decode(ys[:, :t], memory, pad)[:, -1]
            np.testing.assert_allclose(step, logits[:, t - 1], rtol=1e-4, atol=1e-5)


def _overfit(steps=80):
    """A small model driven to memorise 4 utterances (joint CTC-attention loss, label smoothing)."""
    r = np.random.default_rng(5)
    m = small_model(rng=1)
    x, lengths = r.standard_normal((4, 40, 9)).astype(np.float32), np.array([40, 36, 30, 26])
    texts = [[1, 2, 3], [4, 1], [2, 2, 4, 3], [3]]
    ys_in, ys_out = decoder_io(texts, m.sos_eos)
    targets, target_lengths = pad_batch([np.array(t) for t in texts], value=0)
    ce, ctc = nn.CrossEntropyLoss(label_smoothing=0.1), nn.CTCLoss(blank=0)
    opt = Adam(m.parameters(), lr=3e-3)
    losses = []
    for _ in range(steps):
        logits, lp = m(x, ys_in, lengths=lengths)
        loss = 0.7 * ce(logits, ys_out) + 0.3 * ctc(lp, targets, m.output_lengths(lengths), target_lengths)
        opt.zero_grad()
        m.backward((0.7 * ce.backward(), 0.3 * ctc.backward()))
        opt.step()
        losses.append(float(loss))
    return m, x, lengths, texts, losses


@pytest.fixture(scope="module")
def overfitted():
    return _overfit()


def test_overfit_one_batch(overfitted):
    m, x, lengths, texts, losses = overfitted
    assert losses[-1] < 0.25 * losses[0], losses[::10]
    assert m.greedy(x, lengths, max_len=6) == texts


def test_beam_one_equals_greedy_and_a_wider_beam_finds_the_transcripts(overfitted):
    m, x, lengths, texts, _ = overfitted
    greedy = m.greedy(x, lengths, max_len=6)
    assert m.beam_search(x, lengths, beam=1, max_len=6) == greedy
    assert m.beam_search(x, lengths, beam=3, max_len=6) == texts
    r = np.random.default_rng(9)  # an untrained model too: any ties are broken the same way
    u = small_model(rng=3)
    xu = r.standard_normal((3, 22, 9)).astype(np.float32)
    assert u.beam_search(xu, beam=1, max_len=5) == u.greedy(xu, max_len=5)


def test_decoder_io_and_noam_factor():
    ys_in, ys_out = decoder_io([[1, 2], [3]], 9)
    np.testing.assert_array_equal(ys_in, [[9, 1, 2], [9, 3, 9]])
    np.testing.assert_array_equal(ys_out, [[1, 2, 9], [3, 9, -100]])
    f = noam_factor(100)
    assert f(0) == 0 and f(50) == pytest.approx(0.5) and f(100) == pytest.approx(1) and f(400) == pytest.approx(0.5)
    d, w, k = 128, 100, 2.0  # Vaswani's form with k = peak · √(D·W)
    for t in (1, 60, 100, 1000):
        assert k / np.sqrt(d * w) * f(t) == pytest.approx(k * d ** -0.5 * min(t ** -0.5, t * w ** -1.5))


def test_attention_only_model_returns_logits_and_takes_their_gradient(rng):
    m = small_model(ctc_head=False)
    x, ys = rng.standard_normal((2, 20, 9)).astype(np.float32), np.array([[5, 1], [5, 2]])
    logits = m(x, ys)
    assert logits.shape == (2, 2, 6)
    assert m.backward(np.ones_like(logits)).shape == x.shape


def test_wrong_inputs_raise_clear_errors(rng):
    m = small_model()
    x, ys = rng.standard_normal((2, 20, 9)).astype(np.float32), np.array([[5, 1], [5, 2]])
    with pytest.raises(ValueError, match=r"SpeechTransformer.*\(N, T, 9\)"):
        m(x[..., :8], ys)
    with pytest.raises(ValueError, match="SpeechTransformer.*ys_in"):
        m(x, ys.astype(np.float32))
    with pytest.raises(ValueError, match="SpeechTransformer.*lengths"):
        m(x, ys, lengths=np.array([20, 5]))
    with pytest.raises(TypeError, match="SpeechTransformer.backward.*tuple"):
        m.clear_caches()
        m(x, ys)
        m.backward(np.ones((2, 2, 6), np.float32))
    with pytest.raises(ValueError, match="beam"):
        m.beam_search(x, beam=0)
    with pytest.raises(ValueError, match="ConvSubsampling.*\\(N, T, 9\\)"):
        ConvSubsampling(9, 4, 2, rng=0)(x[..., :5])
    w1, w2 = rng.standard_normal((2, 1, 3, 3)), rng.standard_normal((2, 2, 3, 3))
    with pytest.raises(ValueError, match="conv_subsample.*w2"):
        F.conv_subsample(x.astype(np.float64), w1, None, w2[:, :1], None)
    with pytest.raises(ValueError, match="conv_subsample.*at least 7"):
        F.conv_subsample(rng.standard_normal((1, 6, 9)), w1, None, w2, None)
    y, cache = F.conv_subsample(rng.standard_normal((1, 9, 9)), w1, None, w2, None)
    with pytest.raises(ValueError, match="conv_subsample_backward"):
        F.conv_subsample_backward(np.ones((1, 3, y.shape[2])), cache)
