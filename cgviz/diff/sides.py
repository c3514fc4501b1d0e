"""One side of a comparison as a golden document: a Drawing, a saved JSON graph or golden, or anything
`cgviz.draw` draws (a program, a model file, a .pt2), drawn with that side's own options."""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..view import golden
from ..core.errors import CgvizError, OptionError


@dataclass
class Side:
    """A run to compare: its golden document, what to call it, and its Drawing when it was drawn here."""

    doc: dict
    label: str
    drawing: Any = None


def side(source: Any, options: dict[str, Any] | None = None, which: str = "A") -> Side:
    """`source` as a Side. `options` are the manifest's keys (dtype, seed, input_shape, set …) as
    `--a KEY=VALUE` gives them, checked by their one definition; for a program, a key that is not an
    option sets a declaration (`--b w=0.1`)."""
    from ..api.drawing import Drawing
    options = dict(options or {})
    if isinstance(source, Drawing):
        _no_options(options, which, "a Drawing, which is drawn already")
        return Side(golden.document(source), source.source, source)
    if isinstance(source, dict):
        _no_options(options, which, "a document")
        return Side(_as_golden(source, f"{which}'s document"), str(source.get("source") or which))
    if not isinstance(source, (str, os.PathLike)):
        raise CgvizError(f"compare(): {which} is a {type(source).__name__}; give a Drawing, a file path, "
                         "program text, or a cgviz-graph / cgviz-snapshot document")
    text = os.fspath(source)
    if text.lower().endswith(".json") and "\n" not in text:
        _no_options(options, which, "a saved JSON graph, which is drawn already")
        from ..core.paths import read_input
        from ..core.spelling import spell
        data = read_input(Path(text), kind="a saved graph", accepts="Give a JSON file written by "
                          f"`{spell('format', 'json')}` or by cgviz snapshot.")
        try:
            doc = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise CgvizError(f"{text} is not valid JSON ({e})") from None
        return Side(_as_golden(doc, text), text)
    return _drawn(text, options, which)


def _no_options(options: dict, which: str, what: str) -> None:
    if options:
        raise OptionError(f"options for {which} ({', '.join(options)}) cannot apply to {what}")


def _as_golden(doc: Any, where: str) -> dict:
    """A cgviz-graph document (`--format json`) or a golden (cgviz-snapshot) as a golden."""
    from ..view.export import FORMAT as GRAPH
    fmt = doc.get("format") if isinstance(doc, dict) else None
    if fmt == golden.FORMAT:
        return golden.loads(json.dumps(doc), where)
    if fmt == GRAPH and isinstance(doc.get("nodes"), list) and isinstance(doc.get("edges"), list):
        try:
            return golden.from_graph(doc)
        except (KeyError, TypeError) as e:
            raise CgvizError(f"{where} is a damaged {GRAPH} document (no {e})") from None
    from ..core.spelling import spell
    raise CgvizError(f"{where} is neither a {GRAPH} document (`{spell('format', 'json')}`) nor a {golden.FORMAT} golden")


def _drawn(text: str, options: dict, which: str) -> Side:
    from ..api.sources import source_kind
    from ..snapshot.runner import _entry_options, draw_entry
    told = source_kind(text)
    kind = "model" if told == "model" else "cg"
    item: dict[str, Any] = {}
    sets: dict[str, Any] = {}
    from ..snapshot.runner import CG_KEYS, CHECK_KEYS, MODEL_KEYS
    allowed = CG_KEYS if kind == "cg" else MODEL_KEYS
    for key, value in options.items():
        key = key.replace("-", "_")
        if key in CHECK_KEYS:
            raise OptionError(f"{key} is a tolerance of the comparison, not an option of {which}: give it once "
                              f"(--{key} on the command line, {key}= in Python)")
        if key not in allowed:
            if kind == "cg":
                sets[key] = value
                continue
            raise OptionError(f"unknown option {key!r} for {which} (a model); known: {', '.join(sorted(allowed))}")
        if key == "input_shape" and isinstance(value, str):
            value = [value]
        item[key] = value
    if sets:
        item["set"] = {**item.get("set", {}), **sets}
    opts = _entry_options(item, kind, f"the options of {which}")     # a UsageProblem is an OptionError
    d = draw_entry(text, kind, opts, text=told == "text")
    return Side(golden.document(d), d.source, d)


def parse_option(item: str, which: str) -> tuple[str, Any]:
    """`KEY=VALUE` from the command line: the value read as TOML when it is one (true, 3, 0.5), else
    as text (bfloat16, 1,3,32,32), as a manifest would hold it."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise OptionError(f"--{which.lower()} takes KEY=VALUE (for example --{which.lower()} dtype=bfloat16), "
                          f"got {item!r}")
    try:
        parsed = tomllib.loads(f"v = {value}")["v"]
    except tomllib.TOMLDecodeError:
        parsed = value
    return key.strip(), parsed
