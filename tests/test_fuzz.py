"""Fuzzing the expression path: every input renders or ends in a clean user error, within a time limit.

Inputs are programs built from the language's grammar and op table (declarations with initializers,
every op with its arity and keyword options), then mutated token by token (deleted, duplicated,
swapped, random characters inserted), plus raw random text and raw random bytes. Each one goes
through decoding, parsing, building, forward, backward, DOT and JSON, in process.

`make test` runs a small fixed-seed profile (a few seconds). `make fuzz` runs
CGVIZ_FUZZ_EXAMPLES=10000 random ones and prints how many ran and how long they took.
"""

from __future__ import annotations

import json
import os
import random
import re
import signal
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cgviz.view.expression_scene import to_dot
from cgviz.core.errors import CgvizError, SourceError
from cgviz.view.export import to_json
from cgviz.lang.inits import INITS
from cgviz.lang.ops import OPS
from cgviz.route.expression import decode_source, evaluate

EXAMPLES = int(os.environ.get("CGVIZ_FUZZ_EXAMPLES", "0")) or None
# A fuzz run (make fuzz) draws new inputs every time; the suite's profile is fixed so it cannot flake.
PROFILE = settings(
    max_examples=EXAMPLES or 400,
    derandomize=EXAMPLES is None,
    database=None if EXAMPLES is None else settings.default.database,
    deadline=None,                       # the per-input limit is the alarm below, not hypothesis' timer
    suppress_health_check=list(HealthCheck),
    print_blob=True,
)
PER_INPUT_SECONDS = 10
# Small enough that no input can take much memory or time (a 1000×1000 matmul is the worst case).
MAX_ELEMENTS = 1_000_000
NAME = "fuzz.cg"

STATS = {"inputs": 0, "ok": 0, "user_error": 0, "seconds": 0.0}

# ---------------------------------------------------------------- generators
# Programs are written by a small grammar-driven generator seeded by hypothesis: hypothesis' own
# recursive strategies cost ~100 ms an input, which would make 10,000 inputs take a quarter hour.

CALLABLE = [d for d in OPS.values() if not d.internal and d.usage.startswith(d.name + "(")]
BINOPS = ["+", "-", "*", "/", "@", "^", "**"]
ODD_NAMES = ["input", "param", "loss", "None", "T", "relu", "randn", "true", "_", "x1"]
# overflowing float64 (an error at the literal), underflowing, a 300-digit integer that fits, odd forms
ODD_NUMBERS = ["1e400", "1e-400", "3e+2", "007", "1.2.3", "2.", ".5", "0", "-0", "2.5e309", "9" * 400,
               "1" * 5000, "1" * 300, "1e308", "1e6"]
JUNK = list("()[],=.+-*/@^#\\\n\t\"'<>{}|;:!$`~&%?") + ["×", "−", "²", "é", "\u2028", "\x0c", "\ufeff",
                                                         "∂", "😀", "\r", "\x00", "**", "1e", "--"]
TOKEN = re.compile(r"\s+|[A-Za-z_][A-Za-z0-9_]*|\d[\d.eE+-]*|\*\*|.", re.S)


class Gen:
    """One random program in the language, from the op and initializer tables."""

    def __init__(self, seed: int):
        self.r = random.Random(seed)
        # one shape per program, so that most programs agree on shapes and reach backward
        self.shape = self.r.choice([[], [], [2], [3], [2, 3], [1, 2]])

    def number(self) -> str:
        r = self.r
        k = r.random()
        if k < 0.6:
            return str(r.randint(-3, 5))
        if k < 0.97:
            return f"{r.uniform(-10, 10):.3g}"
        return r.choice(ODD_NUMBERS)

    def dims(self) -> list[str]:
        if self.r.random() < 0.85:
            return [str(d) for d in self.shape]
        return [self.r.choice(["0", "4", "-1", "100000", "2.5", "x", "[2]"]) for _ in range(self.r.randint(0, 3))]

    def literal(self, shape=None) -> str:
        shape = self.shape if shape is None else shape
        if not shape:
            return self.number()
        return "[" + ", ".join(self.literal(shape[1:]) for _ in range(shape[0])) + "]"

    def value(self) -> str:
        r = self.r
        k = r.random()
        if k < 0.3:
            return self.number() if not self.shape else self.literal()
        if k < 0.45:
            return self.literal()
        name = r.choice(sorted(INITS))
        if name == "randint":
            args = ["0", str(r.randint(1, 5)), f"shape=[{', '.join(self.dims())}]"]
        elif name in ("arange", "linspace"):
            args = [self.number(), self.number()] + ([str(r.randint(0, 4))] if name == "linspace" else [])
        elif name in ("eye", "kaiming", "xavier"):
            args = [str(r.randint(0, 3)) for _ in range(1 if name == "eye" else 2)]
        else:
            args = self.dims()
        if r.random() < 0.15:
            args.append(r.choice(["seed=1", "scale=0.1", "value=2", "lo=-1", "hi=1", "sede=3", "seed=-1",
                                  "value=x", "seed=1.5"]))
        elif name == "full":
            args.append("value=1.5")
        return f"{name}({', '.join(args)})"

    def expr(self, known: list[str], depth: int = 0) -> str:
        r = self.r
        if depth > 3 or r.random() < 0.35:
            k = r.random()
            if known and k < 0.75:
                return r.choice(known)
            return self.number() if k < 0.95 else self.literal()
        k = r.random()
        if k < 0.35:
            return f"{self.expr(known, depth + 1)} {r.choice(BINOPS)} {self.expr(known, depth + 1)}"
        if k < 0.4:
            return f"-{self.expr(known, depth + 1)}"
        if k < 0.45:
            return f"({self.expr(known, depth + 1)})"
        if k < 0.5:
            return f"{self.expr(known, depth + 1)}.T"
        d = r.choice(CALLABLE)
        n = len(d.params) if r.random() < 0.93 else r.randint(0, len(d.params) + 1)
        args = [self.expr(known, depth + 1) for _ in range(n)]
        for attr, _ in d.attrs:
            if r.random() < 0.2:
                args.append(f"{attr}={r.choice(['0', '1', '-1', 'None', '0.5', '[0, 1]', 'true'])}")
        if d.varattr:
            args += [str(x) for x in r.choice([[6], [3, 2], [-1], [2, 3], [0]])]
        return f"{d.name}({', '.join(args)})"

    def program(self) -> str:
        r = self.r
        known: list[str] = []
        lines = []
        if r.random() < 0.2:
            lines.append("# " + "".join(r.choice(JUNK + ["a", " "]) for _ in range(10)).replace("\n", " "))
        for i in range(r.randint(1, 4)):
            name = f"v{i}" if r.random() < 0.97 else r.choice(ODD_NAMES)
            lines.append(f"{r.choice(['input', 'param', 'const'])} {name} = {self.value()}")
            known.append(name)
        for i in range(r.randint(0, 4)):
            name = f"h{i}" if r.random() < 0.97 else r.choice(ODD_NAMES + known)
            lines.append(f"{name} = {self.expr(known)}")
            known.append(name)
        if r.random() < 0.02:
            # a long flat sum, as generated code writes: not nested, however long
            terms = [r.choice(known) for _ in range(r.randint(200, 2000))]
            lines.append(f"flat = {' + '.join(terms)}")
            known.append("flat")
        if r.random() < 0.6:
            head = r.choice(["loss L", "loss", "loss L", "loss h9"])
            body = self.expr(known)
            if r.random() < 0.7:
                body = f"{r.choice(['sum', 'mean'])}({body})"
            lines.append(f"{head} = {body}")
        return "\n".join(lines) + r.choice(["\n", "", "\r\n", "\n\n"])

    def mutated(self) -> str:
        r = self.r
        tokens = TOKEN.findall(self.program())
        for _ in range(r.randint(1, 4)):
            if not tokens:
                tokens.append(r.choice(JUNK))
                continue
            i = r.randrange(len(tokens))
            how = r.choice(["delete", "duplicate", "swap", "insert", "replace"])
            if how == "delete":
                del tokens[i]
            elif how == "duplicate":
                tokens.insert(i, tokens[i])
            elif how == "swap" and i + 1 < len(tokens):
                tokens[i], tokens[i + 1] = tokens[i + 1], tokens[i]
            elif how == "insert":
                tokens.insert(i, r.choice(JUNK))
            else:
                tokens[i] = r.choice(JUNK + ODD_NAMES + ODD_NUMBERS)
        return "".join(tokens)


seeds = st.integers(0, 2**32 - 1)
programs = seeds.map(lambda s: Gen(s).program())
inputs = st.one_of(
    programs.map(str.encode),
    seeds.map(lambda s: Gen(s).mutated().encode("utf-8", "surrogatepass")),
    seeds.map(lambda s: Gen(s).mutated().encode("utf-8", "surrogatepass")),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.binary(max_size=200),
)

# ---------------------------------------------------------------- the check


class Hang(Exception):
    pass


def _alarm(signum, frame):
    raise Hang(f"one input took more than {PER_INPUT_SECONDS} s")


def check_one(data: bytes) -> str:
    """Run one input the whole way; return 'ok' or 'user_error', raise on anything else."""
    try:
        text = decode_source(data, NAME)
        result = evaluate(text, NAME, max_elements=MAX_ELEMENTS)
        dot = to_dot(result.graph, result.run)
        doc = json.loads(to_json(result.graph, result.run))
    except SourceError as e:
        message = str(e)
        if e.line is not None:
            # a located error names the file, line and column, and echoes the line with a caret
            assert message.startswith(f"{NAME}:{e.line}"), message
            assert e.source is not None and "\n   " in message, message
        assert "Traceback" not in message
        return "user_error"
    except CgvizError as e:
        assert str(e).strip(), "an empty error message"
        return "user_error"
    assert dot.startswith("digraph") and dot.rstrip().endswith("}")
    assert len(doc["nodes"]) == len(result.graph)
    return "ok"


@pytest.fixture(scope="module", autouse=True)
def report():
    yield
    if STATS["inputs"]:
        print(f"\nfuzz: {STATS['inputs']} inputs in {STATS['seconds']:.1f} s "
              f"({STATS['ok']} rendered, {STATS['user_error']} clean user errors, 0 failures)")


@pytest.mark.filterwarnings("error::RuntimeWarning")    # a NumPy warning reaching stderr is a failure too
@PROFILE
@given(inputs)
def test_every_input_renders_or_is_a_clean_user_error(data):
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(PER_INPUT_SECONDS)
    t = time.perf_counter()
    try:
        outcome = check_one(data)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)
    STATS["seconds"] += time.perf_counter() - t
    STATS["inputs"] += 1
    STATS[outcome] += 1


def test_the_generator_reaches_the_backward_pass():
    """Guard against a fuzzer that only ever produces syntax errors: enough programs must run."""
    ok = 0

    @settings(max_examples=150, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(programs)
    def run(text):
        nonlocal ok
        ok += check_one(text.encode()) == "ok"

    run()
    assert ok >= 15, ok


@settings(max_examples=(EXAMPLES or 1000) // 4, derandomize=EXAMPLES is None, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(programs)
def test_programs_that_run_give_torchs_numbers(text):
    """Differential check: every value and gradient of a generated program equals torch.autograd's."""
    import numpy as np

    from cgviz.check.torch_ops import torch_run

    try:
        r = evaluate(text, NAME, max_elements=MAX_ELEMENTS)
    except CgvizError:
        return
    if r.run.nonfinite:
        return
    try:
        values, grads = torch_run(r.graph)
    except RuntimeError as e:
        # torch refuses a bce target outside [0, 1]; cgviz computes the formula (noted in the report)
        assert "target should be between 0 and 1" in str(e), (text, e)
        return
    for node in r.graph:
        k = node.id
        assert np.allclose(r.run.values[k], values[k], rtol=1e-6, atol=1e-9), (text, k)
        g, tg = r.run.grads.get(k), grads.get(k)
        if g is not None and tg is not None:
            if not np.all(np.isfinite(tg)) and _bce_target_at_the_clamp(r.graph, k):
                continue    # deliberate: cgviz's ∂bce/∂target is the clamped loss's slope (tests/cases/ops.toml)
            assert np.allclose(g, tg, rtol=1e-6, atol=1e-9), (text, k, g, tg)
        elif node.is_leaf and tg is not None:
            assert not np.any(tg), (text, k, tg)     # torch's zero gradient where cgviz has none


def _bce_target_at_the_clamp(graph, node_id) -> bool:
    """Whether `node_id` feeds (through anything) the target of a bce, where torch's gradient is ±inf."""
    targets = {n.inputs[1] for n in graph if n.op == "bce"}
    upstream, frontier = set(), set(targets)
    while frontier:
        k = frontier.pop()
        upstream.add(k)
        frontier |= set(graph[k].inputs) - upstream
    return node_id in upstream
