"""The docs as a static site: `mkdocs build --strict` (`make site`) builds every page, offline."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT

DOCS = sorted((ROOT / "docs").glob("*.md"))


def test_the_site_builds_strictly_from_the_checkouts_pages(tmp_path):
    site = tmp_path / "site"
    # --strict: a link to a missing page or to a heading a page lacks stops the build
    p = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
                        "-d", str(site)], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stdout + p.stderr
    index = (site / "index.html").read_text(encoding="utf-8")
    assert "The pizza example" in index and 'href="docs/commands/"' in index     # the README, its links as the site's
    for page in DOCS:
        assert (site / "docs" / page.stem / "index.html").exists(), page.name
    assert (site / "CONTRIBUTING" / "index.html").exists() and (site / "docs" / "pizza.png").exists()
    # the pages' "← README" links reach the front page
    assert '<a href="../../">← README' in (site / "docs" / "commands" / "index.html").read_text(encoding="utf-8")
    for html in site.rglob("*.html"):      # offline: no script or style is fetched from elsewhere
        assert not re.search(r'<(script|link)\b[^>]*\b(src|href)="(https?:)?//', html.read_text(encoding="utf-8")), html
