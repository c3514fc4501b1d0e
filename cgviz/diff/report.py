"""The diff picture of a failed snapshot check, written beside its report (cgviz snapshot, the pytest plugin)."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import CgvizError
from .classify import Difference, difference
from .picture import to_dot


def write_picture(old: dict, new: dict, path: Path, rtol: float | None = None, atol: float | None = None,
                  timeout: float | None = 60.0, a_label: str = "golden", b_label: str = "now") -> tuple[Difference, Path | None, str | None]:
    """Compare golden `old` with `new` and draw the difference to `path` (a .png; an .svg beside it when
    the PNG would pass the pixel budget). (the Difference, the file written or None, why not or None):
    a picture that cannot be drawn never hides the report it belongs to."""
    from ..view.graphviz import PictureTooBig, run_dot, write_atomic
    diff = difference(old, new, rtol, atol, a_label, b_label)
    dot = to_dot(diff)
    try:
        try:
            data = run_dot(dot, "png", timeout=timeout, nodes=len(diff.nodes))
        except PictureTooBig:
            path = path.with_suffix(".svg")
            data = run_dot(dot, "svg", timeout=timeout, nodes=len(diff.nodes))
        write_atomic(path, data)
    except CgvizError as e:
        return diff, None, str(e).splitlines()[0]
    return diff, path, None
