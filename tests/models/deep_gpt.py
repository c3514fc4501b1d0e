"""sample_graphs/models/tiny_gpt.py with 24 blocks and tiny widths: a big model's shape (×24) that
traces and lays out in seconds, for the drill-down page's browser tests and --focus."""

import importlib.util
from pathlib import Path

import torch

_spec = importlib.util.spec_from_file_location(
    "cgviz_tiny_gpt", Path(__file__).resolve().parents[2] / "sample_graphs" / "models" / "tiny_gpt.py")
_tiny = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_tiny)

torch.manual_seed(0)
model = _tiny.TinyGPT(vocab=32, d=16, heads=2, layers=24, context=8)
example_inputs = (torch.randint(0, 32, (1, 8)),)
