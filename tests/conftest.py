"""Shared fixtures: where the samples are, and a helper that runs the CLI in-process."""

from __future__ import annotations

import os
import shutil
import subprocess
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
    if not hasattr(session.config, "workerinput"):      # once, in the process that collects the results
        session.config.stash[_CHECKOUT_BEFORE] = _checkout_status()


# A test that writes a default output (`<stem>_loss.png`, `<stem>_grad_hist.png`) into the folder it
# was started from leaves it in the checkout, where `git add -A` commits it (two PNGs came in that
# way). The session compares `git status` before and after: a path that is new there fails the run.
_CHECKOUT_BEFORE = pytest.StashKey()
_CHECKOUT_NEW = pytest.StashKey()


def _checkout_status() -> set[str] | None:
    """`git status` of the checkout, one entry a path (ignored files left out), or None outside git."""
    if not (ROOT / ".git").exists():
        return None                                     # an unpacked sdist: no checkout to keep clean
    p = subprocess.run(["git", "--no-optional-locks", "status", "--porcelain", "-z", "--untracked-files=all"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise pytest.UsageError(f"git status failed in {ROOT}: {p.stderr.strip()}")
    return set(filter(None, p.stdout.split("\0")))


@pytest.hookimpl(tryfirst=True)
def pytest_sessionfinish(session):
    before = session.config.stash.get(_CHECKOUT_BEFORE, None)
    if before is None:
        return
    new = sorted(_checkout_status() - before)
    session.config.stash[_CHECKOUT_NEW] = new
    if new and session.exitstatus == pytest.ExitCode.OK:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def pytest_terminal_summary(terminalreporter, config):
    new = config.stash.get(_CHECKOUT_NEW, None)
    if new:
        terminalreporter.section("files the tests left in the checkout", red=True)
        terminalreporter.line("so the run fails; write them under tmp_path (or name the output with its option):")
        for entry in new:
            terminalreporter.line(f"  {entry}")


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
