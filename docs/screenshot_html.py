"""Regenerate docs/html_pizza.png, the README's picture of the interactive page (`make docs`).

Renders sample_graphs/pizza.cg with `--format html`, opens it in Debian's chromium through
Playwright (no `playwright install`: the system browser at /usr/bin/chromium is used), steps the
backward pass until the gradient reaches w, clicks w so the side panel shows its value, gradient and
chain rule, and saves a 1280×720 screenshot (palette-quantised when needed to stay under 250 KB).

    python docs/screenshot_html.py [OUT.png]
"""

from __future__ import annotations

import io
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
MAX_BYTES = 250 * 1024


def write_png(png: bytes, out: Path, max_bytes: int = MAX_BYTES) -> None:
    """Write a page screenshot, palette-quantised when over `max_bytes` (shared by the docs' screenshot scripts)."""
    from PIL import Image
    if len(png) > max_bytes:  # a flat UI in a few colours: a 256-colour palette loses nothing visible
        img = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256)
        buf = io.BytesIO()
        img.save(buf, "PNG", optimize=True)
        png = buf.getvalue()
    if len(png) > max_bytes:
        raise SystemExit(f"screenshot is {len(png) // 1024} KB, more than {max_bytes // 1024} KB")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_bytes(png)
    print(f"wrote {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out} ({len(png) // 1024} KB)")


def main(out: Path) -> None:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "pizza.html"
        subprocess.run([sys.executable, "-m", "cgviz", "render", "sample_graphs/pizza.cg",
                        "--format", "html", "-o", str(page_file), "--quiet"], cwd=ROOT, check=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(page_file.as_uri())
            page.wait_for_function("() => window.cgviz && window.cgviz.backwardOrder")
            # step backward until the edge carrying ∂L/∂w is the active one
            order = page.evaluate("() => window.cgviz.backwardOrder")
            for key in order:
                page.click("#step")
                if key == "w->z":
                    break
            page.click('#graph svg g.node[data-id="w"]')
            page.locator("#panel").wait_for(state="visible")
            png = page.screenshot()
            browser.close()

    write_png(png, out)


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else ROOT / "docs" / "html_pizza.png")
