"""Where a NaN or an infinity is born in a model (cgviz.diagnose.nonfinite): the op, the model's source line
and the reason, forward and backward, in the warnings, the JSON and on the picture; the parameters'
NaN traced to it; no vanishing/exploding verdict built on NaN; non-finite gradients drawn apart."""

from __future__ import annotations

import json
import re

import pytest
import torch
import torch.nn as nn

import cgviz
from cgviz.diagnose.health import NONFINITE_WIDTH, WIDTH_MAX, classify, scale_of
from cgviz.diagnose.nonfinite import INF, NAN, backward_reason, forward_reason, level, op_key
from cgviz.core.summary import TensorInfo

MASKED = """\
import torch
import torch.nn as nn


class Masked(nn.Module):
    \"\"\"A masked distance: the forward is finite, the backward makes NaN under the mask.\"\"\"

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        h = self.fc(x)
        mask = (x > 0).float()
        z = h.pow(2) * mask
        r = torch.sqrt(z)
        return (r * mask).mean()


torch.manual_seed(0)
model = Masked()
example_inputs = (torch.randn(3, 4),)
"""
SQRT_LINE = 1 + MASKED.splitlines().index("        r = torch.sqrt(z)")


@pytest.fixture
def masked(tmp_path):
    # under a folder named cgviz, as a clone of cgviz or a user's project may be: the op's source
    # line is still found (cgviz tells its own frames by its package's directory)
    folder = tmp_path / "cgviz" / "work"
    folder.mkdir(parents=True)
    p = folder / "masked.py"
    p.write_text(MASKED)
    return p


def test_a_backward_nan_is_named_at_the_sqrt_with_the_models_line_and_why(cli, masked):
    r = cli("torch", masked, "--format", "json", "-o", "-")
    assert r.exit_code == 0, r.stderr
    doc = json.loads(r.stdout)
    born = [w for w in doc["warnings"] if "is born" in w]
    assert born == [f"NaN is born in the backward pass at sqrt (masked.py:{SQRT_LINE}: r = torch.sqrt(z)): "
                    "the gradient it sends back to mul is NaN, while the gradient reaching it is finite: "
                    "square root at 0, whose slope is infinite (∞ · 0 = NaN where the gradient reaching it is 0)"]
    # the parameters' NaN is traced to it
    params = next(w for w in doc["warnings"] if w.startswith("non-finite gradient"))
    assert "fc.weight" in params and f"born in the backward pass at sqrt (masked.py:{SQRT_LINE})" in params
    # and nothing is called vanishing or exploding on the strength of a NaN
    assert not any("exploding" in w or "vanishing" in w for w in doc["warnings"])
    assert r.stderr.count("warning:") == len(doc["warnings"])
    (b,) = doc["model"]["nonfinite"]
    assert b == {"node": "sqrt", "op": "sqrt", "phase": "backward", "what": "NaN", "into": "mul",
                 "reason": b["reason"], "source": f"masked.py:{SQRT_LINE}", "code": "r = torch.sqrt(z)"}
    nodes = {n["id"]: n for n in doc["nodes"]}
    assert nodes["sqrt"]["source"] == f"masked.py:{SQRT_LINE}"
    # the forward is finite: the sqrt's own gradient is finite, what it sends back is not
    assert nodes["sqrt"]["grad_stats"]["norm"] == pytest.approx(nodes["sqrt"]["grad_stats"]["norm"])
    edge = next(e for e in doc["edges"] if e["src"] == "mul" and e["dst"] == "sqrt")
    assert edge["grad_stats"]["max"] == "NaN"


def test_the_picture_marks_the_op_where_it_is_born(cli, masked):
    r = cli("torch", masked, "--format", "dot", "-o", "-")
    assert r.exit_code == 0, r.stderr
    node = next(line for line in r.stdout.splitlines() if line.strip().startswith('"sqrt" ['))
    assert "NaN born here (backward): square root at 0" in node and 'fillcolor="#ffcc80"' in node
    # the NaN gradient edges are dotted, at a middle width, and the legend says what dotted means
    dotted = [line for line in r.stdout.splitlines() if 'style="dotted"' in line]
    assert len(dotted) >= 4 and all(f'penwidth="{NONFINITE_WIDTH:.2f}"' in line for line in dotted)
    assert "dotted: NaN or ∞, off the scale" in r.stdout


def test_the_autograd_view_names_the_grad_fn(cli, masked):
    r = cli("torch", masked, "--view", "autograd", "--format", "json", "-o", "-")
    doc = json.loads(r.stdout)
    assert [(b["node"], b["phase"]) for b in doc["model"]["nonfinite"]] == [("SqrtBackward0", "backward")]
    assert "square root at 0" in doc["model"]["nonfinite"][0]["reason"]


def test_make_dot_of_a_log_at_0_and_minus_1_warns_and_draws_the_infinite_gradient_apart():
    w = torch.tensor([0.0, -1.0], requires_grad=True)
    d = cgviz.make_dot(w.log().sum())
    assert d.warnings[0] == "NaN is born in the forward pass at LogBackward0: log of a negative number (and of 0)"
    assert any(x.startswith("the loss is nan") for x in d.warnings)
    assert w.grad is None                                          # make_dot leaves .grad alone
    red = [line for line in d.dot.splitlines() if 'dir="back"' in line]
    widths = {float(m) for line in red for m in re.findall(r'penwidth="?([\d.]+)', line)}
    inf_edges = [line for line in red if "inf" in line]
    assert inf_edges and all('style="dotted"' in line for line in inf_edges)
    # the infinite gradient is not drawn as the strongest edge
    assert all(f'penwidth="{NONFINITE_WIDTH:.2f}"' in line for line in inf_edges) and max(widths) > NONFINITE_WIDTH


class Forward(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self.fc = nn.Linear(4, 4)

    def forward(self, x):
        h = self.fc(x)
        if self.kind == "log":
            return torch.log(h).sum()
        if self.kind == "mask":         # an attention mask's -inf, meant and harmless
            s = h.masked_fill(torch.eye(4, dtype=torch.bool)[:3], float("-inf"))
            return (torch.softmax(s, -1) * h).sum()
        if self.kind == "all_masked":  # a row masked entirely: softmax makes NaN of the infinities
            s = h.masked_fill(torch.ones(3, 4, dtype=torch.bool), float("-inf"))
            return (torch.softmax(s, -1) * h).sum()
        if self.kind == "exp":
            return torch.exp(h * 1000).sum()
        raise AssertionError(self.kind)


def _warnings(kind):
    torch.manual_seed(0)
    return cgviz.draw(Forward(kind), torch.randn(3, 4, generator=torch.Generator().manual_seed(0))).warnings


def test_a_forward_nan_is_named_with_its_line_and_reason():
    w = _warnings("log")
    assert w[0].startswith("NaN is born in the forward pass at log (test_models_nonfinite.py:")
    assert w[0].endswith("return torch.log(h).sum()): log of a negative number")


def test_an_attention_masks_infinity_is_not_a_warning():
    assert _warnings("mask") == []


def test_an_infinity_made_nan_names_both_places():
    w = _warnings("all_masked")
    assert len([x for x in w if "is born" in x]) == 2
    inf, nan = w[0], w[1]
    assert inf.startswith("an infinity is born in the forward pass at masked_fill")
    assert nan.startswith("NaN is born in the forward pass at softmax") and "the infinity was born at masked_fill" in nan


def test_an_overflowing_exp_that_reaches_the_loss_is_named():
    w = _warnings("exp")
    assert w[0].startswith("an infinity is born in the forward pass at exp")
    assert "exp overflowed: its input reaches" in w[0] and "float32" in w[0]


# ---- the pieces ----------------------------------------------------------------------------------

def _info(values):
    return TensorInfo.of(torch.tensor(values))


def test_levels_and_op_keys():
    assert level(_info([1.0, 2.0])) == 0 and level(_info([1.0, float("inf")])) == INF
    assert level(_info([float("nan"), float("-inf")])) == NAN and level(None) == 0
    assert level(TensorInfo((2,), "float32", None)) is None
    assert [op_key(o) for o in ("SqrtBackward0", "LinalgVectorNormBackward0", "add_", "rtruediv")] == \
        ["sqrt", "linalg_vector_norm", "add", "rtruediv"]


def test_reasons_from_the_summaries():
    assert forward_reason("log", [_info([0.0, 1.0])], None) == ("log of 0", INF)
    assert forward_reason("sqrt", [_info([-1.0])], None) == ("square root of a negative number", NAN)
    assert forward_reason("truediv", [_info([1.0]), _info([0.0, 2.0])], _info([float("inf")]))[0] == "division by zero"
    assert forward_reason("rtruediv", [_info([0.0])], None)[1] == INF         # 1 / x at 0
    assert forward_reason("exp", [_info([100.0])], None)[1] == INF
    assert forward_reason("exp", [TensorInfo.of(torch.tensor([100.0], dtype=torch.float64))], None) is None
    assert backward_reason("SqrtBackward0", [None], _info([0.0, 1.0]), 0).startswith("square root at 0")
    assert backward_reason("div", [_info([1.0]), _info([0.0])], None, 1).startswith("division by zero")
    assert backward_reason("linalg_vector_norm", [_info([0.0, 0.0])], None, 0).startswith("the norm of a zero")
    assert backward_reason("mul", [_info([1.0])], None, 0) is None


def test_no_health_verdict_is_built_on_nan_or_inf():
    assert classify("w", "param", 1.0, 1e6).flag == "exploding"
    assert classify("w", "param", 1.0, float("nan")).flag is None
    assert classify("w", "param", float("inf"), 50.0).flag is None      # a weight that is itself inf
    assert classify("w", "param", float("inf"), 1e-9).flag is None
    assert classify("x", "input", 0.0, float("inf")).flag is None


def test_the_scale_draws_nan_and_inf_apart_not_as_its_strongest():
    s = scale_of([0.1, 1.0, float("inf"), float("nan")])
    assert s.data == (0.1, 1.0) and s.nonfinite
    assert s.edge_attrs(float("inf"))["style"] == "dotted" and s.edge_attrs(float("nan"))["style"] == "dotted"
    assert s.width(float("inf")) == NONFINITE_WIDTH < s.width(1.0) <= WIDTH_MAX
    assert "style" not in s.edge_attrs(1.0)
    assert "dotted: NaN or ∞" in s.legend() and "dotted" not in scale_of([1.0]).legend()
