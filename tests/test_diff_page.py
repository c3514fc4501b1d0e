"""The side-by-side diff page (`cgviz diff A B -o x.html`) in Debian's chromium driven by Playwright:
a click on a node in one panel selects its counterparts in the others and says why they match."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import cgviz

CHROMIUM = Path("/usr/bin/chromium")
ONE = "input x = 3\nparam w = 0.5\nz = w * x\nh = sigmoid(z)\nloss L = h^2\n"
TWO = "input x = 3\nparam w = 0.5\nz = w * x\nh = relu(z)\ns = h + 1\nloss L = s^2\n"


def _unavailable(reason: str):
    if os.environ.get("CI"):
        pytest.fail(f"{reason} on CI: `make install` should have provided it", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        _unavailable(f"needs Debian's chromium at {CHROMIUM}")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("needs the playwright Python package (the `test` extra: `make install`)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        yield b
        b.close()


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
    page.locator('#pane-a g.node:has(title:text-is("h"))').click()
    assert _selected(page, "a") == ["h"] and _selected(page, "b") == ["h"] and _selected(page, "diff") == ["h"]
    assert "op sigmoid → relu" in page.locator("#info").inner_text()
    # a node only B has: nothing in A
    page.locator('#pane-b g.node:has(title:text-is("s"))').click()
    assert _selected(page, "a") == [] and _selected(page, "diff") == ["s"]
    assert "s: added" in page.locator("#info").inner_text()
    assert not errors and all(u.startswith("file:") for u in requests)


def test_a_module_box_and_a_parameter_box_select_what_they_hold(browser, tmp_path):
    pytest.importorskip("torch")
    model = tmp_path / "net.py"
    model.write_text("import torch, torch.nn as nn\ndef build():\n    torch.manual_seed(0)\n"
                     "    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2))\n")
    c = cgviz.compare(f"{model}:build", f"{model}:build", input_shape="3,4", b_options={"seed": 1})
    c.save(tmp_path / "m.html")
    page, errors, _ = _open(browser, tmp_path / "m.html")
    page.locator('#pane-a g.node:has(title:text-is("0/params"))').click()
    assert _selected(page, "b") == ["0/params"] and sorted(_selected(page, "diff")) == ["0.bias", "0.weight"]
    assert not errors
    # the same run twice: every module is one grey box in the difference, and selects what it holds
    same = cgviz.compare(f"{model}:build", f"{model}:build", input_shape="3,4")
    same.save(tmp_path / "same.html")
    page, errors, _ = _open(browser, tmp_path / "same.html")
    page.locator('#pane-diff g.node:has(title:text-is("module:0"))').click()
    assert sorted(_selected(page, "a")) == ["0/linear", "0/params"]
    assert not errors
