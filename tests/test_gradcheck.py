"""`cgviz check FILE`: every sample passes, pizza's numbers show, and wrong VJPs or forwards fail by name."""

from __future__ import annotations

import dataclasses
import json
import re
import sys

import numpy as np
import pytest

from cgviz.check import expression as gradcheck
from cgviz.lang import ops
from cgviz.route.expression import evaluate

from conftest import ROOT, SAMPLES

PIZZA = ROOT / "sample_graphs" / "pizza.cg"


def _row(text: str, name: str) -> list[str]:
    """The cells of tensor `name`'s row in the text table."""
    for line in text.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == name:
            return cells
    raise AssertionError(f"no row for {name} in:\n{text}")


@pytest.mark.parametrize("path", SAMPLES, ids=[p.stem for p in SAMPLES])
def test_every_sample_passes(cli, path):
    r = cli("check", path)
    assert r.exit_code == 0, r.output
    assert r.stdout.rstrip().splitlines()[-1].startswith("ok: ")
    assert "FAIL" not in r.stdout


def test_pizza_numbers_and_exact_agreement(cli):
    r = cli("check", PIZZA)
    assert r.exit_code == 0, r.output
    w, x = _row(r.stdout, "w"), _row(r.stdout, "x")
    # tensor, shape, gradient, FD checked, torch abs, torch rel, FD abs, FD rel, verdict
    assert w[2] == "4000" and x[2] == "10"
    assert w[3] == "1/1" and x[3] == "1/1"
    assert w[4] == "0" and x[4] == "0"            # torch computes the very same float64 numbers
    assert float(w[6]) < 1e-6 and w[8] == "ok"
    assert "ok: 2 gradients agree with PyTorch autograd and finite differences" in r.stdout


def test_json_has_the_same_facts(cli):
    r = cli("check", PIZZA, "--format", "json")
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert data["ok"] is True and data["torch"] is True and data["failed"] == []
    by = {t["name"]: t for t in data["tensors"]}
    assert by["w"]["gradient"] == "4000" and by["x"]["gradient"] == "10"
    assert by["w"]["torch"]["max_abs"] == 0 and by["w"]["fd"]["max_abs"] < 1e-6
    assert data["tolerances"] == {"rtol": 1e-5, "atol": 1e-8, "fd_rtol": 1e-4, "fd_atol": 1e-6, "fd_samples": 64}


def _wrong_mul_vjp(monkeypatch, factor=1.01):
    d = ops.OPS["mul"]
    monkeypatch.setitem(ops.OPS, "mul", dataclasses.replace(
        d, vjp=lambda g, xs, out: [g * xs[1] * factor, g * xs[0]]))


def test_wrong_vjp_fails_and_names_the_node(cli, monkeypatch):
    _wrong_mul_vjp(monkeypatch)
    r = cli("check", PIZZA)
    assert r.exit_code == 1
    assert _row(r.stdout, "w")[-1] == "FAIL" and _row(r.stdout, "w")[2] == "4040"
    assert _row(r.stdout, "x")[-1] == "ok"       # only the first argument's vjp is wrong
    assert "FAIL: 1 of 2 gradients disagree: w" in r.stdout
    # localised: the gradient reaching z is right, the one z's mul passes back to w is not
    assert "goes wrong at 'w'" in r.stdout and "'z' (mul: w * x, line 5)" in r.stdout
    assert "central difference 4000" in r.stdout


def test_wrong_vjp_fails_even_when_slightly_off(monkeypatch):
    """1e-3 relative is far above both tolerances: FD alone catches it too."""
    _wrong_mul_vjp(monkeypatch, 1.001)
    rep = gradcheck.check_expression(evaluate(PIZZA.read_text(), "pizza.cg"))
    w = next(r for r in rep.rows if r.name == "w")
    assert w.torch_ok is False and w.fd_ok is False and rep.failed == ["w"]


def test_wrong_forward_fails(cli, monkeypatch):
    d = ops.OPS["relu"]
    monkeypatch.setitem(ops.OPS, "relu", dataclasses.replace(d, forward=lambda xs: np.maximum(xs[0], 0.0) * 1.001))
    r = cli("check", PIZZA)
    assert r.exit_code == 1
    assert "forward values differ from PyTorch at: a, L/sub, L" in r.stdout
    assert "forward value first goes wrong at 'a' (relu: relu(z), line 6)" in r.stdout


def test_wrong_vjp_in_a_tensor_program(cli, monkeypatch, tmp_path):
    """A wrong matmul vjp for the right operand only: W1 and W2 fail, x does not."""
    d = ops.OPS["matmul"]
    good = d.vjp
    monkeypatch.setitem(ops.OPS, "matmul", dataclasses.replace(
        d, vjp=lambda g, xs, out: [good(g, xs, out)[0], good(g, xs, out)[1] * 0.9]))
    r = cli("check", ROOT / "sample_graphs" / "residual.cg")
    assert r.exit_code == 1
    assert _row(r.stdout, "W1")[-1] == "FAIL" and _row(r.stdout, "W2")[-1] == "FAIL"
    assert "disagree: W1, W2" in r.stdout


def test_kinks_are_said_not_failed(cli, tmp_path):
    f = tmp_path / "kink.cg"
    f.write_text("input x = [0, 1, -1]\nparam w = 0\nloss L = sum(relu(x)) + abs(w) + max(w, 0 * w)\n")
    r = cli("check", f)
    assert r.exit_code == 0, r.output
    assert _row(r.stdout, "x")[-1] == "ok (1 kink)"
    # |w| + max(w, 0) at 0: the central difference (2h − h)/2h = ½ equals sign(0) + ½ (max's tie
    # rule), so nothing needs excusing; only a disagreement is examined for a kink
    assert _row(r.stdout, "w")[-1] == "ok"
    assert "note: a kink is an element" in r.stdout


def test_a_gradient_outside_the_one_sided_differences_still_fails(monkeypatch):
    """relu'(0) = 5 is no subgradient: at the kink the gradient must lie between 0 and 1."""
    d = ops.OPS["relu"]
    monkeypatch.setitem(ops.OPS, "relu", dataclasses.replace(
        d, vjp=lambda g, xs, out: [g * np.where(xs[0] == 0, 5.0, xs[0] > 0)]))
    rep = gradcheck.check_expression(evaluate("input x = [0, 1]\nloss L = sum(relu(x))\n"), use_torch=False)
    assert rep.rows[0].fd_ok is False and rep.rows[0].kinks == 0


def test_sampling_is_deterministic_and_said(cli, tmp_path):
    f = tmp_path / "big.cg"
    f.write_text("input x = randn(30, 30)\nloss L = sum(sin(x) * x)\n")
    a = cli("check", f, "--fd-samples", "10")
    b = cli("check", f, "--fd-samples", "10")
    assert a.exit_code == 0 and a.stdout == b.stdout
    assert _row(a.stdout, "x")[3] == "10/900"
    idx = gradcheck.sample_indices(900, 10, "x")
    assert len(set(idx.tolist())) == 10 and list(idx) == sorted(idx)


def test_fd_only_without_torch(cli, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)     # `import torch` now raises ImportError
    r = cli("check", PIZZA)
    assert r.exit_code == 0, r.output
    assert "pip install 'cgviz-backprop[torch]'" in r.stdout
    assert _row(r.stdout, "w")[4] == "-" and _row(r.stdout, "w")[-1] == "ok"
    assert "ok: 2 gradients agree with finite differences" in r.stdout
    _wrong_mul_vjp(monkeypatch)
    r = cli("check", PIZZA)
    assert r.exit_code == 1 and "disagree: w" in r.stdout


def test_non_scalar_output_is_checked_as_its_sum(cli, tmp_path):
    f = tmp_path / "vec.cg"
    f.write_text("input x = [1, 2, 3]\ny = x * x\n")
    r = cli("check", f)
    assert r.exit_code == 0
    assert "sum of its elements" in r.stdout
    assert _row(r.stdout, "x")[2] == "‖g‖=7.483"      # 2x = [2, 4, 6]


def test_set_changes_the_point_checked(cli):
    r = cli("check", PIZZA, "--set", "w=0.1")
    assert r.exit_code == 0
    # z = 0.1 · 200 = 20 = a, ∂L/∂a = 2(a − 90) = −140: ∂L/∂w = −140 · 200, ∂L/∂x = −140 · 0.1
    assert _row(r.stdout, "w")[2] == "-2.8e4" and _row(r.stdout, "x")[2] == "-14"


@pytest.mark.parametrize("args, message", [
    (["missing.cg"], "missing.cg: no such file"),
    (["missing.py"], "missing.py: no such file"),
])
def test_missing_file(cli, args, message):
    r = cli("check", *args)
    assert r.exit_code == 1
    assert message in r.stderr and "Traceback" not in r.output


def test_syntax_error_is_a_clean_message(cli, tmp_path):
    f = tmp_path / "bad.cg"
    f.write_text("input x = 1\nloss L = x +\n")
    r = cli("check", f)
    assert r.exit_code == 1
    assert "bad.cg:2:13: syntax error" in r.stderr and "Traceback" not in r.output


def test_model_options_on_an_expression_file_are_a_usage_error(cli):
    r = cli("check", PIZZA, "--input-shape", "1,2")
    assert r.exit_code == 2
    assert "--input-shape applies to a model" in r.stderr


def test_text_without_suffix_is_an_expression_file(cli, tmp_path):
    f = tmp_path / "program"
    f.write_text(PIZZA.read_text())
    r = cli("check", f)
    assert r.exit_code == 0 and _row(r.stdout, "w")[2] == "4000"
