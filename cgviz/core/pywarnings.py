"""Python warnings raised while a command runs, shown as cgviz's own `warning:` lines or not at all.

Left alone, Python prints a warning as `/path/to/site-packages/torch/serialization.py:2221:
UserWarning: …` followed by a line of somebody else's source: noise to a user, and it leaks the
layout of the installation. Every command runs inside `captured()` (the CLI's group does it once for
all of them), which keeps what a user can act on and drops the rest:

- dropped: NumPy's arithmetic RuntimeWarnings (overflow, invalid value, divide by zero) raised in
  cgviz's own code or in NumPy — cgviz finds and explains every NaN and infinity itself —, the
  warnings meant for developers (Deprecation-, PendingDeprecation-, Future-, Import-, Resource- and
  BytesWarning), and torch's notes about its own loader (the pickle-protocol one: cgviz's error says
  what is wrong with such a file when it matters);
- shown: anything else, e.g. a UserWarning from the user's model file or from torch about the
  model (a loss whose target size differs from the input's), as `warning: <message>`, once.
"""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import Callable

_PACKAGE = str(Path(__file__).resolve().parent.parent) + os.sep      # cgviz/, this module being in cgviz/core/

DEVELOPER = (DeprecationWarning, PendingDeprecationWarning, FutureWarning, ImportWarning, ResourceWarning,
             BytesWarning)

# torch talking about itself, not about the user's model: matched against the message's start
TORCH_NOISE = (
    "Detected pickle protocol",             # the weights-only loader reads protocol 2 (see models.load)
    "You are using `torch.load` with `weights_only=False`",
    "TypedStorage is deprecated",
)


def _from(filename: str, *parts: str) -> bool:
    f = filename.replace("\\", "/")
    return any(p in f for p in parts)


def meaningful(message: Warning | str, category: type, filename: str) -> bool:
    """Whether a user can act on this warning (see the module's docstring for the rule)."""
    if issubclass(category, DEVELOPER):
        return False
    text = str(message).strip()
    if not text:
        return False
    if issubclass(category, RuntimeWarning) and (str(Path(filename).resolve()).startswith(_PACKAGE)
                                                 or _from(filename, "/numpy/")):
        return False
    if text.startswith(TORCH_NOISE):
        return False
    return True


def one_line(message: Warning | str, limit: int = 400) -> str:
    """A warning's text on one line (its lines joined, spaces collapsed), cut at `limit` characters."""
    text = " ".join(str(message).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _shower(echo: Callable[[str], None]):
    seen: set[str] = set()

    def show(message, category, filename, lineno, file=None, line=None):
        if not meaningful(message, category, filename):
            return
        text = one_line(message)
        if text not in seen:
            seen.add(text)
            echo(f"warning: {text}")
    return show


@contextlib.contextmanager
def captured(echo: Callable[[str], None]):
    """Within the block, Python warnings go through `meaningful`; the ones kept are passed to
    `echo` as `warning: <message>` at once (so they stay in order with the command's own output),
    each text once. With CGVIZ_DEBUG set, warnings print as Python prints them, paths and all."""
    if os.environ.get("CGVIZ_DEBUG"):
        yield
        return
    with warnings.catch_warnings():
        # every occurrence reaches `show` (Python's default shows each place once, and would
        # remember the place past this block); repeats are removed by text instead
        warnings.simplefilter("always")
        warnings.showwarning = _shower(echo)
        yield


def worker_init() -> None:
    """The same rule for the whole life of a worker process (`snapshot -j`), writing to its stderr."""
    if os.environ.get("CGVIZ_DEBUG"):
        return
    import sys
    warnings.simplefilter("always")
    warnings.showwarning = _shower(lambda line: print(line, file=sys.stderr, flush=True))
