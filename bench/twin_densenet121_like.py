"""densenet121_like (bench/twins_bench.py) as a model file for benchmarks: `cgviz torch bench/twin_densenet121_like.py`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))      # bench/ is no package: its twins module
import twins_bench as twins  # noqa: E402

model = twins.FACTORIES["densenet121_like"]()
example_inputs = twins.example_inputs("densenet121_like")
