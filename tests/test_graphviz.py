"""cgviz.view.graphviz: a `dot` started early is the one that draws, or is stopped when unused."""

from __future__ import annotations

import re

import pytest

from cgviz.view import graphviz
from cgviz.view.graphviz import keep_spaces, run_dot, started_early

TEXT = 'digraph { a [label="early"]; a -> b }'


def _early_processes():
    return list(graphviz._early.values())


@pytest.mark.parametrize("fmt, first", [("svg", "-Tsvg"), ("pdf", "-Tpdf"), ("png", "-Tdot"), ("html", "-Tsvg")])
def test_the_first_dot_a_format_needs_is_started_ahead(fmt, first):
    with started_early(fmt):
        (proc,) = _early_processes()
        assert proc.args[1:] == [first] and proc.poll() is None     # waiting for its text
    assert proc.returncode is not None and not graphviz._early          # unused, so stopped at the end


def test_the_early_dot_is_the_one_that_draws():
    with started_early("svg"):
        (proc,) = _early_processes()
        svg = run_dot(TEXT, "svg")
        assert not graphviz._early and proc.returncode == 0             # taken, fed, and finished
    assert b"<svg" in svg and b"early" in svg
    assert svg == run_dot(TEXT, "svg")                                  # the same bytes as a fresh dot


def test_a_png_uses_the_early_layout_process_and_a_fresh_one_to_draw():
    with started_early("png"):
        png = run_dot(TEXT, "png")
        assert not graphviz._early
    assert png.startswith(b"\x89PNG")


@pytest.mark.parametrize("fmt", ["dot", "json"])
def test_text_formats_start_nothing(fmt):
    with started_early(fmt):
        assert not graphviz._early


def test_without_graphviz_nothing_starts_and_nothing_fails(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))
    with started_early("svg"):
        assert not graphviz._early
    with pytest.raises(graphviz.DotMissing):
        run_dot(TEXT, "svg")


def test_an_error_inside_stops_the_early_dot():
    with pytest.raises(RuntimeError), started_early("svg"):
        (proc,) = _early_processes()
        raise RuntimeError("the program had a mistake")
    assert proc.returncode is not None and not graphviz._early


def test_a_temporary_name_in_use_is_skipped_and_nothing_is_left_behind(tmp_path, monkeypatch):
    taken = iter([b"\x00" * 4, b"\x00" * 4, b"\x01" * 4])        # the taken name twice: two clashes
    monkeypatch.setattr(graphviz.os, "urandom", lambda n: next(taken))
    (tmp_path / ".out.svg.00000000.part").write_bytes(b"someone else's")
    graphviz.write_atomic(tmp_path / "out.svg", b"<svg/>")
    assert (tmp_path / "out.svg").read_bytes() == b"<svg/>"
    assert (tmp_path / ".out.svg.00000000.part").read_bytes() == b"someone else's"   # not touched
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.svg.00000000.part", "out.svg"]


@pytest.mark.parametrize("what", ["not executable", "a folder"])
def test_a_dot_on_path_that_cannot_run_is_a_missing_graphviz(monkeypatch, tmp_path, what):
    if what == "a folder":
        (tmp_path / "dot").mkdir()
    else:
        (tmp_path / "dot").write_text("#!/bin/sh\n")
        (tmp_path / "dot").chmod(0o644)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(graphviz.DotMissing, match="not installed"):
        run_dot(TEXT, "svg")


@pytest.mark.parametrize("name", ["g" * 250 + ".svg", "∂" * 83 + ".svg"])     # 254 and 253 bytes
def test_an_output_name_near_the_file_system_limit_is_written(tmp_path, name):
    graphviz.write_atomic(tmp_path / name, b"<svg/>")
    assert (tmp_path / name).read_bytes() == b"<svg/>" and len(list(tmp_path.iterdir())) == 1


# --- SVG text keeps its spaces -------------------------------------------------------------------

def test_a_labels_runs_keep_the_spaces_at_their_ends_as_no_break_spaces():
    """Graphviz draws `<B>idx</B> [1×16]` as two <text> runs, the second beginning with a plain
    space, which SVG strips: the SVG cgviz writes has a no-break space there instead."""
    svg = run_dot('digraph { a [label=<<B>idx</B> [1×16]>]; b [label="x  y"] }', "svg").decode()
    runs = re.findall(r"<text\b[^>]*>(.*?)</text>", svg)
    assert "idx" in runs and "&#160;[1×16]" in runs, runs
    assert "x &#160;y" in runs                                  # Graphviz's own doubling is kept
    assert not any(r.startswith(" ") or r.endswith(" ") for r in runs), runs


def test_keep_spaces_changes_only_the_ends_of_text_elements():
    raw = b'<g><title>a b</title><text x="1"> a  b </text><text>  </text><text y="2">c</text></g>'
    assert keep_spaces(raw) == (b'<g><title>a b</title><text x="1">&#160;a  b&#160;</text>'
                                b'<text>&#160;&#160;</text><text y="2">c</text></g>')
    assert keep_spaces(keep_spaces(raw)) == keep_spaces(raw)
