"""The drill-down page of a big model in a real browser (Debian's chromium via Playwright, as
tests/test_html.py): 24 folded blocks, opened level by level to an attention softmax, whose panel
must show the JSON's numbers for the chosen block; back, search and the block selector."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from conftest import ROOT
from test_html import Opened, _render, browser  # noqa: F401  (the browser fixture)

MODEL = "tests/models/deep_gpt.py"
SOFTMAX = "blocks.{}.attn/softmax"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    import torch  # noqa: F401
    tmp = tmp_path_factory.mktemp("drill")
    page = _render(tmp, "torch", MODEL)
    r = subprocess.run([sys.executable, "-m", "cgviz", "torch", MODEL, "--format", "json", "-o", "-"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return page, {n["id"]: n for n in json.loads(r.stdout)["nodes"]}


@pytest.fixture
def deep(browser, built):  # noqa: F811
    o = Opened(browser, built[0])
    yield o
    assert o.errors == [], f"script errors on the page: {o.errors}"
    assert o.requests == [o.url], o.requests          # one file: nothing fetched, ever
    o.page.close()


def _level(o) -> str:
    return o.js("window.cgviz.level")


def _crumbs(o) -> str:
    return o.page.inner_text("#crumbs").strip()


def _open(o, level: str) -> None:
    """Click what opens `level`: a module's box, or the caption of its frame (a click inside the
    frame lands on a node, which shows that node instead)."""
    target = o.page.locator(f'#graph [data-opens="{level}"]').first
    if "cluster" in (target.get_attribute("class") or ""):
        target = target.locator("> text").first
    target.click()
    o.page.wait_for_function("k => window.cgviz.level === k", arg=level)


def _click(o, node_id: str) -> None:
    """Click a node as a user would find it: the first view is zoomed in to be read, so show the
    whole level first (the fit button) when the node is out of view."""
    if not o.node(node_id).is_visible() or not o.js("""id => { const r = document.querySelector(
            `#graph g.node[data-id="${id}"]`).getBoundingClientRect(), b = document.getElementById('graph')
            .getBoundingClientRect(); return r.left >= b.left && r.right <= b.right && r.top >= b.top && r.bottom <= b.bottom; }""",
                                                     node_id):
        o.page.click("#fit")
    o.node(node_id).click()


def _label(o, node_id: str) -> str:
    """A node's label as the SVG shows it, its runs of text joined by |."""
    return o.js("""id => [...document.querySelector(`g.node[data-id="${id}"]`).querySelectorAll('text')]
                         .map(t => t.textContent).join('|')""", node_id)


def _stats(panel: str, what: str) -> dict[str, float]:
    """The panel's `value statistics` or `gradient statistics` row as numbers."""
    m = re.search(rf"{what} statistics\s*\n(.+)", panel)
    assert m, panel
    pairs = re.findall(r"(mean|std|min|max|norm) (\S+)", m.group(1))
    return {k: float(v) for k, v in pairs}


def _same(shown: dict, json_stats: dict) -> None:
    assert set(shown) == {"mean", "std", "min", "max", "norm"}, shown
    for k, v in shown.items():
        assert v == pytest.approx(json_stats[k], rel=1e-5, abs=1e-12), (k, v, json_stats[k])


def _panel_matches(o, nodes, op: str) -> None:
    assert o.page.inner_text("#panel-title") == op
    panel = o.page.inner_text("#panel-body")
    _same(_stats(panel, "value"), nodes[op]["value_stats"])
    _same(_stats(panel, "gradient"), nodes[op]["grad_stats"])


def test_three_clicks_reach_an_attention_softmax_with_the_jsons_numbers(deep, built):
    o, nodes = deep, built[1]
    assert _level(o) == "" and _crumbs(o) == "model"            # opens at the top level
    assert "×24" in o.page.inner_text("#graph")
    assert o.page.locator("#reps").is_hidden()
    _open(o, "blocks.0")                                          # click 1: the ×24 frame (or box)
    assert _crumbs(o) == "model › blocks ×24"
    assert o.page.locator("#reps").is_visible() and o.js("document.getElementById('rep').max") == "23"
    assert o.js("document.querySelectorAll('#rep-chart rect[data-rep]').length") == 24
    _open(o, "blocks.0.attn")                                     # click 2: the attention module
    assert _crumbs(o) == "model › blocks ×24 › attn"
    _click(o, SOFTMAX.format(0))                                  # click 3: its softmax
    _panel_matches(o, nodes, SOFTMAX.format(0))
    o.page.go_back()                                              # back: the block, then the top
    o.page.wait_for_function("() => window.cgviz.level === 'blocks.0'")
    assert _crumbs(o) == "model › blocks ×24"
    o.page.go_back()
    o.page.wait_for_function("() => window.cgviz.level === ''")
    assert _crumbs(o) == "model" and o.page.locator("#reps").is_hidden()
    o.page.go_forward()
    o.page.wait_for_function("() => window.cgviz.level === 'blocks.0'")
    o.page.locator("#crumbs a").first.click()                     # the breadcrumb goes up too
    o.page.wait_for_function("() => window.cgviz.level === ''")


def test_the_block_selector_changes_the_numbers_shown(deep, built):
    o, nodes = deep, built[1]
    _open(o, "blocks.0")
    _open(o, "blocks.0.attn")
    _click(o, SOFTMAX.format(0))
    label0 = _label(o, SOFTMAX.format(0))
    edges0 = o.js("() => [...document.querySelectorAll('#graph g.edge text')].map(t => t.textContent)")
    o.page.locator("#rep").fill("17")
    assert o.js("window.cgviz.rep") == 17 and "blocks.17" in o.page.inner_text("#rep-info")
    assert o.page.get_attribute("#rep-info", "title") == "blocks.17.attn"
    _panel_matches(o, nodes, SOFTMAX.format(17))                  # the panel follows the selector
    label17 = _label(o, SOFTMAX.format(0))          # the one layout's box, with block 17's numbers
    grad17 = nodes[SOFTMAX.format(17)]["grad_stats"]["norm"]
    assert label17 != label0 and f"{grad17:.4g}" in label17, (label0, label17)
    edges17 = o.js("() => [...document.querySelectorAll('#graph g.edge text')].map(t => t.textContent)")
    assert len(edges17) == len(edges0) and edges17 != edges0
    qkv = _label(o, "blocks.0.attn.qkv/linear")      # a one-op module's name on its op names block 17's
    assert qkv.startswith("blocks.17.attn.qkv · Linear|"), qkv
    o.page.click("#reset")
    o.page.click("#step")                           # the backward stepper speaks of block 17 too
    assert "blocks.17." in o.page.inner_text("#step-info") and "blocks.0." not in o.page.inner_text("#step-info")
    o.page.locator("#rep").fill("0")                              # and back to block 0's numbers
    _panel_matches(o, nodes, SOFTMAX.format(0))
    assert o.js("() => [...document.querySelectorAll('#graph g.edge text')].map(t => t.textContent)") == edges0


def test_search_opens_the_level_and_block_of_a_deep_op(deep, built):
    o, nodes = deep, built[1]
    o.page.fill("#search", SOFTMAX.format(21))
    o.page.press("#search", "Enter")
    o.page.wait_for_function("() => window.cgviz.level === 'blocks.0.attn'")
    assert o.js("window.cgviz.rep") == 21
    assert "found" in o.node(SOFTMAX.format(0)).get_attribute("class")
    _panel_matches(o, nodes, SOFTMAX.format(21))
    o.page.fill("#search", "blocks.5.attn/div")                   # another block, same level
    o.page.press("#search", "Enter")
    o.page.wait_for_function("() => window.cgviz.rep === 5")
    _panel_matches(o, nodes, "blocks.5.attn/div")
    o.page.go_back()                                              # each search was a step, too
    o.page.wait_for_function("() => window.cgviz.rep === 21")
    o.page.go_back()
    o.page.wait_for_function("() => window.cgviz.level === ''")


# --- a drag is not a click ------------------------------------------------------------------------

def _frame_background(o, level: str) -> tuple[float, float]:
    """A point of the graph's box on the frame that opens `level`: on its background, not on a node
    nor on the frame's caption (pressing on text may start a selection, which never clicks)."""
    point = o.js("""key => { const b = document.getElementById('graph').getBoundingClientRect();
        for (let y = b.top + 5; y < b.bottom; y += 7) for (let x = b.left + 5; x < b.right; x += 7) {
          const e = document.elementFromPoint(x, y);
          if (e && ['path', 'polygon'].includes(e.tagName) && !e.closest('g.node')
              && e.closest(`g.cluster[data-opens="${key}"]`)) return [x, y]; }
        return null; }""", level)
    assert point, f"no bare spot of the frame that opens {level} in view"
    return point[0], point[1]


def test_a_drag_over_a_frame_pans_and_opens_nothing_while_a_click_opens_it(deep):
    o = deep
    x, y = _frame_background(o, "blocks.0")
    before = o.view_box()
    o.page.mouse.move(x, y)
    o.page.mouse.down()
    area = o.page.locator("#graph").bounding_box()     # towards the middle: the press ends inside the graph
    dx = 60 if x < area["x"] + area["width"] / 2 else -60
    dy = 60 if y < area["y"] + area["height"] / 2 else -60
    o.page.mouse.move(x + dx, y + dy, steps=6)
    assert o.js("([x, y]) => !!document.elementFromPoint(x, y).closest('#graph svg')", [x + dx, y + dy])
    o.page.mouse.up()
    o.page.wait_for_timeout(100)
    assert _level(o) == "" and o.view_box() != before           # panned, and still the top level
    x, y = _frame_background(o, "blocks.0")
    o.page.mouse.click(x, y)
    o.page.wait_for_function("() => window.cgviz.level === 'blocks.0'")


# --- the first view can be read ---------------------------------------------------------------------

def _text_heights(o) -> list[float]:
    """The on-screen heights (px) of the node labels' text that is in the graph's box."""
    return o.js("""() => { const b = document.getElementById('graph').getBoundingClientRect();
        return [...document.querySelectorAll('#graph g.node text')].map(t => t.getBoundingClientRect())
          .filter(r => r.height > 0 && r.bottom > b.top && r.top < b.bottom && r.right > b.left && r.left < b.right)
          .map(r => r.height).sort((a, c) => a - c); }""")


@pytest.mark.parametrize("level", ["", "blocks.0", "blocks.0.attn"])
def test_each_level_opens_at_a_zoom_whose_labels_can_be_read(deep, level):
    o = deep
    if level:
        o.page.evaluate("k => { location.hash = '#' + k; }", level)
        o.page.wait_for_function("k => window.cgviz.level === k", arg=level)
    heights = _text_heights(o)
    assert len(heights) >= 5 and heights[len(heights) // 2] >= 11, heights        # 11 px: the median label
    o.page.click("#fit")                              # the whole level at once: 24 blocks' worth is too small
    assert o.js("window.cgviz.fitFont") < 9
    whole = _text_heights(o)
    assert whole[len(whole) // 2] < heights[len(heights) // 2]


def test_the_first_view_starts_where_the_graph_starts(deep):
    o = deep
    idx = o.node("idx").bounding_box()                  # the model's input, at the top of the picture
    area = o.page.locator("#graph").bounding_box()
    assert area["y"] <= idx["y"] and idx["y"] + idx["height"] <= area["y"] + area["height"] / 2
    assert area["x"] <= idx["x"] and idx["x"] + idx["width"] <= area["x"] + area["width"]
    assert o.page.locator("#view-note").is_visible()     # it says how to see the rest
    o.page.click("#fit")
    assert o.page.locator("#view-note").is_hidden()


# --- captions, panels and the toolbar follow the block shown ------------------------------------------

def _texts(o) -> list[str]:
    return o.js("() => [...document.querySelectorAll('#graph svg text')].map(t => t.textContent)")


def test_captions_follow_the_block_selector(deep):
    o = deep
    _open(o, "blocks.0")
    block = re.compile(r"\bblocks\.(\d+)\b")     # block r's, and its neighbours' in the stubs
    assert {m for t in _texts(o) for m in block.findall(t)} == {"0", "1"}
    o.page.locator("#rep").fill("11")
    shown = _texts(o)
    assert {m for t in shown for m in block.findall(t)} == {"10", "11", "12"}, [t for t in shown if "blocks.0" in t]
    assert any("inside blocks.11 (Block)" in t for t in shown)                    # the picture's caption
    # the frame's caption: `blocks.11.attn`, then its class, moved right as far as the name grew
    name, cls = o.js("""() => [...[...document.querySelectorAll('#graph g.cluster')].find(g => g.querySelector('title')
        .textContent === 'cluster_blocks.0.attn').querySelectorAll('text')].slice(0, 2)
        .map(t => [t.textContent, Number(t.getAttribute('x')), t.getComputedTextLength()])""")
    assert name[0] == "blocks.11.attn" and cls[0].strip() == "Attention"
    assert cls[1] >= name[1] + name[2] - 0.01, (name, cls)
    o.page.locator("#rep").fill("0")
    assert {m for t in _texts(o) for m in block.findall(t)} == {"0", "1"}


def test_a_folded_nodes_panel_says_which_block_its_numbers_are(deep, built):
    o, nodes = deep, built[1]
    _click(o, SOFTMAX.format(0))                   # the top level: softmax ×24, one node for all blocks
    label = _label(o, SOFTMAX.format(0))
    # the ×24 frame says once that the numbers inside it are all 24 blocks together (not each label)
    captions = o.js("() => [...document.querySelectorAll('#graph g.cluster text')].map(t => t.textContent)")
    assert any("numbers inside: all 24 blocks together" in c for c in captions), captions
    panel = o.page.inner_text("#panel-body")
    assert re.search(r"numbers below\s*\nblock 0 of 24 \(blocks\.0\) only", panel), panel
    together = re.search(r"‖∂L/∂out‖ = (\S+) is all 24 blocks together", panel)
    assert together and together.group(1) in label                                 # the label's number
    _same(_stats(panel, "gradient"), nodes[SOFTMAX.format(0)]["grad_stats"])       # block 0's own
    o.node("blocks.0.ln1/params").click()
    panel = o.page.inner_text("#panel")
    assert "parameters and buffers, block 0 of 24 (blocks.0)" in panel
    assert re.search(r"blocks\.0\.ln1\.weight .*‖∇‖ = \S+  \(all 24 blocks: ‖∇‖ = \S+\)", panel), panel


def test_the_toolbar_is_one_line_at_1600_px_with_the_block_selector(deep):
    from test_html import bar_lines
    o = deep
    o.page.set_viewport_size({"width": 1600, "height": 900})
    _open(o, "blocks.0")
    _open(o, "blocks.0.attn")
    o.page.locator("#rep").fill("17")
    assert o.page.locator("#reps").is_visible() and bar_lines(o.page) == 1
    assert o.page.locator("#bar .title").bounding_box()["width"] > 100
