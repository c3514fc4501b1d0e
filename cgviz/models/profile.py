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
import math
import os
import re
import sys
import tempfile
import time
from dataclasses import dataclass, field

PREFIX = "cgviz:"
_BACKWARD = "autograd::engine::evaluate_function: "


@dataclass
class Cost:
    """One node's (or a sum of nodes') average cost per pass."""

    fwd_us: float = 0.0
    bwd_us: float = 0.0
    mem: int = 0          # bytes allocated by its ops, forward and backward (frees not subtracted)

    @property
    def total_us(self) -> float:
        return self.fwd_us + self.bwd_us

    def __add__(self, other: "Cost") -> "Cost":
        return Cost(self.fwd_us + other.fwd_us, self.bwd_us + other.bwd_us, self.mem + other.mem)


@dataclass
class Profile:
    """What the measured passes cost, averaged over `runs`; node id → Cost for recorded op nodes."""

    nodes: dict[str, Cost]
    total_us: float               # every profiler event's self CPU time, per pass
    fwd_us: float                 # attributed to nodes, forward
    bwd_us: float                 # attributed to nodes, backward
    runs: int
    device: str = "cpu"
    unattributed_by: list[tuple[str, float]] = field(default_factory=list)   # (what, µs), largest first
    wall_s: float = 0.0           # how long warm-up and measured passes took, profiler included

    @property
    def unattributed_us(self) -> float:
        return max(self.total_us - self.fwd_us - self.bwd_us, 0.0)

    def cost(self, members) -> Cost:
        """The sum over recorded nodes (a collapsed module's or a folded block's members)."""
        out = Cost()
        for m in members:
            c = self.nodes.get(m)
            if c is not None:
                out = out + c
        return out

    def share(self, cost: Cost) -> float:
        return cost.total_us / self.total_us if self.total_us > 0 else 0.0


# ---- measuring --------------------------------------------------------------------------------

def _marker_class():
    """The light recorder (a class made on first use: record.py imports torch)."""
    import torch
    from torch.autograd.profiler import record_function
    from torch.utils._pytree import tree_flatten

    from .record import Recorder, _is_inplace, not_an_op, op_name

    class Marker(Recorder):
        """Gives each torch call the id the drawn run gave it and times it in a range of that name;
        records no values, gradients or graph (their cost would otherwise be measured too)."""

        def __init__(self, params, buffers, names: dict[str, str]):
            super().__init__(params, buffers, grads=False)
            self.names = names      # range name → node id, shared by every pass of one measurement

        def __torch_function__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            name = op_name(func)
            if self.paused or not_an_op(func, name):
                return func(*args, **kwargs)
            # A numbered range, named after the call: only then is it known whether the call makes
            # a node (a tensor result), and so which id it takes.
            key = f"{PREFIX}{len(self.names)}"
            self.names[key] = ""
            with record_function(key):
                out = func(*args, **kwargs)
            made = any(isinstance(t, torch.Tensor) for t in tree_flatten(out)[0]) or (
                _is_inplace(func, kwargs) and bool(args) and isinstance(args[0], torch.Tensor))
            # a call that made no node (x.dim()) keeps a name no node has: its time is unattributed
            self.names[key] = self._unique(self.op_base(name)) if made else f"{name} (made no tensor)"
            return out

    return Marker


def _one_pass(marker, names, loaded, model, args, kwargs, opts, params, buffers) -> None:
    """Forward and backward as the drawn run did them (same seed, same scopes, fresh gradients)."""
    import torch

    from .inputs import compute_loss
    from .record import module_hooks
    from .trace import _backward, _call, _named_inputs
    inputs = _named_inputs(model, args, kwargs)
    for t in list(params.values()) + [t for _, t in inputs]:
        t.grad = None           # accumulating into an existing .grad costs an add the drawn run did not do
    torch.manual_seed(opts.seed)
    rec = marker(params, buffers, names)
    for name, _ in inputs:
        rec._unique(name)       # inputs took these ids first in the drawn run
    handles = module_hooks(model, rec) if loaded.kind not in ("export", "torchscript") else []
    try:
        with rec, torch.enable_grad():
            out = _call(loaded, model, args, kwargs, rec)
            with rec.scope("loss", "Loss"):
                loss, _ = compute_loss(out, opts.loss, opts.seed)
    finally:
        for h in handles:
            h.remove()
    _backward(loss)


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

    from .trace import _named
    t0 = time.perf_counter()
    params, buffers = _named(model)
    marker, names = _marker_class(), {}
    _one_pass(marker, names, loaded, model, args, kwargs, opts, params, buffers)   # warm-up: allocator, caches
    runs = max(1, int(opts.profile))
    with _quiet_profiler(), profiler.profile(use_cpu=True, profile_memory=True) as prof:
        for _ in range(runs):
            _one_pass(marker, names, loaded, model, args, kwargs, opts, params, buffers)
    for p in params.values():
        p.grad = None
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


# ---- showing ----------------------------------------------------------------------------------

# light to dark orange; black text stays readable on the darkest
_RAMP = ((0.0, (0xff, 0xff, 0xff)), (0.3, (0xfe, 0xe6, 0xce)), (0.6, (0xfd, 0xae, 0x6b)),
         (1.0, (0xf1, 0x69, 0x13)))
LEGEND = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)


def fill(share: float) -> str:
    """The fill of a node taking `share` of the total time: the square root spreads the small shares
    (most nodes) over the light half of the ramp; strictly darker for a larger share."""
    t = math.sqrt(min(max(share, 0.0), 1.0))
    for (a, ca), (b, cb) in zip(_RAMP, _RAMP[1:]):
        if t <= b:
            f = (t - a) / (b - a)
            return "#" + "".join(f"{round(x + (y - x) * f):02x}" for x, y in zip(ca, cb))
    return "#" + "".join(f"{x:02x}" for x in _RAMP[-1][1])


def ms_text(us: float) -> str:
    ms = us / 1000.0
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 1:
        return f"{ms:.1f} ms"
    if ms >= 0.1:
        return f"{ms:.2f} ms"
    return f"{us:.0f} µs"


def bytes_text(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            v = n / size
            return f"{v:.1f} {unit}" if v < 10 else f"{v:.0f} {unit}"
    return f"{n} B"


def cost_text(c: Cost) -> str:
    """`fwd 1.2 ms · bwd 2.9 ms · 14 MB`, the row a node's label gains."""
    return f"fwd {ms_text(c.fwd_us)} · bwd {ms_text(c.bwd_us)} · {bytes_text(c.mem)}"


def table(prof: Profile, graph, run, top: int = 10) -> str:
    """The top `top` recorded nodes by time, with the total and what was not attributed."""
    from ..fmt import columns
    from .draw import shape_text
    from .summary import first
    rows = []
    for node_id, c in sorted(prof.nodes.items(), key=lambda kv: (-kv[1].total_us, kv[0]))[:top]:
        n = graph[node_id]
        ins = [shape_text(run.edge_values[(n.id, k)].shape) for k in range(len(n.inputs))
               if (n.id, k) in run.edge_values and graph[n.inputs[k]].kind not in ("param", "const")]
        out = first(run.values.get(n.id))
        shapes = ", ".join(ins) + (" → " if ins else "→ ") + (shape_text(out.shape) if out is not None else "?")
        scope = n.meta.get("scope") or ()
        module = scope[-1].key if scope else "(top)"       # `cell:3`: the 3rd call of a looped module
        cls = n.meta.get("class")
        rows.append([module + (f" {cls}" if cls else ""), n.op or "", shapes, ms_text(c.fwd_us),
                     ms_text(c.bwd_us), bytes_text(c.mem), f"{100 * prof.share(c):.1f}%"])
    head = ["module", "op", "shapes", "forward", "backward", "memory", "share"]
    runs = f"{prof.runs} measured runs averaged" if prof.runs > 1 else "1 measured run"
    un = prof.unattributed_us
    pct = 100 * un / prof.total_us if prof.total_us else 0.0
    out = [f"profile ({prof.device}, {runs} after a warm-up): {ms_text(prof.total_us)} per forward + backward, "
           f"forward {ms_text(prof.fwd_us)}, backward {ms_text(prof.bwd_us)}"]
    out += columns(head, rows, right={3, 4, 5, 6})
    what = ", ".join(f"{w} {ms_text(us)}" for w, us in prof.unattributed_by[:3] if us > 0)
    out.append(f"not attributed to any node: {ms_text(un)} ({pct:.1f}%)" + (f": {what}" if what else ""))
    return "\n".join(out) + "\n"


def to_json_fields(prof: Profile) -> dict:
    """The top-level `profile` of the JSON."""
    return {"total_ms": prof.total_us / 1000, "fwd_ms": prof.fwd_us / 1000, "bwd_ms": prof.bwd_us / 1000,
            "unattributed_ms": prof.unattributed_us / 1000, "runs": prof.runs, "device": prof.device}


def node_json(prof: Profile, node_id: str) -> dict:
    """A node's `profile` in the JSON (zeros for an op the measured run did not see)."""
    c = prof.nodes.get(node_id) or Cost()
    return {"fwd_ms": c.fwd_us / 1000, "bwd_ms": c.bwd_us / 1000, "mem_bytes": c.mem, "share": prof.share(c)}


def legend(prof: Profile) -> str:
    """The caption row (HTML-like label markup): the fill scale and the totals."""
    from ..markup import html_text
    cells = "  ".join(f'<FONT COLOR="{fill(s)}">██</FONT> {html_text(f"{100 * s:g}%")}' for s in LEGEND)
    un = prof.unattributed_us
    pct = 100 * un / prof.total_us if prof.total_us else 0.0
    runs = f", mean of {prof.runs} runs" if prof.runs > 1 else ""
    text = (f"   of {ms_text(prof.total_us)} CPU per forward + backward{runs} "
            f"({ms_text(un)}, {pct:.1f}%, not attributed to a node)")
    return f'<FONT POINT-SIZE="10">time share  {cells}{html_text(text)}</FONT>'


def cluster_row(prof: Profile, pic, scope: tuple) -> str:
    """A ×N fold's or a loop's sum over every repetition: the drawn nodes inside it hold them all."""
    members = [m for dn in pic.nodes.values() if tuple(dn.scope)[:len(scope)] == scope
               or (dn.module is not None and tuple(dn.module)[:len(scope)] == scope) for m in dn.members]
    c = prof.cost(dict.fromkeys(members))
    return f"Σ {cost_text(c)}  ({100 * prof.share(c):.1f}%)"
