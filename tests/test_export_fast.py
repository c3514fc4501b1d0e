"""The JSON export's fast path for scalar expression programs writes the same bytes as the generic path."""

import hashlib

from cgviz.route.expression import evaluate
from cgviz.core.summary import as_summary
from cgviz.view.export import to_json

# The sha256 of this program's JSON as main wrote it before the fast path (commit e988835).
GOLDEN_SHA256 = "b16f90877342b2a5df98812cb5a613b5498430fd0d722e1eb21a973f71af82c0"


def program(n: int = 2000) -> str:
    """A long flat program as generated code writes it (bench/bench_lines.py's shape), with the cases a
    template could get wrong: negative zero, NaN, infinities, saturated tanh, vectors, names to escape,
    a const, a value used twice; the NaN and the infinity on branches the loss does not read."""
    lines = ["input x = 1", "param w = 0.5", "param 损失w = -0.25", "const c = 3", "input v = [1, -2, 0.5]",
             "z = -0.0 * w", "bad = log(-x)", "big = exp(4000 * w)", "s = sum(v * w)"]
    prev = "x"
    for i in range(n - 12):
        k = i % 6
        if k == 0:
            lines.append(f"v{i} = {prev} * w + 1")
        elif k == 1:
            lines.append(f"v{i} = tanh({prev})")
        elif k == 2:
            lines.append(f"v{i} = {prev} * 损失w - c")
        elif k == 3:
            lines.append(f"v{i} = sigmoid({prev} * 40) + z")
        elif k == 4:
            lines.append(f"v{i} = {prev} / 3 + s")
        else:
            lines.append(f"v{i} = {prev} * {prev}")
        prev = f"v{i}"
    lines.append(f"loss L = {prev} ^ 2")
    return "\n".join(lines) + "\n"


def test_fast_path_writes_the_generic_paths_bytes():
    r = evaluate(program(), "flat.cg", max_elements=400_000_000)
    fast = to_json(r.graph, r.run)
    # a RunSummary takes the generic per-node path (the model runs' own)
    assert fast == to_json(r.graph, as_summary(r.graph, r.run))
    assert '"NaN"' in fast and '"Infinity"' in fast and '-0.0' in fast


def test_fast_path_matches_the_golden_bytes():
    r = evaluate(program(), "flat.cg", max_elements=400_000_000)
    assert hashlib.sha256(to_json(r.graph, r.run).encode("utf-8")).hexdigest() == GOLDEN_SHA256
