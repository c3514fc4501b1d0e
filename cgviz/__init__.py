"""cgviz: computation graphs with forward values in blue and gradients in red.

    import cgviz
    d = cgviz.draw("sample_graphs/pizza.cg")      # or program text, an nn.Module, a model file …
    d["w"].grad            # array(4000.)
    d.save("graph.svg")    # or d.png(), d.dot, d.to_dict(), d.page(); a notebook shows d itself
"""

__version__ = "0.1.0"

from .api import (Drawing, NodeView, check_gradients, draw, explain, gradient_health, make_dot,  # noqa: E402
                  train)
from .errors import CgvizError, OptionError, SourceError  # noqa: E402

__all__ = ["CgvizError", "Drawing", "NodeView", "OptionError", "SourceError", "check_gradients", "draw", "explain",
           "gradient_health", "make_dot", "train", "__version__"]
