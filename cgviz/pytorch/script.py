"""Run a TorchScript module by interpreting its graph in Python, so TorchFunctionModes see each op."""

from __future__ import annotations

import contextlib
import functools
import math
import operator
import warnings
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class _Mod:
    """A module value in the graph: the ScriptModule and its attribute path from the root."""

    module: object
    path: str


@dataclass(frozen=True)
class _Fn:
    """A function constant (`prim::Constant[name=...]`): only `prim::CallFunction` consumes it."""

    name: str


def run_script(module, args: tuple, kwargs: dict | None = None, scope=None):
    """Run `module.forward` by interpreting its TorchScript graph in Python.
    scope: optional callable (path: str, class_name: str) -> context manager, entered around every
    submodule method call (path = qualified attribute path from the root, e.g. "layers.0.conv1";
    class_name = the original Python class name, e.g. "Conv2d", taken from the ScriptModule's
    `original_name` or its type's qualified name). Returns what forward returns."""
    method = module._c._get_method("forward")
    inputs = _bind(method.schema, tuple(args), dict(kwargs or {}))
    # Restores grad mode should an exception leave a `with torch.no_grad()` block unexited.
    with torch.set_grad_enabled(torch.is_grad_enabled()):
        (out,) = _Interpreter(scope).call(method.graph, [_Mod(module, ""), *inputs])
    return out


def _bind(schema, args: tuple, kwargs: dict) -> list:
    """forward's arguments in graph-input order: positional, then by name, then schema defaults."""
    params = schema.arguments[1:]          # [0] is self
    if len(args) > len(params):
        raise TypeError(f"forward takes {len(params)} arguments but {len(args)} were given")
    values = list(args)
    for p in params[len(args):]:
        if p.name in kwargs:
            values.append(kwargs.pop(p.name))
        elif p.has_default_value():
            values.append(p.default_value)
        else:
            raise TypeError(f"forward is missing the argument {p.name!r}")
    if kwargs:
        raise TypeError(f"forward got unexpected arguments {sorted(kwargs)}")
    return values


def class_name(module) -> str:
    """Conv2d from `original_name`, or from a qualified `__torch__.zoo.___torch_mangle_3.Block`."""
    name = getattr(module, "original_name", None) or module._c._type().qualified_name()
    return name.rsplit(".", 1)[-1]


def _unsupported(kind: str, detail: str = "") -> NotImplementedError:
    return NotImplementedError(f"TorchScript node {kind} is not supported{detail}")


class _Interpreter:
    """One run: the scope callback, which module's method is running, inlined callees."""

    def __init__(self, scope):
        self.scope = scope or (lambda path, cls: contextlib.nullcontext())
        self.selves = [""]                  # path of the module whose method is running
        self.functions: dict = {}           # callee key → graph with the call inlined

    def call(self, graph, inputs: list) -> list:
        env = {v.unique(): x for v, x in zip(graph.inputs(), inputs)}
        return self.run(graph, env)

    def run(self, block, env: dict) -> list:
        """Graphs and blocks alike: run the nodes in order, return the outputs' values."""
        for node in block.nodes():
            self.step(node, env)
        return [env[v.unique()] for v in block.outputs()]

    def step(self, node, env: dict) -> None:
        kind = node.kind()
        ins = [env[v.unique()] for v in node.inputs()]
        handler = _HANDLERS.get(kind)
        if handler is not None:
            outs = handler(self, node, ins, env)
        else:
            outs = _split(node, _evaluate(node, kind, ins))
        for v, x in zip(node.outputs(), outs):
            env[v.unique()] = x

    # ---- calls -------------------------------------------------------------------------------
    def call_method(self, node, ins, env) -> list:
        obj, name = ins[0], node.s("name")
        if isinstance(obj, torch.no_grad) and name == "__init__":
            return [None]                   # constructed already by prim::CreateObject
        if not isinstance(obj, _Mod):
            raise _unsupported("prim::CallMethod", f" on {type(obj).__name__}")
        graph = obj.module._c._get_method(name).graph
        # A module calling its own helper (Conv2d._conv_forward) is still one call of that module.
        ctx = contextlib.nullcontext() if obj.path == self.selves[-1] else \
            self.scope(obj.path, class_name(obj.module))
        self.selves.append(obj.path)
        try:
            with ctx:
                return self.call(graph, ins)
        finally:
            self.selves.pop()

    def call_function(self, node, ins, env) -> list:
        key = (ins[0].name, tuple(v.type().str() for v in node.inputs()))
        graph = self.functions.get(key)
        if graph is None:
            graph = self.functions[key] = _inlined_call(node)
        return self.call(graph, ins[1:])

    # ---- control flow ------------------------------------------------------------------------
    def if_(self, node, ins, env) -> list:
        then, other = node.blocks()
        return self.run(then if ins[0] else other, env)

    def loop(self, node, ins, env) -> list:
        """TorchScript loops: run while trip < max_trip and cond; the body returns (cond, *carried)."""
        max_trip, cond, carried = ins[0], ins[1], ins[2:]
        (body,) = node.blocks()
        params = [v.unique() for v in body.inputs()]     # (trip, *carried)
        trip = 0
        while trip < max_trip and cond:
            env.update(zip(params, [trip, *carried]))
            cond, *carried = self.run(body, env)
            trip += 1
        return carried


def _inlined_call(node):
    """A graph that runs one `prim::CallFunction` with its callee inlined.

    Python cannot reach a function constant's graph (and a loaded module's compilation unit is not
    kept anywhere Python can see), but the inliner can: clone the call into an empty graph and inline.
    """
    graph = torch._C.Graph()
    fn, *args = list(node.inputs())
    const = graph.createClone(fn.node(), lambda v: v)
    graph.appendNode(const)
    mapped = {fn.unique(): const.output()}
    for v in args:
        mapped[v.unique()] = graph.addInput()
        mapped[v.unique()].setType(v.type())
    call = graph.createClone(node, lambda v: mapped[v.unique()])
    graph.appendNode(call)
    for out in call.outputs():
        graph.registerOutput(out)
    torch._C._jit_pass_inline(graph)
    return graph


def _split(node, result) -> list:
    n = node.outputsSize()
    return [] if n == 0 else [result] if n == 1 else list(result)


def _evaluate(node, kind: str, ins: list):
    """One non-control-flow node: Python for containers and scalars, `torch.ops` for the rest."""
    py = _PYTHON.get(kind)
    if py is not None:
        return py(*ins)
    if ins and isinstance(ins[0], list) and kind in _LISTS:
        return _LISTS[kind](*ins)
    scalar = _SCALAR.get(kind)
    if scalar is not None and not any(isinstance(x, torch.Tensor) for x in ins):
        out = scalar(*ins)
        # int ** int and int / int are floats in TorchScript; say so where the schema does.
        return float(out) if node.output().type().kind() == "FloatType" else out
    return _call_op(node, kind, ins)


_SCHEMAS: dict[str, tuple] = {}


def _call_op(node, kind: str, ins: list):
    """The exact overload TorchScript chose, from the node's schema; kwarg-only inputs by name."""
    text = node.schema()
    entry = _SCHEMAS.get(text)
    if entry is None:
        entry = _SCHEMAS[text] = _resolve(kind, text)
    op, names = entry
    npos = len(ins) - len(names)
    return op(*ins[:npos], **dict(zip(names, ins[npos:])))


def _resolve(kind: str, text: str):
    # No schema: a prim node this interpreter has no handler for. Varargs (prim::tolist(...)):
    # torch.ops cannot call them.
    if text == "(no schema)" or "(...)" in text:
        raise _unsupported(kind)
    schema = torch._C.parse_schema(text)
    # torch.ops cannot convert arguments of a generic type (`t[] l` in aten::slice.t).
    if any(_generic(a.type) for a in schema.arguments):
        raise _unsupported(kind, f" (generic schema {text})")
    ns, name = schema.name.split("::")
    try:
        op = getattr(getattr(getattr(torch.ops, ns), name), schema.overload_name or "default")
    except (AttributeError, RuntimeError):
        raise _unsupported(kind) from None
    return op, tuple(a.name for a in schema.arguments if a.kwarg_only)


def _generic(t) -> bool:
    return t.kind() == "VarType" or any(_generic(c) for c in t.containedTypes())


# ---- node handlers -----------------------------------------------------------------------------
def _constant(it, node, ins, env) -> list:
    out = node.output()
    if out.type().kind() == "FunctionType":
        return [_Fn(out.type().str())]
    return [out.toIValue()]


def _get_attr(it, node, ins, env) -> list:
    obj, name = ins[0], node.s("name")
    if not isinstance(obj, _Mod):
        return [getattr(obj, name)]
    # Parameters come back as the module's own tensors, so gradients land on them.
    value = getattr(obj.module, name)
    if isinstance(value, torch.jit.ScriptModule):
        return [_Mod(value, f"{obj.path}.{name}" if obj.path else name)]
    return [value]


def _set_attr(it, node, ins, env) -> list:
    obj, value = ins
    setattr(obj.module if isinstance(obj, _Mod) else obj, node.s("name"), value)
    return []


def _create_object(it, node, ins, env) -> list:
    """Only `with torch.no_grad():` objects; TorchScript classes have no Python-reachable methods."""
    name = node.output().type().str()
    if name.endswith("torch.autograd.grad_mode.no_grad"):
        return [torch.no_grad()]
    raise _unsupported("prim::CreateObject", f" ({name})")


def _isinstance(it, node, ins, env) -> list:
    return [any(_is_type(ins[0], t) for t in node.tys("types"))]


_TYPE_CHECKS = {"TensorType": torch.Tensor, "IntType": int, "FloatType": float, "BoolType": bool,
                "StringType": str, "NoneType": type(None), "ListType": list, "TupleType": tuple,
                "DictType": dict, "DeviceObjType": torch.device}


def _is_type(value, t) -> bool:
    py = _TYPE_CHECKS.get(t.kind())
    if py is None:
        raise _unsupported("prim::isinstance", f" with {t.str()}")
    # bool is an int in Python but not in TorchScript
    return isinstance(value, py) and not (py is int and isinstance(value, bool))


_HANDLERS = {
    "prim::Constant": _constant,
    "prim::GetAttr": _get_attr,
    "prim::SetAttr": _set_attr,
    "prim::CallMethod": _Interpreter.call_method,
    "prim::CallFunction": _Interpreter.call_function,
    "prim::If": _Interpreter.if_,
    "prim::Loop": _Interpreter.loop,
    "prim::CreateObject": _create_object,
    "prim::Enter": lambda it, node, ins, env: [ins[0].__enter__()],
    "prim::Exit": lambda it, node, ins, env: [ins[0].__exit__(None, None, None)],
    "prim::isinstance": _isinstance,
    "prim::ListUnpack": lambda it, node, ins, env: list(ins[0]),
    "prim::TupleUnpack": lambda it, node, ins, env: list(ins[0]),
    "prim::TupleSlice": lambda it, node, ins, env: [ins[0][node.i("beg"):node.i("end")]],
}


# ---- plain-Python ops --------------------------------------------------------------------------
def _raise(msg, cls=None):
    short = cls.rsplit(".", 1)[-1] if isinstance(cls, str) else None
    raise RuntimeError(f"{short}: {msg}" if short else str(msg))


def _append(xs, x):
    xs.append(x)
    return xs


def _set_item(c, k, v):
    c[k] = v


def _del_item(c, k):
    del c[k]


@functools.cache
def _dtypes() -> dict[int, torch.dtype]:
    """TorchScript carries dtypes as ScalarType codes; torch.tensor wants a torch.dtype."""
    codes = {}
    # Bookkeeping, not ops a recorder should see; exotic dtypes warn on creation.
    with torch._C.DisableTorchFunction(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for d in {v for v in vars(torch).values() if isinstance(v, torch.dtype)}:
            with contextlib.suppress(Exception):
                codes[torch.ops.prim.dtype(torch.empty(0, dtype=d))] = d
    return codes


def _tensor(data, dtype=None, device=None, requires_grad=False):
    dtype = _dtypes()[dtype] if isinstance(dtype, int) else dtype
    return torch.tensor(data, dtype=dtype, device=device, requires_grad=requires_grad)


# Always Python: containers, strings, conversions. Through torch.ops a mutating op (append,
# _set_item) would change a converted copy of the list, and a conversion needs no node.
_PYTHON = {
    "prim::ListConstruct": lambda *xs: list(xs),
    "prim::TupleConstruct": lambda *xs: tuple(xs),
    "prim::DictConstruct": lambda *kv: dict(zip(kv[::2], kv[1::2])),
    "prim::TupleIndex": operator.getitem,
    "prim::unchecked_cast": lambda x: x,
    "prim::Uninitialized": lambda: None,
    "prim::RaiseException": _raise,
    "prim::Print": print,
    "prim::min": min,
    "prim::max": max,
    "prim::device": lambda t: t.device,
    "prim::requires_grad": lambda t: t.requires_grad,
    "prim::tolist": lambda t, dim, elem_type: t.tolist(),
    "aten::__getitem__": operator.getitem,
    "aten::__is__": operator.is_,
    "aten::__isnot__": operator.is_not,
    "aten::__not__": operator.not_,
    "aten::__contains__": lambda c, k: k in c,
    "aten::len": len,
    "aten::format": lambda fmt, *xs: fmt.format(*xs),
    "aten::str": str,
    "aten::append": _append,
    "aten::_set_item": _set_item,
    "aten::Delete": _del_item,
    "aten::extend": lambda xs, ys: xs.extend(ys),
    "aten::insert": lambda xs, i, x: xs.insert(i, x),
    "aten::pop": lambda c, *key: c.pop(*key),
    "aten::clear": lambda c: c.clear(),
    "aten::keys": lambda d: list(d.keys()),
    "aten::values": lambda d: list(d.values()),
    "aten::items": lambda d: list(d.items()),
    "aten::get": lambda d, k, default=None: d.get(k, default),
    "aten::setdefault": lambda d, k, v: d.setdefault(k, v),
    "aten::update": lambda d, other: d.update(other),
    "aten::list": list,
    "aten::copy": lambda c: c.copy(),
    "aten::dict": lambda d=None: dict(d or {}),
    "aten::__range_length": lambda lo, hi, step: len(range(lo, hi, step)),
    "aten::__derive_index": lambda i, start, step: start + i * step,
    "aten::warn": lambda msg, stacklevel=2: warnings.warn(str(msg), stacklevel=2),
    "aten::Bool": bool,
    "aten::Int": int,
    "aten::Float": float,
    "aten::IntImplicit": int,
    "aten::FloatImplicit": float,
    "aten::ScalarImplicit": lambda t: t.item(),
}

# Python when the first input is a list: these share a name with tensor ops (x[1:] is aten::slice
# on a tensor or a list) and their list overloads are generic, which torch.ops cannot call.
_LISTS = {
    "aten::slice": lambda xs, start=None, end=None, step=1: xs[start:end:step],
    "aten::index": lambda xs, x: xs.index(x),
    "aten::count": lambda xs, x: xs.count(x),
    "aten::sort": lambda xs, reverse=False: xs.sort(reverse=reverse),
    "aten::sorted": sorted,
    "aten::reverse": lambda xs: xs.reverse(),
    "aten::remove": lambda xs, x: xs.remove(x),
    "aten::tensor": _tensor,
    "aten::as_tensor": lambda data, dtype=None, device=None: _tensor(data, dtype, device),
}

# Python arithmetic when no input is a tensor (`x.size(0) // 2`, `d == "zeros"`); else torch.ops.
_SCALAR = {f"aten::{k}": v for k, v in {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv,
    "floordiv": operator.floordiv, "remainder": operator.mod, "pow": operator.pow,
    "neg": operator.neg, "abs": abs, "eq": operator.eq, "ne": operator.ne, "lt": operator.lt,
    "le": operator.le, "gt": operator.gt, "ge": operator.ge, "__and__": operator.and_,
    "__or__": operator.or_, "__xor__": operator.xor, "floor": math.floor, "ceil": math.ceil,
    "sqrt": math.sqrt, "exp": math.exp, "log": math.log, "min": min, "max": max,
}.items()}
