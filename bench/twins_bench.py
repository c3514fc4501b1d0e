"""Bench-sized twins of real architectures in plain torch (no torchvision, timm or transformers).

Written for bench/bench_torch.py at realistic widths and depths, wired like the originals, with what
makes each picture hard: ResNet-18's BasicBlock calling one `self.relu` twice (torchvision's), a
DenseNet-121's concatenations, GoogLeNet's four-branch Inception modules, EfficientNet-B0's
depthwise MBConv blocks with squeeze-excite, a Llama-style decoder whose rotary cos/sin are computed
once and handed to every layer, and a T5-style encoder-decoder whose relative position bias is
computed by each stack's first layer. tests/models/twins.py has tiny versions for the tests; the
Llama classes are the sample model's own (sample_graphs/models/tiny_llama.py), built here at bench size.

Inputs are small (a 64x64 image, 64 tokens) so the forward pass stays cheap on a CPU; the graphs
have the real number of nodes. Every factory seeds torch, so runs are repeatable.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


# --- ResNet-18 (BasicBlock with a shared ReLU) -----------------------------------------------------

class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.relu = nn.ReLU(inplace=True)             # called twice, as in torchvision
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False), nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class ResNet18Like(nn.Module):
    def __init__(self, classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        c, layers = 64, []
        for i, w in enumerate((64, 128, 256, 512)):
            layers.append(nn.Sequential(BasicBlock(c, w, 1 if i == 0 else 2), BasicBlock(w, w)))
            c = w
        self.layer1, self.layer2, self.layer3, self.layer4 = layers
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, classes)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# --- DenseNet-121 ----------------------------------------------------------------------------------

class DenseLayer(nn.Module):
    def __init__(self, c_in: int, growth: int = 32, bn_size: int = 4):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(c_in)
        self.conv1 = nn.Conv2d(c_in, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, features: list[torch.Tensor]) -> torch.Tensor:
        x = torch.cat(features, 1)                     # every earlier layer's output
        x = self.conv1(F.relu(self.norm1(x)))
        return self.conv2(F.relu(self.norm2(x)))


class DenseBlock(nn.ModuleDict):
    def __init__(self, n: int, c_in: int, growth: int = 32):
        super().__init__({f"denselayer{i + 1}": DenseLayer(c_in + i * growth, growth) for i in range(n)})

    def forward(self, x):
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, c_in: int, c_out: int):
        super().__init__(nn.BatchNorm2d(c_in), nn.ReLU(), nn.Conv2d(c_in, c_out, 1, bias=False), nn.AvgPool2d(2, 2))


class DenseNet121Like(nn.Module):
    def __init__(self, blocks=(6, 12, 24, 16), growth: int = 32, classes: int = 1000):
        super().__init__()
        c = 64
        feats = [nn.Conv2d(3, c, 7, 2, 3, bias=False), nn.BatchNorm2d(c), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
        for i, n in enumerate(blocks):
            feats.append(DenseBlock(n, c, growth))
            c += n * growth
            if i != len(blocks) - 1:
                feats.append(Transition(c, c // 2))
                c //= 2
        feats.append(nn.BatchNorm2d(c))
        self.features = nn.Sequential(*feats)
        self.classifier = nn.Linear(c, classes)

    def forward(self, x):
        x = F.adaptive_avg_pool2d(F.relu(self.features(x)), 1)
        return self.classifier(torch.flatten(x, 1))


# --- GoogLeNet / Inception v1 ----------------------------------------------------------------------

class ConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, k: int, stride: int = 1, padding: int = 0):
        super().__init__(nn.Conv2d(c_in, c_out, k, stride, padding, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class Inception(nn.Module):
    def __init__(self, c_in, c1, c3r, c3, c5r, c5, pool):
        super().__init__()
        self.branch1 = ConvBN(c_in, c1, 1)
        self.branch2 = nn.Sequential(ConvBN(c_in, c3r, 1), ConvBN(c3r, c3, 3, padding=1))
        self.branch3 = nn.Sequential(ConvBN(c_in, c5r, 1), ConvBN(c5r, c5, 3, padding=1))
        self.branch4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), ConvBN(c_in, pool, 1))

    def forward(self, x):
        return torch.cat([self.branch1(x), self.branch2(x), self.branch3(x), self.branch4(x)], 1)


class InceptionLike(nn.Module):
    """GoogLeNet's nine Inception modules (torchvision's channel table), without the aux heads."""

    def __init__(self, classes: int = 1000):
        super().__init__()
        self.conv1 = ConvBN(3, 64, 7, 2, 3)
        self.maxpool1 = nn.MaxPool2d(3, 2, 1)
        self.conv2 = ConvBN(64, 64, 1)
        self.conv3 = ConvBN(64, 192, 3, padding=1)
        self.maxpool2 = nn.MaxPool2d(3, 2, 1)
        self.inception3a = Inception(192, 64, 96, 128, 16, 32, 32)
        self.inception3b = Inception(256, 128, 128, 192, 32, 96, 64)
        self.maxpool3 = nn.MaxPool2d(3, 2, 1)
        self.inception4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.inception4b = Inception(512, 160, 112, 224, 24, 64, 64)
        self.inception4c = Inception(512, 128, 128, 256, 24, 64, 64)
        self.inception4d = Inception(512, 112, 144, 288, 32, 64, 64)
        self.inception4e = Inception(528, 256, 160, 320, 32, 128, 128)
        self.maxpool4 = nn.MaxPool2d(2, 2)
        self.inception5a = Inception(832, 256, 160, 320, 32, 128, 128)
        self.inception5b = Inception(832, 384, 192, 384, 48, 128, 128)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(1024, classes)

    def forward(self, x):
        x = self.maxpool2(self.conv3(self.conv2(self.maxpool1(self.conv1(x)))))
        x = self.maxpool3(self.inception3b(self.inception3a(x)))
        for m in (self.inception4a, self.inception4b, self.inception4c, self.inception4d, self.inception4e):
            x = m(x)
        x = self.inception5b(self.inception5a(self.maxpool4(x)))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# --- EfficientNet-B0 (MBConv: depthwise conv + squeeze-excite) ------------------------------------

class SqueezeExcite(nn.Module):
    def __init__(self, c: int, squeeze: int):
        super().__init__()
        self.fc1 = nn.Conv2d(c, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        return x * torch.sigmoid(self.fc2(F.silu(self.fc1(s))))


class MBConv(nn.Module):
    def __init__(self, c_in: int, c_out: int, expand: int, k: int, stride: int):
        super().__init__()
        mid = c_in * expand
        self.expand = (nn.Sequential(nn.Conv2d(c_in, mid, 1, bias=False), nn.BatchNorm2d(mid), nn.SiLU())
                       if expand != 1 else nn.Identity())
        self.depthwise = nn.Sequential(nn.Conv2d(mid, mid, k, stride, k // 2, groups=mid, bias=False),
                                       nn.BatchNorm2d(mid), nn.SiLU())
        self.se = SqueezeExcite(mid, max(1, c_in // 4))
        self.project = nn.Sequential(nn.Conv2d(mid, c_out, 1, bias=False), nn.BatchNorm2d(c_out))
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x):
        y = self.project(self.se(self.depthwise(self.expand(x))))
        return x + y if self.residual else y


class EfficientNetB0Like(nn.Module):
    # (expand, channels, repeats, stride, kernel): EfficientNet-B0's table, 16 MBConv blocks
    STAGES = ((1, 16, 1, 1, 3), (6, 24, 2, 2, 3), (6, 40, 2, 2, 5), (6, 80, 3, 2, 3),
              (6, 112, 3, 1, 5), (6, 192, 4, 2, 5), (6, 320, 1, 1, 3))

    def __init__(self, classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 32, 3, 2, 1, bias=False), nn.BatchNorm2d(32), nn.SiLU())
        blocks, c = [], 32
        for e, ch, n, s, k in self.STAGES:
            stage = []
            for i in range(n):
                stage.append(MBConv(c, ch, e, k, s if i == 0 else 1))
                c = ch
            blocks.append(nn.Sequential(*stage))
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Conv2d(c, 1280, 1, bias=False), nn.BatchNorm2d(1280), nn.SiLU())
        self.classifier = nn.Linear(1280, classes)

    def forward(self, x):
        x = self.head(self.blocks(self.stem(x)))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


# --- Llama-style decoder: the sample model's classes (sample_graphs/models/tiny_llama.py) at bench size

import sys as _sys  # noqa: E402
from pathlib import Path as _Path  # noqa: E402

_SAMPLES = str(_Path(__file__).resolve().parents[1] / "sample_graphs" / "models")
if _SAMPLES not in _sys.path:
    _sys.path.insert(0, _SAMPLES)
from tiny_llama import LlamaTwin  # noqa: E402


def LlamaLike(vocab=32000, d=512, layers=8, heads=8, kv_heads=8, hidden=1376):
    """Llama-2's wiring at bench size (d 512, 8 layers, MLP 1376, vocab 32000; rotary side inputs)."""
    return LlamaTwin(vocab=vocab, d=d, heads=heads, kv_heads=kv_heads, hidden=hidden, layers=layers)


# --- T5-style encoder-decoder: the sample model's classes (sample_graphs/models/tiny_t5.py) -------

from tiny_t5 import T5Like  # noqa: E402


# --- factories and inputs --------------------------------------------------------------------------

def _seeded(cls, **kw):
    torch.manual_seed(0)
    return cls(**kw).eval()


FACTORIES = {
    "resnet18_like": lambda: _seeded(ResNet18Like),
    "densenet121_like": lambda: _seeded(DenseNet121Like),
    "inception_like": lambda: _seeded(InceptionLike),
    "efficientnet_b0_like": lambda: _seeded(EfficientNetB0Like),
    "llama_like": lambda: _seeded(LlamaLike),
    "t5_like": lambda: _seeded(T5Like),
    # Llama-2-7B's shape (32 layers, d 4096, MLP 11008, vocab 32000): for --meta only, never built on a CPU
    "llama7b_meta": lambda: LlamaLike(vocab=32000, d=4096, layers=32, heads=32, kv_heads=32, hidden=11008),
}


def example_inputs(name: str) -> tuple:
    g = torch.Generator().manual_seed(0)
    if name in ("resnet18_like", "densenet121_like", "inception_like", "efficientnet_b0_like"):
        return (torch.randn(1, 3, 64, 64, generator=g),)
    if name == "llama_like":
        return (torch.randint(0, 32000, (1, 64), generator=g),)
    if name == "t5_like":
        return (torch.randint(0, 32128, (1, 64), generator=g), torch.randint(0, 32128, (1, 32), generator=g))
    if name == "llama7b_meta":
        return (torch.zeros(1, 64, dtype=torch.long, device="meta"),)
    raise KeyError(name)
