"""A model file in the `model` + `example_inputs` style: `cgviz torch tests/models/mlp_file.py`."""

import sys
from pathlib import Path

HERE = str(Path(__file__).resolve().parent)
if HERE not in sys.path:  # for zoo, wherever cgviz is run from
    sys.path.insert(0, HERE)
import zoo  # noqa: E402

model = zoo.mlp()
example_inputs = zoo.example_inputs("mlp")
