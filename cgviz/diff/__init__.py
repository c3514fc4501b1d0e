"""Compare two runs: nodes matched by name then by structure, what changed in structure and numbers, one picture of it."""

from .result import Comparison, compare

__all__ = ["Comparison", "compare"]
