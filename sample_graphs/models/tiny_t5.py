"""A T5-style encoder-decoder small enough to read, wired like Hugging Face's T5Model: a shared
embedding, tied to lm_head; an encoder and a decoder stack whose first block owns the relative-position embedding
and computes the position bias every later block of its stack reuses (so blocks 1… of each stack fold
×N and block 0 is drawn on its own); the decoder's self-attention is causal and it cross-attends to
the encoder's output. Input: source and target token ids.

The folding tests (tests/models/twins.py) and the bench (bench/twins_bench.py, at T5-small's size)
build the same classes.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

from tiny_llama import RMSNorm


class T5LayerNorm(RMSNorm):
    """T5's LayerNorm is an RMSNorm: no mean subtracted, no bias."""


class T5Attention(nn.Module):
    def __init__(self, d: int, heads: int, relative_bias: bool, causal: bool, buckets: int = 32):
        super().__init__()
        self.heads, self.hd, self.causal, self.buckets = heads, d // heads, causal, buckets
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.relative_attention_bias = nn.Embedding(buckets, heads) if relative_bias else None

    def bias(self, Tq: int, Tk: int, device) -> torch.Tensor:
        rel = torch.arange(Tk, device=device)[None, :] - torch.arange(Tq, device=device)[:, None]
        if self.causal:
            bucket = (-rel).clamp(min=0).clamp(max=self.buckets - 1)
        else:
            half = self.buckets // 2
            bucket = rel.abs().clamp(max=half - 1) + (rel > 0).long() * half
        return self.relative_attention_bias(bucket).permute(2, 0, 1)[None]

    def forward(self, x, kv=None, position_bias=None, mask=None):
        B, T, D = x.shape
        kv = x if kv is None else kv
        S = kv.shape[1]
        q = self.q(x).view(B, T, self.heads, self.hd).transpose(1, 2)
        k = self.k(kv).view(B, S, self.heads, self.hd).transpose(1, 2)
        v = self.v(kv).view(B, S, self.heads, self.hd).transpose(1, 2)
        if position_bias is None:
            position_bias = (self.bias(T, S, x.device) if self.relative_attention_bias is not None
                             else torch.zeros(1, self.heads, T, S, device=x.device))
            if mask is not None:
                position_bias = position_bias + mask
        att = (q @ k.transpose(-2, -1) + position_bias).softmax(-1)
        return self.o((att @ v).transpose(1, 2).reshape(B, T, D)), position_bias


class T5FF(nn.Module):
    def __init__(self, d: int, ff: int):
        super().__init__()
        self.layer_norm = T5LayerNorm(d)
        self.wi = nn.Linear(d, ff, bias=False)
        self.wo = nn.Linear(ff, d, bias=False)

    def forward(self, x):
        return x + self.wo(F.relu(self.wi(self.layer_norm(x))))


class T5Block(nn.Module):
    def __init__(self, d, heads, ff, first: bool, decoder: bool):
        super().__init__()
        self.ln_self = T5LayerNorm(d)
        self.self_attn = T5Attention(d, heads, relative_bias=first, causal=decoder)
        self.decoder = decoder
        if decoder:
            self.ln_cross = T5LayerNorm(d)
            self.cross_attn = T5Attention(d, heads, relative_bias=False, causal=False)
        self.ff = T5FF(d, ff)

    def forward(self, x, bias, mask=None, enc=None, cross_bias=None):
        y, bias = self.self_attn(self.ln_self(x), position_bias=bias, mask=mask)
        x = x + y
        if self.decoder:
            y, cross_bias = self.cross_attn(self.ln_cross(x), kv=enc, position_bias=cross_bias)
            x = x + y
        return self.ff(x), bias, cross_bias


class T5Stack(nn.Module):
    def __init__(self, d, heads, ff, layers, decoder: bool):
        super().__init__()
        self.block = nn.ModuleList([T5Block(d, heads, ff, i == 0, decoder) for i in range(layers)])
        self.final_layer_norm = T5LayerNorm(d)
        self.decoder = decoder

    def forward(self, x, enc=None):
        T = x.shape[1]
        mask = torch.full((T, T), float("-inf"), device=x.device).triu(1) if self.decoder else None
        bias = cross = None
        for blk in self.block:          # the first layer computes the position bias, the rest reuse it
            x, bias, cross = blk(x, bias, mask, enc, cross)
        return self.final_layer_norm(x)


class T5Like(nn.Module):
    """T5's wiring; T5-small's shape by default (d 512, 8 heads, ff 2048, 6 + 6 layers, a shared embedding)."""

    def __init__(self, vocab=32128, d=512, heads=8, ff=2048, layers=6, tied: bool = True):
        super().__init__()
        self.shared = nn.Embedding(vocab, d)
        self.encoder = T5Stack(d, heads, ff, layers, decoder=False)
        self.decoder = T5Stack(d, heads, ff, layers, decoder=True)
        self.lm_head = nn.Linear(d, vocab, bias=False)
        if tied:        # T5 ties lm_head to the shared embedding (tie_word_embeddings), hence the d**-0.5 below
            self.lm_head.weight = self.shared.weight
        self.d = d

    def forward(self, input_ids, decoder_input_ids):
        enc = self.encoder(self.shared(input_ids))
        dec = self.decoder(self.shared(decoder_input_ids), enc)
        return self.lm_head(dec * self.d ** -0.5)


torch.manual_seed(0)
model = T5Like(vocab=64, d=32, heads=4, ff=64, layers=4).eval()
_g = torch.Generator().manual_seed(0)
example_inputs = (torch.randint(0, 64, (1, 8), generator=_g), torch.randint(0, 64, (1, 6), generator=_g))
