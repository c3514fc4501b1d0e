"""The two kinds of run behind a `Drawing`: an expression program's (NumPy arrays) and a model's (tensor summaries)."""

from __future__ import annotations


class _Expression:
    """An expression program's run: full NumPy arrays."""

    kind = "expression"             # the source cgviz.view.formats says which formats it writes

    def __init__(self, result, source: str, opts, warnings: list[str], inputs: tuple[str, ...]):
        self.result, self.source, self.opts, self.inputs = result, source, opts, inputs
        self.graph = result.graph
        self.warnings = warnings
        self.notes: list[str] = []
        self.timings: dict[str, float] = {}
        self.profile = None             # profiling is a model's

    def depth_note(self) -> str | None:
        return None                     # an expression is drawn whole

    def nodes(self, fmt: str) -> int:
        return len(self.graph)

    def beside(self, fmt: str) -> dict[str, bytes]:
        return {}

    @property
    def loss(self) -> float | None:
        g, run = self.result.graph, self.result.run
        v = run.values.get(g.output) if g.output else None
        return float(v) if v is not None and getattr(v, "size", 0) == 1 else None

    @property
    def headline(self) -> str:
        from ..view.expression_scene import headline
        return headline(self.result.graph, self.result.run)

    def value(self, node_id):
        return self.result.run.values.get(node_id)

    def folds(self) -> list[str]:
        if not self.opts.fold:
            return []
        return [f"time_step={lp['steps']} (for {lp['var']} in {lp['first']}..{lp['last']}, line {lp['line']})"
                for lp in self.graph.meta.get("loops", ())]

    def grad(self, node_id):
        return self.result.run.grads.get(node_id)

    def dot(self, rankdir: str) -> str:
        import dataclasses

        from ..view.expression_scene import to_dot
        return to_dot(self.result.graph, self.result.run, dataclasses.replace(self.opts, rankdir=rankdir))

    def to_dict(self) -> dict:
        from ..view.export import to_dict
        return to_dict(self.result.graph, self.result.run, self.opts.vanish, self.opts.explode)

    def output(self, fmt: str, rankdir: str, timeout: float | None, dpi: float | None = None) -> bytes:
        import dataclasses

        from ..route.expression import output_bytes
        return output_bytes(self.result, fmt, dataclasses.replace(self.opts, rankdir=rankdir), timeout=timeout,
                            dpi=dpi)


class _Model:
    """A model's run: tensor summaries per node and edge."""

    kind = "model"

    def __init__(self, drawing, source: str, inputs: tuple[str, ...], loaded=None,
                 timings: dict[str, float] | None = None):
        self.d, self.source, self.inputs = drawing, source, inputs
        self.loaded = loaded            # the module that ran (gradient_health reads its parameters)
        self.graph = drawing.graph
        self.notes = drawing.notes
        self.timings = {} if timings is None else timings      # seconds per stage, outputs' too
        self.shown = drawing            # the drawing the last output drew: a PNG's may be coarser

    @property
    def profile(self) -> str | None:
        return self.d.profile_table

    def depth_note(self) -> str | None:
        from ..route.sizing import depth_note
        return depth_note(self.shown)

    def nodes(self, fmt: str) -> int:
        from ..view.formats import REGISTRY
        return len(self.shown.pic.nodes) if REGISTRY[fmt].pictured else len(self.graph)

    def beside(self, fmt: str) -> dict[str, bytes]:
        return self.d.overlays() if fmt == "modelexplorer" else {}

    @property
    def warnings(self):
        return self.d.warnings

    @property
    def loss(self):
        return self.d.run.loss

    @property
    def headline(self) -> str:
        return "" if self.loss is None else f"loss = {self.loss:.4g}"

    def value(self, node_id):
        from ..core.summary import first
        return first(self.d.run.values.get(node_id))

    def grad(self, node_id):
        g = self.d.run.grads.get(node_id)
        if g is None:
            node = self.graph[node_id]
            if node.kind == "param":
                g = self.d.run.param_grads.get(node.name)
        return g

    def dot(self, rankdir: str) -> str:
        return self.d.dot(rankdir)

    def folds(self) -> list[str]:
        # without folding, build_picture found no groups
        return [f"{'/'.join(f.key for f in g.calls[0])} ×{g.n} ({g.style})" for g in self.d.pic.groups.values()]

    def to_dict(self) -> dict:
        return self.d.to_dict()

    def output(self, fmt: str, rankdir: str, timeout: float | None, dpi: float | None = None) -> bytes:
        d = self.d
        if fmt == "png" and not d.sized:
            d = d.for_png(rankdir, timeout, self.timings)     # a PNG's level by its pixels; the others keep d's
        data = d.output(fmt, rankdir, timeout, self.timings, dpi=dpi)
        self.shown = d
        return data
