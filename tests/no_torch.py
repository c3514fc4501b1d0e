"""Run cgviz's CLI in a fresh process and assert it never imported torch (the DSL and record paths must not)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cli_without_torch(args: list[str], exit_code: int = 0) -> None:
    """`cgviz ARGS` in a new interpreter ends with `exit_code` and no torch module was imported."""
    code = ("import sys; from cgviz.cli import main\n"
            f"try:\n    main({[str(a) for a in args]!r})\n"
            f"except SystemExit as e:\n    assert (e.code or 0) == {exit_code}, e.code\n"
            "bad = [m for m in sys.modules if m == 'torch' or m.startswith('torch.')]\n"
            "assert not bad, bad[:5]\nprint('clean')")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0 and "clean" in r.stdout, r.stderr
