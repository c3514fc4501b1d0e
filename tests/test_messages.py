"""Issue 16, round 2: what cgviz says. Python warnings never leak with their file paths, advice never
suggests what is already in effect, a damaged file is called damaged (never "add --trust"), the
page's data keys match the SVG's titles for any id, and every model path without PyTorch says how
to install it."""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest

from conftest import named_layers_model

ROOT = Path(__file__).resolve().parent.parent
PIZZA = ROOT / "sample_graphs" / "pizza.cg"
SVG = "{http://www.w3.org/2000/svg}"
# how Python prints a warning: `/path/file.py:123: UserWarning: …`
LEAK = re.compile(r"\.py:\d+|\w+Warning:")

needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz: `make test` installs it")


def cgviz(args, cwd, env=None, **kw) -> subprocess.CompletedProcess:
    env = {**os.environ, **(env or {}), "PYTHONPATH": os.pathsep.join(
        [str(ROOT)] + ([env["PYTHONPATH"]] if env and "PYTHONPATH" in env else []))}
    env.pop("CGVIZ_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "cgviz", *map(str, args)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, **kw)


def no_leak(p: subprocess.CompletedProcess) -> None:
    assert not LEAK.search(p.stderr), p.stderr
    assert "Traceback" not in p.stderr, p.stderr


# ---------------------------------------------------------------- 1. warnings that leak


def test_a_huge_learning_rate_leaks_no_numpy_warning(tmp_path):
    p = cgviz(["train", PIZZA, "--lr", "1e308", "--steps", "3", "-q", "-o", "t.dot", "--curve", "c.png"], tmp_path)
    no_leak(p)
    assert "step 1 made w infinite" in p.stderr          # cgviz's own words on what happened stay


@pytest.mark.parametrize("program", ["param w = 0\nloss L = abs(w) * 1e308\n",
                                     "param w = [0, 1]\nloss L = sum(relu(w) * 1.7e308)\n",
                                     "param w = [1, -1]\nloss L = sum(log(w) + sqrt(w))\n"])
def test_check_on_overflow_and_nan_leaks_no_warning(tmp_path, program):
    (tmp_path / "p.cg").write_text(program)
    p = cgviz(["check", "p.cg"], tmp_path)
    no_leak(p)
    assert p.returncode in (0, 1) and "gradient" in p.stdout


def test_the_filter_keeps_what_a_user_can_act_on(capsys):
    import warnings

    import numpy as np

    from cgviz.core.pywarnings import captured
    lines = []
    with captured(lines.append):
        # NumPy's overflow, raised in cgviz's own arithmetic (cgviz explains NaN and inf itself) …
        warnings.warn_explicit("overflow encountered in multiply", RuntimeWarning,
                               str(ROOT / "cgviz" / "train.py"), 73)
        warnings.warn("old API", DeprecationWarning)                # for developers
        warnings.warn("Detected pickle protocol 4 in the checkpoint")   # torch's loader
        warnings.warn("your model is\nexperimental")                # the user's own: kept, one line
        warnings.warn("your model is\nexperimental")                # once
        with np.errstate(over="warn"):
            np.float64(1e308) * 10          # … but in the caller's own code it is the caller's to see
    assert lines == ["warning: your model is experimental", "warning: overflow encountered in scalar multiply"]
    assert capsys.readouterr().err == ""


# ---------------------------------------------------------------- 2. advice that fits what was asked


def fake_dot(folder: Path, body: str) -> dict:
    folder.mkdir(exist_ok=True)
    exe = folder / "dot"
    exe.write_text("#!/bin/sh\n" + body + "\n")
    exe.chmod(0o755)
    return {"PATH": f"{folder}{os.pathsep}{os.environ['PATH']}"}


def test_the_timeout_suggests_svg_only_for_a_png(tmp_path):
    env = fake_dot(tmp_path / "bin", "sleep 30")
    for out, svg_hint in (("x.svg", False), ("x.html", False), ("x.png", True)):
        p = cgviz(["render", PIZZA, "-o", out, "--timeout", "0.5"], tmp_path, env)
        assert p.returncode == 1 and "within 0.5 s" in p.stderr and "--format dot" in p.stderr
        assert ("--format svg" in p.stderr) == svg_hint, (out, p.stderr)


def _chain(n: int) -> str:
    return "\n".join(["input x = 1"] + [f"h{i} = {'h' + str(i - 1) if i else 'x'} * 1" for i in range(n)]) + "\n"


def test_the_png_refusal_suggests_rankdir_tb_only_when_it_is_lr():
    from cgviz.view import graphviz as render
    from cgviz.core.errors import CgvizError
    from cgviz.core.spelling import command_line
    err = b"Warning: graph is too large for cairo-renderer bitmaps. Scaling by 0.1 to fit"
    with command_line(), pytest.raises(CgvizError) as lr:
        render._check_cairo_scale(err, 10, "", "LR")
    with command_line(), pytest.raises(CgvizError) as tb:
        render._check_cairo_scale(err, 10, "", "TB")
    assert "--rankdir TB" in str(lr.value) and "--rankdir" not in str(tb.value)
    assert "--format svg" in str(tb.value)
    # the same refusal from Python names what a Python caller writes
    with pytest.raises(CgvizError) as py:
        render._check_cairo_scale(err, 10, "", "LR")
    assert "rankdir='TB'" in str(py.value) and ".svg() or .pdf()" in str(py.value) and "--" not in str(py.value)


@needs_dot
def test_the_png_refusal_reads_the_direction_the_picture_has(tmp_path):
    (tmp_path / "long.cg").write_text(_chain(300))
    tall = cgviz(["render", "long.cg", "-o", "long.png", "--rankdir", "TB"], tmp_path)
    wide = cgviz(["render", "long.cg", "-o", "long.png", "--rankdir", "LR"], tmp_path)
    assert wide.returncode == 1 and "--rankdir TB" in wide.stderr
    assert "--rankdir TB" not in tall.stderr


@needs_dot
def test_a_name_too_long_for_graphviz_is_a_clear_message(tmp_path):
    name = "w" * 100_000
    (tmp_path / "n.cg").write_text(f"param {name} = 1\nloss L = {name} * 2\n")
    p = cgviz(["render", "n.cg", "-o", "n.svg"], tmp_path)
    assert p.returncode == 1 and "too long for Graphviz" in p.stderr and "--format json" in p.stderr
    assert "syntax error" not in p.stderr and len(p.stderr) < 500
    assert cgviz(["render", "n.cg", "-f", "json", "-o", "n.json"], tmp_path).returncode == 0


# ---------------------------------------------------------------- 2. loader messages (torch)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import torch
    d = tmp_path_factory.mktemp("files")
    lin = torch.nn.Linear(4, 2)
    for proto in (4, 5):
        torch.save(lin.state_dict(), d / f"sd{proto}.pt", pickle_protocol=proto)
        torch.save((torch.ones(3, 4),), d / f"in{proto}.pt", pickle_protocol=proto)
        torch.save(lin, d / f"mod{proto}.pt", pickle_protocol=proto)
    r = random.Random(1)
    for proto in (2, 4):
        (d / f"rand{proto}.pt").write_bytes(bytes([0x80, proto]) + bytes(r.randrange(256) for _ in range(300)))
    (d / "lin.py").write_text("import torch\nmodel = torch.nn.Linear(4, 2)\nexample_inputs = (torch.ones(3, 4),)\n")
    m = torch.nn.Sequential(torch.nn.Linear(4, 2)).eval()
    torch.export.save(torch.export.export(m, (torch.randn(3, 4),)), d / "m.pt2")
    return d


@pytest.mark.parametrize("proto", [4, 5])
def test_protocol_4_and_5_files_are_explained_without_leaked_warnings(files, proto):
    for args in (["torch", f"sd{proto}.pt"], ["torch", "lin.py", "--weights", f"sd{proto}.pt"],
                 ["torch", "lin.py", "--input", f"in{proto}.pt"]):
        p = cgviz([*args, "--format", "dot", "-o", "-"], files)
        no_leak(p)
        assert p.returncode == 1 and f"pickle protocol {proto}" in p.stderr, p.stderr
        assert "--trust" not in p.stderr.split("cgviz torch reads")[0] and "pickled code" not in p.stderr
    # a pickled module in the same protocol is what it is: code, which only --trust runs
    p = cgviz(["torch", f"mod{proto}.pt", "--format", "dot", "-o", "-"], files)
    no_leak(p)
    assert p.returncode == 1 and "torch.nn.modules.linear.Linear" in p.stderr and "add --trust" in p.stderr


@pytest.mark.parametrize("name", ["rand2.pt", "rand4.pt"])
def test_random_bytes_after_a_pickle_header_are_damaged_not_trusted(files, name):
    for args in (["torch", name], ["torch", "lin.py", "--weights", name], ["torch", "lin.py", "--input", name]):
        p = cgviz([*args, "--format", "dot", "-o", "-"], files)
        no_leak(p)
        assert p.returncode == 1 and "not a valid pickle" in p.stderr and "--trust" not in p.stderr.split(
            "cgviz torch reads")[0], p.stderr


def test_scan_pickle_reads_protocol_4_names_through_the_memo():
    import pickle

    from cgviz.pytorch.load import scan_pickle
    # the second function's module name is not written again: a BINGET fetches it from the memo
    data = pickle.dumps([os.path.join, os.path.split, zipfile.ZipFile], protocol=4)
    scan = scan_pickle(data)
    assert scan.valid and scan.protocol == 4
    mod = os.path.join.__module__
    assert scan.globals == [f"{mod}.join", f"{mod}.split", "zipfile.ZipFile"]
    assert not scan_pickle(data[:-5]).valid


def test_a_corrupted_export_archive_names_its_damaged_member(files, tmp_path):
    from cgviz.core.errors import CgvizError
    from cgviz.pytorch.load import load_model
    src = files / "m.pt2"
    bad = tmp_path / "bad.pt2"
    with zipfile.ZipFile(src) as z, zipfile.ZipFile(bad, "w") as out:
        for info in z.infolist():
            out.writestr(info, z.read(info.filename))
    data = bytearray(bad.read_bytes())
    with zipfile.ZipFile(bad) as z:
        info = z.getinfo(next(n for n in z.namelist() if n.endswith("models/model.json")))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    data[start + 5] ^= 0xFF                     # one byte of the program's JSON
    bad.write_bytes(bytes(data))
    with pytest.raises(CgvizError) as e:
        load_model(str(bad))
    msg = str(e.value)
    assert "models/model.json is damaged" in msg and "newer PyTorch" not in msg and "warnings above" not in msg


def test_newer_pytorch_only_when_the_archive_says_so(files, tmp_path):
    from cgviz.core.errors import CgvizError
    from cgviz.pytorch.load import load_model

    def with_version(value: bytes) -> Path:
        out_path = tmp_path / f"v{value.decode()}.pt2"
        with zipfile.ZipFile(files / "m.pt2") as z, zipfile.ZipFile(out_path, "w") as out:
            for info in z.infolist():
                out.writestr(info, value if info.filename.endswith("archive_version") else z.read(info.filename))
        return out_path
    with pytest.raises(CgvizError, match="version 9, newer than the 0 this PyTorch reads"):
        load_model(str(with_version(b"9")))
    assert load_model(str(with_version(b"0"))).kind == "export"


# ---------------------------------------------------------------- 3. the page's keys match the SVG


def _titles_and_data(page: str):
    data = json.loads(re.search(r'id="cgviz-data">(.*?)</script>', page, re.S).group(1))
    if data.get("levels"):          # a model's drill-down page: the inline picture is its first level
        data = data["levels"][data["root"]]
    root = ET.fromstring(re.search(r"<svg.*</svg>", page, re.S).group(0))
    titles = {cls: [g.find(SVG + "title").text for g in root.iter(SVG + "g") if g.get("class") == cls]
              for cls in ("node", "edge")}
    return titles, data


@needs_dot
def test_every_node_of_the_page_has_its_panel_whatever_its_id(tmp_path):
    import torch  # noqa: F401
    names = ['a"b<c>{d}|e\\f', "back\\slash", "\\N \\G", "é∂😀", "new\nline", "q'uote"]
    (tmp_path / "names.py").write_text(named_layers_model(names))
    p = cgviz(["torch", "names.py", "--no-fold", "-o", "p.html"], tmp_path)
    assert p.returncode == 0, p.stderr
    titles, data = _titles_and_data((tmp_path / "p.html").read_text())
    assert any("\\" in t for t in titles["node"])
    assert set(titles["node"]) == set(data["nodes"])
    assert data["order"] and set(data["order"]) <= set(titles["edge"])


def test_svg_key_is_what_graphviz_writes_in_a_title():
    if shutil.which("dot") is None:
        pytest.skip("needs Graphviz")
    from cgviz.view.markup import quote
    from cgviz.view.html import svg_key
    ids = ["a\\b", 'c"d', "e\\\\f", "\\N", 'g\\"h', "é∂😀", "x->y", "new\nline"]
    dot = "digraph {\n" + "\n".join(f"  {quote(i)}" for i in ids) + "\n}\n"
    svg = subprocess.run(["dot", "-Tsvg"], input=dot.encode(), capture_output=True, check=True).stdout
    titles = [g.find(SVG + "title").text for g in ET.fromstring(svg).iter(SVG + "g") if g.get("class") == "node"]
    assert titles == [svg_key(i) for i in ids]


# ---------------------------------------------------------------- 4. without the torch extra

BLOCK = '''import sys
class _NoTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, _NoTorch())
'''


def test_every_model_path_without_torch_says_how_to_install_it(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BLOCK)
    env = {"PYTHONPATH": str(site)}
    (tmp_path / "lin.py").write_text("import torch\nmodel = torch.nn.Linear(2, 1)\n")
    (tmp_path / "m.pt2").write_bytes(b"PK\x05\x06" + bytes(18))
    (tmp_path / "cgviz.toml").write_text('[[entry]]\nname = "lin"\nmodel = "lin.py"\n')
    probe = cgviz(["check", PIZZA], tmp_path, env)       # the blocker works: check says torch is missing
    assert probe.returncode == 0 and "PyTorch is not installed" in probe.stdout, probe.stderr
    for args in (["torch", "lin.py"], ["torch", "m.pt2", "-f", "dot", "-o", "-"], ["check", "lin.py"],
                 ["grads", "lin.py", "--no-plots"], ["snapshot", "cgviz.toml", "--golden", "g", "--out", "o"]):
        p = cgviz(args, tmp_path, env)
        assert p.returncode == 1, (args, p.returncode, p.stderr)
        assert "needs PyTorch" in p.stderr + p.stdout and "pip install 'cgviz-backprop[torch]'" in p.stderr + p.stdout, args
        assert "internal error" not in p.stderr and "Traceback" not in p.stderr
    # expression files still work without torch
    assert cgviz(["grads", PIZZA, "--no-plots"], tmp_path, env).returncode == 0


def test_require_torch_is_a_user_error():
    from cgviz.core.errors import CgvizError
    from cgviz.core.needs import TorchMissing
    assert issubclass(TorchMissing, CgvizError) and TorchMissing("x").exit_code == 1
