"""The one DOT writer (cgviz.view.dot): a hand-made scene in, DOT text out; names and labels can only
ever be text; and no other module writes DOT syntax."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess

import pytest

from cgviz.view.dot import caption_label, dot_text
from cgviz.view.markup import Html, Line, html_text
from cgviz.view.scene import Cluster, Edge, Node, Scene

from conftest import ROOT

HOSTILE = 'a" ] ; x -> y [label="pwn'


def nested() -> Scene:
    inner = Cluster("outer/inner", {"color": "#90a4ae"}, (Node("c", {"label": Html("<B>c</B>")}),),
                    caption=(Line("inner", bold=True),))
    outer = Cluster("outer", {"style": "rounded"}, (Node("b"), inner, Node("d")))
    return Scene(graph={"rankdir": "TB"}, caption=(Line("title", head="t: "), Html("<I>two</I>")),
                 node={"fontsize": "11"}, edge={"arrowsize": "0.7"},
                 items=(Node("a", {"shape": "box", "label": Html("a")}), outer, Node("e")),
                 edges=(Edge("a", "b", {"color": "blue"}), Edge("c", "e")))


def test_a_hand_made_scene_with_nested_clusters():
    assert dot_text(nested()) == "\n".join([
        'digraph cgviz {',
        '  graph [label=<<B>t: </B>title<BR ALIGN="LEFT"/><I>two</I><BR ALIGN="LEFT"/>> rankdir="TB"]',
        '  node [fontsize="11"]',
        '  edge [arrowsize="0.7"]',
        '  "a" [label=<a> shape="box"]',
        '  subgraph "cluster_outer" {',
        '    graph [style="rounded"]',
        '    "b" []',
        '    subgraph "cluster_outer/inner" {',
        '      graph [color="#90a4ae" label=<<B>inner</B><BR ALIGN="LEFT"/>>]',
        '      "c" [label=<<B>c</B>>]',
        '    }',
        '    "d" []',
        '  }',
        '  "e" []',
        '  "a" -> "b" [color="blue"]',
        '  "c" -> "e" []',
        '}',
    ]) + "\n"


def test_same_rank_sets_come_last_and_quoted():
    from dataclasses import replace
    text = dot_text(replace(nested(), same_rank=(("a", HOSTILE),)))
    assert text.endswith('  "c" -> "e" []\n  {rank=same; "a"; "a\\" ] ; x -> y [label=\\"pwn"}\n}\n')


def test_the_text_depends_on_the_scene_alone():
    assert dot_text(nested()) == dot_text(nested())
    assert nested() == nested()


def test_a_caption_and_a_label_attribute_are_refused():
    with pytest.raises(ValueError):
        dot_text(Scene(graph={"label": "x"}, caption=(Line("y"),)))


def test_caption_lines_are_left_aligned():
    assert caption_label((Line("a<b"), Html("<B>c</B>"))).markup == 'a&lt;b<BR ALIGN="LEFT"/><B>c</B><BR ALIGN="LEFT"/>'


@pytest.mark.parametrize("name", [HOSTILE, "<b>", "back\\slash\\N", "new\nline", 'x"', "}"])
def test_hostile_names_stay_names(name):
    label = Html(html_text(name))
    scene = Scene(graph={"label": name}, items=(
        Cluster(name, {"tooltip": name}, (Node(name, {"label": label, "tooltip": name}),)),
        Node("b")), edges=(Edge(name, "b", {"label": name}),))
    text = dot_text(scene)
    # every name and value in one quoted string, so the statements are exactly the scene's
    assert f"  {_quoted(name)} -> \"b\" [label={_quoted(name)}]" in text.splitlines()
    assert f"  graph [label={_quoted(name)}]" in text.splitlines()
    assert len(text.splitlines()) == 11
    assert f"subgraph {_quoted('cluster_' + name)} {{" in text
    assert f"  {_quoted(name)} [label=<{html_text(name)}> tooltip={_quoted(name)}]" in text
    assert "=<<b>" not in text and "=<b>" not in text    # "<b>" is never HTML markup


@pytest.mark.parametrize("text", [HOSTILE, "<b>&amp;</b>", "it's \"x\"", "a\\b\nc", "∂L/∂w ≥ 1e-3", ""])
def test_label_text_is_escaped_as_html_escape_does(text):
    import html
    assert html_text(text) == html.escape(text.replace("\\", "\\\\"), quote=True).replace("\n", "<BR/>")


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@pytest.mark.skipif(shutil.which("dot") is None, reason="Graphviz's dot is not installed")
def test_graphviz_reads_hostile_names_as_one_node_each():
    scene = Scene(graph={}, items=(Cluster(HOSTILE, {}, (Node(HOSTILE, {"label": Html(html_text("<b>"))}),)),
                                   Node("b")), edges=(Edge(HOSTILE, "b"),))
    out = subprocess.run(["dot", "-Tjson0"], input=dot_text(scene), capture_output=True, text=True, check=True)
    assert out.stderr == ""
    laid = json.loads(out.stdout)
    assert [o["name"] for o in laid["objects"]] == ["cluster_" + HOSTILE, HOSTILE, "b"]
    assert [(laid["objects"][e["tail"]]["name"], laid["objects"][e["head"]]["name"]) for e in laid["edges"]] \
        == [(HOSTILE, "b")]
    assert laid["objects"][1]["label"] == "&lt;b&gt;"


def _string_literals(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.value
        elif isinstance(node, ast.JoinedStr):
            yield "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)


DOT_SYNTAX = re.compile(r'\b(digraph|subgraph) +(\{|"|\w)|(["}]) -> (["{])')


def writes_dot(text: str) -> bool:
    """A string literal that is DOT syntax: the `digraph`/`subgraph` keywords, or an edge statement's
    arrow between names (`"a" -> "b"`, or `{} -> {}` for an f-string's placeholders)."""
    return bool(DOT_SYNTAX.search(text))


def test_the_scan_finds_dot_syntax():
    assert writes_dot("digraph cgviz {") and writes_dot("{}subgraph {} {") and writes_dot("  {} -> {} {}")
    assert not writes_dot("red ⇠  gradients") and not writes_dot("a → b") and not writes_dot("x -> y")
    assert not writes_dot(r"^\s*subgraph\s+(")      # cgviz.plan.budget reads DOT


def test_only_the_writer_writes_dot_syntax():
    writer = ROOT / "cgviz" / "view" / "dot.py"
    found = [(path.relative_to(ROOT).as_posix(), text[:60]) for path in sorted((ROOT / "cgviz").rglob("*.py"))
             if path != writer for text in _string_literals(path) if writes_dot(text)]
    assert found == []
    assert any(writes_dot(t) for t in _string_literals(writer))
