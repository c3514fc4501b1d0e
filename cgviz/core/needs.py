"""Optional dependencies, asked for in one place: PyTorch is the `torch` extra, transformers the `hf` extra.

Nothing here imports torch at module level (the expression-language path never loads it).
"""

from __future__ import annotations

from .errors import CgvizError

TORCH_HINT = "pip install 'cgviz-backprop[torch]'"   # the distribution's name (pyproject.toml), not the import's


class TorchMissing(CgvizError):
    """A command needs PyTorch and it is not installed (or cannot be imported)."""


def torch_available() -> bool:
    """Whether `import torch` works here."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def _require(module: str, what: str, library: str, extra: str, hint: str, error=CgvizError):
    """Import `module`, or raise `error` saying what needed it and which extra installs it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as e:
        detail = "" if isinstance(e, ModuleNotFoundError) and e.name == module else f" ({e})"
        raise error(f"{what} needs {library}, which is not installed{detail}. Install cgviz with "
                    f"its {extra} extra: {hint}") from None


def require_torch(what: str = "reading a PyTorch model"):
    """The torch module, or TorchMissing saying what needed it and how to install it."""
    return _require("torch", what, "PyTorch", "torch", TORCH_HINT, TorchMissing)


HF_HINT = "pip install 'cgviz-backprop[hf]'"          # transformers, for `hf:` models


def require_transformers(what: str):
    """The transformers module, or a CgvizError saying what needed it and which extra brings it."""
    return _require("transformers", what, "Hugging Face transformers", "hf", HF_HINT)
