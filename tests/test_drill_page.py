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
    pytest.importorskip("torch")
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
    o.node(SOFTMAX.format(0)).click()                             # click 3: its softmax
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
    o.node(SOFTMAX.format(0)).click()
    label0 = _label(o, SOFTMAX.format(0))
    edges0 = o.js("() => [...document.querySelectorAll('#graph g.edge text')].map(t => t.textContent)")
    o.page.locator("#rep").fill("17")
    assert o.js("window.cgviz.rep") == 17 and "blocks.17.attn" in o.page.inner_text("#rep-info")
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
