"""An RNN written as a Python loop: one cell called for each of 20 time steps (cgviz draws it once,
in a dashed `time_step=20` region, with each step's share of the weights' gradient)."""

import torch
import torch.nn as nn


class Cell(nn.Module):
    def __init__(self, n_in: int = 8, n_hidden: int = 16):
        super().__init__()
        self.ih = nn.Linear(n_in, n_hidden)
        self.hh = nn.Linear(n_hidden, n_hidden)

    def forward(self, x, h):
        return torch.tanh(self.ih(x) + self.hh(h))


class RNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.cell = Cell()
        self.head = nn.Linear(16, 4)

    def forward(self, x):
        h = x.new_zeros(x.shape[0], 16)   # same dtype and device as the input
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
        return self.head(h)


torch.manual_seed(0)
model = RNN()
example_inputs = (torch.randn(2, 20, 8),)
