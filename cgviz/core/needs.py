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


def require_torch(what: str = "reading a PyTorch model"):
    """The torch module, or TorchMissing saying what needed it and how to install it."""
    try:
        import torch
    except ImportError as e:
        detail = "" if isinstance(e, ModuleNotFoundError) and e.name == "torch" else f" ({e})"
        raise TorchMissing(f"{what} needs PyTorch, which is not installed{detail}. Install cgviz with "
                           f"its torch extra: {TORCH_HINT}") from None
    return torch


HF_HINT = "pip install 'cgviz-backprop[hf]'"          # transformers, for `hf:` models


def require_transformers(what: str):
    """The transformers module, or a CgvizError saying what needed it and which extra brings it."""
    try:
        import transformers
    except ImportError as e:
        detail = "" if isinstance(e, ModuleNotFoundError) and e.name == "transformers" else f" ({e})"
        raise CgvizError(f"{what} needs Hugging Face transformers, which is not installed{detail}. Install "
                         f"cgviz with its hf extra: {HF_HINT}") from None
    return transformers
