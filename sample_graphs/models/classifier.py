"""A two-layer classifier of 2-D points into 3 classes, with the loss it trains with: draw it with
`--loss loss --targets labels.pt` (docs/loss.md), and the gradients are those its training computes."""

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 3))
example_inputs = (torch.tensor([[0.5, -1.0], [1.5, 0.2], [-0.3, 0.8], [1.0, 1.0]]),)


def loss(out, targets):
    """Cross-entropy against class labels, with a little label smoothing, as the training loop has it."""
    return F.cross_entropy(out, targets, label_smoothing=0.1)
