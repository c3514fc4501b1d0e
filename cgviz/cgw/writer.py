"""The .cgw file's writer: JSON Lines, one record a line, flushed per record (torch-free; the DSL's
`train` and the PyTorch recorder both write through it)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

FORMAT = "cgviz-watch"
VERSION = 1


def short(x) -> float | None:
    """A float kept to 4 significant digits (the file's size budget); None stays None."""
    if x is None:
        return None
    x = float(x)
    if not math.isfinite(x) or x == 0.0:
        return x
    return float(f"{x:.4g}")


def header(source: str, graph: dict | None, params: list[str], modules: list[str], **extra) -> dict:
    """The first line of a record file."""
    return {"format": FORMAT, "version": VERSION, "source": source, "graph": graph,
            "params": list(params), "modules": list(modules), **extra}


class Writer:
    """Appends records to a .cgw file, one JSON line each, flushed as written: a reader sees every
    complete record while the run writes, and a killed run keeps them (the reader skips a torn last line).
    The file is created new: an existing file is replaced (truncated) when the first line is written."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._f = None

    def write(self, record: dict) -> None:
        if self._f is None:
            self._f = open(self.path, "w", encoding="utf-8")
        # allow_nan: a NaN loss is the news; Python's json reads NaN/Infinity back (docs/watch-format.md)
        self._f.write(json.dumps(record, separators=(",", ":"), allow_nan=True) + "\n")
        self._f.flush()

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None
