"""The one place that imports torch for a path that needs it, and says how to install it when it is missing."""

from __future__ import annotations

from .errors import CgvizError

INSTALL = "pip install 'cgviz[torch]'"


class TorchMissing(CgvizError):
    """PyTorch is not installed: a user's environment, not a bug (exit status 1)."""


def require_torch(doing: str):
    """torch, or TorchMissing saying that `doing` needs it and how to install it."""
    try:
        import torch
    except ImportError as e:
        raise TorchMissing(f"{doing} needs PyTorch, which is not installed ({e}). Install it with {INSTALL} "
                           "(or `pip install torch`); expression files (.cg) work without it.") from None
    return torch
