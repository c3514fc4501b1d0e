"""The layers of cgviz (docs/internals.md): every import in cgviz/, at module level or inside a
function, read with `ast`; no module imports one of a higher layer unless ALLOWED names it, with why."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "cgviz"

# Low to high. A module may import its own layer and those below it.
LAYERS = ("core", "sources", "plan", "view", "route", "api", "clients")

# Which layer a module is in: the longest matching dotted prefix decides.
PLACES = {
    # core: the IR, its result types, errors, how things are written and spelled, reading files
    "cgviz.core.textwidth": "core", "cgviz.core.errors": "core", "cgviz.core.spelling": "core", "cgviz.core.pywarnings": "core",
    "cgviz.core.needs": "core", "cgviz.core.paths": "core", "cgviz.core.ir": "core", "cgviz.core.names": "core",
    "cgviz.core.fmt": "core", "cgviz.core.summary": "core", "cgviz.core.costs": "core", "cgviz.core.colours": "core",
    # sources: the expression language, the PyTorch front end and the records a run writes, with
    # what is judged from their numbers (gradient health, where a NaN was born)
    "cgviz.lang": "sources", "cgviz.pytorch": "sources", "cgviz.cgw": "sources", "cgviz.diagnose.health": "sources",
    "cgviz.diagnose.nonfinite": "sources", "cgviz.diagnose.grads": "sources",
    # plan: what a model's picture holds (clusters, folds, the inside of a module, the page's
    # levels) and what it may cost to draw, from the IR and a run's summary alone
    "cgviz.plan": "plan",
    # view: drawing a picture, and writing it in every format; the graph golden is the JSON format
    # read back
    "cgviz.view": "view", "cgviz.view.golden": "view",
    # route: a source's run to output bytes in one call (cgviz.route: an expression program, a model,
    # a program's training record), the gradient checks, training, the options
    "cgviz.route": "route", "cgviz.check": "route",
    "cgviz.route.training": "route", "cgviz.api.results": "route", "cgviz.api.options": "api",
    # api: the library's calls (the cgviz.api package: every module in it), and the commands built only from them
    "cgviz": "api", "cgviz.api": "api", "cgviz.diff": "api", "cgviz.snapshot.runner": "api",
    "cgviz.snapshot.workers": "api", "cgviz.watch": "api",
    # clients of the library
    "cgviz.cli": "clients", "cgviz.__main__": "clients", "cgviz.pytest_plugin": "clients",
}

# The imports that point up a layer today, each with why; fix one and remove its line (the test
# fails on a line that no longer matches, so this list only shrinks).
ALLOWED: dict[tuple[str, str], str] = {}
MAX_ALLOWED = 0     # lower it as ALLOWED shrinks; never raise it

# Package-level cycles (the root modules, which span every layer, left out). None across layers is left: the route
# modules that tied a source to the views moved out of lang/ and pytorch/ into route/, watch/'s
# writer of a program's record (it writes view/export.py's JSON) to route/program.py, and the record's
# format (writer, reader, analysis: below the views, which read it) to cgw/, so watch/ is the recorder
# alone (above the views: it draws through cgviz.api). A cycle across layers that comes back must be
# ended, not listed.
# One remains, between two packages of the same layer: `api` ↔ `diff` was there while api.py was a
# root module and shows since it became a package: a comparison reads Drawings (diff/sides.py) and
# Drawing.diff() is cgviz.compare. And `snapshot` ↔ `diff`, hidden while snapshot.py was a root
# module: a failed snapshot writes the comparison's picture (diff/report.py), and a comparison takes
# a manifest's entry as a side, drawn by the snapshot runner (diff/sides.py).
ALLOWED_PACKAGE_CYCLES = {frozenset({"api", "diff"}), frozenset({"snapshot", "diff"})}


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(name: str) -> str:
    """`cgviz.view.graphviz.FORMATS` → `cgviz.view.graphviz`: the longest prefix that is a module."""
    parts = name.split(".")
    while parts:
        base = ROOT.joinpath(*parts)
        if base.with_suffix(".py").is_file() or (base / "__init__.py").is_file():
            return ".".join(parts)
        parts.pop()
    return name


def imports() -> set[tuple[str, str]]:
    """(importer, imported) for every import of a cgviz module in cgviz/, in functions too."""
    edges = set()
    for path in sorted(PACKAGE.rglob("*.py")):
        me = _module(path)
        package = me if path.name == "__init__.py" else me.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")[:len(package.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [_resolve(f"{target}.{a.name}") for a in node.names]
            elif isinstance(node, ast.Import):
                names = [_resolve(a.name) for a in node.names]
            else:
                continue
            edges |= {(me, n) for n in names if (n == "cgviz" or n.startswith("cgviz.")) and n != me}
    return edges


def layer(module: str) -> str:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in PLACES:
            return PLACES[".".join(parts[:i])]
    raise AssertionError(f"{module} has no layer: give it one in tests/test_layers.py and docs/internals.md")


def _rank(module: str) -> int:
    return LAYERS.index(layer(module))


def test_every_module_has_a_layer():
    for path in PACKAGE.rglob("*.py"):
        layer(_module(path))


def test_the_walk_sees_imports_inside_functions_and_relative_ones():
    edges = imports()
    assert ("cgviz.api.sources", "cgviz.route.expression") in edges  # `from ..route.expression import ...` in a function
    assert ("cgviz.lang.build", "cgviz.core.ir") in edges               # `from ..ir import ...` at the top
    assert ("cgviz.core.fmt", "cgviz.lang.ops") not in edges            # fixed: shape_text lives in fmt
    assert ("cgviz.pytorch.profile", "cgviz.view.profile") not in edges   # fixed: Cost, Profile in costs.py


def test_no_module_imports_a_higher_layer():
    up = {(a, b) for a, b in imports() if _rank(a) < _rank(b)}
    new = sorted(up - ALLOWED.keys())
    assert not new, "imports that point up a layer (move the code, or the import, down):\n" + "\n".join(
        f"  {a} ({layer(a)}) -> {b} ({layer(b)})" for a, b in new)
    stale = sorted(ALLOWED.keys() - up)
    assert not stale, f"fixed, so take them out of ALLOWED (and lower MAX_ALLOWED): {stale}"
    assert len(ALLOWED) <= MAX_ALLOWED


def test_the_expression_language_never_imports_the_pytorch_front_end():
    """The DSL path stays free of torch by construction, not only by the run-time check."""
    bad = sorted((a, b) for a, b in imports() if a.startswith("cgviz.lang") and b.startswith("cgviz.pytorch"))
    assert not bad


def test_the_ir_and_the_picture_planning_never_import_torch():
    """The IR's types (Frame, Scope) and cgviz.plan are read by every source's picture, ONNX's and a
    record's too: neither may reach torch, directly or through the PyTorch front end (a layer below
    them, so the walk above would let it pass)."""
    mine = [PACKAGE / "core" / "ir.py", *sorted((PACKAGE / "plan").rglob("*.py"))]
    assert len(mine) > 5
    bad = []
    for path in mine:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            bad += [(_module(path), n) for n in names if n == "torch" or n.startswith("torch.")]
    bad += sorted((a, b) for a, b in imports()
                  if (a == "cgviz.core.ir" or a.startswith("cgviz.plan")) and b.startswith("cgviz.pytorch"))
    assert not bad


FRONT_ENDS = ("cgviz.cli", "cgviz.pytest_plugin", "cgviz.snapshot.runner", "cgviz.snapshot.workers", "cgviz.diff", "cgviz.watch.record")


def test_every_front_end_takes_the_one_route_through_the_library():
    """One route: the command line, the pytest plugin, the snapshot runner, the comparison and the
    recorder reach a source through cgviz.api's calls, never the route modules behind them (cgviz
    torch called route/model's draw_model, beside draw(), and did things draw() could not)."""
    edges = imports()
    around = sorted((a, b) for a, b in edges if a.startswith(FRONT_ENDS) and b.startswith("cgviz.route"))
    assert not around, around
    assert ("cgviz.cli", "cgviz.api") in edges


def _package(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and (PACKAGE / parts[1]).is_dir()) else "(root)"


def test_package_cycles_are_only_the_listed_ones():
    edges = {(_package(a), _package(b)) for a, b in imports()
             if _package(a) != _package(b) and "(root)" not in (_package(a), _package(b))}
    cycles = {frozenset({a, b}) for a, b in edges if (b, a) in edges}
    longer = _longer_cycles(edges)
    assert cycles <= ALLOWED_PACKAGE_CYCLES, f"new package cycles: {cycles - ALLOWED_PACKAGE_CYCLES}"
    assert ALLOWED_PACKAGE_CYCLES <= cycles, f"ended, so take out of the list: {ALLOWED_PACKAGE_CYCLES - cycles}"
    assert not longer, f"package cycles through three or more packages: {longer}"


def _longer_cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Cycles of three or more packages (two-package ones are counted above), by a walk from each."""
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)
    found = []

    def walk(path):
        for nxt in graph.get(path[-1], ()):
            if nxt == path[0] and len(path) >= 3:
                found.append(path[:])
            elif nxt not in path and nxt > path[0]:
                walk(path + [nxt])

    for start in sorted(graph):
        walk([start])
    return [c for c in found if not any(frozenset(pair) in ALLOWED_PACKAGE_CYCLES
                                        for pair in zip(c, c[1:] + c[:1]))]
