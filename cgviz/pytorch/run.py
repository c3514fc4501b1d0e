"""Running a loaded model once, as every consumer needs it: mode, dtype and inputs prepared, forward
called (inside a torch.export program node by node, so each op lands in its module), backward taken,
with the model's own errors turned into messages. Tracing, profiling and checking all build on it."""

from __future__ import annotations

import contextlib
import re
import sys

from ..core.errors import CgvizError
from ..core.spelling import spell, spell_value
from .inputs import check_input_sizes, describe, flat_tensors, input_names, load_inputs, make_inputs, named_tensors
from .load import Loaded, user_frame
from .state import borrow, copied


def prepare(loaded: Loaded, opts):
    """Mode, dtype and inputs as `opts` (a TraceOptions) say; returns (model, args, kwargs)."""
    import torch
    model = loaded.model
    if opts.mode and loaded.kind == "export":
        raise CgvizError(f"{loaded.path} is a torch.export program: it runs in the mode it was "
                         f"exported in, and --{opts.mode} cannot change that. Export it again "
                         f"after model.{opts.mode}() instead.")
    float_dtype = getattr(torch, opts.dtype) if opts.dtype else _model_float_dtype(model)
    # With --meta, a module not built on the meta device moves there (shapes only, as asked). A
    # module that may be the user's (in memory, or imported by a Python file) runs on stand-ins and
    # is given back as it was (cgviz.pytorch.state); an archive cgviz loaded itself is its own.
    to_meta = opts.meta and not on_meta(model)
    dtype = float_dtype if opts.dtype else None     # on the meta device too: the inputs are cast to it
    try:
        if loaded.kind in ("export", "torchscript"):
            model = model.to("meta") if to_meta else model
            model = model.to(dtype) if dtype is not None else model
        else:
            model = borrow(model, dtype=dtype, device="meta" if to_meta else None)
    except Exception as e:
        if not to_meta or isinstance(e, CgvizError):
            raise
        raise CgvizError(f"{spell('meta')}: this {loaded.description} cannot move to the meta device "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if opts.mode:
        model.train(opts.mode == "train")
    device = "meta" if opts.meta else _model_device(model)
    if opts.input_file:
        if opts.input_shapes:
            raise CgvizError(f"give either {spell('input', metavar='FILE')} or {spell('input_shape')}, not both")
        args, kwargs = load_inputs(opts.input_file, model)
    elif opts.input_shapes:
        if not opts.meta:     # meta tensors allocate nothing, whatever their shape
            check_input_sizes(opts.input_shapes, opts.max_elements)
        args, kwargs = make_inputs(list(opts.input_shapes), model, float_dtype, opts.seed, device), {}
    elif loaded.example_args is not None or loaded.example_kwargs:
        args, kwargs = tuple(loaded.example_args or ()), dict(loaded.example_kwargs or {})
    elif _source_inputs(loaded) is not None:
        made = _source_inputs(loaded)(loaded, opts)       # positional arguments, or keyword ones
        args, kwargs = ((), made) if isinstance(made, dict) else (made, {})
    else:
        names = input_names(model, (), {})
        want = f" (its forward takes {', '.join(names)})" if names else ""
        raise CgvizError(f"{loaded.path} comes with no example inputs{want}: give one {spell('input_shape')} "
                         f"per input, e.g. {spell('input_shape', '1,3,32,32')} (or "
                         f"{spell_value('input_shape', '1,64:long')} for token ids), or "
                         f"{spell('input', 'inputs.pt')}")
    cast_to = float_dtype if opts.dtype else None
    args, kwargs = cast(args, cast_to, device), cast(kwargs, cast_to, device)
    return model, args, kwargs


def _source_inputs(loaded: Loaded):
    """The example-input maker of the loaded file's source (an ONNX graph declares its inputs)."""
    from .sources import by_kind
    source = by_kind(loaded.kind)
    return source.inputs if source is not None else None


def on_meta(model) -> bool:
    """Whether a module holds only meta tensors, and at least one (built under torch.device("meta"))."""
    tensors = list(model.parameters()) + list(model.buffers())
    return bool(tensors) and all(t.device.type == "meta" for t in tensors)


def _model_device(model) -> str:
    """Where generated inputs go: the model's own device (the first parameter's), else the CPU."""
    for p in model.parameters():
        return str(p.device)
    return "cpu"


def _model_float_dtype(model):
    import torch
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def cast(obj, dtype, device):
    import torch
    from torch.utils._pytree import tree_map

    def one(t):
        if not isinstance(t, torch.Tensor):
            return copied(t)
        t = t.detach()
        if device == "meta" and t.device.type != "meta":
            t = t.to("meta")
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        if t.is_floating_point():
            t = t.clone().requires_grad_(device != "meta")
        elif t.device.type != "meta":
            t = t.clone()       # a forward that changes its inputs in place changes a copy
        return t
    return tree_map(one, obj)


def fresh_inputs(args, kwargs):
    """The inputs as one forward should see them: every tensor a copy, so that a model that changes
    its input in place (x.mul_(2)) runs as in plain PyTorch and leaves the prepared inputs as they
    were for the next pass. A float input that needs a gradient becomes a non-leaf copy whose
    gradient flows on to the leaf (PyTorch refuses an in-place op on a leaf that needs a gradient,
    and a user's own input usually needs none): the numbers are the same, bit for bit."""
    import torch
    from torch.utils._pytree import tree_map

    def one(t):
        if not isinstance(t, torch.Tensor) or t.device.type == "meta" or t.is_sparse or t.is_nested:
            return t
        with torch.enable_grad() if t.requires_grad else contextlib.nullcontext():
            return t.clone()
    return tree_map(one, args), tree_map(one, kwargs)


def call(loaded: Loaded, model, args, kwargs, rec=None):
    """Run forward; the model's own error becomes a message with the inputs that were tried."""
    import torch
    # --meta: factory calls inside forward (torch.ones for a mask) must land on the meta device too
    device = torch.device("meta") if _on_meta(args, kwargs) else contextlib.nullcontext()
    old = sys.getrecursionlimit()
    # The recorder's module hooks make torch run each module call through one more frame (4 a level
    # where plain PyTorch takes 3), and the recorder itself adds a few at the innermost op: the limit
    # grows by as much, so a model nested as deep as plain PyTorch allows runs here too. The C stack
    # is no deeper than plain PyTorch's: one native call per module level either way.
    sys.setrecursionlimit(old + old // 3 + HOOK_FRAMES)
    try:
        with device:
            return _dispatch(loaded, model, args, kwargs, rec)
    except CgvizError:
        raise
    except NotImplementedError:
        raise
    except RecursionError:
        deep = getattr(rec, "deepest", 0)
        nest = f"its module calls were nested {deep} deep when it did, and " if deep > 50 else ""
        raise CgvizError(f"the model's forward went past Python's recursion limit of {old:,} calls: {nest}plain "
                         "PyTorch stops at that limit too (each nested module call takes 3 Python frames). "
                         "If the model is meant to be that deep, raise the limit where the model is built "
                         f"(sys.setrecursionlimit({max(10_000, 2 * old)}) in the model file).") from None
    except Exception as e:
        msg = str(e).strip().splitlines()
        text = (msg[0] if msg else "")[:400]
        # point at the inputs only when the error is about them (a shape, a size, a dtype): an error
        # from elsewhere sent users to re-check inputs that were fine
        hint = (f". Check {spell('input_shape')} (one per input, in forward's order) or pass "
                f"{spell('input', metavar='FILE')}"
                if _INPUT_TROUBLE.search(text) else "")
        raise CgvizError(f"the model's forward failed on inputs {describe(args, kwargs)}: "
                         f"{type(e).__name__}: {text}{user_frame(e)}{hint}.") from None
    finally:
        sys.setrecursionlimit(old)


HOOK_FRAMES = 200      # frames the recorder may add under the innermost module call


_INPUT_TROUBLE = re.compile(r"shape|size|dimension|dtype|mat1|mat2|channels|expected input|"
                            r"index out of range|out of bounds|must match|cannot be multiplied|"
                            r"Expected .*(tensor|scalar type|Long|Float)", re.I)


def _on_meta(args, kwargs) -> bool:
    return any(t.device.type == "meta" for t in flat_tensors((args, kwargs)))


def _dispatch(loaded: Loaded, model, args, kwargs, rec):
    from .sources import by_kind
    source = by_kind(loaded.kind)
    if rec is not None and source is not None and source.run is not None:
        return source.run(model, args, kwargs, rec)
    return model(*args, **kwargs)


def _run_export(gm, args, kwargs, rec):
    """Run a torch.export program node by node so each op lands in the module recorded in its
    `nn_module_stack` (the program has no live submodules for hooks to see)."""
    import torch.fx
    from ..core.ir import Frame

    class Scoped(torch.fx.Interpreter):
        def run_node(self, n):
            frames = []
            for key, (path, cls) in (n.meta.get("nn_module_stack") or {}).items():
                if not path:
                    continue
                nth = 1
                if "@" in key:   # repeated calls of one module are keyed name@1, name@2 …
                    tail = key.rsplit("@", 1)[1]
                    nth = int(tail) + 1 if tail.isdigit() else 1
                frames.append(Frame(path, str(cls).rsplit(".", 1)[-1], nth))
            rec.set_stack(frames)
            return super().run_node(n)

    flat = gm.graph._codegen.process_inputs(*args, **kwargs) if kwargs else \
        gm.graph._codegen.process_inputs(*args)
    # inputs are flattened and outputs unflattened here, once: Interpreter.run would do both again by
    # default, and unflattening a dict output twice broke every program whose output is a dict or a
    # tuple holding a multi-output op's result (a GRU's h_n)
    out = Scoped(gm).run(*flat, enable_io_processing=False)
    rec.set_stack([])
    return gm.graph._codegen.process_outputs(out)


def parameters_and_buffers(model):
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    return params, buffers


def named_inputs(model, args, kwargs):
    """(name, tensor) for every input tensor: `x`, `batch.image`, `inputs.0` (forward's names)."""
    names = input_names(model, args, kwargs)
    out = []
    for name, value in zip(names, list(args) + list(kwargs.values()), strict=True):
        out.extend(named_tensors(name, value))
    return out


def backward(loss) -> None:
    """loss.backward(), with the model's own autograd error (an in-place change to a saved tensor,
    say) as a message instead of a traceback."""
    try:
        loss.backward()
    except RuntimeError as e:
        text = str(e).strip().splitlines()[0][:400]
        raise CgvizError(f"the backward pass failed (plain PyTorch fails the same way on this model): "
                         f"{text}") from None


def grad_fns(*tensors) -> list:
    """Every autograd node behind `tensors`, each after all the nodes that consume it (topological).

    Holding these and then letting them go one by one with `release` frees a deep graph without
    recursion. Freed from its output, a chain of grad_fns is destroyed recursively in C++, a few
    native frames per node; once the recorder's hooks have given the nodes Python objects, a chain
    of ~15,000 ops (a 20,000-op model, an RNN over 8,000 steps) overflows the 8 MB stack: a segfault
    with no message, where plain PyTorch, whose nodes have no Python objects, frees them in a loop."""
    order: list = []
    seen: set[int] = set()
    for t in tensors:
        root = getattr(t, "grad_fn", None)
        if root is None or id(root) in seen:
            continue
        seen.add(id(root))
        stack = [(root, iter(root.next_functions))]
        while stack:               # depth-first, each node listed once all its inputs are
            fn, rest = stack[-1]
            for nxt, _ in rest:
                if nxt is not None and id(nxt) not in seen:
                    seen.add(id(nxt))        # every node seen stays alive in `stack` or `order`
                    stack.append((nxt, iter(nxt.next_functions)))
                    break
            else:
                stack.pop()
                order.append(fn)
    order.reverse()                 # consumers first
    return order


def release(fns: list) -> None:
    """Drop the nodes `grad_fns` listed, consumers first: each node's inputs are still held by the
    list when it goes, so freeing one frees nothing else."""
    for i in range(len(fns)):
        fns[i] = None
    fns.clear()
