"""The pytest plugin (entry point `pytest11`): a `graph_snapshot` fixture that holds a drawing's graph against a golden kept beside the test."""

from __future__ import annotations

import hashlib
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest

# Where the goldens live, beside the test module, as syrupy keeps its own.
FOLDER = "__snapshots__"
UPDATE = "--cgviz-update"
# a written golden rides on its test's report (user_properties), which xdist hands its controller
_PROPERTY = "cgviz graph golden written"
_UNSAFE = re.compile(r"[^\w.\-\[\]=,+@ ]")
MAX_STEM = 150


def pytest_addoption(parser) -> None:
    group = parser.getgroup("cgviz", "cgviz graph snapshots")
    group.addoption(UPDATE, action="store_true", default=False, dest="cgviz_update",
                    help="Write the graph_snapshot goldens that are missing or differ, instead of failing.")
    # syrupy's own --snapshot-update (its dest is update_snapshots) updates cgviz's goldens too; without
    # syrupy the flag is accepted here, so a project's habit works either way
    if importlib.util.find_spec("syrupy") is None:
        try:
            group.addoption("--snapshot-update", action="store_true", default=False, dest="update_snapshots",
                            help=f"The same as {UPDATE} (syrupy's name for it).")
        except ValueError:       # another plugin has the name already
            pass
    parser.addini("cgviz_rtol", "graph_snapshot's relative tolerance [default: 1e-4]", default=None)
    parser.addini("cgviz_atol", "graph_snapshot's absolute tolerance [default: 1e-12]", default=None)


def pytest_configure(config) -> None:
    config.pluginmanager.register(_Written(), "cgviz-goldens-written")


def _updating(config) -> bool:
    return bool(config.getoption("cgviz_update", False) or config.getoption("update_snapshots", False))


@pytest.fixture
def graph_snapshot(request) -> "GraphSnapshot":
    """Compare a drawing's graph with its golden: `graph_snapshot(cgviz.draw(model, x))`, or
    `assert cgviz.draw(...) == graph_snapshot`. The golden is
    `__snapshots__/<test module>/<test name>.json` beside the test; run pytest with --cgviz-update
    to write or rewrite it."""
    return GraphSnapshot(request)


class GraphSnapshot:
    """The fixture's object: call it, or compare a drawing with it by ==."""

    def __init__(self, request):
        self._request = request
        self._calls = 0
        self._failure: list[str] | None = None
        config = request.config
        self.update = _updating(config)
        self.rtol = _ini_float(config, "cgviz_rtol")
        self.atol = _ini_float(config, "cgviz_atol")

    def path(self, name: str | None = None) -> Path:
        """The golden file of this test (and `name`, for several in one test)."""
        node = self._request.node
        test = ".".join(node.nodeid.split("::")[1:]) or node.name
        if name is not None:
            stem = f"{test}[{name}]"
        else:
            stem = test if self._calls == 0 else f"{test}.{self._calls}"
            self._calls += 1
        stem = _UNSAFE.sub("_", stem)
        if len(stem) > MAX_STEM:         # long parametrised ids: keep the start, make the rest unique
            stem = stem[:MAX_STEM - 13] + "-" + hashlib.sha1(stem.encode()).hexdigest()[:12]
        module = Path(str(node.path))
        return module.parent / FOLDER / module.stem / f"{stem}.json"

    def __call__(self, source: Any, *inputs: Any, name: str | None = None, rtol: float | None = None,
                 atol: float | None = None, **draw_kwargs: Any) -> None:
        """Check `source` (a Drawing, or what cgviz.draw takes, with its inputs and keywords) against
        the golden; fails the test with what changed, node by node."""
        __tracebackhide__ = True
        problem = self._check(source, inputs, name, rtol, atol, draw_kwargs)
        if problem:
            pytest.fail("\n".join(problem), pytrace=False)

    def __eq__(self, other: Any) -> bool:
        self._failure = self._check(other, (), None, None, None, {})
        return not self._failure

    __hash__ = None          # compared by ==, so not a dict key

    def __repr__(self) -> str:
        return "graph_snapshot"

    def _check(self, source, inputs, name, rtol, atol, draw_kwargs) -> list[str] | None:
        from . import golden as G
        doc = _document(source, inputs, draw_kwargs)
        path = self.path(name)
        shown = _relative(path)
        text = G.dumps(doc)
        if not path.exists():
            if self.update:
                return self._write(path, text)
            return [f"no golden {shown} for this graph; run pytest with {UPDATE} to write it"]
        try:
            old = G.loads(path.read_bytes(), str(shown))
        except (G.GoldenError, OSError) as e:
            if self.update:
                return self._write(path, text)
            return [f"{e}", f"run pytest with {UPDATE} to write it again"]
        diff = G.compare(old, doc, self.rtol if rtol is None else rtol, self.atol if atol is None else atol)
        if diff.same:
            return None
        if self.update:
            return self._write(path, text)
        # the summary first: pytest shortens a long `==` explanation to its first lines unless -vv
        return [f"the graph differs from its golden {shown}: {diff.summary}", *(f"  {line}" for line in diff.changes),
                f"if the change is intended, run pytest with {UPDATE}"]

    def _write(self, path: Path, text: str) -> None:
        """Write a golden (update mode): the check passes."""
        from .view.graphviz import write_atomic
        write_atomic(path, text.encode("utf-8"))           # makes the folder (exist_ok: xdist workers race)
        self._request.node.user_properties.append((_PROPERTY, str(_relative(path))))
        return None


def _document(source, inputs, draw_kwargs) -> dict:
    """The golden document of what a test gives: a Drawing, a cgviz-graph dict, or cgviz.draw's arguments."""
    from . import golden as G
    from .api import Drawing, draw
    if isinstance(source, Drawing):
        if inputs or draw_kwargs:
            raise TypeError("graph_snapshot(drawing) takes no inputs or draw() keywords: the drawing has them")
        return G.document(source)
    if isinstance(source, dict):
        return G.from_graph(source)
    return G.document(draw(source, *inputs, **draw_kwargs))


def _relative(path: Path) -> Path:
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def _ini_float(config, key: str) -> float | None:
    raw = config.getini(key)
    if raw in (None, ""):
        return None
    try:
        value = float(raw)
    except ValueError:
        raise pytest.UsageError(f"{key} = {raw!r} in the pytest configuration is not a number") from None
    if not value >= 0:
        raise pytest.UsageError(f"{key} = {raw!r} must be a number ≥ 0")
    return value


def pytest_assertrepr_compare(config, op: str, left: Any, right: Any) -> list[str] | None:
    """`assert drawing == graph_snapshot`: pytest's message is the node-by-node report."""
    snap = right if isinstance(right, GraphSnapshot) else left if isinstance(left, GraphSnapshot) else None
    if op != "==" or snap is None or not snap._failure:
        return None
    return ["drawing == graph_snapshot", *snap._failure]


class _Written:
    """The goldens an update run wrote, from every test's report (in xdist's controller too), said
    once at the end."""

    def __init__(self):
        self.paths: list[str] = []

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "call":
            self.paths += [v for k, v in report.user_properties if k == _PROPERTY]

    def pytest_terminal_summary(self, terminalreporter) -> None:
        n = len(self.paths)
        if n:
            terminalreporter.write_line(f"cgviz: wrote {n} graph golden{'s' * (n != 1)}: "
                                        + ", ".join(self.paths[:10]) + (" …" if n > 10 else ""))
