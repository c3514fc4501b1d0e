"""A long program parsed line by line from shape templates (cgviz.lang.shapes) gives exactly the AST,
positions included, and exactly the errors of Lark's parse of the whole text."""

from __future__ import annotations

import random

import pytest

from cgviz.core.errors import SourceError
from cgviz.lang import parser, shapes

LINES = [
    "v{i} = {p} * w + 1", "v{i} = tanh({p})", "v{i} = ({p} + 1) / 2", "v{i} = -{p}^2 + {p} ** 3",
    "v{i} = mean({p}, axis=0) - 1e-3", "v{i} = {p}.T @ {p}", "v{i} = max({p}, .5)",
    "  v{i}=relu({p}-b)+{p}*0.5   ", "v{i} = sum([1, 2.5, 3] * {p})", "v{i} = {p} - loss_x",
    "\n# a comment line\nv{i} = +{p}", "v{i} = clip({p}, -1, 1)",
]


def program(n: int, seed: int = 0) -> str:
    rng = random.Random(seed)
    out = ["input x = randn(4, seed=0)", "param w = 0.5", "param b = 0.1", "param loss_x = 2"]
    prev = "x"
    for i in range(n):
        out.append(rng.choice(LINES).format(i=i, p=prev))
        prev = f"v{i}"
    out.append(f"loss L = mean({prev})")
    return "\n".join(out) + "\n"


def lark_only(text: str, name: str = "long.cg"):
    old = shapes.MIN_LINES
    shapes.MIN_LINES = 10**12
    try:
        return parser.parse(text, name)
    finally:
        shapes.MIN_LINES = old


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_templates_give_larks_ast(seed):
    text = program(3000, seed)
    fast = parser.parse(text, "long.cg")
    assert fast.statements == lark_only(text).statements
    assert len(fast.statements) == 3005


def test_the_template_path_is_taken_and_keeps_few_shapes(monkeypatch):
    text = program(3000)
    calls = []
    real = shapes.Shapes._parse_line
    monkeypatch.setattr(shapes.Shapes, "_parse_line", lambda self, *a: calls.append(a) or real(self, *a))
    parser.parse(text, "long.cg")
    assert 0 < len(calls) < 100          # one Lark parse per shape, not per line


def _error(fn, text):
    with pytest.raises(SourceError) as e:
        fn(text, "long.cg")
    return str(e.value)


@pytest.mark.parametrize("bad", ["v = 1 +* 2", "v = 1e999", "param for = 1", "v = 2 × 3", "v = (1,",
                                 "v = f(a=1, 2)", "input = 3", "v = 1.2.3"])
def test_an_error_late_in_a_long_program_reads_as_larks(bad):
    lines = program(1500).splitlines()
    lines.insert(1200, bad)
    text = "\n".join(lines) + "\n"
    assert _error(parser.parse, text) == _error(lark_only, text)


def test_multi_line_statements_and_loops_fall_back_to_the_whole_parse():
    text = program(800) + "z = [1,\n 2]\nh = 0\nfor t in 1..3: h = h + z\n"
    assert parser.parse(text).statements == lark_only(text).statements


def test_names_outside_ascii_take_the_whole_parse_and_its_checks():
    text = program(800) + "θ = v0 * 2\nｘ = θ + 1\n"
    prog = parser.parse(text)
    assert prog.statements == lark_only(text).statements
    assert prog.statements[-1].name == "x"          # NFKC, as the lexer normalises it
    bad = program(800) + "v = a€b\n"
    assert _error(parser.parse, bad) == _error(lark_only, bad)
