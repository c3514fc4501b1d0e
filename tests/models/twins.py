"""Hand-made twins of today's architectures in plain torch (no transformers, no torchvision), tiny but
wired like the originals, for the folding tests (tests/models/test_folding.py) and for bench/.

Each twin keeps what makes its picture hard:
  LlamaTwin    RMSNorm, rotary cos/sin computed once at the top and passed to every layer, SwiGLU
               MLP, a causal mask shared by the layers (HF LlamaModel's wiring);
  T5Twin       encoder and decoder stacks; the relative position bias is computed by each stack's
               first layer and handed to the others; the decoder cross-attends to the encoder's output
               (LlamaTwin and T5Twin are the samples' own classes, sample_graphs/models/tiny_*.py);
  ResNetTwin   torchvision's BasicBlock, whose forward calls one `self.relu` twice;
  LSTMLoop     an nn.LSTMCell over 20 time steps with the state as a tuple (h, c).

Import as the top-level module `twins` (tests/models on sys.path), or load it by path from bench/.
Sizes are arguments, so the same classes draw a 7B-shaped model on the meta device.
"""

from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F


# --- Llama: the sample model's classes (sample_graphs/models/tiny_llama.py), one definition ---------

import sys as _sys
from pathlib import Path as _Path

_SAMPLES = str(_Path(__file__).resolve().parents[2] / "sample_graphs" / "models")
if _SAMPLES not in _sys.path:
    _sys.path.insert(0, _SAMPLES)
from tiny_llama import (LlamaAttention, LlamaLayer, LlamaMLP, LlamaTwin, RMSNorm,  # noqa: E402
                        RotaryEmbedding, apply_rotary, rotate_half)


# --- T5: the sample model's classes (sample_graphs/models/tiny_t5.py), at test size ----------------

from tiny_t5 import T5Like  # noqa: E402


def T5Twin(layers: int = 4):
    return T5Like(vocab=64, d=32, heads=4, ff=64, layers=layers)


# --- ResNet (torchvision's BasicBlock) -------------------------------------------------------------

class TVBasicBlock(nn.Module):
    """torchvision.models.resnet.BasicBlock: one in-place ReLU module, called twice, and the skip added
    in place (`out += identity`), as torchvision writes it."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += identity
        return self.relu(out)


class ResNetTwin(nn.Module):
    def __init__(self, c: int = 8, blocks: int = 3, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.layer1 = nn.Sequential(*(TVBasicBlock(c) for _ in range(blocks)))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x):
        x = self.layer1(self.relu(self.bn1(self.conv1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# --- LSTM loop -------------------------------------------------------------------------------------

class LSTMLoop(nn.Module):
    """An nn.LSTMCell run over the time steps by a Python loop; the state is the tuple (h, c)."""

    def __init__(self, n_in: int = 8, hidden: int = 16, out: int = 4):
        super().__init__()
        self.hidden = hidden
        self.cell = nn.LSTMCell(n_in, hidden)
        self.head = nn.Linear(hidden, out)

    def forward(self, x):
        h = x.new_zeros(x.shape[0], self.hidden)
        c = x.new_zeros(x.shape[0], self.hidden)
        for t in range(x.shape[1]):
            h, c = self.cell(x[:, t], (h, c))
        return self.head(h)


# --- factories and inputs --------------------------------------------------------------------------

def _seeded(cls, **kw):
    torch.manual_seed(0)
    return cls(**kw).eval()


def llama(layers: int = 4):
    return _seeded(LlamaTwin, layers=layers)


def t5(layers: int = 4):
    return _seeded(T5Twin, layers=layers)


def resnet(blocks: int = 3):
    return _seeded(ResNetTwin, blocks=blocks)


def lstm():
    return _seeded(LSTMLoop)


def inputs(name: str) -> tuple:
    g = torch.Generator().manual_seed(0)
    if name == "llama":
        return (torch.randint(0, 64, (1, 8), generator=g),)
    if name == "t5":
        return (torch.randint(0, 64, (1, 8), generator=g), torch.randint(0, 64, (1, 6), generator=g))
    if name == "resnet":
        return (torch.randn(2, 3, 8, 8, generator=g),)
    if name == "lstm":
        return (torch.randn(2, 20, 8, generator=g),)
    raise KeyError(name)


# --- DenseNet, Inception, MobileNet/EfficientNet (issue 17: picture budget) ------------------------

class DenseLayer(nn.Module):
    """torchvision's _DenseLayer: BN-ReLU-Conv1x1-BN-ReLU-Conv3x3 over the concatenation of every
    earlier feature map of the block, so each layer reads all the ones before it."""

    def __init__(self, c_in: int, growth: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, 2 * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(2 * growth)
        self.conv2 = nn.Conv2d(2 * growth, growth, 3, padding=1, bias=False)

    def forward(self, features):
        x = torch.cat(features, 1)
        x = self.conv1(F.relu(self.norm1(x)))
        return self.conv2(F.relu(self.norm2(x)))


class DenseBlock(nn.Module):
    def __init__(self, layers: int, c_in: int, growth: int):
        super().__init__()
        self.layers = nn.ModuleList(DenseLayer(c_in + i * growth, growth) for i in range(layers))

    def forward(self, x):
        features = [x]
        for layer in self.layers:
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(c_in)
        self.conv = nn.Conv2d(c_in, c_out, 1, bias=False)
        self.pool = nn.AvgPool2d(2)

    def forward(self, x):
        return self.pool(self.conv(F.relu(self.norm(x))))


class DenseNetTwin(nn.Module):
    """densenet121's wiring (dense blocks of 6, 12, 24, 16 layers by default) at toy widths."""

    def __init__(self, blocks: tuple = (6, 12, 24, 16), growth: int = 4, c0: int = 8, classes: int = 10):
        super().__init__()
        self.conv0 = nn.Conv2d(3, c0, 3, padding=1, bias=False)
        self.norm0 = nn.BatchNorm2d(c0)
        stages, c = [], c0
        for i, n in enumerate(blocks):
            stages.append(DenseBlock(n, c, growth))
            c += n * growth
            if i < len(blocks) - 1:
                stages.append(Transition(c, c // 2))
                c //= 2
        self.features = nn.Sequential(*stages)
        self.norm5 = nn.BatchNorm2d(c)
        self.classifier = nn.Linear(c, classes)

    def forward(self, x):
        x = self.features(F.relu(self.norm0(self.conv0(x))))
        x = F.adaptive_avg_pool2d(F.relu(self.norm5(x)), 1)
        return self.classifier(torch.flatten(x, 1))


class ConvBN(nn.Module):
    def __init__(self, c_in: int, c_out: int, k: int = 1, stride: int = 1, groups: int = 1, act: bool = True):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False)
        self.bn = nn.BatchNorm2d(c_out)
        self.act = nn.SiLU() if act else nn.Identity()

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class InceptionBlock(nn.Module):
    """GoogLeNet's Inception: four parallel branches concatenated."""

    def __init__(self, c_in: int, c: int):
        super().__init__()
        self.branch1 = ConvBN(c_in, c)
        self.branch2 = nn.Sequential(ConvBN(c_in, c), ConvBN(c, c, 3))
        self.branch3 = nn.Sequential(ConvBN(c_in, c), ConvBN(c, c, 3), ConvBN(c, c, 3))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), ConvBN(c_in, c))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionTwin(nn.Module):
    def __init__(self, blocks: int = 4, c: int = 4, classes: int = 10):
        super().__init__()
        self.stem = ConvBN(3, 4 * c, 3)
        self.blocks = nn.Sequential(*(InceptionBlock(4 * c, c) for _ in range(blocks)))
        self.fc = nn.Linear(4 * c, classes)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.blocks(self.stem(x)), 1)
        return self.fc(torch.flatten(x, 1))


class SqueezeExcite(nn.Module):
    def __init__(self, c: int, r: int = 4):
        super().__init__()
        self.fc1 = nn.Conv2d(c, max(1, c // r), 1)
        self.fc2 = nn.Conv2d(max(1, c // r), c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.silu(self.fc1(s))))


class MBConv(nn.Module):
    """MobileNetV2/EfficientNet's inverted residual: expand 1×1, depthwise 3×3, squeeze-excite,
    project 1×1, with a residual when the shape allows."""

    def __init__(self, c_in: int, c_out: int, expand: int = 4, stride: int = 1, se: bool = True):
        super().__init__()
        mid = c_in * expand
        self.expand = ConvBN(c_in, mid)
        self.depthwise = ConvBN(mid, mid, 3, stride, groups=mid)
        self.se = SqueezeExcite(mid) if se else nn.Identity()
        self.project = ConvBN(mid, c_out, act=False)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.residual else y


class EfficientNetTwin(nn.Module):
    """efficientnet_b0's layout at toy widths: stages of MBConv blocks, the first of each stage
    changing the width (so it does not fold with the rest)."""

    def __init__(self, stages: tuple = (1, 2, 2, 3, 3, 4, 1), c: int = 4, se: bool = True, classes: int = 10):
        super().__init__()
        self.stem = ConvBN(3, c, 3)
        layers, width = [], c
        for i, n in enumerate(stages):
            out = c + 2 * (i + 1)
            layers.append(nn.Sequential(*(MBConv(width if j == 0 else out, out, se=se) for j in range(n))))
            width = out
        self.features = nn.Sequential(*layers)
        self.head = ConvBN(width, 4 * c)
        self.classifier = nn.Linear(4 * c, classes)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(self.head(self.features(self.stem(x))), 1)
        return self.classifier(torch.flatten(x, 1))


def densenet(blocks: tuple = (6, 12, 24, 16)):
    return _seeded(DenseNetTwin, blocks=blocks)


def inception(blocks: int = 4):
    return _seeded(InceptionTwin, blocks=blocks)


def efficientnet(stages: tuple = (1, 2, 2, 3, 3, 4, 1), se: bool = True):
    return _seeded(EfficientNetTwin, stages=stages, se=se)


def resnet18():
    """torchvision's resnet18 wiring at toy width: four stages of two BasicBlocks (the first block of
    each later stage downsamples through a 1×1 convolution on the skip)."""
    return _seeded(ResNet18Twin)


class TVDownBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, 2, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, 2, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.downsample(x)
        return self.relu(out)


class ResNet18Twin(nn.Module):
    def __init__(self, c: int = 4, classes: int = 10):
        super().__init__()
        self.conv1 = nn.Conv2d(3, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = nn.Sequential(TVBasicBlock(c), TVBasicBlock(c))
        self.layer2 = nn.Sequential(TVDownBlock(c, 2 * c), TVBasicBlock(2 * c))
        self.layer3 = nn.Sequential(TVDownBlock(2 * c, 4 * c), TVBasicBlock(4 * c))
        self.layer4 = nn.Sequential(TVDownBlock(4 * c, 8 * c), TVBasicBlock(8 * c))
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8 * c, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


def image_inputs(size: int = 16) -> tuple:
    g = torch.Generator().manual_seed(0)
    return (torch.randn(2, 3, size, size, generator=g),)


# --- detection post-processing (issue 24: Mask R-CNN's ops in no module) ----------------------------

class DetectorTwin(nn.Module):
    """A backbone and a head in modules, then post-processing in plain code at the top level, as
    torchvision's detection models do after roi_heads (transform.postprocess is a method, not a
    module call): per class a score, a clipped box and their product, ~90 ops in no module."""

    def __init__(self, classes: int = 12):
        super().__init__()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(4))
        self.head = nn.Linear(8 * 16, classes * 5)
        self.classes = classes

    def forward(self, x):
        y = self.head(torch.flatten(self.backbone(x), 1)).view(x.shape[0], self.classes, 5)
        outs = []
        for c in range(self.classes):
            score = torch.sigmoid(y[:, c, 0])
            box = y[:, c, 1:].clamp(-2, 2) * 16
            outs.append(box * score[:, None])
        return torch.stack(outs, 1)


def detector(classes: int = 12):
    return _seeded(DetectorTwin, classes=classes)
