"""The one registry of output formats: name, suffixes, binary or text, producer, and which sources write it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePath

from ..core.errors import CgvizError

# What draws from: an expression run, a model run, a comparison (cgviz diff), a recorded run (.cgw;
# its pictures are matplotlib's figures, saved in the format by name, so it claims only png, svg, pdf).
EXPRESSION, MODEL, DIFF, RUN = "expression", "model", "diff", "run"

# How a format's bytes are made; each dispatcher (route.expression.output_bytes, route.model_output.output,
# Comparison.output, watch_page.render_run) has one branch per producer, so a new format with an
# existing producer (say jpg through Graphviz) is one entry below and nothing else.
GRAPHVIZ = "graphviz"           # the DOT text laid out by Graphviz's `dot -T<name>`
DOT = "dot"                     # the DOT text itself
JSON = "json"                   # the cgviz-graph JSON (docs/json-format.md)
PAGE = "page"                   # the interactive page: the SVG plus numbers and a script
VIEWER = "viewer"               # another viewer's format: Model Explorer's graph JSON


@dataclass(frozen=True)
class Format:
    name: str
    suffixes: tuple[str, ...]   # the first is the one written when only the format is given
    binary: bool
    producer: str
    sources: frozenset[str]
    help: str = ""              # words after the name in the command line's help

    @property
    def suffix(self) -> str:
        return "." + self.suffixes[0]

    @property
    def pictured(self) -> bool:
        """Whether the bytes come from the picture (its DOT), so its depth and folding matter; the
        data formats hold every node."""
        return self.producer in (GRAPHVIZ, DOT, PAGE)


_ALL = frozenset({EXPRESSION, MODEL, DIFF, RUN})
_GRAPHS = frozenset({EXPRESSION, MODEL, DIFF})

REGISTRY: dict[str, Format] = {f.name: f for f in (
    Format("png", ("png",), True, GRAPHVIZ, _ALL, "(default)"),
    Format("svg", ("svg",), False, GRAPHVIZ, _ALL),
    Format("pdf", ("pdf",), True, GRAPHVIZ, _ALL),
    Format("dot", ("dot", "gv"), False, DOT, _GRAPHS),
    Format("json", ("json",), False, JSON, _GRAPHS),
    Format("html", ("html", "htm"), False, PAGE, _ALL, "(an interactive page)"),
    # Model Explorer's graph JSON (cgviz.view.modelexplorer), saved as NAME.me.json
    Format("modelexplorer", ("me.json", "modelexplorer"), False, VIEWER, frozenset({EXPRESSION, MODEL}),
           "(Model Explorer's graph JSON, NAME.me.json)"),
)}


def names(source: str | None = None) -> tuple[str, ...]:
    """Every format's name in the registry's order, or those `source` can write."""
    return tuple(n for n, f in REGISTRY.items() if source is None or source in f.sources)


def by_producer(producer: str) -> tuple[str, ...]:
    return tuple(n for n, f in REGISTRY.items() if f.producer == producer)


def from_path(path: str | PurePath | None) -> str | None:
    """The format a file name asks for by its suffix (the longest registered one: x.me.json is
    modelexplorer, x.json json), or None when it names none."""
    if path is None or str(path) in ("", "-"):
        return None
    name = PurePath(path).name.lower()
    best = None
    for f in REGISTRY.values():
        for s in f.suffixes:
            if name.endswith("." + s) and (best is None or len(s) > len(best[1])):
                best = (f.name, s)
    return best and best[0]


def suffix(fmt: str) -> str:
    """The suffix a file of `fmt` gets when only the format is given (".png", ".me.json")."""
    return REGISTRY[fmt].suffix


# What each source writes when neither a format nor a suffix says: a recorded run, its page.
DEFAULTS = {EXPRESSION: "png", MODEL: "png", DIFF: "png", RUN: "html"}


def written(source: str) -> str:
    """The formats `source` writes, its default first, for a message: "png, svg, pdf, dot, json or html"."""
    ns = names(source)
    ns = (DEFAULTS[source],) + tuple(n for n in ns if n != DEFAULTS[source])
    return ", ".join(ns[:-1]) + " or " + ns[-1]


def suffixes_text(source: str) -> str:
    """The suffixes that name `source`'s formats, for a message: ".png, .svg, ... or .html"."""
    ss = [REGISTRY[n].suffix for n in names(source)]
    return ", ".join(ss[:-1]) + " or " + ss[-1]


def cli_help() -> str:
    """The `--format` option's help, from the registry."""
    words = [f"{f.name} {f.help}".strip() for f in REGISTRY.values()]
    return ", ".join(words[:-1]) + ", or " + words[-1] + "."


def lookup(fmt: str, source: str) -> Format:
    """The format `fmt` for a drawing from `source`; an unknown one, or one this source does not
    write, is a message naming what it does write."""
    f = REGISTRY.get(fmt)
    if f is None or source not in f.sources:
        raise CgvizError(f"unknown format {fmt!r}; {_SOURCE_WORDS[source]} {written(source)}")
    return f


_SOURCE_WORDS = {EXPRESSION: "cgviz writes", MODEL: "cgviz writes", DIFF: "cgviz diff writes",
                 RUN: "a recorded run is drawn as"}
