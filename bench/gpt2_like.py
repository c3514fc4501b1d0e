"""GPT-2 small as a model file for benchmarks: `cgviz torch bench/gpt2_like.py`."""

import importlib.util
import sys
from pathlib import Path

# bench/models.py loaded by path under its own name: a plain `import models` could pick up another
# module called `models` already imported in the same process (tests/models is one, under pytest).
_spec = importlib.util.spec_from_file_location("cgviz_bench_models", Path(__file__).resolve().with_name("models.py"))
models = sys.modules.get(_spec.name)
if models is None:
    models = importlib.util.module_from_spec(_spec)
    sys.modules[_spec.name] = models
    _spec.loader.exec_module(models)

model = models.gpt2_small_like()
example_inputs = models.example_inputs("gpt2_small_like")
