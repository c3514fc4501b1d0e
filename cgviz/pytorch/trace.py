"""Run a loaded model forward and backward once, recording the graph of the chosen view."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field, replace
from typing import Any

from ..core.errors import CgvizError
from ..core.spelling import spell
from ..core.ir import Graph
from .inputs import InputSpec, describe, flat_tensors, named_tensors
from .load import Loaded
from .loss import check_connected
from .run import backward, call, fresh_inputs, grad_fns, named_inputs, parameters_and_buffers, prepare, release
from .state import given_back, lend_grad, seed
from ..core.summary import RunSummary, TensorInfo


@dataclass(frozen=True)
class TraceOptions:
    input_shapes: tuple[InputSpec, ...] = ()
    input_file: str | None = None
    dtype: str | None = None          # None: as saved
    # cgviz.pytorch.loss: None (the model's own loss, else a scalar output, else the output's sum), a
    # name, a function name of the model file or MODULE:FUNCTION, a callable, an nn.Module loss, a Loss
    loss: Any = None
    targets: Any = None               # tensors the loss compares the output with (draw's targets=)
    targets_file: str | None = None   # --targets FILE
    seed: int = 0
    view: str = "ops"                 # ops | autograd
    mode: str | None = None           # train | eval | None (as saved)
    meta: bool = False
    profile: int = 0                  # --profile-runs: measured passes after the drawn one (0: none)
    max_elements: int | None = None   # per --input-shape input; None: inputs.INPUT_ELEMENT_LIMIT
    dims: dict | None = None          # --dim NAME=SIZE: an ONNX graph's symbolic dimensions


@dataclass
class Traced:
    graph: Graph
    run: RunSummary
    notes: list[str] = field(default_factory=list)
    loss_fallback: bool = False       # backward started from the output's sum, for want of a loss
    # input → (the ops that read it off the loss's path, its value): what the loss does not depend on
    unread: dict[str, tuple[list[str], TensorInfo | None]] = field(default_factory=dict)


@given_back()
def trace(loaded: Loaded, opts: TraceOptions) -> Traced:
    """Forward and backward once; the graph and what flowed through it. The model, its inputs and
    the random generators are given back as they were when the outermost cgviz call ends."""
    from .loss import resolve
    # the loss first: a mistake in --loss or --targets is said before the model runs
    opts = replace(opts, loss=resolve(loaded, opts), targets=None, targets_file=None)
    model, args, kwargs = prepare(loaded, opts)
    seed(opts.seed)    # dropout and friends draw the same numbers every run
    if opts.profile and opts.view == "autograd":
        raise CgvizError(f"{spell('profile')} attributes time to the ops the model ran; it cannot be combined "
                         f"with {spell('view', 'autograd')} (leave that out)")
    if opts.profile and opts.meta:
        raise CgvizError(f"{spell('profile')} needs a real forward and backward pass; it cannot be combined with "
                         f"{spell('meta')}")
    with _eager():
        if opts.view == "autograd":
            return _trace_autograd(loaded, model, args, kwargs, opts)
        traced = _trace_ops(loaded, model, args, kwargs, opts)
    if opts.profile:
        if traced.run.meta.get("view") != "ops":
            traced.notes.append(f"{spell('profile')}: not measured, since the ops view could not follow this model")
        else:
            # after the drawn run, whose values and gradients are already summarised: the measured
            # passes change nothing that is drawn
            from .profile import measure, restrict
            prof = measure(loaded, model, args, kwargs, opts)
            ops = [n.id for n in traced.graph if n.kind == "op"]
            restrict(prof, ops)
            missing = sum(1 for i in ops if i not in prof.nodes)
            if missing:
                traced.notes.append(f"{spell('profile')}: {missing} of {len(ops)} drawn ops were not seen in the "
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


def _trace_ops(loaded, model, args, kwargs, opts) -> Traced:
    import torch
    from .record import Recorder, functions, module_hooks
    params, buffers = parameters_and_buffers(model)
    grads = not opts.meta
    rec = Recorder(params, buffers, grads=grads)
    fresh_args, fresh_kwargs = fresh_inputs(args, kwargs)
    for name, t in named_inputs(model, fresh_args, fresh_kwargs):
        rec.add_input(name, t)
    for name, t in named_tensors("targets", opts.loss.targets):
        rec.add_input(name, t)          # drawn as data, where the loss reads them
    handles = module_hooks(model, rec) if loaded.kind not in ("export", "torchscript") else []
    notes = []
    try:
        with rec, functions(rec), torch.enable_grad() if grads else torch.no_grad():
            try:
                out = call(loaded, model, fresh_args, fresh_kwargs, rec)
            except NotImplementedError as e:
                raise _Fallback(str(e)) from None
            with rec.scope("loss", "Loss"):
                value = opts.loss(out, opts.seed)
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
    loss = value.tensor
    if grads:
        check_connected(value, out, opts.loss.what)
    loss_id = rec.source_of(loss)
    if loss_id is None:
        raise CgvizError("cgviz could not follow the model's computation to its output")
    if grads:
        backward(loss)
    graph, run = rec.finish(loss_id)
    run.loss = None if opts.meta else float(loss.detach())
    _describe(run, loaded, model, "ops", value.tag, args, kwargs, params)
    traced = Traced(graph, run, notes + run.notes + _loss_notes(value, out), loss_fallback=value.fallback,
                    unread=unread_inputs(rec.graph, graph, run))
    # the graph autograd kept is freed node by node, not recursively from the loss (run.grad_fns)
    fns = grad_fns(loss, *flat_tensors(out))
    del loss, out, value
    release(fns)
    return traced


def _loss_notes(value, out) -> list[str]:
    """What the picture should say about the loss beyond its tag: the model's own loss when another
    was drawn, and the loss's own notes."""
    from ..core.fmt import num
    from .loss import own_loss
    notes = list(value.notes)
    own = own_loss(out)
    if own is not None and own[0] is not value.tensor and own[0].device.type != "meta":
        notes.append(f"the model also computed its own loss ({own[1]} = {num(float(own[0].detach()))}); "
                     f"the picture's gradients are of the loss that was given ({value.tag})")
    return notes


def unread_inputs(full: Graph, kept: Graph, run: RunSummary) -> dict[str, tuple[list[str], TensorInfo | None]]:
    """Each named input the loss does not depend on (pruned from the picture's graph), with the ops
    that read it all the same, in the order they ran: `attention_mask` → [`to`, `all = True`] when
    Hugging Face's BERT tests an all-ones mask and leaves it off the data path. An op's small result
    is given, since it is what the model did with the input (a test whose answer steered Python)."""
    from ..core.fmt import num
    out: dict[str, tuple[list[str], TensorInfo | None]] = {}
    for n in full:
        if n.kind != "input" or n.id in kept:
            continue
        reached, ops = {n.id}, []
        for m in full:
            if m.kind == "op" and any(i in reached for i in m.inputs):
                reached.add(m.id)
                v = run.values.get(m.id)
                small = (v.values if isinstance(v, TensorInfo) and v.values is not None and v.values.size == 1
                         else None)
                ops.append(m.op + (f" = {_scalar(small, v.dtype, num)}" if small is not None else ""))
        v = run.values.get(n.id)
        out[n.name or n.id] = (ops, v if isinstance(v, TensorInfo) else None)
    return out


def _scalar(a, dtype: str, num) -> str:
    x = a.reshape(()).item()
    return str(bool(x)) if dtype == "bool" else num(x)


class _Fallback(Exception):
    pass


def _describe(run: RunSummary, loaded: Loaded, model, view: str, loss_kind: str, args, kwargs, params) -> None:
    """What the JSON's `model` field and the caption say about the run, and every parameter's grad."""
    from ..core.summary import TensorInfo
    run.meta.update(kind=loaded.kind, view=view, loss=loss_kind, mode="train" if model.training else "eval",
                    inputs=describe(args, kwargs), params=sum(p.numel() for p in params.values()))
    for name, p in params.items():
        if name not in run.param_grads:
            run.param_grads[name] = TensorInfo.of(p.grad) if p.grad is not None else None


def _trace_autograd(loaded, model, args, kwargs, opts) -> Traced:
    import torch
    from .autograd import AutogradRecorder
    if opts.meta:
        raise CgvizError(f"{spell('view', 'autograd')} needs a real backward pass; it cannot be combined with "
                         f"{spell('meta')}")
    params, _ = parameters_and_buffers(model)
    fresh_args, fresh_kwargs = fresh_inputs(args, kwargs)
    # the copies' own grad_fns, taken before forward may change a copy in place (and its grad_fn)
    copies = [t.grad_fn for _, t in named_inputs(model, fresh_args, fresh_kwargs)]
    with torch.enable_grad():
        out = call(loaded, model, fresh_args, fresh_kwargs)
        value = opts.loss(out, opts.seed)
    loss = value.tensor
    check_connected(value, out, opts.loss.what)
    inputs = dict(named_inputs(model, args, kwargs))
    rec = AutogradRecorder(loss, params, inputs, hidden=copies)
    for t in rec.leaf_tensors():
        lend_grad(t)        # the leaves backward accumulates into keep their own .grad
    backward(loss)
    graph, run = rec.result()
    run.loss = float(loss.detach())
    _describe(run, loaded, model, "autograd", value.tag, args, kwargs, params)
    traced = Traced(graph, run, _loss_notes(value, out), value.fallback)
    fns = grad_fns(loss, *flat_tensors(out))
    del loss, out, value
    release(fns)
    return traced

