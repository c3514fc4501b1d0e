"""Snapshot manifests are input from pull requests: names cannot reach outside --golden/--out, values
are checked as the command line checks them, and nothing widens what cgviz runs without a flag."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from cgviz.snapshot.runner import UsageProblem, check_name, derived
from conftest import ROOT

PIZZA = ROOT / "sample_graphs" / "pizza.cg"


@pytest.fixture
def victim(tmp_path):
    """Files beside the snapshot folders that an escaping name would delete or overwrite."""
    v = tmp_path / "victim"
    v.mkdir()
    for suffix in (".png", ".dot", ".diff.png"):
        (v / f"del{suffix}").write_bytes(b"keep me")
    return v


def _manifest(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    m = folder / "cgviz.toml"
    m.write_text(body)
    return m


def _untouched(victim: Path) -> bool:
    return sorted(p.name for p in victim.iterdir()) == ["del.diff.png", "del.dot", "del.png"] and \
        all(p.read_bytes() == b"keep me" for p in victim.iterdir())


@pytest.mark.parametrize("update", [False, True])
def test_a_name_with_dot_dot_deletes_and_writes_nothing_outside(cli, tmp_path, victim, update):
    # the reproduction: the entry's own file does not even exist, and its old outputs were deleted first
    m = _manifest(tmp_path / "proj", 'name = "x"\n[[entry]]\nname = "../victim/del"\nfile = "missing.cg"\n')
    args = ["snapshot", m, "--golden", tmp_path / "proj" / "g", "--out", tmp_path / "proj" / "outdir"]
    r = cli(*args, *(["--update"] if update else []))
    assert r.exit_code == 2 and "plain file-name stem" in r.stderr
    assert _untouched(victim)
    # and with a real file, which would render and then be written
    shutil.copy(PIZZA, tmp_path / "proj" / "pizza.cg")
    m.write_text('[[entry]]\nname = "../../victim/del"\nfile = "pizza.cg"\n')
    r = cli(*args, *(["--update"] if update else []))
    assert r.exit_code == 2 and _untouched(victim)


def test_an_absolute_name_is_refused(cli, tmp_path, victim):
    shutil.copy(PIZZA, tmp_path / "pizza.cg")
    m = _manifest(tmp_path, f'[[entry]]\nname = "{victim}/del"\nfile = "pizza.cg"\n')
    r = cli("snapshot", m, "--golden", tmp_path / "g", "--out", tmp_path / "o", "--update")
    assert r.exit_code == 2 and _untouched(victim)


@pytest.mark.parametrize("name, words", [
    ("a/b", "'/'"), ("a\\b", "'\\\\'"), ("C:evil", "':'"), ("..", "starts with a dot"), (".hidden", "starts with a dot"),
    ("tab\there", "'\\t'"), ("trailing.", "ends with a dot"), ("x" * 500, "500 characters"), ("", "non-empty"),
])
def test_names_must_be_plain_file_name_stems(name, words):
    with pytest.raises(UsageProblem, match="name") as e:
        check_name(name, "entry 1: name")
    assert words in str(e.value)


@pytest.mark.parametrize("name", ["pizza", "pizza_w0.1", "res_cnn_depth1", "my graph", "ünïcode-名前"])
def test_ordinary_names_pass(name):
    assert check_name(name, "name") == name


def test_the_writer_checks_again(tmp_path):
    # the second lock: even a name that slipped past check_name cannot leave the folder where files are written
    for bad in ("../x", "/etc/x", "a/../../x", ".."):
        with pytest.raises(UsageProblem, match="outside"):
            derived(tmp_path, bad, ".png")
    assert derived(tmp_path, "ok", ".png") == tmp_path / "ok.png"


def test_names_that_differ_only_in_case_are_refused(cli, tmp_path):
    shutil.copy(PIZZA, tmp_path / "pizza.cg")
    m = _manifest(tmp_path, '[[entry]]\nname = "Pizza"\nfile = "pizza.cg"\n[[entry]]\nname = "pizza"\nfile = "pizza.cg"\n')
    r = cli("snapshot", m, "--golden", tmp_path / "g")
    assert r.exit_code == 2 and "differ only in case" in r.stderr


# Each manifest value goes through the command line's own definition of the option.
@pytest.mark.parametrize("kind, line, words", [
    ("model", 'dtype = "bogus"', "dtype"),
    ("model", "depth = -1", "depth must be a whole number at least 1"),
    ("model", "depth = 1.5", "depth must be a whole number"),
    ("cg", 'rankdir = "XX"', "rankdir"),
    ("model", 'view = "bogus"', "view"),
    ("model", 'mode = "bogus"', "mode"),
    ("cg", "max_elements = -5", "max_elements must be a whole number at least 1"),
    ("model", "seed = 1e23", "seed must be a whole number"),
    ("model", "seed = -1", "seed must be a whole number at least 0"),
    ("model", 'trust = "yes"', "trust must be true or false"),
    ("cg", "no_grad = 1", "no_grad must be true or false"),
    ("model", 'input_shape = ["1,a"]', "input_shape"),
    ("model", 'input_shape = "1,3"', "input_shape must be a list"),
    ("cg", 'set = { w = "" }', "set"),
    ("model", 'loss = "hinge loss"', "loss"),
    ("model", 'loss = "os:system"', "not another installed module's"),
    ("cg", "compare = ['pixels']", "compare must be a non-empty list of 'graph' and 'png'"),
    ("cg", "compare = []", "compare must be"),
    ("cg", "rtol = -1", "rtol"),
    ("cg", "atol = 'tiny'", "atol"),
])
def test_bad_values_are_usage_errors_before_anything_renders(cli, tmp_path, kind, line, words):
    shutil.copy(PIZZA, tmp_path / "pizza.cg")
    (tmp_path / "m.py").write_text("raise SystemExit('must not run')\n")
    target = 'file = "pizza.cg"' if kind == "cg" else 'model = "m.py"'
    m = _manifest(tmp_path, f"[[entry]]\n{target}\n{line}\n")
    r = cli("snapshot", m, "--golden", tmp_path / "g", "--out", tmp_path / "o")
    assert r.exit_code == 2, r.stderr
    assert words in r.stderr and "entry 1" in r.stderr
    assert not (tmp_path / "o").exists()


def test_values_are_normalised_as_on_the_command_line(tmp_path):
    from cgviz.snapshot.runner import load_manifest
    shutil.copy(PIZZA, tmp_path / "pizza.cg")
    m = _manifest(tmp_path, '[[entry]]\nfile = "pizza.cg"\nrankdir = "tb"\nset = { w = 0.1 }\n')
    (entry,) = load_manifest(m)
    assert entry.options == {"rankdir": "TB", "set": {"w": "0.1"}}


def test_trust_needs_the_command_lines_consent(cli, tmp_path):
    m = _manifest(tmp_path, '[[entry]]\nmodel = "net.pt"\ntrust = true\n')
    r = cli("snapshot", m, "--golden", tmp_path / "g", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "--allow-trust" in r.stderr and "runs code" in r.stderr
    # with consent the entry is attempted (here it fails to load: an error row, exit 1, not a refusal)
    r = cli("snapshot", m, "--golden", tmp_path / "g", "--out", tmp_path / "o", "--allow-trust")
    assert r.exit_code == 1 and "error" in r.stdout


@pytest.mark.parametrize("line", ['model = "../outside.py"', 'file = "../outside.cg"',
                                  'model = "../outside.py:build"', 'file = "/etc/hostname"',
                                  'model = "in.py"\ninput = "../inputs.pt"', 'model = "in.py"\nweights = "../w.pt"',
                                  'file = "link.cg"'])
def test_files_outside_the_manifests_folder_need_consent(cli, tmp_path, line):
    proj = tmp_path / "proj"
    proj.mkdir()
    marker = tmp_path / "ran"
    (tmp_path / "outside.py").write_text(f"open({str(marker)!r}, 'w').close()\nimport torch\nmodel = torch.nn.Linear(2, 2)\n")
    shutil.copy(PIZZA, tmp_path / "outside.cg")
    (proj / "in.py").write_text("import torch\nmodel = torch.nn.Linear(2, 2)\n")
    os.symlink(tmp_path / "outside.cg", proj / "link.cg")         # a symlink inside that leads outside
    m = _manifest(proj, f"[[entry]]\nname = 'e'\n{line}\n")
    r = cli("snapshot", m, "--golden", proj / "g", "--out", proj / "o")
    assert r.exit_code == 2 and "outside the manifest's folder" in r.stderr and "--allow-outside" in r.stderr
    assert not marker.exists()


def test_allow_outside_lets_the_projects_layout_through(cli, tmp_path):
    proj = tmp_path / "proj"
    proj.mkdir()
    shutil.copy(PIZZA, tmp_path / "pizza.cg")
    m = _manifest(proj, '[[entry]]\nfile = "../pizza.cg"\n')
    r = cli("snapshot", m, "--golden", proj / "g", "--update", "--allow-outside")
    assert r.exit_code == 0 and (proj / "g" / "pizza.json").exists()


def test_out_or_golden_naming_a_file_is_a_usage_error(cli, tmp_path):
    f = tmp_path / "afile"
    f.write_text("x")
    for flag in ("--out", "--golden"):
        args = {"--golden": tmp_path / "g", "--out": tmp_path / "o", flag: f}
        r = cli("snapshot", PIZZA, "--golden", args["--golden"], "--out", args["--out"])
        assert r.exit_code == 2 and "is a file" in r.stderr, r.stderr
    assert f.read_text() == "x"


def test_a_corrupt_golden_png_is_an_error_row_not_a_crash(cli, tmp_path):
    g = tmp_path / "g"
    assert cli("snapshot", PIZZA, "--golden", g, "--update").exit_code == 0
    (g / "pizza.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    # the graph decides; the picture is only compared with --pixels
    assert cli("snapshot", PIZZA, "--golden", g, "--out", tmp_path / "o").exit_code == 0
    r = cli("snapshot", PIZZA, "--golden", g, "--out", tmp_path / "o", "--pixels")
    assert r.exit_code == 1 and "not a readable PNG" in r.stdout
    # --update repairs it
    r = cli("snapshot", PIZZA, "--golden", g, "--out", tmp_path / "o", "--update", "--pixels")
    assert r.exit_code == 0
    assert cli("snapshot", PIZZA, "--golden", g, "--out", tmp_path / "o", "--pixels").exit_code == 0


@pytest.mark.parametrize("content, words", [
    (b"{not json", "not valid JSON"),
    (b'{"format": "cgviz-graph", "nodes": [], "edges": []}', "not a cgviz-snapshot document"),
    (b"\xff\xfe", "not valid JSON"),
])
def test_a_corrupt_graph_golden_is_an_error_row_not_a_crash(cli, tmp_path, content, words):
    g = tmp_path / "g"
    assert cli("snapshot", PIZZA, "--golden", g, "--update").exit_code == 0
    (g / "pizza.json").write_bytes(content)
    r = cli("snapshot", PIZZA, "--golden", g, "--out", tmp_path / "o")
    assert r.exit_code == 1 and words in r.stdout and "error" in r.stdout
    assert cli("snapshot", PIZZA, "--golden", g, "--out", tmp_path / "o", "--update").exit_code == 0
    assert cli("snapshot", PIZZA, "--golden", g, "--out", tmp_path / "o").exit_code == 0
