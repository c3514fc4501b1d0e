"""The graph golden (cgviz.view.golden): structure compared exactly, numbers within a tolerance that
float32 runs on other machines pass, and a report that says what changed, node by node."""

from __future__ import annotations

import copy
import importlib.util
import json

import pytest

import cgviz
from cgviz.view import golden as G
from conftest import ROOT

PIZZA = (ROOT / "sample_graphs" / "pizza.cg").read_text()


def doc(text: str = PIZZA, **kw) -> dict:
    return G.document(cgviz.draw(text, kind="text", **kw))


def test_the_same_program_is_the_same_graph():
    d = G.compare(doc(), doc())
    assert d.same and d.lines == ["0 nodes added, 0 removed"]
    # from the --format json document, as from the drawing
    drawing = cgviz.draw(PIZZA, kind="text")
    assert G.from_graph(drawing.to_dict()) == G.document(drawing) and doc()["loss_value"] == 100


def test_an_added_op_fails_with_added_node():
    changed = PIZZA.replace("loss L = (a - y)^2", "loss L = (tanh(a) - y)^2")
    d = G.compare(doc(), doc(changed))
    assert not d.same and d.added == 1 and d.removed == 0
    assert "added node L/tanh (tanh)" in d.lines
    assert "added edge a → L/tanh (argument 1)" in d.lines and "removed edge a → L/sub (argument 1)" in d.lines
    assert d.summary.startswith("1 node added, 0 removed; 2 edges added, 1 removed")


def test_a_removed_node_and_a_changed_op():
    changed = PIZZA.replace("a = relu(z)", "a = sigmoid(z)")
    d = G.compare(doc(), doc(changed))
    assert "a: op relu → sigmoid" in d.lines
    fewer = PIZZA.replace("loss L = (a - y)^2", "loss L = a - y")
    d = G.compare(doc(), doc(fewer))
    assert d.removed == 2 and "removed node L/2 (const)" in d.lines


def test_a_value_beyond_the_tolerance_says_old_and_new():
    d = G.compare(doc(), doc(sets={"w": "0.6"}))
    # the pizza's figures: z = w·x, L = (relu(z) − 90)², ∂L/∂w = 2(a − y)·x
    assert d.numbers[:3] == ["w: 0.5 → 0.6", "∂L/∂x: 10 → 36", "∂L/∂w: 4000 → 12000"]   # the cause first
    assert d.numbers[-1] == "loss: 100 → 900"
    assert d.lines[-1] == "0 nodes added, 0 removed; 10 numbers beyond tolerance (rtol 0.0001, atol 1e-12)"
    # the output's value is the loss line, said once
    assert not any(line.startswith("L:") for line in d.lines)


def test_the_report_shows_as_many_digits_as_it_takes():
    d = G.compare(doc(), doc(sets={"w": "0.5002"}))
    assert "w: 0.5 → 0.5002" in d.lines
    # 2e-6 of w moves the loss by 4e-5 of itself: within rtol 1e-4, not within 1e-6
    assert G.compare(doc(), doc(sets={"w": "0.500001"})).same
    tight = G.compare(doc(), doc(sets={"w": "0.500001"}), rtol=1e-6)
    assert "w: 0.5 → 0.500001" in tight.lines and "loss: 100 → 100.004" in tight.lines


def test_a_shape_change_is_structure_not_numbers():
    a = doc("input x = [1, 2]\nparam w = 2\nloss L = sum(w * x)\n")
    b = doc("input x = [1, 2, 3]\nparam w = 2\nloss L = sum(w * x)\n")
    d = G.compare(a, b)
    assert "x: shape [2] → [3]" in d.lines and "L/mul: shape [2] → [3]" in d.lines
    assert not any(line.startswith("x: [") for line in d.lines)


def test_tensors_over_the_limit_compare_their_statistics_against_their_scale():
    old = {"mean": 1e-9, "std": 1.0, "min": -2.0, "max": 2.0, "norm": 10.0}
    near = dict(old, mean=3e-8)            # a mean near 0 moves with the tensor's scale (2), not its own
    far = dict(old, norm=10.1)
    assert G._number_change("t", old, near, G.RTOL, G.ATOL) is None
    assert G._number_change("t", old, far, G.RTOL, G.ATOL) == "t: norm 10 → 10.1"
    nan = dict(old, mean="NaN")
    assert G._number_change("t", nan, nan, G.RTOL, G.ATOL) is None
    assert G._number_change("t", nan, old, G.RTOL, G.ATOL) == "t: mean NaN → 1e-9"


def test_a_long_array_names_its_largest_change():
    a = [[float(i + j) for j in range(4)] for i in range(3)]
    b = copy.deepcopy(a)
    b[2][1] = 9.0
    assert G._number_change("h", a, b, G.RTOL, G.ATOL) == "h: 1 of 12 elements, most at [2, 1]: 3 → 9"


def test_a_golden_that_is_not_one_says_so():
    with pytest.raises(G.GoldenError, match="not valid JSON"):
        G.loads("{", "g.json")
    with pytest.raises(G.GoldenError, match="not a cgviz-snapshot document"):
        G.loads(json.dumps({"format": "cgviz-graph", "nodes": [], "edges": []}), "g.json")
    with pytest.raises(G.GoldenError, match="version 7"):
        G.loads(json.dumps({"format": "cgviz-snapshot", "version": 7}), "g.json")
    text = G.dumps(doc())
    assert G.loads(text) == json.loads(text)
    lines = text.splitlines()           # one node or edge a line: a changed node is a changed line
    assert sum(line.startswith('  {"id": ') for line in lines) == len(doc()["nodes"]) == 8
    assert sum(line.startswith('  {"src": ') for line in lines) == len(doc()["edges"]) == 7


def _res_cnn():
    spec = importlib.util.spec_from_file_location("res_cnn_golden", ROOT / "sample_graphs" / "models" / "res_cnn.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.model, mod.example_inputs[0]


def test_float32_on_another_machine_passes_and_a_real_change_fails():
    """Another CPU's float32 kernels move the last bits: stand-ins are another thread count and
    every weight and input nudged by a few units in the last place. Both stay within the default
    tolerance; a change of 1e-3 does not."""
    import torch
    model, x = _res_cnn()
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        golden = G.document(cgviz.draw(model, x, depth=1))
        torch.set_num_threads(4)
        other = G.document(cgviz.draw(model, x, depth=1))
    finally:
        torch.set_num_threads(threads)
    assert golden["nodes"][0]["dtype"] == "float32" and G.compare(golden, other).same

    def nudged(scale: float):
        m = copy.deepcopy(model)
        g = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for p in m.parameters():
                p.mul_(1 + scale * torch.randn(p.shape, generator=g))
        return G.document(cgviz.draw(m, x * (1 + scale * torch.randn(x.shape, generator=g)), depth=1))

    ulps = nudged(4e-7)                     # ~3 float32 ulps on every number
    assert ulps != golden and G.compare(golden, ulps).same
    real = G.compare(golden, nudged(1e-3))
    assert not real.same and real.added == real.removed == 0
    assert any(line.startswith("loss: ") for line in real.numbers)
    assert any(line.startswith("fc.weight: ") for line in real.numbers)


def test_the_expression_path_of_the_golden_and_the_plugin_never_imports_torch(tmp_path):
    import subprocess
    import sys
    code = ("import sys; from click.testing import CliRunner; from cgviz.cli import main\n"
            "import cgviz, cgviz.pytest_plugin, cgviz.view.golden as G\n"
            f"G.compare(G.document(cgviz.draw({str(ROOT / 'sample_graphs/pizza.cg')!r})), "
            "G.document(cgviz.draw('param w = 2\\nloss L = w * w\\n')))\n"
            f"r = CliRunner().invoke(main, ['snapshot', {str(ROOT / 'sample_graphs/pizza.cg')!r}, '--golden', "
            f"{str(tmp_path / 'g')!r}, '--out', {str(tmp_path / 'o')!r}, '--update'])\n"
            "assert r.exit_code == 0, r.output\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False" and (tmp_path / "g" / "pizza.json").exists()


def test_snapshot_help_states_the_golden_tolerances():
    """The command line writes the defaults into its help itself (so as not to import this module
    at start-up); they must stay the ones compare() uses."""
    from click.testing import CliRunner

    from cgviz.cli import main
    text = " ".join(CliRunner().invoke(main, ["snapshot", "--help"]).output.split())
    assert f"[default: {G.RTOL:g}]" in text and f"[default: {G.ATOL:g}]" in text
