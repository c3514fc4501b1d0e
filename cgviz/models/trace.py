"""Run a loaded model forward and backward once, recording the graph of the chosen view."""

from __future__ import annotations

import contextlib
import re

from dataclasses import dataclass, field

from ..errors import CgvizError
from ..ir import Graph
from .inputs import (InputSpec, check_input_sizes, compute_loss, describe, flat_tensors, input_names, load_inputs,
                     make_inputs, named_tensors)
from .load import Loaded, user_frame
from .summary import ModelRun


@dataclass(frozen=True)
class TraceOptions:
    input_shapes: tuple[InputSpec, ...] = ()
    input_file: str | None = None
    dtype: str | None = None          # None: as saved
    loss: str | None = None           # None: the output if scalar, else sum
    seed: int = 0
    view: str = "ops"                 # ops | autograd
    mode: str | None = None           # train | eval | None (as saved)
    meta: bool = False
    profile: int = 0                  # --profile-runs: measured passes after the drawn one (0: none)
    max_elements: int | None = None   # per --input-shape input; None: inputs.INPUT_ELEMENT_LIMIT


@dataclass
class Traced:
    graph: Graph
    run: ModelRun
    notes: list[str] = field(default_factory=list)


def _prepare(loaded: Loaded, opts: TraceOptions):
    """Mode, dtype and inputs; returns (model, args, kwargs)."""
    import torch
    model = loaded.model
    if opts.mode:
        if loaded.kind == "export":
            raise CgvizError(f"{loaded.path} is a torch.export program: it runs in the mode it was "
                             f"exported in, and --{opts.mode} cannot change that. Export it again "
                             f"after model.{opts.mode}() instead.")
        model.train(opts.mode == "train")
    if opts.meta and loaded.kind != "python":
        # A Python file was already built on the meta device; a saved model holds real weights,
        # which move there so that nothing is computed (shapes only, as asked).
        try:
            model = model.to("meta")
        except Exception as e:
            raise CgvizError(f"--meta: this {loaded.description} cannot move to the meta device "
                             f"({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    float_dtype = getattr(torch, opts.dtype) if opts.dtype else _model_float_dtype(model)
    if opts.dtype and not opts.meta:
        model.to(float_dtype)
    device = "meta" if opts.meta else "cpu"
    if opts.input_file:
        if opts.input_shapes:
            raise CgvizError("give either --input FILE or --input-shape, not both")
        args, kwargs = load_inputs(opts.input_file, model)
    elif opts.input_shapes:
        if not opts.meta:     # meta tensors allocate nothing, whatever their shape
            check_input_sizes(opts.input_shapes, opts.max_elements)
        args, kwargs = make_inputs(list(opts.input_shapes), model, float_dtype, opts.seed, device), {}
    elif loaded.example_args is not None or loaded.example_kwargs:
        args, kwargs = tuple(loaded.example_args or ()), dict(loaded.example_kwargs or {})
    else:
        names = input_names(model, (), {})
        want = f" (its forward takes {', '.join(names)})" if names else ""
        raise CgvizError(f"{loaded.path} comes with no example inputs{want}: give one --input-shape "
                         "per input, e.g. --input-shape 1,3,32,32 (or 1,64:long for token ids), or "
                         "--input inputs.pt")
    cast_to = float_dtype if opts.dtype else None
    args, kwargs = _cast(args, cast_to, device), _cast(kwargs, cast_to, device)
    return model, args, kwargs


def _model_float_dtype(model):
    import torch
    for p in model.parameters():
        if p.is_floating_point():
            return p.dtype
    return torch.float32


def _cast(obj, dtype, device):
    import torch
    from torch.utils._pytree import tree_map

    def one(t):
        if not isinstance(t, torch.Tensor):
            return t
        t = t.detach()
        if device == "meta" and t.device.type != "meta":
            t = t.to("meta")
        if dtype is not None and t.is_floating_point():
            t = t.to(dtype)
        if t.is_floating_point():
            t = t.clone().requires_grad_(device != "meta")
        return t
    return tree_map(one, obj)


def _call(loaded: Loaded, model, args, kwargs, rec=None):
    """Run forward; the model's own error becomes a message with the inputs that were tried."""
    import torch
    # --meta: factory calls inside forward (torch.ones for a mask) must land on the meta device too
    device = torch.device("meta") if _on_meta(args, kwargs) else contextlib.nullcontext()
    try:
        with device:
            return _dispatch(loaded, model, args, kwargs, rec)
    except CgvizError:
        raise
    except NotImplementedError:
        raise
    except Exception as e:
        msg = str(e).strip().splitlines()
        text = (msg[0] if msg else "")[:400]
        # point at the inputs only when the error is about them (a shape, a size, a dtype): an error
        # from elsewhere sent users to re-check inputs that were fine
        hint = (". Check --input-shape (one per input, in forward's order) or pass --input FILE"
                if _INPUT_TROUBLE.search(text) else "")
        raise CgvizError(f"the model's forward failed on inputs {describe(args, kwargs)}: "
                         f"{type(e).__name__}: {text}{user_frame(e)}{hint}.") from None


_INPUT_TROUBLE = re.compile(r"shape|size|dimension|dtype|mat1|mat2|channels|expected input|"
                            r"index out of range|out of bounds|must match|cannot be multiplied|"
                            r"Expected .*(tensor|scalar type|Long|Float)", re.I)


def _on_meta(args, kwargs) -> bool:
    return any(t.device.type == "meta" for t in flat_tensors((args, kwargs)))


def _dispatch(loaded: Loaded, model, args, kwargs, rec):
    if rec is not None and loaded.kind == "export":
        return _run_export(model, args, kwargs, rec)
    if rec is not None and loaded.kind == "torchscript":
        from .script import run_script
        return run_script(model, args, kwargs, scope=rec.scope)
    return model(*args, **kwargs)


def _run_export(gm, args, kwargs, rec):
    """Run a torch.export program node by node so each op lands in the module recorded in its
    `nn_module_stack` (the program has no live submodules for hooks to see)."""
    import torch.fx
    from .record import Frame

    class Scoped(torch.fx.Interpreter):
        def run_node(self, n):
            frames = []
            for key, (path, cls) in (n.meta.get("nn_module_stack") or {}).items():
                if not path:
                    continue
                call = 1
                if "@" in key:   # repeated calls of one module are keyed name@1, name@2 …
                    tail = key.rsplit("@", 1)[1]
                    call = int(tail) + 1 if tail.isdigit() else 1
                frames.append(Frame(path, str(cls).rsplit(".", 1)[-1], call))
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


def trace(loaded: Loaded, opts: TraceOptions) -> Traced:
    """Forward and backward once; the graph and what flowed through it."""
    import torch
    model, args, kwargs = _prepare(loaded, opts)
    torch.manual_seed(opts.seed)    # dropout and friends draw the same numbers every run
    if opts.profile and opts.view == "autograd":
        raise CgvizError("--profile attributes time to the ops the model ran; it cannot be combined "
                         "with --view autograd (leave that out)")
    if opts.profile and opts.meta:
        raise CgvizError("--profile needs a real forward and backward pass; it cannot be combined with --meta")
    with _eager():
        if opts.view == "autograd":
            return _trace_autograd(loaded, model, args, kwargs, opts)
        traced = _trace_ops(loaded, model, args, kwargs, opts)
    if opts.profile:
        if traced.run.meta.get("view") != "ops":
            traced.notes.append("--profile: not measured, since the ops view could not follow this model")
        else:
            # after the drawn run, whose values and gradients are already summarised: the measured
            # passes change nothing that is drawn
            from .profile import measure, restrict
            prof = measure(loaded, model, args, kwargs, opts)
            ops = [n.id for n in traced.graph if n.kind == "op"]
            restrict(prof, ops)
            missing = sum(1 for i in ops if i not in prof.nodes)
            if missing:
                traced.notes.append(f"--profile: {missing} of {len(ops)} drawn ops were not seen in the "
                                    "measured run (the model did not run the same ops twice); their time "
                                    "counts as not attributed")
            traced.run.profile = prof
    return traced


@contextlib.contextmanager
def _eager():
    """torch.compile'd functions run eagerly while cgviz records: dynamo would otherwise trace cgviz's
    own recorder (a TorchFunctionMode) into every compiled region, recompile per call until its limit
    and print pages of warnings; eager, their ops are recorded one by one like the rest of the model.

    Setting the stance imports torch._dynamo, ~0.5-3 s on its own (a fifth of `cgviz torch` on
    ResNet-50), which a model that never compiles anything does not need. So the stance is set up
    front only when dynamo is already loaded (the model file compiled something); otherwise
    torch.compile is wrapped for the duration, and the first call of it (a forward that compiles
    lazily) sets the stance before anything is compiled."""
    import sys

    import torch
    set_stance = getattr(getattr(torch, "compiler", None), "set_stance", None)
    if set_stance is None:
        yield
        return
    with contextlib.ExitStack() as stack:
        if "torch._dynamo" in sys.modules:
            stack.enter_context(set_stance("force_eager"))
            yield
            return
        real = torch.compile
        entered = []

        def compile_eagerly(*args, **kwargs):
            if not entered:
                stack.enter_context(set_stance("force_eager"))
                entered.append(True)
            return real(*args, **kwargs)

        torch.compile = compile_eagerly
        try:
            yield
        finally:
            if torch.compile is compile_eagerly:
                torch.compile = real


def _named(model):
    params = dict(model.named_parameters())
    buffers = dict(model.named_buffers())
    return params, buffers


def _trace_ops(loaded, model, args, kwargs, opts) -> Traced:
    import torch
    from .record import Recorder, module_hooks
    params, buffers = _named(model)
    grads = not opts.meta
    rec = Recorder(params, buffers, grads=grads)
    for name, t in _named_inputs(model, args, kwargs):
        rec.add_input(name, t)
    handles = module_hooks(model, rec) if loaded.kind not in ("export", "torchscript") else []
    notes = []
    try:
        with rec, torch.enable_grad() if grads else torch.no_grad():
            try:
                out = _call(loaded, model, args, kwargs, rec)
            except NotImplementedError as e:
                raise _Fallback(str(e)) from None
            with rec.scope("loss", "Loss"):
                loss, kind = compute_loss(out, opts.loss, opts.seed)
    except _Fallback as e:
        for h in handles:
            h.remove()
        notes.append(f"the ops view cannot follow this TorchScript model ({e}); drawing the autograd "
                     "view instead")
        traced = _trace_autograd(loaded, model, args, kwargs, opts)
        traced.notes[:0] = notes
        return traced
    finally:
        for h in handles:
            h.remove()
    loss_id = rec.source_of(loss)
    if loss_id is None:
        raise CgvizError("cgviz could not follow the model's computation to its output")
    if grads:
        if not loss.requires_grad:
            raise CgvizError("the output does not depend on any parameter or input that needs a "
                             "gradient (is the model's forward under torch.no_grad?)")
        _backward(loss)
    graph, run = rec.finish(loss_id)
    run.loss = None if opts.meta else float(loss.detach())
    _describe(run, loaded, model, "ops", kind, args, kwargs, params)
    return Traced(graph, run, notes)


def _named_inputs(model, args, kwargs):
    """(name, tensor) for every input tensor: `x`, `batch.image`, `inputs.0` (forward's names)."""
    names = input_names(model, args, kwargs)
    out = []
    for name, value in zip(names, list(args) + list(kwargs.values()), strict=True):
        out.extend(named_tensors(name, value))
    return out


def _backward(loss) -> None:
    """loss.backward(), with the model's own autograd error (an in-place change to a saved tensor,
    say) as a message instead of a traceback."""
    try:
        loss.backward()
    except RuntimeError as e:
        text = str(e).strip().splitlines()[0][:400]
        raise CgvizError(f"the backward pass failed (plain PyTorch fails the same way on this model): "
                         f"{text}") from None


class _Fallback(Exception):
    pass


def _describe(run: ModelRun, loaded: Loaded, model, view: str, loss_kind: str, args, kwargs, params) -> None:
    """What the JSON's `model` field and the caption say about the run, and every parameter's grad."""
    from .summary import TensorInfo
    run.meta.update(kind=loaded.kind, view=view, loss=loss_kind, mode="train" if model.training else "eval",
                    inputs=describe(args, kwargs), params=sum(p.numel() for p in params.values()))
    for name, p in params.items():
        if name not in run.param_grads:
            run.param_grads[name] = TensorInfo.of(p.grad) if p.grad is not None else None


def _trace_autograd(loaded, model, args, kwargs, opts) -> Traced:
    import torch
    from .autograd import AutogradRecorder
    if opts.meta:
        raise CgvizError("--view autograd needs a real backward pass; it cannot be combined with --meta")
    params, _ = _named(model)
    with torch.enable_grad():
        out = _call(loaded, model, args, kwargs)
        loss, kind = compute_loss(out, opts.loss, opts.seed)
    if not loss.requires_grad:
        raise CgvizError("the output does not depend on any parameter or input that needs a gradient")
    inputs = dict(_named_inputs(model, args, kwargs))
    rec = AutogradRecorder(loss, params, inputs)
    _backward(loss)
    graph, run = rec.result()
    run.loss = float(loss.detach())
    _describe(run, loaded, model, "autograd", kind, args, kwargs, params)
    return Traced(graph, run, [])

