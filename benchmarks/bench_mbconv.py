"""EfficientNet's MBConv block: one block's forward + backward (1×1 expansion, depthwise 3×3,
squeeze-and-excitation, 1×1 projection, identity skip with stochastic depth), beside a PyTorch twin
built from the same layers with the same weights.

Legend: N batch, C channels, E = t·C expanded channels, H×W spatial size. All float32.
"""
from __future__ import annotations

import numpy as np

from scratchnet.models.efficientnet import MBConv

from .harness import torch_or_none, workload

N, C, T, H = 64, 32, 4, 16  # batch, channels in = out, expansion ratio, spatial size


def _torch_twin(torch, blk):
    """The same MBConv from torch.nn layers, weights copied from ``blk``."""
    tnn = torch.nn

    def seq(s, act=True):
        conv, bn = s.layers[0], s.layers[1]
        c = tnn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.opts["stride"],
                       padding=conv.opts["padding"], groups=conv.opts["groups"], bias=False)
        c.weight.data = torch.from_numpy(conv.weight.data.copy())
        return tnn.Sequential(c, tnn.BatchNorm2d(bn.num_features), *([tnn.SiLU()] if act else []))

    def linear(m):
        lin = tnn.Linear(m.in_features, m.out_features)
        lin.weight.data, lin.bias.data = torch.from_numpy(m.weight.data.T.copy()), torch.from_numpy(m.bias.data.copy())
        return lin

    class TorchMBConv(tnn.Module):
        def __init__(self):
            super().__init__()
            self.expand, self.depthwise = seq(blk.expand), seq(blk.depthwise)
            self.reduce, self.grow = linear(blk.se.reduce), linear(blk.se.expand)
            self.project = seq(blk.project, act=False)

        def forward(self, x, mask):
            v = self.depthwise(self.expand(x))
            s = torch.sigmoid(self.grow(torch.nn.functional.silu(self.reduce(v.mean(dim=(2, 3))))))
            return x + self.project(v * s[:, :, None, None]) * mask[:, None, None, None]

    return TorchMBConv()


@workload("mbconv.block", description=f"MBConv forward+backward, N={N}, {C}→{C} channels, expansion {T}, "
          f"{H}×{H}, depthwise 3×3, SE, skip with a drop-path mask")
def mbconv_block():
    rng = np.random.default_rng(0)
    blk = MBConv(C, C, 3, 1, T, drop_rate=0.1, rng=rng)
    x = rng.standard_normal((N, C, H, H), dtype=np.float32)  # (N, C, H, W)
    dy = rng.standard_normal((N, C, H, H), dtype=np.float32)
    mask = np.where(rng.random(N) < 0.1, 0.0, 1 / 0.9).astype(np.float32)  # (N,): one keep value per sample

    def run_scratchnet():
        blk.zero_grad()
        blk(x, drop_mask=mask)
        blk.backward(dy)

    torch = torch_or_none()
    if torch is None:
        return run_scratchnet, None
    tblk = _torch_twin(torch, blk)
    tx, tdy, tmask = torch.from_numpy(x).requires_grad_(True), torch.from_numpy(dy), torch.from_numpy(mask)

    def run_torch():
        tx.grad = None
        tblk.zero_grad()
        tblk(tx, tmask).backward(tdy)

    return run_scratchnet, run_torch
