"""Tensor summaries as the model pictures print them: integers stay whole (token ids, indices)."""

from __future__ import annotations

import pytest
import torch

from cgviz.core.fmt import num
from cgviz.core.fmt import info_text as value_text
from cgviz.core.summary import TensorInfo


@pytest.mark.parametrize("dtype", [torch.int64, torch.int32, torch.int16, torch.uint8])
def test_integer_tensors_print_whole(dtype):
    hi = 250 if dtype == torch.uint8 else 30000
    small = torch.tensor([[7, hi, 12]], dtype=dtype)
    assert value_text(TensorInfo.of(small)) == f"[1×3] {str(dtype)[6:]}\n[[7, {hi}, 12]]"
    big = torch.arange(0, 10_000, dtype=torch.int64).to(dtype) if dtype != torch.uint8 else \
        torch.arange(0, 10_000).remainder(251).to(torch.uint8)
    text = value_text(TensorInfo.of(big))
    assert "e" not in text.split("\n")[1] and text.split("\n")[1] == f"0…{int(big.max())}"


def test_large_token_ids_are_not_rounded():
    ids = torch.tensor([[263, 49910, 50256, 1]] * 300)     # 1200 elements: summarised by min…max
    assert value_text(TensorInfo.of(ids)).endswith("\n1…50256")


def test_floats_keep_four_significant_digits():
    assert num(49910.0) == "4.991e4" and num(49910) == "49910" and num(True) == "1"
    assert value_text(TensorInfo.of(torch.tensor([0.5, 49910.0]))) == "[2] float32\n[0.5, 4.991e4]"
