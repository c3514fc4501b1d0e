"""Training runs that go wrong in known ways, for the watch tests (plain PyTorch, one seed each)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def sigmoid_mlp(seed: int = 0):
    """Eight Linear+Sigmoid layers with weights of σ 1: the sigmoids' inputs reach ±20, and the early
    layers' gradients are a thousandth of the last one's."""
    torch.manual_seed(seed)
    layers = []
    for _ in range(8):
        lin = nn.Linear(32, 32)
        nn.init.normal_(lin.weight, std=1.0)
        layers += [lin, nn.Sigmoid()]
    model = nn.Sequential(*layers, nn.Linear(32, 1))
    x = torch.randn(128, 32)
    y = (x[:, :1] > 0).float()
    return model, x, y, F.binary_cross_entropy_with_logits


def relu_net(seed: int = 0):
    """A ReLU regression net: at Adam lr 0.1 most units of its second ReLU die within ten steps."""
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(10, 64), nn.ReLU(), nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 1))
    x = torch.randn(256, 10)
    y = x.sum(1, keepdim=True)
    return model, x, y, F.mse_loss


class Log(nn.Module):
    def forward(self, x):
        return torch.log(x)


def log_net(seed: int = 0):
    """Linear → Log, trained to make its log small: SGD pushes the Linear's output below 0 after a few
    steps, and the Log turns it into NaN."""
    torch.manual_seed(seed)
    lin = nn.Linear(4, 1)
    with torch.no_grad():
        lin.weight.fill_(0.5)
        lin.bias.fill_(1.0)
    model = nn.Sequential(lin, Log())
    x = torch.rand(16, 4)
    y = torch.zeros(16, 1)
    return model, x, y, lambda out, y: out.mean()


class SigmoidBlock(nn.Module):
    """Linear then sigmoid: the repeated block of the folded-graph records (four of them fold ×4)."""

    def __init__(self):
        super().__init__()
        self.fc, self.act = nn.Linear(16, 16), nn.Sigmoid()

    def forward(self, x):
        return self.act(self.fc(x))


def loop(model, x, y, loss_fn, opt, steps: int, w=None):
    """The plain loop: forward, backward, (w.step), optimizer step, zero_grad(set_to_none)."""
    losses = []
    for _ in range(steps):
        loss = loss_fn(model(x), y)
        loss.backward()
        if w is not None:
            w.step(loss)
        losses.append(float(loss.detach()))
        opt.step()
        opt.zero_grad(set_to_none=True)
    return losses
