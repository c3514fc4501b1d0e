"""cgviz: computation graphs with forward values in blue and gradients in red."""

__version__ = "0.1.0"
