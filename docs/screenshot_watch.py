"""Regenerate docs/watch_page.png, the README's picture of a recorded run's page (`make docs`).

Trains the deep sigmoid MLP of tests/watch_models.py for 60 SGD steps under `cgviz.watch` (every 2nd
step recorded), renders the record with `cgviz render run.cgw -o run.html`, opens the page in
Debian's chromium through Playwright, clicks the heatmap cell of the first layer at step 10 (the
slider moves there and the layer's box opens in the panel), and saves a 1600×1000 screenshot
(palette-quantised when needed to stay under 400 KB).

    python docs/screenshot_watch.py [OUT.png]
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

from screenshot_html import write_png  # docs/ is on sys.path when this script runs

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
MAX_BYTES = 400 * 1024


def record(path: Path) -> None:
    import torch

    import cgviz
    sys.path.insert(0, str(ROOT / "tests"))
    from watch_models import loop, sigmoid_mlp
    model, x, y, loss_fn = sigmoid_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    with cgviz.watch(model, path, every=2, loss=lambda out: loss_fn(out, y)) as w:
        loop(model, x, y, loss_fn, opt, 60, w)


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        run, page_file = Path(tmp) / "run.cgw", Path(tmp) / "run.html"
        record(run)
        subprocess.run([sys.executable, "-m", "cgviz", "render", str(run), "-o", str(page_file), "--quiet"],
                       cwd=ROOT, check=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1600, "height": 1000})
            page.goto(page_file.as_uri())
            page.wait_for_function("() => window.cgviz && window.cgviz.watch")
            page.evaluate("() => { window.cgviz.watch.setStep(5); window.cgviz.watch.selectLayer(0, true); }")
            page.locator("#panel").wait_for(state="visible")
            png = page.screenshot()
            browser.close()

    write_png(png, out, MAX_BYTES)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "docs" / "watch_page.png")
