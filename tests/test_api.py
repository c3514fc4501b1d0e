"""The Python front door: cgviz.draw and cgviz.make_dot on every kind of source, the Drawing's outputs,
and the notebook that shows them."""

from __future__ import annotations

import collections
import re
import subprocess
import sys

import numpy as np
import pytest
import torch

import cgviz
from conftest import ROOT
from test_html import browser  # noqa: F401  (the chromium fixture)

PIZZA = ROOT / "sample_graphs" / "pizza.cg"


# ---- expression programs ---------------------------------------------------------------------------
def test_a_cg_path_and_program_text_give_the_articles_numbers():
    for source in (PIZZA, str(PIZZA), PIZZA.read_text()):
        d = cgviz.draw(source)
        assert d["w"].grad == 4000 and d["x"].grad == 10 and d.loss == 100
        assert d["z"].value == 100 and d["w"].kind == "param"
        assert any("exploding" in w and "w" in w for w in d.warnings)


def test_the_expression_path_never_imports_torch():
    code = ("import sys, cgviz\n"
            f"d = cgviz.draw({str(PIZZA)!r}); d.dot; d.to_dict(); d.json()\n"
            "d2 = cgviz.draw('param w = 2\\nloss L = w * w\\n'); assert d2['w'].grad == 4\n"
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_options_are_the_command_lines():
    d = cgviz.draw(PIZZA, sets={"w": 0.1}, lr=1e-5, rankdir="tb")
    assert d["w"].grad == -28000 and d.loss == 4900
    assert "rankdir=TB" in d.dot.replace('"', "")
    assert "w: 0.1 → 0.38" in d.dot
    assert d.to_dict()["nodes"]


@pytest.mark.parametrize("kwargs, words", [
    ({"lr": float("nan")}, "lr=nan"), ({"depth": 0}, "depth=0"), ({"rankdir": "XX"}, "rankdir='XX'"),
    ({"timeout": -1}, "timeout=-1"), ({"clip_norm": 1.0}, "clip_norm clips the step lr takes"),
])
def test_bad_options_are_errors_in_the_callers_words(kwargs, words):
    with pytest.raises(cgviz.CgvizError, match=re.escape(words)):
        cgviz.draw(PIZZA, **kwargs)


def test_a_program_error_points_at_the_text():
    with pytest.raises(cgviz.SourceError) as e:
        cgviz.draw("param w = 0.5\nloss L = w +* 2\n")
    assert "<text>:2:" in str(e.value) and "^" in str(e.value)


def test_unknown_node_suggests_near_names():
    d = cgviz.draw(PIZZA)
    with pytest.raises(KeyError, match="did you mean 'w'"):
        d["ww"]


def test_save_writes_atomically_by_suffix_and_never_over_the_input(tmp_path):
    d = cgviz.draw(PIZZA)
    assert d.save(tmp_path / "p.svg").read_text().startswith("<?xml")
    assert d.save(tmp_path / "p.json").read_text().startswith("{")
    assert (tmp_path / "p.png").exists() is False and d.save(tmp_path / "p.png").read_bytes()[:4] == b"\x89PNG"
    with pytest.raises(cgviz.CgvizError, match="cannot tell the format"):
        d.save(tmp_path / "p.txt")
    copy = tmp_path / "pizza.cg"
    copy.write_text(PIZZA.read_text())
    with pytest.raises(cgviz.CgvizError, match="never overwrites"):
        cgviz.draw(copy).save(copy, format="svg")
    assert copy.read_text() == PIZZA.read_text()


def test_a_notebook_cell_shows_the_svg_with_the_numbers():
    bundle = cgviz.draw(PIZZA)._repr_mimebundle_()
    assert bundle["image/svg+xml"].lstrip().startswith("<?xml") and "4000" in bundle["image/svg+xml"]
    page = cgviz.draw(PIZZA).page()
    assert "<iframe" in page._repr_html_() and "4000" in page.text


def _inline_svg(html: str) -> str:
    """The <svg> element, without the comments Graphviz writes (the inline copy leaves them out)."""
    return re.sub(r"<!--.*?-->", "", re.search(r"<svg\b.*</svg>", html, re.S).group(0), flags=re.S)


def test_a_notebook_cell_shows_the_picture_fitted_with_full_size_a_click_away():
    """The cell's HTML holds the same SVG (without its XML prolog), no wider than the cell and never
    enlarged, inside a label whose checkbox a click toggles to full size; no script, no id."""
    bundle = cgviz.draw(PIZZA)._repr_mimebundle_()
    html, svg = bundle["text/html"], bundle["image/svg+xml"]
    assert _inline_svg(html) == _inline_svg(svg) and "<?xml" not in html
    assert re.search(r"> svg \{ max-width: 100%; height: auto; \}", html)
    assert re.search(r'<label [^>]*><input type="checkbox"><div><svg', html)
    assert "input:checked + div > svg { max-width: none; }" in html
    assert "<script" not in html and not re.search(r'<(?:div|input|label)\b[^>]*\bid=', html)
    assert "at full size, fitted to the cell" in html        # 1,309 px wide: most cells shrink it
    assert bundle["text/plain"].startswith("<cgviz.Drawing of")
    assert cgviz.draw(PIZZA)._repr_mimebundle_() == bundle   # the same output after every run
    assert set(cgviz.draw(PIZZA)._repr_mimebundle_(include={"image/svg+xml"})) == {"image/svg+xml"}
    assert set(cgviz.draw(PIZZA)._repr_mimebundle_(exclude={"text/html"})) == {"image/svg+xml", "text/plain"}


def test_a_small_picture_has_no_note():
    html = cgviz.draw("param w = 2\nloss L = w * w\n")._repr_mimebundle_()["text/html"]
    assert "<svg" in html and "cgviz-note\"" not in html


def test_a_program_given_as_text_is_named_by_its_first_comment():
    text = "# Predict pizza calories\n" + PIZZA.read_text().split("\n", 1)[1]
    d = cgviz.draw(text)
    assert d.source == "<text>" and any("exploding" in w for w in d.warnings)    # warnings keep <text>
    assert "<B>Predict pizza calories</B>  —  loss L = 100" in d.dot
    assert "&lt;text&gt;" not in d.dot and "<title>Predict pizza calories — loss L = 100</title>" in d.html()
    bare = cgviz.draw("param w = 2\nloss L = w * w\n")
    assert "<B>expression</B>  —  loss L = 4" in bare.dot and "&lt;text&gt;" not in bare.dot
    assert "<B>pizza.cg</B>" in cgviz.draw(PIZZA).dot                              # a file: its name


# ---- models in memory ------------------------------------------------------------------------------
class DictNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.body = torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.ReLU())
        self.head = torch.nn.Linear(6, 3)
        self.aux = torch.nn.Linear(6, 1)

    def forward(self, x):
        h = self.body(x)
        return {"logits": self.head(h), "aux": self.aux(h)}


def _plain_grads(model, x, loss):
    """What plain PyTorch gives for `loss` of the output."""
    import copy
    m = copy.deepcopy(model)
    loss(m(x)).backward()
    return {n: p.grad for n, p in m.named_parameters() if p.grad is not None}


def test_an_in_memory_module_with_dict_outputs_matches_pytorch():
    torch.manual_seed(0)
    model, x = DictNet().train(), torch.randn(5, 4)
    # no loss given: the fallback sums the output's logits (a prediction, as a named loss reads it)
    d = cgviz.draw(model, x)
    want = _plain_grads(model, x, lambda out: out["logits"].sum())
    assert set(want) == {"body.0.weight", "body.0.bias", "head.weight", "head.bias"}
    for name, g in want.items():
        assert d[name].grad is not None
        assert d[name].grad.stats["norm"] == pytest.approx(float(g.norm()), rel=1e-5)
    assert d.loss == pytest.approx(float(model(x)["logits"].sum()), rel=1e-5)
    assert "aux.weight" not in d and d.to_dict()["model"]["loss"] == "sum, no loss given"
    # the module is given back as it was: mode and .grad
    assert model.training and all(p.grad is None for p in model.parameters())
    assert "<svg" in d.svg()


def test_a_loss_of_both_dict_outputs_reaches_both_heads():
    torch.manual_seed(0)
    model, x = DictNet().train(), torch.randn(5, 4)
    loss = lambda out: out["logits"].pow(2).mean() + out["aux"].abs().mean()   # noqa: E731
    d = cgviz.draw(model, x, loss=loss)
    want = _plain_grads(model, x, loss)
    assert len(want) == 6
    for name, g in want.items():
        assert d[name].grad.stats["norm"] == pytest.approx(float(g.norm()), rel=1e-5)
    assert d.to_dict()["model"]["loss"] == "lambda(out)"


def test_the_module_keeps_its_mode_and_grads_when_asked_to_run_otherwise():
    model = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.Dropout(0.5)).eval()
    model[0].weight.grad = torch.ones(3, 3)
    cgviz.draw(model, torch.randn(2, 3), mode="train")
    assert not model.training and not model[1].training
    assert torch.equal(model[0].weight.grad, torch.ones(3, 3)) and model[0].bias.grad is None


def test_keyword_inputs_for_forward_as_hugging_face_models_take_them():
    class Seq2Seq(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.out = torch.nn.Embedding(10, 4), torch.nn.Linear(4, 3)

        def forward(self, input_ids=None, decoder_input_ids=None):
            return self.out(self.emb(input_ids).mean(1, keepdim=True) + self.emb(decoder_input_ids))

    torch.manual_seed(0)
    m = Seq2Seq()
    src, tgt = torch.tensor([[1, 2, 3]]), torch.tensor([[4, 5]])
    d = cgviz.draw(m, forward_kwargs={"input_ids": src, "decoder_input_ids": tgt})
    m(input_ids=src, decoder_input_ids=tgt).sum().backward()
    assert d.loss == pytest.approx(float(m(input_ids=src, decoder_input_ids=tgt).sum()), rel=1e-6)
    assert d.to_dict()["param_grad_norms"]["out.weight"] == pytest.approx(float(m.out.weight.grad.norm()), rel=1e-5)
    with pytest.raises(cgviz.CgvizError, match="forward_kwargs must be a dict"):
        cgviz.draw(m, forward_kwargs=[src])
    with pytest.raises(cgviz.CgvizError, match="declares its own inputs"):
        cgviz.draw(PIZZA, forward_kwargs={"x": src})


def test_input_size_as_torchview_takes_it():
    d = cgviz.draw(torch.nn.Linear(4, 2), input_size=(3, 4))
    assert d["weight"].grad.shape == (2, 4)
    with pytest.raises(cgviz.CgvizError, match="needs example inputs"):
        cgviz.draw(torch.nn.Linear(4, 2))


def test_a_function_with_tensors():
    a, b = torch.randn(3), torch.randn(3)
    d = cgviz.draw(lambda p, q: (p * q).sin().sum(), a, b)
    assert d.loss == pytest.approx(float((a * b).sin().sum()), rel=1e-6)
    a2 = a.clone().requires_grad_()
    (a2 * b).sin().sum().backward()
    assert np.allclose(d["input0"].grad.values, a2.grad.numpy(), rtol=1e-6)


def test_a_model_file_path():
    d = cgviz.draw(ROOT / "sample_graphs" / "models" / "res_cnn.py", loss="mean", depth=1)
    assert d.loss is not None and len(d) > 5 and "<svg" in d.svg()


# ---- make_dot ---------------------------------------------------------------------------------------
def _torchviz_fns(y, params):
    """The multiset of grad_fn labels torchviz's make_dot draws (its op nodes, not its tensor boxes)."""
    import torchviz
    g = torchviz.make_dot(y, params=params)
    labels = re.findall(r'^\s*\d+ \[label=(\w+)\]', g.source, re.M)
    return collections.Counter(labels)


def _cgviz_fns(d):
    return collections.Counter(n.op for n in d.graph if n.kind == "op" and n.op not in ("output", "base"))


@pytest.mark.parametrize("name", ["mlp", "rescnn", "tinygpt", "rnnloop", "dicttuple"])
def test_make_dot_draws_torchviz_graph(name):
    from models import zoo
    factory, inputs = zoo.MODELS[name]
    model = factory()
    y = zoo.scalar_loss(model(*inputs()))
    params = dict(model.named_parameters())
    want = _torchviz_fns(y, params)
    d = cgviz.make_dot(y, params=params)
    assert _cgviz_fns(d) == want and sum(want.values()) > 3
    # before backward cgviz takes every gradient itself and leaves .grad alone
    assert all(p.grad is None for p in params.values())
    y.backward()
    for n, p in params.items():
        assert d[n].grad.stats["norm"] == pytest.approx(float(p.grad.norm()), rel=1e-4, abs=1e-7)


def test_make_dot_after_backward_says_what_it_shows():
    w = torch.randn(3, requires_grad=True)
    y = (w.exp() * 2).sum()
    y.backward()
    d = cgviz.make_dot(y, params={"w": w})
    assert any("freed by backward" in n for n in d.notes)
    assert d["w"].grad.stats["norm"] == pytest.approx(float(w.grad.norm()))
    assert all(d.graph[e].kind != "op" or d[e].grad is None for e in d if d.graph[e].op == "MulBackward0")
    assert ".grad only" in d.dot


def test_draw_of_a_tensor_is_make_dot():
    w = torch.randn(2, requires_grad=True)
    d = cgviz.draw((w * w).sum())
    assert _cgviz_fns(d) == collections.Counter({"SumBackward0": 1, "MulBackward0": 1, "AccumulateGrad": 1})


# ---- the notebook -----------------------------------------------------------------------------------
def test_the_quickstart_notebook_runs_in_a_real_kernel(browser):  # noqa: F811  (test_html's chromium)
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.read(ROOT / "examples" / "quickstart.ipynb", as_version=4)
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert all(o.output_type != "error" for c in code for o in c.outputs)
    shown = [o for c in code for o in c.outputs if o.output_type == "execute_result"]
    svgs = [o.data["image/svg+xml"] for o in shown if "image/svg+xml" in o.data]
    assert len(svgs) == 3
    assert "4000" in svgs[0] and "fc1 · Linear" in svgs[1] and "AddmmBackward0" in svgs[2]
    assert "Predict pizza calories: one weight, a ReLU, a squared error" in svgs[0]     # its title
    assert "&lt;text&gt;" not in svgs[0]
    cells = [o.data["text/html"] for o in shown if "image/svg+xml" in o.data]         # what Jupyter shows
    assert all(_inline_svg(h) == _inline_svg(s) for h, s in zip(cells, svgs))
    assert "text/html" in shown[-1].data and "<iframe" in shown[-1].data["text/html"]
    printed = "".join(o.get("text", "") for o in code[0].outputs if o.output_type == "stream")
    assert printed.split()[:2] == ["4000.0", "100.0"]
    _fits_a_cell(browser, cells[0])


def _fits_a_cell(browser, html: str, cell: int = 700) -> None:
    """A notebook output's HTML in a cell `cell` px wide: the picture fits it, keeping its
    proportions; a click shows it at its natural size, scrolled in its box; a second click fits it again."""
    page = browser.new_page(viewport={"width": 1200, "height": 800})
    try:
        page.set_content(f'<div id="cell" style="width:{cell}px">{html}</div>')
        size = "() => { const r = document.querySelector('#cell svg').getBoundingClientRect(); return [r.width, r.height]; }"
        w, h = page.evaluate(size)
        vb = page.evaluate("() => document.querySelector('#cell svg').viewBox.baseVal.width / "
                           "document.querySelector('#cell svg').viewBox.baseVal.height")
        natural = page.evaluate("() => document.querySelector('#cell svg').width.baseVal.value")
        assert natural > cell and w == pytest.approx(cell, abs=1) and w / h == pytest.approx(vb, rel=0.01)
        page.click("#cell svg")
        assert page.evaluate(size)[0] == pytest.approx(natural, abs=1)
        assert page.evaluate("() => { const d = document.querySelector('#cell label > div'); "
                             "return d.scrollWidth > d.clientWidth; }")       # scrolled inside the cell
        page.click("#cell svg", position={"x": 10, "y": 10})
        assert page.evaluate(size)[0] == pytest.approx(cell, abs=1)
    finally:
        page.close()


def test_a_missing_input_file_is_named_as_the_keyword_was_written(tmp_path):
    missing = tmp_path / "nope.pt"
    with pytest.raises(cgviz.CgvizError, match=re.escape(f"input_file={str(missing)!r}: no such file")):
        cgviz.draw(ROOT / "sample_graphs" / "models" / "res_cnn.py", input_file=str(missing))


def test_every_name_of_the_old_api_module_is_reachable_from_the_package():
    """cgviz.api became a package of one-job modules; each name the single module had still loads from it."""
    import importlib

    import cgviz.api
    assert {"drawing", "backends", "drawer", "sources", "checks", "calls", "torchviz"} == set(cgviz.api._FROM)
    for name, module in cgviz.api._MODULE.items():
        assert getattr(cgviz.api, name) is getattr(importlib.import_module(f"cgviz.api.{module}"), name), name
    assert cgviz.api.draw is cgviz.draw and callable(cgviz.api.make_dot)    # no submodule hides a function
    assert set(cgviz.api.__all__) <= set(cgviz.api._MODULE) and "source_kind" in dir(cgviz.api)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        cgviz.api.nope


def test_the_moved_result_types_are_still_reachable_where_they_were():
    import pickle

    import cgviz.api
    from cgviz.api import results
    for name in ("Explanation", "GradientCheck", "GradientHealth", "NodeView"):
        assert getattr(cgviz.api, name) is getattr(results, name)
    view = results.NodeView("w", "param", None, 0.5, 4000.0)
    old_pickle = pickle.dumps(view, protocol=2).replace(b"cgviz.api.results\n", b"cgviz.api\n")   # as before the move
    assert b"cgviz.api\n" in old_pickle
    assert pickle.loads(old_pickle) == view


def test_a_comparison_shows_in_a_real_kernel(browser):  # noqa: F811  (test_html's chromium)
    """`cgviz.compare(a, b)` as a notebook cell's last line: Jupyter gets the diff picture (SVG and the
    fitted HTML), not a repr, and it fits the cell as a Drawing does."""
    import nbformat
    from nbclient import NotebookClient
    a = "input x = 3\nparam w = 0.5\nz = w * x\nloss L = z^2\n"
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(
        f"import cgviz\ncgviz.compare({a!r}, {a.replace('0.5', '0.6')!r})")])
    NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(ROOT)}}).execute()
    out = nb.cells[0].outputs
    assert all(o.output_type != "error" for o in out), out
    shown = [o for o in out if o.output_type == "execute_result"]
    assert len(shown) == 1 and "image/svg+xml" in shown[0].data and "text/html" in shown[0].data
    assert "first divergence" in shown[0].data["image/svg+xml"] and "0.5 → 0.6" in shown[0].data["image/svg+xml"]
    _fits_a_cell(browser, shown[0].data["text/html"], cell=300)
