"""`cgviz.watch(model, "run.cgw")`: records the gradient picture from the user's own training loop.

What it must not do is change training, so:
- statistics are read under no_grad from tensors training already made, and forward hooks (which
  return nothing, so the output is the module's own) exist only during the forward of a recorded step;
- nothing reads a device value on a step that is not recorded: the only work there is a counter, and an
  on-device check of the loss whose answer waits for the next recorded step;
- the model's graph is drawn once, by `cgviz.draw`, which gives the module, its gradients and the
  random generators back as they were;
- the update ratio ‖Δw‖/‖w‖ compares a copy of the weights taken at a recorded step with the weights
  after the optimizer step (torch.optim's global step hook, else the next `w.step`), so the record of
  step N is written when that step's update is known.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from ..core.errors import OptionError
from ..cgw.writer import Writer, header, short

BINS = 16                  # histogram bins per gradient: 16 keeps GPT-2-small's record under 50 KB a step
HIST_SAMPLE = 4096         # a larger gradient's histogram counts evenly strided elements, this many at most
# activations whose outputs have bounds (saturation) and those whose units can die, with their bounds
BOUNDED = {"Sigmoid": (0.0, 1.0), "Tanh": (-1.0, 1.0), "Hardsigmoid": (0.0, 1.0), "Softsign": (-1.0, 1.0)}
RELU_LIKE = ("ReLU", "ReLU6", "Threshold")


def base_module(model):
    """The module that holds the parameters under the names the user knows: through DDP's `.module`
    and torch.compile's `._orig_mod`."""
    m = model
    for _ in range(4):
        if hasattr(m, "_orig_mod") and isinstance(m._orig_mod, torch.nn.Module):
            m = m._orig_mod
        elif type(m).__name__ in ("DistributedDataParallel", "DataParallel") and hasattr(m, "module"):
            m = m.module
        else:
            break
    return m


def _compiled(model) -> bool:
    m = model
    for _ in range(4):
        if hasattr(m, "_orig_mod"):
            return True
        m = getattr(m, "module", None)
        if m is None:
            return False
    return False


def _rank() -> tuple[int, int]:
    import torch.distributed as dist
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class Watch:
    """The recorder `watch()` returns; call `step(loss)` once per optimizer step, after backward."""

    def __init__(self, model, path, every: int = 10, loss=None, *, targets=None, scaler=None,
                 graph: bool = True, modules: bool = True, bins: int = BINS, source: str | None = None):
        """See watch(); `source` names what is trained in the header (the model's class by default)."""
        if not isinstance(model, torch.nn.Module):
            raise OptionError(f"cgviz.watch records an nn.Module's training, not a {type(model).__name__}")
        if not isinstance(every, int) or isinstance(every, bool) or every < 1:
            raise OptionError(f"every={every!r}: record one step in every N, a whole number ≥ 1")
        path = Path(path)
        if path.is_dir():
            raise OptionError(f"{path} is a folder; give the record file's name, such as run.cgw")
        self.model, self.path, self.every, self.bins = model, path, every, bins
        self.base = base_module(model)
        self.loss, self.targets, self.scaler = loss, targets, scaler
        self.draw_graph = graph
        self.rank, self.world = _rank()
        self.writes = self.rank == 0
        self.compiled = _compiled(model)
        self.source = source or type(self.base).__name__
        self.params = [(n, p) for n, p in self.base.named_parameters() if p.requires_grad]
        self.note = None
        # forward hooks on a compiled model's submodules do not run (Dynamo inlines them), so only its
        # parameters are recorded
        self.sample_modules = modules and not self.compiled
        if modules and self.compiled:
            self.note = "a torch.compile'd model: module outputs are not sampled (hooks do not run inside it)"
        self.modules = [(n, m) for n, m in self.base.named_modules() if n and not any(True for _ in m.children())]
        self._k = 0                         # w.step calls so far: the index of the step under way
        self._writer = Writer(path) if self.writes else None
        self._hooks: list = []
        self._mod_stats: dict[str, dict] = {}
        self._inputs = None                 # the first forward's (args, kwargs), for drawing the graph
        self._pending = None                # (record, {param name: ‖Δw‖ on the device}) awaiting its update
        self._snap = None                   # the weights at the last recorded step, one buffer per parameter
        self._first_bad = None              # on-device: the first step whose loss was not finite, or -1
        self._nan_said = False
        self._step_hook = None
        self._open = False
        self._header_written = False

    # ---- the context --------------------------------------------------------------------------------
    def __enter__(self) -> "Watch":
        self._open = True
        if self.writes:
            from torch.optim.optimizer import register_optimizer_step_post_hook
            self._step_hook = register_optimizer_step_post_hook(self._after_optimizer_step)
            self._arm()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Write what is still pending and close the file."""
        if not self._open:
            return
        self._open = False
        self._disarm()
        if self._step_hook is not None:
            self._step_hook.remove()
            self._step_hook = None
        if self._pending is not None:
            self._finish_pending()
        if self._writer is not None:
            self._writer.close()

    def recorded(self, k: int) -> bool:
        return k % self.every == 0

    # ---- one step -------------------------------------------------------------------------------------
    def step(self, loss=None, record: bool | None = None) -> None:
        """Call once per optimizer step, after loss.backward() (after the last micro-batch's, with gradient
        accumulation) and before optimizer.step(). On a recorded step this reads the gradients; on the
        others it only counts. `record=True` records this step whatever `every` says (the last step;
        its module outputs are sampled only when `every` had chosen it), False skips it."""
        if not self._open:
            raise OptionError("w.step() outside `with cgviz.watch(...) as w:` (or after w.close())")
        k = self._k
        if self.writes:
            if self._pending is not None:
                self._update_on_device()
            if loss is not None and isinstance(loss, torch.Tensor):
                self._watch_loss(loss.detach(), k)
            if self.recorded(k) if record is None else record:
                self._record(k, loss)
        self._k = k + 1
        if self.writes:
            self._disarm()
            if self.recorded(self._k):
                self._arm()

    def _watch_loss(self, loss, k: int) -> None:
        """Remember, on the device, the first step whose loss is not finite (read at a recorded step)."""
        bad = ~torch.isfinite(loss.reshape(-1)[:1].squeeze())
        if self._first_bad is None:
            self._first_bad = torch.full((), -1, dtype=torch.long, device=loss.device)
        self._first_bad = torch.where(bad & (self._first_bad < 0), torch.full_like(self._first_bad, k),
                                      self._first_bad)

    def _record(self, k: int, loss) -> None:
        if not self._header_written:
            self._write_header()
        inv, scaled = self._unscale()
        rec = {"step": k, "loss": short(_item(loss)), "scaled": scaled,
               "params": self._param_stats(inv), "modules": self._module_stats(inv)}
        if self._first_bad is not None and not self._nan_said:
            first = int(self._first_bad)
            if first >= 0:
                self._nan_said = True
                bad_mod = next((m for m, s in rec["modules"].items()
                                if not (_finite(s["mean"]) and _finite(s["std"]))), None)
                ev = {"event": "nan", "step": first}
                if bad_mod is not None and first == k:
                    ev["module"], ev["op"] = bad_mod, type(self.base.get_submodule(bad_mod)).__name__
                self._writer.write(ev)
        if self._pending is not None:       # measured on an earlier step, not yet written
            self._finish_pending()
        # the weights now, into buffers kept from one recorded step to the next (a fresh copy of a
        # large model's weights each time costs more in allocation than in copying)
        with torch.no_grad():
            ws = [p.detach() for _, p in self.params]
            if self._snap is None:
                self._snap = [w.clone() for w in ws]
            elif ws:
                torch._foreach_copy_(self._snap, ws)
        self._pending = (rec, {})

    def _write_header(self) -> None:
        self._header_written = True
        graph, note = self._graph()
        extra = {"module_types": {n: type(m).__name__ for n, m in self.modules}, "every": self.every}
        if self.world > 1:
            extra.update(world_size=self.world, rank=self.rank)
        notes = [x for x in (self.note, note) if x]
        if notes:
            extra["note"] = "; ".join(notes)
        self._writer.write(header(self.source, graph, [n for n, _ in self.params],
                                  [n for n, _ in self.modules] if self.sample_modules else [], **extra))

    def _graph(self):
        """The model's folded graph as `cgviz torch -f json` writes it, drawn once from the first forward's
        inputs; (None, why) when it cannot be drawn."""
        if not self.draw_graph:
            return None, None
        if self._inputs is None:
            return None, "the graph was not drawn: no forward ran between `with cgviz.watch` and the first w.step"
        from ..api.drawer import draw
        args, kwargs = self._inputs
        try:
            with torch.random.fork_rng(devices=[]):
                d = draw(self.base, *args, forward_kwargs=kwargs or None, loss=self.loss, targets=self.targets,
                         mode="train" if self.base.training else "eval")
            return _structure(d.to_dict()), None
        except Exception as e:      # a picture that cannot be drawn must not stop the training it watches
            return None, f"the graph was not drawn: {type(e).__name__}: {(str(e).splitlines() or [''])[0][:200]}"

    def _unscale(self):
        """(1/scale, False) when a GradScaler's gradients are still scaled, (None, False) when not scaled."""
        s = self.scaler
        if s is None or not getattr(s, "is_enabled", lambda: False)():
            return None, False
        try:
            from torch.amp.grad_scaler import OptState
            states = getattr(s, "_per_optimizer_states", {})
            if any(st.get("stage") is not OptState.READY for st in states.values()):
                return None, False      # unscale_() already ran for this step
            return 1.0 / float(s.get_scale()), False
        except Exception:
            return None, True

    def _param_stats(self, inv) -> dict:
        """Every parameter's numbers, read in a few batched transfers: the norms of all weights and
        gradients at once (a non-finite norm is what sends a gradient to have its NaN/inf counted), then
        every histogram's range, then every histogram."""
        with torch.no_grad():
            ws = [p.detach() for _, p in self.params]
            wn = _norms(ws)
            have = []
            for (name, p), w in zip(self.params, wn):
                g = p.grad
                if g is None:
                    continue
                g = g.detach()
                if g.is_sparse:
                    g = g.coalesce().values()
                have.append((name, g.reshape(-1), w))
            gn = _norms([g for _, g, _ in have])
            if inv is not None:
                gn = [x * inv for x in gn]
            out = {name: {"w": short(w), "g": None, "ratio": None, "update": None, "hist": None, "nan": 0, "inf": 0}
                   for (name, _), w in zip(self.params, wn)}
            samples = []
            for (name, g, w), n in zip(have, gn):
                st = out[name]
                st.update(g=short(n), ratio=short(n / w) if w else None)
                if not math.isfinite(n):
                    nan = int(torch.isnan(g).sum())
                    st["nan"], st["inf"] = nan, int((~torch.isfinite(g)).sum()) - nan
                    g = g[torch.isfinite(g)]
                if g.numel() > HIST_SAMPLE:
                    g = g[:: -(-g.numel() // HIST_SAMPLE)]
                if g.numel():
                    samples.append((name, g.float() * inv if inv is not None else g.float()))
            if samples:
                bounds = torch.stack([torch.stack(torch.aminmax(v)) for _, v in samples]).tolist()
                ranges = []
                for lo, hi in bounds:
                    if lo == hi:        # one distinct value v: the bins span v ± |v|/2
                        lo, hi = lo - 0.5 * (abs(lo) or 1.0), hi + 0.5 * (abs(hi) or 1.0)
                    ranges.append((lo, hi))
                counts = torch.stack([torch.histc(v, bins=self.bins, min=lo, max=hi)
                                      for (_, v), (lo, hi) in zip(samples, ranges)]).long().tolist()
                for (name, _), (lo, hi), c in zip(samples, ranges, counts):
                    out[name]["hist"] = {"lo": short(lo), "hi": short(hi), "counts": c}
        return out

    def _module_stats(self, inv) -> dict:
        """The sampled modules' numbers, read from the device in one transfer."""
        keys = [(name, k) for name, s in self._mod_stats.items() for k, v in s.items() if isinstance(v, torch.Tensor)]
        got = (torch.stack([self._mod_stats[n][k].detach().to(torch.float64).cpu().reshape(()) for n, k in keys])
               .tolist() if keys else [])
        read = dict(zip(keys, got))
        out = {}
        for name, s in self._mod_stats.items():
            vals = {k: read.get((name, k), v) for k, v in s.items()}
            if vals.get("grad") is not None and inv is not None:
                vals["grad"] = vals["grad"] * inv
            rec = {"mean": short(vals["mean"]), "std": short(vals["std"]), "saturated": short(vals.get("saturated")),
                   "dead": short(vals.get("dead")), "grad": short(vals.get("grad"))}
            if "lo" in vals:
                rec["in"] = [short(vals["lo"]), short(vals["hi"])]
            out[name] = rec
        self._mod_stats = {}
        return out

    # ---- the update ratio ------------------------------------------------------------------------------
    def _after_optimizer_step(self, optimizer, args, kwargs) -> None:
        """torch.optim's global hook, after any optimizer's step: the change of the parameters it holds."""
        if self._pending is None or len(self._pending[1]) == len(self.params):
            return
        mine = {id(p) for g in optimizer.param_groups for p in g["params"]}
        self._measure(lambda p: id(p) in mine)
        if len(self._pending[1]) == len(self.params):
            self._finish_pending()          # still within the recorded step: reading it costs no extra sync

    def _update_on_device(self) -> None:
        """The next w.step came before an optimizer step finished the pending record (a hand-written
        update, or a GradScaler that skipped the step): measure the change now, on the device; the
        record is written at the next recorded step (or at the end), which reads it."""
        self._measure(lambda p: True)

    def _measure(self, which) -> None:
        rec, done = self._pending
        sel = [(i, name, p) for i, (name, p) in enumerate(self.params) if name not in done and which(p)]
        if not sel:
            return
        with torch.no_grad():
            bufs = [self._snap[i] for i, _, _ in sel]
            torch._foreach_sub_(bufs, [p.detach() for _, _, p in sel])     # in place: the buffer is spent
            for (_, name, _), n in zip(sel, _norm_tensors(bufs)):
                done[name] = n

    def _finish_pending(self) -> None:
        rec, done = self._pending
        self._pending = None
        if len(done) < len(self.params):       # the run ended before this step's update
            done = {}
        vals = dict(zip(done, torch.stack([v.to(torch.float64).cpu() for v in done.values()]).tolist())) if done else {}
        for name, st in rec["params"].items():
            u = vals.get(name)
            w = st["w"]
            st["update"] = short(u / w) if u is not None and w else None
        self._writer.write(rec)

    # ---- module outputs --------------------------------------------------------------------------------
    def _arm(self) -> None:
        """Hooks for the forward of a recorded step: the inputs of the first (for the graph), and each sampled
        module's output statistics."""
        if self.draw_graph and self._inputs is None and not self._header_written:
            self._hooks.append(self.model.register_forward_pre_hook(self._keep_inputs, with_kwargs=True))
        if not self.sample_modules:
            return
        for name, m in self.modules:
            self._hooks.append(m.register_forward_hook(self._stats_hook(name, m)))

    def _disarm(self) -> None:
        for h in self._hooks:
            h.remove()
        self._hooks = []

    def _keep_inputs(self, module, args, kwargs):
        if self._inputs is None:
            self._inputs = (args, kwargs)
        return None

    def _stats_hook(self, name: str, m):
        kind = type(m).__name__
        bounds = BOUNDED.get(kind)
        if kind == "Hardtanh":
            bounds = (float(m.min_val), float(m.max_val))
        relu = kind in RELU_LIKE

        def hook(module, args, out):
            if name in self._mod_stats or not isinstance(out, torch.Tensor) or not out.is_floating_point():
                return None         # a later micro-batch of the same step, or an output with no statistics
            with torch.no_grad():
                y = out.detach().float()
                s = {"mean": y.mean(), "std": y.std() if y.numel() > 1 else torch.zeros(()), "grad": None}
                if bounds is not None:
                    lo, hi = bounds
                    tol = 0.01 * (hi - lo)
                    s["saturated"] = ((y <= lo + tol) | (y >= hi - tol)).float().mean()
                    x = args[0] if args and isinstance(args[0], torch.Tensor) else None
                    if x is not None and x.numel():
                        s["lo"], s["hi"] = x.detach().min(), x.detach().max()
                if relu:
                    s["dead"] = _dead_units(y)
            self._mod_stats[name] = s
            if out.requires_grad:
                def grad_hook(g, s=s):
                    if s["grad"] is None:
                        s["grad"] = g.detach().float().norm()
                    return None     # the gradient passes unchanged
                out.register_hook(grad_hook)
            return None
        return hook


def _structure(graph: dict) -> dict:
    """The drawn graph without its tensors' elements (`value`, `grad`): the record's steps carry the
    numbers, and a model's elements would dwarf them; the `*_stats` summaries of the first step stay."""
    def strip(items):
        return [{k: v for k, v in it.items() if k not in ("value", "grad")} for it in items]
    return {**graph, "nodes": strip(graph.get("nodes", [])), "edges": strip(graph.get("edges", []))}


def _dead_units(y):
    """The fraction of units zero (or below) on every example: a [B×F] layer's features, a convolution's
    channels ([B×C×…]), a sequence model's last dimension ([B×T×F])."""
    if y.dim() <= 1:
        return (y <= 0).float().mean()
    unit = y.dim() - 1 if y.dim() == 3 else 1
    alive = (y > 0).movedim(unit, 0).reshape(y.shape[unit], -1).any(dim=1)
    return 1.0 - alive.float().mean()


def _norms(tensors) -> list[float]:
    """The 2-norms of many tensors in one transfer."""
    if not tensors:
        return []
    return torch.stack([n.to(torch.float64).cpu() for n in _norm_tensors(tensors)]).tolist()


def _norm_tensors(tensors) -> list:
    """The 2-norms of many tensors, on their devices (torch._foreach_norm where it takes them, in float32
    or wider so that a half-precision norm does not overflow)."""
    if not tensors:
        return []
    try:
        ns = torch._foreach_norm(tensors, dtype=torch.float32) if all(
            t.is_floating_point() and t.dtype != torch.float64 for t in tensors) else None
    except (RuntimeError, TypeError):
        ns = None
    if ns is None:
        ns = [t.double().norm() if t.dtype == torch.float64 else t.float().norm() for t in tensors]
    return list(ns)


def _item(loss):
    if loss is None:
        return None
    if isinstance(loss, torch.Tensor):
        return float(loss.detach().float().reshape(-1)[0]) if loss.numel() else None
    return float(loss)


def _finite(x) -> bool:
    return x is not None and math.isfinite(x)


def watch(model, path: str | os.PathLike, every: int = 10, loss=None, *, targets=None, scaler=None,
          graph: bool = True, modules: bool = True, bins: int = BINS) -> Watch:
    """Record `model`'s training into `path` (a .cgw file, docs/watch-format.md), one step in `every`:

        with cgviz.watch(model, "run.cgw", every=10) as w:
            ...; loss.backward(); w.step(loss); opt.step(); opt.zero_grad(set_to_none=True)

    `loss=` (and `targets=`) is the loss the recorded graph is drawn with, as `cgviz.draw` takes it; the
    per-step numbers are those of the loss your loop passes to `w.step`. `scaler=` an AMP GradScaler:
    the recorded gradients are unscaled (else they are written as `scaled`). `graph=False` skips drawing
    the graph, `modules=False` the sampled module outputs. Under torch.distributed, rank 0 writes."""
    return Watch(model, path, every, loss, targets=targets, scaler=scaler, graph=graph, modules=modules, bins=bins)
