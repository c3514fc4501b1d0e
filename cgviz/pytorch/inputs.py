"""Inputs for a model run (`--input-shape 1,64:long`, `--input FILE`, example inputs); the loss is cgviz.pytorch.loss.

Random inputs come from a seeded generator so that the same command draws the same numbers; integer
inputs (token ids) are drawn within the model's smallest embedding table so that lookups are valid.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import CgvizError
from ..core.spelling import spell

DTYPES = {
    "float32": "float32", "float": "float32", "f32": "float32",
    "float64": "float64", "double": "float64", "f64": "float64",
    "float16": "float16", "half": "float16", "bfloat16": "bfloat16",
    "long": "int64", "int64": "int64", "int": "int64", "int32": "int32",
    "bool": "bool",
}
INPUT_ELEMENT_LIMIT = 50_000_000


@dataclass(frozen=True)
class InputSpec:
    """One `--input-shape`: dimensions and an optional dtype."""

    shape: tuple[int, ...]
    dtype: str | None = None   # None: the model's float dtype

    def __str__(self) -> str:
        dims = ",".join(map(str, self.shape))
        return dims + (f":{self.dtype}" if self.dtype else "")


MAX_DIMS = 64      # torch refuses more dimensions than this


def parse_shape(text: str) -> InputSpec:
    """`1,3,32,32` or `1x64:long` → InputSpec; mistakes raise ValueError with what was expected."""
    body, _, dt = text.strip().partition(":")
    parts = [p for p in re.split(r"[,x×\s]+", body.strip().strip("[]()")) if p]
    if not parts:
        raise ValueError(f"{text!r}: give the dimensions, e.g. 1,3,32,32 (and :long for token ids)")
    if len(parts) > MAX_DIMS:
        raise ValueError(f"{text[:40]!r}…: {len(parts)} dimensions; PyTorch tensors have at most {MAX_DIMS}")
    dims = []
    for p in parts:
        if not p.isdigit():
            raise ValueError(f"{text!r}: {p!r} is not a whole number; write dimensions as 1,3,32,32")
        if len(p) > 15:     # past any memory; also keeps int() away from Python's 4300-digit limit
            raise ValueError(f"dimension {p[:20]}… is far too large ({len(p)} digits)")
        dims.append(int(p))
    dtype = None
    if dt:
        dtype = DTYPES.get(dt.strip().lower())
        if dtype is None:
            raise ValueError(f"{text!r}: unknown dtype {dt!r}; use one of {', '.join(sorted(set(DTYPES)))}")
    # The size is checked when the inputs are made (check_input_sizes), where --max-elements is known.
    return InputSpec(tuple(dims), dtype)


def check_input_sizes(specs, limit: int | None) -> None:
    """Refuse an --input-shape too big for memory before torch allocates it; --max-elements raises it."""
    import math
    limit = INPUT_ELEMENT_LIMIT if limit is None else limit
    for s in specs:
        n = math.prod(s.shape)
        if n > limit:
            err = CgvizError(f"{spell('input_shape', str(s))}: {'×'.join(map(str, s.shape))} is {n:,} elements, "
                             f"more than the {limit:,} allowed per input; raise the limit with "
                             f"{spell('max_elements')} if you really mean it, or use {spell('meta')} to see "
                             "shapes without allocating")
            err.exit_code = 2      # the number came from the command line: a usage mistake
            raise err


def embedding_range(model) -> int | None:
    """The smallest `num_embeddings` among the model's embedding tables (None when it has none)."""
    sizes = []
    for _, mod in model.named_modules():
        n = getattr(mod, "num_embeddings", None)
        if isinstance(n, int) and n > 0:
            sizes.append(n)
    # A torch.export program has no Embedding modules left, only embedding ops on weight tensors.
    graph = getattr(model, "graph", None)
    nodes = getattr(graph, "nodes", ())
    if callable(nodes):        # a TorchScript graph (graph.nodes() is a method): not an fx graph
        nodes = ()
    for node in nodes if not sizes else ():
        if getattr(node, "op", None) == "call_function" and "embedding" in str(node.target):
            weight = node.args[0] if node.args else None
            if getattr(weight, "op", None) == "get_attr":
                try:
                    sizes.append(int(model.get_parameter(weight.target).shape[0]))
                except (AttributeError, TypeError):
                    pass
    return min(sizes) if sizes else None


def make_inputs(specs: list[InputSpec], model, float_dtype, seed: int, device="cpu") -> tuple:
    """Random tensors for `--input-shape`: normal floats, integers within the embedding range."""
    import torch
    g = torch.Generator().manual_seed(seed)
    high = embedding_range(model) or 10
    out = []
    for s in specs:
        dtype = getattr(torch, s.dtype) if s.dtype else float_dtype
        if device == "meta":
            out.append(torch.empty(s.shape, dtype=dtype, device="meta"))
        elif dtype.is_floating_point:
            out.append(torch.randn(s.shape, generator=g).to(dtype))
        elif dtype == torch.bool:
            out.append(torch.rand(s.shape, generator=g) > 0.5)
        else:
            out.append(torch.randint(0, high, s.shape, generator=g, dtype=dtype))
    return tuple(out)


def read_tensors(path: str, option: str, kind: str, accepts: str, save: str):
    """The tensors a file option (`--input`, `--targets`) names, read with weights_only (never code):
    a clear message for a file that is not one, holds pickled code, or cannot be read as tensors.
    `save` ends the pickled-code message: what to save, and how."""
    import pickle

    import torch

    from ..core.paths import check_input
    p = Path(path)
    check_input(p, spell(option), kind=kind, accepts=accepts)
    try:
        return torch.load(p, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        from .load import read_quietly, refused_pickle
        why = refused_pickle(spell(option, path), read_quietly(p))
        raise CgvizError(why + "." if why else f"{spell(option, path)} holds pickled code, not just tensors; "
                         f"save {save}") from None
    except Exception as e:
        raise CgvizError(f"{spell(option, path)} could not be read as tensors: "
                         f"{(str(e).splitlines() or [''])[0][:200]}") from None


def load_inputs(path: str, model) -> tuple[tuple, dict]:
    """`--input FILE`: a tensor, a tuple/list of them (positional) or a dict (keyword arguments when
    its keys are forward's parameter names, else one positional dict). Read with weights_only."""
    import torch
    from .load import INPUT_ACCEPTS
    obj = read_tensors(path, "input", "inputs", INPUT_ACCEPTS, "the inputs with torch.save(tensor_or_tuple, path)")
    if isinstance(obj, torch.Tensor):
        return (obj,), {}
    if isinstance(obj, (tuple, list)):
        return tuple(obj), {}
    if isinstance(obj, dict):
        names = forward_params(model)
        if names and set(obj) <= set(names):
            return (), dict(obj)
        return (obj,), {}
    raise CgvizError(f"{spell('input', path)} holds a {type(obj).__name__}; give a tensor, a tuple of tensors "
                     "or a dict of them")


def forward_params(model) -> list[str] | None:
    """The names of forward's parameters, or None when Python cannot tell (TorchScript, C++)."""
    schema = getattr(getattr(model, "forward", None), "schema", None)
    if schema is not None:          # TorchScript: the compiled method keeps its argument names
        return [a.name for a in schema.arguments[1:]]
    try:
        sig = inspect.signature(model.forward)
    except (TypeError, ValueError):
        return None
    return [p.name for p in sig.parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def input_names(model, args: tuple, kwargs: dict) -> list[str]:
    """Names for the input boxes: forward's parameter names where known (`x`, `input_ids`)."""
    names = forward_params(model) or []
    out = []
    for i, _ in enumerate(args):
        out.append(names[i] if i < len(names) else f"input{i}")
    out.extend(kwargs)
    return out


def named_tensors(name: str, value) -> list[tuple[str, object]]:
    """(`batch.image`, tensor) for every tensor inside one forward argument, named by its path."""
    import re as _re

    import torch
    from torch.utils._pytree import keystr, tree_flatten_with_path
    out = []
    for path, leaf in tree_flatten_with_path(value)[0]:
        if isinstance(leaf, torch.Tensor):
            tail = _re.sub(r"\[['\"]?([^'\"\]]*)['\"]?\]", r".\1", keystr(path))
            out.append((name + tail, leaf))
    return out


def flat_tensors(obj) -> list:
    """Every tensor inside nested tuples, lists, dicts and dataclass-like outputs (None skipped)."""
    import torch
    from torch.utils._pytree import tree_flatten
    return [t for t in tree_flatten(obj)[0] if isinstance(t, torch.Tensor)]


def describe(args: tuple, kwargs: dict) -> str:
    """`[1×3×32×32] float32, mask=[1×8] bool`: what the model was given, for error messages."""
    import torch

    def one(x) -> str:
        if isinstance(x, torch.Tensor):
            return f"[{'×'.join(map(str, x.shape))}] {str(x.dtype).replace('torch.', '')}"
        if isinstance(x, dict):
            return "{" + ", ".join(f"{k}: {one(v)}" for k, v in x.items()) + "}"
        if isinstance(x, (tuple, list)):
            return "(" + ", ".join(one(v) for v in x) + ")"
        return type(x).__name__ if x is not None else "None"
    parts = [one(a) for a in args] + [f"{k}={one(v)}" for k, v in kwargs.items()]
    return ", ".join(parts) or "no inputs"
