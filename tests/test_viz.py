"""Every plot returns a matplotlib Figure (Agg backend, figures closed after each test)."""
import numpy as np
import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from scratchnet import viz  # noqa: E402
from scratchnet.train import History  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_plot_history():
    h = History(epochs=[{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.2 / e, "train_accuracy": 0.5 + 0.1 * e,
                         "val_accuracy": 0.45 + 0.1 * e} for e in (1, 2, 3)], step_loss=list(np.linspace(1, 0.3, 30)))
    fig = viz.plot_history(h)
    assert isinstance(fig, Figure) and len(fig.axes) == 2
    assert isinstance(viz.plot_history(h.to_dict(), metrics=("loss",)), Figure)
    with pytest.raises(ValueError, match="plot_history"):
        viz.plot_history(h, metrics=("cer",))


@pytest.mark.parametrize("shape", [(6, 28, 28), (5, 1, 8, 8), (4, 3, 8, 8), (4, 8, 8, 3)])
def test_image_grid(rng, shape):
    fig = viz.image_grid(rng.random(shape).astype(np.float32), nrow=3, titles=[str(i) for i in range(shape[0])])
    assert isinstance(fig, Figure)


def test_plot_confusion():
    cm = np.array([[5, 1], [2, 7]])
    assert isinstance(viz.plot_confusion(cm, labels=["a", "b"]), Figure)
    assert isinstance(viz.plot_confusion(cm, normalize=True), Figure)


@pytest.mark.parametrize("shape", [(784, 6), (8, 1, 5, 5), (4, 3, 3, 3), (4, 6, 3, 3)])
def test_show_filters(rng, shape):
    assert isinstance(viz.show_filters(rng.standard_normal(shape)), Figure)


def test_show_filters_bad_shape(rng):
    with pytest.raises(ValueError, match="show_filters"):
        viz.show_filters(rng.standard_normal((10, 3)))


def test_plot_attention(rng):
    w = rng.random((2, 4, 5))
    w /= w.sum(-1, keepdims=True)
    assert isinstance(viz.plot_attention(w[0], xlabels=list("abcde"), ylabels=list("wxyz")), Figure)
    assert len(viz.plot_attention(w[None]).axes) >= 2  # (1, heads, Tq, Tk): one panel per head


def test_plot_lines():
    fig = viz.plot_lines([1, 2, 4], {"numpy": [3.0, 2.0, 1.0], "numba": [1.0, 0.5, 0.2]},
                         xlabel="batch", ylabel="ms", logy=True)
    assert isinstance(fig, Figure)


def test_plot_ctc_alignment(rng):
    logits = rng.standard_normal((30, 5)) * 3
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    assert isinstance(viz.plot_ctc_alignment(np.exp(logp), labels=["_", "a", "b", "c", "d"]), Figure)
    assert isinstance(viz.plot_ctc_alignment(logp[None], blank=0), Figure)  # log-probs, batch of one
