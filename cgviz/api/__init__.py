"""The Python front door: `draw()` and `make_dot()` give a `Drawing`; the other commands are one call each.

Whatever the source (expression text or a .cg file, a model file, an nn.Module or a function in
memory, a tensor's grad_fn graph), the result is one `Drawing` with the same methods. The expression
path never imports torch.

The modules, each one job: `drawing` (Drawing, Page), `backends` (the run behind a Drawing),
`drawer` (draw() and its routes), `sources` (what a source is, the files a call reads), `checks`
(the option checks), `calls` (explain, train, gradient_health, check_gradients, op_table,
backward_slides), `torchviz` (make_dot). Every name they define is reachable here as before the
split; it loads on first use (PEP 562), so `cgviz render` pays only for the modules it runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

# The module each name lives in; `cgviz.api.NAME` and `from cgviz.api import NAME` keep working.
_FROM = {
    "drawing": ("Drawing", "Page"),
    "backends": ("_Expression", "_Model"),
    "drawer": ("draw", "_draw_expression", "_trace_options", "_model_drawing", "_draw_model_file", "_draw_module",
               "_function_module", "_modules_used"),
    "sources": ("MODEL_SUFFIXES", "KINDS", "source_kind", "is_model", "files_read", "_is_text_or_path", "_is_model",
                "_expression", "_program", "_evaluate"),
    "checks": ("check_step", "check_thresholds", "_checked", "_converted", "_refuse_model_options",
               "_check_targets_file"),
    "calls": ("explain", "train", "gradient_health", "check_gradients", "op_table", "backward_slides"),
    "torchviz": ("make_dot",),
}
_MODULE = {name: module for module, names in _FROM.items() for name in names}

# The result types that moved to cgviz.api.results stay reachable here (and old pickles load).
_RESULTS = ("Explanation", "GradientCheck", "GradientHealth", "NodeView")

__all__ = ["Drawing", "Page", "draw", "make_dot", "explain", "train", "gradient_health", "check_gradients",
           "op_table", "backward_slides", "source_kind", "is_model", "files_read", "check_step",
           "check_thresholds", "MODEL_SUFFIXES", "KINDS"]

if TYPE_CHECKING:       # for type checkers and editors, which do not run __getattr__
    from .calls import backward_slides, check_gradients, explain, gradient_health, op_table, train
    from .checks import check_step, check_thresholds
    from .drawer import draw
    from .drawing import Drawing, Page
    from .sources import KINDS, MODEL_SUFFIXES, files_read, is_model, source_kind
    from .torchviz import make_dot


def __getattr__(name: str):
    import importlib
    if name in _MODULE:
        value = getattr(importlib.import_module(f".{_MODULE[name]}", __name__), name)
    elif name in _RESULTS:
        value = getattr(importlib.import_module(".results", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value           # the next lookup is an ordinary one
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_MODULE) | set(_RESULTS))
