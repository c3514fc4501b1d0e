"""The one registry of output formats (cgviz.view.formats): every format a command accepts is made by
every dispatcher that claims it, and a new format is one entry."""

from __future__ import annotations

import pytest

from conftest import ROOT
from cgviz.view import formats
from cgviz.view.formats import DIFF, EXPRESSION, GRAPHVIZ, MODEL, REGISTRY, RUN, Format

PIZZA = ROOT / "sample_graphs" / "pizza.cg"
MODEL_FILE = ("import torch\n"
              "torch.manual_seed(0)\n"
              "model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.ReLU())\n"
              "example_inputs = (torch.randn(4, 3),)\n")
# the first bytes of each format's file, so that "produced" means the right thing was written
MAGIC = {"png": b"\x89PNG", "svg": b"<?xml", "pdf": b"%PDF", "dot": b"digraph", "json": b"{", "html": b"<!",
         "modelexplorer": b"{", "jpg": b"\xff\xd8"}


def _model_file(tmp_path):
    path = tmp_path / "tiny.py"
    path.write_text(MODEL_FILE)
    return path


def test_suffixes_are_read_from_the_registry():
    assert formats.from_path("a/b.me.json") == "modelexplorer"      # the longest suffix wins
    assert formats.from_path("b.JSON") == "json"
    assert formats.from_path("g.gv") == "dot" and formats.from_path("p.htm") == "html"
    assert formats.from_path("notes.txt") is None and formats.from_path("-") is None
    assert formats.from_path(None) is None and formats.from_path("noext") is None
    assert [formats.suffix(n) for n in ("png", "modelexplorer")] == [".png", ".me.json"]


def test_every_format_is_produced_by_some_source_and_each_name_is_unique():
    claimed = {n for n, f in REGISTRY.items() if f.sources}
    assert claimed == set(REGISTRY)
    every = [s for f in REGISTRY.values() for s in f.suffixes]
    assert len(every) == len(set(every)), "one suffix names one format"


def test_an_unknown_format_is_one_message_naming_what_the_source_writes():
    from cgviz.core.errors import CgvizError
    with pytest.raises(CgvizError, match=r"unknown format 'gif'; cgviz diff writes png, svg, pdf, dot, json or html"):
        formats.lookup("gif", DIFF)
    with pytest.raises(CgvizError, match="recorded run is drawn as html, png, svg or pdf"):
        formats.lookup("json", RUN)


@pytest.mark.parametrize("fmt", formats.names(EXPRESSION))
def test_render_accepts_and_writes_every_expression_format(cli, here, fmt):
    r = cli("render", PIZZA, "-f", fmt, "-o", f"out{formats.suffix(fmt)}")
    assert r.exit_code == 0, r.stderr
    assert (here / f"out{formats.suffix(fmt)}").read_bytes().startswith(MAGIC[fmt])


@pytest.mark.parametrize("fmt", formats.names(MODEL))
def test_torch_accepts_and_writes_every_model_format(cli, here, fmt):
    r = cli("torch", _model_file(here), "-f", fmt)
    assert r.exit_code == 0, r.stderr
    assert (here / f"tiny{formats.suffix(fmt)}").read_bytes().startswith(MAGIC[fmt])


@pytest.mark.parametrize("fmt", formats.names(DIFF))
def test_a_comparison_writes_every_diff_format(cli, here, fmt):
    r = cli("diff", PIZZA, PIZZA, "-o", f"d{formats.suffix(fmt)}")
    assert r.exit_code in (0, 1), r.stderr
    assert (here / f"d{formats.suffix(fmt)}").read_bytes().startswith(MAGIC[fmt])


@pytest.mark.parametrize("fmt", formats.names(RUN))
def test_a_recorded_run_is_drawn_in_every_run_format(here, fmt):
    from watch_records import synthetic

    from cgviz.view.watch_page import render_run
    synthetic(here / "run.cgw", {"w": (3, 2)}, [], 3)
    data, _ = render_run(str(here / "run.cgw"), fmt)
    assert data.startswith(MAGIC[fmt]) or (fmt == "svg" and b"<svg" in data[:400])


@pytest.fixture
def jpg(monkeypatch):
    """A new format added in the one place a format is added: Graphviz draws JPEG as it draws PNG."""
    entry = Format("jpg", ("jpg", "jpeg"), True, GRAPHVIZ, frozenset({EXPRESSION, MODEL, DIFF}))
    monkeypatch.setitem(REGISTRY, "jpg", entry)
    return entry


def test_a_format_added_to_the_registry_is_accepted_and_written_by_every_front_end(cli, here, jpg):
    import cgviz
    assert cli("render", PIZZA, "-f", "jpg").exit_code == 0
    assert (here / "pizza.jpg").read_bytes().startswith(MAGIC["jpg"])
    assert cli("render", PIZZA, "-o", "by_suffix.jpeg").exit_code == 0       # suffix inference
    assert (here / "by_suffix.jpeg").read_bytes().startswith(MAGIC["jpg"])
    r = cli("torch", _model_file(here), "-o", "m.jpg")
    assert r.exit_code == 0, r.stderr
    assert (here / "m.jpg").read_bytes().startswith(MAGIC["jpg"])
    assert cli("diff", PIZZA, PIZZA, "-o", "d.jpg").exit_code in (0, 1)
    assert (here / "d.jpg").read_bytes().startswith(MAGIC["jpg"])
    d = cgviz.draw(PIZZA)
    assert d.save(here / "api.jpeg").read_bytes().startswith(MAGIC["jpg"])
    assert d.output("jpg").startswith(MAGIC["jpg"])
    assert "jpg" in cli("render", "--help").stdout


def test_a_format_no_source_claims_is_refused_by_the_command_line(cli, here):
    r = cli("render", PIZZA, "-f", "jpg")
    assert r.exit_code == 2 and "jpg" in r.stderr
