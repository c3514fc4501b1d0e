"""cgviz's pytest plugin beside the other snapshot plugins on PyPI that use --snapshot-update: syrupy,
pytest-snapshot and snapshottest, each installed with cgviz into an environment of its own (syrupy
and pytest-snapshot both register --snapshot-update, so no environment can hold the two: pytest
stops with exit 3 before any test, with or without cgviz). In each, a small project's tests (cgviz's
graph_snapshot, the neighbour's snapshot fixture) pass with and without --snapshot-update, and no
golden of either tool is lost.

The neighbours' wheels are fetched by `make install` into <venv>/neighbours (offline here);
CGVIZ_NEIGHBOUR_WHEELS names another folder. Each environment is a `pip install --target` folder
put first on PYTHONPATH: pytest finds a plugin by its installed metadata there as in site-packages.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

WHEELS = Path(os.environ.get("CGVIZ_NEIGHBOUR_WHEELS") or Path(sys.prefix) / "neighbours")
# each plugin with what it imports (the rest, pytest, is the environment's own)
NEIGHBOURS = {
    "syrupy": ["syrupy"],
    "pytest-snapshot": ["pytest-snapshot"],
    "snapshottest": ["snapshottest", "six", "termcolor", "fastdiff", "wasmer", "wasmer-compiler-cranelift"],
}

CGVIZ_TEST = '''
import cgviz

PIZZA = "input x = 200\\nparam w = 0.5\\nconst y = 90\\nloss L = (relu(w * x) - y)^2\\n"


def test_cgviz(graph_snapshot):
    graph_snapshot(PIZZA, kind="text")


def test_cgviz_named(graph_snapshot):
    graph_snapshot(PIZZA, kind="text", name="w")
'''

THEIR_TEST = {
    "syrupy": '''
def test_theirs(snapshot):
    assert {"a": [1, 2], "b": "text"} == snapshot
''',
    "pytest-snapshot": '''
def test_theirs(snapshot):
    snapshot.snapshot_dir = "snapshots"
    snapshot.assert_match("some text\\n", "theirs.txt")
''',
    "snapshottest": '''
def test_theirs(snapshot):
    snapshot.assert_match({"a": [1, 2], "b": "text"})
''',
}


def _environment(name: str, tmp_path: Path) -> Path:
    if not WHEELS.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"{WHEELS} is missing on CI: `make install` fetches the neighbours' wheels")
        pytest.skip(f"no neighbours' wheels in {WHEELS} (`make install` fetches them)")
    target = tmp_path / f"env-{name}"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                    "--no-index", "--find-links", str(WHEELS), "--no-deps", "--target", str(target),
                    *NEIGHBOURS[name]], check=True, capture_output=True, timeout=300)
    return target


def _pytest(project: Path, env: Path, *args: str) -> subprocess.CompletedProcess:
    paths = [str(env), str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    environ = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    environ.pop("PYTEST_ADDOPTS", None)
    environ.pop("PYTEST_XDIST_WORKER", None)
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-p", "no:randomly",
                           "-p", "no:xdist", *args], cwd=project, capture_output=True, text=True, timeout=600,
                          env=environ)


def _files(project: Path) -> dict[str, bytes]:
    return {str(p.relative_to(project)): p.read_bytes() for p in sorted(project.rglob("*"))
            if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"}


@pytest.mark.parametrize("name", sorted(NEIGHBOURS))
def test_cgviz_and_another_snapshot_plugin_live_side_by_side(name, tmp_path):
    env = _environment(name, tmp_path)
    project = tmp_path / "project"
    (project / "tests").mkdir(parents=True)
    (project / "pytest.ini").write_text("[pytest]\ntestpaths = tests\n")
    (project / "tests" / "test_graphs.py").write_text(CGVIZ_TEST)
    (project / "tests" / "test_theirs.py").write_text(THEIR_TEST[name])

    first = _pytest(project, env, "--cgviz-update", "--snapshot-update")
    assert first.returncode in (0, 1), first.stdout + first.stderr      # 1: pytest-snapshot fails a write
    assert "conflicting option" not in first.stdout + first.stderr
    written = _files(project)
    ours = {k for k in written if "__graph_snapshots__" in k}
    theirs = {k for k in written if k.endswith((".ambr", ".txt")) or "snap_" in k}
    assert len(ours) == 2 and theirs, sorted(written)

    for args in ((), ("--snapshot-update",), ()):
        r = _pytest(project, env, *args)
        assert r.returncode == 0, (args, r.stdout + r.stderr)
        assert "3 passed" in r.stdout, r.stdout
        assert _files(project) == written, (args, sorted(set(written) ^ set(_files(project))))

    # a changed graph: --snapshot-update is the neighbour's, and the failure says cgviz's flag
    (project / "tests" / "test_graphs.py").write_text(CGVIZ_TEST.replace("0.5", "0.6"))
    r = _pytest(project, env, "--snapshot-update", "-k", "test_cgviz_named")
    assert r.returncode == 1
    assert ("run pytest with --cgviz-update (--snapshot-update is another snapshot plugin's option, "
            "for its own snapshots)") in r.stdout
    assert _files(project) == {**written, "tests/test_graphs.py": (project / "tests" / "test_graphs.py").read_bytes()}
