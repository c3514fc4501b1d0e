"""A small residual CNN: a stem, three identical BasicBlocks (conv-BN-ReLU-conv-BN + skip), pooling
and a linear classifier. The skip path's gradient is visibly larger than the path through a block."""

import torch
import torch.nn as nn


class BasicBlock(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(x + self.bn2(self.conv2(out)))


class ResCNN(nn.Module):
    def __init__(self, classes: int = 10, c: int = 16):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.layer1 = nn.Sequential(*(BasicBlock(c) for _ in range(3)))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.layer1(self.stem(x))), 1))


torch.manual_seed(0)
model = ResCNN().eval()
example_inputs = (torch.randn(2, 3, 16, 16),)
