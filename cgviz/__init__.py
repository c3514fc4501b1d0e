"""cgviz: computation graphs with forward values in blue and gradients in red.

    import cgviz
    d = cgviz.draw("sample_graphs/pizza.cg")      # or program text, an nn.Module, a model file …
    d["w"].grad            # array(4000.)
    d.save("graph.svg")    # or d.png(), d.dot, d.to_dict(), d.page(); a notebook shows d itself
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

# The public names load on first use (PEP 562): importing any cgviz module runs this file first, and
# the pytest plugin (cgviz.pytest_plugin, loaded by every pytest run where cgviz is installed) must
# not make each of those runs import NumPy and the whole library (~100 ms) before it is used.
_FROM = {"Drawing": "api.drawing", "draw": "api.drawer", "make_dot": "api.torchviz"}
_FROM.update({name: "api.calls" for name in ("check_gradients", "explain", "gradient_health", "train")})
_FROM["NodeView"] = "api.results"
_FROM.update({name: "diff" for name in ("Comparison", "compare")})
_FROM.update({name: "core.errors" for name in ("CgvizError", "OptionError", "SourceError")})

# cgviz.watch is a callable package: cgviz.watch(model, "run.cgw") records, cgviz.watch.read reads
_PACKAGES = ("watch",)

__all__ = sorted(_FROM) + list(_PACKAGES) + ["__version__"]

if TYPE_CHECKING:       # for type checkers and editors, which do not run __getattr__
    from .api.calls import check_gradients, explain, gradient_health, train
    from .api.drawer import draw
    from .api.drawing import Drawing
    from .api.torchviz import make_dot
    from .results import NodeView
    from .diff import Comparison, compare
    from .errors import CgvizError, OptionError, SourceError


def __getattr__(name: str):
    if name in _PACKAGES:
        import importlib
        return importlib.import_module(f".{name}", __name__)
    if name not in _FROM:
        raise AttributeError(f"module 'cgviz' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f".{_FROM[name]}", __name__), name)
    globals()[name] = value           # the next lookup is an ordinary one
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
