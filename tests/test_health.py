"""Gradient health: edge shading by log-magnitude, vanishing/exploding flags, saturation, `cgviz grads`."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cgviz.diagnose import health
from cgviz.view.expression_scene import to_dot
from cgviz.diagnose.grads import expression_rows
from cgviz.route.expression import evaluate
from cgviz.view.plots import grad_bars, grad_histograms

from conftest import ROOT

SAMPLES = ROOT / "sample_graphs"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz: `make test` installs it")


def _eval(stem: str):
    path = SAMPLES / f"{stem}.cg"
    return evaluate(path.read_text(), path.name)


def _red_edges(dot: str) -> dict[tuple[str, str], dict]:
    """(src, dst) → attributes of the red (dir=back) edge between them."""
    out = {}
    for src, dst, attrs in re.findall(r'^\s*"([^"]+)" -> "([^"]+)" \[(.*)\]$', dot, re.M):
        if 'dir="back"' in attrs:
            out[(src, dst)] = dict(re.findall(r'(\w+)="([^"]*)"', attrs))
    return out


def _darkness(color: str) -> float:
    """How far from white the colour lands when drawn on white (its alpha, if any, blended in)."""
    alpha = int(color[7:9], 16) / 255 if len(color) == 9 else 1.0
    return sum((255 - int(color[i:i + 2], 16)) * alpha for i in (1, 3, 5))


# ---------------------------------------------------------------- the scale

@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(min_value=1e-12, max_value=1e12), min_size=1, max_size=20),
       st.floats(min_value=1e-12, max_value=1e12), st.floats(min_value=1e-12, max_value=1e12))
def test_the_edge_mapping_is_monotone(graph_mags, a, b):
    s = health.scale_of(graph_mags)
    lo, hi = sorted((a, b))
    assert s.t(lo) <= s.t(hi)
    assert s.width(lo) <= s.width(hi)
    assert _darkness(s.color(lo)) <= _darkness(s.color(hi))
    assert health.WIDTH_MIN <= s.width(lo) <= s.width(hi) <= health.WIDTH_MAX
    # the scale's ends stay within the fixed clamps, and span at least two decades
    assert s.lo >= health.LOG_MIN - 1 and s.hi <= health.LOG_MAX + 1 and s.hi - s.lo >= 2 - 1e-9


def test_edge_colours_are_the_backward_red_with_an_opacity():
    from cgviz.view.markup import BACKWARD
    s = health.scale_of([1e-3, 1.0])
    assert s.color(1.0) == BACKWARD and s.color(1e-3) == BACKWARD + "4d" and s.color(0) == BACKWARD + "26"


def test_a_uniform_graph_is_drawn_in_a_middle_shade_not_all_at_the_maximum():
    s = health.scale_of([5.0] * 7)
    assert s.t(5.0) == pytest.approx(0.5)
    assert health.WIDTH_MIN < s.width(5.0) < health.WIDTH_MAX


def test_the_clamps_hold_beyond_1e_minus_6_and_1e3():
    s = health.scale_of([1e-9, 1e6])
    assert (s.lo, s.hi) == (-6.0, 3.0)
    assert s.t(1e-9) == 0.0 and s.t(1e6) == 1.0 and s.t(1e3) == 1.0 and s.t(1e-6) == 0.0
    # a graph whose gradients are all tiny stays thin: the clamp keeps them at the bottom
    tiny = health.scale_of([1e-9, 1e-8])
    assert tiny.t(1e-8) <= 0.5


def test_zero_gradients_are_thinner_and_paler_than_any_other():
    s = health.scale_of([1e-3, 1.0])
    assert s.width(0.0) < s.width(1e-30) and _darkness(s.color(0.0)) < _darkness(s.color(1e-30))
    # NaN and ∞ are off the scale, not its top (tests/test_models_nonfinite.py draws them)
    assert s.t(float("inf")) is None and s.width(float("inf")) == health.NONFINITE_WIDTH < health.WIDTH_MAX


# ---------------------------------------------------------------- flags

def _flags(stem: str) -> dict[str, str]:
    r = _eval(stem)
    return {v.name: v.flag for v in health.verdicts(r.graph, r.run).values() if v.flag}


def test_flags_fire_on_the_vanishing_and_exploding_samples():
    assert _flags("vanishing") == {"x": "vanishing", "w1": "vanishing"}
    assert _flags("exploding") == {n: "exploding" for n in ("x", "k1", "k2", "k3", "k4", "k5")}
    assert _flags("deep_sigmoid") == {n: "vanishing" for n in ("X", "W1", "W2", "W3", "W4")}
    assert _flags("chain_0_1") == {"x": "vanishing"}


def test_no_flag_on_the_healthy_samples():
    for stem in ("deep_relu", "deep_residual", "residual", "three_layer", "challenge", "softmax_classifier"):
        assert _flags(stem) == {}, stem


def test_pizza_flags_w_as_exploding_and_x_sits_exactly_on_the_threshold():
    # ∂L/∂w = 4000 for w = 0.5: a ratio of 8000, so any learning rate above ~1e-4 overshoots.
    # x's gradient is exactly 10, and the thresholds are strict: not flagged.
    assert _flags("pizza") == {"w": "exploding"}
    r = _eval("pizza")
    v = health.verdicts(r.graph, r.run)
    assert v["w"].relative and v["w"].measure == 8000.0
    assert not v["x"].relative and v["x"].measure == 10.0 and v["x"].flag is None


def test_params_are_judged_relative_to_their_norm_and_zero_params_absolutely():
    assert health.classify("w", "param", 100.0, 0.05).flag == "vanishing"     # 5e-4 of its size
    assert health.classify("w", "param", 1e-3, 0.05).flag == "exploding"      # 50× its size
    assert health.classify("b", "param", 0.0, 0.05).flag is None              # ‖w‖ = 0: ‖g‖ = 0.05
    assert health.classify("b", "param", 0.0, 1e-4).flag == "vanishing"
    assert health.classify("x", "input", 1e6, 0.05).flag is None              # inputs: ‖g‖ itself
    assert health.classify("w", "param", 1.0, float("nan")).flag is None      # NaN: the NaN warnings' job
    assert health.classify("w", "param", 1.0, 0.0).flag == "vanishing"
    # on the threshold up to rounding: never flagged, so another platform's last bit cannot flip it
    assert health.classify("x", "input", 1.0, 10.000000000000002).flag is None
    assert health.classify("k", "param", 0.1, 0.1 ** 4 * (1 - 1e-15)).flag is None
    assert health.classify("x", "input", 1.0, 10.0001).flag == "exploding"


def test_flags_are_drawn_on_the_nodes_and_listed_in_warnings(cli, tmp_path):
    out = tmp_path / "v.dot"
    r = cli("render", SAMPLES / "vanishing.cg", "-o", out)
    assert r.exit_code == 0, r.stderr
    warnings = [line for line in r.stderr.splitlines() if "vanishing gradient" in line]
    assert len(warnings) == 1 and "x (‖g‖ = 0.0003313)" in warnings[0] and "w1 (‖g‖/‖w‖ = 0.0003313)" in warnings[0]
    dot = out.read_text()
    assert dot.count("⚠ vanishing") == 2 and "⚠ vanishing: ‖g‖/‖w‖ = 0.0003313 &lt; 0.001" in dot
    r = cli("render", SAMPLES / "deep_relu.cg", "-o", tmp_path / "r.dot")
    assert r.exit_code == 0 and "warning" not in r.stderr and "⚠" not in (tmp_path / "r.dot").read_text()


def test_the_thresholds_are_options(cli, tmp_path):
    r = cli("render", SAMPLES / "vanishing.cg", "--vanish", "1e-4", "-o", tmp_path / "a.dot")
    assert r.exit_code == 0 and "vanishing" not in r.stderr
    r = cli("render", SAMPLES / "deep_relu.cg", "--vanish", "0.01", "-o", tmp_path / "b.dot")
    assert "vanishing gradient (below 0.01): W7" in r.stderr and "W7 (‖g‖/‖w‖ = 0.004046)" in r.stderr
    r = cli("render", SAMPLES / "pizza.cg", "--explode", "1e4", "-o", tmp_path / "c.dot")
    assert r.exit_code == 0 and "warning" not in r.stderr
    for bad in (["--vanish", "0"], ["--explode", "-1"], ["--vanish", "5", "--explode", "1"]):
        r = cli("render", SAMPLES / "pizza.cg", *bad, "-f", "dot", "-o", "-")
        assert r.exit_code == 2, bad


def test_no_grad_draws_no_health(cli):
    r = cli("render", SAMPLES / "vanishing.cg", "--no-grad", "-f", "dot", "-o", "-")
    assert r.exit_code == 0 and "⚠" not in r.stdout and "penwidth" not in r.stdout.split("->", 1)[1]
    assert "warning" not in r.stderr


# ---------------------------------------------------------------- edges and legend

@pytest.mark.parametrize("stem, x, skip, block", [
    ("deep_residual", "X", "h1", "h1/matmul"),
    ("residual", "x", "out", "h/matmul"),
])
def test_the_skip_path_into_x_is_thicker_and_darker_than_the_block(stem, x, skip, block):
    r = _eval(stem)
    red = _red_edges(to_dot(r.graph, r.run))
    through_skip, through_block = red[(x, skip)], red[(x, block)]
    assert float(through_skip["penwidth"]) > float(through_block["penwidth"]) + 1
    assert _darkness(through_skip["color"]) > _darkness(through_block["color"])


def test_every_red_edge_is_shaded_by_its_own_gradient_and_the_legend_gives_the_range():
    r = _eval("vanishing")
    dot = to_dot(r.graph, r.run)
    red = _red_edges(dot)
    widths = {k: float(a["penwidth"]) for k, a in red.items()}
    # the chain's gradient shrinks from the loss back to x: so do the edges
    chain = [widths[(f"h{i}/mul", f"h{i}")] for i in range(1, 6)] + [widths[("h5", "L/sub")]]
    assert chain == sorted(chain) and len(set(chain)) == len(chain)
    assert widths[("x", "h1/mul")] == health.WIDTH_MIN      # the smallest gradient: the scale's bottom
    assert "red edge width and shade: log10 ‖gradient‖ from" in dot
    assert "this graph&#x27;s gradients span 0.0003313 … 0.6815" in dot
    for attrs in red.values():
        assert attrs["fontcolor"] == "#c62828"     # labels stay legible in the plain red


def test_an_exactly_zero_gradient_edge_is_thin_and_pale():
    r = evaluate("input x = -1\nparam w = 2\nloss L = relu(w * x) + w\n", "z.cg")
    red = _red_edges(to_dot(r.graph, r.run))
    zero = red[("L/mul", "L/relu")]
    assert float(zero["penwidth"]) == health.ZERO_WIDTH and zero["color"] == "#c6282826"


# ---------------------------------------------------------------- saturation

def test_saturation_share_and_range_on_a_hand_computable_case():
    z = np.array([-12.0, -5.0, -1.0, 0.0, 3.0, 4.0, 4.5, 5.0])
    s = health.saturation(z, 4.0)
    assert (s.lo, s.hi, s.share) == (-12.0, 5.0, 0.5)     # -12, -5, 4.5, 5 are beyond |z| > 4; 4 is not
    assert s.text() == "z ∈ [-12, 5]: 50% saturated (|z| > 4)"
    t = health.saturation(z, 2.0)                         # tanh's limit: 3 joins them
    assert t.share == 6 / 8


def test_the_op_table_carries_the_saturation_rule():
    from cgviz.lang.ops import OPS
    assert OPS["sigmoid"].saturates == 4.0 and OPS["tanh"].saturates == 2.0
    assert OPS["relu"].saturates is None


def test_saturation_is_drawn_on_sigmoid_and_tanh_nodes_and_warned_when_mostly_saturated(cli):
    src = ("input z = [-12, -5, -1, 0, 3, 4, 4.5, 5]\n"
           "s = sigmoid(z)\n"
           "t = tanh(z)\n"
           "loss L = sum(s) + sum(t)\n")
    r = cli("render", "-", "-f", "dot", "-o", "-", input=src)
    assert r.exit_code == 0, r.stderr
    assert "z ∈ [-12, 5]: 50% saturated (|z| &gt; 4)" in r.stdout
    assert "z ∈ [-12, 5]: 75% saturated (|z| &gt; 2)" in r.stdout
    sat = [line for line in r.stderr.splitlines() if "saturated" in line]
    assert len(sat) == 2 and "line 2: sigmoid 's'" in sat[0] and "line 3: tanh 't'" in sat[1]
    # one number: only drawn once it is saturated (its edge already shows the value)
    r = cli("render", "-", "-f", "dot", "-o", "-", input="input z = 1\nloss L = sigmoid(z)\n")
    assert "saturated" not in r.stdout
    r = cli("render", "-", "-f", "dot", "-o", "-", input="input z = -6\nloss L = sigmoid(z)\n")
    assert "saturated: |z| = 6 &gt; 4" in r.stdout


# ---------------------------------------------------------------- cgviz grads

def test_grads_table_numbers_equal_torch_autograd(cli):
    from cgviz.check.torch_ops import torch_run

    r = cli("grads", SAMPLES / "deep_sigmoid.cg", "-f", "json", "--no-plots")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    ev = _eval("deep_sigmoid")
    values, grads = torch_run(ev.graph)
    layers = {d["name"]: d for d in doc["layers"]}
    assert list(layers) == ["X", "W1", "W2", "W3", "W4", "W5", "W6", "W7", "W8", "Wo"]
    for name, d in layers.items():
        g, v = np.linalg.norm(grads[name]), np.linalg.norm(values[name])
        assert d["grad_norm"] == pytest.approx(g, rel=1e-10)
        assert d["value_norm"] == pytest.approx(v, rel=1e-12)
        if d["kind"] == "param":
            assert d["ratio"] == pytest.approx(g / v, rel=1e-10) and d["judged_by"] == "ratio"
    assert [d["flag"] for d in doc["layers"]] == ["vanishing"] * 5 + [None] * 5
    assert doc["thresholds"] == {"vanish": 0.001, "explode": 10.0}


def test_grads_text_and_markdown_tables(cli):
    r = cli("grads", SAMPLES / "vanishing.cg", "--no-plots")
    assert r.exit_code == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split() == ["param", "shape", "‖w‖", "‖g‖", "‖g‖/‖w‖", "flag"]
    assert lines[1].split() == ["x", "(input)", "[]", "1", "0.0003313", "0.0003313", "vanishing", "(by", "‖g‖)"]
    assert lines[2].split() == ["w1", "[]", "1", "0.0003313", "0.0003313", "vanishing"]
    assert "vanishing gradients" in r.stderr
    md = cli("grads", SAMPLES / "pizza.cg", "-f", "md", "--no-plots").stdout
    assert "| `w` | [] | 0.5 | 4000 | 8000 | exploding |" in md


def test_grads_writes_a_bar_chart_and_histograms(cli, tmp_path):
    from PIL import Image

    bars, hist = tmp_path / "b.png", tmp_path / "h.png"
    r = cli("grads", SAMPLES / "deep_relu.cg", "-o", bars, "--hist", hist)
    assert r.exit_code == 0, r.stderr
    assert "(10 bars)" in r.stderr and "(10 panels)" in r.stderr
    for p in (bars, hist):
        with Image.open(p) as im:
            assert im.format == "PNG" and im.size[0] > 300 and im.size[1] > 200
            im.verify()


def test_grads_default_names_and_usage_mistakes(cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = cli("grads", SAMPLES / "pizza.cg", "-q")
    assert r.exit_code == 0 and (tmp_path / "pizza_grads.png").exists() and (tmp_path / "pizza_grad_hist.png").exists()
    assert cli("grads", SAMPLES / "pizza.cg", "-o", "x.svg").exit_code == 2
    assert cli("grads", SAMPLES / "pizza.cg", "-o", "a.png", "--hist", "a.png").exit_code == 2
    assert cli("grads", SAMPLES / "pizza.cg", "--input-shape", "1,2").exit_code == 2
    r = cli("grads", "-", "--no-plots", input="const c = 2\nloss L = c * 3\n")
    assert r.exit_code == 1 and "nothing to show" in r.stderr


def test_the_bar_chart_has_one_bar_per_layer_coloured_by_flag():
    r = _eval("deep_sigmoid")
    rows = expression_rows(r.graph, r.run)
    png, info = grad_bars(rows, health.VANISH, health.EXPLODE)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert info["bars"] == len(rows) == 10 and info["log"]
    assert info["colors"][:5] == ["#1e88e5"] * 5 and set(info["colors"][5:]) == {"#607d8b"}
    assert info["heights"] == [row.grad_norm for row in rows]
    png, info = grad_histograms(rows)
    assert info["panels"] == 10 and info["omitted"] == 0 and png[:4] == b"\x89PNG"


def test_the_bar_chart_survives_a_zero_gradient():
    r = evaluate("input x = -1\nparam w = 2\nparam v = 1\nloss L = relu(w * x) + v\n", "z.cg")
    rows = expression_rows(r.graph, r.run)
    assert [row.grad_norm for row in rows] == [0.0, 0.0, 1.0]
    png, info = grad_bars(rows, health.VANISH, health.EXPLODE)
    assert info["bars"] == 3 and 0 < info["heights"][0] < 1


def test_grads_on_a_model_names_its_parameters_and_matches_plain_torch(cli):

    path = SAMPLES / "models" / "res_cnn.py"
    r = cli("grads", path, "-f", "json", "--no-plots")
    assert r.exit_code == 0, r.stderr
    assert "note: no loss given: backward starts from the output's sum" in r.stderr   # flags mean little
    layers = {d["name"]: d for d in json.loads(r.stdout)["layers"]}
    spec = importlib.util.spec_from_file_location("res_cnn_for_test", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = mod.model
    model(*mod.example_inputs).sum().backward()        # cgviz's default loss for a tensor output
    names = [n for n, _ in model.named_parameters()]
    assert list(layers) == names and "layer1.0.conv1.weight" in names and "fc.bias" in names
    for n, p in model.named_parameters():
        assert layers[n]["grad_norm"] == pytest.approx(float(p.grad.double().norm()), rel=1e-5), n
        assert layers[n]["value_norm"] == pytest.approx(float(p.detach().double().norm()), rel=1e-6), n
    text = cli("grads", path, "--no-plots").stdout
    assert "layer1.2.conv2.weight" in text and "[16×16×3×3]" in text


# ---------------------------------------------------------------- model pictures

SIGMOID_MODEL = '''
import torch
import torch.nn as nn

torch.manual_seed(0)
model = nn.Sequential(nn.Linear(4, 4), nn.Sigmoid(), nn.Linear(4, 1))
with torch.no_grad():
    model[0].weight.mul_(20)           # pushes the sigmoid's inputs far out: saturated
    model[2].bias.fill_(1e-6)          # a tiny bias with a gradient of 3: ‖g‖/‖w‖ far above 10
example_inputs = (torch.randn(3, 4),)
'''


def test_model_pictures_shade_red_edges_flag_params_and_show_saturation(cli, tmp_path):
    f = tmp_path / "sig.py"
    f.write_text(SIGMOID_MODEL)
    r = cli("torch", f, "-f", "dot", "-o", "-", "--loss", "sum")
    assert r.exit_code == 0, r.stderr
    dot = r.stdout
    red = _red_edges(dot)
    assert red and all("penwidth" in a for a in red.values())
    assert "red edge width and shade: log10 ‖gradient‖" in dot
    assert "⚠ exploding: ‖g‖/‖w‖ = 3e6 &gt; 10" in dot
    assert "exploding gradient" in r.stderr and "2.bias" in r.stderr
    m = re.search(r"z ∈ \[(-?[\d.e-]+), (-?[\d.e-]+)\]: (\d+)% saturated \(\|z\| &gt; 4\)", dot)
    assert m, dot
    import torch
    ns: dict = {}
    exec(SIGMOID_MODEL, ns)
    z = ns["model"][0](ns["example_inputs"][0]).detach().double().numpy()
    assert float(m.group(1)) == pytest.approx(z.min(), rel=1e-3)
    assert int(m.group(3)) == round(100 * np.mean(np.abs(z) > 4))
    assert torch is not None
    # without --loss, backward starts from sum(output), whose scale is arbitrary: no flags, no warning
    r = cli("torch", f, "-f", "dot", "-o", "-")
    assert r.exit_code == 0 and "⚠ exploding" not in r.stdout and "exploding" not in r.stderr
    assert "saturated" in r.stdout


@needs_dot
def test_the_deep_samples_render(cli, tmp_path):
    for stem in ("deep_sigmoid", "deep_relu", "deep_residual"):
        out = tmp_path / f"{stem}.png"
        r = cli("render", SAMPLES / f"{stem}.cg", "-o", out)
        assert r.exit_code == 0, r.stderr
        assert out.read_bytes()[:4] == b"\x89PNG"


def test_json_carries_the_flags_thresholds_and_saturation(cli):
    doc = json.loads(cli("render", SAMPLES / "pizza.cg", "-f", "json", "-o", "-").stdout)
    assert doc["health"] == {"vanish": 0.001, "explode": 10.0}
    by = {n["id"]: n for n in doc["nodes"]}
    assert by["w"]["health"]["flag"] == "exploding" and by["w"]["health"]["measure"] == pytest.approx(8000)
    assert by["x"]["health"]["flag"] is None and by["x"]["health"]["relative"] is False
    assert by["z"]["health"] is None and by["z"]["saturation"] is None
    doc = json.loads(cli("render", SAMPLES / "pizza.cg", "-f", "json", "-o", "-", "--explode", "1e4").stdout)
    assert {n["id"]: n for n in doc["nodes"]}["w"]["health"]["flag"] is None
    doc = json.loads(cli("render", SAMPLES / "challenge.cg", "-f", "json", "-o", "-").stdout)
    p = {n["id"]: n for n in doc["nodes"]}["p"]
    assert p["saturation"] == {"min": 1.8, "max": 1.8, "share": 0.0, "limit": 4.0}


def test_model_json_and_picture_take_the_thresholds(cli):
    import torch  # noqa: F401
    path = SAMPLES / "models" / "res_cnn.py"
    doc = json.loads(cli("torch", path, "--loss", "mse", "-f", "json", "-o", "-").stdout)
    params = [n for n in doc["nodes"] if n["kind"] == "param"]
    assert params and all(n["health"]["grad_norm"] >= 0 for n in params)
    assert any(n["health"]["flag"] == "vanishing" for n in params)          # the bn weights, below 1e-3
    quiet = cli("torch", path, "--loss", "mse", "-f", "dot", "-o", "-", "--vanish", "1e-6")
    assert quiet.exit_code == 0 and "vanishing" not in quiet.stderr and "⚠ vanishing" not in quiet.stdout
    doc = json.loads(cli("torch", path, "-f", "json", "-o", "-").stdout)   # sum(output): no judgement
    assert all("health" not in n for n in doc["nodes"])
    assert cli("torch", path, "--vanish", "1", "--explode", "0.5").exit_code == 2
