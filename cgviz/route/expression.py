"""An expression program's route: file or text → IR → run → DOT/JSON/image bytes, each step one short call."""

from __future__ import annotations

import gc
import warnings
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from ..lang import engine
from ..lang.build import build
from ..view.expression_scene import DotOptions, to_dot
from ..lang.engine import Run
from ..core.errors import CgvizError, SourceError
from ..view.export import to_json
from ..lang.inits import element_limit
from ..core.ir import Graph
from ..lang.parser import parse
from ..view import formats
from ..view.graphviz import run_dot


SOURCE_ACCEPTS = "Give an expression file such as pizza.cg, or - to read standard input."


def read_source(path: str) -> tuple[str, str]:
    """The text of a program file (or `-` for standard input) and the name to show for it. Only a
    regular file is opened, and at most paths.SOURCE_LIMIT bytes are read (standard input too)."""
    from ..core.paths import SOURCE_LIMIT, read_input, read_stdin, shown
    if path == "-":
        data = read_stdin("an expression file", SOURCE_LIMIT)
        name = "<stdin>"
    else:
        data = read_input(path, kind="an expression file", accepts=SOURCE_ACCEPTS, limit=SOURCE_LIMIT)
        name = shown(path)
    return decode_source(data, name), name


def decode_source(data: bytes, name: str) -> str:
    """A program file's bytes as text: UTF-8 (a BOM is fine), and no NUL bytes."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        col = e.start - (data.rfind(b"\n", 0, e.start) + 1) + 1
        raise CgvizError(f"{name}:{line}:{col}: not UTF-8 text (byte 0x{data[e.start]:02x}); cgviz render "
                         "reads expression files such as pizza.cg, saved as UTF-8") from None
    if "\x00" in text:
        raise CgvizError(f"{name} contains NUL bytes: it looks like a binary file, not an expression file")
    return text


def check_length(text: str, name: str, max_elements: int | None = None) -> None:
    """Refuse, before parsing, a program with more statements than it may have nodes (each makes at
    least one; inits.node_room). A file of a million one-line statements took 9 minutes to run out of
    memory; this says so in about a second."""
    from ..core.errors import SourceError
    from ..lang.inits import node_room, too_many
    from ..lang.parser import Source, statement_lines
    room = node_room(max_elements)
    if len(text) // 2 <= room:              # a statement takes at least two characters
        return
    lines = list(statement_lines(text))
    if len(lines) <= room:
        return
    raise SourceError(too_many(f"this program's {len(lines):,} statements (at least a node each)", room,
                               "this statement"), line=lines[room], col=1).at(Source(text, name))


@contextmanager
def gc_paused():
    """Python's cyclic garbage collector off for the block (as it was after). Parsing and running a
    long program allocate millions of objects that live on, none in a cycle, and every few thousand
    allocations the collector walked all of them again: more than half the time of parsing 100,000
    lines. A cycle made meanwhile is collected at the first collection after the block."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


@dataclass
class Result:
    graph: Graph
    run: Run


def evaluate(text: str, name: str = "<input>", overrides: dict[str, str] | None = None,
             grad: bool = True, max_elements: int | None = None) -> Result:
    """Parse, lower to the IR, run forward (and backward); every error carries the source for its caret."""
    with gc_paused():
        return _evaluate(text, name, overrides, grad, max_elements)


def _evaluate(text: str, name: str, overrides, grad: bool, max_elements: int | None) -> Result:
    check_length(text, name, max_elements)
    program = parse(text, name)
    # NumPy's own RuntimeWarnings ("Mean of empty slice", overflow in an initializer) would print
    # source paths on stderr; cgviz finds and explains every NaN and infinity itself.
    with element_limit(max_elements), warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)
        graph = build(program, overrides)
        try:
            run = engine.run(graph, grad=grad)
        except SourceError as e:
            raise e.at(program.source) from None
    return Result(graph, run)


def annotate(result: Result, grad: bool = True, lr: float | None = None, clip_norm: float | None = None,
             vanish: float | None = None, explode: float | None = None) -> list[str]:
    """What a run's picture adds beyond forward and backward, and the warnings a person should read:
    the run's own (NaN, inf), a learning-rate step's (`lr`: each param after one step, stored on the
    run for the picture), and gradient health (vanishing/exploding flags, saturation)."""
    with gc_paused():
        return _annotate(result, grad, lr, clip_norm, vanish, explode)


def _annotate(result: Result, grad: bool, lr: float | None, clip_norm: float | None, vanish: float | None,
              explode: float | None) -> list[str]:
    from ..diagnose.health import EXPLODE, VANISH, flag_warnings, saturation_warnings, verdicts
    vanish = VANISH if vanish is None else vanish
    explode = EXPLODE if explode is None else explode
    out = [str(w) for w in result.run.warnings]
    if lr is not None:
        from ..lang.train import large_step_warnings, step
        result.run.step = step(result.graph, result.run, lr, clip_norm)
        out += large_step_warnings(result.graph, result.run, result.run.step)
    if grad:
        out += flag_warnings(verdicts(result.graph, result.run, vanish, explode).values(), vanish, explode)
        out += saturation_warnings(result.graph, result.run)
    return out


def output_bytes(result: Result, fmt: str, opts: DotOptions = DotOptions(),
                 timeout: float | None = None, dpi: float | None = None) -> bytes:
    """The bytes of one output format (cgviz.view.formats: one branch per producer)."""
    with gc_paused():
        return _output_bytes(result, fmt, opts, timeout, dpi)


def _output_bytes(result: Result, fmt: str, opts: DotOptions, timeout: float | None, dpi: float | None) -> bytes:
    made_by = formats.lookup(fmt, formats.EXPRESSION).producer
    if made_by == formats.JSON:
        return to_json(result.graph, result.run, opts.vanish, opts.explode).encode("utf-8")
    if made_by == formats.VIEWER:
        import json

        from ..view.modelexplorer import dumps, graph_collection
        return dumps(graph_collection(json.loads(to_json(result.graph, result.run, opts.vanish, opts.explode))))
    dot_text = to_dot(result.graph, result.run, opts)
    if made_by == formats.DOT:
        return dot_text.encode("utf-8")
    if made_by == formats.GRAPHVIZ:
        return run_dot(dot_text, fmt, timeout=timeout, nodes=len(result.graph), dpi=dpi)
    if made_by == formats.PAGE:
        from ..view.html import dsl_page
        if opts.fold and result.graph.meta.get("loops"):
            # the page's stepper walks the backward pass node by node: it needs every step drawn
            import dataclasses
            dot_text = to_dot(result.graph, result.run, dataclasses.replace(opts, fold=False))
        svg = run_dot(dot_text, "svg", timeout=timeout, nodes=len(result.graph)).decode("utf-8")
        return dsl_page(result.graph, result.run, svg).encode("utf-8")
    raise AssertionError(f"no producer {made_by!r} for expressions")   # a registry entry without a branch here
