"""How a message names an option: `--input-shape` on the command line, `input_size=` from Python.

Library code never writes a flag into a message; it calls `spell("input_shape")`. The command
line sets the surface once for the whole command (`command_line()`), so its messages read exactly
as they always did, while the same mistake made through `cgviz.draw()` names the keyword the caller
wrote. This module imports nothing of cgviz, so every layer (the views too) may use it.
"""

from __future__ import annotations

import contextlib
import re
from contextvars import ContextVar

# "python" (the default: cgviz imported as a library) or "cli" (set by cgviz.cli for one command)
SURFACE: ContextVar[str] = ContextVar("cgviz_surface", default="python")

# Command-line flags that are not "--" + the key with dashes (cgviz.api.options declares them; a test
# holds the two together).
_FLAGS = {"mode": "--train/--eval", "imports": "--import", "profile_top": "--top", "dims": "--dim"}

# Python keywords that differ from the key: draw()'s names (torchview's input_size, torchviz-like
# sets), and flags, which are booleans in Python and so are spelled with the value that means them.
_KEYWORDS = {"input_shape": "input_size", "input": "input_file", "set": "sets",
             "no_fold": "fold=False", "no_grad": "grad=False", "no_simplify": "simplify=False",
             "trust": "trust=True", "download": "download=True", "meta": "meta=True", "profile": "profile=True", "update": "update=True",
             "allow_trust": "allow_trust=True", "allow_outside": "allow_outside=True"}

# The formats a Drawing has a method (or property) for, as Python spells them: not the format
# registry (cgviz.view.formats), which this module may not import (it sits below every layer).
_FORMATS = re.compile(r"\b(png|svg|pdf|json|html|dot)\b")


@contextlib.contextmanager
def command_line():
    """Spell options as flags while the block runs (the CLI wraps each command in it)."""
    token = SURFACE.set("cli")
    try:
        yield
    finally:
        SURFACE.reset(token)


def on_command_line() -> bool:
    return SURFACE.get() == "cli"


def flag(key: str) -> str:
    """The command-line flag of an option key (`input_shape` → `--input-shape`)."""
    return _FLAGS.get(key, "--" + key.replace("_", "-"))


def keyword(key: str) -> str:
    """The Python keyword of an option key, as draw() and its siblings take it."""
    return _KEYWORDS.get(key, key)


def spell(key: str, value: object = None, *, metavar: str | None = None) -> str:
    """The option `key` (with `value`, if given) as the caller wrote it: `--loss ce` or `loss='ce'`.

    `metavar` is a placeholder shown on the command line only (`--input FILE`, but `input_file=`)."""
    if on_command_line():
        shown = value if value is not None else metavar
        return flag(key) if shown is None else f"{flag(key)} {shown}"
    if key == "format":
        # a Drawing has a method per format (d.svg()); `.dot` is a property
        return "format=" if value is None else _FORMATS.sub(
            lambda m: ".dot" if m.group(1) == "dot" else f".{m.group(1)}()", str(value))
    if key == "set" and value is not None:
        name, sep, rest = str(value).partition("=")
        return f"sets[{name!r}]" + (f" = {rest}" if sep else "")
    kw = keyword(key)
    if "=" in kw or value is None:
        return kw if "=" in kw else f"{kw}="
    return f"{kw}={spell_value(key, value)}"


def spell_value(key: str, value: object) -> str:
    """A value of option `key` as the caller writes it: as typed on the command line, else as Python
    source (numbers as they are, text quoted, a plain shape `1,3,32,32` as the tuple `(1, 3, 32, 32)`)."""
    if on_command_line():
        return str(value)
    if key == "input_shape" and isinstance(value, str) and all(d.strip().isdigit() for d in value.split(",")):
        dims = [d.strip() for d in value.split(",")]
        return f"({', '.join(dims)}{',' if len(dims) == 1 else ''})"
    if isinstance(value, str):
        try:
            float(value)
            return value
        except ValueError:
            return repr(value)
    return repr(value)
