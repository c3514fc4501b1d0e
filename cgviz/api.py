"""The Python front door: `draw()` and `make_dot()` give a `Drawing` that saves, renders and shows itself in Jupyter.

Whatever the source (expression text or a .cg file, a model file, an nn.Module or a function in
memory, a tensor's grad_fn graph), the result is one `Drawing` with the same methods. The expression
path never imports torch.
"""

from __future__ import annotations

import contextlib
import functools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import CgvizError

MODEL_SUFFIXES = (".py", ".pt2", ".pt", ".pth", ".ts", ".jit", ".pkl", ".zip", ".bin")
_SUFFIX_FORMATS = {"png": "png", "svg": "svg", "pdf": "pdf", "dot": "dot", "gv": "dot", "json": "json",
                   "html": "html", "htm": "html"}


@dataclass(frozen=True)
class NodeView:
    """One node of a drawing: what it is, its value and its gradient (∂loss/∂node).

    For an expression program `value` and `grad` are NumPy arrays; for a model they are tensor
    summaries (shape, dtype, mean, std, min, max, norm), since a model's tensors can be large."""

    id: str
    kind: str
    op: str | None
    value: Any
    grad: Any

    @property
    def shape(self) -> tuple[int, ...] | None:
        v = self.value
        s = getattr(v, "shape", None)
        return tuple(s) if s is not None else None


class Drawing:
    """A computation graph with its values and gradients, and every way to show it.

    `d.svg()`, `d.png()`, `d.pdf()` lay it out with Graphviz; `d.dot`, `d.json()`, `d.to_dict()` need
    no Graphviz; `d.save("graph.svg")` writes atomically with the format from the suffix; `d.page()`
    is the interactive HTML page (shown inline in Jupyter); `d["w"].grad` reads one node. A notebook
    cell ending in a Drawing shows the SVG."""

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

    def __getitem__(self, name: str) -> NodeView:
        graph = self._b.graph
        node = graph[name] if name in graph else next((n for n in graph if n.name == name), None)
        if node is None:
            import difflib
            near = difflib.get_close_matches(name, [n.id for n in graph], n=3)
            hint = f"; did you mean {', '.join(map(repr, near))}?" if near else ""
            raise KeyError(f"no node {name!r} in this drawing{hint}")
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
        """The cgviz-graph JSON document (documented in the README) as a dict."""
        return self._b.to_dict()

    def json(self) -> str:
        return self.output("json").decode("utf-8")

    def svg(self) -> str:
        if self._svg is None:
            self._svg = self.output("svg")
        return self._svg.decode("utf-8")

    def png(self) -> bytes:
        return self.output("png")

    def pdf(self) -> bytes:
        return self.output("pdf")

    def html(self) -> str:
        """The interactive page: one self-contained HTML file."""
        return self.output("html").decode("utf-8")

    def page(self) -> "Page":
        """The interactive page, shown inline when it is the last thing in a notebook cell."""
        return Page(self.html())

    def output(self, fmt: str) -> bytes:
        """The bytes of one format: png, svg, pdf, dot, json or html."""
        if fmt not in set(_SUFFIX_FORMATS.values()):
            raise CgvizError(f"unknown format {fmt!r}; cgviz writes {', '.join(sorted(set(_SUFFIX_FORMATS.values())))}")
        return self._b.output(fmt, self.rankdir, self.timeout)

    def save(self, path: str | os.PathLike, format: str | None = None) -> Path:
        """Write to `path` (format from its suffix unless `format` is given), atomically: a failure
        leaves no partial file and an existing file untouched. Returns the path."""
        from .view.graphviz import write_atomic
        p = Path(path)
        fmt = format or _SUFFIX_FORMATS.get(p.suffix.lower().lstrip("."))
        if fmt is None:
            raise CgvizError(f"cannot tell the format from {str(path)!r}: use a suffix such as .svg, .png, .pdf, "
                             ".dot, .json or .html, or pass format=")
        for src in self._b.inputs:
            with contextlib.suppress(OSError):
                if p.exists() and p.samefile(src):
                    raise CgvizError(f"{path} is the file this drawing was read from; cgviz never overwrites "
                                     "its input")
        write_atomic(p, self.output(fmt))
        return p

    # ---- notebooks ---------------------------------------------------------------------------------
    def _repr_mimebundle_(self, include=None, exclude=None):
        # the SVG when Graphviz is there; otherwise the DOT as text, so a cell never raises for display
        try:
            return {"image/svg+xml": self.svg(), "text/plain": repr(self)}
        except CgvizError as e:
            return {"text/plain": f"{self!r}\n(no picture: {e})"}

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

    def value(self, node_id):
        return self.result.run.values.get(node_id)

    def grad(self, node_id):
        return self.result.run.grads.get(node_id)

    def dot(self, rankdir: str) -> str:
        import dataclasses

        from .view.dot import to_dot
        return to_dot(self.result.graph, self.result.run, dataclasses.replace(self.opts, rankdir=rankdir))

    def to_dict(self) -> dict:
        from .view.export import to_dict
        return to_dict(self.result.graph, self.result.run, self.opts.vanish, self.opts.explode)

    def output(self, fmt: str, rankdir: str, timeout: float | None) -> bytes:
        import dataclasses

        from .lang.pipeline import output_bytes
        return output_bytes(self.result, fmt, dataclasses.replace(self.opts, rankdir=rankdir), timeout=timeout)


class _Model:
    """A model's run: tensor summaries per node and edge."""

    def __init__(self, drawing, source: str, inputs: tuple[str, ...]):
        self.d, self.source, self.inputs = drawing, source, inputs
        self.graph = drawing.graph
        self.notes = drawing.notes

    @property
    def warnings(self):
        return self.d.warnings

    @property
    def loss(self):
        return self.d.run.loss

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

    def to_dict(self) -> dict:
        return self.d.to_dict()

    def output(self, fmt: str, rankdir: str, timeout: float | None) -> bytes:
        return self.d.output(fmt, rankdir, timeout)


# ---- draw ------------------------------------------------------------------------------------------
def draw(source: Any, *inputs: Any, input_size: Any = None, loss: str | None = None, depth: int | None = None,
         fold: bool = True, view: str = "ops", dtype: str | None = None, seed: int = 0, mode: str | None = None,
         grad: bool = True, lr: float | None = None, clip_norm: float | None = None, rankdir: str | None = None,
         sets: dict[str, Any] | None = None, trust: bool = False, weights: str | None = None, meta: bool = False,
         vanish: float | None = None, explode: float | None = None, max_elements: int | None = None,
         timeout: float | None = 60.0, input_file: str | None = None, simplify: bool = True) -> Drawing:
    """Draw a computation graph with its forward values and its gradients.

    source is one of:
      - expression-language text (`"param w = 0.5\\n..."`) or a path to a .cg file;
      - a path to a model file, as `cgviz torch` takes it (`net.py`, `net.py:build`, `model.pt2`, …);
      - an nn.Module in memory, with example inputs after it (`draw(model, x)`) or `input_size=(1, 3, 32, 32)`;
      - a function, with the tensors to call it on (`draw(f, x, y)`);
      - a tensor with a grad_fn: the graph that produced it, as torchviz's make_dot draws it.

    The keyword arguments are the command line's options (loss, depth, fold, view, dtype, seed, mode
    "train"/"eval", lr, rankdir, …). An nn.Module in memory is left as it was: its train/eval mode
    and its parameters' .grad are restored after the run. rankdir "LR" or "TB" forces the layout
    direction; by default an expression is drawn top to bottom when it is much deeper than wide,
    else left to right, and a model top to bottom. simplify=False draws a model's pass-through
    ops too (eval-mode dropout, a .to() or view that changes nothing; the JSON always has them).
    """
    from .options import OPTIONS
    checked = {}
    for key, value in (("loss", loss), ("depth", depth), ("view", view), ("dtype", dtype), ("seed", seed),
                       ("mode", mode), ("lr", lr), ("clip_norm", clip_norm), ("rankdir", rankdir),
                       ("vanish", vanish), ("explode", explode), ("max_elements", max_elements),
                       ("timeout", timeout)):
        if value is None:
            checked[key] = None
            continue
        try:
            checked[key] = OPTIONS[key].convert(value)
        except Exception as e:          # click.BadParameter: say it in the caller's words
            raise CgvizError(f"draw(): {key}={value!r}: {getattr(e, 'message', e)}") from None
    rankdir = checked["rankdir"]
    checked["simplify"] = simplify
    if _is_text_or_path(source):
        text_or_path = os.fspath(source)
        if _is_expression(text_or_path):
            if inputs or input_size is not None:
                raise CgvizError("draw(): an expression program declares its own inputs; pass no tensors or "
                                 "input_size (use sets={'x': ...} to change a declaration)")
            return _draw_expression(text_or_path, sets, grad, checked, timeout=checked["timeout"],
                                    rankdir=rankdir)
        return _draw_model_file(text_or_path, inputs, input_size, checked, fold=fold, grad=grad, trust=trust,
                                weights=weights, meta=meta, input_file=input_file, rankdir=rankdir or "TB")
    from .needs import require_torch
    torch = require_torch("draw() of a model, function or tensor")
    if isinstance(source, torch.Tensor):
        if inputs or input_size is not None:
            raise CgvizError("draw(tensor) draws the graph that produced the tensor; it takes no inputs")
        return make_dot(source, rankdir=rankdir or "TB", timeout=checked["timeout"])
    if isinstance(source, torch.nn.Module) or callable(source):
        return _draw_module(source, inputs, input_size, checked, fold=fold, grad=grad, meta=meta,
                            rankdir=rankdir or "TB")
    raise CgvizError(f"draw() takes expression text, a file path, an nn.Module, a function or a tensor, "
                     f"not a {type(source).__name__}")


def _is_text_or_path(source) -> bool:
    return isinstance(source, (str, os.PathLike))


def _is_expression(text_or_path: str) -> bool:
    """Program text (it has a newline or an `=`), a .cg file, or a file whose content is a program."""
    if "\n" in text_or_path or ("=" in text_or_path and not Path(text_or_path).exists()):
        return True
    return not is_model(text_or_path)


def is_model(target: str) -> bool:
    """Whether a path names a model rather than an expression file: by suffix first (.cg is an
    expression file, .py and torch's archives are models), else by content (a zip or pickle is a
    model; text is an expression file unless the expression parser rejects it and Python accepts it)."""
    from .pytorch.load import split_spec, sniff
    if target == "-":
        return False
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


def _draw_expression(text_or_path: str, sets, grad: bool, checked: dict, timeout, rankdir: str | None) -> Drawing:
    from .view.dot import DotOptions, auto_rankdir
    from .health import EXPLODE, VANISH
    from .lang.pipeline import annotate, evaluate, read_source
    if "\n" in text_or_path or "=" in text_or_path and not Path(text_or_path).exists():
        text, name, inputs = text_or_path, "<text>", ()
    else:
        text, name = read_source(text_or_path)
        inputs = (text_or_path,)
    overrides = {k: str(v) for k, v in (sets or {}).items()}
    lr, clip_norm = checked["lr"], checked["clip_norm"]
    if lr is not None and not grad:
        raise CgvizError("draw(): lr needs gradients; leave grad=True")
    if clip_norm is not None and lr is None:
        raise CgvizError("draw(): clip_norm clips the step lr takes; give lr too")
    vanish = VANISH if checked["vanish"] is None else checked["vanish"]
    explode = EXPLODE if checked["explode"] is None else checked["explode"]
    if not vanish < explode:
        raise CgvizError(f"draw(): vanish ({vanish:g}) must be smaller than explode ({explode:g})")
    result = evaluate(text, name, overrides, grad=grad, max_elements=checked["max_elements"])
    warnings = annotate(result, grad, lr, clip_norm, vanish, explode)
    rankdir = rankdir or auto_rankdir(result.graph)     # TB for a graph much deeper than wide
    opts = DotOptions(rankdir=rankdir, grad=grad, vanish=vanish, explode=explode)
    return Drawing(_Expression(result, name, opts, warnings, inputs), rankdir, timeout)


def _trace_options(inputs_given: bool, input_size, checked: dict, meta: bool, input_file: str | None = None):
    from .pytorch.inputs import InputSpec, parse_shape
    from .pytorch.trace import TraceOptions
    shapes: tuple = ()
    if input_size is not None:
        sizes = input_size if input_size and isinstance(input_size[0], (list, tuple, str)) else [input_size]
        try:
            shapes = tuple(parse_shape(s) if isinstance(s, str) else InputSpec(tuple(int(d) for d in s), None)
                           for s in sizes)
        except (TypeError, ValueError) as e:
            raise CgvizError(f"draw(): input_size={input_size!r}: {e}") from None
        if inputs_given:
            raise CgvizError("draw(): give example inputs or input_size, not both")
    return TraceOptions(input_shapes=shapes, input_file=input_file, dtype=checked["dtype"], loss=checked["loss"],
                        seed=checked["seed"] or 0, view=checked["view"] or "ops", mode=checked["mode"], meta=meta,
                        max_elements=checked["max_elements"])


def _model_drawing(loaded, opts, checked: dict, fold: bool, grad: bool, rankdir: str, source: str,
                   inputs: tuple[str, ...] = ()) -> Drawing:
    from .pytorch.pipeline import picture_model
    d = picture_model(loaded, opts, depth=checked["depth"], fold=fold, grad=grad, vanish=checked["vanish"],
                      explode=checked["explode"], simplify=checked.get("simplify", True))
    return Drawing(_Model(d, source, inputs), rankdir, checked["timeout"])


def _draw_model_file(spec: str, inputs, input_size, checked, *, fold, grad, trust, weights, meta, input_file,
                     rankdir) -> Drawing:
    from .needs import require_torch
    require_torch(f"drawing the model {spec}")
    from .pytorch.load import load_model, split_spec
    opts = _trace_options(bool(inputs), input_size, checked, meta, input_file)
    loaded = load_model(spec, trust=trust, weights=weights, meta=meta)
    if inputs:
        loaded.example_args, loaded.example_kwargs = tuple(inputs), {}
    path = split_spec(spec)[0]
    return _model_drawing(loaded, opts, checked, fold, grad, rankdir, path.name, (str(path),))


def _draw_module(source, inputs, input_size, checked, *, fold, grad, meta, rankdir) -> Drawing:
    import torch

    from .pytorch.load import Loaded
    if meta:
        raise CgvizError("draw(): meta=True traces a model file built on the meta device; for a module in "
                         "memory, build it under `with torch.device('meta'):` and draw it with input_size=")
    name = type(source).__name__ if isinstance(source, torch.nn.Module) else getattr(source, "__name__", "function")
    if not isinstance(source, torch.nn.Module):
        source = _function_module()(source)
    if not inputs and input_size is None:
        raise CgvizError(f"draw({name}) needs example inputs: draw(model, x) with the tensors forward takes, "
                         "or draw(model, input_size=(1, 3, 32, 32))")
    opts = _trace_options(bool(inputs), input_size, checked, meta)
    loaded = Loaded("memory", source, name, tuple(inputs) if inputs else None, {})
    with _borrowed(source):
        return _model_drawing(loaded, opts, checked, fold, grad, rankdir, name)


@functools.lru_cache(maxsize=None)
def _function_module():
    import torch

    class Function(torch.nn.Module):
        """A plain function as a module, so that it runs through the same recorder."""

        def __init__(self, fn):
            super().__init__()
            self.fn = fn

        def forward(self, *args, **kwargs):
            return self.fn(*args, **kwargs)
    return Function


@contextlib.contextmanager
def _borrowed(module):
    """Run a user's module and give it back as it was: train/eval flags and parameters' .grad."""
    modes = [(m, m.training) for m in module.modules()]
    grads = [(p, p.grad) for p in module.parameters()]
    for p, _ in grads:
        p.grad = None
    try:
        yield
    finally:
        for m, training in modes:
            m.training = training
        for p, g in grads:
            p.grad = g


# ---- make_dot --------------------------------------------------------------------------------------
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
            if "second time" not in str(e) and "freed" not in str(e):
                raise CgvizError(f"make_dot: autograd could not take the gradients: {str(e).splitlines()[0]}") from None
            notes.append("the graph's buffers were freed by backward(), so only the leaves' .grad is shown; "
                         "call make_dot before backward(), or backward(retain_graph=True), to see every "
                         "gradient")
            # the failed pass may have reached a few nodes before the freed ones: start again, clean
            rec.result()
            rec = AutogradRecorder(var, named, {})
    if var.numel() != 1:
        notes.append(f"the tensor has {var.numel()} elements: gradients are of its sum")
    graph, run = rec.result(None if grads is None else dict(zip(map(id, leaves), grads)))
    if grads is None and all(g is None for g in run.param_grads.values()) and not notes:
        notes.append("no gradients yet: call backward() first, or draw before backward() and cgviz takes them")
    run.loss = float(root.detach()) if root.numel() == 1 else None
    run.meta.update({"view": "autograd", "kind": "tensor", "mode": "as run", "inputs": "(given)",
                     "params": sum(int(t.numel()) for t in named.values()), "loss": "output"})
    graph.source = "make_dot"
    from .view.structure import build_picture
    from .pytorch.pipeline import ModelDrawing
    pic = build_picture(graph, run, None, fold=False)
    title = f"make_dot  —  the graph behind a tensor of shape {list(var.shape)}"
    if grads is None:
        title += "  —  gradients: the leaves' .grad only" if any(g is not None for g in run.param_grads.values()) \
            else "  —  no gradients yet"
    d = ModelDrawing(graph, run, pic, title, extra={"view": "autograd", "depth": None, "folded": False}, flags=False,
                     vanish=None, explode=None, grad=True, depth=None, auto=False, fold=False, notes=notes)
    return Drawing(_Model(d, "make_dot", ()), rankdir, timeout)
