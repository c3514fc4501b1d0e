"""The README's examples are part of the product: run every `$ ` command and compare its output."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
# The reference pages under docs/ are part of the product too: their examples run like the README's.
DOCS = sorted((ROOT / "docs").glob("*.md"))


def console_examples(text: str = README):
    """(command, expected output) for every `$ ` line in ```console blocks of `text`."""
    out = []
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        current = None
        for line in block.splitlines():
            if line.startswith("$ "):
                if current:
                    out.append(current)
                current = [line[2:], []]
            elif current is not None:
                current[1].append(line)
        if current:
            out.append(current)
    return [(cmd, "\n".join(lines).rstrip()) for cmd, lines in out]


EXAMPLES = console_examples()
# a page's examples build on each other (one saves labels.pt, the next reads it): one test a page,
# its commands in order, in a folder of its own, so that xdist never splits a page across workers
DOC_PAGES = {f"docs/{p.name}": console_examples(p.read_text(encoding="utf-8")) for p in DOCS}
DOC_PAGES = {page: examples for page, examples in DOC_PAGES.items() if examples}
# the reference pages that the README's tests read: the op table, the JSON format
DSL = (ROOT / "docs" / "dsl.md").read_text(encoding="utf-8")
JSON_DOC = (ROOT / "docs" / "json-format.md").read_text(encoding="utf-8")
README_MAX_BYTES = 16 * 1024     # the front door stays short: reference goes to docs/ (issue 27)


def test_the_readme_has_examples():
    assert len(EXAMPLES) >= 6
    assert any(cmd.startswith("cgviz render sample_graphs/pizza.cg") for cmd, _ in EXAMPLES)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return _examples_folder(tmp_path_factory.mktemp("readme"))


def _examples_folder(d: Path) -> Path:
    """A folder laid out as the examples expect: the samples, the snapshot goldens and their manifest."""
    shutil.copytree(ROOT / "sample_graphs", d / "sample_graphs")
    shutil.copytree(ROOT / "tests" / "snapshots", d / "tests" / "snapshots")   # the snapshot examples
    shutil.copy(ROOT / "cgviz.toml", d / "cgviz.toml")                          # and their manifest
    return d


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz: `make test` installs it")
@pytest.mark.parametrize("cmd, expected", EXAMPLES, ids=[c[:50] for c, _ in EXAMPLES])
def test_readme_command(cmd, expected, workdir):
    _runs_as_shown(cmd, expected, workdir)


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz: `make test` installs it")
@pytest.mark.parametrize("page", sorted(DOC_PAGES))
def test_docs_commands(page, tmp_path):
    workdir = _examples_folder(tmp_path)
    for cmd, expected in DOC_PAGES[page]:
        _runs_as_shown(cmd, expected, workdir)


def _runs_as_shown(cmd: str, expected: str, workdir: Path) -> None:
    """Run one `$ ` line in bash from the examples' folder; it must succeed and print what is shown."""
    env = dict(os.environ, PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    p = subprocess.run(["bash", "-o", "pipefail", "-c", cmd], cwd=workdir, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=120)
    assert p.returncode == 0, f"$ {cmd}\n{p.stdout}"
    assert p.stdout.rstrip() == expected, f"$ {cmd}"


def test_the_function_table_is_the_op_table(cli):
    table = re.search(r"<!-- ops:start -->\n(.*?)<!-- ops:end -->", DSL, re.S).group(1)
    assert table.strip() == cli("ops", "--format", "md").stdout.strip()


def test_every_json_field_is_documented(cli):
    doc = json.loads(cli("render", str(ROOT / "sample_graphs/pizza.cg"), "--format", "json", "-o", "-").stdout)
    documented = set(re.findall(r"^\| `([a-z_\[\]\.]+)`", JSON_DOC, re.M))
    documented |= {p.strip(" `") for row in re.findall(r"^\| (`[a-z_]+`, `[a-z_]+`) \|", JSON_DOC, re.M)
                   for p in row.split(",")}
    for key in list(doc) + list(doc["nodes"][0]) + [f"edges[].{k}" for k in doc["edges"][0] if k not in ("src", "dst", "grad_stats")]:
        if key in ("format", "version", "nodes", "edges"):
            continue
        assert key in documented, f"JSON field {key!r} is not in docs/json-format.md's table"


def test_every_model_json_field_is_documented(cli):
    doc = json.loads(cli("torch", str(ROOT / "sample_graphs/models/rnn_loop.py"), "--format", "json", "-o", "-").stdout)
    documented = set(re.findall(r"^\| `([a-z_\[\]\.]+)`", JSON_DOC, re.M))
    documented |= {p.strip(" `") for row in re.findall(r"^\| (`[a-z_]+`, `[a-z_]+`) \|", JSON_DOC, re.M)
                   for p in row.split(",")}
    keys = set(doc) | {k for n in doc["nodes"] for k in n} | {f"edges[].{k}" for e in doc["edges"] for k in e}
    keys |= set(doc["model"])
    for key in sorted(keys):
        if key in ("format", "version", "nodes", "edges", "edges[].src", "edges[].dst", "edges[].grad_stats"):
            continue
        assert key in documented or f"`{key}`" in JSON_DOC, f"JSON field {key!r} is not in docs/json-format.md"


def python_examples(text: str = README):
    """(code, expected stdout) for every ```python block followed by a ```text block of its output."""
    return re.findall(r"```python\n(.*?)```\s*```text\n(.*?)```", text, re.S)


PY_EXAMPLES = python_examples()
# as with the commands: one test a page, its examples in order, in a folder of its own
DOC_PY = {f"docs/{p.name}": python_examples(p.read_text(encoding="utf-8")) for p in DOCS}
DOC_PY = {page: examples for page, examples in DOC_PY.items() if examples}


def test_the_readme_has_python_examples():
    assert len(PY_EXAMPLES) >= 2 and any("make_dot" in code for code, _ in PY_EXAMPLES)


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz: `make test` installs it")
@pytest.mark.parametrize("code, expected", PY_EXAMPLES, ids=[f"python{i}" for i in range(len(PY_EXAMPLES))])
def test_readme_python(code, expected, workdir):
    p = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    assert p.stdout.rstrip() == expected.rstrip()


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz: `make test` installs it")
@pytest.mark.parametrize("page", sorted(DOC_PY))
def test_docs_python(page, tmp_path):
    workdir = _examples_folder(tmp_path)
    for code, expected in DOC_PY[page]:
        p = subprocess.run([sys.executable, "-c", code], cwd=workdir, capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, f"{page}:\n{code}\n{p.stderr}"
        assert p.stdout.rstrip() == expected.rstrip(), f"{page}:\n{code}"


def test_the_moved_reference_is_run():
    """The reference pages that used to be the README's keep their examples under test."""
    assert {"docs/commands.md", "docs/torch.md", "docs/snapshots.md", "docs/errors.md"} <= set(DOC_PAGES)
    assert "docs/python.md" in DOC_PY and len(DOC_PY["docs/python.md"]) >= 4


def test_the_readme_is_a_front_door():
    """Short enough for a newcomer to read (issue 27: it had grown to 92 KB)."""
    size = len(README.encode("utf-8"))
    assert size <= README_MAX_BYTES, f"README.md is {size} bytes; move reference into docs/ (limit {README_MAX_BYTES})"


def test_every_docs_page_is_linked_from_the_readme():
    linked = set(re.findall(r"\]\((docs/[^)#\s]+\.md)(?:#[^)]*)?\)", README))
    pages = {f"docs/{p.name}" for p in DOCS}
    assert pages - linked == set(), f"docs pages the README's table does not link: {sorted(pages - linked)}"


@pytest.mark.parametrize("page", ["README.md", "CONTRIBUTING.md"] + [f"docs/{p.name}" for p in DOCS])
def test_relative_links_point_at_files(page):
    """A moved section's links were rewritten for its new folder: each must reach a file (and an
    anchor into a Markdown page, a heading there)."""
    path = ROOT / page
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue                                        # https:, mailto:
        file, _, anchor = target.partition("#")
        dest = (path.parent / file).resolve() if file else path
        assert dest.exists(), f"{page}: link to {target} reaches no file"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest.read_text(encoding="utf-8")), f"{page}: no heading for #{anchor} in {file or page}"


def _anchors(markdown: str) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for heading in re.findall(r"^#{1,6} (.+)$", re.sub(r"```.*?```", "", markdown, flags=re.S), re.M):
        out.add(re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-"))
    return out
