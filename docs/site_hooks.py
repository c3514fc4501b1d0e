"""mkdocs hook: builds the site from a copy of the checkout's pages laid out as in the checkout."""

from __future__ import annotations

import shutil
from pathlib import Path

# What the pages link to, folders included: README.md is the site's front page (mkdocs takes a
# README.md for index.md), and docs/*.md reach it as ../README.md, which mkdocs could not follow out
# of a docs_dir of docs/.
PAGES = ["README.md", "CONTRIBUTING.md", "BENCHMARKS.md", "LICENSE", "docs", "tests/test_layers.py"]


def on_config(config):
    root = Path(config.config_file_path).parent
    # beside the site (build/site-src), so that `mkdocs build -d elsewhere` writes nothing in the checkout
    stage = Path(config.site_dir).parent / "site-src"
    shutil.rmtree(stage, ignore_errors=True)
    for name in PAGES:
        src, dst = root / name, stage / name
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, dst)
    config.docs_dir = str(stage)
    return config
