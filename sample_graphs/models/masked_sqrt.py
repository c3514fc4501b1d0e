"""A masked distance whose backward makes NaN: the forward is finite, but where the mask is 0 the
square root sits at 0, its slope is infinite, and ∞ · 0 = NaN flows back into every parameter.
`cgviz torch` names the op, this file's line and the reason (docs/nonfinite.md)."""

import torch
import torch.nn as nn


class MaskedDistance(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        h = self.fc(x)
        mask = (x > 0).float()
        d = torch.sqrt(h.pow(2) * mask)
        return (d * mask).mean()


torch.manual_seed(0)
model = MaskedDistance()
example_inputs = (torch.randn(3, 4),)
