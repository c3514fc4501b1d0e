"""The pytest plugin (entry point `pytest11`): a `graph_snapshot` fixture that holds a drawing's graph against a golden kept beside the test."""

from __future__ import annotations

import hashlib
import os
import re
import stat
import unicodedata
from pathlib import Path
from typing import Any

import pytest

# Where the goldens live, beside the test module: a folder of cgviz's own. syrupy owns
# `__snapshots__/` (its --snapshot-update deletes every file there it did not write) and
# pytest-snapshot and snapshottest `snapshots/`.
FOLDER = "__graph_snapshots__"
# Where cgviz kept them before; still read (with a note to move them), moved by an update run.
LEGACY_FOLDER = "__snapshots__"
UPDATE = "--cgviz-update"
# a written golden rides on its test's report (user_properties), which xdist hands its controller
_PROPERTY = "cgviz graph golden written"
_LEGACY = "cgviz graph golden in the old folder"
_MOVED = "cgviz graph golden moved"
# Test-id characters kept as they are in a golden's name (\w: letters and digits of any script);
# every other one becomes %XX per UTF-8 byte ('%' too), so two test ids never share a golden.
_SAFE = re.compile(r"[\w.\-\[\]=,+@ ]")
# A file name is at most 255 bytes on common file systems (ext4, APFS, NTFS counts UTF-16 units);
# a longer name keeps its start and ends in a hash of the whole, within this many bytes with .json.
MAX_NAME_BYTES = 200
HASH = 12
GOLDEN_LIMIT = 256 * 1024 * 1024
# the update options other snapshot plugins register (syrupy: update_snapshots; pytest-snapshot and
# snapshottest: snapshot_update): read, never registered, to say they do not update cgviz's goldens
_FOREIGN_UPDATES = ("update_snapshots", "snapshot_update")
# the pre-1.0 naming of the legacy folder, to find a golden written there
_LEGACY_UNSAFE = re.compile(r"[^\w.\-\[\]=,+@ ]")
_LEGACY_MAX_STEM = 150


def pytest_addoption(parser) -> None:
    # Only options of cgviz's own name: another plugin's (syrupy's and pytest-snapshot's
    # --snapshot-update) registered here as well makes every pytest run in the environment fail.
    group = parser.getgroup("cgviz", "cgviz graph snapshots")
    group.addoption(UPDATE, action="store_true", default=False, dest="cgviz_update",
                    help=f"Write the graph_snapshot goldens ({FOLDER}/ beside each test module) that are "
                         f"missing or differ, instead of failing; moves those still in {LEGACY_FOLDER}/.")
    parser.addini("cgviz_rtol", "graph_snapshot's relative tolerance [default: 1e-4]", default=None)
    parser.addini("cgviz_atol", "graph_snapshot's absolute tolerance [default: 1e-12]", default=None)


def pytest_configure(config) -> None:
    config.pluginmanager.register(_Written(), "cgviz-goldens-written")


def _updating(config) -> bool:
    return bool(config.getoption("cgviz_update", False))


def _foreign_update(config) -> bool:
    """Another plugin's --snapshot-update was given (it updates that plugin's snapshots only)."""
    return any(config.getoption(dest, False) is True for dest in _FOREIGN_UPDATES)


@pytest.fixture
def graph_snapshot(request) -> "GraphSnapshot":
    """Compare a drawing's graph with its golden: `graph_snapshot(cgviz.draw(model, x))`, or
    `assert cgviz.draw(...) == graph_snapshot`. The golden is
    `__graph_snapshots__/<test module>/<test id>.json` beside the test; run pytest with
    --cgviz-update to write or rewrite it."""
    return GraphSnapshot(request)


def golden_name(test: str, name: str | None = None, call: int = 0) -> str:
    """The file name of a test's golden: `test_sample[pizza].json`, `<test id>[<name>].json` for a
    named one, `<test id>.1.json` for a second unnamed call. Injective: characters outside a safe set
    become %XX; a name over MAX_NAME_BYTES keeps its start and ends in a hash of the whole."""
    units = _escaped(test)
    if name is not None:
        units += ["["] + _escaped(name) + ["]"]
    elif call:
        units.append(f".{call}")
    stem = "".join(units)
    if len(stem.encode("utf-8")) + len(".json") <= MAX_NAME_BYTES:
        return stem + ".json"
    digest = hashlib.sha1(stem.encode("utf-8")).hexdigest()[:HASH]
    budget, kept = MAX_NAME_BYTES - len(".json") - HASH - 1, []
    for unit in units:          # whole characters and whole escapes only
        size = len(unit.encode("utf-8"))
        if size > budget:
            break
        kept.append(unit)
        budget -= size
    return "".join(kept) + "-" + digest + ".json"


def _escaped(text: str) -> list[str]:
    return [c if _SAFE.fullmatch(c) else "".join(f"%{b:02X}" for b in c.encode("utf-8", "surrogatepass"))
            for c in text]


def _legacy_name(test: str, name: str | None, call: int) -> str:
    """The name cgviz gave a golden in __snapshots__/ before (not injective, capped in characters)."""
    stem = f"{test}[{name}]" if name is not None else (f"{test}.{call}" if call else test)
    stem = _LEGACY_UNSAFE.sub("_", stem)
    if len(stem) > _LEGACY_MAX_STEM:
        stem = stem[:_LEGACY_MAX_STEM - 13] + "-" + hashlib.sha1(stem.encode()).hexdigest()[:12]
    return stem + ".json"


class GraphSnapshot:
    """The fixture's object: call it, or compare a drawing with it by ==."""

    def __init__(self, request):
        self._request = request
        self._calls = 0
        self._names: set[str] = set()
        self._failure: list[str] | None = None
        config = request.config
        self.update = _updating(config)
        self.rtol = _ini_float(config, "cgviz_rtol")
        self.atol = _ini_float(config, "cgviz_atol")

    def _test_id(self) -> str:
        node = self._request.node
        return ".".join(node.nodeid.split("::")[1:]) or node.name

    def path(self, name: str | None = None) -> Path:
        """The golden file of this test (and `name`, for several in one test)."""
        return self._paths(name)[0]

    def _paths(self, name: str | None) -> tuple[Path, Path]:
        """(the golden, where cgviz kept it before) for the next call."""
        call = 0
        if name is None:
            call = self._calls
            self._calls += 1
        else:
            name = str(name)
        test = self._test_id()
        module = Path(str(self._request.node.path))
        return (module.parent / FOLDER / module.stem / golden_name(test, name, call),
                module.parent / LEGACY_FOLDER / module.stem / _legacy_name(test, name, call))

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

    def _claim(self, path: Path, name: str | None) -> list[str] | None:
        """Two checks may not share a golden: a name given twice in one test, or two tests whose
        goldens differ only in letter case (one file on macOS and Windows)."""
        if name is not None:
            if name in self._names:
                return [f"graph_snapshot: name={name!r} is used twice in this test; give each check its own name"]
            self._names.add(name)
        owners = self._request.config.stash.setdefault(_OWNERS, {})
        owner = (self._request.node.nodeid, name, path.name)
        key = unicodedata.normalize("NFC", os.path.normcase(str(path))).casefold()
        other = owners.setdefault(key, owner)
        if other != owner:
            return [f"graph_snapshot: the golden {_relative(path)} would also be that of {other[0]}"
                    f"{'' if other[1] is None else f' (name={other[1]!r})'}: their names differ only in "
                    "letter case or accents' encoding, which is one file on macOS and Windows; give one of "
                    "them name="]
        return None

    def _check(self, source, inputs, name, rtol, atol, draw_kwargs) -> list[str] | None:
        from .view import golden as G
        doc = _document(source, inputs, draw_kwargs)
        path, legacy = self._paths(name)
        clash = self._claim(path, None if name is None else str(name))
        if clash:
            return clash
        shown = _relative(path)
        text = G.dumps(doc)
        problem = _not_a_file(path)
        if problem:
            return [problem]
        found = path
        if not path.exists():
            old = _legacy_golden(legacy)
            if old is None:
                if self.update:
                    return self._write(path, text)
                return [f"no golden {shown} for this graph; run pytest with {UPDATE} to write it"
                        + self._foreign_hint()]
            found, shown = legacy, _relative(legacy)
        try:
            old_doc = G.loads(_read(found), str(shown))
        except (G.GoldenError, OSError) as e:
            if self.update:
                return self._write(path, text, legacy)
            return [f"{e}", f"run pytest with {UPDATE} to write it again"]
        diff = G.compare(old_doc, doc, self.rtol if rtol is None else rtol, self.atol if atol is None else atol)
        if diff.same:
            if self.update and found == legacy:
                return self._write(path, _read(legacy).decode("utf-8"), legacy)     # moved as it was
            if found == legacy:
                self._request.node.user_properties.append((_LEGACY, str(shown)))
            elif self.update:
                _remove_legacy(legacy)
            return None
        if self.update:
            return self._write(path, text, legacy)
        # the summary first: pytest shortens a long `==` explanation to its first lines unless -vv
        return [f"the graph differs from its golden {shown}: {diff.summary}", *self._picture(old_doc, doc, path, rtol, atol),
                *(f"  {line}" for line in diff.changes),
                f"if the change is intended, run pytest with {UPDATE}" + self._foreign_hint()]

    def _picture(self, old: dict, new: dict, golden_path: Path, rtol, atol) -> list[str]:
        """The diff picture, in pytest's temporary folder (never beside the goldens, which are committed),
        and its summary lines."""
        from .diff.report import write_picture
        folder = self._request.getfixturevalue("tmp_path_factory").getbasetemp() / "cgviz-graphdiff"
        target = folder / (golden_path.stem + ".graphdiff.png")
        diff, path, why = write_picture(old, new, target, self.rtol if rtol is None else rtol,
                                        self.atol if atol is None else atol)
        head = f"  diff picture: {path}" if path else f"  no diff picture: {why}"
        return [head, *(f"  {line}" for line in diff.summary_lines()[1:])]

    def _foreign_hint(self) -> str:
        if _foreign_update(self._request.config):
            return " (--snapshot-update is another snapshot plugin's option, for its own snapshots)"
        return ""

    def _write(self, path: Path, text: str, legacy: Path | None = None) -> None:
        """Write a golden (update mode), then drop its copy in the old folder: the check passes."""
        from .view.graphviz import write_atomic
        write_atomic(path, text.encode("utf-8"))           # makes the folder (exist_ok: xdist workers race)
        moved = legacy is not None and _remove_legacy(legacy)
        self._request.node.user_properties.append((_MOVED if moved else _PROPERTY, str(_relative(path))))
        return None


_OWNERS = pytest.StashKey[dict]()


def _not_a_file(path: Path) -> str | None:
    """Why `path` cannot be a golden (a FIFO would hang the read, a folder cannot be replaced), or None."""
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    from .core.paths import kind_of
    return (f"the golden {_relative(path)} is {kind_of(mode)}, not a regular file: cgviz neither reads nor "
            "replaces it (reading a pipe may never end); remove it, then run pytest with " + UPDATE)


def _read(path: Path) -> bytes:
    from .core.errors import CgvizError
    from .core.paths import read_input
    try:
        return read_input(path, kind="a graph golden", limit=GOLDEN_LIMIT)
    except CgvizError as e:
        raise OSError(str(e)) from None


def _legacy_golden(path: Path) -> Path | None:
    """The golden cgviz wrote in the old folder, if that file is one (never a file of another tool's)."""
    from .view import golden as G
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return None
        G.loads(_read(path))
    except (OSError, G.GoldenError):
        return None
    return path


def _remove_legacy(path: Path) -> bool:
    """Delete a golden of cgviz's in the old folder, and the folders it leaves empty; True if it did."""
    if _legacy_golden(path) is None:
        return False
    try:
        path.unlink()
    except OSError:
        return False
    for folder in (path.parent, path.parent.parent):
        try:
            folder.rmdir()          # only when empty: another tool's snapshots stay
        except OSError:
            break
    return True


def _document(source, inputs, draw_kwargs) -> dict:
    """The golden document of what a test gives: a Drawing, a cgviz-graph dict, or cgviz.draw's arguments."""
    from .view import golden as G
    from .api.drawer import draw
    from .api.drawing import Drawing
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
    """The goldens an update run wrote or moved, and those still read from the old folder, from every
    test's report (in xdist's controller too), said once at the end."""

    def __init__(self):
        self.paths: dict[str, list[str]] = {_PROPERTY: [], _MOVED: [], _LEGACY: []}

    def pytest_runtest_logreport(self, report) -> None:
        if report.when == "call":
            for k, v in report.user_properties:
                if k in self.paths:
                    self.paths[k].append(v)

    def pytest_terminal_summary(self, terminalreporter) -> None:
        for key, what in ((_PROPERTY, "wrote {n} graph golden{s}"),
                          (_MOVED, f"moved {{n}} graph golden{{s}} from {LEGACY_FOLDER}/ to {FOLDER}/")):
            paths = self.paths[key]
            if paths:
                n = len(paths)
                terminalreporter.write_line(f"cgviz: {what.format(n=n, s='s' * (n != 1))}: "
                                            + ", ".join(paths[:10]) + (" …" if n > 10 else ""))
        old = self.paths[_LEGACY]
        if old:
            n = len(old)
            terminalreporter.write_line(
                f"cgviz: {n} graph golden{'s' * (n != 1)} still in {LEGACY_FOLDER}/, the folder syrupy owns (its "
                f"--snapshot-update deletes them): run pytest {UPDATE} once to move them to {FOLDER}/ "
                f"({', '.join(old[:3])}{' …' if n > 3 else ''})")
