"""The graph_snapshot fixture (cgviz.pytest_plugin) on a small example project run by pytester: it
fails without goldens, writes them with --cgviz-update, then passes; a changed value fails with the
node-by-node report; it works under pytest-xdist."""

from __future__ import annotations

import pytest

PLUGIN = ("-p", "cgviz.pytest_plugin")      # the entry point does this once cgviz is installed

EXAMPLE = '''
import pytest
import cgviz

PIZZA = """input x = 200
param w = W
const y = 90
z = w * x
a = relu(z)
loss L = (a - y)^2
"""


def test_pizza(graph_snapshot):
    graph_snapshot(cgviz.draw(PIZZA.replace("W", "{w}"), kind="text"))


@pytest.mark.parametrize("x", ["200", "100"])
def test_by_equality(graph_snapshot, x):
    assert cgviz.draw(PIZZA.replace("W", "{w}"), kind="text", sets={{"x": x}}) == graph_snapshot


def test_two_in_one_test(graph_snapshot):
    for name in ("first", "second"):
        graph_snapshot(PIZZA.replace("W", "{w}"), kind="text", name=name)
'''

GOLDENS = ["test_by_equality[100].json", "test_by_equality[200].json", "test_pizza.json",
           "test_two_in_one_test[first].json", "test_two_in_one_test[second].json"]


@pytest.fixture
def project(pytester):
    pytester.makepyfile(test_example=EXAMPLE.format(w="0.5"))
    return pytester


def _goldens(pytester) -> list[str]:
    folder = pytester.path / "__graph_snapshots__" / "test_example"
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def test_fails_then_updates_then_passes(project):
    r = project.runpytest_subprocess(*PLUGIN)
    r.assert_outcomes(failed=4)
    r.stdout.fnmatch_lines(["*no golden __graph_snapshots__/test_example/test_pizza.json for this graph; "
                            "run pytest with --cgviz-update to write it*"])
    assert _goldens(project) == []                          # failing writes nothing
    u = project.runpytest_subprocess(*PLUGIN, "--cgviz-update")
    u.assert_outcomes(passed=4)
    u.stdout.fnmatch_lines(["cgviz: wrote 5 graph goldens: *"])
    assert _goldens(project) == GOLDENS
    before = {n: (project.path / "__graph_snapshots__" / "test_example" / n).read_bytes() for n in GOLDENS}
    project.runpytest_subprocess(*PLUGIN).assert_outcomes(passed=4)
    # a value changed beyond the tolerance: the report names it, with the figures
    project.makepyfile(test_example=EXAMPLE.format(w="0.6"))
    f = project.runpytest_subprocess(*PLUGIN)
    f.assert_outcomes(failed=4)
    f.stdout.fnmatch_lines(["the graph differs from its golden __graph_snapshots__/test_example/test_pizza.json: "
                            "0 nodes added, 0 removed; 10 numbers beyond tolerance (rtol 0.0001, atol 1e-12)",
                            "  w: 0.5 → 0.6", "  ∂L/∂w: 4000 → 12000", "  loss: 100 → 900",
                            "if the change is intended, run pytest with --cgviz-update"])
    # by ==: pytest's own explanation, the summary first (it shortens long ones unless -vv)
    f.stdout.fnmatch_lines(["*assert drawing == graph_snapshot",
                            "*the graph differs from its golden __graph_snapshots__/test_example/test_by_equality[[]100[]].json: "
                            "0 nodes added, 0 removed; * numbers beyond tolerance*"])
    assert {n: (project.path / "__graph_snapshots__" / "test_example" / n).read_bytes() for n in GOLDENS} == before


def test_a_looser_tolerance_from_the_ini(project):
    project.runpytest_subprocess(*PLUGIN, "--cgviz-update").assert_outcomes(passed=4)
    project.makepyfile(test_example=EXAMPLE.format(w="0.5001"))
    project.runpytest_subprocess(*PLUGIN, "-k", "test_pizza").assert_outcomes(failed=1)   # at rtol 1e-4
    project.makeini("[pytest]\ncgviz_rtol = 0.01\n")
    project.runpytest_subprocess(*PLUGIN).assert_outcomes(passed=4)
    project.makeini("[pytest]\ncgviz_rtol = lots\n")
    r = project.runpytest_subprocess(*PLUGIN)
    assert r.ret != 0 and "cgviz_rtol = 'lots'" in r.stderr.str() + r.stdout.str()


def test_under_xdist_each_worker_writes_its_own_goldens(project):
    import xdist  # noqa: F401              — in the test extra: installed wherever `make test` runs
    u = project.runpytest_subprocess("-n", "2", *PLUGIN, "--cgviz-update")
    u.assert_outcomes(passed=4)
    u.stdout.fnmatch_lines(["cgviz: wrote 5 graph goldens: *"])        # the workers' writes, told once
    assert _goldens(project) == GOLDENS
    project.runpytest_subprocess("-n", "2", *PLUGIN).assert_outcomes(passed=4)
    project.makepyfile(test_example=EXAMPLE.format(w="0.6"))
    f = project.runpytest_subprocess("-n", "2", *PLUGIN)
    f.assert_outcomes(failed=4)
    f.stdout.fnmatch_lines(["*w: 0.5 → 0.6*"])


def test_a_corrupt_golden_fails_in_words(project):
    project.runpytest_subprocess(*PLUGIN, "--cgviz-update").assert_outcomes(passed=4)
    (project.path / "__graph_snapshots__" / "test_example" / "test_pizza.json").write_text("{not json")
    r = project.runpytest_subprocess(*PLUGIN, "-k", "test_pizza")
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*test_pizza.json is not valid JSON*", "*run pytest with --cgviz-update*"])
    assert "Traceback" not in r.stdout.str()


def test_the_docs_pytest_example_runs(pytester):
    """docs/snapshots.md's fixture example, as a user's project would hold it (a stand-in for `mypkg`)."""
    import re

    from conftest import ROOT
    page = (ROOT / "docs" / "snapshots.md").read_text(encoding="utf-8")
    code = re.search(r"```python\n(# tests/test_graphs.py\n.*?)```", page, re.S).group(1)
    pytester.makepyfile(mypkg="import torch.nn as nn\n\n\ndef Net():\n"
                              "    return nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 4))\n")
    pytester.makepyfile(test_graphs=code)
    r = pytester.runpytest_subprocess(*PLUGIN)
    r.assert_outcomes(failed=3)
    r.stdout.fnmatch_lines(["*run pytest with --cgviz-update to write it*"])
    pytester.runpytest_subprocess(*PLUGIN, "--cgviz-update").assert_outcomes(passed=3)
    folder = pytester.path / "__graph_snapshots__" / "test_graphs"
    assert sorted(p.name for p in folder.iterdir()) == ["test_net_by_depth[1].json", "test_net_by_depth[2].json",
                                                        "test_net_graph.json"]
    pytester.runpytest_subprocess(*PLUGIN).assert_outcomes(passed=3)


def test_loading_the_plugin_imports_neither_numpy_nor_the_library():
    """Every pytest run in an environment with cgviz loads the plugin: it must stay cheap until used."""
    import subprocess
    import sys

    code = ("import sys, cgviz.pytest_plugin, cgviz\n"
            "print(sorted(m for m in ('numpy', 'torch', 'cgviz.api') if m in sys.modules))\n"
            "cgviz.draw\n"
            "print('cgviz.api' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]"             # nothing heavy until a name is used ...
    assert out[1] == "True"           # ... and then `cgviz.draw` brings the library's front door in


# ---- golden names, odd files, the old folder ----------------------------------------------------------
ODD_IDS = '''
import pytest
import cgviz

PIZZA = "input x = X\\nparam w = 0.5\\nloss L = (w * x)^2\\n"


@pytest.mark.parametrize("x", ["1", "2", "3", "4"], ids=["a/b", "a:b", "a_b", "a%2Fb"])
def test_ids(graph_snapshot, x):
    graph_snapshot(PIZZA.replace("X", x), kind="text")


@pytest.mark.parametrize("x", ["5"], ids=["漢" * 100])
def test_long(graph_snapshot, x):
    graph_snapshot(PIZZA.replace("X", x), kind="text")
'''


def test_golden_names_are_injective_and_capped_in_bytes():
    from cgviz.pytest_plugin import MAX_NAME_BYTES, golden_name
    ids = ["t[a/b]", "t[a:b]", "t[a_b]", "t[a%2Fb]", "t[a b]", "t[a\\b]", "t[a\x00b]", "t[a\udcffb]", "t",
           "t[x]", "t.1", "t[é]", "t[e\u0301]"]
    names = [golden_name(i) for i in ids] + [golden_name("t", "x y"), golden_name("t", call=2)]
    assert len(set(names)) == len(names)
    assert golden_name("test_sample[pizza]") == "test_sample[pizza].json"       # readable as before
    assert golden_name("test_x", "w=2") == "test_x[w=2].json" and golden_name("test_x", call=1) == "test_x.1.json"
    long = [golden_name("t[" + "漢" * n + "]") for n in (45, 66, 67, 100, 1000)] + [golden_name("t[" + "%" * 500 + "]")]
    assert all(len(n.encode("utf-8")) <= MAX_NAME_BYTES for n in long)
    assert len(set(long)) == len(long)
    assert golden_name("t[" + "漢" * 1000 + "]") != golden_name("t[" + "漢" * 999 + "]")


def test_ids_that_differ_only_in_odd_characters_get_their_own_goldens_and_settle(pytester):
    pytester.makepyfile(test_odd=ODD_IDS)
    pytester.runpytest_subprocess(*PLUGIN, "--cgviz-update").assert_outcomes(passed=5)
    folder = pytester.path / "__graph_snapshots__" / "test_odd"
    names = sorted(p.name for p in folder.iterdir())
    assert len(names) == 5 and "test_ids[a%2Fb].json" in names and "test_ids[a%252Fb].json" in names
    assert all(len(n.encode("utf-8")) <= 255 for n in names)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    u = pytester.runpytest_subprocess(*PLUGIN, "--cgviz-update")     # updating settles: nothing to write
    u.assert_outcomes(passed=5)
    assert "cgviz: wrote" not in u.stdout.str()
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    pytester.runpytest_subprocess(*PLUGIN).assert_outcomes(passed=5)


def test_a_fifo_at_a_goldens_path_is_refused_not_waited_on(pytester):
    import os
    pytester.makepyfile(test_odd=ODD_IDS)
    folder = pytester.path / "__graph_snapshots__" / "test_odd"
    folder.mkdir(parents=True)
    os.mkfifo(folder / "test_ids[a_b].json")
    for update in ((), ("--cgviz-update",)):
        r = pytester.runpytest_subprocess(*PLUGIN, "-k", "a_b", *update, timeout=120)
        r.assert_outcomes(failed=1)
        r.stdout.fnmatch_lines(["*the golden __graph_snapshots__/test_odd/test_ids[[]a_b[]].json is a FIFO*, "
                                "not a regular file*remove it*"])


def test_two_checks_may_not_share_a_golden(pytester):
    pytester.makepyfile(test_clash='''
import pytest
import cgviz

PIZZA = "input x = 2\\nparam w = 0.5\\nloss L = (w * x)^2\\n"


def test_name_twice(graph_snapshot):
    graph_snapshot(PIZZA, kind="text", name="same")
    graph_snapshot(PIZZA, kind="text", name="same")


@pytest.mark.parametrize("x", ["1", "2"], ids=["Big", "big"])
def test_case(graph_snapshot, x):
    graph_snapshot(PIZZA.replace("2", x), kind="text")
''')
    r = pytester.runpytest_subprocess(*PLUGIN, "--cgviz-update", "-p", "no:randomly")
    r.assert_outcomes(passed=1, failed=2)
    r.stdout.fnmatch_lines(["*name='same' is used twice in this test*",
                            "*test_case[[]big[]].json would also be that of test_clash.py::test_case[[]Big[]]*"
                            "letter case*"])


OLD_GOLDEN_PROJECT = '''
import cgviz

PIZZA = "input x = 2\\nparam w = 0.5\\nloss L = (w * x)^2\\n"


def test_pizza(graph_snapshot):
    graph_snapshot(PIZZA, kind="text")


def test_named(graph_snapshot):
    graph_snapshot(PIZZA, kind="text", name="a:b")
'''


def test_goldens_in_the_old_folder_are_read_and_moved_by_an_update(pytester):
    """Before this version cgviz kept its goldens in __snapshots__/, syrupy's folder: they still pass,
    with a note, and --cgviz-update moves them, leaving another tool's files where they are."""
    pytester.makepyfile(test_old=OLD_GOLDEN_PROJECT)
    pytester.runpytest_subprocess(*PLUGIN, "--cgviz-update").assert_outcomes(passed=2)
    new = pytester.path / "__graph_snapshots__" / "test_old"
    old = pytester.path / "__snapshots__" / "test_old"
    old.mkdir(parents=True)
    (new / "test_pizza.json").rename(old / "test_pizza.json")
    (new / "test_named[a%3Ab].json").rename(old / "test_named[a_b].json")     # the old naming
    (pytester.path / "__snapshots__" / "test_old.ambr").write_text("# syrupy's\n")
    new.rmdir()
    r = pytester.runpytest_subprocess(*PLUGIN)
    r.assert_outcomes(passed=2)
    r.stdout.fnmatch_lines(["cgviz: 2 graph goldens still in __snapshots__/, the folder syrupy owns*"
                            "run pytest --cgviz-update once to move them to __graph_snapshots__/*"])
    assert not new.exists()                     # a plain run writes nothing
    u = pytester.runpytest_subprocess(*PLUGIN, "--cgviz-update")
    u.assert_outcomes(passed=2)
    u.stdout.fnmatch_lines(["cgviz: moved 2 graph goldens from __snapshots__/ to __graph_snapshots__/*"])
    assert sorted(p.name for p in new.iterdir()) == ["test_named[a%3Ab].json", "test_pizza.json"]
    assert not old.exists() and (pytester.path / "__snapshots__" / "test_old.ambr").exists()
    r = pytester.runpytest_subprocess(*PLUGIN)
    r.assert_outcomes(passed=2)
    assert "still in" not in r.stdout.str()


def test_a_file_of_another_tool_in_the_old_folder_is_never_read_or_removed(pytester):
    pytester.makepyfile(test_old=OLD_GOLDEN_PROJECT)
    old = pytester.path / "__snapshots__" / "test_old"
    old.mkdir(parents=True)
    (old / "test_pizza.json").write_text('{"syrupy": "json extension"}')
    r = pytester.runpytest_subprocess(*PLUGIN, "-k", "test_pizza")
    r.assert_outcomes(failed=1)
    r.stdout.fnmatch_lines(["*no golden __graph_snapshots__/test_old/test_pizza.json*"])
    pytester.runpytest_subprocess(*PLUGIN, "--cgviz-update").assert_outcomes(passed=2)
    assert (old / "test_pizza.json").read_text() == '{"syrupy": "json extension"}'
