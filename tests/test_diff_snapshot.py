"""A failing snapshot shows the graph diff: `cgviz snapshot` writes <entry>.graphdiff.png beside its
report, and the graph_snapshot fixture's failure names the picture and prints the summary."""

from __future__ import annotations

import shutil

import pytest

from conftest import ROOT

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz's dot")


@needs_dot
def test_a_failing_snapshot_entry_writes_the_graph_diff_picture(cli, tmp_path):
    shutil.copy(ROOT / "sample_graphs" / "pizza.cg", tmp_path / "pizza.cg")
    golden = tmp_path / "golden"
    assert cli("snapshot", tmp_path / "pizza.cg", "--golden", golden, "--update").exit_code == 0
    (tmp_path / "pizza.cg").write_text((tmp_path / "pizza.cg").read_text().replace("param w = 0.5", "param w = 0.6"))
    r = cli("snapshot", tmp_path / "pizza.cg", "--golden", golden, "--out", tmp_path / "out")
    assert r.exit_code == 1
    picture = tmp_path / "out" / "pizza.graphdiff.png"
    assert picture.read_bytes().startswith(b"\x89PNG")
    assert f"pizza: diff picture: {picture}" in r.stderr
    assert "first divergence (forward order): z (mul): v 100 → 120, +20.0%" in r.stderr
    assert not list(golden.glob("*.graphdiff.*"))          # never among the goldens
    # fixed again: the next run clears the stale picture
    (tmp_path / "pizza.cg").write_text((tmp_path / "pizza.cg").read_text().replace("param w = 0.6", "param w = 0.5"))
    assert cli("snapshot", tmp_path / "pizza.cg", "--golden", golden, "--out", tmp_path / "out").exit_code == 0
    assert not picture.exists()


EXAMPLE = """
import cgviz

def test_pizza(graph_snapshot):
    graph_snapshot(cgviz.draw("input x = 200\\nparam w = {w}\\nconst y = 90\\nz = w * x\\nloss L = (z - y)^2\\n",
                              kind="text"))
"""


@needs_dot
def test_the_pytest_plugin_names_the_diff_picture_and_prints_the_summary(pytester):
    pytester.makepyfile(test_example=EXAMPLE.format(w="0.5"))
    pytester.runpytest_subprocess("-p", "cgviz.pytest_plugin", "--cgviz-update").assert_outcomes(passed=1)
    pytester.makepyfile(test_example=EXAMPLE.format(w="0.6"))
    r = pytester.runpytest_subprocess("-p", "cgviz.pytest_plugin", "--basetemp", str(pytester.path / "tmp"))
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*the graph differs from its golden*",
                            "  diff picture: *cgviz-graphdiff/test_pizza.graphdiff.png",
                            "  first divergence (forward order): z (mul): v 100 → 120, +20.0%"])
    pictures = list((pytester.path / "tmp").rglob("*.graphdiff.png"))
    assert len(pictures) == 1 and pictures[0].read_bytes().startswith(b"\x89PNG")
