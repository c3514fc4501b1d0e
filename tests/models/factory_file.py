"""A model file in the factory style, no `model` and no inputs: `cgviz torch tests/models/factory_file.py:build --input-shape 4,16`."""

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # for zoo, wherever cgviz is run from
    sys.path.insert(0, HERE)
import zoo  # noqa: E402


def build():
    return zoo.mlp()
