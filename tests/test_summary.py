"""The model summary's counts against hand-computed ones on small networks."""
import numpy as np

import scratchnet.nn as nn
from scratchnet.models import summary
from scratchnet.models.summary import ModelSummary


def _net():
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1, rng=0),  # 8·(3·3·3) + 8 params; 8·6·6 · 3·3·3 MACs
        nn.BatchNorm2d(8),  # 16 params, 0 MACs
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, stride=2, padding=1, groups=8, bias=False, rng=0),  # depthwise: 8·1·3·3; 8·3·3 · 1·3·3
        nn.Conv2d(8, 4, 1, rng=0),  # pointwise: 4·8 + 4; 4·3·3 · 8
        nn.GlobalAvgPool2d(),
        nn.Linear(4, 5, rng=0))  # 4·5 + 5; 4·5


def test_counts_match_hand_computation():
    s = summary(_net(), (3, 6, 6))
    assert isinstance(s, ModelSummary)
    assert [r["type"] for r in s.rows] == ["Conv2d", "BatchNorm2d", "ReLU", "Conv2d", "Conv2d", "GlobalAvgPool2d",
                                           "Linear"]
    assert [r["params"] for r in s.rows] == [8 * 27 + 8, 16, 0, 8 * 9, 4 * 8 + 4, 0, 4 * 5 + 5]
    assert [r["macs"] for r in s.rows] == [8 * 36 * 27, 0, 0, 8 * 9 * 9, 4 * 9 * 8, 0, 20]
    assert [r["output_shape"] for r in s.rows][3] == "(N, 8, 3, 3)"
    assert s.total_params == _net().num_parameters() == 224 + 16 + 72 + 36 + 25
    assert s.total_macs == 8 * 36 * 27 + 8 * 81 + 4 * 72 + 20 and s.macs_complete
    text = str(s)
    assert "mult-adds per example: 8,732" in text and "total parameters: 373" in text


def test_transposed_conv_and_recurrent_counts():
    s = summary(nn.Sequential(nn.ConvTranspose2d(2, 3, 4, stride=2, padding=1, rng=0)), (2, 5, 5))
    assert s.rows[0]["output_shape"] == "(N, 3, 10, 10)"
    assert s.total_macs == 2 * 5 * 5 * 3 * 4 * 4  # every input value scattered into C_out·KH·KW outputs
    s = summary(nn.LSTM(3, 4), (7, 3))
    assert s.total_macs == 7 * (3 + 4) * 16  # T · (D + H) · 4H
    assert s.total_params == 3 * 16 + 4 * 16 + 16


def test_shared_parameters_counted_once_and_model_left_as_found():
    lin = nn.Linear(4, 4, rng=0)
    model = nn.Sequential(lin, nn.ReLU(), lin, nn.Dropout(0.5))
    model.train()
    s = summary(model, (4,))
    assert [r["params"] for r in s.rows] == [20, 0, 0, 0]  # the second call of lin adds no parameters
    assert s.total_params == 20 and s.total_macs == 2 * 16
    assert model.training and all(m.training for m in model.modules())
    assert all(not m.caches for m in model.modules())  # nothing cached
    assert "forward" not in vars(lin)  # the instrumented forward is gone


def test_unknown_parametrised_layer_makes_a_lower_bound():
    class Scale(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(np.ones(3, np.float32))

        def forward(self, x):
            return x * self.w.data

    s = summary(nn.Sequential(nn.Linear(2, 3, rng=0), Scale()), (2,))
    assert s.rows[1]["macs"] is None and not s.macs_complete
    assert s.total_macs == 6 and "lower bound" in str(s)
