"""Reads a .cgw record file (torch-free): the header, the graph, and every complete step record.

A run that is still writing, or was killed mid-line, ends in a torn last line: it is skipped, and
`Run.torn` says so. Anything else that is not a record is an error that names the file and line.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..core.errors import CgvizError
from .writer import FORMAT, VERSION


@dataclass(frozen=True)
class ParamStats:
    """One parameter at one recorded step. `update` is ‖Δw‖/‖w‖ of the optimizer step that followed
    (None when the run ended before it was seen). The histogram is of the gradient's elements:
    len(hist_edges) == len(hist_counts) + 1 (both empty when the gradient was all NaN/inf or absent)."""

    w: float
    g: float | None             # None: the parameter had no gradient at this step
    ratio: float | None         # ‖g‖/‖w‖
    update: float | None
    hist_edges: list[float]
    hist_counts: list[int]
    nan: int
    inf: int


@dataclass(frozen=True)
class ModuleStats:
    """One module's output at one recorded step (the first forward of that step)."""

    mean: float
    std: float
    saturated: float | None     # sigmoid/tanh: the fraction of outputs within 1% of the bounds
    dead: float | None          # ReLU-like: the fraction of units that are zero on the whole batch
    grad: float | None          # ‖∂L/∂out‖
    input_range: tuple[float, float] | None = None    # sigmoid/tanh: the smallest and largest input


@dataclass(frozen=True)
class Step:
    step: int                   # the optimizer step's index, from 0
    loss: float | None          # None: w.step() was given no loss
    params: dict[str, ParamStats]
    modules: dict[str, ModuleStats]
    scaled: bool                # the gradients are as a GradScaler scaled them (not unscaled)


@dataclass
class Run:
    header: dict
    graph: dict | None
    steps: list[Step]
    events: list[dict] = field(default_factory=list)    # the file's {"event": ...} lines, in order
    torn: bool = False          # the last line was incomplete (a run still writing, or killed)

    @property
    def params(self) -> list[str]:
        return list(self.header.get("params", []))

    @property
    def modules(self) -> list[str]:
        return list(self.header.get("modules", []))

    @property
    def source(self) -> str:
        return str(self.header.get("source", ""))


def _edges(h: dict) -> list[float]:
    if "edges" in h:
        return [float(e) for e in h["edges"]]
    n = len(h.get("counts", []))
    if not n:
        return []
    lo, hi = float(h["lo"]), float(h["hi"])
    return [lo + (hi - lo) * i / n for i in range(n + 1)]


def _param(d: dict) -> ParamStats:
    h = d.get("hist") or {}
    return ParamStats(w=d["w"], g=d.get("g"), ratio=d.get("ratio"), update=d.get("update"),
                      hist_edges=_edges(h), hist_counts=[int(c) for c in h.get("counts", [])],
                      nan=int(d.get("nan", 0)), inf=int(d.get("inf", 0)))


def _module(d: dict) -> ModuleStats:
    return ModuleStats(mean=d["mean"], std=d["std"], saturated=d.get("saturated"), dead=d.get("dead"),
                       grad=d.get("grad"),
                       input_range=tuple(d["in"]) if d.get("in") else None)


def step_from(d: dict) -> Step:
    """A Step from one decoded record line."""
    return Step(step=int(d["step"]), loss=float(d["loss"]) if d["loss"] is not None else None,
                params={k: _param(v) for k, v in d["params"].items()},
                modules={k: _module(v) for k, v in d.get("modules", {}).items()},
                scaled=bool(d.get("scaled", False)))


def read_run(path: str | os.PathLike) -> Run:
    """The run recorded in `path`, every complete record of it."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except FileNotFoundError:
        raise CgvizError(f"{p}: no such file") from None
    except OSError as e:
        raise CgvizError(f"{p}: cannot be read ({e.strerror})") from None
    lines = data.split(b"\n")
    # a complete record ends in a newline; whatever follows the last one is a record being written
    torn = lines[-1].strip() != b""
    lines = lines[:-1]
    if not lines:
        if torn:
            raise CgvizError(f"{p}: the record's header is incomplete (the run was stopped before it was written)")
        raise CgvizError(f"{p}: empty file, not a cgviz watch record")
    header = _decode(p, 1, lines[0])
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CgvizError(f"{p}: not a cgviz watch record (its first line has no \"format\": \"{FORMAT}\")")
    version = header.get("version")
    if not isinstance(version, int) or version > VERSION:
        raise CgvizError(f"{p}: record format version {version!r}; this cgviz reads version {VERSION} and older")
    run = Run(header=header, graph=header.get("graph"), steps=[], torn=torn)
    for i, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        d = _decode(p, i, line)
        if "event" in d:
            run.events.append(d)
        elif "step" in d:
            try:
                run.steps.append(step_from(d))
            except (KeyError, TypeError, ValueError) as e:
                raise CgvizError(f"{p}:{i}: a step record with a missing or wrong field ({e})") from None
        # other keys: a later version's kind of line, which an older reader skips
    return run


def _decode(p: Path, i: int, line: bytes):
    try:
        d = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CgvizError(f"{p}:{i}: not a JSON record ({e})") from None
    if not isinstance(d, dict):
        raise CgvizError(f"{p}:{i}: a record is a JSON object, not a {type(d).__name__}")
    return d
