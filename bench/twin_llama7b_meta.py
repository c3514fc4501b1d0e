"""llama7b_meta (bench/twins_bench.py) as a model file for benchmarks: `cgviz torch bench/twin_llama7b_meta.py`."""

import importlib.util
import sys
from pathlib import Path

# loaded by path under its own name, like bench/resnet50_like.py loads bench/models.py
_spec = importlib.util.spec_from_file_location("cgviz_bench_twins", Path(__file__).resolve().with_name("twins_bench.py"))
twins = sys.modules.get(_spec.name)
if twins is None:
    twins = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = twins
    _spec.loader.exec_module(twins)

import torch  # noqa: E402
with torch.device("meta"):     # 6.7B parameters: shapes only, nothing allocated
    model = twins.FACTORIES["llama7b_meta"]()
example_inputs = twins.example_inputs("llama7b_meta")
