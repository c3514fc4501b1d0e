"""t5_like (bench/twins_bench.py) as a model file for benchmarks: `cgviz torch bench/twin_t5_like.py`."""

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

model = twins.FACTORIES["t5_like"]()
example_inputs = twins.example_inputs("t5_like")
