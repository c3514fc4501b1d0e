"""The grammar: precedence and associativity as in Python, statements, comments, line continuation."""

from __future__ import annotations

import numpy as np
import pytest

from cgviz.core.errors import SourceError
from cgviz.lang.parser import BinOp, Call, ListLit, Var, parse
from cgviz.route.expression import evaluate


def value(expr_text: str, decls: str = "input x = 3\ninput y = 2\n") -> float:
    r = evaluate(decls + f"out = {expr_text}\n", "t.cg")
    return float(r.run.values[r.graph.output])


@pytest.mark.parametrize("text, expected", [
    ("-x^2", -9.0),            # ^ binds tighter than unary minus, as in Python
    ("-x**2", -9.0),
    ("2^3^2", 512.0),          # right-associative
    ("x - y - 1", 0.0),        # left-associative
    ("x / y / 3", 0.5),
    ("x + y * 2", 7.0),
    ("(x + y) * 2", 10.0),
    ("x ^ -1", 1 / 3),         # a unary minus in the exponent
    ("2 * -x", -6.0),
    ("+x", 3.0),
    ("1e-3 * x", 0.003),
    (".5 * x", 1.5),
    ("max(0, x - 5)", 0.0),
])
def test_operators_follow_python(text, expected):
    assert value(text) == pytest.approx(expected)


def test_matmul_and_transpose_bind_like_python():
    r = evaluate("input A = [[1, 2], [3, 4]]\nout = A @ A.T * 2\n", "t.cg")
    # @ and * share a level and go left to right: (A @ A.T) * 2
    assert r.run.values["out"].tolist() == [[10.0, 22.0], [22.0, 50.0]]


def test_statements_and_positions():
    prog = parse("# comment\ninput x = 1  # trailing\n\nparam w = 2\nloss L = w * x\n", "p.cg")
    kinds = [(s.kind, s.name) for s in prog.statements]
    assert kinds == [("input", "x"), ("param", "w"), ("loss", "L")]
    mul = prog.statements[2].expr
    assert isinstance(mul, BinOp) and mul.op == "mul"
    assert (mul.op_pos.line, mul.op_pos.col) == (5, 12)


def test_loss_without_a_name_is_called_loss():
    r = evaluate("param w = 2\nloss = w * 3\n", "t.cg")
    assert r.graph.loss == "loss" and float(r.run.grads["w"]) == 3.0


def test_a_keyword_reads_as_a_name_where_only_a_name_fits():
    # the lexer follows the parser's state (Lark's contextual lexer): `loss` in an expression is the
    # unnamed loss's name, and a keyword as a declared name gets its own message, not a syntax error
    res = evaluate("input x = 3\nloss = (x - 1)^2\ny = loss * 2\n", "kw.cg")
    assert float(res.run.values["y"]) == 8.0
    with pytest.raises(SourceError, match="'input' is a keyword and cannot be used as a name\\n"):
        parse("param input = 1\nloss L = input\n", "kw.cg")


def test_newlines_inside_brackets_and_backslash_continue_a_statement():
    prog = parse("input X = [[1, 2],\n           [3, 4]]\ny = sum(X,\n  axis=0) \\\n  + 1\n", "p.cg")
    assert len(prog.statements) == 2
    assert isinstance(prog.statements[0].expr, ListLit)
    r = evaluate("input X = [[1, 2],\n           [3, 4]]\ny = sum(X,\n  axis=0) \\\n  + 1\n", "p.cg")
    assert r.run.values["y"].tolist() == [5.0, 7.0]


def test_keyword_and_positional_arguments():
    prog = parse("y = sum(x, axis=None)\n", "p.cg")
    call = prog.statements[0].expr
    assert isinstance(call, Call) and call.func == "sum"
    assert isinstance(call.args[0], Var) and call.kwargs[0][0] == "axis"


def test_a_file_without_a_final_newline_parses():
    assert len(parse("input x = 1\ny = x", "p.cg").statements) == 2


def test_crlf_line_endings():
    r = evaluate("input x = 2\r\nloss L = x * x\r\n", "t.cg")
    assert float(r.run.grads["x"]) == 4.0


@pytest.mark.parametrize("text, line, col", [
    ("x = 3 +\n", 1, 8),
    ("input x = 1\nz = w x\n", 2, 7),
    ("y = (1 + 2\n", 1, 5),
])
def test_syntax_errors_point_at_the_fault(text, line, col):
    with pytest.raises(SourceError) as e:
        parse(text, "bad.cg")
    assert (e.value.line, e.value.col) == (line, col)
    shown = str(e.value)
    assert shown.startswith(f"bad.cg:{line}:{col}: syntax error")
    caret_line = shown.splitlines()[2]
    assert caret_line.index("^") == len("   1 | ") + col - 1


# Every initializer and function call the issue writes out must parse and run exactly as written.
ISSUE_EXAMPLES = """
param W = randn(3, 4, seed=0, scale=0.1)
param b = zeros(5)
const O = ones(2, 2)
const F = full(2, 3, value=7)
const labels = randint(0, 10, shape=[4], seed=1)
input M = [[1, 2], [3, 4]]
input x = [0.5, -1.5, 2.0, 0.25]
input z = -0.5
a1 = relu(x) + sigmoid(x) + tanh(x) + exp(x) + log(abs(x)) + sqrt(abs(x)) + square(x)
a2 = max(0, z) + min(a1, 1) + max(a1, x)
s1 = sum(x, axis=None) + mean(x, axis=None)
p = softmax(x, axis=-1) + log_softmax(x, axis=-1)
l1 = mse(p, x) + bce(sigmoid(x), sigmoid(p))
logits = reshape(p, 2, 2)
l2 = cross_entropy(logits, [1, 0])
t = transpose(M) @ M.T + linear(M, M, [1, 1])
pw = M ^ 2 + M ** 2
loss L = l1 + l2 + sum(t) + sum(pw) + s1 + sum(a2) + sum(W) + sum(b) + sum(O) + sum(F) + sum(labels) + sum(cross_entropy(randn(4, 10, seed=2), labels))
"""


def test_every_form_the_issue_writes_runs():
    r = evaluate(ISSUE_EXAMPLES, "issue.cg")
    assert not r.run.nonfinite
    assert r.run.values["F"].tolist() == [[7.0] * 3] * 2
    assert r.run.values["labels"].dtype.kind == "i" and r.run.values["labels"].shape == (4,)
    assert r.run.grads["W"].shape == (3, 4) and r.run.grads["x"].shape == (4,)
    from cgviz.check.torch_ops import torch_run

    values, grads = torch_run(r.graph)
    for n in r.graph:
        if r.run.grads[n.id] is not None:
            np.testing.assert_allclose(r.run.grads[n.id], grads[n.id], rtol=1e-9, atol=1e-12)
