"""The interactive page (`--format html`) in a real browser: Debian's chromium driven by Playwright.

The page must work offline (no request beyond the file itself), open a panel with the clicked
node's numbers and chain rule, toggle the two kinds of edges, step through the backward pass in
the order backprop visits the edges, find a node by name, and zoom and pan the SVG.

On a developer's machine without /usr/bin/chromium these tests skip, saying so; on CI (`CI` set)
`make install` puts chromium there, so its absence is a broken set-up and the tests fail.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import ROOT

CHROMIUM = Path("/usr/bin/chromium")
ON_CI = bool(os.environ.get("CI"))


def _unavailable(reason: str):
    if ON_CI:
        pytest.fail(f"{reason} on CI: `make install` should have provided it", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        _unavailable(f"needs Debian's chromium at {CHROMIUM} (`make install` or apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("needs the playwright Python package (the `test` extra: `make install`)")
    with sync_playwright() as p:
        # `playwright install` is never needed: the system chromium is used as is.
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


def _render(tmp: Path, *args: str) -> Path:
    """Run the real command line (`python -m cgviz ...`) and return the written page."""
    out = tmp / "page.html"
    r = subprocess.run([sys.executable, "-m", "cgviz", *args, "--format", "html", "-o", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert out.is_file() and out.stat().st_size > 0
    return out


@pytest.fixture(scope="module")
def pizza_html(tmp_path_factory) -> Path:
    return _render(tmp_path_factory.mktemp("pizza"), "render", "sample_graphs/pizza.cg")


class Opened:
    """A page on one file, with every request it made and every script error it raised."""

    def __init__(self, browser, path: Path):
        self.url = path.as_uri()
        self.page = browser.new_page(viewport={"width": 1280, "height": 720})
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.page.on("request", lambda r: self.requests.append(r.url))
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.goto(self.url)
        self.page.wait_for_function("() => window.cgviz && window.cgviz.backwardOrder")

    def js(self, expr: str, arg=None):
        return self.page.evaluate(expr, arg)

    def node(self, node_id: str):
        return self.page.locator(f'#graph svg g.node[data-id="{node_id}"]')

    def edge_keys(self, cls: str) -> list[str]:
        return self.js(f"""() => [...document.querySelectorAll('#graph svg g.edge.{cls}')]
                           .map(g => g.querySelector('title').textContent)""")

    def view_box(self) -> str:
        return self.page.locator("#graph svg").get_attribute("viewBox")


@pytest.fixture
def pizza(browser, pizza_html):
    o = Opened(browser, pizza_html)
    yield o
    assert o.errors == [], f"script errors on the page: {o.errors}"
    o.page.close()


# --- self-contained -------------------------------------------------------------------------------

def test_page_makes_no_request_beyond_the_file(pizza):
    pizza.page.click('#graph svg g.node[data-id="w"]')      # interacting must not fetch anything either
    pizza.page.click("#step")
    pizza.page.wait_for_timeout(200)
    assert pizza.requests == [pizza.url]


def test_page_source_has_no_external_reference(pizza_html):
    text = pizza_html.read_text(encoding="utf-8")
    assert not re.search(r"<script[^>]*\bsrc=", text, re.I)
    assert not re.search(r"<link\b", text, re.I)
    assert not re.search(r"@import|url\(\s*['\"]?(https?:|//)", text, re.I)
    # the only URLs allowed are the SVG/XLink namespace names, which are never fetched
    urls = set(re.findall(r"https?://[^\s\"'<>)]+", text))
    assert urls <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, urls


# --- structure ------------------------------------------------------------------------------------

def test_nodes_carry_their_id_and_edges_their_kind(pizza):
    ids = pizza.js("""() => [...document.querySelectorAll('#graph svg g.node')]
                      .map(g => [g.getAttribute('data-id'), g.querySelector('title').textContent])""")
    assert all(d == t for d, t in ids), ids
    assert {"w", "x", "z", "a", "L", "L/sub"} <= {d for d, _ in ids}
    unclassified = pizza.js("""() => [...document.querySelectorAll('#graph svg g.edge')]
        .filter(g => g.classList.contains('fwd') === g.classList.contains('bwd')).length""")
    assert unclassified == 0
    assert "w->z" in pizza.edge_keys("fwd") and "w->z" in pizza.edge_keys("bwd")
    assert "y->L/sub" not in pizza.edge_keys("bwd")           # a constant gets no gradient


# --- the panel ------------------------------------------------------------------------------------

def test_clicking_w_opens_the_panel_with_its_gradient_and_chain(pizza):
    assert not pizza.page.locator("#panel").is_visible()
    pizza.node("w").click()
    panel = pizza.page.locator("#panel")
    assert panel.is_visible()
    assert pizza.page.locator("#panel-title").inner_text().strip() == "w"
    text = panel.inner_text()
    assert "0.5" in text                                        # the value
    assert "4000" in text                                       # the gradient
    chain = pizza.page.locator("#panel-chain").inner_text()
    assert "20 · 1 · 200" in chain
    assert "∂L/∂w = ∂L/∂a · ∂a/∂z · ∂z/∂w = 20 · 1 · 200 = 4000" in chain


def test_clicking_an_op_shows_its_formula_and_local_gradients(pizza):
    pizza.node("z").click()
    text = pizza.page.locator("#panel").inner_text()
    assert pizza.page.locator("#panel-title").inner_text().strip() == "z"
    assert "w * x" in text and "a · b" in text                 # the expression and the op's formula
    assert re.search(r"∂z/∂w\b.*= 200\b", text), text             # local gradient w.r.t. each input
    assert re.search(r"∂z/∂x\b.*= 0\.5\b", text), text
    assert "100" in text and "20" in text                       # value 100, gradient 20
    # clicking another node replaces the panel's content
    pizza.node("x").click()
    assert pizza.page.locator("#panel-title").inner_text().strip() == "x"
    assert "20 · 1 · 0.5 = 10" in pizza.page.locator("#panel-chain").inner_text()


# --- toggles --------------------------------------------------------------------------------------

def _displays(o: Opened, cls: str) -> list[str]:
    return o.js(f"""() => [...document.querySelectorAll('#graph svg g.edge.{cls}')]
                    .map(g => getComputedStyle(g).display)""")


@pytest.mark.parametrize("hide, keep", [("bwd", "fwd"), ("fwd", "bwd")])
def test_unchecking_a_kind_hides_its_edges_and_rechecking_shows_them(pizza, hide, keep):
    box = pizza.page.locator(f"#show-{hide}")
    assert box.is_checked() and pizza.page.locator(f"#show-{keep}").is_checked()
    assert "none" not in _displays(pizza, hide)
    box.uncheck()
    hidden, kept = _displays(pizza, hide), _displays(pizza, keep)
    assert hidden and set(hidden) == {"none"}, hidden
    assert kept and "none" not in kept, kept
    box.check()
    assert "none" not in _displays(pizza, hide)
    assert "none" not in _displays(pizza, keep)


# --- stepping through the backward pass -----------------------------------------------------------

def _classes(o: Opened, cls: str) -> list[str]:
    return o.js(f"""() => [...document.querySelectorAll('#graph svg g.edge.bwd.{cls}')]
                    .map(g => g.querySelector('title').textContent)""")


def _step_through(o: Opened, loss: str):
    order = o.js("() => window.cgviz.backwardOrder")
    red = o.edge_keys("bwd")
    assert sorted(order) == sorted(red), "backwardOrder must hold every red edge exactly once"
    assert len(set(order)) == len(order)
    assert order[0].endswith(f"->{loss}"), order
    active, infos = [], []
    for k in range(1, len(order) + 1):
        o.page.click("#step")
        now = _classes(o, "active")
        assert len(now) == 1, f"after {k} steps the active edges are {now}"
        active.append(now[0])
        assert sorted(_classes(o, "done")) == sorted(order[:k]), f"after {k} steps"
        infos.append(o.page.locator("#step-info").inner_text().strip())
    assert active == order
    assert all(infos), infos
    assert all(a != b for a, b in zip(infos, infos[1:])), f"#step-info must change at each step: {infos}"
    return order, infos


def test_step_visits_red_edges_in_backprop_order(pizza):
    assert pizza.page.locator("#step-info").inner_text().strip() == ""
    order, infos = _step_through(pizza, "L")
    # the pizza graph is a chain: backprop must reach each node only after its consumer
    assert order.index("a->L/sub") < order.index("z->a") < order.index("w->z")
    assert order.index("z->a") < order.index("x->z")
    step_of = dict(zip(order, infos))
    assert "∂L/∂a = 20" in step_of["a->L/sub"]
    assert "∂L/∂z = 20" in step_of["z->a"]
    assert "∂L/∂w = 4000" in step_of["w->z"]
    assert "∂L/∂x = 10" in step_of["x->z"]


def test_step_order_is_reverse_topological(pizza):
    """Every red edge u->v comes after every red edge leaving v: v's gradient is complete by then."""
    order = pizza.js("() => window.cgviz.backwardOrder")
    pos = {k: i for i, k in enumerate(order)}
    for key, i in pos.items():
        _, dst = key.split("->", 1)
        for later in (k for k in order if k.split("->", 1)[0] == dst):
            assert pos[later] < i, f"{later} must come before {key}: {order}"


def test_reset_clears_the_steps(pizza):
    pizza.page.click("#step")
    pizza.page.click("#step")
    assert len(_classes(pizza, "done")) == 2
    pizza.page.click("#reset")
    assert _classes(pizza, "done") == [] and _classes(pizza, "active") == []
    assert pizza.page.locator("#step-info").inner_text().strip() == ""
    pizza.page.click("#step")
    assert _classes(pizza, "active") == pizza.js("() => window.cgviz.backwardOrder")[:1]


def test_play_runs_the_backward_pass_to_the_end(pizza):
    order = pizza.js("() => window.cgviz.backwardOrder")
    pizza.page.click("#play")
    pizza.page.wait_for_function(
        "n => document.querySelectorAll('#graph svg g.edge.bwd.done').length === n",
        arg=len(order), timeout=2000 + 1500 * len(order))
    assert _classes(pizza, "active") == [order[-1]]


# --- search, zoom, pan ----------------------------------------------------------------------------

def test_search_finds_a_node_by_name_and_centres_it(pizza):
    before = pizza.view_box()
    pizza.page.fill("#search", "a")
    pizza.page.press("#search", "Enter")
    found = pizza.js("""() => [...document.querySelectorAll('#graph svg g.node.found')]
                        .map(g => g.getAttribute('data-id'))""")
    assert found == ["a"]
    assert pizza.view_box() != before
    # centred: the node's middle is near the middle of the drawing area
    node = pizza.node("a").bounding_box()
    area = pizza.page.locator("#graph svg").bounding_box()
    nx, ny = node["x"] + node["width"] / 2, node["y"] + node["height"] / 2
    ax, ay = area["x"] + area["width"] / 2, area["y"] + area["height"] / 2
    assert abs(nx - ax) < 0.1 * area["width"] and abs(ny - ay) < 0.1 * area["height"], (node, area)
    # a new search moves the mark
    pizza.page.fill("#search", "w")
    pizza.page.press("#search", "Enter")
    assert pizza.js("() => [...document.querySelectorAll('g.node.found')].map(g => g.dataset.id)") == ["w"]


def test_wheel_zooms_and_drag_pans_and_fit_restores(pizza):
    svg = pizza.page.locator("#graph svg").bounding_box()
    cx, cy = svg["x"] + svg["width"] / 2, svg["y"] + svg["height"] / 2
    home = pizza.view_box()
    pizza.page.mouse.move(cx, cy)
    pizza.page.mouse.wheel(0, -300)
    pizza.page.wait_for_function("v => document.querySelector('#graph svg').getAttribute('viewBox') !== v",
                                 arg=home, timeout=2000)
    zoomed = pizza.view_box()
    assert float(zoomed.split()[2]) < float(home.split()[2])     # zooming in shows a smaller width
    pizza.page.mouse.move(cx, cy)
    pizza.page.mouse.down()
    pizza.page.mouse.move(cx + 80, cy + 40, steps=4)
    pizza.page.mouse.up()
    panned = pizza.view_box()
    assert panned != zoomed
    assert panned.split()[2:] == zoomed.split()[2:]               # panning keeps the size
    pizza.page.click("#fit")
    assert [float(v) for v in pizza.view_box().split()] == pytest.approx([float(v) for v in home.split()])


# --- the model path -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def rnn_html(tmp_path_factory) -> Path:
    import torch  # noqa: F401
    return _render(tmp_path_factory.mktemp("rnn"), "torch", "sample_graphs/models/rnn_loop.py")


def test_model_page_shows_parameter_gradient_norms(browser, rnn_html):
    o = Opened(browser, rnn_html)
    try:
        assert o.requests == [o.url]
        boxes = o.js("""() => [...document.querySelectorAll('#graph svg g.node')]
                        .map(g => g.getAttribute('data-id')).filter(id => id.endsWith('/params'))""")
        assert boxes, "the RNN's drawing has parameter boxes"
        o.node(boxes[0]).click()
        assert o.page.locator("#panel").is_visible()
        text = o.page.locator("#panel").inner_text()
        assert re.search(r"‖∇‖ = [0-9.]+(e[-+]?\d+)?", text), text
        assert "weight" in text and "bias" in text
        order = o.js("() => window.cgviz.backwardOrder")
        assert sorted(order) == sorted(o.edge_keys("bwd"))
        assert len(set(order)) == len(order)
        assert order[0].endswith("->loss/sum"), order
        o.page.click("#step")
        assert _classes(o, "active") == order[:1]
        assert "‖∂L/∂" in o.page.locator("#step-info").inner_text()
        assert o.errors == [], o.errors
        assert o.requests == [o.url]
    finally:
        o.page.close()


def test_large_tensors_show_a_histogram_in_the_panel(browser, tmp_path):
    """A tensor's panel has stats and a one-line histogram, for expression files and models alike."""
    page = _render(tmp_path, "render", "sample_graphs/three_layer.cg")
    o = Opened(browser, page)
    try:
        o.node("W1").click()
        text = o.page.locator("#panel").inner_text()
        assert "value histogram" in text and "gradient histogram" in text
        assert re.search(r"[▁▂▃▄▅▆▇█]{2,}", text), text
    finally:
        o.page.close()
    import torch  # noqa: F401
    model = _render(tmp_path / "m", "torch", "sample_graphs/models/res_cnn.py")
    o = Opened(browser, model)
    try:
        o.node("stem.0/conv2d").click()           # [2×16×16×16]: binned while the model ran
        text = o.page.locator("#panel").inner_text()
        assert "gradient histogram" in text and re.search(r"[▁▂▃▄▅▆▇█]{4,}", text), text
        assert o.errors == []
    finally:
        o.page.close()


# --- cgviz train -o page.html: a slider over the steps ----------------------------------------------

@pytest.fixture(scope="module")
def train_html(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("train") / "train.html"
    r = subprocess.run([sys.executable, "-m", "cgviz", "train", "sample_graphs/pizza.cg", "--lr", "1e-5",
                        "--steps", "5", "-q", "-o", str(out), "--curve", str(out.with_suffix(".png"))],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return out


def test_the_training_slider_shows_each_steps_values_gradients_and_flags(browser, train_html):
    o = Opened(browser, train_html)
    try:
        w_lines = """() => Array.from(document.querySelectorAll('g.node[data-id="w"] text')).map(t => t.textContent)"""
        assert o.js("window.cgviz.train.frames") == 6              # steps 0 … 5
        assert o.js(w_lines) == ["w", "0.45", "∂L/∂w = 1.28"]       # opens on the last step
        assert "step 5 of 5" in o.page.inner_text("#train-info")
        end = o.js("Number(document.getElementById('train-marker').getAttribute('cx'))")
        slider = o.page.locator("#train-step")
        slider.fill("0")                                           # what a user's drag does: an input event
        assert o.js(w_lines) == ["w", "0.5", "⚠ exploding: ‖g‖/‖w‖ = 8000 > 10", "∂L/∂w = 4000"]
        assert "step 0 of 5 · loss L = 100" in o.page.inner_text("#train-info")
        assert o.js("Number(document.getElementById('train-marker').getAttribute('cx'))") < end
        red_w = """() => { const g = Array.from(document.querySelectorAll('g.edge.bwd'))
                              .find(g => g.getAttribute('data-key') === 'w->z');
                           return [g.querySelector('text').textContent, Number(g.querySelector('path').getAttribute('stroke-width'))]; }"""
        label0, width0 = o.js(red_w)
        slider.fill("3")
        label3, width3 = o.js(red_w)
        assert (label0, label3) == ("4000", "32") and width0 > width3      # the gradient shrinks as w learns
        o.node("w").click()                                        # the panel follows the slider too
        assert "0.4504" in o.page.locator("#panel").inner_text()
        assert o.errors == [] and all(u.startswith("file://") for u in o.requests)
    finally:
        o.page.close()


# --- a drag is not a click ------------------------------------------------------------------------

def _centre(o: Opened, selector: str) -> tuple[float, float]:
    b = o.page.locator(selector).first.bounding_box()
    return b["x"] + b["width"] / 2, b["y"] + b["height"] / 2


def test_a_drag_that_starts_on_a_node_pans_and_selects_nothing_while_a_click_selects(pizza):
    x, y = _centre(pizza, '#graph svg g.node[data-id="w"] .shape')
    before = pizza.view_box()
    pizza.page.mouse.move(x, y)
    pizza.page.mouse.down()
    pizza.page.mouse.move(x + 60, y + 30, steps=5)
    pizza.page.mouse.up()                         # over w still? no matter: the press moved, so it is a drag
    assert pizza.view_box() != before
    assert not pizza.page.locator("#panel").is_visible()
    assert pizza.js("document.querySelectorAll('g.node.selected').length") == 0
    x, y = _centre(pizza, '#graph svg g.node[data-id="w"] .shape')
    pizza.page.mouse.move(x, y)
    pizza.page.mouse.down()
    pizza.page.mouse.move(x + 2, y + 1)           # a hand's tremor is still a click
    pizza.page.mouse.up()
    assert pizza.page.locator("#panel").is_visible() and pizza.page.inner_text("#panel-title") == "w"


# --- the selected node and a search hit are outlined ----------------------------------------------

def _outline(o: Opened, node_id: str) -> tuple[str, float]:
    """The computed stroke colour and width of a node's outline (its shape)."""
    return o.js("""id => { const s = getComputedStyle(document.querySelector(`g.node[data-id="${id}"] .shape`));
                           return [s.stroke, parseFloat(s.strokeWidth)]; }""", node_id)


def test_the_selected_node_and_a_search_hit_are_outlined(pizza):
    # each node's outline is found inside the <a> Graphviz wraps around a node with a tooltip
    assert pizza.js("document.querySelectorAll('g.node > g > a > .shape').length") >= 6
    plain = {i: _outline(pizza, i) for i in ("w", "z", "a")}
    pizza.node("w").click()
    stroke, width = _outline(pizza, "w")
    assert stroke == "rgb(255, 109, 0)" and width >= 3, (stroke, width)
    assert _outline(pizza, "z") == plain["z"]                     # only the selected one
    pizza.page.fill("#search", "a")
    pizza.page.press("#search", "Enter")
    stroke, width = _outline(pizza, "a")
    assert stroke == "rgb(255, 109, 0)" and width >= 5 and width > plain["a"][1] + 3, (stroke, width)
    assert _outline(pizza, "w") == plain["w"]                     # the selection moved to the hit


# --- SVG text keeps its spaces ------------------------------------------------------------------

def _leading_space_widths(o: Opened) -> list[float]:
    """For each <text> that starts with a space: how much wider it is drawn than its text without
    that space (measured on a copy), in px; 0 where the browser dropped the space."""
    return o.js("""() => [...document.querySelectorAll('svg text')].filter(t => /^\\s/.test(t.textContent)
        && t.textContent.trim()).map(t => { const probe = t.cloneNode(); probe.textContent = t.textContent.trimStart();
        t.parentNode.appendChild(probe); const w = probe.getComputedTextLength(); probe.remove();
        const s = t.getScreenCTM().a; return (t.getComputedTextLength() - w) * s; })""")


def test_the_page_keeps_the_space_between_a_name_and_what_follows(browser, rnn_html):
    o = Opened(browser, rnn_html)
    try:
        widths = _leading_space_widths(o)        # `x` then ` [2×20×8]`, the caption's name then its words
        assert len(widths) >= 2 and min(widths) > 2, widths
    finally:
        o.page.close()


def test_an_svg_file_keeps_the_space_between_a_name_and_its_shape(browser, tmp_path):
    import torch  # noqa: F401
    out = tmp_path / "res.svg"
    r = subprocess.run([sys.executable, "-m", "cgviz", "torch", "sample_graphs/models/res_cnn.py", "-o", str(out), "-q"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert re.search(r">[^<]*x</text>\s*<text[^>]*>&#160;\[2×3×16×16\]</text>", out.read_text()), "x [2×3×16×16]"
    page = browser.new_page()
    try:
        page.goto(out.as_uri())
        o = type("SVG", (), {"js": lambda self, e, a=None: page.evaluate(e, a)})()
        widths = _leading_space_widths(o)
        assert len(widths) >= 3 and min(widths) > 2, widths
    finally:
        page.close()


# --- the toolbar -----------------------------------------------------------------------------------

def bar_lines(page) -> int:
    """How many lines the toolbar's visible controls take."""
    return page.evaluate("""() => { const tops = [...document.querySelectorAll('#bar > *')]
        .filter(e => e.offsetParent !== null).map(e => { const r = e.getBoundingClientRect(); return r.top + r.height / 2; });
        return new Set(tops.map(t => Math.round(t / 20))).size; }""")


@pytest.mark.parametrize("which", ["pizza", "train"])
def test_the_toolbar_is_one_line_at_1600_px(browser, pizza_html, train_html, which):
    o = Opened(browser, pizza_html if which == "pizza" else train_html)
    try:
        o.page.set_viewport_size({"width": 1600, "height": 900})
        assert bar_lines(o.page) == 1
        assert o.page.locator("#bar .title").bounding_box()["width"] > 100      # the title still shows
        o.page.click("#step")                                    # the stepper's words do not widen it
        assert o.page.inner_text("#step-info") and bar_lines(o.page) == 1
        o.page.set_viewport_size({"width": 700, "height": 900})
        assert bar_lines(o.page) > 1                              # a narrow window wraps it: the test can fail
    finally:
        o.page.close()


def test_a_picture_readable_whole_opens_whole(pizza):
    """The first view zooms in only when the whole picture's labels are too small to read (see
    test_drill_page for a big model): the pizza graph opens whole, with no note."""
    assert pizza.js("window.cgviz.fitFont") >= 9
    home = pizza.js("document.querySelector('#graph svg').dataset.home")
    assert [float(v) for v in pizza.view_box().split()] == pytest.approx([float(v) for v in home.split()])
    assert pizza.page.locator("#view-note").is_hidden()


def test_a_page_with_chinese_names_steps_as_the_slides_do(browser, tmp_path):
    # issue 28: names in any script on the page, and the slides (cgviz.view.slides) walk its stepper's order
    from cgviz.route.expression import evaluate
    from cgviz.view import slides
    from cgviz.view.html import edge_key
    o = Opened(browser, _render(tmp_path, "render", "sample_graphs/pizza_zh.cg"))
    try:
        order, infos = _step_through(o, "损失")
        r = evaluate((ROOT / "sample_graphs" / "pizza_zh.cg").read_text(encoding="utf-8"), "pizza_zh.cg")
        keys = [edge_key(s.src, s.dst) for s in slides.steps(r.graph, r.run)]
        assert [k for k in order if k in keys] == keys and len(keys) == 4
        step_of = dict(zip(order, infos))
        assert "∂损失/∂θ = 4000" in step_of[keys[2]] and "∂损失/∂重量 = 10" in step_of[keys[3]]
        o.node("θ").click()
        assert "∂损失/∂θ" in o.page.locator("#panel").inner_text()
    finally:
        assert o.errors == [], f"script errors on the page: {o.errors}"
        o.page.close()
