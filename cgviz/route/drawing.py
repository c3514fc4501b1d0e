"""`ModelDrawing`: a traced model and the picture chosen for it; its level, page and bytes are other modules' jobs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..plan.structure import Picture
from .sizing import Level


@dataclass
class ModelDrawing:
    """A traced model and the picture chosen for it, ready to become any output format."""

    graph: Any
    run: Any
    pic: Picture
    title: str
    extra: dict                     # view, depth, folded: what the JSON records about the picture
    flags: bool                     # gradient-health flags mean something for this loss
    vanish: float | None
    explode: float | None
    grad: bool
    depth: int | None
    auto: bool
    fold: bool = True
    notes: list[str] = field(default_factory=list)
    profile_table: str | None = None
    compact: bool = False
    coarser: list[Level] = field(default_factory=list)    # what the budget may step down to, in order
    drawn: Any = None               # the graph the picture is drawn from (models.simplify), else `graph`
    sized: bool = False             # the PNG's level is already chosen by its size (for_png)
    laid: tuple[str, str] | None = None     # (DOT text, its layout) from for_png, so it is laid out once
    groups: dict | None = None      # structure.find_groups of the drawn graph, shared by every level
    focus_of: tuple | None = None   # --focus: (the whole drawn graph, its run, the focused call, its
                                    # find_groups, the title without the focus)
    caveat: str = ""                # a caption line under the title: why the gradients' scale means nothing
    remarks: list[str] = field(default_factory=list)    # lines under the title (an input not drawn)
    gathered: bool = False          # the level shown gathers the ops run in no module (Level.gather)
    label: str = "model"            # the name Model Explorer shows: a model file's name, when drawn from one

    @property
    def shown(self):
        """The graph the picture shows: the record less its pass-through ops (models.simplify)."""
        return self.graph if self.drawn is None else self.drawn

    @property
    def warnings(self) -> list[str]:
        return self.run.warnings

    def options(self, rankdir: str = "TB", labels: bool = True, title: str | None = None):
        """How the scene is drawn (cgviz.view.model_scene.DrawOptions)."""
        from ..view.model_scene import DrawOptions
        thresholds = {k: v for k, v in (("vanish", self.vanish), ("explode", self.explode)) if v is not None}
        return DrawOptions(rankdir=rankdir, grad=self.grad, title=self.title if title is None else title,
                           caveat=self.caveat, remarks=tuple(self.remarks),
                           flags=self.flags, compact=self.compact, labels=labels, **thresholds)

    def scene(self, rankdir: str = "TB", labels: bool = True):
        """The picture as a scene (cgviz.view.scene); labels=False: its shape only, enough for the
        layout cost (cgviz.view.dot.scene_cost)."""
        from ..view.model_scene import scene
        return scene(self.shown, self.run, self.pic, self.options(rankdir, labels))

    def dot(self, rankdir: str = "TB", labels: bool = True) -> str:
        from ..view.dot import dot_text
        return dot_text(self.scene(rankdir, labels))

    def to_dict(self) -> dict:
        from ..diagnose.health import EXPLODE, VANISH
        from ..view.export import to_dict
        return to_dict(self.graph, self.run, VANISH if self.vanish is None else self.vanish,
                       EXPLODE if self.explode is None else self.explode, self.extra, judge=self.flags)

    # ---- the other jobs, each in its module ---------------------------------------------------------
    def choose(self, rankdir: str = "TB") -> None:
        from .sizing import choose
        choose(self, rankdir)

    def for_png(self, rankdir: str = "TB", timeout: float | None = None,
                timings: dict[str, float] | None = None) -> "ModelDrawing":
        from .sizing import for_png
        return for_png(self, rankdir, timeout, timings)

    def page(self, root_svg: str, rankdir: str = "TB", timeout: float | None = None,
             timings: dict[str, float] | None = None) -> str:
        from .model_page import page
        return page(self, root_svg, rankdir, timeout, timings)

    def overlays(self) -> dict[str, bytes]:
        from .model_output import overlays
        return overlays(self)

    def output(self, fmt: str, rankdir: str = "TB", timeout: float | None = None,
               timings: dict[str, float] | None = None, dpi: float | None = None) -> bytes:
        from .model_output import output
        return output(self, fmt, rankdir, timeout, timings, dpi)
