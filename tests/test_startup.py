"""`cgviz render` of an expression file imports only what it uses: start-up is most of its time.

Each module below was once imported by every render for one small thing (or never used by it) and
cost it 1-5 ms; issue 17 asks for the render to stay at least 10x faster than torchviz's, and
bench/bench_render.py measures that. This test only holds the imports, which do not flake."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

NOT_IMPORTED = {
    "torch": "the expression path never needs it (~2 s)",
    "lark": "the parser is Lark's stand-alone module (cgviz.lang.lalr)",
    "logging": "Lark's logger is set up on first use",
    "shutil": "dot is found by the system as it starts (and shutil brings bz2, lzma)",
    "tempfile": "write_atomic makes its own temporary name",
    "html": "html_text does html.escape's five replacements",
    "cgviz.view.budget": "PNG budgets are for PNGs of models; the help states its one number",
    "cgviz.results": "render builds none of the other calls' result types",
    "cgviz.view.profile": "--profile's types are created only when a profile is shown",
}


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_render_imports_only_what_it_uses(tmp_path):
    code = ("import sys\n"
            "from cgviz.cli import main\n"
            "try:\n"
            f"    main([\"render\", {str(ROOT / 'sample_graphs' / 'pizza.cg')!r}, \"-o\", {str(tmp_path / 'p.svg')!r}, "
            "\"-q\"])\n"
            "except SystemExit as e:\n"
            "    assert not e.code, e.code\n"
            f"print(sorted(m for m in {sorted(NOT_IMPORTED)!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)))      # this checkout's cgviz
    assert (tmp_path / "p.svg").read_bytes().startswith(b"<?xml")          # it did draw
    imported = ast.literal_eval(out.stdout.strip())
    assert not imported, {m: NOT_IMPORTED[m] for m in imported}


def test_the_moved_result_types_are_still_reachable_where_they_were():
    import pickle

    import cgviz.api
    from cgviz import results
    for name in ("Explanation", "GradientCheck", "GradientHealth", "NodeView"):
        assert getattr(cgviz.api, name) is getattr(results, name)
    view = results.NodeView("w", "param", None, 0.5, 4000.0)
    old_pickle = pickle.dumps(view, protocol=2).replace(b"cgviz.results\n", b"cgviz.api\n")   # as before the move
    assert b"cgviz.api\n" in old_pickle
    assert pickle.loads(old_pickle) == view
