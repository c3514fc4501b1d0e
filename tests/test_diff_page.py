"""The side-by-side diff page (`cgviz diff A B -o x.html`) in Debian's chromium driven by Playwright:
a click on a node in one panel selects its counterparts in the others and says why they match; on a model
with nested modules a click on a module's box opens it in all three panels, the breadcrumbs and Back go
up again, and the page opens at (the first-divergence line jumps to) the level that draws the change."""

from __future__ import annotations

from pathlib import Path

import pytest

import cgviz
from test_html import browser  # noqa: F401  (the one browser fixture: system chromium, fails on CI when missing)

ONE = "input x = 3\nparam w = 0.5\nz = w * x\nh = sigmoid(z)\nloss L = h^2\n"
TWO = "input x = 3\nparam w = 0.5\nz = w * x\nh = relu(z)\ns = h + 1\nloss L = s^2\n"


def _open(browser, path: Path):
    page = browser.new_page(viewport={"width": 1400, "height": 800})
    errors, requests = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(path.as_uri())
    page.wait_for_function("() => window.cgvizDiff")
    return page, errors, requests


def _selected(page, pane: str) -> list[str]:
    return page.evaluate(f"""() => [...document.querySelectorAll('#pane-{pane} g.node.sel')]
                               .map(g => g.querySelector('title').textContent)""")


def test_a_click_in_one_panel_selects_the_counterparts_in_the_others(browser, tmp_path, cli):
    (tmp_path / "a.cg").write_text(ONE)
    (tmp_path / "b.cg").write_text(TWO)
    r = cli("diff", tmp_path / "a.cg", tmp_path / "b.cg", "-o", tmp_path / "d.html")
    assert r.exit_code == 1
    page, errors, requests = _open(browser, tmp_path / "d.html")
    assert [h.strip() for h in page.locator("section.pane h2").all_inner_texts()] == \
        [f"A: {tmp_path / 'a.cg'}", "difference", f"B: {tmp_path / 'b.cg'}"]
    assert page.locator("#crumbs").inner_text().strip() == ""      # a program has no modules to drill into
    page.locator('#pane-a g.node:has(title:text-is("h"))').click()
    assert _selected(page, "a") == ["h"] and _selected(page, "b") == ["h"] and _selected(page, "diff") == ["h"]
    assert "op sigmoid → relu" in page.locator("#info").inner_text()
    # a node only B has: nothing in A
    page.locator('#pane-b g.node:has(title:text-is("s"))').click()
    assert _selected(page, "a") == [] and _selected(page, "diff") == ["s"]
    assert "s: added" in page.locator("#info").inner_text()
    assert not errors and all(u.startswith("file:") for u in requests)


def test_a_module_box_and_a_parameter_box_select_what_they_hold(browser, tmp_path):
    import torch  # noqa: F401
    model = tmp_path / "net.py"
    model.write_text("import torch, torch.nn as nn\ndef build():\n    torch.manual_seed(0)\n"
                     "    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))\n")
    c = cgviz.compare(f"{model}:build", f"{model}:build", input_shape="3,4", b_options={"seed": 1})
    c.save(tmp_path / "m.html")
    page, errors, _ = _open(browser, tmp_path / "m.html")
    page.locator('#pane-a g.node:has(title:text-is("0/params"))').click()
    assert _selected(page, "b") == ["0/params"] and sorted(_selected(page, "diff")) == ["0.bias", "0.weight"]
    assert not errors
    # the same run twice: every module is one grey box in all three panels, and a click opens it in all three
    same = cgviz.compare(f"{model}:build", f"{model}:build", input_shape="3,4")
    same.save(tmp_path / "same.html")
    page, errors, _ = _open(browser, tmp_path / "same.html")
    assert _titles(page, "a") == _titles(page, "diff") == _titles(page, "b") and "module:0" in _titles(page, "a")
    page.locator('#pane-diff g.node:has(title:text-is("module:0"))').click()
    assert page.evaluate("() => window.cgvizDiff.level") == "0"
    for pane in ("a", "diff", "b"):
        assert {"0.weight", "0.bias", "0/linear"} <= set(_titles(page, pane)), pane
    assert not errors


def _titles(page, pane: str) -> list[str]:
    return page.evaluate(f"""() => [...document.querySelectorAll('#pane-{pane} g.node')]
                               .map(g => g.querySelector('title').textContent)""")


# A GPT-like stack (three blocks, each a layer norm, an attention stand-in and an MLP) and a copy whose
# last block's MLP output bias moved: values change from there on, gradients nowhere (the head is
# linear and the loss a sum), so everything before it is unchanged.
GPT = """import torch, torch.nn as nn
class Block(nn.Module):
    def __init__(self, d):
        super().__init__()
        self.ln = nn.LayerNorm(d)
        self.attn = nn.Linear(d, d)
        self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))
    def forward(self, x):
        x = x + self.attn(self.ln(x))
        return x + self.mlp(x)
class GPT(nn.Module):
    def __init__(self, d=4, layers=3):
        super().__init__()
        self.blocks = nn.ModuleList(Block(d) for _ in range(layers))
        self.head = nn.Linear(d, 2)
    def forward(self, x):
        for b in self.blocks:
            x = b(x)
        return self.head(x)
def build():
    torch.manual_seed(0)
    return GPT()
def perturbed():
    m = build()
    with torch.no_grad():
        m.blocks[2].mlp[2].bias.add_(0.5)
    return m
"""


@pytest.fixture(scope="module")
def gpt_page(tmp_path_factory):
    import torch  # noqa: F401
    tmp = tmp_path_factory.mktemp("gpt")
    (tmp / "gpt.py").write_text(GPT)
    # a small box budget, so that the model's top level cannot show the change: it is a GPT-2 in miniature
    c = cgviz.compare(f"{tmp / 'gpt.py'}:build", f"{tmp / 'gpt.py'}:perturbed", input_shape="2,4", max_nodes=8)
    assert c.first_divergence.id == "blocks.2.mlp.2/linear"
    return c.save(tmp / "gpt.html")


def _crumbs(page) -> str:
    return page.locator("#crumbs").inner_text().strip()


def test_a_big_model_opens_where_it_changed_and_drills_down_in_all_panels(browser, gpt_page):
    page, errors, requests = _open(browser, gpt_page)
    level = lambda: page.evaluate("() => window.cgvizDiff.level")      # noqa: E731
    # opened at the shallowest level that draws the first divergence as itself, not at the top
    assert level() == "blocks.2.mlp.2" and _crumbs(page) == "model › blocks.2 › mlp.2"
    for pane in ("a", "diff", "b"):
        assert "blocks.2.mlp.2/linear" in _titles(page, pane), pane
    assert page.locator('#pane-diff g.node:has(title:text-is("blocks.2.mlp.2/linear"))').text_content().count("first divergence")
    # back to the top: untouched blocks are grey boxes, in every panel
    page.locator("#crumbs a", has_text="model").click()
    assert level() == ""
    for pane in ("a", "diff", "b"):
        assert {"module:blocks.0", "module:blocks.1", "module:blocks.2"} <= set(_titles(page, pane)), pane
    # a click on an untouched block opens it in all three panels
    page.locator('#pane-a g.node:has(title:text-is("module:blocks.0"))').click()
    assert level() == "blocks.0" and _crumbs(page) == "model › blocks.0"
    for pane in ("a", "diff", "b"):
        assert {"module:blocks.0.ln", "module:blocks.0.attn", "module:blocks.0.mlp"} <= set(_titles(page, pane)), pane
        assert not [t for t in _titles(page, pane) if t.startswith("blocks.1")], pane
    page.locator('#pane-b g.node:has(title:text-is("module:blocks.0.mlp"))').click()
    assert level() == "blocks.0.mlp" and _crumbs(page) == "model › blocks.0 › mlp"
    page.go_back()                  # the browser's Back goes up a level too, and Forward down again
    page.wait_for_function("() => window.cgvizDiff.level === 'blocks.0'")
    page.go_forward()
    page.wait_for_function("() => window.cgvizDiff.level === 'blocks.0.mlp'")
    assert "blocks.0.mlp.1/gelu" in _titles(page, "diff")
    # a node selected in one panel is selected in the others at this level, and stays selected as
    # its module's box one level up
    page.locator('#pane-diff g.node:has(title:text-is("blocks.0.mlp.1/gelu"))').click()
    assert _selected(page, "a") == _selected(page, "b") == ["blocks.0.mlp.1/gelu"]
    page.locator("#crumbs a", has_text="blocks.0").click()
    assert level() == "blocks.0"
    for pane in ("a", "diff", "b"):
        assert _selected(page, pane) == ["module:blocks.0.mlp"], pane
    # the summary's first-divergence line lands on that node, selected in all three panels
    page.locator("a.goto").click()
    assert level() == "blocks.2.mlp.2"
    for pane in ("a", "diff", "b"):
        assert _selected(page, pane) == ["blocks.2.mlp.2/linear"], pane
    assert "blocks.2.mlp.2/linear: numbers" in page.locator("#info").inner_text()
    assert not errors and all(u.startswith("file:") for u in requests)
    # a link to one level opens the page there
    linked = browser.new_page()
    linked.goto(gpt_page.as_uri() + "#blocks.0.mlp")
    linked.wait_for_function("() => window.cgvizDiff")
    assert linked.evaluate("() => window.cgvizDiff.level") == "blocks.0.mlp"
    assert "blocks.0.mlp.1/gelu" in _titles(linked, "a")
