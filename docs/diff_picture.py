"""Write docs/diff.png, the README's diff picture: a small MLP against a copy with its sigmoid swapped
for a ReLU and a block inserted (`python docs/diff_picture.py`)."""

import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import cgviz  # noqa: E402

MLP = """import torch, torch.nn as nn
def build():
    torch.manual_seed(0)
    return nn.Sequential({layers})
"""

with tempfile.TemporaryDirectory() as d:
    a, b = Path(d) / "before.py", Path(d) / "after.py"
    a.write_text(MLP.format(layers="nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 2)"))
    b.write_text(MLP.format(layers="nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 2)"))
    c = cgviz.compare(f"{a}:build", f"{b}:build", input_shape="3,4")
    c.save(ROOT / "docs" / "diff.png")
    print(c.text())
