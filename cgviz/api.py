"""The Python front door: `draw()` and `make_dot()` give a `Drawing` that saves, renders and shows itself in Jupyter.

Whatever the source (expression text or a .cg file, a model file, an nn.Module or a function in
memory, a tensor's grad_fn graph), the result is one `Drawing` with the same methods. The expression
path never imports torch.
"""

from __future__ import annotations

import contextlib
import functools
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import CgvizError, OptionError
from .paths import is_hub
from .pytorch.state import given_back
from .spelling import flag, keyword, on_command_line, spell

if TYPE_CHECKING:
    from .diff import Comparison
    from .results import Explanation, GradientCheck, GradientHealth, NodeView

_RESULTS = ("Explanation", "GradientCheck", "GradientHealth", "NodeView")


def __getattr__(name: str):
    """The result types that moved to cgviz.results stay reachable here (and old pickles load)."""
    if name in _RESULTS:
        from . import results
        return getattr(results, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

MODEL_SUFFIXES = (".py", ".pt2", ".pt", ".pth", ".ts", ".jit", ".pkl", ".zip", ".bin", ".onnx")


class Drawing:
    """A computation graph with its values and gradients, and every way to show it.

    `d.svg()`, `d.png()`, `d.pdf()` lay it out with Graphviz; `d.dot`, `d.json()`, `d.to_dict()` need
    no Graphviz; `d.save("graph.svg")` writes atomically with the format from the suffix; `d.page()`
    is the interactive HTML page (shown inline in Jupyter); `d["w"].grad` reads one node. A notebook
    cell ending in a Drawing shows the SVG, fitted to the cell's width (a click: full size)."""

    def __init__(self, backend, rankdir: str, timeout: float | None):
        self._b = backend
        self.rankdir = rankdir
        self.timeout = timeout
        self._svg: bytes | None = None

    # ---- what was drawn ------------------------------------------------------------------------
    @property
    def graph(self):
        """The IR (cgviz.ir.Graph): nodes in topological order."""
        return self._b.graph

    @property
    def warnings(self) -> list[str]:
        """What cgviz would print as `warning:` lines (NaNs, vanishing or exploding gradients …)."""
        return list(self._b.warnings)

    @property
    def notes(self) -> list[str]:
        return list(getattr(self._b, "notes", []))

    @property
    def loss(self) -> float | None:
        return self._b.loss

    @property
    def folds(self) -> list[str]:
        """The repeated module calls the picture draws once, each named by its first call:
        `layers.0 ×12 (fold)` for twelve identical blocks, `cell ×20 (loop)` for one module called
        again and again; for an expression, its loops: `time_step=20 (for t in 1..20, line 6)`."""
        return self._b.folds()

    @property
    def source(self) -> str:
        """The name the drawing was read from, as warnings and titles show it (`<text>` for text)."""
        return self._b.source

    @property
    def headline(self) -> str:
        """One line on the result: `loss L = 100` (the command line's `wrote …` says it)."""
        return self._b.headline

    def __getitem__(self, name: str) -> NodeView:
        graph = self._b.graph
        node = graph[name] if name in graph else next((n for n in graph if n.name == name), None)
        if node is None:
            import difflib
            near = difflib.get_close_matches(name, [n.id for n in graph], n=3)
            hint = f"; did you mean {', '.join(map(repr, near))}?" if near else ""
            raise KeyError(f"no node {name!r} in this drawing{hint}")
        from .results import NodeView
        return NodeView(node.id, node.kind, node.op, self._b.value(node.id), self._b.grad(node.id))

    def __contains__(self, name: str) -> bool:
        return name in self._b.graph or any(n.name == name for n in self._b.graph)

    def __len__(self) -> int:
        return len(self._b.graph)

    def __iter__(self):
        return (n.id for n in self._b.graph)

    # ---- outputs ---------------------------------------------------------------------------------
    @property
    def dot(self) -> str:
        """The Graphviz DOT text (pure: no Graphviz needed)."""
        return self._b.dot(self.rankdir)

    def to_dict(self) -> dict:
        """The cgviz-graph JSON document (documented in docs/json-format.md) as a dict."""
        return self._b.to_dict()

    def json(self) -> str:
        return self.output("json").decode("utf-8")

    def svg(self) -> str:
        if self._svg is None:
            self._svg = self.output("svg")
        return self._svg.decode("utf-8")

    def png(self, dpi: float | None = None) -> bytes:
        """The PNG, at `dpi` if given (else as large as the pixel budget allows, up to Graphviz's 96)."""
        return self.output("png", dpi=dpi)

    def pdf(self) -> bytes:
        return self.output("pdf")

    def html(self) -> str:
        """The interactive page: one self-contained HTML file."""
        return self.output("html").decode("utf-8")

    def page(self) -> "Page":
        """The interactive page, shown inline when it is the last thing in a notebook cell."""
        return Page(self.html())

    def output(self, fmt: str, dpi: float | None = None) -> bytes:
        """The bytes of one format: png, svg, pdf, dot, json, html or modelexplorer (`dpi`: a PNG's
        resolution); the list is cgviz.view.formats'."""
        from .view import formats
        formats.lookup(fmt, self._b.kind)
        if dpi is not None:
            dpi = _converted("dpi", dpi)
        return self._b.output(fmt, self.rankdir, self.timeout, dpi)

    def save(self, path: str | os.PathLike, format: str | None = None, dpi: float | None = None) -> Path:
        """Write to `path` (format from its suffix unless `format` is given), atomically: a failure
        leaves no partial file and an existing file untouched. Returns the path."""
        from .view import formats
        from .view.graphviz import write_atomic
        p = Path(path)
        fmt = format or formats.from_path(p)
        if fmt is None:
            raise CgvizError(f"cannot tell the format from {str(path)!r}: use a suffix such as "
                             f"{formats.suffixes_text(self._b.kind)}, or pass format=")
        for src in self._b.inputs:
            with contextlib.suppress(OSError):
                if p.exists() and p.samefile(src):
                    raise CgvizError(f"{path} is the file this drawing was read from; cgviz never overwrites "
                                     "its input")
        write_atomic(p, self.output(fmt, dpi))
        if fmt == "modelexplorer" and self._b.kind == "model":     # a model: its node-data overlays beside it
            from .view.modelexplorer import sibling
            for name, data in self._b.d.overlays().items():
                write_atomic(sibling(p, name), data)
        return p

    def diff(self, other, **options) -> "Comparison":
        """This drawing (A) compared with `other` (B: a Drawing, a file, a saved graph): see cgviz.compare."""
        from .diff import compare
        return compare(self, other, **options)

    # ---- notebooks ---------------------------------------------------------------------------------
    def _repr_mimebundle_(self, include=None, exclude=None):
        """What a notebook shows for a cell ending in a Drawing: HTML with the SVG fitted to the cell's
        width, full size a click away (cgviz.view.notebook); the plain SVG for front ends without
        HTML (QtConsole, a PDF export); without Graphviz, text, so that displaying never raises."""
        try:
            svg = self.svg()
        except CgvizError as e:
            return {"text/plain": f"{self!r}\n(no picture: {e})"}
        from .view.notebook import fitted
        bundle = {"text/html": fitted(svg), "image/svg+xml": svg, "text/plain": repr(self)}
        return {k: v for k, v in bundle.items()
                if (include is None or k in include) and (exclude is None or k not in exclude)}

    def __repr__(self) -> str:
        loss = f", loss={self.loss:.4g}" if isinstance(self.loss, float) else ""
        return f"<cgviz.Drawing of {self._b.source}: {len(self._b.graph)} nodes{loss}>"


class Page:
    """The interactive HTML page of a drawing; a notebook shows it inline (in a sandboxed iframe)."""

    def __init__(self, html: str):
        self.text = html

    def _repr_html_(self) -> str:
        import html as _html
        return (f'<iframe srcdoc="{_html.escape(self.text, quote=True)}" style="width:100%;height:720px;'
                'border:1px solid #ddd" sandbox="allow-scripts"></iframe>')

    def save(self, path: str | os.PathLike) -> Path:
        from .view.graphviz import write_atomic
        write_atomic(Path(path), self.text.encode("utf-8"))
        return Path(path)


# ---- the two kinds of run behind a Drawing ---------------------------------------------------------
class _Expression:
    """An expression program's run: full NumPy arrays."""

    kind = "expression"             # the source cgviz.view.formats says which formats it writes

    def __init__(self, result, source: str, opts, warnings: list[str], inputs: tuple[str, ...]):
        self.result, self.source, self.opts, self.inputs = result, source, opts, inputs
        self.graph = result.graph
        self.warnings = warnings
        self.notes: list[str] = []

    @property
    def loss(self) -> float | None:
        g, run = self.result.graph, self.result.run
        v = run.values.get(g.output) if g.output else None
        return float(v) if v is not None and getattr(v, "size", 0) == 1 else None

    @property
    def headline(self) -> str:
        from .view.expression_scene import headline
        return headline(self.result.graph, self.result.run)

    def value(self, node_id):
        return self.result.run.values.get(node_id)

    def folds(self) -> list[str]:
        if not self.opts.fold:
            return []
        return [f"time_step={lp['steps']} (for {lp['var']} in {lp['first']}..{lp['last']}, line {lp['line']})"
                for lp in self.graph.meta.get("loops", ())]

    def grad(self, node_id):
        return self.result.run.grads.get(node_id)

    def dot(self, rankdir: str) -> str:
        import dataclasses

        from .view.expression_scene import to_dot
        return to_dot(self.result.graph, self.result.run, dataclasses.replace(self.opts, rankdir=rankdir))

    def to_dict(self) -> dict:
        from .view.export import to_dict
        return to_dict(self.result.graph, self.result.run, self.opts.vanish, self.opts.explode)

    def output(self, fmt: str, rankdir: str, timeout: float | None, dpi: float | None = None) -> bytes:
        import dataclasses

        from .lang.pipeline import output_bytes
        return output_bytes(self.result, fmt, dataclasses.replace(self.opts, rankdir=rankdir), timeout=timeout,
                            dpi=dpi)


class _Model:
    """A model's run: tensor summaries per node and edge."""

    kind = "model"

    def __init__(self, drawing, source: str, inputs: tuple[str, ...], loaded=None):
        self.d, self.source, self.inputs = drawing, source, inputs
        self.loaded = loaded            # the module that ran (gradient_health reads its parameters)
        self.graph = drawing.graph
        self.notes = drawing.notes

    @property
    def warnings(self):
        return self.d.warnings

    @property
    def loss(self):
        return self.d.run.loss

    @property
    def headline(self) -> str:
        return "" if self.loss is None else f"loss = {self.loss:.4g}"

    def value(self, node_id):
        from .summary import first
        return first(self.d.run.values.get(node_id))

    def grad(self, node_id):
        g = self.d.run.grads.get(node_id)
        if g is None:
            node = self.graph[node_id]
            if node.kind == "param":
                g = self.d.run.param_grads.get(node.name)
        return g

    def dot(self, rankdir: str) -> str:
        return self.d.dot(rankdir)

    def folds(self) -> list[str]:
        # without folding, build_picture found no groups
        return [f"{'/'.join(f.key for f in g.calls[0])} ×{g.n} ({g.style})" for g in self.d.pic.groups.values()]

    def to_dict(self) -> dict:
        return self.d.to_dict()

    def output(self, fmt: str, rankdir: str, timeout: float | None, dpi: float | None = None) -> bytes:
        return self.d.output(fmt, rankdir, timeout, dpi=dpi)


# ---- draw ------------------------------------------------------------------------------------------
@given_back()
def draw(source: Any, *inputs: Any, input_size: Any = None, loss: Any = None, depth: int | None = None,
         fold: bool = True, view: str = "ops", dtype: str | None = None, seed: int = 0, mode: str | None = None,
         grad: bool = True, lr: float | None = None, clip_norm: float | None = None, rankdir: str | None = None,
         sets: dict[str, Any] | None = None, trust: bool = False, weights: str | None = None, meta: bool = False,
         vanish: float | None = None, explode: float | None = None, max_elements: int | None = None,
         timeout: float | None = 60.0, input_file: str | None = None, simplify: bool = True,
         kind: str | None = None, forward_kwargs: dict[str, Any] | None = None,
         focus: str | None = None, targets: Any = None, dims: dict[str, int] | None = None,
         download: bool = False) -> Drawing:
    """Draw a computation graph with its forward values and its gradients.

    source is one of:
      - expression-language text (`"param w = 0.5\\n..."`) or a path to a .cg file;
      - a path to a model file, as `cgviz torch` takes it (`net.py`, `net.py:build`, `model.pt2`, `model.onnx`,
        …; an ONNX graph's symbolic dimensions are set by name with dims={"batch": 2});
      - a Hugging Face model by name, `hf:gpt2` or `hf:meta-llama/Llama-3.2-1B?num_hidden_layers=2` (config
        fields changed after '?'): weights from the local cache, else random ones from its config;
        download=True lets one missing from the cache be fetched (docs/torch.md);
      - an nn.Module in memory, with example inputs after it (`draw(model, x)`) or `input_size=(1, 3, 32, 32)`,
        and keyword inputs in forward_kwargs (a Hugging Face model: `draw(t5, forward_kwargs={"input_ids": ids,
        "decoder_input_ids": dec})`);
      - a function, with the tensors to call it on (`draw(f, x, y)`);
      - a tensor with a grad_fn: the graph that produced it, as torchviz's make_dot draws it.

    The keyword arguments are the command line's options (loss, depth, fold, view, dtype, seed, mode
    "train"/"eval", lr, rankdir, …). loss= is the loss you train with: a function of the output
    (`loss=lambda out: F.cross_entropy(out.logits.flatten(0, 1), y.flatten())`), or with targets=
    (a tensor, a pytree of them, or a .pt file) `def loss(out, targets)` or an nn.Module loss
    (`loss=nn.CrossEntropyLoss(), targets=y`), or a name ("sum", "mean", "mse", "ce"). Without it,
    an output that carries its own loss (a Hugging Face model given labels=) is drawn with that loss,
    a scalar output with itself, and anything else with its sum, whose gradients' scale means nothing
    (the picture says so). See docs/loss.md. An nn.Module is given back exactly as it
    was, and so are the inputs and the global random generators (cgviz.pytorch.state); a module on the
    meta device is drawn as meta=True draws one, shapes only. rankdir "LR" or "TB" forces the layout
    direction; by default an expression is drawn top to bottom when it is much deeper than wide,
    else left to right, and a model top to bottom. simplify=False draws a model's pass-through
    ops too (eval-mode dropout, a .to() or view that changes nothing; the JSON always has them).
    focus="layers.3.self_attn" draws only the inside of that module, with a stub for each tensor
    that enters or leaves it (a ×N block's member, "layers.7", shows that block's numbers).

    kind says what a string or path is, when it should not be told from the text and the file's
    content: "text" (a program), "expression" (an expression file, "-" for standard input),
    "model" (a model file) or "file" (a file of either kind, told by its content).
    """
    checked = _checked("draw", loss=loss, depth=depth, view=view, dtype=dtype, seed=seed, mode=mode, lr=lr,
                       clip_norm=clip_norm, rankdir=rankdir, vanish=vanish, explode=explode,
                       max_elements=max_elements, timeout=timeout, focus=focus)
    checked["targets"] = targets
    checked["dims"] = dims          # an ONNX graph's symbolic dimensions by name: {"batch": 2}
    checked["download"] = download  # an hf: model missing from the local cache may be fetched
    rankdir = checked["rankdir"]
    checked["simplify"] = simplify
    if _is_text_or_path(source):
        text_or_path = os.fspath(source)
        kind = source_kind(text_or_path, kind)
        if kind != "model":
            _refuse_model_options(text_or_path if kind != "text" else "<text>", focus=focus, loss=loss,
                                  targets=targets is not None)
            if inputs or input_size is not None or forward_kwargs:
                raise CgvizError("draw(): an expression program declares its own inputs; pass no tensors, "
                                 "input_size or forward_kwargs (use sets={'x': ...} to change a declaration)")
            return _draw_expression(text_or_path, kind, sets, grad, checked, timeout=checked["timeout"], fold=fold,
                                    rankdir=rankdir)
        if forward_kwargs:
            raise CgvizError("draw(): forward_kwargs is for a module or function in memory; a model file takes "
                             "its inputs as tensors after the path, or input_file=")
        return _draw_model_file(text_or_path, inputs, input_size, checked, fold=fold, grad=grad, trust=trust,
                                weights=weights, meta=meta, input_file=input_file, rankdir=rankdir or "TB")
    if kind is not None:
        raise CgvizError(f"draw(): kind={kind!r} says what a string or path holds; this source is a "
                         f"{type(source).__name__}")
    from .needs import require_torch
    torch = require_torch("draw() of a model, function or tensor")
    if isinstance(source, torch.Tensor):
        if inputs or input_size is not None or forward_kwargs:
            raise CgvizError("draw(tensor) draws the graph that produced the tensor; it takes no inputs")
        if loss is not None or targets is not None:
            raise OptionError("draw(tensor) draws the graph behind the tensor as it is; to draw a loss, pass the "
                              "loss tensor itself (draw(loss_tensor)), or the model with loss=")
        if focus is not None:
            raise OptionError("draw(tensor) draws a graph of grad_fns, which has no modules to focus on")
        return make_dot(source, rankdir=rankdir or "TB", timeout=checked["timeout"])
    if isinstance(source, torch.nn.Module) or callable(source):
        return _draw_module(source, inputs, input_size, checked, fold=fold, grad=grad, meta=meta,
                            rankdir=rankdir or "TB", forward_kwargs=forward_kwargs)
    raise CgvizError(f"draw() takes expression text, a file path, an nn.Module, a function or a tensor, "
                     f"not a {type(source).__name__}")


def _is_text_or_path(source) -> bool:
    return isinstance(source, (str, os.PathLike))


KINDS = ("text", "expression", "model", "file")


def source_kind(text_or_path: str, kind: str | None = None) -> str:
    """What a string names: "text" (a program), "expression" (an expression file) or "model".

    `kind` None tells text from a path (text has a newline, or an `=` and no such file), then a
    path by is_model; "file" is a path of either kind, told by is_model; the others are taken as said."""
    if kind not in (None,) + KINDS:
        raise CgvizError(f"kind={kind!r}: must be one of {', '.join(map(repr, KINDS))}")
    if kind in (None, "file") and is_hub(text_or_path):
        return "model"          # hf:gpt2, a Hugging Face model by name (cgviz.pytorch.hf_source)
    if kind is None and ("\n" in text_or_path or ("=" in text_or_path and not Path(text_or_path).exists())):
        return "text"
    if kind in (None, "file"):
        return "model" if is_model(text_or_path) else "expression"
    return kind


def _checked(caller: str, **values) -> dict:
    """Option values checked by their one definition (cgviz.options), the errors in the caller's words."""
    return {key: None if value is None else _converted(key, value, caller) for key, value in values.items()}


def _converted(key: str, value, caller: str = "draw"):
    if key == "loss" and not isinstance(value, str):
        return value            # a function or an nn.Module loss: cgviz.pytorch.loss checks it
    from .options import OPTIONS
    try:
        return OPTIONS[key].convert(value)
    except Exception as e:          # click.BadParameter
        raise CgvizError(f"{caller}(): {key}={value!r}: {getattr(e, 'message', e)}") from None


def is_model(target: str) -> bool:
    """Whether a path names a model rather than an expression file: by suffix first (.cg is an
    expression file, .py and torch's archives are models), else by content (a zip or pickle is a
    model; text is an expression file unless the expression parser rejects it and Python accepts it)."""
    from .paths import split_spec
    if target == "-":
        return False
    if is_hub(target):
        return True
    path, factory = split_spec(target)
    if factory:
        return True
    suffix = path.suffix.lower()
    if suffix == ".cg":
        return False
    if suffix in MODEL_SUFFIXES:
        return True
    from .paths import SOURCE_LIMIT, check_input, read_input
    # Not a regular file (a FIFO, a device, a folder, a loop) or missing: say so before anything opens it.
    accepts = "Give an expression file such as pizza.cg, or a model file (see cgviz torch --help)."
    if check_input(path, kind="an expression file or a model", accepts=accepts).st_size > SOURCE_LIMIT:
        return True             # too big for an expression file
    data = read_input(path, kind="an expression file or a model", accepts=accepts, limit=SOURCE_LIMIT)
    from .pytorch.load import sniff
    try:
        kind = sniff(path, data)
    except CgvizError:
        return True             # a damaged zip: load_model says so
    if kind.startswith("zip") or kind == "pickle":
        return True
    if kind == "python":
        from .lang.parser import parse
        try:
            parse(data.decode("utf-8-sig"), str(path))
        except CgvizError:
            return True
        return False
    return False


def _program(text_or_path: str, kind: str | None) -> tuple[str, str, tuple[str, ...]]:
    """(text, name, files read) of an expression program given as text or as a file."""
    from .lang.pipeline import read_source
    if source_kind(text_or_path, kind) == "text":
        return text_or_path, "<text>", ()
    text, name = read_source(text_or_path)
    return text, name, (text_or_path,)


def _evaluate(source, kind: str | None, sets, max_elements: int | None = None, grad: bool = True):
    """An expression program run forward and backward: (pipeline.Result, its name, files read)."""
    from .lang.pipeline import evaluate
    text, name, inputs = _program(os.fspath(source), kind)
    overrides = {k: str(v) for k, v in (sets or {}).items()}
    return evaluate(text, name, overrides, grad=grad, max_elements=max_elements), name, inputs


def _draw_expression(text_or_path: str, kind: str | None, sets, grad: bool, checked: dict, timeout,
                     rankdir: str | None, fold: bool = True) -> Drawing:
    from .view.expression_scene import DotOptions, auto_rankdir
    from .health import EXPLODE, VANISH
    from .lang.pipeline import annotate
    lr, clip_norm = checked["lr"], checked["clip_norm"]
    check_step(lr, clip_norm, grad)
    vanish = VANISH if checked["vanish"] is None else checked["vanish"]
    explode = EXPLODE if checked["explode"] is None else checked["explode"]
    check_thresholds(vanish, explode)
    result, name, inputs = _evaluate(text_or_path, kind, sets, checked["max_elements"], grad)
    warnings = annotate(result, grad, lr, clip_norm, vanish, explode)
    fold = fold and bool(result.graph.meta.get("loops"))
    # TB for a graph much deeper than wide; a folded loop's body is short, so LR
    rankdir = rankdir or ("LR" if fold else auto_rankdir(result.graph))
    opts = DotOptions(rankdir=rankdir, grad=grad, vanish=vanish, explode=explode, fold=fold)
    return Drawing(_Expression(result, name, opts, warnings, inputs), rankdir, timeout)


def _trace_options(inputs_given: bool, input_size, checked: dict, meta: bool, input_file: str | None = None):
    """The one builder of the recorder's TraceOptions, for draw() and its siblings and the command line
    (cgviz.cli.trace_options): `checked` holds the checked option values, by draw()'s keywords."""
    from .pytorch.inputs import InputSpec, parse_shape
    from .pytorch.trace import TraceOptions
    shapes: tuple = ()
    if isinstance(input_size, str):
        input_size = [input_size]       # one input's "1,64:long", as --input-shape takes it
    if input_size is not None:
        sizes = (input_size if input_size and isinstance(input_size[0], (list, tuple, str, InputSpec))
                 else [input_size])
        try:
            shapes = tuple(s if isinstance(s, InputSpec) else parse_shape(s) if isinstance(s, str)
                           else InputSpec(tuple(int(d) for d in s), None) for s in sizes)
        except (TypeError, ValueError) as e:
            raise CgvizError(f"draw(): input_size={input_size!r}: {e}") from None
        if inputs_given:
            raise CgvizError("draw(): give example inputs or input_size, not both")
    targets = checked.get("targets")
    targets_file = os.fspath(targets) if isinstance(targets, (str, os.PathLike)) else None
    return TraceOptions(input_shapes=shapes, input_file=input_file, dtype=checked["dtype"], loss=checked["loss"],
                        seed=checked["seed"] or 0, view=checked.get("view") or "ops", mode=checked["mode"],
                        meta=meta, max_elements=checked["max_elements"],
                        targets=None if targets_file else targets, targets_file=targets_file,
                        dims=checked.get("dims"))


def _model_drawing(loaded, opts, checked: dict, fold: bool, grad: bool, rankdir: str, source: str,
                   inputs: tuple[str, ...] = ()) -> Drawing:
    from .pytorch.pipeline import picture_model
    d = picture_model(loaded, opts, depth=checked["depth"], fold=fold, grad=grad, vanish=checked["vanish"],
                      explode=checked["explode"], simplify=checked.get("simplify", True),
                      focus=checked.get("focus"))
    return Drawing(_Model(d, source, inputs, loaded), rankdir, checked["timeout"])


def _draw_model_file(spec: str, inputs, input_size, checked, *, fold, grad, trust, weights, meta, input_file,
                     rankdir) -> Drawing:
    from .pytorch.load import check_model_files
    check_model_files(spec, input_file, weights)      # a missing file is said before torch is imported
    _check_targets_file(checked.get("targets"))
    from .needs import require_torch
    require_torch(f"drawing the model {spec}")
    from .pytorch.load import load_model, split_spec
    opts = _trace_options(bool(inputs), input_size, checked, meta, input_file)
    loaded = load_model(spec, trust=trust, weights=weights, meta=meta, download=checked.get("download") or None)
    if inputs:
        loaded.example_args, loaded.example_kwargs = tuple(inputs), {}
    path = split_spec(spec)[0]
    from .paths import shown
    files = () if is_hub(spec) else (str(path),)       # an hf: model reads no file of the user's
    return _model_drawing(loaded, opts, checked, fold, grad, rankdir, shown(path.name), files)


def _draw_module(source, inputs, input_size, checked, *, fold, grad, meta, rankdir, forward_kwargs=None) -> Drawing:
    import torch

    from .pytorch.load import Loaded
    from .pytorch.run import on_meta
    name = type(source).__name__ if isinstance(source, torch.nn.Module) else getattr(source, "__name__", "function")
    if not isinstance(source, torch.nn.Module):
        source = _function_module()(source)
    # a module built under `with torch.device("meta"):` has shapes only: it is drawn as meta=True draws
    meta = meta or on_meta(source)
    if forward_kwargs is not None and not isinstance(forward_kwargs, dict):
        raise CgvizError(f"draw(): forward_kwargs must be a dict of forward's keyword arguments, not a "
                         f"{type(forward_kwargs).__name__}")
    if not inputs and not forward_kwargs and input_size is None:
        raise CgvizError(f"draw({name}) needs example inputs: draw(model, x) with the tensors forward takes, "
                         "forward_kwargs={'input_ids': ids} for keyword inputs, "
                         "or draw(model, input_size=(1, 3, 32, 32))")
    given = bool(inputs or forward_kwargs)
    opts = _trace_options(given, input_size, checked, meta)
    loaded = Loaded("memory", source, name, tuple(inputs) if given else None, dict(forward_kwargs or {}))
    return _model_drawing(loaded, opts, checked, fold, grad, rankdir, name)


@functools.lru_cache(maxsize=None)
def _function_module():
    import torch

    class Function(torch.nn.Module):
        """A plain function as a module, so that it runs through the same recorder. The modules it
        uses by name (a global, a closure's variable, a bound method's module) are its submodules:
        their parameters are drawn by name, and run on stand-ins like any module's."""

        def __init__(self, fn):
            super().__init__()
            self.fn = fn
            for name, module in _modules_used(fn, torch.nn.Module):
                if name not in self._modules and not hasattr(self, name):
                    self.add_module(name, module)

        def forward(self, *args, **kwargs):
            return self.fn(*args, **kwargs)
    return Function


def _modules_used(fn, module_type) -> list:
    """(name, module) for the modules a function names directly: its bound `self`, its closure's
    variables, the globals its code reads, its defaults, and those of a functools.partial."""
    out: dict[str, Any] = {}
    if isinstance(fn, functools.partial):
        for i, v in enumerate(fn.args):
            if isinstance(v, module_type):
                out.setdefault(f"arg{i}", v)
        for k, v in fn.keywords.items():
            if isinstance(v, module_type):
                out.setdefault(k, v)
        fn = fn.func
    owner = getattr(fn, "__self__", None)
    if isinstance(owner, module_type):
        out.setdefault("self", owner)
    func = getattr(fn, "__func__", fn)
    code = getattr(func, "__code__", None)
    if code is None:
        return list(out.items())
    for name, cell in zip(code.co_freevars, getattr(func, "__closure__", None) or ()):
        try:
            value = cell.cell_contents
        except ValueError:          # a variable not yet bound
            continue
        if isinstance(value, module_type):
            out.setdefault(name, value)
    names = getattr(func, "__globals__", {})
    for name in code.co_names:
        if isinstance(names.get(name), module_type):
            out.setdefault(name, names[name])
    params = code.co_varnames[:code.co_argcount]
    for name, value in zip(params[len(params) - len(func.__defaults__ or ()):], func.__defaults__ or ()):
        if isinstance(value, module_type):
            out.setdefault(name, value)
    return list(out.items())


# ---- the other commands, each one call ----------------------------------------------------------------
@given_back()
def explain(source: Any, *, format: str = "text", sets: dict[str, Any] | None = None, kind: str | None = None,
            max_elements: int | None = None) -> Explanation:
    """Backpropagation spelled out for an expression program (text or file): every node's local
    gradient as a formula and a number, then each param's and input's chain of local gradients
    multiplied out. format: "text" (aligned columns), "md" (Markdown tables) or "json"."""
    from .lang.explain import WRITERS
    from .results import Explanation
    if format not in WRITERS:
        raise OptionError(f"explain(): format={format!r}: must be one of {', '.join(map(repr, WRITERS))}")
    checked = _checked("explain", max_elements=max_elements)
    result, name, _ = _evaluate(source, _expression(source, kind, "explain"), sets, checked["max_elements"])
    return Explanation(WRITERS[format](result.graph, result.run), name, [str(w) for w in result.run.warnings])


@given_back()
def train(source: Any, *, lr: float, steps: int = 100, clip_norm: float | None = None,
          sets: dict[str, Any] | None = None, format: str = "png", rankdir: str | None = None,
          timeout: float | None = 60.0, kind: str | None = None, on_step=None, every: int = 10):
    """Gradient descent on an expression program's params: the losses, a loss-curve PNG and the graph
    after the last step in `format` (html: the page with a slider over the steps; cgw: the training
    record cgviz.watch writes, one step in `every`). See cgviz.training."""
    from .training import train as _train
    checked = _checked("train", lr=lr, steps=steps, clip_norm=clip_norm, rankdir=rankdir, timeout=timeout)
    if checked["lr"] is None:
        raise OptionError("train(): lr= is required (the learning rate)")
    from .view.formats import names
    FORMATS = names("expression")
    if format not in FORMATS + ("cgw",):
        raise CgvizError(f"train(): format={format!r}: must be one of {', '.join(map(repr, FORMATS + ('cgw',)))}")
    if not isinstance(every, int) or isinstance(every, bool) or every < 1:
        raise OptionError(f"train(): every={every!r}: a whole number ≥ 1")
    result, name, _ = _evaluate(source, _expression(source, kind, "train"), sets)
    return _train((result, name), checked, format, on_step, every=every)


@given_back()
def gradient_health(source: Any, *inputs: Any, kind: str | None = None, vanish: float | None = None,
                    explode: float | None = None, sets: dict[str, Any] | None = None, input_size: Any = None,
                    input_file: str | None = None, dtype: str | None = None, loss: Any = None,
                    seed: int = 0, mode: str | None = None, trust: bool = False, weights: str | None = None,
                    max_elements: int | None = None, targets: Any = None) -> GradientHealth:
    """Gradient health per layer after one backward pass: ‖w‖, ‖g‖, ‖g‖/‖w‖ and a vanishing or
    exploding flag for each param and input of an expression program, or each parameter tensor of a
    model (a file, or an nn.Module with its inputs, as draw() takes them)."""
    from . import grads as G
    from .health import EXPLODE, VANISH, flag_warnings
    from .results import GradientHealth
    checked = _checked("gradient_health", vanish=vanish, explode=explode)
    vanish = VANISH if checked["vanish"] is None else checked["vanish"]
    explode = EXPLODE if checked["explode"] is None else checked["explode"]
    check_thresholds(vanish, explode)
    if _is_model(source, kind):
        if sets:
            raise OptionError(f"{spell('set')} changes declarations of an expression file; {source} is a model")
        # the model runs as draw() runs it (load, trace); grad=False only keeps the picture's own
        # flags out, since each parameter is judged below from its live tensor, and depth=1 is the
        # cheapest picture, which nothing here draws
        d = draw(source, *inputs, kind="model" if _is_text_or_path(source) else None,
                 input_size=input_size or None, input_file=input_file, dtype=dtype, loss=loss, seed=seed,
                 mode=mode, trust=trust, weights=weights, max_elements=max_elements, grad=False, depth=1,
                 targets=targets)
        run, loaded = d._b.d.run, d._b.loaded
        if run.loss is None:
            raise CgvizError(f"{Path(loaded.path).name} is on the meta device (shapes only, no values): gradient "
                             "health needs a real forward and backward pass; build the model on the CPU, or "
                             "load its weights, and ask again")
        notes, warnings = d.notes, d.warnings
        from .pytorch.loss import FALLBACK, fallback_caveat, title_text
        if run.meta.get("loss") == FALLBACK:
            notes.append(fallback_caveat() + "; the flags say little until then")
        rows = G.model_rows(loaded.model, run, vanish, explode)
        from .paths import shown
        name = shown(Path(loaded.path).name)
        if not rows:
            raise CgvizError(f"{name} has no float parameters: there is no gradient per layer to show")
        title = f"{name}: ‖∂L/∂θ‖ per parameter tensor, {title_text(run.meta.get('loss'), run.loss)}"
        what = "model"
    else:
        _refuse_model_options(source, input_shape=input_size, input=input_file, dtype=dtype, loss=loss,
                              trust=trust, weights=weights, mode=mode, targets=targets is not None)
        from .view.expression_scene import headline
        result, name, _ = _evaluate(source, kind, sets, _checked("gradient_health", max_elements=max_elements)
                                    ["max_elements"])
        notes, warnings = [], [str(w) for w in result.run.warnings]
        rows = G.expression_rows(result.graph, result.run, vanish, explode)
        if not any(r.grad_norm is not None for r in rows):
            raise CgvizError(f"{name}: no param or input gets a gradient, so there is nothing to show "
                             "(declare weights with `param`, data with `input`)")
        title = f"{Path(name).name}: ‖∂L/∂·‖ per param and input, {headline(result.graph, result.run)}"
        what = "expression"
    warnings += flag_warnings([r.verdict for r in rows if r.verdict], vanish, explode)
    return GradientHealth(rows, vanish, explode, name, what, title, warnings, notes)


@given_back()
def check_gradients(source: Any, *, kind: str | None = None, rtol: float | None = None, atol: float | None = None,
                    fd_rtol: float | None = None, fd_atol: float | None = None, fd_samples: int | None = None,
                    sets: dict[str, Any] | None = None, input_size: Any = None, input_file: str | None = None,
                    dtype: str | None = None, loss: Any = None, seed: int = 0, mode: str | None = None,
                    trust: bool = False, weights: str | None = None,
                    max_elements: int | None = None, targets: Any = None) -> GradientCheck:
    """The gradients cgviz shows for an expression program or a model file, against PyTorch autograd
    and central finite differences (`cgviz check`; the tolerances' defaults are its). For a model, the
    gradients are of the loss draw() would draw: loss= and targets= as draw() takes them."""
    from .check import expression as gradcheck
    from .results import GradientCheck
    checked = _checked("check_gradients", rtol=rtol, atol=atol, fd_rtol=fd_rtol, fd_atol=fd_atol,
                       fd_samples=fd_samples, dtype=dtype, loss=loss, seed=seed, mode=mode,
                       max_elements=max_elements)
    checked["targets"] = targets
    tol = {k: getattr(gradcheck, k.upper()) if checked[k] is None else checked[k]
           for k in ("rtol", "atol", "fd_rtol", "fd_atol")}
    if not _is_text_or_path(source):
        raise CgvizError(f"check_gradients() takes program text or a file path, not a {type(source).__name__}")
    if _is_model(source, kind):
        if sets:
            raise OptionError(f"{spell('set')} changes declarations of an expression file; {source} is a model")
        spec = os.fspath(source)
        from .pytorch.load import check_model_files
        check_model_files(spec, input_file, weights)      # before torch is imported
        _check_targets_file(targets)
        from .check.model import check_model
        opts = _trace_options(False, input_size or None, checked, False, input_file)
        return GradientCheck(check_model(spec, opts, trust=trust, weights=weights, fd_samples=fd_samples or 16,
                                         **tol), [])
    _refuse_model_options(source, input_shape=input_size, input=input_file, dtype=dtype, loss=loss, trust=trust,
                          weights=weights, mode=mode, targets=targets is not None)
    result, name, _ = _evaluate(source, kind, sets, checked["max_elements"])
    report = gradcheck.check_expression(result, fd_samples=fd_samples or gradcheck.FD_SAMPLES, source=name, **tol)
    return GradientCheck(report, [str(w) for w in result.run.warnings])


def _is_model(source, kind: str | None) -> bool:
    """A model file, or a module or function in memory; else an expression program."""
    return not _is_text_or_path(source) or source_kind(os.fspath(source), kind) == "model"


def _expression(source, kind: str | None, caller: str) -> str:
    """The kind of an expression source; a model is refused, since `caller` reads programs only."""
    if _is_model(source, kind):
        raise CgvizError(f"{caller}() reads expression programs; {source} is a model (draw() draws it)")
    return source_kind(os.fspath(source), kind)


def check_step(lr: float | None, clip_norm: float | None, grad: bool) -> None:
    """The learning-rate step's options fit together (the command line and draw() check them)."""
    name = flag if on_command_line() else keyword
    if lr is not None and not grad:
        fix = f"leave out {flag('no_grad')}" if on_command_line() else "leave grad=True"
        raise OptionError(f"{name('lr')} needs gradients; {fix}")
    if clip_norm is not None and lr is None:
        raise OptionError(f"{name('clip_norm')} clips the step {name('lr')} takes; give {name('lr')} too")


def check_thresholds(vanish: float, explode: float) -> None:
    """The gradient-health thresholds in order (the command line and every call here check them)."""
    if not vanish < explode:
        raise OptionError(f"{spell('vanish', f'{vanish:g}')} must be smaller than {spell('explode', f'{explode:g}')}")


def _refuse_model_options(source, **given) -> None:
    """Model options given with an expression program: a usage mistake, said by name, not ignored."""
    named = [spell(key) for key, value in given.items() if value]
    if named:
        raise OptionError(f"{', '.join(named)} appl{'ies' if len(named) == 1 else 'y'} to a model; "
                          f"{source} is an expression file")


def op_table(format: str = "text") -> str:
    """The expression language's functions and operators with their formulas and local gradients,
    then its initializers: "text" (aligned) or "md" (docs/dsl.md's Markdown tables)."""
    from .lang.inits import INITS
    from .lang.ops import OPS
    rows = [(d.usage, d.formula, ", ".join(d.local)) for d in OPS.values() if not d.internal]
    if format == "md":
        out = ["| write | computes | local gradient(s) |", "|---|---|---|"]
        out += ["| `" + how + "` | " + formula.replace("|", "\\|") + " | " + local.replace("|", "\\|") + " |"
                for how, formula, local in rows]
        out += ["", "| initializer | gives |", "|---|---|"] + [f"| `{d.signature}` | {d.doc} |" for d in INITS.values()]
    else:
        width = max(len(r[0]) for r in rows)
        out = [f"{how:<{width}}  {formula}    ∂: {local}" for how, formula, local in rows]
        out += ["", "initializers (for input/param/const):"] + [f"  {d.signature}: {d.doc}" for d in INITS.values()]
    return "\n".join(out) + "\n"


def files_read(source: str, input_file: str | None = None, weights: str | None = None,
               targets: str | None = None) -> list:
    """The files a call reads (cgviz.paths.Arg, for checking outputs against them): the source file
    (`net.py` of `net.py:build`; none for "-"), the inputs file, the weights and the targets."""
    from .paths import Arg, split_spec
    files = [] if source == "-" or is_hub(source) else [Arg("the input", split_spec(source)[0])]
    return files + [Arg(spell("input"), input_file), Arg(spell("weights"), weights), Arg(spell("targets"), targets)]


def _check_targets_file(targets) -> None:
    """A targets file is a regular file, said before torch is imported (as check_model_files says it of
    the model, --input and --weights)."""
    if isinstance(targets, (str, os.PathLike)):
        from .paths import check_input
        from .pytorch.loss import TARGETS_ACCEPTS
        check_input(os.fspath(targets), spell("targets"), kind="targets", accepts=TARGETS_ACCEPTS)


# ---- make_dot --------------------------------------------------------------------------------------
@given_back()
def make_dot(var, params: dict | None = None, show_attrs: bool = False, show_saved: bool = False,
             max_attr_chars: int = 50, *, rankdir: str = "TB", timeout: float | None = 60.0) -> Drawing:
    """torchviz.make_dot's graph of grad_fns, with values and gradients on it: swap the import.

    While the graph is alive (before backward, or after backward(retain_graph=True)), cgviz takes the
    gradients itself with torch.autograd.grad, which leaves every .grad as it was. After a plain
    backward() the graph's buffers are freed: the leaves then show their .grad and the inner edges
    show no gradient (the drawing's notes say so). show_attrs, show_saved and max_attr_chars are
    accepted for compatibility; cgviz shows shapes and values instead."""
    from .needs import require_torch
    torch = require_torch("make_dot")
    from .pytorch.autograd import AutogradRecorder
    from .pytorch.pipeline import picture_model  # noqa: F401  (the same picture code as every model)
    if not isinstance(var, torch.Tensor):
        if isinstance(var, (tuple, list)) and var and all(isinstance(v, torch.Tensor) for v in var):
            var = sum(v.sum() for v in var if v.requires_grad)
        else:
            raise CgvizError(f"make_dot takes a tensor (or a tuple of tensors), not a {type(var).__name__}")
    if var.grad_fn is None and not var.requires_grad:
        raise CgvizError("make_dot: this tensor has no grad_fn and does not require grad, so there is no "
                         "graph behind it; compute it from tensors with requires_grad=True")
    named = dict(params or {})
    rec = AutogradRecorder(var, named, {})
    notes = []
    leaves = list(rec.leaf_tensors())
    grads = None
    root = var if var.numel() == 1 else var.sum()
    if var.grad_fn is not None and leaves:
        try:
            grads = torch.autograd.grad(root if var.numel() == 1 else var, leaves, retain_graph=True,
                                        allow_unused=True, grad_outputs=None if var.numel() == 1 else torch.ones_like(var))
        except RuntimeError as e:
            rec.remove_hooks()      # the hooks sit on the user's graph: none may stay behind
            if "second time" not in str(e) and "freed" not in str(e):
                raise CgvizError(f"make_dot: autograd could not take the gradients: {str(e).splitlines()[0]}") from None
            notes.append("the graph's buffers were freed by backward(), so only the leaves' .grad is shown; "
                         "call make_dot before backward(), or backward(retain_graph=True), to see every "
                         "gradient")
            # the failed pass may have reached a few nodes before the freed ones: start again, clean
            rec = AutogradRecorder(var, named, {})
        except BaseException:
            rec.remove_hooks()
            raise
    if var.numel() != 1:
        notes.append(f"the tensor has {var.numel()} elements: gradients are of its sum, whose scale means "
                     "nothing; draw the loss tensor you call backward() on to see your training's gradients")
    graph, run = rec.result(None if grads is None else dict(zip(map(id, leaves), grads)))
    if grads is None and all(g is None for g in run.param_grads.values()) and not notes:
        notes.append("no gradients yet: call backward() first, or draw before backward() and cgviz takes them")
    run.loss = float(root.detach()) if root.numel() == 1 else None
    run.meta.update({"view": "autograd", "kind": "tensor", "mode": "as run", "inputs": "(given)",
                     "params": sum(int(t.numel()) for t in named.values()), "loss": "output"})
    graph.source = "make_dot"
    from .view.structure import build_picture
    from .pytorch.pipeline import ModelDrawing, nonfinite_warnings
    nonfinite_warnings(graph, run)      # a NaN loss or gradient named at the grad_fn where it is born
    pic = build_picture(graph, run, None, fold=False)
    title = f"make_dot  —  the graph behind a tensor of shape {list(var.shape)}"
    if grads is None:
        title += "  —  gradients: the leaves' .grad only" if any(g is not None for g in run.param_grads.values()) \
            else "  —  no gradients yet"
    d = ModelDrawing(graph, run, pic, title, extra={"view": "autograd", "depth": None, "folded": False}, flags=False,
                     vanish=None, explode=None, grad=True, depth=None, auto=False, fold=False, notes=notes)
    return Drawing(_Model(d, "make_dot", ()), rankdir, timeout)


def backward_slides(source: Any, *, format: str = "pdf", sets: dict[str, Any] | None = None,
                    rankdir: str | None = None, dpi: float | None = None, timeout: float | None = 60.0,
                    kind: str | None = None):
    """An expression's backward pass as slides, one step per PDF page or GIF frame (format "pdf" or
    "gif"), in the order the HTML page's stepper walks it; each highlights its edge and writes its
    chain-rule line (`∂L/∂w = ∂L/∂z · ∂z/∂w = 20 · 200 = 4000`). Gives a cgviz.view.slides.Slides:
    `.data` (the file's bytes) and `.lines` (the steps' lines)."""
    from .view import slides
    if format not in ("pdf", "gif"):
        raise CgvizError(f"slides are a pdf or a gif, not {format!r}")
    d = draw(source, kind=_expression(source, kind, "backward_slides"), sets=sets, rankdir=rankdir,
             timeout=timeout)
    b = d._b
    dots = slides.frames(b.result.graph, b.result.run, b.opts)
    if not dots:
        raise CgvizError("no backward step to show: no gradient reaches a named value")
    data = slides.pdf(dots, timeout) if format == "pdf" else slides.gif(dots, dpi, timeout)
    return slides.Slides(data, [s.line for s in slides.steps(b.result.graph, b.result.run)])
