"""`draw()`: any source (text, a file, a module or function, a tensor) to a `Drawing`, by the route its kind takes."""

from __future__ import annotations

import functools
import os
import time
from typing import Any

from ..core.errors import CgvizError, OptionError
from ..core.paths import is_hub
from ..pytorch.state import given_back
from ..core.spelling import spell
from .backends import _Expression, _Model
from .checks import _check_targets_file, _checked, _refuse_model_options, check_step, check_thresholds
from .drawing import Drawing
from .sources import _evaluate, _is_text_or_path, source_kind


@given_back()
def draw(source: Any, *inputs: Any, input_size: Any = None, loss: Any = None, depth: int | None = None,
         fold: bool = True, view: str = "ops", dtype: str | None = None, seed: int = 0, mode: str | None = None,
         grad: bool = True, lr: float | None = None, clip_norm: float | None = None, rankdir: str | None = None,
         sets: dict[str, Any] | None = None, trust: bool = False, weights: str | None = None, meta: bool = False,
         vanish: float | None = None, explode: float | None = None, max_elements: int | None = None,
         timeout: float | None = 60.0, input_file: str | None = None, simplify: bool = True,
         kind: str | None = None, forward_kwargs: dict[str, Any] | None = None,
         focus: str | None = None, targets: Any = None, dims: dict[str, int] | None = None,
         download: bool = False, format: str | None = None, profile: bool = False, profile_runs: int | None = None,
         profile_top: int | None = None) -> Drawing:
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
    profile=True also times each op of a model under torch.profiler (after a warm-up pass; the mean of
    profile_runs passes): the time is on every node, and `Drawing.profile` is the table of the
    profile_top slowest (10 by default).

    format= names the format the drawing is made for, as `cgviz torch -f` does (its other formats
    still work): "png" chooses a model's level by the PNG's pixels up front, "html" records each
    tensor's histogram for the page, and a data format ("json") skips choosing a picture level.

    kind says what a string or path is, when it should not be told from the text and the file's
    content: "text" (a program), "expression" (an expression file, "-" for standard input),
    "model" (a model file) or "file" (a file of either kind, told by its content).
    """
    checked = _checked("draw", loss=loss, depth=depth, view=view, dtype=dtype, seed=seed, mode=mode, lr=lr,
                       clip_norm=clip_norm, rankdir=rankdir, vanish=vanish, explode=explode,
                       max_elements=max_elements, timeout=timeout, focus=focus, profile_runs=profile_runs,
                       profile_top=profile_top)
    if not profile and (profile_runs is not None or profile_top is not None):
        raise OptionError(f"{spell('profile_runs')} and {spell('profile_top')} go with {spell('profile')}")
    checked["profile"] = (checked["profile_runs"] or 1) if profile else 0      # measured passes
    if format is not None:
        from ..view.formats import MODEL, REGISTRY, lookup
        if format not in REGISTRY:
            lookup(format, MODEL)       # the message names every format
    checked["format"] = format
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
                                  targets=targets is not None, profile=profile)
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
    from ..core.needs import require_torch
    torch = require_torch("draw() of a model, function or tensor")
    if isinstance(source, torch.Tensor):
        if inputs or input_size is not None or forward_kwargs:
            raise CgvizError("draw(tensor) draws the graph that produced the tensor; it takes no inputs")
        if loss is not None or targets is not None:
            raise OptionError("draw(tensor) draws the graph behind the tensor as it is; to draw a loss, pass the "
                              "loss tensor itself (draw(loss_tensor)), or the model with loss=")
        if focus is not None:
            raise OptionError("draw(tensor) draws a graph of grad_fns, which has no modules to focus on")
        if profile:
            raise OptionError("draw(tensor) draws the graph behind a tensor already computed: there is no run to "
                              "profile; draw the model with profile=True")
        from .torchviz import make_dot
        return make_dot(source, rankdir=rankdir or "TB", timeout=checked["timeout"])
    if isinstance(source, torch.nn.Module) or callable(source):
        return _draw_module(source, inputs, input_size, checked, fold=fold, grad=grad, meta=meta,
                            rankdir=rankdir or "TB", forward_kwargs=forward_kwargs)
    raise CgvizError(f"draw() takes expression text, a file path, an nn.Module, a function or a tensor, "
                     f"not a {type(source).__name__}")


def _draw_expression(text_or_path: str, kind: str | None, sets, grad: bool, checked: dict, timeout,
                     rankdir: str | None, fold: bool = True) -> Drawing:
    from ..view.expression_scene import DotOptions, auto_rankdir
    from ..diagnose.health import EXPLODE, VANISH
    from ..route.expression import annotate
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
    if checked["format"] is not None:
        from ..view.formats import EXPRESSION, lookup
        lookup(checked["format"], EXPRESSION)
    return Drawing(_Expression(result, name, opts, warnings, inputs), rankdir, timeout)


def _trace_options(inputs_given: bool, input_size, checked: dict, meta: bool, input_file: str | None = None):
    """The one builder of the recorder's TraceOptions, for draw() and its siblings and the command line
    (cgviz.cli.trace_options): `checked` holds the checked option values, by draw()'s keywords."""
    from ..pytorch.inputs import InputSpec, parse_shape
    from ..pytorch.trace import TraceOptions
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
                        dims=checked.get("dims"), profile=checked.get("profile") or 0)


def _model_drawing(loaded, opts, checked: dict, fold: bool, grad: bool, rankdir: str, source: str,
                   inputs: tuple[str, ...] = (), timings: dict[str, float] | None = None,
                   label: str | None = None) -> Drawing:
    """A loaded model traced and pictured (cgviz.route.model) for the format draw() was told, if any."""
    from ..route.model import picture_model
    from ..view.formats import MODEL, lookup
    fmt = checked.get("format")
    pictured = lookup(fmt, MODEL).pictured if fmt is not None else True
    timings = {} if timings is None else timings
    d = picture_model(loaded, opts, depth=checked["depth"], fold=fold, grad=grad, vanish=checked["vanish"],
                      explode=checked["explode"], simplify=checked.get("simplify", True),
                      focus=checked.get("focus"), profile_top=checked.get("profile_top") or 10,
                      html=fmt == "html", timings=timings, choose=pictured)
    if label is not None:
        d.label = label
    if fmt == "png":
        d = d.for_png(rankdir, checked["timeout"], timings)     # the PNG's level, so its counts are its own
    return Drawing(_Model(d, source, inputs, loaded, timings), rankdir, checked["timeout"])


def _draw_model_file(spec: str, inputs, input_size, checked, *, fold, grad, trust, weights, meta, input_file,
                     rankdir) -> Drawing:
    from ..pytorch.load import check_model_files
    check_model_files(spec, input_file, weights)      # a missing file is said before torch is imported
    _check_targets_file(checked.get("targets"))
    t = time.perf_counter()
    from ..core.needs import require_torch
    require_torch(f"drawing the model {spec}")          # timed on its own: it is most of the start-up
    from ..pytorch.load import load_model, split_spec
    timings = {"import": time.perf_counter() - t}
    opts = _trace_options(bool(inputs), input_size, checked, meta, input_file)
    t = time.perf_counter()
    loaded = load_model(spec, trust=trust, weights=weights, meta=meta, download=checked.get("download") or None)
    timings["load"] = time.perf_counter() - t
    if inputs:
        loaded.example_args, loaded.example_kwargs = tuple(inputs), {}
    path = split_spec(spec)[0]
    from ..core.paths import shown
    files = () if is_hub(spec) else (str(path),)       # an hf: model reads no file of the user's
    # Model Explorer's label is the file's name
    return _model_drawing(loaded, opts, checked, fold, grad, rankdir, shown(path.name), files, timings,
                          label=path.name)


def _draw_module(source, inputs, input_size, checked, *, fold, grad, meta, rankdir, forward_kwargs=None) -> Drawing:
    import torch

    from ..pytorch.load import Loaded
    from ..pytorch.run import on_meta
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
