"""Messages name an option as the caller wrote it: `--input-shape` on the command line, `input_size=`
through cgviz.draw() (cgviz.core.spelling); and the API calls behind every command give what the command
prints."""

from __future__ import annotations

import ast
import inspect
import re
import shutil

import pytest
import torch

import cgviz
from cgviz.core.spelling import command_line, flag, keyword, spell
from conftest import ROOT

PIZZA = ROOT / "sample_graphs" / "pizza.cg"
FLAG = re.compile(r"(?<![\w-])--[a-z][a-z-]+")
needs_dot = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz: `make test` installs it")


def _no_flags(message: str) -> None:
    assert not FLAG.search(message), f"a Python caller was told a command-line flag: {message}"


# ---- the same mistakes through cgviz.draw() name keywords ------------------------------------------
def test_a_model_file_without_inputs_names_input_size(tmp_path):
    (tmp_path / "net.py").write_text("import torch\nmodel = torch.nn.Linear(4, 2)\n")
    with pytest.raises(cgviz.CgvizError) as e:
        cgviz.draw(str(tmp_path / "net.py"))
    msg = str(e.value)
    assert "give one input_size= per input, e.g. input_size=(1, 3, 32, 32) (or '1,64:long' for token ids)" in msg
    assert "input_file='inputs.pt'" in msg
    _no_flags(msg)


def test_a_wrong_input_shape_names_input_size():
    with pytest.raises(cgviz.CgvizError) as e:
        cgviz.draw(torch.nn.Linear(4, 2), input_size=(3, 5))
    assert "Check input_size= (one per input, in forward's order) or pass input_file=" in str(e.value)
    _no_flags(str(e.value))


def test_an_input_too_big_names_max_elements_and_meta():
    with pytest.raises(cgviz.CgvizError) as e:
        cgviz.draw(torch.nn.Linear(4, 2), input_size=(100000, 100000))
    msg = str(e.value)
    assert msg.startswith("input_size=(100000, 100000): 100000×100000 is 10,000,000,000 elements")
    assert "max_elements=" in msg and "meta=True" in msg
    _no_flags(msg)


def test_an_untrusted_pickle_asks_for_trust_true(tmp_path):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "m.pt")
    with pytest.raises(cgviz.CgvizError) as e:
        cgviz.draw(str(tmp_path / "m.pt"), input_size=(1, 2))
    assert "add trust=True" in str(e.value) and "runs code" in str(e.value)
    _no_flags(str(e.value))
    # and with it, the module loads and draws
    assert cgviz.draw(str(tmp_path / "m.pt"), input_size=(1, 2), trust=True)["weight"].grad is not None


def test_unknown_and_unfit_losses_name_loss():
    with pytest.raises(cgviz.CgvizError) as e:
        cgviz.draw(torch.nn.Linear(4, 2), input_size=(3, 4), loss="hinge")
    assert "loss='hinge'" in str(e.value)
    _no_flags(str(e.value))
    scalar = torch.nn.Sequential(torch.nn.Linear(4, 1), torch.nn.Flatten(0))
    with pytest.raises(cgviz.CgvizError) as e:
        cgviz.draw(lambda x: scalar(x).sum(), torch.randn(2, 4), loss="ce")
    assert str(e.value).startswith("loss='ce' needs class scores")


def test_a_bad_dtype_names_dtype():
    with pytest.raises(cgviz.CgvizError) as e:
        cgviz.draw(torch.nn.Linear(4, 2), input_size=(3, 4), dtype="float8")
    assert "dtype='float8'" in str(e.value)
    _no_flags(str(e.value))


def test_a_set_of_no_declaration_names_sets():
    with pytest.raises(cgviz.CgvizError) as e:
        cgviz.draw(PIZZA, sets={"ww": 1})
    assert str(e.value).startswith("sets['ww']: no declaration named 'ww' (did you mean 'w'?)")
    with pytest.raises(cgviz.CgvizError) as e:
        cgviz.draw(PIZZA, sets={"w": "1 +"})
    assert str(e.value).startswith("sets['w'] = 1 +: ")


@needs_dot
def test_a_png_too_big_suggests_svg_and_dpi_as_methods_and_keywords():
    chain = "\n".join(["input x = 1"] + [f"h{i} = {'h' + str(i - 1) if i else 'x'} * 1" for i in range(300)])
    d = cgviz.draw(chain + "\n", rankdir="LR")
    with pytest.raises(cgviz.CgvizError) as e:
        d.png()
    msg = str(e.value)
    assert "too big" in msg and ".svg() or .pdf() (no size limit)" in msg and "rankdir='TB'" in msg
    assert "dpi=" in msg
    _no_flags(msg)


def test_the_command_line_reads_as_it_always_did(tmp_path, cli):
    torch.save(torch.nn.Linear(2, 2), tmp_path / "m.pt")
    r = cli("torch", tmp_path / "m.pt", "--input-shape", "1,2", "--format", "dot", "-o", "-")
    assert r.exit_code == 1 and "add --trust." in r.stderr
    (tmp_path / "net.py").write_text("import torch\nmodel = torch.nn.Linear(4, 2)\n")
    r = cli("torch", tmp_path / "net.py", "--format", "dot", "-o", "-")
    assert ("give one --input-shape per input, e.g. --input-shape 1,3,32,32 (or 1,64:long for token ids), "
            "or --input inputs.pt") in r.stderr
    # and the spelling does not outlive the command
    assert spell("trust") == "trust=True"


# ---- the table of spellings ----------------------------------------------------------------------------
def test_every_option_is_spelled_as_cgviz_options_declares_it():
    from cgviz.api.options import OPTIONS
    for key, opt in OPTIONS.items():
        assert flag(key) in opt.decls, (key, opt.decls)
        with command_line():
            assert spell(key) == flag(key)


def test_the_keywords_are_draws_parameters():
    params = set(inspect.signature(cgviz.draw).parameters)
    for key in ("input_shape", "input", "set", "loss", "dtype", "seed", "mode", "depth", "view", "lr", "clip_norm",
                "rankdir", "trust", "weights", "meta", "vanish", "explode", "max_elements", "timeout", "no_fold",
                "no_grad", "no_simplify", "profile", "profile_runs", "profile_top"):
        assert keyword(key).partition("=")[0] in params, key
    assert spell("no_fold") == "fold=False" and spell("input_shape", "1,64:long") == "input_size='1,64:long'"
    assert spell("format", "svg, pdf or json") == ".svg(), .pdf() or .json()" and spell("format", "dot") == ".dot"


_ALLOWED = {  # library strings that still spell a flag, and why
    "api/sources.py": "points at `cgviz torch --help`, the list of model files",
    "api/options.py": "parse_sets reads the command line's and a manifest's NAME=VALUE text",
    "pytorch/load.py": "a `cgviz torch` example, shown only on the command line",
    "pytest_plugin.py": "pytest's own command line (--cgviz-update), where cgviz's spelling does not apply",
    "view/html.py": "the page's profile row (another module's owner)",
    "plan/simplify.py": "a picture's title, held by golden files (another module's owner)",
}


def _strings_spelling_flags(path):
    tree = ast.parse(path.read_text())
    docs = {id(n.body[0].value) for n in ast.walk(tree)
            if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef)) and n.body
            and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    declared = {id(m) for n in ast.walk(tree) if isinstance(n, ast.Call) and getattr(n.func, "id", None) == "Opt"
                for m in ast.walk(n)}          # the options' own declarations and help
    for n in ast.walk(tree):
        if id(n) in docs or id(n) in declared:
            continue
        if isinstance(n, ast.Constant) and isinstance(n.value, str) and FLAG.search(n.value):
            yield n.lineno, n.value


def test_library_code_spells_no_flag_itself():
    found = {}
    for path in sorted((ROOT / "cgviz").rglob("*.py")):
        rel = path.relative_to(ROOT / "cgviz").as_posix()
        if rel in ("cli.py", "core/spelling.py"):
            continue
        hits = list(_strings_spelling_flags(path))
        if hits and rel not in _ALLOWED:
            found[rel] = hits
    assert not found, f"spell the option with cgviz.core.spelling.spell instead: {found}"


# ---- each command's library call -----------------------------------------------------------------------
def test_explain_train_gradient_health_and_check_gradients_from_python():
    e = cgviz.explain(PIZZA, format="md")
    assert "∂L/∂w" in e.text and e.source == str(PIZZA)
    t = cgviz.train(PIZZA, lr=1e-5, steps=3, format="dot")
    assert len(t.losses) == 4 and t.losses[0] == 100 and t.losses[-1] < 1 and t.stopped is None
    assert t.curve[:4] == b"\x89PNG" and t.graph.startswith(b"digraph")
    h = cgviz.gradient_health(PIZZA)
    assert [r.name for r in h.rows] == ["x", "w"] and h.rows[1].flag == "exploding"
    assert any("exploding" in w for w in h.warnings) and "w" in h.table("md")
    c = cgviz.check_gradients(PIZZA)
    assert c.ok and [r.name for r in c.report.rows] == ["x", "w"]
    with pytest.raises(cgviz.CgvizError, match=r"^loss= applies to a model; .*pizza.cg is an expression file"):
        cgviz.check_gradients(PIZZA, loss="ce")


def test_gradient_health_of_a_module_matches_pytorch():
    torch.manual_seed(0)
    mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 3))
    x = torch.randn(5, 4)
    h = cgviz.gradient_health(mlp, x, loss="mse")
    plain = torch.nn.functional.mse_loss(mlp(x), torch.zeros(5, 3))
    grads = torch.autograd.grad(plain, list(mlp.parameters()))
    assert [r.name for r in h.rows] == [n for n, _ in mlp.named_parameters()]
    for r, g in zip(h.rows, grads):
        assert r.grad_norm == pytest.approx(float(g.norm()), rel=1e-5)
    assert all(p.grad is None for p in mlp.parameters())        # given back as it was
