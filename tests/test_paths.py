"""Files in and out, for every command: every file argument refuses a FIFO, a folder, a character
device and a symbolic link loop in words (never a hang, never a traceback); every output option
refuses to name an input or another output (exit 2, the input unchanged), and says why it cannot
write a folder, a path under a file, or a loop. The tables below list every command's file arguments
and output options; test_every_file_option_is_in_the_tables keeps them complete."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIZZA = ROOT / "sample_graphs" / "pizza.cg"
CGVIZ = [sys.executable, "-m", "cgviz"]
HANG_GUARD = 20      # seconds: only so that a regression fails instead of hanging the suite

LIN = "import torch\nmodel = torch.nn.Linear(2, 1)\nexample_inputs = (torch.ones(3, 2),)\n"


def _project(d: Path) -> None:
    """A program, a model with its inputs and weights, a manifest and goldens, all in d."""
    import torch
    shutil.copy(PIZZA, d / "pizza.cg")
    (d / "lin.py").write_text(LIN)
    torch.save(torch.ones(3, 2), d / "x.pt")
    torch.save(torch.nn.Linear(2, 1).state_dict(), d / "w.pt")
    (d / "g").mkdir()
    (d / "g" / "pizza.dot").write_text("digraph {}\n")


# ---------------------------------------------------------------- every file argument

def _manifest(d: Path, key: str, bad: str) -> Path:
    entry = {"file": f"file = '{bad}'\n", "model": f"model = '{bad}'\n",
             "input": "model = 'lin.py'\ninput = '" + bad + "'\n",
             "weights": "model = 'lin.py'\nweights = '" + bad + "'\n"}[key]
    (d / "m.toml").write_text("[[entry]]\n" + entry)
    return d / "m.toml"


SNAP = ["--golden", "g", "--out", "o"]
# (command, file argument) → (suffix the bad path needs, argv builder: bad path, folder → arguments)
FILE_ARGS = {
    ("render", "FILE"): ("", lambda b, d: ["render", b, "--format", "dot", "-o", "out.dot"]),
    ("explain", "FILE"): ("", lambda b, d: ["explain", b]),
    ("train", "FILE"): ("", lambda b, d: ["train", b, "--lr", "1e-5", "--steps", "1", "-q", "-o", "t.dot",
                                          "--curve", "c.png"]),
    ("check", "FILE|MODEL"): ("", lambda b, d: ["check", b]),
    ("grads", "FILE|MODEL"): ("", lambda b, d: ["grads", b, "--no-plots"]),
    ("torch", "MODEL"): ("", lambda b, d: ["torch", b, "--format", "dot", "-o", "m.dot"]),
    ("torch", "MODEL:factory"): (".py", lambda b, d: ["torch", f"{b}:build", "--format", "dot", "-o", "m.dot"]),
    ("torch", "--input"): ("", lambda b, d: ["torch", "lin.py", "--input", b, "--format", "dot", "-o", "m.dot"]),
    ("torch", "--weights"): ("", lambda b, d: ["torch", "lin.py", "--weights", b, "--format", "dot", "-o", "m.dot"]),
    ("check", "--input"): ("", lambda b, d: ["check", "lin.py", "--input", b]),
    ("check", "--weights"): ("", lambda b, d: ["check", "lin.py", "--weights", b]),
    ("grads", "--input"): ("", lambda b, d: ["grads", "lin.py", "--input", b, "--no-plots"]),
    ("grads", "--weights"): ("", lambda b, d: ["grads", "lin.py", "--weights", b, "--no-plots"]),
    ("train", "--input"): ("", lambda b, d: ["train", "lin.py", "--input", b, "--lr", "0.1", "--steps", "1", "-o", "t.cgw"]),
    ("train", "--weights"): ("", lambda b, d: ["train", "lin.py", "--weights", b, "--lr", "0.1", "--steps", "1", "-o", "t.cgw"]),
    ("diff", "A"): (".cg", lambda b, d: ["diff", b, "pizza.cg"]),
    ("snapshot", "FILES"): (".cg", lambda b, d: ["snapshot", b, *SNAP]),
    ("snapshot", "MANIFEST"): (".toml", lambda b, d: ["snapshot", b, *SNAP]),
    ("snapshot", "manifest file"): (".cg", lambda b, d: ["snapshot", _manifest(d, "file", b), *SNAP]),
    ("snapshot", "manifest model"): ("", lambda b, d: ["snapshot", _manifest(d, "model", b), *SNAP]),
    ("snapshot", "manifest input"): ("", lambda b, d: ["snapshot", _manifest(d, "input", b), *SNAP]),
    ("snapshot", "manifest weights"): ("", lambda b, d: ["snapshot", _manifest(d, "weights", b), *SNAP]),
    ("snapshot", "golden file"): ("", lambda b, d: ["snapshot", "pizza.cg", *SNAP]),
}

# what the message must say for each kind of bad file
KINDS = {"fifo": "FIFO", "folder": "folder", "device": "character device", "loop": "symbolic link"}


def _bad(d: Path, arg: tuple, kind: str) -> str:
    """Make the bad file for one file argument and return its name."""
    suffix, _ = FILE_ARGS[arg]
    name = "bad" + suffix
    if arg == ("snapshot", "golden file"):
        name = "g/pizza.png"                      # the golden the entry is compared with
    if kind == "device" and suffix == "" and arg[1] != "golden file" and "manifest" not in arg[1]:
        return "/dev/zero"
    target = Path(d / name)
    if kind == "fifo":
        os.mkfifo(target)
    elif kind == "folder":
        target.mkdir()
    elif kind == "device":
        target.symlink_to("/dev/zero")
    elif kind == "loop":
        target.symlink_to(target.name)           # a link to itself: ELOOP
    return name


def _run(args, cwd: Path) -> tuple[int, str]:
    """The CLI in a subprocess, for inputs that would hang or fill memory if a check regressed."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    try:
        p = subprocess.run(CGVIZ + [str(a) for a in args], cwd=cwd, capture_output=True, text=True,
                           timeout=HANG_GUARD, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"cgviz {' '.join(map(str, args))} still ran after {HANG_GUARD} s: it is reading "
                    "something that never ends")
    return p.returncode, p.stdout + p.stderr


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("arg", FILE_ARGS, ids=lambda a: f"{a[0]}-{a[1]}")
def test_every_file_argument_refuses_what_is_not_a_regular_file(cli, here, arg, kind):
    _project(here)
    bad = _bad(here, arg, kind)
    args = FILE_ARGS[arg][1](bad, here)
    if kind == "device" and "manifest" in arg[1]:
        args.append("--allow-outside")      # the link to /dev/zero leads outside the manifest's folder
    before = sorted(p.name for p in here.iterdir())
    if kind in ("fifo", "device"):
        # a subprocess: were the check lost, a FIFO would block for ever and /dev/zero fill memory
        code, out = _run(args, here)
    else:
        r = cli(*args)
        code, out = r.exit_code, r.stdout + r.stderr
    assert code in (1, 2), (args, code, out[-800:])
    assert KINDS[kind] in out, (args, out[-800:])
    assert "Traceback" not in out and "internal error" not in out, out[-800:]
    if arg[0] != "snapshot":       # snapshot writes the other entries' pictures in --out
        assert sorted(p.name for p in here.iterdir()) == before


def test_an_expression_file_over_the_size_limit_is_refused(cli, here, monkeypatch):
    from cgviz.core import paths
    monkeypatch.setattr(paths, "SOURCE_LIMIT", 100)
    (here / "big.cg").write_text("input x = 1\n" + "# padding\n" * 20 + "loss L = x * x\n")
    for args in (["render", "big.cg", "--format", "dot"], ["explain", "big.cg"], ["check", "big.cg"]):
        r = cli(*args)
        size = (here / "big.cg").stat().st_size
        assert r.exit_code == 1 and f"big.cg is {size} bytes, more than the 100 bytes" in r.stderr, r.stderr
    r = cli("render", "-", "--format", "dot", "-o", "-", input="input x = 1\n" + "#" * 200 + "\nloss L = x\n")
    assert r.exit_code == 1 and "standard input holds more than the 100 bytes" in r.stderr


def test_an_endless_standard_input_is_cut_off_at_the_limit(here):
    """`yes | cgviz render -` ends with a message instead of reading until memory runs out."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    with open("/dev/zero", "rb") as zero:
        p = subprocess.run(CGVIZ + ["render", "-", "--format", "dot", "-o", "-"], stdin=zero, cwd=here,
                           capture_output=True, text=True, timeout=HANG_GUARD, env=env)
    assert p.returncode == 1 and "standard input holds more than the 64 MiB" in p.stderr, p.stderr


def test_missing_and_dangling_inputs_say_so(cli, here):
    _project(here)
    (here / "dangling.cg").symlink_to("gone.cg")
    r = cli("render", "dangling.cg", "--format", "dot")
    assert r.exit_code == 1 and "no such file (it is a symbolic link to gone.cg" in r.stderr
    r = cli("render", "pizza.cg/x.cg", "--format", "dot")
    assert r.exit_code == 1 and "pizza.cg is a file, not a folder" in r.stderr
    r = cli("torch", "lin.py", "--input", "nope.pt", "--format", "dot", "-o", "-")
    assert r.exit_code == 1 and "--input nope.pt: no such file" in r.stderr


# ---------------------------------------------------------------- every output option

# (command, output option) → (the input file it is tried on, argv builder: that input, output path → arguments).
# The input's name carries the output's suffix, so that only the overwrite check can refuse it.
OUTPUTS = {
    ("render", "-o"): ("prog.dot", lambda i, o: ["render", i, "--format", "dot", "-o", o]),
    ("explain", "-o"): ("prog.md", lambda i, o: ["explain", i, "--format", "md", "-o", o]),
    ("train", "-o"): ("prog.dot", lambda i, o: ["train", i, "--lr", "1e-5", "--steps", "1", "-o", o,
                                                "--curve", "c.png"]),
    ("train", "--curve"): ("prog.png", lambda i, o: ["train", i, "--lr", "1e-5", "--steps", "1", "-o", "t.dot",
                                                     "--curve", o]),
    ("torch", "-o"): ("lin.py", lambda i, o: ["torch", i, "--format", "dot", "-o", o]),
    ("torch", "-o", "--input"): ("x.pt", lambda i, o: ["torch", "lin.py", "--input", i, "--format", "dot", "-o", o]),
    ("torch", "-o", "--weights"): ("w.pt", lambda i, o: ["torch", "lin.py", "--weights", i, "--format", "dot",
                                                         "-o", o]),
    ("diff", "-o"): ("prog.png", lambda i, o: ["diff", i, "pizza.cg", "-o", o]),
    # (`cgviz train MODEL -o` takes only a .cgw record, so it cannot name the model: tested in test_watch_train)
    ("grads", "-o"): ("prog.png", lambda i, o: ["grads", i, "-o", o, "--hist", "h.png"]),
    ("grads", "--hist"): ("prog.png", lambda i, o: ["grads", i, "-o", "b.png", "--hist", o]),
    ("grads", "-o", "--input"): ("x.png", lambda i, o: ["grads", "lin.py", "--input", i, "-o", o]),
    ("grads", "--hist", "--weights"): ("w.png", lambda i, o: ["grads", "lin.py", "--weights", i, "--hist", o]),
    # snapshot writes <entry>.png/.dot in --out (and in --golden with --update): an entry named
    # prog.png would be replaced by its own picture
    ("snapshot", "--out"): ("prog.png", lambda i, o: ["snapshot", i, "--golden", "g", "--out", Path(o).parent]),
    ("snapshot", "--golden"): ("prog.png", lambda i, o: ["snapshot", i, "--golden", Path(o).parent, "--update",
                                                         "--out", "o"]),
    ("snapshot", "--out", "manifest"): ("m.toml", lambda i, o: ["snapshot", i, "--golden", "g", "--out", "o"]),
}


def _input_file(d: Path, name: str) -> bytes:
    """Create the input named `name` (a program, a model, tensors or a manifest) and return its bytes."""
    src = {"lin.py": d / "lin.py", "x.pt": d / "x.pt", "w.pt": d / "w.pt"}.get(name)
    if src is None and name == "x.png":
        shutil.copy(d / "x.pt", d / name)
    elif src is None and name == "w.png":
        shutil.copy(d / "w.pt", d / name)
    elif src is None and name == "m.toml":
        (d / name).write_text("[[entry]]\nfile = 'pizza.cg'\n")
    elif src is None:
        shutil.copy(PIZZA, d / name)
    return (d / name).read_bytes()


def _spell(d: Path, name: str, how: str, case: tuple) -> str:
    """Another name for the input `name`: the same path, a hard link, or a symbolic link."""
    if case == ("snapshot", "--out", "manifest"):
        # the manifest's entry `pizza` writes o/pizza.dot: make that the manifest itself
        (d / "o").mkdir()
        link = d / "o" / "pizza.dot"
        if how == "hardlink":
            os.link(d / name, link)
        else:
            link.symlink_to(d / name)
        return str(link)
    if case[0] == "snapshot":
        if how == "path":
            return name
        folder = d / "elsewhere"
        folder.mkdir()
        other = folder / name
    else:
        if how == "path":
            (d / "sub").mkdir()
            return f"sub/../{name}"
        other = d / ("other" + Path(name).suffix)
    if how == "hardlink":
        os.link(d / name, other)
    else:
        other.symlink_to(d / name)
    return str(other)


# a manifest is .toml and snapshot writes .png/.dot: only a link can make them meet, not a plain path
OVERWRITE_CASES = [pytest.param(case, how, id="-".join(case).replace("--", "") + f"-{how}")
                   for how in ("path", "hardlink", "symlink") for case in OUTPUTS
                   if not (case == ("snapshot", "--out", "manifest") and how == "path")]


@pytest.mark.parametrize("case, how", OVERWRITE_CASES)
def test_no_output_option_overwrites_an_input(cli, here, case, how):
    _project(here)
    name, build = OUTPUTS[case]
    before = _input_file(here, name)
    out = _spell(here, name, how, case)
    r = cli(*build(name, out))
    assert r.exit_code == 2, (case, how, r.exit_code, r.stderr[-800:])
    assert "never overwrites its input" in r.stderr and "Traceback" not in r.stderr, r.stderr
    option = case[1]
    assert f"{option} " in r.stderr, r.stderr                       # which option …
    assert "the same file as" in r.stderr                           # … names which input
    if len(case) == 3 and case[2].startswith("--"):
        assert f"{case[2]} " in r.stderr, r.stderr
    assert (here / name).read_bytes() == before
    assert not any(p.name.startswith(".") and p.name.endswith(".part") for p in here.rglob("*"))


# (command) → argv builder with two output options naming one file
TWO_OUTPUTS = {
    ("train", "-o", "--curve"): lambda a, b: ["train", "pizza.cg", "--lr", "1e-5", "--steps", "1", "-o", a,
                                              "--curve", b],
    ("grads", "-o", "--hist"): lambda a, b: ["grads", "pizza.cg", "-o", a, "--hist", b],
    ("snapshot", "--out", "--golden"): lambda a, b: ["snapshot", "pizza.cg", "--golden", Path(b).parent,
                                                     "--out", Path(a).parent],
}


@pytest.mark.parametrize("how", ["path", "hardlink", "symlink"])
@pytest.mark.parametrize("case", TWO_OUTPUTS, ids=lambda c: "-".join(c).replace("--", ""))
def test_two_outputs_may_not_name_one_file(cli, here, case, how):
    _project(here)
    (here / "x.png").write_bytes(b"an older picture")
    first = "x.png" if case[0] != "snapshot" else "s/pizza.png"
    second = first
    if case[0] == "snapshot":
        (here / "s").mkdir()
        if how != "path":
            (here / "t").symlink_to("s") if how == "symlink" else None
            second = "t/pizza.png" if how == "symlink" else first
    elif how == "hardlink":
        os.link(here / "x.png", here / "y.png")
        second = "y.png"
    elif how == "symlink":
        (here / "y.png").symlink_to("x.png")
        second = "y.png"
    r = cli(*TWO_OUTPUTS[case](first, second))
    assert r.exit_code == 2, (case, how, r.stderr[-800:])
    assert ("name the same file" in r.stderr or "must not be the --golden folder" in r.stderr), r.stderr
    assert (here / "x.png").read_bytes() == b"an older picture"


# every output option: (command, option) → argv builder writing to `o`
WRITES = {
    ("render", "-o"): lambda o: ["render", "pizza.cg", "--format", "dot", "-o", o],
    ("explain", "-o"): lambda o: ["explain", "pizza.cg", "-o", o],
    ("train", "-o"): lambda o: ["train", "pizza.cg", "--lr", "1e-5", "--steps", "1", "-o", o, "--curve", "c.png"],
    ("train", "--curve"): lambda o: ["train", "pizza.cg", "--lr", "1e-5", "--steps", "1", "-o", "t.dot", "--curve", o],
    ("torch", "-o"): lambda o: ["torch", "lin.py", "--format", "dot", "-o", o],
    ("diff", "-o"): lambda o: ["diff", "pizza.cg", "pizza.cg", "-o", o],
    ("grads", "-o"): lambda o: ["grads", "pizza.cg", "-o", o],
    ("grads", "--hist"): lambda o: ["grads", "pizza.cg", "--hist", o],
    ("snapshot", "--out"): lambda o: ["snapshot", "pizza.cg", "--golden", "g", "--out", o],
    ("snapshot", "--golden"): lambda o: ["snapshot", "pizza.cg", "--golden", o, "--update"],
}
# a bad output → what the message must say
BAD_OUTPUTS = {
    "folder": (lambda d, o: (d / o).mkdir(), "folder"),
    "under-a-file": (lambda d, o: None, "is a file, not a folder"),
    "loop": (lambda d, o: (d / o).symlink_to(o), "symbolic link"),
}


# a folder is what snapshot's --out and --golden want, so that pair is no bad output
BAD_WRITE_CASES = [pytest.param(case, bad, id="-".join(case).replace("--", "") + f"-{bad}")
                   for bad in BAD_OUTPUTS for case in WRITES if not (bad == "folder" and case[0] == "snapshot")]


@pytest.mark.parametrize("case, bad", BAD_WRITE_CASES)
def test_an_output_that_cannot_be_written_is_said_in_words(cli, here, case, bad):
    _project(here)
    make, words = BAD_OUTPUTS[bad]
    folder_option = case[0] == "snapshot"
    name = ("outdir" if folder_option else "out.png" if case[1] != "-o" or case[0] == "grads" else "out.dot")
    if case == ("explain", "-o"):
        name = "out.txt"
    if bad == "under-a-file":
        name = "pizza.cg/" + name
    make(here, name)
    r = cli(*WRITES[case](name))
    assert r.exit_code in (1, 2), (case, bad, r.exit_code, r.stderr[-800:])
    assert words in r.stderr and "Traceback" not in r.stderr and "internal error" not in r.stderr, r.stderr
    assert (here / "pizza.cg").read_bytes() == PIZZA.read_bytes()


def test_a_character_device_output_is_written_into_not_replaced(cli, here):
    """-o /dev/null must not replace /dev/null with a regular file (as it did when cgviz ran as root)."""
    import stat
    if os.geteuid() == 0:
        os.mknod(here / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
        target = here / "null"
    else:
        target = Path("/dev/null")
    r = cli("render", PIZZA, "--format", "dot", "-o", target)
    assert r.exit_code == 0, r.stderr
    assert stat.S_ISCHR(os.stat(target).st_mode)
    r = cli("explain", PIZZA, "-o", target)
    assert r.exit_code == 0 and stat.S_ISCHR(os.stat(target).st_mode), r.stderr


def test_an_output_fifo_without_a_reader_is_refused_not_waited_on(here):
    os.mkfifo(here / "pipe.dot")
    code, out = _run(["render", PIZZA, "-o", "pipe.dot"], here)
    assert code == 1 and "no process is reading" in out, out


# ---------------------------------------------------------------- the tables are complete

OUTPUT_PARAMS = {"output", "curve", "hist", "out_dir", "golden"}
FILE_PARAMS = {"input_file", "weights"}


def test_every_file_option_is_in_the_tables():
    """A new command or file option must be added to FILE_ARGS, OUTPUTS and WRITES above."""
    import click

    from cgviz.cli import main
    file_args = {c for c, _ in FILE_ARGS}
    for name, cmd in main.commands.items():
        for p in cmd.params:
            if isinstance(p, click.Argument):
                assert name in file_args, f"{name}'s {p.name} argument: add it to FILE_ARGS"
            elif p.name in FILE_PARAMS:
                flag = p.opts[0]
                assert (name, flag) in FILE_ARGS, f"cgviz {name} {flag}: add it to FILE_ARGS"
            elif p.name in OUTPUT_PARAMS:
                flag = "-o" if p.name == "output" else p.opts[0]
                assert any(c[:2] == (name, flag) for c in OUTPUTS), f"cgviz {name} {flag}: add it to OUTPUTS"
                assert (name, flag) in WRITES, f"cgviz {name} {flag}: add it to WRITES"


# ---------------------------------------------------------------- the library

def test_same_file_sees_through_links_and_never_raises(tmp_path):
    from cgviz.core.paths import same_file
    a = tmp_path / "a"
    a.write_text("x")
    os.link(a, tmp_path / "hard")
    (tmp_path / "soft").symlink_to("a")
    (tmp_path / "loop").symlink_to("loop")
    assert same_file(a, tmp_path / "hard") and same_file(a, tmp_path / "soft")
    (tmp_path / "sub").mkdir()
    assert same_file(a, tmp_path / "sub" / ".." / "a")
    assert not same_file(a, tmp_path / "loop") and same_file(tmp_path / "loop", tmp_path / "loop")
    assert not same_file(a, tmp_path / "missing")


def test_one_reader_of_model_specs(tmp_path, monkeypatch):
    """`net.py:build` is read by cgviz.core.paths.split_spec alone: the loader, the commands' output names
    and snapshot manifests and arguments all give the same answer."""
    from cgviz.cli import model_stem
    from cgviz.core.paths import split_spec
    from cgviz.snapshot.runner import entries_from_files
    (tmp_path / "net.py").write_text("x = 1\n")
    (tmp_path / "odd:name.py").write_text("x = 1\n")
    monkeypatch.chdir(tmp_path)
    assert split_spec("net.py:build") == (Path("net.py"), "build")
    assert split_spec("odd:name.py") == (Path("odd:name.py"), None)        # a file named with ':' stays whole
    assert split_spec("net.py:not-a-name") == (Path("net.py:not-a-name"), None)
    assert split_spec("missing.py:build") == (Path("missing.py:build"), None)
    assert split_spec("sub/net.py:build", base=tmp_path.parent) == (Path("sub/net.py:build"), None)
    assert split_spec(f"{tmp_path.name}/net.py:build", base=tmp_path.parent) == (Path(tmp_path.name) / "net.py", "build")
    assert model_stem("net.py:build") == "net.py" and model_stem("odd:name.py") == "odd:name.py"
    assert [e.name for e in entries_from_files(["net.py:build"])] == ["net"]


def test_a_manifest_keeps_a_factory_with_the_loaders_rule(tmp_path):
    from cgviz.snapshot.runner import load_manifest
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "net.py").write_text("x = 1\n")
    (tmp_path / "cgviz-snapshot.toml").write_text('[[entry]]\nname = "n"\nmodel = "models/net.py:build"\n')
    entry, = load_manifest(tmp_path / "cgviz-snapshot.toml")
    assert entry.path == f"{tmp_path / 'models' / 'net.py'}:build"
