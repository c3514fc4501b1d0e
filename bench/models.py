"""Full-size benchmark models, written by hand (no torchvision): a ResNet-50 and a GPT-2 small.

Both follow the published architectures layer for layer, so their graphs have the real number of
nodes; only the input is small (a 64×64 image, 64 tokens) to keep the forward pass cheap on a CPU.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


# --- ResNet-50 -------------------------------------------------------------------------------------

class Bottleneck(nn.Module):
    """1×1 reduce, 3×3 (carrying the stride), 1×1 expand ×4, each with BN; projection skip when needed."""

    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int = 1):
        super().__init__()
        c_out = width * self.expansion
        self.conv1 = nn.Conv2d(c_in, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, c_out, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(c_out)
        self.downsample = None
        if stride != 1 or c_in != c_out:
            self.downsample = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=stride, bias=False),
                                            nn.BatchNorm2d(c_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return F.relu(out + identity)


class ResNet50Like(nn.Module):
    """Stem (7×7/2 conv, BN, ReLU, 3×3/2 max-pool), stages of [3, 4, 6, 3] bottlenecks, pool, fc."""

    def __init__(self, blocks=(3, 4, 6, 3), widths=(64, 128, 256, 512), classes: int = 1000):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        c = 64
        stages = []
        for i, (n, w) in enumerate(zip(blocks, widths)):
            stage = []
            for j in range(n):
                # As in torchvision's ResNet v1.5: the first block of stages 2-4 halves the size.
                stage.append(Bottleneck(c, w, stride=2 if (i > 0 and j == 0) else 1))
                c = w * Bottleneck.expansion
            stages.append(nn.Sequential(*stage))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


# --- GPT-2 small -----------------------------------------------------------------------------------

class CausalSelfAttention(nn.Module):
    """GPT-2's attention: one fused qkv projection (c_attn), causal softmax, output projection."""

    def __init__(self, d: int, heads: int, context: int):
        super().__init__()
        self.heads = heads
        self.c_attn = nn.Linear(d, 3 * d)
        self.c_proj = nn.Linear(d, d)
        self.register_buffer("bias", torch.tril(torch.ones(context, context, dtype=torch.bool)),
                             persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        hd = C // self.heads
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, self.heads, hd).transpose(1, 2)
        k = k.view(B, T, self.heads, hd).transpose(1, 2)
        v = v.view(B, T, self.heads, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / float(hd) ** 0.5)
        att = att.masked_fill(~self.bias[:T, :T], float("-inf")).softmax(dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    """d → 4d → d with GELU (tanh approximation, as GPT-2)."""

    def __init__(self, d: int):
        super().__init__()
        self.c_fc = nn.Linear(d, 4 * d)
        self.gelu = nn.GELU(approximate="tanh")
        self.c_proj = nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.gelu(self.c_fc(x)))


class Block(nn.Module):
    """Pre-LayerNorm block: x + attn(ln_1(x)), then x + mlp(ln_2(x))."""

    def __init__(self, d: int, heads: int, context: int):
        super().__init__()
        self.ln_1 = nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, heads, context)
        self.ln_2 = nn.LayerNorm(d)
        self.mlp = MLP(d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT2SmallLike(nn.Module):
    """GPT-2 small: 12 blocks, d=768, 12 heads, vocab 50257, 1024 positions, head tied to wte."""

    def __init__(self, vocab: int = 50257, context: int = 1024, d: int = 768, heads: int = 12,
                 layers: int = 12):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(context, d)
        self.h = nn.ModuleList([Block(d, heads, context) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        self.lm_head.weight = self.wte.weight    # weight tying, as in GPT-2 (124M parameters, not 163M)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        return self.lm_head(self.ln_f(x))


# --- factories -------------------------------------------------------------------------------------

def resnet50_like() -> ResNet50Like:
    torch.manual_seed(0)
    return ResNet50Like().eval()


def gpt2_small_like() -> GPT2SmallLike:
    torch.manual_seed(0)
    return GPT2SmallLike().eval()


def example_inputs(name: str) -> tuple:
    """Inputs for "resnet50_like" (1×3×64×64 image) or "gpt2_small_like" (1×64 token ids)."""
    g = torch.Generator().manual_seed(0)
    if name == "resnet50_like":
        return (torch.randn(1, 3, 64, 64, generator=g),)
    if name == "gpt2_small_like":
        return (torch.randint(0, 50257, (1, 64), generator=g),)
    raise KeyError(name)
