"""`cgviz check MODEL`: the gradients `cgviz torch` shows against plain PyTorch and float64 finite differences.

Three runs of the same model on the same inputs with the same loss and seed:
1. `trace` as `cgviz torch` runs it (recorded), which yields the numbers cgviz shows;
2. plain PyTorch, no recording: `torch.autograd.grad` of the loss w.r.t. parameters and float inputs;
3. a float64 copy, for central differences at a deterministic sample of each tensor's elements.
Dropout draws its masks from the global generator, which is re-seeded before every forward, so
every run (and every finite-difference step) sees the same masks; batch norm in training mode uses
the batch's statistics, a deterministic function of the inputs, so differences stay meaningful.
"""

from __future__ import annotations

import copy
import math
import warnings

import numpy as np

from ..core.errors import CgvizError
from ..pytorch.state import given_back, seed
from .expression import (ATOL, FD_ATOL, FD_RTOL, FD_SAMPLES, RTOL, Report, TensorCheck, central_differences, close,
                         errors, grad_label, judge_fd, sample_indices)

STATS = ("norm", "mean", "min", "max")


def _np(t) -> np.ndarray:
    t = t.detach()
    if t.layout != _strided():        # a sparse gradient (Embedding(sparse=True)), a sparse input
        t = t.to_dense()
    return t.to("cpu").double().numpy()


def _strided():
    import torch
    return torch.strided


@given_back()
def check_model(spec: str, opts, *, trust: bool = False, weights: str | None = None, rtol: float = RTOL,
                atol: float = ATOL, fd_rtol: float = FD_RTOL, fd_atol: float = FD_ATOL,
                fd_samples: int = FD_SAMPLES) -> Report:
    """Load and trace MODEL as `cgviz torch` does, then check every parameter's and float input's
    gradient. `opts` is a models.trace.TraceOptions."""
    from ..core.needs import require_torch
    torch = require_torch(f"checking the model {spec}")

    from dataclasses import replace

    from ..pytorch.load import load_model
    from ..pytorch.loss import resolve
    from ..core.summary import TensorInfo
    from ..pytorch.run import call, fresh_inputs, named_inputs, prepare
    from ..pytorch.trace import trace

    if opts.meta:
        raise CgvizError("cgviz check needs real values; it cannot run on the meta device")
    loaded = load_model(spec, trust=trust, weights=weights)
    # the loss once, for all three runs: the same function, module and targets (check_gradients'
    # loss= and targets=, or --loss and --targets)
    opts = replace(opts, loss=resolve(loaded, opts), targets=None, targets_file=None)
    traced = trace(loaded, opts)
    graph, run = traced.graph, traced.run
    report = Report(loaded.path, tolerances={"rtol": rtol, "atol": atol, "fd_rtol": fd_rtol, "fd_atol": fd_atol,
                                             "fd_samples": fd_samples})
    report.notes.extend(traced.notes)

    # 2. plain PyTorch: the same preparation (mode, dtype, inputs) and seed, no recorder, no hooks
    model, args, kwargs = prepare(loaded, opts)
    params = {n: p for n, p in model.named_parameters() if p.requires_grad and p.is_floating_point()}
    inputs = {n: t for n, t in named_inputs(model, args, kwargs)
              if isinstance(t, torch.Tensor) and t.is_floating_point() and t.requires_grad}
    seed(opts.seed)
    with torch.enable_grad():
        out = call(loaded, model, *fresh_inputs(args, kwargs))
        loss = opts.loss(out, opts.seed).tensor
        wrt = list(params.values()) + list(inputs.values())
        plain = torch.autograd.grad(loss, wrt, allow_unused=True)
    plain_grads = dict(zip(list(params) + list(inputs), plain))
    loss_value = float(loss.detach())
    if run.loss is None or not np.isclose(run.loss, loss_value, rtol=rtol, atol=atol, equal_nan=True):
        report.forward_bad.append(f"loss (cgviz {run.loss!r}, plain PyTorch {loss_value!r})")

    dtype = next(iter(params.values())).dtype if params else torch.float64
    fd_scale = 0.0 if dtype == torch.float64 else math.sqrt(float(torch.finfo(dtype).eps))
    if fd_scale:
        report.notes.append(f"the model runs in {str(dtype).replace('torch.', '')}: finite differences "
                            f"(in float64) are compared with a tolerance widened by {fd_scale:.1e} of each "
                            "tensor's largest gradient and relative tolerance at least that")

    # cgviz's numbers: parameters by qualified name; inputs from their graph nodes
    shown: dict[str, TensorInfo | None] = {}
    kinds: dict[str, str] = {}
    for name in params:
        shown[name] = run.param_grads.get(name)
        kinds[name] = "param"
    input_nodes = {n.name: n.id for n in graph if n.kind == "input"}
    for name in inputs:
        shown[name] = run.grads.get(input_nodes[name]) if name in input_nodes else None
        kinds[name] = "input"
    # an input the drawn graph has no box for (the autograd view names leaves its own way): nothing
    # of cgviz's to compare, so only finite differences check torch's gradient there
    unshown = {n for n in inputs if n not in input_nodes}
    if unshown:
        report.notes.append(f"cgviz's graph shows no gradient for input {', '.join(sorted(unshown))}; "
                            "finite differences check plain PyTorch's gradient there instead")

    # 3. a float64 copy for finite differences. Hundreds of small forwards: on one thread they run
    # 10× faster on a busy machine than with torch's intra-op threads spinning for idle cores.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        _check_rows(report, params, inputs, plain_grads, shown, kinds, loaded, model, args, kwargs, opts,
                    rtol, atol, fd_rtol, fd_atol, fd_samples, dtype, unshown)
    finally:
        torch.set_num_threads(threads)
    if any(r.kinks for r in report.rows):
        report.notes.append("a kink is an element where the loss has no derivative (a ReLU input at 0, a "
                            "max-pool tie): the one-sided differences disagree there, and the gradient "
                            "only has to lie between them")
    if any(r.torch_what == "stats" and r.fd_ok is not None for r in report.rows):
        report.notes.append("for tensors marked * the finite differences are compared with plain "
                            "PyTorch's full gradient, as cgviz keeps only statistics of it")
    if not params and not inputs:
        report.notes.append("the model has no float parameter or input that needs a gradient")
    return report


def _check_rows(report, params, inputs, plain_grads, shown, kinds, loaded, model, args, kwargs, opts,
                rtol, atol, fd_rtol, fd_atol, fd_samples, dtype, unshown=frozenset()) -> None:
    """One TensorCheck per parameter and float input: cgviz vs plain PyTorch, then vs finite differences."""
    import torch

    from ..core.summary import TensorInfo

    eps = float(torch.finfo(dtype).eps)
    # cgviz and plain PyTorch run the same kernels, so they agree to rounding in the model's dtype;
    # a float32 gradient is then ~1e-7 of its tensor's largest element off where sums cancel.
    torch_atol_scale = 0.0 if dtype == torch.float64 else 16 * eps
    # Finite differences run in float64, but the gradients they are compared with carry the model's
    # own rounding: allow √eps of the dtype (3e-4 for float32) of the tensor's largest gradient.
    fd_scale = 0.0 if dtype == torch.float64 else math.sqrt(eps)
    fd_fn, fd_note = _fd_setup(loaded, model, args, kwargs, opts, list(params), list(inputs))
    if fd_note:
        report.notes.append(fd_note)
    f0 = fd_fn(None, 0, 0.0) if fd_fn else None

    for name in list(params) + list(inputs):
        ref_t = plain_grads[name]
        tensor = params.get(name, inputs.get(name))
        shape = tuple(int(s) for s in tensor.shape)
        info = shown[name]
        ref = np.zeros(shape) if ref_t is None else _np(ref_t)
        row = TensorCheck(name, kinds[name], shape, _label(info))
        # cgviz vs plain PyTorch: the full tensor where cgviz keeps it, else its statistics
        if name in unshown:
            row.grad = grad_label(ref)
        elif info is None:
            row.torch_abs, row.torch_rel = errors(np.zeros(1), np.abs(ref).max(initial=0.0).reshape(1))
            row.torch_ok = not np.any(ref)
            if not row.torch_ok:
                row.bad.append("cgviz shows no gradient, plain PyTorch computes one")
        elif info.values is not None:
            a = np.asarray(info.values, dtype=np.float64).reshape(shape)
            tol_a = atol + torch_atol_scale * float(np.abs(ref).max(initial=0.0))
            row.torch_abs, row.torch_rel = errors(a, ref)
            row.torch_ok = bool(close(a, ref, rtol, tol_a).all())
            if not row.torch_ok:
                row.bad.append(f"differs from plain PyTorch: cgviz {grad_label(a)}, torch {grad_label(ref)}")
        else:
            row.torch_what = "stats"
            want = TensorInfo.of(ref_t).stats
            a = np.array([info.stats[k] for k in STATS], dtype=np.float64)
            b = np.array([want[k] for k in STATS], dtype=np.float64)
            tol_a = atol + torch_atol_scale * float(np.abs(b).max(initial=0.0))
            row.torch_abs, row.torch_rel = errors(a, b)
            row.torch_ok = bool(close(a, b, rtol, tol_a).all())
            if not row.torch_ok:
                diff = ", ".join(f"{k} {x:.6g} vs {y:.6g}" for k, x, y in zip(STATS, a, b) if x != y)
                row.bad.append(f"its statistics differ from plain PyTorch's (cgviz vs torch): {diff}")
        # finite differences against cgviz's full gradient, or torch's where cgviz keeps only stats
        if fd_fn is not None:
            g = np.asarray(info.values, dtype=np.float64).reshape(-1) if (info is not None and info.values is not None) \
                else ref.reshape(-1)
            idx = sample_indices(int(np.prod(shape, dtype=np.int64)), fd_samples, name)
            flat = _np(tensor).reshape(-1)
            fd = central_differences(lambda i, v, name=name: fd_fn(name, i, v), flat, f0, idx)
            scale = fd_scale * float(np.abs(g).max(initial=0.0))
            judge_fd(row, g, fd, max(fd_rtol, fd_scale), fd_atol, scale_atol=scale)
        report.rows.append(row)


def _label(info) -> str:
    if info is None:
        return "none"
    if info.values is not None:
        return grad_label(info.values)
    from ..core.fmt import num
    return "‖g‖=" + num(info.stats["norm"])


def _fd_setup(loaded, model, args, kwargs, opts, param_names, input_names):
    """f(name, i, v) → the float64 loss with element i of tensor `name` set to v (None: unchanged),
    or (None, why) when the model cannot run in float64."""
    import torch

    from ..pytorch.run import call, cast, fresh_inputs, named_inputs

    try:
        with warnings.catch_warnings():
            # deep-copying an exported program's module trips torch's own deprecation warnings
            warnings.simplefilter("ignore")
            m64 = copy.deepcopy(model).to(torch.float64)
    except Exception as e:
        return None, (f"finite differences skipped: this {loaded.description} cannot be copied to float64 "
                      f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})")
    a64, k64 = cast(args, torch.float64, "cpu"), cast(kwargs, torch.float64, "cpu")
    loss64 = opts.loss.to(torch.float64)      # float targets in float64 too
    tensors = dict(m64.named_parameters())
    tensors.update({n: t for n, t in named_inputs(m64, a64, k64)})
    # a sparse or nested tensor has no flat view to nudge element by element: it is left unchecked
    flats = {n: tensors[n].detach().view(-1) for n in list(param_names) + list(input_names)
             if n in tensors and tensors[n].layout == torch.strided and not tensors[n].is_nested}

    def loss_of() -> float:
        seed(opts.seed)    # the same dropout masks on every forward
        with torch.no_grad():
            out = call(loaded, m64, *fresh_inputs(a64, k64))     # a model may change its input in place
            loss = loss64(out, opts.seed).tensor
        return float(loss)

    try:
        first = loss_of()
        probe = [t for t in _flat_outputs(m64, a64, k64, loaded, opts) if t.is_floating_point()]
    except CgvizError as e:
        return None, f"finite differences skipped: the model does not run in float64 ({str(e)[:200]})"
    if any(t.dtype != torch.float64 for t in probe):
        return None, ("finite differences skipped: the model's output stays "
                      f"{str(probe[0].dtype).replace('torch.', '')} when its weights are float64 (it casts "
                      "inside forward), and differences in that precision would be noise")

    def f(name, i, v) -> float:
        if name is None:
            return first
        flat = flats[name]
        old = flat[i].item()
        flat[i] = v
        try:
            return loss_of()
        finally:
            flat[i] = old
    missing = [n for n in list(param_names) + list(input_names) if n not in flats]
    odd = [n for n in missing if n in tensors]
    if odd:
        return None, (f"finite differences skipped: {', '.join(odd[:3])} is sparse or nested, and has no "
                      "elements to nudge one by one")
    if missing:
        return None, f"finite differences skipped: the float64 copy lacks {', '.join(missing[:3])}"
    return f, None


def _flat_outputs(m64, a64, k64, loaded, opts):
    import torch

    from ..pytorch.inputs import flat_tensors
    from ..pytorch.run import call, fresh_inputs
    seed(opts.seed)
    with torch.no_grad():
        return flat_tensors(call(loaded, m64, *fresh_inputs(a64, k64)))
