"""The command line through click's CliRunner: outputs, formats, options, and what must never happen."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

PIZZA = ROOT / "sample_graphs" / "pizza.cg"
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz: `make test` installs it")


@needs_dot
def test_default_output_is_stem_png_in_the_current_folder(cli, here):
    r = cli("render", PIZZA)
    assert r.exit_code == 0, r.stderr
    png = (here / "pizza.png").read_bytes()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert "wrote" in r.stderr and "loss L = 100" in r.stderr


@needs_dot
@pytest.mark.parametrize("suffix, magic", [("png", b"\x89PNG"), ("svg", b"<?xml"), ("pdf", b"%PDF"),
                                           ("dot", b"digraph"), ("json", b"{")])
def test_format_follows_the_output_suffix(cli, here, suffix, magic):
    r = cli("render", PIZZA, "-o", f"sub/dir/g.{suffix}")
    assert r.exit_code == 0, r.stderr
    assert (here / "sub/dir" / f"g.{suffix}").read_bytes().startswith(magic)


@needs_dot
def test_png_is_a_real_picture(cli, here):
    from PIL import Image

    cli("render", PIZZA, "-o", "p.png")
    with Image.open(here / "p.png") as im:
        assert im.format == "PNG" and im.size[0] > 400 and im.size[1] > 100


def test_outputs_get_ordinary_permissions(cli, here):
    cli("render", PIZZA, "-o", "g.dot")
    old_umask = os.umask(0o022)
    os.umask(old_umask)
    assert (here / "g.dot").stat().st_mode & 0o777 == 0o666 & ~old_umask
    (here / "g.dot").chmod(0o640)
    cli("render", PIZZA, "-o", "g.dot")   # replacing keeps the file's mode
    assert (here / "g.dot").stat().st_mode & 0o777 == 0o640


def test_format_option_without_output(cli, here):
    r = cli("render", PIZZA, "--format", "json")
    assert r.exit_code == 0
    assert json.loads((here / "pizza.json").read_text())["loss"] == "L"


def test_stdout_and_stdin(cli, here, pizza_text):
    r = cli("render", "-", "--format", "dot", "-o", "-", input=pizza_text)
    assert r.exit_code == 0 and r.stdout.startswith("digraph cgviz {")
    assert "&lt;stdin&gt;" in r.stdout or "<stdin>" in r.stdout
    assert list(here.iterdir()) == []


def test_conflicting_format_and_suffix_is_a_usage_error(cli, here):
    r = cli("render", PIZZA, "-o", "x.png", "--format", "svg")
    assert r.exit_code == 2 and "--format is svg" in r.stderr
    r = cli("render", PIZZA, "-o", "x.bmp")
    assert r.exit_code == 2 and "cannot tell the format" in r.stderr


def test_set_changes_the_numbers(cli, here):
    r = cli("render", PIZZA, "--set", "w=0.1", "--set", "x=100", "--format", "json", "-o", "-")
    assert r.exit_code == 0, r.stderr
    nodes = {n["id"]: n for n in json.loads(r.stdout)["nodes"]}
    assert nodes["z"]["value"] == pytest.approx(10.0)
    # relu(10) - 90 = -80 → ∂L/∂a = -160, ∂L/∂w = -160 · 100
    assert nodes["w"]["grad"] == pytest.approx(-16000.0)


@pytest.mark.parametrize("args, code, text", [
    (["--set", "w"], 2, "NAME=VALUE"),
    (["--set", "q=1"], 1, "no declaration named 'q'"),
    (["--set", "z=1"], 1, "computed, not declared"),
    (["--set", "w=1", "--set", "w=2"], 2, "given twice"),
    (["--set", "w=[1,"], 1, "--set w"),
])
def test_bad_set(cli, here, args, code, text):
    r = cli("render", PIZZA, "--format", "dot", "-o", "out.dot", *args)
    assert r.exit_code == code and text in r.stderr, r.stderr
    assert "Traceback" not in r.stderr and not (here / "out.dot").exists()


def test_never_overwrites_its_input(cli, here):
    src = here / "p.dot"
    src.write_text(PIZZA.read_text())
    r = cli("render", src, "--format", "dot")
    assert r.exit_code == 2 and "never overwrites its input" in r.stderr
    assert src.read_text() == PIZZA.read_text()
    r = cli("render", src, "-o", src)
    assert r.exit_code == 2 and src.read_text() == PIZZA.read_text()


def test_a_failed_render_leaves_the_old_output_and_no_temporary_file(cli, here, monkeypatch):
    from cgviz.route import expression as pipeline
    from cgviz.core.errors import CgvizError

    (here / "g.png").write_bytes(b"old picture")

    def boom(*a, **k):
        raise CgvizError("Graphviz `dot -Tpng` failed (exit status 1): simulated")

    monkeypatch.setattr(pipeline, "run_dot", boom)
    r = cli("render", PIZZA, "-o", "g.png")
    assert r.exit_code == 1 and "simulated" in r.stderr
    assert (here / "g.png").read_bytes() == b"old picture"
    assert sorted(p.name for p in here.iterdir()) == ["g.png"]


def test_an_interrupted_render_leaves_nothing_behind(cli, here, monkeypatch):
    from cgviz.route import expression as pipeline

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "run_dot", interrupted)
    r = cli("render", PIZZA, "-o", "g.svg")
    assert r.exit_code == 130 and "interrupted" in r.stderr and list(here.iterdir()) == []


def test_missing_dot_says_how_to_install_and_text_formats_still_work(cli, here, monkeypatch):
    monkeypatch.setenv("PATH", str(here))  # no dot here
    r = cli("render", PIZZA, "-o", "g.png")
    assert r.exit_code == 1 and "apt-get install graphviz" in r.stderr and "--format dot" in r.stderr
    assert not (here / "g.png").exists()
    assert cli("render", PIZZA, "-o", "g.dot").exit_code == 0
    assert cli("render", PIZZA, "-o", "g.json").exit_code == 0


def test_unwritable_folder_is_a_clear_message(cli, here):
    if os.geteuid() == 0:
        # root writes anywhere; a path under a regular file fails the same way for everyone
        (here / "file").write_text("x")
        target = here / "file" / "g.dot"
    else:
        ro = here / "ro"
        ro.mkdir(mode=0o500)
        target = ro / "g.dot"
    r = cli("render", PIZZA, "-o", target)
    assert r.exit_code == 1 and "cannot write" in r.stderr and "Traceback" not in r.stderr


def test_missing_input_file(cli, here):
    r = cli("render", "nope.cg", "--format", "dot")
    assert r.exit_code == 1 and "nope.cg: no such file" in r.stderr


def test_no_grad_and_rankdir_reach_the_dot(cli, here):
    r = cli("render", PIZZA, "--no-grad", "--rankdir", "tb", "--format", "dot", "-o", "-")
    assert r.exit_code == 0 and 'rankdir="TB"' in r.stdout and "#c62828" not in r.stdout


def test_warnings_go_to_stderr_and_the_picture_is_still_made(cli, here):
    (here / "nan.cg").write_text("input x = -1\ny = log(x)\nloss L = y * 2\n")
    r = cli("render", "nan.cg", "--format", "dot")
    assert r.exit_code == 0
    assert "warning: nan.cg: line 2: log of a negative number" in r.stderr
    assert (here / "nan.dot").exists()


def test_ops_lists_every_function(cli):
    from cgviz.lang.ops import OPS

    r = cli("ops")
    assert r.exit_code == 0
    for name, d in OPS.items():
        if not d.internal:
            assert d.usage in r.stdout


def test_help_and_version(cli):
    assert "Example" in cli("render", "--help").stdout
    assert "0.1.0" in cli("--version").stdout


def test_python_dash_m_cgviz_works(here):
    p = subprocess.run([sys.executable, "-m", "cgviz", "render", str(PIZZA), "--format", "json", "-o", "-"],
                       capture_output=True, check=True)
    assert json.loads(p.stdout)["nodes"][1]["grad"] == 4000.0


# What a render of an expression file must not import, and why: start-up is most of its time (issue
# 17 holds `cgviz render` at 10x torchviz's; bench/bench_render.py measures it). Each module but
# torch was once imported by every render for one small thing, or never used by it: 1-5 ms each.
RENDER_NEVER_IMPORTS = {
    "torch": "the expression path never needs it (~2 s)",
    "lark": "the parser is Lark's stand-alone module (cgviz.lang.lalr)",
    "logging": "Lark's logger is set up on first use",
    "shutil": "dot is found by the system as it starts (and shutil brings bz2, lzma)",
    "tempfile": "write_atomic makes its own temporary name",
    "html": "html_text does html.escape's five replacements",
    "cgviz.plan.budget": "PNG budgets are for PNGs of models; the help states its one number",
    "cgviz.api.results": "render builds none of the other calls' result types",
    "cgviz.view.profile": "--profile's types are created only when a profile is shown",
    "cgviz.api.calls": "the other commands' calls (explain, train, check, grads); cgviz.api loads on use",
    "cgviz.api.torchviz": "make_dot draws a tensor's graph, never an expression's",
}


@pytest.mark.parametrize("args, never", [
    (["render", "{pizza}", "--format", "json", "-o", "o.json"], RENDER_NEVER_IMPORTS),
    pytest.param(["render", "{pizza}", "-o", "o.svg"], RENDER_NEVER_IMPORTS, marks=needs_dot),
    (["render", "{pizza}", "--lr", "0.001", "--format", "dot", "-o", "o.dot"], {"torch": ""}),
    (["explain", "{pizza}"], {"torch": ""}),
    (["train", "{pizza}", "--lr", "1e-5", "--steps", "2", "-o", "g.dot", "-q"], {"torch": ""}),
    (["train", "{pizza}", "--lr", "1e-5", "--steps", "2", "-o", "run.cgw", "-q"], {"torch": ""}),
    (["grads", "{pizza}", "-q"], {"torch": ""}),
], ids=lambda a: " ".join(a[:1] + a[2:3]) if isinstance(a, list) else "")
def test_the_expression_path_never_imports_torch(here, args, never):
    """Start-up stays fast: no command on an expression file loads torch (or the model code), and a
    render loads none of RENDER_NEVER_IMPORTS."""
    args = [str(PIZZA) if a == "{pizza}" else a for a in args]
    code = ("import sys; from cgviz.cli import main\n"
            f"try:\n    main({args!r})\n"
            "except SystemExit as e:\n    assert e.code == 0, e.code\n"
            f"bad = [m for m in sys.modules if m in {sorted(never)!r} or m.startswith('torch.')]\n"
            "assert not bad, bad\nprint('clean')")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=here,
                       env=dict(os.environ, PYTHONPATH=str(ROOT)))       # this checkout's cgviz
    assert p.returncode == 0 and "clean" in p.stdout, (p.stderr, never)


def test_an_internal_error_is_one_line_and_exit_3(cli, here, monkeypatch):
    from cgviz.route import expression as pipeline

    monkeypatch.setattr(pipeline, "to_json", lambda *a: 1 / 0)
    r = cli("render", PIZZA, "--format", "json")
    assert r.exit_code == 3 and "internal error" in r.stderr and "Traceback" not in r.stderr


def test_the_command_line_builds_trace_options_with_the_librarys_one_builder(monkeypatch):
    """`cgviz torch`/`train` and draw() get their TraceOptions from cgviz.api.drawer._trace_options alone."""
    import cgviz.api.drawer
    from cgviz.cli import trace_options
    from cgviz.pytorch.inputs import parse_shape
    made = trace_options((parse_shape("2,3"),), None, "float64", "mse", 3, True, view="autograd")
    lib = cgviz.api.drawer._trace_options(False, ["2,3"], dict(dtype="float64", loss="mse", seed=3, view="autograd",
                                                               mode="train", max_elements=None, targets=None), False)
    assert made == lib and made.mode == "train" and made.input_shapes == (parse_shape("2,3"),)
    monkeypatch.setattr(cgviz.api.drawer, "_trace_options", lambda *a, **k: "the library's")
    assert trace_options((), None, None, None, 0, None) == "the library's"


def test_a_companion_plot_goes_beside_the_named_output(cli, tmp_path, monkeypatch):
    """grads' histograms and train's loss curve default to the folder of -o's file, not the folder the
    shell is in (where they littered a checkout twice)."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    pizza = ROOT / "sample_graphs" / "pizza.cg"
    r = cli("grads", pizza, "-o", tmp_path / "out" / "g.png")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "g.png").is_file() and (tmp_path / "out" / "pizza_grad_hist.png").is_file()
    r = cli("train", pizza, "--lr", "0.0001", "--steps", "3", "-o", tmp_path / "out" / "t.svg")
    assert r.exit_code == 0, r.output
    assert (tmp_path / "out" / "pizza_loss.png").is_file()
    assert list(here.iterdir()) == []
    # with no -o, everything goes to the current folder, as before
    r = cli("grads", pizza)
    assert r.exit_code == 0 and sorted(p.name for p in here.iterdir()) == ["pizza_grad_hist.png", "pizza_grads.png"]
