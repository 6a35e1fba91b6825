"""wav2vec 2.0: gradchecks of the modules and of a tiny model (pre-training loss with the soft quantiser,
the CTC wrapper with and without a frozen feature encoder), the straight-through quantiser (exact
downstream, a surrogate upstream), PyTorch parity of Conv1d, padding that never leaks, span masks,
overfitting one batch, and errors."""
import numpy as np
import pytest

import scratchnet as sn
import scratchnet.nn as nn
from scratchnet.decode import ctc_greedy_decode
from scratchnet.gradcheck import check_module
from scratchnet.gradcheck.cases import wav2vec2 as cases
from scratchnet.models.wav2vec2 import Wav2Vec2, Wav2Vec2CTC, sample_negatives, span_mask
from scratchnet.models.wav2vec2_parts import Conv1d, FeatureEncoder
from scratchnet.optim import Adam


def _ok(reports):
    reports = reports if isinstance(reports, list) else [reports]
    bad = [str(r) for r in reports if not r.ok]
    assert not bad, "\n\n".join(bad)


@pytest.mark.parametrize("case", ["conv1d_case", "feature_encoder_case", "quantizer_case", "model_pretrain_case",
                                  "model_ctc_case", "model_ctc_frozen_case"])
def test_registered_gradchecks(case):
    _ok(getattr(cases, case)())


def test_model_gradcheck_without_dropout_at_another_shape():
    r = np.random.default_rng(4)
    m = cases.tiny_model(dropout=0.0)
    wave, lengths = r.standard_normal((3, 48)), np.array([48, 41, 33])
    mask = span_mask(m.output_lengths(lengths), p=0.4, span=3, rng=r)
    _ok(check_module(m, [wave, mask, sample_negatives(mask, 2, r)], forward_kwargs=dict(lengths=lengths)))


def test_hard_quantiser_is_exact_downstream_and_straight_through_upstream():
    wave, lengths, mask, neg = cases.tiny_inputs()
    report = check_module(cases.tiny_model(hard=True), [wave, mask, neg], forward_kwargs=dict(lengths=lengths))
    upstream = ("input0", "feature.", "quantizer.weight_proj.")  # reached only through the one-hot's surrogate
    exact = [r for r in report.results if not r.name.startswith(upstream)]
    assert len(exact) > 20 and all(r.ok for r in exact), str(report)
    assert not all(r.ok for r in report.results if r.name.startswith("quantizer.weight_proj."))


def test_conv1d_matches_pytorch():
    torch = pytest.importorskip("torch")
    r = np.random.default_rng(0)
    for cin, cout, k, s, p, g in [(1, 4, 5, 3, 0, 1), (4, 6, 3, 1, 1, 2)]:
        conv = Conv1d(cin, cout, k, s, padding=p, groups=g, rng=1).astype(np.float64)
        x = r.standard_normal((2, cin, 17))
        y = conv(x)
        dy = r.standard_normal(y.shape)
        dx = conv.backward(dy)
        tx = torch.tensor(x, requires_grad=True)
        tw = torch.tensor(conv.weight.data[:, :, 0], requires_grad=True)
        yt = torch.nn.functional.conv1d(tx, tw, torch.tensor(conv.bias.data), stride=s, padding=p, groups=g)
        yt.backward(torch.tensor(dy))
        np.testing.assert_allclose(y, yt.detach().numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(dx, tx.grad.numpy(), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(conv.weight.grad[:, :, 0], tw.grad.numpy(), rtol=1e-10, atol=1e-12)


def test_output_lengths_and_receptive_field():
    enc = FeatureEncoder(((2, 10, 5), (2, 8, 4), (2, 4, 2), (2, 4, 2), (2, 4, 2)), rng=0)
    assert enc.receptive_field == 465
    for L in (465, 466, 1000, 8000, 24011):
        assert enc(np.zeros((1, L), np.float32)).shape[1] == int(enc.output_lengths(L))
        enc.clear_caches()
    assert int(enc.output_lengths(8000)) == 48  # 20 ms frames: 50 per second, less the edges


def small_model(rng=0, dropout=0.0):
    return Wav2Vec2(conv_layers=((8, 10, 5), (8, 4, 2), (8, 4, 2)), d_model=16, nhead=2, num_layers=2,
                    dim_feedforward=24, pos_kernel=5, pos_groups=2, num_groups=2, num_vars=8, final_dim=8,
                    dropout=dropout, rng=rng)


def test_padding_never_reaches_a_valid_frame():
    r = np.random.default_rng(1)
    m = small_model().eval()
    wave, lengths = r.standard_normal((2, 900)).astype(np.float32), np.array([900, 611])
    with sn.no_grad():
        h = m.encode(wave, lengths=lengths)
        h1 = m.encode(wave[1:, :611])  # the short utterance alone, unpadded
    T1 = int(m.output_lengths(611))
    assert h1.shape[1] == T1
    np.testing.assert_allclose(h[1, :T1], h1[0], rtol=1e-4, atol=1e-5)


def test_masked_frames_hide_the_latents_from_the_context_network():
    r = np.random.default_rng(2)
    m = small_model().eval()
    z = r.standard_normal((1, 20, 8)).astype(np.float32)
    mask = np.zeros((1, 20), bool)
    mask[0, 5:12] = True
    lengths = np.array([20 * 20 + 10])  # any length giving at least 20 frames
    with sn.no_grad():
        h = m.context(z, lengths, mask)
        z2 = z.copy()
        z2[0, 5:12] = r.standard_normal((7, 8))  # change only what the mask hides
        np.testing.assert_allclose(m.context(z2, lengths, mask), h, rtol=1e-6, atol=1e-6)


def test_span_mask():
    r = np.random.default_rng(3)
    lengths = np.array([100, 60, 7])
    mask = span_mask(lengths, p=0.065, span=10, rng=r)
    assert mask.shape == (3, 100) and not mask[1, 60:].any() and not mask[2, 7:].any()
    assert mask[2].sum() >= 2  # at least one span, cut at the end
    frac = np.mean([span_mask([200], p=0.065, span=10, rng=r).mean() for _ in range(200)])
    assert 0.4 < frac < 0.55  # about half the frames, as in the paper (1 − (1 − p)^M ≈ 0.49)


def test_eval_quantiser_is_deterministic_and_stats_are_reported():
    r = np.random.default_rng(5)
    m = small_model()
    wave, lengths = r.standard_normal((2, 1000)).astype(np.float32), np.array([1000, 800])
    mask = span_mask(m.output_lengths(lengths), p=0.2, span=4, rng=r)
    neg = sample_negatives(mask, 4, r)
    m.eval()
    with sn.no_grad():
        a, b = float(m(wave, mask, neg, lengths=lengths)), float(m(wave, mask, neg, lengths=lengths))
    assert a == b
    assert {"contrastive", "diversity", "accuracy", "prob_perplexity", "code_perplexity"} <= set(m.stats)
    assert 1 <= m.stats["code_perplexity"] <= 16 and 0 <= m.stats["accuracy"] <= 1


def test_pretraining_overfits_one_batch():
    r = np.random.default_rng(6)
    m = small_model(rng=1)
    wave, lengths = r.standard_normal((2, 1600)).astype(np.float32), np.array([1600, 1400])
    mask = span_mask(m.output_lengths(lengths), p=0.2, span=4, rng=r)
    neg = sample_negatives(mask, 5, r)
    opt = Adam(m.parameters(), lr=3e-3)
    losses, acc = [], []
    for _ in range(100):  # the Gumbel noise is drawn afresh every step: a noisy but falling loss
        loss = m(wave, mask, neg, lengths=lengths)
        opt.zero_grad()
        m.backward(1.0)
        opt.step()
        losses.append(float(loss))
        acc.append(m.stats["accuracy"])
    assert np.mean(losses[-5:]) < 0.6 * losses[0], losses[::10]
    assert np.mean(acc[-5:]) > 0.5 > acc[0]


def tones(labels, r):
    """A toy utterance: label k is 300 samples of a 600·k Hz tone, with 100 samples of faint noise around."""
    t = np.arange(300) / 8000
    parts = [0.05 * r.standard_normal(100)]
    for k in labels:
        parts += [np.sin(2 * np.pi * 600 * k * t + r.uniform(0, 6)), 0.05 * r.standard_normal(100)]
    return np.concatenate(parts).astype(np.float32)


@pytest.mark.parametrize("freeze", [False, True])
def test_ctc_fine_tuning_overfits_one_batch(freeze):
    r = np.random.default_rng(7)
    encoder = Wav2Vec2(conv_layers=((16, 10, 5), (16, 4, 2), (16, 4, 2)), d_model=32, nhead=2, num_layers=2,
                       dim_feedforward=64, pos_kernel=5, pos_groups=2, num_groups=2, num_vars=8, final_dim=8,
                       dropout=0.0, rng=2)
    model = Wav2Vec2CTC(encoder, 5, freeze_feature_encoder=freeze, rng=3)
    texts = [[1, 2, 3], [4, 1], [2, 4, 3], [3]]
    wave, lengths = sn.data.pad_batch([tones(t, r) for t in texts])
    targets, target_lengths = sn.data.pad_batch([np.array(t) for t in texts], value=0)
    ctc = nn.CTCLoss(blank=0)
    params = model.finetune_parameters()
    opt = Adam(params, lr=3e-3)
    losses = []
    for _ in range(150):
        lp = model(wave, lengths=lengths)
        losses.append(float(ctc(lp, targets, model.output_lengths(lengths), target_lengths)))
        opt.zero_grad()
        dwave = model.backward(ctc.backward())
        opt.step()
    assert (dwave is None) == freeze and losses[-1] < 0.01 * losses[0]
    frozen_grads = [float(np.abs(p.grad).sum()) for p in model.encoder.feature.parameters()]
    assert (max(frozen_grads) == 0) == freeze and (len(params) < len(list(model.parameters())))
    with sn.no_grad():
        lp = model.eval()(wave, lengths=lengths)
    assert ctc_greedy_decode(lp, lengths=model.output_lengths(lengths)) == texts


def test_finetune_parameters_are_everything_but_the_pretraining_heads():
    model = Wav2Vec2CTC(small_model(), 5, freeze_feature_encoder=True, rng=0)
    for freeze in (True, False):
        model.freeze = freeze
        chosen = {id(p) for p in model.finetune_parameters()}
        left = {n.split(".")[1] for n, p in model.named_parameters() if id(p) not in chosen}
        assert left == ({"feature"} if freeze else set()) | {"quantizer", "final_proj"}


def test_wrong_inputs_raise_clear_errors():
    r = np.random.default_rng(8)
    m = small_model()
    wave, lengths = r.standard_normal((2, 1000)).astype(np.float32), np.array([1000, 800])
    mask = span_mask(m.output_lengths(lengths), p=0.2, span=4, rng=r)
    neg = sample_negatives(mask, 3, r)
    with pytest.raises(ValueError, match=r"Wav2Vec2.*\(N, L\)"):
        m(wave[..., None], mask, neg)
    with pytest.raises(ValueError, match="Wav2Vec2.*lengths"):
        m(wave, mask, neg, lengths=np.array([1000, 20]))
    bad = mask.copy()
    bad[1, -1] = True  # a padded frame of the short utterance
    with pytest.raises(ValueError, match="Wav2Vec2.*mask"):
        m(wave, bad, neg, lengths=lengths)
    m.clear_caches()
    with pytest.raises(ValueError, match="contrastive_loss"):
        m(wave, mask, neg[:-1], lengths=lengths)
    m.clear_caches()
    with pytest.raises(ValueError, match="Conv1d.*\\(N, 3, L\\)"):
        Conv1d(3, 2, 3, rng=0)(np.zeros((1, 2, 9)))
    with pytest.raises(ValueError, match="Conv1d.*groups"):
        Conv1d(3, 2, 3, groups=2)
    with pytest.raises(RuntimeError, match="backward"):
        small_model().backward(1.0)
