"""Regenerate docs/drill_page.png, the README's picture of a model page drilled down (`make docs`).

Renders sample_graphs/models/tiny_llama.py with `--format html`, opens it in Debian's chromium through
Playwright (the system browser, no `playwright install`), opens the ×4 layers frame, then the
attention module inside it, chooses block 2 with the block slider, clicks its softmax so the panel
shows that block's numbers, and saves a 1280×720 screenshot (palette-quantised when over 250 KB).

    python docs/screenshot_drill.py [OUT.png]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from screenshot_html import write_png  # docs/ is on sys.path when this script runs

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
MAX_BYTES = 250 * 1024


def _open(page, level: str) -> None:
    """Click what opens `level`: a module's box, or the caption of its frame."""
    page.click("#fit")        # the first view is zoomed in to be read: show the whole level
    target = page.locator(f'#graph [data-opens="{level}"]').first
    if "cluster" in (target.get_attribute("class") or ""):
        target = target.locator("> text").first
    target.click()
    page.wait_for_function("k => window.cgviz.level === k", arg=level)


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "llama.html"
        subprocess.run([sys.executable, "-m", "cgviz", "torch", "sample_graphs/models/tiny_llama.py", "--loss", "ce",
                        "--format", "html", "-o", str(page_file), "--quiet"], cwd=ROOT, check=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(page_file.as_uri())
            page.wait_for_function("() => window.cgviz && window.cgviz.level === ''")
            _open(page, "layers.0")
            _open(page, "layers.0.self_attn")
            page.locator("#rep").fill("2")
            page.click("#fit")
            page.locator('#graph g.node[data-id="layers.0.self_attn/softmax"]').dispatch_event("click")   # small at fit
            page.locator("#panel").wait_for(state="visible")
            png = page.screenshot()
            browser.close()

    write_png(png, out, MAX_BYTES)


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT / "docs" / "drill_page.png")
