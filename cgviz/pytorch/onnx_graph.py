"""An ONNX graph as an nn.Module: initializers become parameters, each node one torch call (onnx_ops).

Why an interpreter of our own rather than onnx2torch: onnx2torch imports torchvision when it is
imported (for its NMS and RoIAlign converters), and torchvision does not import against the pinned
CPU torch; pip installing it replaces that torch. The op table here is small, and each node runs as
one call the recorder sees (named by its ONNX op type), in the module scope its name carries.
"""

from __future__ import annotations

import ast
import inspect
import math
import re
from dataclasses import dataclass

import torch
from torch.overrides import handle_torch_function, has_torch_function

from ..core.errors import CgvizError
from ..core.ir import Frame
from .onnx_ops import CONTROL_FLOW, DTYPES, OPS

# What each input of a parameterised op is called in PyTorch, to name an initializer the exporter
# left anonymous (`onnx::Conv_32`, a convolution with a BatchNorm folded in) by its consumer.
_ROLES = {"Conv": (None, "weight", "bias"), "ConvTranspose": (None, "weight", "bias"),
          "Gemm": (None, "weight", "bias"), "MatMul": (None, "weight"),
          "BatchNormalization": (None, "weight", "bias", "running_mean", "running_var"),
          "LayerNormalization": (None, "weight", "bias"), "Gather": ("weight", None),
          "Add": (None, "bias"), "Mul": (None, "scale")}

_DOTTED = re.compile(r"[A-Za-z_]\w*(\.\w+)*")


# The inputs that are shapes, axes or indices, not data: given to an op as Python lists when they are
# computed from shapes alone, as PyTorch code passes `x.reshape(b, t, -1)` (so they draw no node).
_SHAPE_INPUTS = {"Reshape": {1}, "Expand": {1}, "Slice": {1, 2, 3, 4}, "Unsqueeze": {1}, "Squeeze": {1},
                 "Tile": {1}, "ConstantOfShape": {0}, "Split": {1}, "ReduceMean": {1}, "ReduceSum": {1},
                 "ReduceMax": {1}, "ReduceMin": {1}, "Trilu": {1}}


@dataclass
class Step:
    """One ONNX node, ready to run: its torch function, attributes and module frames."""

    name: str
    op: str
    inputs: list[str]
    outputs: list[str]
    attrs: dict
    frames: list[Frame]
    fn: object
    static: bool = False      # computed from shapes and constants alone: run undrawn (the exporter's
                              # Shape → Gather → Concat chains are PyTorch's `x.shape` arithmetic)
    computed: dict | None = None   # input index → a name for a computed constant read as data


def scope_paths(node_name: str) -> list[str]:
    """`/layer1/layer1.0/conv1/Conv` → ['layer1', 'layer1.0', 'layer1.0.conv1']: the module paths
    of the legacy exporter's scope names (a child of a Sequential repeats its parent's path)."""
    if not node_name.startswith("/"):
        return []
    parts = [p for p in node_name.split("/")[1:-1] if p]
    paths: list[str] = []
    for p in parts:
        prev = paths[-1] if paths else ""
        paths.append(p if not prev or p.startswith(prev + ".") else f"{prev}.{p}")
    return paths


def node_frames(node) -> list[Frame]:
    """A node's module frames: from the torch.export-based exporter's metadata when it is there
    (`pkg.torch.onnx.name_scopes`, the cumulative module paths from the root '' to the node itself,
    and `pkg.torch.onnx.class_hierarchy`, their classes), else from the TorchScript-based exporter's
    node name; a class that the file does not record is filled in by OnnxModule._classes."""
    meta = {p.key: p.value for p in node.metadata_props}
    try:
        scopes = ast.literal_eval(meta["pkg.torch.onnx.name_scopes"])
        classes = ast.literal_eval(meta.get("pkg.torch.onnx.class_hierarchy", "[]"))
    except (KeyError, ValueError, SyntaxError, MemoryError, RecursionError):
        return [Frame(p, "") for p in scope_paths(node.name)]
    if not isinstance(scopes, list) or not all(isinstance(x, str) for x in scopes):
        return [Frame(p, "") for p in scope_paths(node.name)]
    classes = classes if isinstance(classes, list) and len(classes) == len(scopes) else [""] * len(scopes)
    return [Frame(p, str(c).rsplit(".", 1)[-1]) for p, c in zip(scopes[1:-1], classes[1:-1]) if p]


def _named(fn, op_type: str):
    """fn as a function the recorder sees as one call named `op_type` (the torch calls inside it
    run while the recorder's mode is off, so they are not drawn one by one)."""
    def op(*tensors, attrs):
        if has_torch_function(tensors):
            return handle_torch_function(op, [t for t in tensors if isinstance(t, torch.Tensor)], *tensors, attrs=attrs)
        return fn(list(tensors), attrs)
    op.__name__ = op.__qualname__ = op_type
    return op


def _attrs(node, where: str) -> dict:
    from onnx import helper, numpy_helper
    out = {}
    for a in node.attribute:
        if a.type in (5, 10):       # GRAPH, GRAPHS: a control-flow body
            raise CgvizError(f"{where}: node {node.name or '(unnamed)'} ({node.op_type}) holds a subgraph "
                             f"(attribute {a.name}), which cgviz does not run: control flow cannot be drawn")
        v = helper.get_attribute_value(a)
        if a.type == 4:             # TENSOR
            v = torch.from_numpy(numpy_helper.to_array(v).copy())
        out[a.name] = v
    return out


class OnnxModule(torch.nn.Module):
    """Runs an ONNX graph with torch ops. `declared`: each graph input's (name, dtype, dims), a dim
    an int or the name of a symbolic dimension."""

    def __init__(self, model, where: str):
        super().__init__()
        g = model.graph
        init_names = {i.name for i in g.initializer}
        self.declared = [(i.name, _elem(i), _dims(i)) for i in g.input if i.name not in init_names]
        self.output_names = [o.name for o in g.output]
        self.steps: list[Step] = []
        self._consts: dict[str, torch.Tensor] = {}
        unknown: list[str] = []
        # The exporter stores equal initializers once and gives the others as Identity nodes of it
        # (two LayerNorms' weights of ones): each becomes a parameter of its own again, as in the
        # model that was exported, named by the op that reads it.
        self._copies: dict[str, str] = {}
        for n in g.node:
            if n.op_type == "Identity" and n.input and n.input[0] in init_names:
                self._copies[n.output[0]] = n.input[0]
                continue
            if n.op_type in CONTROL_FLOW:
                raise CgvizError(f"{where}: node {n.name or '(unnamed)'} is a {n.op_type}, a control-flow op "
                                 "with subgraphs, which cgviz does not run; nothing was drawn")
            if n.domain not in ("", "ai.onnx"):
                unknown.append(f"{n.name or '(unnamed)'} ({n.domain}.{n.op_type})")
                continue
            attrs = _attrs(n, where)
            if n.op_type == "Constant":
                self._consts[n.output[0]] = _constant(attrs, n, where)
                continue
            if n.op_type not in OPS:
                unknown.append(f"{n.name or '(unnamed)'} ({n.op_type})")
                continue
            attrs["_outputs"] = len(n.output)
            self.steps.append(Step(n.name, n.op_type, list(n.input), list(n.output), attrs,
                                   node_frames(n), _named(OPS[n.op_type], n.op_type)))
        if unknown:
            more = f" and {len(unknown) - 5} more" if len(unknown) > 5 else ""
            raise CgvizError(f"{where}: {len(unknown)} node(s) use ops cgviz cannot convert to PyTorch: "
                             f"{', '.join(unknown[:5])}{more}; nothing was drawn")
        self._classes()
        self._mark_static(g)
        self._local_constants()
        self._register(g, where)
        self.num_embeddings = self._vocabulary()

    # ---- structure ---------------------------------------------------------------------------
    def _classes(self) -> None:
        """A class name for each scope, which the file does not record: a scope holding one kind of
        op and no scope of its own is named by that op (Conv); else by its name without an index
        (layer1.0 and layer1.1 are both `layer1`), so repeated blocks share a class and fold."""
        ops: dict[str, set[str]] = {}
        parents: set[str] = set()
        for s in self.steps:
            if s.frames:
                ops.setdefault(s.frames[-1].path, set()).add(s.op)
                parents.update(f.path for f in s.frames[:-1])
        for s in self.steps:
            s.frames = [f if f.cls else
                        Frame(f.path, next(iter(ops[f.path])) if f.path not in parents and len(ops.get(f.path, ())) == 1
                              else _stem(f.path)) for f in s.frames]

    def _mark_static(self, g) -> None:
        """Steps whose inputs are all shapes or constants (or that read a shape): see Step.static."""
        static = set(self._consts) | {i.name for i in g.initializer if i.data_type not in (1, 10, 11, 16)}
        for s in self.steps:
            ins = [i for i in s.inputs if i]
            if s.op in ("Shape", "Size") or (ins and all(i in static for i in ins)):
                s.static = True
                static.update(s.outputs)
        self.static = static
        made = {o for s in self.steps if s.static for o in s.outputs}
        for s in self.steps:
            if not s.static:
                shaped = _SHAPE_INPUTS.get(s.op, ())
                path = s.frames[-1].path if s.frames else ""
                s.computed = {k: f"{path}.{s.op.lower()}_in{k}".lstrip(".") for k, i in enumerate(s.inputs)
                              if i in made and k not in shaped} or None

    def _local_constants(self) -> None:
        """A Constant read from several scopes becomes one per scope: the exporter reuses the first
        block's constant in later blocks, which made their wiring differ and stopped them folding."""
        seen: dict[str, str] = {}        # constant → the scope that reads it first
        for s in self.steps:
            path = s.frames[-1].path if s.frames else ""
            for k, name in enumerate(s.inputs):
                if name not in self._consts:
                    continue
                first = seen.setdefault(name, path)
                if first != path:
                    local = f"{name}@{path}"
                    self._consts.setdefault(local, self._consts[name].clone())
                    s.inputs[k] = local

    def _register(self, g, where: str) -> None:
        """Initializers as parameters (floating point) or buffers, in submodules named by their paths."""
        from onnx import numpy_helper
        consumer: dict[str, tuple[Step, int]] = {}
        for s in self.steps:
            for k, i in enumerate(s.inputs):
                consumer.setdefault(i, (s, k))
        self.tensor_names: dict[str, str] = {}     # ONNX name → torch parameter/buffer name
        taken: set[str] = set()
        arrays: dict[str, object] = {}
        by_name = {i.name: i for i in g.initializer}
        for init in list(g.initializer) + [(out, by_name[src]) for out, src in self._copies.items()]:
            onnx_name, init = (init.name, init) if not isinstance(init, tuple) else init
            if init.data_location == 1:     # EXTERNAL
                raise CgvizError(f"{where}: initializer {init.name} keeps its data in an external file; cgviz "
                                 "reads ONNX files that hold their weights (save with save_as_external_data=False)")
            try:
                arr = arrays[init.name] if init.name in arrays else numpy_helper.to_array(init)
            except Exception as e:
                raise CgvizError(f"{where}: initializer {init.name} cannot be read: {e}") from None
            arrays[init.name] = arr
            if arr.dtype.kind in "USO":
                raise CgvizError(f"{where}: initializer {init.name} holds strings, which no torch op reads")
            t = torch.from_numpy(arr.copy())
            name = self._torch_name(onnx_name, consumer.get(onnx_name), taken)
            taken.add(name)
            self.tensor_names[onnx_name] = name
            use = consumer.get(onnx_name)
            # BatchNorm's running statistics are state, not weights: buffers, as in nn.BatchNorm2d
            stats = use is not None and use[0].op == "BatchNormalization" and use[1] >= 3
            self._add(name, t, parameter=t.is_floating_point() and not stats)
        # Constant nodes' values are buffers named by the op that reads them, like the initializers:
        # the third block's constants are then the first's by role, and the blocks fold.
        for onnx_name, t in self._consts.items():
            name = self._torch_name(onnx_name, consumer.get(onnx_name), taken, const=True)
            taken.add(name)
            self.tensor_names[onnx_name] = name
            self._add(name, t, parameter=False)
        self._consts = {}

    def _add(self, name: str, t: torch.Tensor, parameter: bool) -> None:
        owner, _, leaf = name.rpartition(".")
        mod = self._module(owner)
        if parameter:
            mod.register_parameter(leaf, torch.nn.Parameter(t))
        else:
            mod.register_buffer(leaf, t)

    def _torch_name(self, onnx_name: str, use, taken: set[str], const: bool = False) -> str:
        name = onnx_name if _DOTTED.fullmatch(onnx_name) and not const else None
        if name is None and use is not None:
            step, k = use
            roles = _ROLES.get(step.op, ()) if not const else ()
            role = roles[k] if k < len(roles) and roles[k] else f"{step.op.lower()}_in{k}"
            path = step.frames[-1].path if step.frames else ""
            name = f"{path}.{role}" if path else role
        if name is None:
            name = "const_" + re.sub(r"\W", "_", onnx_name).strip("_")
        base, n = name, 1
        while name in taken or not self._fits(name):
            n += 1
            name = f"{base}_{n}"
        return name

    def _fits(self, name: str) -> bool:
        """Whether `name` can be registered: no part clashes with a tensor or a module already there."""
        mod = self
        parts = name.split(".")
        for p in parts[:-1]:
            if p in mod._parameters or p in mod._buffers:
                return False
            if p not in mod._modules:
                return True
            mod = mod._modules[p]
        return parts[-1] not in mod._modules and parts[-1] not in mod._parameters and parts[-1] not in mod._buffers \
            and not hasattr(type(mod), parts[-1])

    def _module(self, path: str) -> torch.nn.Module:
        mod: torch.nn.Module = self
        for p in path.split(".") if path else []:
            if p not in mod._modules:
                mod.add_module(p, torch.nn.Module())
            mod = mod._modules[p]
        return mod

    def _vocabulary(self) -> int | None:
        """The smallest table an int input indexes (a Gather on a weight), so generated token ids fit."""
        sizes = [self.get_parameter(self.tensor_names[s.inputs[0]]).shape[0] for s in self.steps
                 if s.op == "Gather" and s.inputs[0] in self.tensor_names
                 and self.tensor_names[s.inputs[0]] in dict(self.named_parameters())]
        return min(sizes) if sizes else None

    # ---- running -----------------------------------------------------------------------------
    def run(self, inputs: list, rec=None):
        """The graph's outputs for `inputs` (in declared order). `rec`, the recorder, is told each
        node's module frames before it runs, and the names of constants computed from shapes."""
        scope = rec.set_stack if rec is not None else None
        env: dict[str, object] = {"": None}
        tensors = dict(self.named_parameters())
        tensors.update(self.named_buffers())
        for onnx_name, name in self.tensor_names.items():
            env[onnx_name] = tensors[name]
        if len(inputs) != len(self.declared):
            raise TypeError(f"the graph takes {len(self.declared)} inputs "
                            f"({', '.join(n for n, _, _ in self.declared)}), {len(inputs)} given")
        for (name, _, _), value in zip(self.declared, inputs):
            env[name] = value
        if any(isinstance(v, torch.Tensor) and v.device.type == "meta" for v in inputs):
            from ..core.spelling import spell
            raise CgvizError(f"{spell('meta')} cannot run an ONNX graph: it computes shapes from the values "
                             "of its constants, which the meta device does not hold. Leave it out: the "
                             "graph's own weights are already in memory")
        for s in self.steps:
            if scope is not None:
                scope(s.frames)
            try:
                if s.static:
                    with torch._C.DisableTorchFunction():     # not drawn: shape arithmetic
                        out = OPS[s.op]([env[i] for i in s.inputs], s.attrs)
                else:
                    if s.computed and rec is not None:
                        for k, name in s.computed.items():
                            if isinstance(env[s.inputs[k]], torch.Tensor):
                                rec.name_constant(env[s.inputs[k]], name)
                    shaped = _SHAPE_INPUTS.get(s.op, ())
                    out = s.fn(*[env[i].tolist() if k in shaped and i in self.static and env[i] is not None
                                 else env[i] for k, i in enumerate(s.inputs)], attrs=s.attrs)
            except KeyError as e:
                raise CgvizError(f"node {s.name} ({s.op}) reads {e.args[0]!r}, which no node makes") from None
            except NotImplementedError as e:
                raise CgvizError(f"node {s.name} ({s.op}): {e} is not supported; nothing was drawn") from None
            outs = out if isinstance(out, tuple) else (out,)
            for name, v in zip(s.outputs, outs):
                env[name] = v
        if scope is not None:
            scope([])
        result = tuple(env[o] for o in self.output_names)
        return result[0] if len(result) == 1 else result


def _stem(path: str) -> str:
    """`layer1.0` → `layer1`, `blocks.3` → `blocks`, `attn` → `attn`: a scope's name less its index."""
    head, _, last = path.rpartition(".")
    return head.rpartition(".")[2] if last.isdigit() and head else last


def _constant(attrs: dict, node, where: str):
    for key in ("value", "value_float", "value_int", "value_floats", "value_ints"):
        if key in attrs:
            v = attrs[key]
            return v if isinstance(v, torch.Tensor) else torch.tensor(v)
    raise CgvizError(f"{where}: Constant node {node.name} holds a kind of value cgviz does not read")


def _elem(vi) -> object:
    t = vi.type.tensor_type
    return DTYPES.get(t.elem_type, torch.float32)


def _dims(vi) -> list:
    shape = vi.type.tensor_type.shape
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in shape.dim]


def graph_module(model, where: str) -> OnnxModule:
    """An OnnxModule whose forward takes the graph's declared inputs by name (the input boxes say
    `x`, not `input0`)."""
    names = [_ident(n) for n, _, _ in _declared(model)]

    def forward(self, *args, **kwargs):
        by_name = dict(zip(names, args))
        by_name.update(kwargs)
        return self.run([by_name[n] for n in names], getattr(self, "_recorder", None))
    forward.__signature__ = inspect.Signature(
        [inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)]
        + [inspect.Parameter(n, inspect.Parameter.POSITIONAL_OR_KEYWORD) for n in names])
    cls = type("OnnxGraph", (OnnxModule,), {"forward": forward})
    return cls(model, where)


def _declared(model):
    init = {i.name for i in model.graph.initializer}
    return [(i.name, None, None) for i in model.graph.input if i.name not in init]


def _ident(name: str) -> str:
    s = re.sub(r"\W", "_", name)
    return s if s and not s[0].isdigit() else f"input_{s}"


def example_inputs(module: OnnxModule, dims: dict[str, int], seed: int, where: str, ask) -> tuple:
    """One random tensor per declared input, of the file's dtype and shape. A symbolic dimension takes
    its size from `dims`; a missing one is asked for by name (`ask(dim, input)` says how)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for name, dtype, shape in module.declared:
        sizes = []
        for d in shape:
            if isinstance(d, str):
                if d not in dims:
                    raise CgvizError(f"{where}: input {name!r} has the symbolic dimension {d!r}: {ask(d, name)}")
                sizes.append(dims[d])
            else:
                sizes.append(d)
        if math.prod(sizes) > 50_000_000:
            raise CgvizError(f"{where}: input {name!r} of shape {tuple(sizes)} is too large to make")
        if dtype.is_floating_point:
            out.append(torch.randn(sizes, generator=g).to(dtype))
        elif dtype == torch.bool:
            out.append(torch.ones(sizes, dtype=torch.bool))
        else:
            high = module.num_embeddings or 2
            out.append(torch.randint(0, high, sizes, generator=g, dtype=dtype))
    return tuple(out)
