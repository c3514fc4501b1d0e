"""Installing cgviz keeps the pinned CPU torch: pip's own plan (`--dry-run --report`) in fresh venvs.

Why a plan and not an install: pip decides what to add from the metadata of what is installed and of
what the indexes offer; the files of the packages play no part. Installing the pinned torch for real
took 26 to 57 s here (900 MB unpacked, most of it the machine's disk and the other test worker), and
a fresh venv with its own pip 11 s, on top of the 20 to 70 s that pip spends resolving the extras.
So each venv is made `--without-pip` (pip runs from this environment, pointed at it with
`--python`), the Makefile's own torch line is run as a dry run, and what it would install is laid
into the venv as the installed metadata pip reads (`<name>-<version>.dist-info/METADATA`, written
from the report). If pip did not see that torch as installed, the extras' plan would list torch and
the test would fail, so the stand-in cannot make it pass on its own.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from conftest import ROOT

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
EXTRAS = sorted(PYPROJECT["project"]["optional-dependencies"])
DIST = PYPROJECT["project"]["name"]
# what the pinned CPU torch must never be joined or replaced by: another torch build, the packages
# that only come with one (torchvision, triton) and the CUDA libraries of a CUDA build
FORBIDDEN = re.compile(r"^(torch|torchvision|torchaudio|triton)$|^(nvidia|cuda)-")


# PYTHONPATH would reach the fresh venv's interpreter too (pip's --python reruns pip there), and what
# lies on it would count as installed: the venv must hold nothing but what the test lays in it.
CLEAN_ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONUSERBASE")}
CLEAN_ENV["PYTHONNOUSERSITE"] = "1"


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _make_lines(venv: Path) -> list[list[str]]:
    """The commands `make install` runs to build a venv at `venv` (`make -n`: printed, not run)."""
    p = subprocess.run(["make", "-n", "-B", f"VENV={venv}", f"{venv}/.cgviz-installed"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return [shlex.split(line) for line in p.stdout.splitlines() if line.strip() and not line.startswith("#")]


def _torch_line(venv: Path) -> list[str]:
    """The Makefile's `pip install <torch pin> ...` line, its arguments after `pip`."""
    pip = str(venv / "bin" / "pip")
    lines = [ln for ln in _make_lines(venv) if ln[:2] == [pip, "install"] and any(a.startswith("torch==") for a in ln)]
    assert len(lines) == 1, f"the Makefile should install torch in one `pip install torch==...` line: {lines}"
    return lines[0][1:]


def _fresh_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=120, env=CLEAN_ENV)
    return path


def _plan(venv: Path, args: list[str], tmp: Path, name: str) -> list[dict]:
    """What `pip install args` would install into `venv`: the report's entries (nothing is installed)."""
    report = tmp / f"{name}.json"
    args = [a for a in args if a not in ("--quiet", "-q")]
    cmd = [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), *args[:1],
           "--dry-run", "--report", str(report), *args[1:]]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=CLEAN_ENV)
    assert p.returncode == 0, f"$ {shlex.join(cmd)}\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return json.loads(report.read_text(encoding="utf-8"))["install"]


def _names(plan: list[dict]) -> dict[str, str]:
    return {_norm(e["metadata"]["name"]): e["metadata"]["version"] for e in plan}


def _lay_installed(venv: Path, plan: list[dict]) -> None:
    """Leave `plan`'s packages in `venv` as pip reads an installed package: its dist-info's METADATA."""
    purelib = subprocess.run([str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True, timeout=60, env=CLEAN_ENV).stdout.strip()
    for entry in plan:
        m = entry["metadata"]
        info = Path(purelib) / f"{re.sub(r'[-.]+', '_', m['name'])}-{m['version']}.dist-info"
        info.mkdir(parents=True)
        lines = [f"Metadata-Version: {m.get('metadata_version', '2.1')}", f"Name: {m['name']}", f"Version: {m['version']}"]
        if m.get("requires_python"):
            lines.append(f"Requires-Python: {m['requires_python']}")
        lines += [f"Requires-Dist: {r}" for r in m.get("requires_dist", [])]
        lines += [f"Provides-Extra: {e}" for e in m.get("provides_extra", [])]
        (info / "METADATA").write_text("\n".join(lines) + "\n", encoding="utf-8")
        (info / "INSTALLER").write_text("pip\n", encoding="utf-8")


@pytest.fixture
def checkout(tmp_path) -> Path:
    """The project as pip builds it, copied: building its metadata writes an egg-info into the tree."""
    src = tmp_path / "cgviz-src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "cgviz", src / "cgviz", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return src


def test_the_base_install_pulls_no_torch(tmp_path, checkout):
    plan = _names(_plan(_fresh_venv(tmp_path / "venv"), ["install", str(checkout)], tmp_path, "base"))
    assert _norm(DIST) in plan and "numpy" in plan           # the plan is cgviz's own, with its dependencies
    assert not [n for n in plan if FORBIDDEN.search(n)], f"the base install would add {sorted(plan)}"


def test_the_extras_keep_the_pinned_cpu_torch(tmp_path, checkout):
    venv = _fresh_venv(tmp_path / "venv")
    torch_args = _torch_line(venv)
    pin = next(a for a in torch_args if a.startswith("torch=="))
    # the Makefile's own line: the CPU index named, and here still the CPU build it pins
    assert "--extra-index-url" in torch_args and "https://download.pytorch.org/whl/cpu" in torch_args
    torch_plan = _plan(venv, torch_args, tmp_path, "torch")
    got = _names(torch_plan)
    assert got.get("torch") == pin.removeprefix("torch=="), got
    if sys.platform == "linux":
        assert got["torch"].endswith("+cpu"), got                # PyPI's linux wheel is the CUDA build
    assert not [n for n in got if FORBIDDEN.search(n) and n != "torch"], f"the torch line would add {sorted(got)}"

    _lay_installed(venv, torch_plan)
    request = f"{checkout}[{','.join(EXTRAS)}]"
    plan = _names(_plan(venv, ["install", request], tmp_path, "extras"))
    # every extra was asked for: each of its requirements is planned, or is the torch already there
    for extra in EXTRAS:
        for req in PYPROJECT["project"]["optional-dependencies"][extra]:
            name = _norm(re.match(r"[A-Za-z0-9_.-]+", req).group())
            assert name in plan or name in got, f"[{extra}] asks for {name}, which the plan lacks"
    bad = sorted(f"{n} {v}" for n, v in plan.items() if FORBIDDEN.search(n))
    assert not bad, f"installing {request} after the pinned torch would add {bad}"
