"""`cgviz snapshot`: the project's goldens hold, a changed sample fails with what changed and a diff
image, goldens made under one rasteriser pass under another, and old DOT/PNG goldens still work
until --update moves them."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from cgviz.snapshot.runner import DEFAULT_THRESHOLD, Entry, Rendering, Settings, check, compare_png
from conftest import ROOT

SNAPSHOTS = ROOT / "tests" / "snapshots"
MANIFEST = ROOT / "cgviz.toml"
NAMES = ["pizza", "challenge", "three_layer", "softmax_classifier", "vanishing", "chain_0_1", "exploding",
         "residual", "pizza_w0.1", "rnn_loop", "res_cnn_depth1"]


def _table(stdout: str) -> dict[str, str]:
    rows = {}
    for line in stdout.split("\n\n")[0].splitlines()[1:]:      # the table, not the reports below it
        parts = line.split()
        if len(parts) >= 2:
            rows[parts[0]] = " ".join(parts[1:3]) if parts[1] == "missing" else parts[1]
    return rows


def test_every_sample_matches_its_golden(cli, tmp_path):
    r = cli("snapshot", MANIFEST, "--golden", SNAPSHOTS, "--out", tmp_path / "out")
    assert r.exit_code == 0, r.stdout + r.stderr
    assert _table(r.stdout) == {n: "same" for n in NAMES}
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


@pytest.fixture
def project(tmp_path):
    """A copy of the samples and goldens, laid out as in the repository, to change freely."""
    shutil.copytree(ROOT / "sample_graphs", tmp_path / "sample_graphs")
    shutil.copytree(SNAPSHOTS, tmp_path / "tests" / "snapshots")
    shutil.copy(MANIFEST, tmp_path / "cgviz.toml")
    return tmp_path


def test_changing_one_sample_fails_with_a_diff_image(cli, project):
    pizza = project / "sample_graphs" / "pizza.cg"
    pizza.write_text(pizza.read_text().replace("param w = 0.5", "param w = 0.6"))
    snaps = project / "tests" / "snapshots"
    r = cli("snapshot", project / "cgviz.toml", "--golden", snaps, "--out", project / "out")
    assert r.exit_code == 1
    table = _table(r.stdout)
    assert table["pizza"] == "changed"
    assert {n: s for n, s in table.items() if n != "pizza"} == {n: "same" for n in NAMES if n != "pizza"}
    assert "1 of 11 entries differ" in r.stderr and "--update" in r.stderr
    # what changed, node by node, with the pizza's figures
    report = r.stdout.split("\n\npizza:\n")[1].splitlines()
    assert report[:3] == ["  w: 0.5 → 0.6", "  ∂L/∂x: 10 → 36", "  ∂L/∂w: 4000 → 12000"]
    assert report[-1] == "  loss: 100 → 900"
    assert "0 nodes added, 0 removed; 10 numbers beyond tolerance" in r.stdout.splitlines()[1]
    diff = Image.open(project / "out" / "pizza.diff.png").convert("RGB")
    new = Image.open(project / "out" / "pizza.png")
    old = Image.open(snaps / "pizza.png")
    assert diff.size[0] == 3 * max(old.size[0], new.size[0]) + 24          # golden | new | highlighted
    px = np.asarray(diff)                  # (Image.getdata is deprecated in Pillow 13)
    red = int(((px[..., 0] > 200) & (px[..., 1] < 40) & (px[..., 2] < 40)).sum())
    assert red > 100
    assert '"value": 0.6' in (project / "out" / "pizza.json").read_text()
    assert '"value": 0.5' in (snaps / "pizza.json").read_text()
    # --update rewrites only that golden, and then everything matches
    before = {n: (snaps / f"{n}.png").read_bytes() for n in NAMES}
    u = cli("snapshot", project / "cgviz.toml", "--golden", snaps, "--out", project / "out", "--update")
    assert u.exit_code == 0 and "wrote goldens for: pizza\n" in u.stderr
    assert all((snaps / f"{n}.png").read_bytes() == before[n] for n in NAMES if n != "pizza")
    again = cli("snapshot", project / "cgviz.toml", "--golden", snaps, "--out", project / "out")
    assert again.exit_code == 0


def test_missing_and_orphaned_goldens(cli, project):
    snaps = project / "tests" / "snapshots"
    (snaps / "challenge.json").unlink()
    shutil.copy(snaps / "pizza.png", snaps / "retired.png")
    r = cli("snapshot", project / "cgviz.toml", "--golden", snaps, "--out", project / "out")
    assert r.exit_code == 1 and _table(r.stdout)["challenge"] == "missing golden"
    assert "retired" in r.stderr and "no entry claims" in r.stderr
    assert (project / "out" / "challenge.png").exists()         # the new picture, to look at
    u = cli("snapshot", project / "cgviz.toml", "--golden", snaps, "--out", project / "out", "--update")
    assert u.exit_code == 0 and _table(u.stdout)["challenge"] == "new"


def test_parallel_rendering_gives_the_same_verdicts(cli, tmp_path):
    r = cli("snapshot", MANIFEST, "--golden", SNAPSHOTS, "--out", tmp_path, "-j", "2")
    assert r.exit_code == 0 and _table(r.stdout) == {n: "same" for n in NAMES}


def test_a_broken_entry_is_an_error_row_and_the_rest_are_checked(cli, project):
    (project / "sample_graphs" / "residual.cg").write_text("x = = 1\n")
    snaps = project / "tests" / "snapshots"
    r = cli("snapshot", project / "cgviz.toml", "--golden", snaps, "--out", project / "out")
    assert r.exit_code == 1
    table = _table(r.stdout)
    assert table["residual"] == "error" and table["pizza"] == "same"
    assert "residual.cg:1:5" in r.stdout


def _png(size=(60, 40), box=None, noise=0):
    im = Image.new("RGB", size, "white")
    if box:
        im.paste((0, 0, 0), box)
    if noise:
        px = im.load()
        for x in range(0, size[0], 3):
            px[x, 5] = (255 - noise, 255 - noise, 255 - noise)
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def test_compare_png_tolerates_faint_noise_but_not_a_change():
    base = _png(box=(10, 10, 20, 20))
    assert compare_png(base, base).pixels == 0
    faint = compare_png(base, _png(box=(10, 10, 20, 20), noise=DEFAULT_THRESHOLD - 8))
    assert faint.pixels == 0 and faint.diff_png is None
    moved = compare_png(base, _png(box=(12, 10, 22, 20)))
    assert moved.pixels == 40 and moved.share == pytest.approx(40 / 2400)
    grown = compare_png(base, _png(size=(70, 40), box=(10, 10, 20, 20)))
    assert grown.size_changed and grown.diff_png is not None


def test_the_share_tolerance_decides_the_png_verdict(tmp_path):
    from cgviz.view.golden import dumps
    golden, out = tmp_path / "g", tmp_path / "o"
    golden.mkdir()
    doc = {"format": "cgviz-snapshot", "version": 1, "nodes": [], "edges": []}
    (golden / "e.json").write_text(dumps(doc))
    (golden / "e.png").write_bytes(_png(box=(10, 10, 20, 20)))
    e = Entry("e", "e.cg", "cg")
    changed = Rendering(doc, "digraph {}\n", _png(box=(10, 10, 20, 21)))          # 10 pixels of 2,400 differ
    pixels = lambda tolerance: Settings(pixels=True, tolerance=tolerance)  # noqa: E731
    assert check(e, changed, golden, out, False, pixels(0.01)).status == "same"
    assert check(e, changed, golden, out, False, pixels(0.001)).status == "changed"
    # without --pixels the PNG is not compared; it still gives the changed entry's diff sheet
    assert check(e, changed, golden, out, False).status == "same"
    # an entry's own `compare` decides for it
    e_png = Entry("e", "e.cg", "cg", {"compare": ("graph", "png")})
    assert check(e_png, changed, golden, out, False, Settings(tolerance=0.001)).status == "changed"
    # the graph is compared whatever the pixels say
    (out / "e.diff.png").unlink()
    other = Rendering(dict(doc, nodes=[{"id": "a", "kind": "op", "op": "relu"}]), "", _png(box=(10, 10, 20, 20)))
    o = check(e, other, golden, out, False, pixels(0.5))
    assert o.status == "changed" and o.report == ["added node a (relu)"]
    assert not (out / "e.diff.png").exists()                   # the pixels agree: no sheet to show


@pytest.mark.parametrize("args", [
    ["sample_graphs/pizza.cg", "--format", "dot"],
    ["sample_graphs/pizza.cg", "--format", "svg"],
    ["sample_graphs/pizza.cg", "--format", "png"],
])
def test_same_input_same_bytes(args, tmp_path):
    outs = []
    for seed in ("1", "2"):
        out = tmp_path / f"o{seed}"
        subprocess.run([sys.executable, "-m", "cgviz", "render", str(ROOT / args[0]), *args[1:], "-o", str(out), "-q"],
                       check=True, env=dict(os.environ, PYTHONHASHSEED=seed))
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_tiny_float_differences_do_not_change_the_pictures_numbers(cli):
    """Values 1e-16 apart (another platform's rounding) print the same; only the tooltip, which
    quotes the source text as written, may differ."""
    import re

    from cgviz.core.fmt import num
    assert num(0.1 + 0.2) == num(0.3) == "0.3"
    strip = lambda dot: re.sub(r' tooltip="[^"]*"', "", dot)  # noqa: E731
    a = cli("render", ROOT / "sample_graphs/pizza.cg", "--format", "dot", "-o", "-").stdout
    b = cli("render", ROOT / "sample_graphs/pizza.cg", "--set", "w=0.5000000000000001", "--format", "dot",
            "-o", "-").stdout
    assert a != b and strip(a) == strip(b)


@pytest.mark.parametrize("args, words", [
    ([], "give a manifest"),
    (["x.toml", "y.cg"], "not both"),
    ([SNAPSHOTS / "pizza.dot"], None),
])
def test_usage_mistakes_exit_2(cli, tmp_path, args, words):
    r = cli("snapshot", *args, "--golden", tmp_path)
    if words is None:                         # a .dot is not a program: an error row, exit 1
        assert r.exit_code == 1
        return
    assert r.exit_code == 2 and words in r.stderr


@pytest.mark.parametrize("text, words", [
    ("[[entry]]\nfile = 'a.cg'\ncolour = 'red'\n", "unknown key 'colour'"),
    ("[[entry]]\nfile = 'a.cg'\nmodel = 'b.py'\n", "exactly one of"),
    ("[[entry]]\nfile = 'a.cg'\n[[entry]]\nfile = 'x/a.cg'\n", "named 'a'"),
    ("[[entry]]\nmodel = 'm.py'\ndepth = 'two'\n", "depth must be a whole number"),
    ("title = 'no entries'\n", "no [[entry]] tables"),
    ("[[entry\n", "not valid TOML"),
])
def test_bad_manifests_exit_2_and_say_why(cli, tmp_path, text, words):
    m = tmp_path / "cgviz.toml"
    m.write_text(text)
    r = cli("snapshot", m, "--golden", tmp_path / "g")
    assert r.exit_code == 2 and words in r.stderr


def test_out_must_not_be_the_golden_folder(cli, tmp_path):
    r = cli("snapshot", MANIFEST, "--golden", tmp_path, "--out", tmp_path)
    assert r.exit_code == 2 and "overwrite the goldens" in r.stderr


def _gd_png(dot_text, fmt, timeout=None, nodes=None, **kw):
    """The PNG of Graphviz's core gd renderer instead of cairo: other anti-aliasing, other font
    rendering, as another machine's Graphviz draws the same DOT."""
    assert fmt == "png"
    return subprocess.run(["dot", "-Tpng:gd"], input=dot_text.encode(), capture_output=True, check=True).stdout


@pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz: `make test` installs it")
def test_goldens_from_one_rasteriser_pass_under_another(cli, project, monkeypatch):
    import cgviz.view.graphviz
    snaps = project / "tests" / "snapshots"
    monkeypatch.setattr(cgviz.view.graphviz, "run_dot", _gd_png)
    r = cli("snapshot", project / "cgviz.toml", "--golden", snaps, "--out", project / "out")
    assert r.exit_code == 0 and _table(r.stdout) == {n: "same" for n in NAMES}
    # the pixels do differ: compared, every .cg picture fails (the graph part still says nothing)
    p = cli("snapshot", project / "cgviz.toml", "--golden", snaps, "--out", project / "out", "--pixels")
    assert p.exit_code == 1 and _table(p.stdout)["pizza"] == "changed"
    pizza_row = next(line for line in p.stdout.splitlines() if line.startswith("pizza "))
    assert "px differ" in pizza_row and "nodes added" not in pizza_row
    assert (project / "out" / "pizza.diff.png").exists()


def test_the_tolerance_from_the_command_line_or_the_entry(cli, project):
    pizza = project / "sample_graphs" / "pizza.cg"
    pizza.write_text(pizza.read_text().replace("param w = 0.5", "param w = 0.5001"))   # the loss moves 0.4%
    snaps, manifest = project / "tests" / "snapshots", project / "cgviz.toml"
    r = cli("snapshot", manifest, "--golden", snaps, "--out", project / "out")
    assert r.exit_code == 1 and "w: 0.5 → 0.5001" in r.stdout and "loss: 100 → 100.4" in r.stdout
    assert cli("snapshot", manifest, "--golden", snaps, "--out", project / "out", "--rtol", "0.01").exit_code == 0
    manifest.write_text(manifest.read_text().replace('file = "sample_graphs/pizza.cg"\n',
                                                     'file = "sample_graphs/pizza.cg"\nrtol = 0.01\n', 1))
    assert cli("snapshot", manifest, "--golden", snaps, "--out", project / "out").exit_code == 0


def test_old_dot_and_png_goldens_still_work_until_update_moves_them(cli, tmp_path):
    import cgviz
    from cgviz.view.graphviz import run_dot
    g = tmp_path / "g"
    g.mkdir()
    pizza = ROOT / "sample_graphs" / "pizza.cg"
    d = cgviz.draw(pizza)
    (g / "pizza.dot").write_text(d.dot)                 # as an earlier cgviz wrote them
    (g / "pizza.png").write_bytes(run_dot(d.dot, "png"))
    r = cli("snapshot", pizza, "--golden", g, "--out", tmp_path / "o")
    assert r.exit_code == 0 and "old DOT/PNG golden (no pizza.json)" in r.stdout
    assert "run with --update once to move them to graph goldens" in r.stderr
    (g / "pizza.dot").write_text(d.dot.replace("0.5", "0.6"))
    r = cli("snapshot", pizza, "--golden", g, "--out", tmp_path / "o")
    assert r.exit_code == 1 and "DOT differs" in r.stdout             # checked as before
    u = cli("snapshot", pizza, "--golden", g, "--out", tmp_path / "o", "--update")
    assert u.exit_code == 0 and "moved to the graph golden pizza.json" in u.stdout
    assert sorted(p.name for p in g.iterdir()) == ["pizza.json", "pizza.png"]
    again = cli("snapshot", pizza, "--golden", g, "--out", tmp_path / "o")
    assert again.exit_code == 0 and _table(again.stdout) == {"pizza": "same"} and "old" not in again.stderr
