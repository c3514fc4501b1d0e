"""Small hand-written PyTorch models for cgviz's tests: each deterministic, each a different shape of graph.

Import this file as the top-level module `zoo` (put tests/models on sys.path), never as
`tests.models.zoo`: pickled modules (`torch.save(model)`) record their classes as `zoo.X`.

Every class is written so that `torch.jit.script` and `torch.export.export` both accept it: type
annotations on non-tensor arguments, no data-dependent Python control flow, no globals in forward.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F


# --- MLP -------------------------------------------------------------------------------------------

class MLP(nn.Module):
    """16 → 32 → 32 → 4 with ReLU: the smallest graph with more than one layer."""

    def __init__(self, sizes: Tuple[int, ...] = (16, 32, 32, 4)):
        super().__init__()
        self.fc1 = nn.Linear(sizes[0], sizes[1])
        self.fc2 = nn.Linear(sizes[1], sizes[2])
        self.fc3 = nn.Linear(sizes[2], sizes[3])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


# --- ResCNN ----------------------------------------------------------------------------------------

class BasicBlock(nn.Module):
    """conv-BN-ReLU-conv-BN plus the identity skip, channels unchanged (so blocks repeat exactly)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c)
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(out)))


class ResCNN(nn.Module):
    """Stem, three identical BasicBlocks in `layers` (foldable as ×3), global pool, linear head."""

    def __init__(self, c: int = 8, classes: int = 10, blocks: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU())
        self.layers = nn.Sequential(*[BasicBlock(c) for _ in range(blocks)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c, classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(torch.flatten(self.pool(self.layers(self.stem(x))), 1))


# --- TinyGPT ---------------------------------------------------------------------------------------

class CausalSelfAttention(nn.Module):
    """Multi-head attention written out: separate q/k/v projections, a causal mask, softmax."""

    def __init__(self, d: int, heads: int, context: int):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(d, d)
        self.k = nn.Linear(d, d)
        self.v = nn.Linear(d, d)
        self.proj = nn.Linear(d, d)
        # A buffer, not a tensor built in forward: it is saved with the model and sliced to the length.
        self.register_buffer("mask", torch.tril(torch.ones(context, context, dtype=torch.bool)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        hd = C // self.heads
        q = self.q(x).view(B, T, self.heads, hd).transpose(1, 2)
        k = self.k(x).view(B, T, self.heads, hd).transpose(1, 2)
        v = self.v(x).view(B, T, self.heads, hd).transpose(1, 2)
        att = (q @ k.transpose(-2, -1)) * (1.0 / float(hd) ** 0.5)
        att = att.masked_fill(~self.mask[:T, :T], float("-inf")).softmax(dim=-1)
        return self.proj((att @ v).transpose(1, 2).reshape(B, T, C))


class GPTBlock(nn.Module):
    """Pre-LayerNorm transformer block: x + attn(ln1(x)), then x + mlp(ln2(x)) with a GELU MLP."""

    def __init__(self, d: int, heads: int, context: int):
        super().__init__()
        self.ln1 = nn.LayerNorm(d)
        self.attn = CausalSelfAttention(d, heads, context)
        self.ln2 = nn.LayerNorm(d)
        self.mlp = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class TinyGPT(nn.Module):
    """Token + learned position embeddings, 4 identical blocks in `blocks`, final LayerNorm, LM head."""

    def __init__(self, vocab: int = 64, d: int = 32, heads: int = 4, layers: int = 4, context: int = 16):
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(context, d)
        self.blocks = nn.ModuleList([GPTBlock(d, heads, context) for _ in range(layers)])
        self.ln_f = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        pos = torch.arange(idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(pos)
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln_f(x))


# --- RNNLoop ---------------------------------------------------------------------------------------

class RNNCell(nn.Module):
    """h' = tanh(W_ih x + W_hh h): the cell that the Python loop calls once per time step."""

    def __init__(self, n_in: int = 8, n_hidden: int = 16):
        super().__init__()
        self.ih = nn.Linear(n_in, n_hidden)
        self.hh = nn.Linear(n_hidden, n_hidden)

    def forward(self, x: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.ih(x) + self.hh(h))


class RNNLoop(nn.Module):
    """One `cell` called in a Python for-loop over the time axis, then a head on the last state."""

    def __init__(self, n_in: int = 8, n_hidden: int = 16, n_out: int = 4):
        super().__init__()
        self.n_hidden = n_hidden
        self.cell = RNNCell(n_in, n_hidden)
        self.head = nn.Linear(n_hidden, n_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.zeros(x.shape[0], self.n_hidden, dtype=x.dtype, device=x.device)
        for t in range(x.shape[1]):
            h = self.cell(x[:, t], h)
        return self.head(h)


# --- DictTuple -------------------------------------------------------------------------------------

class DictTuple(nn.Module):
    """Dict in, (logits, None, {"aux": tensor}) out; an int64 buffer picks a feature permutation."""

    def __init__(self, n: int = 8, hidden: int = 12, classes: int = 3):
        super().__init__()
        self.enc = nn.Linear(n, hidden)
        self.head = nn.Linear(hidden, classes)
        # An integer buffer used as an index: loaders and tracers must carry non-float state too.
        self.register_buffer("perm", torch.arange(n - 1, -1, -1, dtype=torch.long))

    def forward(self, batch: Dict[str, torch.Tensor]) -> Tuple[torch.Tensor, Optional[torch.Tensor], Dict[str, torch.Tensor]]:
        x = batch["image"][:, self.perm] * batch["mask"]
        h = torch.tanh(self.enc(x))
        logits = self.head(h)
        aux = (h * h).mean()
        return logits, None, {"aux": aux}


# --- factories and example inputs ------------------------------------------------------------------

def _seeded(cls: type, *args) -> nn.Module:
    """Build with a fixed seed, so every call gives the same weights, and switch to eval mode."""
    torch.manual_seed(0)
    return cls(*args).eval()


def mlp() -> MLP:
    return _seeded(MLP)


def rescnn() -> ResCNN:
    return _seeded(ResCNN)


def tinygpt() -> TinyGPT:
    return _seeded(TinyGPT)


def rnnloop() -> RNNLoop:
    return _seeded(RNNLoop)


def dicttuple() -> DictTuple:
    return _seeded(DictTuple)


def _gen() -> torch.Generator:
    # A private generator: inputs never depend on (or disturb) the global RNG state.
    return torch.Generator().manual_seed(1234)


def mlp_inputs() -> tuple:
    return (torch.randn(4, 16, generator=_gen()),)


def rescnn_inputs() -> tuple:
    return (torch.randn(2, 3, 16, 16, generator=_gen()),)


def tinygpt_inputs() -> tuple:
    return (torch.randint(0, 64, (1, 16), generator=_gen(), dtype=torch.long),)


def rnnloop_inputs() -> tuple:
    return (torch.randn(2, 20, 8, generator=_gen()),)


def dicttuple_inputs() -> tuple:
    g = _gen()
    image = torch.randn(2, 8, generator=g)
    mask = (torch.rand(2, 8, generator=g) > 0.25).float()
    return ({"image": image, "mask": mask},)


MODELS: Dict[str, Tuple[Callable[[], nn.Module], Callable[[], tuple]]] = {
    "mlp": (mlp, mlp_inputs),
    "rescnn": (rescnn, rescnn_inputs),
    "tinygpt": (tinygpt, tinygpt_inputs),
    "rnnloop": (rnnloop, rnnloop_inputs),
    "dicttuple": (dicttuple, dicttuple_inputs),
}


def example_inputs(name: str) -> tuple:
    """The positional arguments of model `name`'s forward, freshly made (same values every call)."""
    return MODELS[name][1]()


def scalar_loss(out) -> torch.Tensor:
    """Sum every tensor in a (possibly nested) output: what the tests call backward on."""
    if isinstance(out, torch.Tensor):
        return out.sum()
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        parts = [scalar_loss(o) for o in out if o is not None]
        return torch.stack(parts).sum()
    raise TypeError(f"cannot sum a {type(out).__name__}")
