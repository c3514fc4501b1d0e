"""Every op in the table against torch.autograd (float64) and central finite differences.

The cases are data: tests/cases/ops.toml (its header documents the keys). For each case:
  1. forward equals the op's torch twin;
  2. the engine-style gradient, `vjp` followed by `engine.unbroadcast` to each input's shape, equals
     torch.autograd.grad of (out · g).sum() for a random upstream gradient g;
  3. the same gradient equals central finite differences (skipped at kinks and ties, `fd = false`,
     where the derivative is a convention that the torch comparison pins down instead);
  4. the shape rule agrees with the forward output's shape.
Then the [[shape_error]] cases: the shape rule raises OpError naming the op and the shapes.
"""

from __future__ import annotations

import math
import re
import tomllib
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import torch

from cgviz.lang.engine import unbroadcast  # noqa: E402
from cgviz.core.errors import OpError  # noqa: E402
from cgviz.lang.ops import OPS, REQUIRED, shape_text  # noqa: E402

CASES_FILE = Path(__file__).resolve().parent / "cases" / "ops.toml"
DATA = tomllib.loads(CASES_FILE.read_text(encoding="utf-8"))

FWD_TOL = dict(rtol=1e-10, atol=1e-12)
GRAD_TOL = dict(rtol=1e-9, atol=1e-11)
FD_H = 1e-6
FD_TOL = dict(rtol=1e-6, atol=1e-7)
FD_MAX_ELEMENTS = 200          # finite differences cost two forwards per input element
TIE_GAP = 0.1                  # how far `away_from…` domains keep values from a kink or a tie

CASE_KEYS = {"op", "shapes", "attrs", "domain", "values", "fd", "tag", "seed", "xfail"}
ERROR_KEYS = {"op", "shapes", "attrs", "match", "shapes_in_message", "xfail"}
CHECKS = {"forward", "grad", "fd", "shape"}


# ------------------------------------------------------------------ the case file


def _fmt(v: Any) -> str:
    """Compact text for ids: [4,3], [], axis=[0,1], slope=0.2."""
    if isinstance(v, (list, tuple)):
        return "[" + ",".join(_fmt(x) for x in v) + "]"
    return str(v)


@dataclass
class Case:
    op: str
    shapes: list[tuple[int, ...]]
    attrs: dict[str, Any] = field(default_factory=dict)
    domain: list[str] = field(default_factory=list)
    values: list | None = None
    fd: bool = True
    tag: str | None = None
    seed: int | None = None
    xfail: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        parts = [self.op] + [_fmt(s) for s in self.shapes]
        parts += [f"{k}={_fmt(v)}" for k, v in self.attrs.items()]
        if self.tag:
            parts.append(self.tag)
        return "-".join(parts)

    @property
    def opdef(self):
        return OPS[self.op]

    def call_attrs(self) -> dict[str, Any]:
        """The attributes as the builder hands them to the op: defaults filled, varattr a tuple."""
        d = self.opdef
        attrs = {name: default for name, default in d.attrs if default is not REQUIRED}
        attrs.update(self.attrs)
        if d.varattr and d.varattr in attrs:
            attrs[d.varattr] = tuple(attrs[d.varattr])
        return attrs

    def domain_of(self, k: int) -> str:
        return self.domain[k] if k < len(self.domain) else "real"

    def rng_seed(self) -> int:
        return self.seed if self.seed is not None else zlib.crc32(self.id.encode())

    def diff_args(self) -> list[int]:
        return [k for k in range(len(self.shapes)) if k not in self.opdef.nondiff]


def _load_cases() -> list[Case]:
    cases = []
    for raw in DATA.get("case", []):
        unknown = set(raw) - CASE_KEYS
        assert not unknown, f"unknown keys {unknown} in case {raw}"
        bad = set(raw.get("xfail", {})) - CHECKS
        assert not bad, f"xfail names unknown checks {bad} in case {raw}"
        cases.append(Case(op=raw["op"], shapes=[tuple(s) for s in raw["shapes"]],
                          attrs=dict(raw.get("attrs", {})), domain=list(raw.get("domain", [])),
                          values=raw.get("values"), fd=raw.get("fd", True), tag=raw.get("tag"),
                          seed=raw.get("seed"), xfail=dict(raw.get("xfail", {}))))
    return cases


CASES = _load_cases()
ERRORS = DATA.get("shape_error", [])


def _params(check: str, cases=None):
    out = []
    for c in cases if cases is not None else CASES:
        marks = ([pytest.mark.xfail(strict=True, reason=c.xfail[check])] if check in c.xfail else [])
        out.append(pytest.param(c, id=c.id, marks=marks))
    return out


# ------------------------------------------------------------------ inputs


def _draw(rng: np.random.Generator, domain: str, shape) -> np.ndarray:
    if domain == "real":
        return rng.standard_normal(shape)
    if domain == "positive":
        return rng.uniform(0.5, 2.0, shape)
    if domain == "unit":
        return rng.uniform(0.1, 0.9, shape)
    if domain == "binary":
        return rng.integers(0, 2, shape).astype(np.float64)
    if domain == "nonzero":
        return rng.choice([-1.0, 1.0], shape) * rng.uniform(0.2, 2.0, shape)
    if domain.startswith("labels:"):
        return rng.integers(0, int(domain.split(":")[1]), shape).astype(np.int64)
    if domain.startswith("away_from:"):
        points = [float(p) for p in domain.split(":")[1].split(",")]
        x = np.asarray(rng.standard_normal(shape))
        for _ in range(1000):
            close = np.zeros(x.shape, dtype=bool)
            for p in points:
                close |= np.abs(x - p) < TIE_GAP
            if not close.any():
                return x
            x = np.where(close, rng.standard_normal(shape), x)
        raise AssertionError(f"could not draw values away from {points}")
    if domain == "away_from_ties":
        return rng.standard_normal(shape)  # separated from the other inputs in make_inputs
    raise AssertionError(f"unknown domain {domain!r}")


def make_inputs(case: Case) -> list[np.ndarray]:
    rng = np.random.default_rng(case.rng_seed())
    xs = []
    for k, shape in enumerate(case.shapes):
        dom = case.domain_of(k)
        if case.values is not None:
            dtype = np.int64 if dom.startswith("labels:") else np.float64
            x = np.asarray(case.values[k], dtype=dtype).reshape(shape)
        else:
            x = np.asarray(_draw(rng, dom, shape))
        xs.append(x)
    if case.values is None:
        for k in range(len(xs)):
            if case.domain_of(k) != "away_from_ties":
                continue
            for _ in range(1000):
                gap = min(np.min(np.abs(np.subtract(*np.broadcast_arrays(xs[k], xs[j]))), initial=np.inf)
                          for j in range(len(xs)) if j != k)
                if gap >= TIE_GAP:
                    break
                xs[k] = np.asarray(rng.standard_normal(case.shapes[k]))
            else:
                raise AssertionError(f"{case.id}: could not draw input {k} away from ties")
    return xs


def upstream(case: Case, out_shape) -> np.ndarray:
    """The random upstream gradient g, of the output's shape."""
    rng = np.random.default_rng(case.rng_seed() + 1)
    return np.asarray(rng.standard_normal(out_shape))


# ------------------------------------------------------------------ the three computations


def np_forward(case: Case, xs) -> np.ndarray:
    with np.errstate(all="ignore"):
        return np.asarray(case.opdef.forward(xs, **case.call_attrs()), dtype=np.float64)


def engine_grads(case: Case, xs, g) -> dict[int, np.ndarray]:
    """What engine.backward does on one node: vjp, skip non-differentiable params, unbroadcast."""
    d = case.opdef
    out = np_forward(case, xs)
    with np.errstate(all="ignore"):
        contribs = d.vjp(g, xs, out, **case.call_attrs())
    assert len(contribs) == len(xs), f"{d.name}: vjp returned {len(contribs)} gradients for {len(xs)} inputs"
    grads = {}
    for k, c in enumerate(contribs):
        if k in d.nondiff:
            continue
        assert c is not None, f"{d.name}: vjp gave no gradient for differentiable input {k}"
        grads[k] = unbroadcast(c, xs[k].shape)
    return grads


def torch_tensors(case: Case, xs):
    ts = []
    for k, x in enumerate(xs):
        if x.dtype.kind in "iu":
            ts.append(torch.tensor(x, dtype=torch.int64))
        else:
            ts.append(torch.tensor(x, dtype=torch.float64, requires_grad=k not in case.opdef.nondiff))
    return ts


def torch_forward(case: Case, ts):
    out = case.opdef.torch(torch, ts, **case.call_attrs())
    if not isinstance(out, torch.Tensor):
        out = torch.as_tensor(out, dtype=torch.float64)
    return out


def torch_grads(case: Case, xs, g) -> dict[int, np.ndarray]:
    ts = torch_tensors(case, xs)
    out = torch_forward(case, ts)
    diff = case.diff_args()
    loss = (out * torch.tensor(g, dtype=torch.float64)).sum()
    got = torch.autograd.grad(loss, [ts[k] for k in diff], allow_unused=True)
    return {k: (np.zeros(xs[k].shape) if gk is None else gk.detach().numpy())
            for k, gk in zip(diff, got)}


def fd_grads(case: Case, xs, g) -> dict[int, np.ndarray]:
    """Central differences of sum(forward(xs) · g), one input element at a time."""
    def loss(ys):
        return float(np.sum(np_forward(case, ys) * g))

    grads = {}
    for k in case.diff_args():
        num = np.zeros(xs[k].shape)
        for idx in np.ndindex(xs[k].shape):
            plus = [x.copy() for x in xs]
            minus = [x.copy() for x in xs]
            plus[k][idx] += FD_H
            minus[k][idx] -= FD_H
            num[idx] = (loss(plus) - loss(minus)) / (2 * FD_H)
        grads[k] = num
    return grads


def _compare(case: Case, got: dict, want: dict, what: str, tol: dict) -> None:
    """Every input's gradient against `want`; reports all mismatching inputs, not just the first."""
    assert set(got) == set(want), f"{case.id}: gradients for inputs {set(got)} vs {set(want)}"
    problems = []
    for k in sorted(want):
        name = case.opdef.param_names[k]
        if got[k].shape != want[k].shape:
            problems.append(f"∂/∂{name} has shape {got[k].shape}, {what} says {want[k].shape}")
            continue
        try:
            np.testing.assert_allclose(got[k], want[k], equal_nan=True, **tol,
                                       err_msg=f"∂/∂{name} (engine) vs {what}")
        except AssertionError as e:
            problems.append(str(e).strip())
    assert not problems, f"{case.id}:\n" + "\n\n".join(problems)


# ------------------------------------------------------------------ per-case checks


@pytest.mark.parametrize("case", _params("forward"))
def test_forward_matches_torch(case: Case):
    xs = make_inputs(case)
    ours = np_forward(case, xs)
    with torch.no_grad():
        theirs = torch_forward(case, torch_tensors(case, xs)).numpy()
    assert ours.shape == theirs.shape, f"{case.id}: shape {ours.shape}, torch {theirs.shape}"
    np.testing.assert_allclose(ours, theirs, equal_nan=True, **FWD_TOL)


@pytest.mark.parametrize("case", _params("grad"))
def test_vjp_matches_torch_autograd(case: Case):
    xs = make_inputs(case)
    g = upstream(case, np_forward(case, xs).shape)
    _compare(case, engine_grads(case, xs, g), torch_grads(case, xs, g), "torch.autograd", GRAD_TOL)


@pytest.mark.parametrize("case", _params("fd", [c for c in CASES if c.fd]))
def test_vjp_matches_finite_differences(case: Case):
    xs = make_inputs(case)
    if sum(x.size for x in xs) > FD_MAX_ELEMENTS:
        pytest.skip(f"more than {FD_MAX_ELEMENTS} input elements")
    g = upstream(case, np_forward(case, xs).shape)
    _compare(case, engine_grads(case, xs, g), fd_grads(case, xs, g), "finite differences", FD_TOL)


@pytest.mark.parametrize("case", _params("shape"))
def test_shape_rule_matches_forward(case: Case):
    xs = make_inputs(case)
    rule = case.opdef.shape([x.shape for x in xs], **case.call_attrs())
    assert tuple(rule) == np_forward(case, xs).shape


# ------------------------------------------------------------------ shape errors


def _error_id(raw) -> str:
    parts = [raw["op"]] + [_fmt(s) for s in raw["shapes"]]
    parts += [f"{k}={_fmt(v)}" for k, v in raw.get("attrs", {}).items()]
    return "-".join(parts)


def _error_params():
    out = []
    for raw in ERRORS:
        marks = [pytest.mark.xfail(strict=True, reason=raw["xfail"])] if "xfail" in raw else []
        out.append(pytest.param(raw, id=_error_id(raw), marks=marks))
    return out


def _names_op(d, message: str) -> bool:
    if re.search(rf"(?<![\w]){re.escape(d.name)}(?![\w])", message):
        return True
    return bool(d.infix) and f" {d.infix} " in message


@pytest.mark.parametrize("raw", _error_params())
def test_shape_error_names_the_op_and_the_shapes(raw):
    d = OPS[raw["op"]]
    shapes = [tuple(s) for s in raw["shapes"]]
    case = Case(op=raw["op"], shapes=shapes, attrs=dict(raw.get("attrs", {})))
    with pytest.raises(OpError) as info:
        d.shape(shapes, **case.call_attrs())
    message = str(info.value)
    assert _names_op(d, message), f"message does not name {d.name}: {message!r}"
    wanted = list(raw.get("match", []))
    if len(shapes) >= 2 and raw.get("shapes_in_message", True):
        wanted += [shape_text(s) for s in shapes]
    missing = [w for w in wanted if w not in message]
    assert not missing, f"message lacks {missing}: {message!r}"


# ------------------------------------------------------------------ coverage of the case file


def test_case_file_is_well_formed():
    ids = [c.id for c in CASES]
    dupes = sorted({i for i in ids if ids.count(i) > 1})
    assert not dupes, f"duplicate case ids (add a tag): {dupes}"
    for c in CASES:
        assert c.op in OPS, f"{c.id}: unknown op {c.op!r}"
        d = c.opdef
        assert d.min_args <= len(c.shapes) <= len(d.params), f"{c.id}: wrong number of inputs"
        assert len(c.domain) <= len(c.shapes), f"{c.id}: more domains than inputs"
        allowed = {name for name, _ in d.attrs} | ({d.varattr} if d.varattr else set())
        assert set(c.attrs) <= allowed, f"{c.id}: attributes {set(c.attrs) - allowed} unknown to {d.name}"
        if c.values is not None:
            assert len(c.values) == len(c.shapes), f"{c.id}: one list of values per input"
            for v, s in zip(c.values, c.shapes):
                assert np.asarray(v).size == math.prod(s), f"{c.id}: {np.asarray(v).size} values for {s}"
        if c.fd:
            assert sum(math.prod(s) for s in c.shapes) <= FD_MAX_ELEMENTS, f"{c.id}: too big for FD"
    for raw in ERRORS:
        assert set(raw) <= ERROR_KEYS, f"unknown keys {set(raw) - ERROR_KEYS} in {raw}"
        assert raw["op"] in OPS


def test_every_op_has_a_case():
    missing = sorted(set(OPS) - {c.op for c in CASES})
    assert not missing, f"ops without a case in {CASES_FILE.name}: {missing}"


def test_every_broadcasting_op_has_a_broadcasting_case():
    """Ops with two or more differentiable inputs broadcast (matmul's batch dims, linear's bias,
    a loss's scalar target); each needs a case where unbroadcast has to sum a gradient down."""
    broadcasting = {name for name, d in OPS.items()
                    if len([p for k, p in enumerate(d.params) if k not in d.nondiff]) >= 2}
    assert {"add", "mul", "max", "matmul", "linear", "mse"} <= broadcasting
    exercised = set()
    for c in CASES:
        if c.op not in broadcasting or c.xfail:
            continue
        xs = make_inputs(c)
        out = np_forward(c, xs)
        g = upstream(c, out.shape)
        with np.errstate(all="ignore"):
            raw = c.opdef.vjp(g, xs, out, **c.call_attrs())
        if any(r is not None and np.shape(r) != x.shape for r, x in zip(raw, xs)):
            exercised.add(c.op)
    assert not broadcasting - exercised, f"no broadcasting case for {sorted(broadcasting - exercised)}"


def test_every_op_that_can_reject_shapes_has_a_shape_error_case():
    no_errors = set(DATA["no_shape_errors"])
    assert no_errors <= set(OPS)
    with_errors = {raw["op"] for raw in ERRORS}
    assert not no_errors & with_errors
    missing = sorted(set(OPS) - no_errors - with_errors)
    assert not missing, f"ops without a [[shape_error]] case: {missing}"


@pytest.mark.parametrize("name", sorted(DATA["no_shape_errors"]))
def test_ops_listed_without_shape_errors_accept_any_shape(name):
    d = OPS[name]
    for shape in [(), (7,), (2, 3, 4)]:
        assert len(d.shape([shape])) in (0, len(shape))


def test_bce_target_gradient_is_the_clamped_slope():
    # At prob 0 or 1 the loss uses log clamped at −100 (as PyTorch's forward does), so its slope in
    # the target is finite: (max(ln(1−p), −100) − max(ln p, −100)) / n.
    d = OPS["bce"]
    p, t = np.array([0.0, 1.0]), np.array([0.3, 0.7])
    _, gt = d.vjp(np.array(1.0), [p, t], d.forward([p, t]))
    assert gt.tolist() == [50.0, -50.0]
