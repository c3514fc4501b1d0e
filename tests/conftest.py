"""Shared fixtures: where the samples are, and a helper that runs the CLI in-process."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

ROOT = Path(__file__).resolve().parent.parent
# pytester runs the graph_snapshot plugin on example projects; the plugin itself is cgviz's pytest11
# entry point, named here too so a checkout whose installed metadata predates it still has it
pytest_plugins = ["pytester", "cgviz.pytest_plugin"]
SAMPLES = sorted((ROOT / "sample_graphs").glob("*.cg"))


def pytest_sessionstart(session):
    # Tests that draw skip without Graphviz on a developer's machine; on CI `make test` installs it,
    # so its absence there is a broken set-up, not a reason to skip.
    if os.environ.get("CI") and shutil.which("dot") is None:
        raise pytest.UsageError("Graphviz's `dot` is missing on CI: `make test` should have installed it")


@pytest.fixture
def cli():
    """cli("render", "x.cg", ...) → click Result, with stdout and stderr kept apart."""
    from cgviz.cli import main

    runner = CliRunner()

    def invoke(*args, input=None):
        return runner.invoke(main, [str(a) for a in args], input=input, catch_exceptions=False)

    return invoke


@pytest.fixture
def pizza_text() -> str:
    return (ROOT / "sample_graphs" / "pizza.cg").read_text()


@pytest.fixture
def here(tmp_path, monkeypatch):
    """A fresh working folder, made the current one (commands write their default outputs there)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def named_layers_model(names) -> str:
    """A model file whose Linear layers are called `names` in turn (hostile names, for label tests)."""
    return ("import torch, torch.nn as nn\n"
            f"NAMES = {list(names)!r}\n"
            "class M(nn.Module):\n"
            "    def __init__(s):\n"
            "        super().__init__()\n"
            "        for n in NAMES:\n"
            "            s.add_module(n, nn.Linear(2, 2))\n"
            "    def forward(s, x):\n"
            "        for n in NAMES:\n"
            "            x = getattr(s, n)(x)\n"
            "        return x\n"
            "model = M()\nexample_inputs = (torch.ones(1, 2),)\n")
