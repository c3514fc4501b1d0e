"""llama7b_meta (bench/twins_bench.py) as a model file for benchmarks: `cgviz torch bench/twin_llama7b_meta.py`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))      # bench/ is no package: its twins module
import twins_bench as twins  # noqa: E402

import torch  # noqa: E402
with torch.device("meta"):     # 6.7B parameters: shapes only, nothing allocated
    model = twins.FACTORIES["llama7b_meta"]()
example_inputs = twins.example_inputs("llama7b_meta")
