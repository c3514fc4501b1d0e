"""One route (issue 27): `cgviz torch` is one draw() call plus writing and printing, so what it did apart
from draw() (the PNG's level, the page's histograms, --profile, timings, Model Explorer's side files
and label) is draw()'s now, and the command writes exactly the library's bytes."""

from __future__ import annotations

import re

import pytest

import torch

import cgviz  # noqa: E402
from cgviz.core.errors import CgvizError, OptionError  # noqa: E402
from cgviz.core.spelling import command_line  # noqa: E402
from cgviz.view.modelexplorer import sibling  # noqa: E402
from conftest import ROOT  # noqa: E402

MODEL = str(ROOT / "sample_graphs" / "models" / "res_cnn.py")


@pytest.mark.parametrize("fmt, name", [("dot", "m.dot"), ("json", "m.json"), ("png", "m.png"),
                                       ("modelexplorer", "m.me.json"), ("html", "m.html")])
def test_the_command_writes_the_bytes_draw_gives(cli, tmp_path, fmt, name):
    out = tmp_path / name
    r = cli("torch", MODEL, "-o", out)
    assert r.exit_code == 0, r.stderr
    with command_line():        # the picture's notes name options as the command line spells them
        d = cgviz.draw(MODEL, format=fmt)
        assert out.read_bytes() == d.output(fmt)
    nodes = int(re.search(r"wrote .* \((\d+) nodes", r.stderr).group(1))
    assert nodes == d.nodes(fmt)
    beside = d.beside(fmt)
    assert bool(beside) == (fmt == "modelexplorer")
    for side, data in beside.items():
        assert sibling(out, side).read_bytes() == data
    if fmt == "modelexplorer":           # the label Model Explorer shows is the file's name, as the CLI's
        assert b'"label": "res_cnn.py"' in d.output(fmt) or b'"label":"res_cnn.py"' in d.output(fmt)


def test_the_page_drawn_for_html_has_the_histograms_a_plain_draw_leaves_out():
    """Histograms cost a pass over every tensor, so only a drawing made for the page records them."""
    assert cgviz.draw(MODEL, format="html").html() != cgviz.draw(MODEL).html()


def test_profile_and_timings_come_from_draw():
    d = cgviz.draw(MODEL, profile=True, profile_runs=2, profile_top=3)
    table = d.profile
    assert table.startswith("profile (cpu, 2 measured runs averaged after a warm-up):")
    rows = [line for line in table.splitlines()[2:] if not line.startswith("not attributed")]
    assert len(rows) == 3, table
    assert all(n["profile"] is not None for n in d.to_dict()["nodes"] if n["kind"] == "op")
    assert list(d.timings)[:5] == ["import", "load", "run", "profile", "picture"]
    d.svg()
    assert "layout" in d.timings and all(v >= 0 for v in d.timings.values())
    assert cgviz.draw(MODEL).profile is None


def test_profile_options_and_format_are_checked_by_draw():
    with pytest.raises(OptionError, match=r"profile_runs= and profile_top= go with profile=True"):
        cgviz.draw(MODEL, profile_top=3)
    with pytest.raises(CgvizError, match="unknown format 'jpeg'"):
        cgviz.draw(MODEL, format="jpeg")
    with pytest.raises(OptionError, match="profile=True appl"):
        cgviz.draw(str(ROOT / "sample_graphs" / "pizza.cg"), profile=True)


def test_a_png_drawn_for_png_counts_its_own_level_and_the_other_formats_keep_theirs():
    """draw(format="png") chooses the PNG's level up front (as `cgviz torch -o x.png` did); a plain
    draw() keeps the finest level and a PNG asked of it still gets the PNG's level."""
    plain = cgviz.draw(MODEL)
    for_png = cgviz.draw(MODEL, format="png")
    assert for_png.output("png") == plain.output("png")
    assert plain.nodes("png") == for_png.nodes("png")
    assert plain.output("svg") and plain.nodes("svg") >= plain.nodes("png")
