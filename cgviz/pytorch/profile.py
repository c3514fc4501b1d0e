"""`cgviz torch --profile`: each recorded node's CPU time (forward and backward) and memory, from torch.profiler.

How a profiler event finds its node. The measured passes run under a light twin of the recorder
that computes the same node ids as the drawn run and wraps each torch call in a
`record_function("cgviz:<node id>")` range, so every aten op of the forward pass falls under its
node's range. Each forward aten op that creates an autograd node carries that node's sequence
number, and the backward pass's `autograd::engine::evaluate_function: XBackward0` events carry the
same number: that is how backward time goes to the op whose gradient it computes. Time outside
every range (gradient accumulation into `.grad`, ops of pruned nodes) is reported as unattributed.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
import time
from ..core.costs import Cost, Profile  # the result types, in the core: the views read them too

PREFIX = "cgviz:"
_BACKWARD = "autograd::engine::evaluate_function: "


# ---- measuring --------------------------------------------------------------------------------

def _marker_class():
    """The light recorder (a class made on first use: record.py imports torch)."""
    import torch
    from torch.autograd.profiler import record_function
    from torch.utils._pytree import tree_flatten

    from .record import Recorder, is_inplace, not_an_op, op_name

    class Marker(Recorder):
        """Gives each torch call the id the drawn run gave it and times it in a range of that name;
        records no values, gradients or graph (their cost would otherwise be measured too)."""

        def __init__(self, params, buffers, names: dict[str, str]):
            super().__init__(params, buffers, grads=False)
            self.names = names      # range name → node id, shared by every pass of one measurement

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = op_name(func)
            if self.paused or self._within or not_an_op(func, name):
                return func(*args, **kwargs)
            # A numbered range, named after the call: only then is it known whether the call makes
            # a node (a tensor result), and so which id it takes.
            key = f"{PREFIX}{len(self.names)}"
            self.names[key] = ""
            with record_function(key):
                out = func(*args, **kwargs)
            made = any(isinstance(t, torch.Tensor) for t in tree_flatten(out)[0]) or (
                is_inplace(func, kwargs) and bool(args) and isinstance(args[0], torch.Tensor))
            # a call that made no node (x.dim()) keeps a name no node has: its time is unattributed
            self.names[key] = self._unique(self.op_base(name)) if made else f"{name} (made no tensor)"
            return out

        def function(self, cls, apply, args, kwargs):
            """A custom Function is one node of the drawn run (Recorder.function): one range."""
            from torch.utils.checkpoint import CheckpointFunction
            if self._within or cls is CheckpointFunction:
                return super().function(cls, apply, args, kwargs)
            key = f"{PREFIX}{len(self.names)}"
            self.names[key] = ""
            self._within.append([])
            try:
                with record_function(key):
                    out = apply(*args, **kwargs)
            finally:
                self._within.pop()
            made = any(isinstance(t, torch.Tensor) for t in tree_flatten(out)[0])
            self.names[key] = self._unique(self.op_base(cls.__name__)) if made else f"{cls.__name__} (made no tensor)"
            return out

    return Marker


def _one_pass(marker, names, loaded, model, args, kwargs, opts, params, buffers) -> None:
    """Forward and backward as the drawn run did them (same seed, same scopes, fresh gradients), on
    inputs already copied for this pass (run.fresh_inputs, outside the measured time)."""
    import torch

    from .inputs import named_tensors
    from .record import functions, module_hooks
    from .run import backward, call, named_inputs
    from .state import seed
    inputs = named_inputs(model, args, kwargs)
    for t in list(params.values()) + [t for _, t in inputs]:
        t.grad = None           # accumulating into an existing .grad costs an add the drawn run did not do
    seed(opts.seed)
    rec = marker(params, buffers, names)
    for name, _ in inputs + named_tensors("targets", opts.loss.targets):
        rec._unique(name)       # inputs (and targets) took these ids first in the drawn run
    handles = module_hooks(model, rec) if loaded.kind not in ("export", "torchscript") else []
    try:
        with rec, functions(rec), torch.enable_grad():
            out = call(loaded, model, args, kwargs, rec)
            with rec.scope("loss", "Loss"):
                loss = opts.loss(out, opts.seed).tensor     # opts.loss: the drawn run's resolved Loss
    finally:
        for h in handles:
            h.remove()
    backward(loss)


# What the profiler's C++ side prints on every session: not the user's business.
_NOISE = re.compile(r"^(USDT:.*ActivityProfiler|\[W.*Memory block of unknown size was allocated before the profiling)")


@contextlib.contextmanager
def _quiet_profiler():
    """Capture file descriptor 2 while the profiler runs (its C++ side writes there directly) and
    pass on everything but its start/stop chatter: the model's own warnings still reach stderr."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):
        yield
        return
    with tempfile.TemporaryFile() as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            keep = [line for line in tmp.read().decode("utf-8", "replace").splitlines(keepends=True)
                    if not _NOISE.match(line)]
            if keep:
                os.write(2, "".join(keep).encode("utf-8"))


def measure(loaded, model, args, kwargs, opts) -> Profile:
    """A warm-up pass, then `opts.profile` passes under torch.profiler; the recorded nodes' costs."""
    # torch.autograd.profiler is what torch.profiler.profile wraps; the wrapper's first start imports
    # torch._inductor (a `hasattr(torch, "_inductor")`), 2-3 s for nothing cgviz needs.
    from torch.autograd import profiler

    from .run import fresh_inputs, named_inputs, parameters_and_buffers
    t0 = time.perf_counter()
    params, buffers = parameters_and_buffers(model)
    marker, names = _marker_class(), {}
    # each pass reads its own copy of the inputs, as the drawn run did (a model may change its input
    # in place), made before the profiler starts so that copying is not measured
    runs = max(1, int(opts.profile))
    copies = [fresh_inputs(args, kwargs) for _ in range(runs + 1)]
    leaves = named_inputs(model, args, kwargs)
    _one_pass(marker, names, loaded, model, *copies[0], opts, params, buffers)   # warm-up: allocator, caches
    with _quiet_profiler(), profiler.profile(use_cpu=True, profile_memory=True) as prof:
        for fresh_args, fresh_kwargs in copies[1:]:
            for _, t in leaves:
                t.grad = None       # the copies' gradients reach these: a fresh .grad, as in the drawn run
            _one_pass(marker, names, loaded, model, fresh_args, fresh_kwargs, opts, params, buffers)
    for t in list(params.values()) + [t for _, t in leaves]:
        t.grad = None
    result = attribute(prof.function_events, runs, names)
    result.wall_s = time.perf_counter() - t0
    return result


def attribute(events, runs: int = 1, names: dict[str, str] | None = None) -> Profile:
    """Every event's self CPU time and allocations to the node whose range (forward) or whose
    autograd node (backward, by sequence number) it ran under. `names` maps range names to node ids
    (without it, a range is named `cgviz:<node id>`)."""
    def walker(stop):
        """The owner of an event: the first ancestor (itself included) for which `stop` gives a node
        id or None; memoised along the chain, since events nest deeply and share ancestors."""
        memo: dict[int, str | None] = {}

        def owner(e):
            chain, found = [], None
            while e is not None:
                hit = memo.get(id(e), False)
                if hit is not False:
                    found = hit
                    break
                chain.append(e)
                decided, found = stop(e)
                if decided:
                    break
                e = e.cpu_parent
            for c in chain:
                memo[id(c)] = found
            return found
        return owner

    def fwd_stop(e):
        if e.name.startswith(PREFIX):
            return True, (names.get(e.name) if names is not None else e.name[len(PREFIX):])
        return False, None

    owner_fwd = walker(fwd_stop)
    seq_node: dict[tuple, str] = {}
    for e in events:
        node = owner_fwd(e)
        if node is not None and e.sequence_nr >= 0 and not e.name.startswith(_BACKWARD):
            seq_node.setdefault((e.thread, e.sequence_nr), node)

    def bwd_stop(e):
        if e.name.startswith(_BACKWARD) and e.sequence_nr >= 0:
            return True, seq_node.get((e.fwd_thread, e.sequence_nr))
        return False, None

    owner_bwd = walker(bwd_stop)

    nodes: dict[str, Cost] = {}
    total = fwd = bwd = 0.0
    stray: dict[str, float] = {}
    for e in events:
        us = float(e.self_cpu_time_total)
        mem = max(int(e.self_cpu_memory_usage or 0), 0)
        total += us
        node = owner_fwd(e)
        phase = "fwd"
        if node is None:
            node, phase = owner_bwd(e), "bwd"
        if node is None:
            top = e
            while top.cpu_parent is not None:
                top = top.cpu_parent
            what = top.name[len(_BACKWARD):] if top.name.startswith(_BACKWARD) else top.name
            stray[what] = stray.get(what, 0.0) + us
            continue
        c = nodes.setdefault(node, Cost())
        if phase == "fwd":
            c.fwd_us += us
            fwd += us
        else:
            c.bwd_us += us
            bwd += us
        c.mem += mem
    k = float(runs)
    for c in nodes.values():
        c.fwd_us /= k
        c.bwd_us /= k
        c.mem = int(round(c.mem / k))
    by = sorted(((w, us / k) for w, us in stray.items()), key=lambda x: -x[1])
    return Profile(nodes, total / k, fwd / k, bwd / k, runs, "cpu", by)


def restrict(prof: Profile, ids) -> None:
    """Keep only nodes of the drawn graph: ops the picture pruned (`num_batches_tracked += 1`)
    become unattributed time, named by their id."""
    ids = set(ids)
    for node in [n for n in prof.nodes if n not in ids]:
        c = prof.nodes.pop(node)
        prof.fwd_us -= c.fwd_us
        prof.bwd_us -= c.bwd_us
        prof.unattributed_by.append((node if node.endswith(")") else f"{node} (not drawn)", c.total_us))
    prof.unattributed_by.sort(key=lambda x: -x[1])
