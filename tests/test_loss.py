"""The loss backward starts from (cgviz.pytorch.loss): the user's (a function, an nn.Module loss with
targets, a name), the model's own (`out.loss`), else the output's sum, which says its scale means
nothing. Every drawn loss and gradient is held to plain PyTorch's for the same loss."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import warnings

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

import cgviz
from cgviz.pytorch.loss import FALLBACK, Loss
from conftest import ROOT

CLASSIFIER = ROOT / "sample_graphs" / "models" / "classifier.py"
LABELS = torch.tensor([2, 0, 1, 1])


def _plain(model, args, loss_of, kwargs=None):
    """The loss and every parameter's gradient in plain PyTorch, on a copy of the model."""
    import copy
    m = copy.deepcopy(model)
    torch.manual_seed(0)
    loss = loss_of(m(*args, **(kwargs or {})))
    loss.backward()
    return float(loss), {n: p.grad for n, p in m.named_parameters() if p.grad is not None}


def _same_grads(d, want):
    assert want
    for name, g in want.items():
        assert d[name].grad.stats["norm"] == pytest.approx(float(g.norm()), rel=1e-5, abs=1e-9), name


# ---- Hugging Face: the model's own loss ------------------------------------------------------------
@pytest.fixture(scope="module")
def gpt2():
    from transformers import GPT2Config, GPT2LMHeadModel
    from transformers.utils import logging
    logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = GPT2Config(vocab_size=100, n_embd=32, n_layer=2, n_head=2, n_positions=32, bos_token_id=0, eos_token_id=0)
    return GPT2LMHeadModel(cfg).eval(), torch.randint(0, 100, (2, 8))


def test_a_hugging_face_model_given_labels_is_drawn_with_its_own_loss_alone(gpt2):
    model, ids = gpt2
    d = cgviz.draw(model, forward_kwargs={"input_ids": ids, "labels": ids})
    with torch.no_grad():
        own = model(input_ids=ids, labels=ids)
    assert d.loss == float(own.loss)                # exactly the model's loss: not plus its summed logits
    tag = "the model's own (CausalLMOutputWithCrossAttentions.loss)"
    assert d.to_dict()["model"]["loss"] == tag
    assert f"loss: {tag} = {d.loss:.4g}".replace("'", "&#x27;") in d.dot.splitlines()[1]
    assert not d.notes and "no loss given" not in d.dot
    # the gradients are those of that loss, as plain PyTorch computes them
    _, want = _plain(model, (), lambda out: out.loss, {"input_ids": ids, "labels": ids})
    _same_grads(d, want)


def test_a_language_model_without_labels_falls_back_to_the_sum_and_says_so(gpt2):
    model, ids = gpt2
    d = cgviz.draw(model, ids)
    # the sum of the logits only: a cache of keys and values is no prediction
    assert d.loss == pytest.approx(float(model(ids).logits.sum()), rel=1e-5)
    assert d.to_dict()["model"]["loss"] == FALLBACK
    caveat = ("no loss given: backward starts from the output's sum, whose scale makes the gradients' sizes "
              "meaningless; give the loss you train with: loss=fn (a function of the output), or "
              "loss=nn.CrossEntropyLoss() with targets=y")
    assert d.notes == [caveat]
    assert "⚠ " + caveat.replace("'", "&#x27;") in d.dot     # a caption line under the title
    assert not any("exploding" in w or "vanishing" in w for w in d.warnings)    # no flags on a sum


def test_a_loss_given_wins_over_the_models_own_and_the_notes_say_both(gpt2):
    model, ids = gpt2

    def lm(out, y):
        return F.cross_entropy(out.logits[:, :-1].flatten(0, 1), y[:, 1:].flatten())
    d = cgviz.draw(model, forward_kwargs={"input_ids": ids, "labels": ids}, loss=lm, targets=ids)
    plain, want = _plain(model, (), lambda out: lm(out, ids), {"input_ids": ids, "labels": ids})
    assert d.loss == pytest.approx(plain, rel=1e-6)
    assert d.to_dict()["model"]["loss"] == "lm(out, targets)"
    assert any(n.startswith("the model also computed its own loss (CausalLMOutputWithCrossAttentions.loss = ")
               for n in d.notes)
    _same_grads(d, want)


def test_a_dict_output_with_a_loss_key_is_drawn_with_it():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 2)

        def forward(self, x, y):
            out = self.fc(x)
            return {"logits": out, "loss": F.mse_loss(out, y)}
    torch.manual_seed(0)
    net, x, y = Net(), torch.randn(4, 3), torch.randn(4, 2)
    d = cgviz.draw(net, x, y)
    plain, want = _plain(net, (x, y), lambda out: out["loss"])
    assert d.loss == plain and d.to_dict()["model"]["loss"] == "the model's own (out['loss'])"
    _same_grads(d, want)


# ---- functions, module losses and names, from Python -----------------------------------------------
def _mlp():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3)), torch.randn(4, 4)


def test_a_function_of_the_output():
    model, x = _mlp()
    fn = lambda out: F.cross_entropy(out, LABELS)      # noqa: E731
    d = cgviz.draw(model, x, loss=fn)
    plain, want = _plain(model, (x,), fn)
    assert d.loss == pytest.approx(plain, rel=1e-6) and d.to_dict()["model"]["loss"] == "lambda(out)"
    _same_grads(d, want)
    # its own ops are drawn, in the loss's scope, with their value on the loss node
    loss_ops = [n for n in d.to_dict()["nodes"] if n.get("module") == "loss"]
    assert [n["op"] for n in loss_ops] == ["cross_entropy"]
    assert f"loss = {d.loss:.4g}" in d.dot and "loss: lambda(out) = " in d.dot


def test_an_nn_module_loss_with_targets_draws_the_targets_as_data():
    model, x = _mlp()
    d = cgviz.draw(model, x, loss=nn.CrossEntropyLoss(), targets=LABELS)
    plain, want = _plain(model, (x,), lambda out: nn.CrossEntropyLoss()(out, LABELS))
    assert d.loss == pytest.approx(plain, rel=1e-6)
    assert d.to_dict()["model"]["loss"] == "CrossEntropyLoss(out, targets)"
    _same_grads(d, want)
    targets = next(n for n in d.to_dict()["nodes"] if n["id"] == "targets")
    assert targets["kind"] == "input" and targets["dtype"] == "int64" and targets["shape"] == [4]
    assert any(e["src"] == "targets" for e in d.to_dict()["edges"])


def test_targets_of_any_structure_go_to_a_function_as_given():
    model, x = _mlp()
    y = {"cls": LABELS, "w": torch.tensor([1.0, 0.5, 2.0, 1.0])}

    def weighted(out, t):
        return (F.cross_entropy(out, t["cls"], reduction="none") * t["w"]).mean()
    d = cgviz.draw(model, x, loss=weighted, targets=y)
    plain, want = _plain(model, (x,), lambda out: weighted(out, y))
    assert d.loss == pytest.approx(plain, rel=1e-6)
    _same_grads(d, want)
    assert {"targets.cls", "targets.w"} <= set(d)


@pytest.mark.parametrize("name, targets, plain", [
    ("ce", LABELS, lambda out: F.cross_entropy(out, LABELS)),
    ("mse", torch.ones(4, 3), lambda out: F.mse_loss(out, torch.ones(4, 3))),
    ("ce", torch.softmax(torch.arange(12.0).reshape(4, 3), -1),
     lambda out: F.cross_entropy(out, torch.softmax(torch.arange(12.0).reshape(4, 3), -1))),
])
def test_a_named_loss_compares_the_output_with_the_targets(name, targets, plain):
    model, x = _mlp()
    d = cgviz.draw(model, x, loss=name, targets=targets)
    value, want = _plain(model, (x,), plain)
    assert d.loss == pytest.approx(value, rel=1e-6)
    assert d.to_dict()["model"]["loss"] == f"{name} vs targets"
    _same_grads(d, want)


def test_ce_takes_an_lm_heads_classes_on_the_last_dimension():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(10, 6), nn.Linear(6, 10))
    ids = torch.randint(0, 10, (2, 5))
    d = cgviz.draw(model, ids, loss="ce", targets=ids)
    assert d.loss == pytest.approx(float(F.cross_entropy(model(ids).flatten(0, 1), ids.flatten())), rel=1e-6)


def test_the_names_without_targets_keep_their_meaning_and_the_title_says_it():
    model, x = _mlp()
    d = cgviz.draw(model, x, loss="ce")
    assert d.to_dict()["model"]["loss"] == "ce" and "loss (ce vs random classes) = " in d.dot
    d = cgviz.draw(model, x, loss="mse")
    assert d.loss == pytest.approx(float(model(x).pow(2).mean()), rel=1e-6) and "loss (mse vs zeros)" in d.dot


def test_gradient_health_and_check_gradients_take_the_loss(tmp_path):
    model, x = _mlp()
    y = torch.randn(4, 3)
    h = cgviz.gradient_health(model, x, loss=nn.MSELoss(), targets=y)
    _, want = _plain(model, (x,), lambda out: F.mse_loss(out, y))
    rows = {r.name: r for r in h.rows}
    for name, g in want.items():
        assert rows[name].grad_norm == pytest.approx(float(g.norm()), rel=1e-5)
    assert "MSELoss(out, targets)" in h.title and not h.notes
    torch.save(LABELS, tmp_path / "labels.pt")
    r = cgviz.check_gradients(str(CLASSIFIER), loss=lambda out, y: F.cross_entropy(out, y),
                              targets=str(tmp_path / "labels.pt"))
    assert r.ok and len(r.report.rows) == 5


def test_the_loss_is_recorded_in_the_autograd_view_too():
    model, x = _mlp()
    d = cgviz.draw(model, x, view="autograd", loss=nn.CrossEntropyLoss(), targets=LABELS)
    plain, want = _plain(model, (x,), lambda out: F.cross_entropy(out, LABELS))
    assert d.loss == pytest.approx(plain, rel=1e-6)
    _same_grads(d, want)


def test_the_loss_value_type_is_one_call_per_step():
    """What a training loop calls once per step: Loss(spec, targets)(out) → LossValue."""
    model, x = _mlp()
    loss = Loss(nn.CrossEntropyLoss(), LABELS)
    v = loss(model(x))
    assert v.tag == "CrossEntropyLoss(out, targets)" and not v.fallback and v.tensor.dim() == 0
    assert float(v.tensor) == pytest.approx(float(F.cross_entropy(model(x), LABELS)))
    assert Loss()(model(x)).fallback and Loss()(model(x).sum()).tag == "output"
    assert Loss("ce", LABELS).to(torch.float64).targets.dtype == torch.int64     # class indices stay integers
    assert Loss("mse", torch.ones(4, 3)).to(torch.float64).targets.dtype == torch.float64


# ---- errors, from Python -----------------------------------------------------------------------------
@pytest.mark.parametrize("kw, words", [
    (dict(loss=lambda out: out), "loss=lambda returned a tensor of shape [4×3], not one number; reduce it"),
    (dict(loss=lambda out: out.sum().item()), "loss=lambda returned the number"),
    (dict(loss=lambda out: "x"), "loss=lambda returned a str, not a tensor"),
    (dict(loss=lambda out: out.detach().sum()), "the loss is not connected to the model's graph"),
    (dict(loss=lambda out: torch.tensor(1.0, requires_grad=True)), "it is a new tensor, not computed from the output"),
    (dict(loss=lambda out: out.argmax()), "returned a int64 tensor"),
    (dict(loss=lambda out, y: F.cross_entropy(out, y)), "takes targets (lambda has 2 required arguments); give "
                                                       "them with targets="),
    (dict(loss=lambda out: out.sum(), targets=LABELS), "takes only the output, but targets were given (targets=)"),
    (dict(targets=LABELS), "targets (targets=) are compared with the output by a loss; give one too"),
    (dict(loss="sum", targets=LABELS), "loss='sum' takes no targets"),
    (dict(loss="ce", targets={"a": LABELS}), "loss='ce' compares the output with one tensor of targets, not a dict"),
    (dict(loss="mse", targets=LABELS), "loss='mse': the prediction out is [4×3] and the targets [4]"),
    (dict(loss="ce", targets=torch.zeros(3, dtype=torch.long)), "loss='ce': the class scores out are [4×3]"),
    (dict(loss=nn.CrossEntropyLoss(), targets=torch.zeros(7, dtype=torch.long)),
     "loss=CrossEntropyLoss() failed: ValueError: Expected input batch_size (4) to match target batch_size (7)"),
    (dict(loss=3), "loss=3: a int is not a loss; loss= takes a function of the output"),
    (dict(loss="focal"), "loss='focal' names a function of a Python model file, and Sequential is a nn.Module in "
                         "memory; pass the function itself: loss=fn"),
    (dict(loss=lambda out: 1 / 0), "loss=lambda failed: ZeroDivisionError: division by zero (at test_loss.py:"),
])
def test_a_bad_loss_says_what_is_wrong_and_what_is_accepted(kw, words):
    model, x = _mlp()
    with pytest.raises(cgviz.CgvizError) as e:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cgviz.draw(model, x, **kw)
    assert words in str(e.value)


def test_a_module_loss_that_needs_reshaping_says_how():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Embedding(10, 6), nn.Linear(6, 10))
    ids = torch.randint(0, 10, (2, 5))
    with pytest.raises(cgviz.CgvizError) as e:
        cgviz.draw(model, ids, loss=nn.CrossEntropyLoss(), targets=ids)
    assert ("It was called as CrossEntropyLoss(out [2×5×10], targets [2×5]), as PyTorch calls it; to reshape "
            "first (an LM's classes on the last dimension), use a function: loss=lambda out, y: "
            "F.cross_entropy(out.logits.flatten(0, 1), y.flatten())") in str(e.value)


def test_an_expression_or_a_tensor_takes_no_loss(pizza_text):
    with pytest.raises(cgviz.OptionError, match="loss=, targets= apply to a model"):
        cgviz.draw(pizza_text, loss="ce", targets=LABELS)
    w = torch.ones(2, requires_grad=True)
    with pytest.raises(cgviz.OptionError, match="pass the loss tensor itself"):
        cgviz.draw(w * 2, loss="sum")


# ---- the command line ----------------------------------------------------------------------------------
@pytest.fixture
def labels(tmp_path):
    torch.save(LABELS, tmp_path / "labels.pt")
    return tmp_path / "labels.pt"


def _json(cli, *args):
    r = cli("torch", *args, "-f", "json", "-o", "-")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout), r.stderr


def _classifier():
    ns: dict = {}
    exec(compile(CLASSIFIER.read_text(), str(CLASSIFIER), "exec"), ns)
    return ns


def test_loss_function_of_the_model_file_and_targets_file(cli, labels):
    doc, err = _json(cli, CLASSIFIER, "--loss", "loss", "--targets", labels)
    ns = _classifier()
    plain, want = _plain(ns["model"], ns["example_inputs"], lambda out: ns["loss"](out, LABELS))
    assert doc["model"]["loss"] == "loss(out, targets)" and doc["model"]["loss_value"] == pytest.approx(plain)
    for name, g in want.items():
        assert doc["param_grad_norms"][name] == pytest.approx(float(g.norm()), rel=1e-5)
    assert "note:" not in err


@pytest.mark.parametrize("spec, tag", [("torch.nn:CrossEntropyLoss", "CrossEntropyLoss(out, targets)"),
                                       ("torch.nn.functional:cross_entropy", "cross_entropy(out, targets)"),
                                       ("ce", "ce vs targets")])
def test_loss_module_function_or_name_with_targets(cli, labels, spec, tag):
    doc, _ = _json(cli, CLASSIFIER, "--loss", spec, "--targets", labels)
    ns = _classifier()
    plain, _ = _plain(ns["model"], ns["example_inputs"], lambda out: F.cross_entropy(out, LABELS))
    assert doc["model"]["loss"] == tag and doc["model"]["loss_value"] == pytest.approx(plain, rel=1e-6)


def test_loss_from_a_python_file_of_losses(cli, labels, tmp_path):
    (tmp_path / "losses.py").write_text("import torch.nn.functional as F\n"
                                        "def focal(out, targets):\n"
                                        "    p = F.cross_entropy(out, targets, reduction='none')\n"
                                        "    return ((1 - (-p).exp()) ** 2 * p).mean()\n")
    doc, _ = _json(cli, CLASSIFIER, "--loss", f"{tmp_path / 'losses.py'}:focal", "--targets", labels)
    assert doc["model"]["loss"] == "focal(out, targets)"


def test_check_and_grads_use_the_same_loss(cli, labels):
    r = cli("check", CLASSIFIER, "--loss", "loss", "--targets", labels)
    assert r.exit_code == 0, r.stdout + r.stderr
    assert r.stdout.splitlines()[-1] == "ok: 5 gradients agree with PyTorch autograd and finite differences"
    r = cli("grads", CLASSIFIER, "--loss", "loss", "--targets", labels, "--no-plots", "-f", "json")
    assert r.exit_code == 0 and "note:" not in r.stderr
    ns = _classifier()
    _, want = _plain(ns["model"], ns["example_inputs"], lambda out: ns["loss"](out, LABELS))
    got = {row["name"]: row["grad_norm"] for row in json.loads(r.stdout)["layers"]}
    for name, g in want.items():
        assert got[name] == pytest.approx(float(g.norm()), rel=1e-5)


def test_profile_and_dtype_and_meta_run_with_the_loss(cli, labels, tmp_path):
    r = cli("torch", CLASSIFIER, "--loss", "loss", "--targets", labels, "--profile", "-o", tmp_path / "p.svg")
    assert r.exit_code == 0, r.stderr
    assert "not seen" not in r.stderr and re.search(r"loss Loss\s+cross_entropy", r.stdout)
    torch.save(torch.ones(4, 3), tmp_path / "ones.pt")
    doc, _ = _json(cli, CLASSIFIER, "--loss", "mse", "--targets", tmp_path / "ones.pt", "--dtype", "float64")
    assert doc["model"]["loss"] == "mse vs targets"
    doc, _ = _json(cli, CLASSIFIER, "--loss", "ce", "--targets", labels, "--meta")
    assert doc["model"]["loss_value"] is None


def test_the_fallback_note_is_spelled_for_the_command_line(cli, tmp_path):
    r = cli("torch", CLASSIFIER, "-f", "dot", "-o", tmp_path / "c.dot")
    caveat = ("no loss given: backward starts from the output's sum, whose scale makes the gradients' sizes "
              "meaningless; give the loss you train with: --loss FUNCTION (a def loss(out, targets) in the "
              "model file, or MODULE:FUNCTION) with --targets FILE, or --loss ce|mse")
    assert r.stderr.startswith(f"note: {caveat}\n")
    assert "⚠ " + caveat.replace("'", "&#x27;") in (tmp_path / "c.dot").read_text()


class Evil:
    """Unpickling this runs code: a targets file must never be read that way."""

    def __reduce__(self):
        return (print, ("pwned",))


@pytest.mark.parametrize("args, status, words", [
    (["--loss", "a b"], 2, "Invalid value for '--loss': must be sum, mean, mse, ce, the name of a function in "
                           "the model file (def loss(out, targets)), or MODULE:FUNCTION"),
    (["--loss", "nope"], 2, "classifier.py defines no 'nope'; its functions: loss. --loss takes"),
    (["--loss", "loss"], 2, "--loss loss takes targets (loss has 2 required arguments); give them with "
                            "--targets FILE"),
    (["--targets", "LABELS"], 2, "targets (--targets FILE) are compared with the output by a loss; give one too: "
                                 "--loss takes sum, mean, mse, ce"),
    (["--loss", "sum", "--targets", "LABELS"], 2, "--loss sum takes no targets"),
    (["--loss", "loss", "--targets", "missing.pt"], 1, "--targets missing.pt: no such file. Give targets saved with "
                                                       "torch.save(tensor, path)"),
    (["--loss", "loss", "--targets", "CODE"], 1, "code.pt holds pickled code, not just tensors; save the targets "
                                                 "with torch.save(tensor, path)"),
    (["--loss", "nomod_xyz:f"], 1, "--loss nomod_xyz:f: could not import nomod_xyz (ModuleNotFoundError"),
    (["--loss", "torch.nn:NoSuchLoss"], 2, "--loss torch.nn:NoSuchLoss: module torch.nn has no 'NoSuchLoss'"),
    (["--loss", "torch:float32"], 2, "float32 in torch is a dtype, not a function or an nn.Module loss class"),
    (["--loss", "x.py:f"], 1, "--loss x.py: no such file"),
])
def test_command_line_mistakes_point_at_the_option(cli, labels, tmp_path, args, status, words):
    torch.save(Evil(), tmp_path / "code.pt")
    args = [str(labels) if a == "LABELS" else str(tmp_path / "code.pt") if a == "CODE" else
            str(tmp_path / a) if a == "missing.pt" else a for a in args]
    r = cli("torch", CLASSIFIER, *args, "-o", tmp_path / "x.svg")
    assert r.exit_code == status, r.stderr
    assert words.replace("missing.pt", str(tmp_path / "missing.pt")) in r.stderr
    assert "Traceback" not in r.stderr and "pwned" not in r.stdout + r.stderr
    assert not (tmp_path / "x.svg").exists()


def test_a_function_name_needs_a_python_model_file(cli, tmp_path):
    ns = _classifier()
    ep = torch.export.export(ns["model"], ns["example_inputs"])
    torch.export.save(ep, tmp_path / "clf.pt2")
    r = cli("torch", tmp_path / "clf.pt2", "--loss", "loss", "-o", tmp_path / "x.svg")
    assert r.exit_code == 2
    assert ("--loss loss names a function of a Python model file, and " in r.stderr
            and "is a torch.export program; name a module's function with --loss MODULE:FUNCTION" in r.stderr)


def test_targets_are_an_input_no_output_may_overwrite(cli, labels):
    r = cli("torch", CLASSIFIER, "--loss", "loss", "--targets", labels, "-f", "svg", "-o", labels)
    assert r.exit_code == 2 and "--targets" in r.stderr
    assert torch.equal(torch.load(labels), LABELS)


# ---- snapshot manifests --------------------------------------------------------------------------------
def test_a_manifest_takes_loss_and_targets_relative_to_its_folder(cli, tmp_path):
    shutil.copy(CLASSIFIER, tmp_path / "clf.py")
    torch.save(LABELS, tmp_path / "labels.pt")
    (tmp_path / "losses.py").write_text("import torch.nn.functional as F\n"
                                        "def smooth(out, t):\n    return F.cross_entropy(out, t, label_smoothing=0.1)\n")
    (tmp_path / "cgviz.toml").write_text('[[entry]]\nname = "own"\nmodel = "clf.py"\nloss = "loss"\n'
                                         'targets = "labels.pt"\n\n'
                                         '[[entry]]\nname = "file"\nmodel = "clf.py"\nloss = "losses.py:smooth"\n'
                                         'targets = "labels.pt"\n')
    r = cli("snapshot", tmp_path / "cgviz.toml", "--golden", tmp_path / "g", "--out", tmp_path / "o", "--update")
    assert r.exit_code == 0, r.stdout + r.stderr
    own = json.loads((tmp_path / "g" / "own.json").read_text())
    other = json.loads((tmp_path / "g" / "file.json").read_text())
    assert own["model"]["loss"] == "loss(out, targets)" and other["model"]["loss"] == "smooth(out, targets)"
    assert own["loss_value"] == pytest.approx(other["loss_value"])      # the same loss, written twice


def test_a_manifest_may_not_reach_outside_its_folder_for_a_loss(cli, tmp_path):
    (tmp_path / "m").mkdir()
    shutil.copy(CLASSIFIER, tmp_path / "m" / "clf.py")
    (tmp_path / "losses.py").write_text("def f(out):\n    return out.sum()\n")
    (tmp_path / "m" / "cgviz.toml").write_text('[[entry]]\nmodel = "clf.py"\nloss = "../losses.py:f"\n')
    r = cli("snapshot", tmp_path / "m" / "cgviz.toml", "--golden", tmp_path / "g", "--out", tmp_path / "o")
    assert r.exit_code == 2 and "loss '../losses.py' lies outside the manifest's folder" in r.stderr


# ---- the docs page's examples ------------------------------------------------------------------------
DOC = (ROOT / "docs" / "loss.md").read_text(encoding="utf-8")


@pytest.mark.parametrize("code, expected", re.findall(r"```python\n(.*?)```\s*```text\n(.*?)```", DOC, re.S))
def test_the_docs_python_examples_print_what_they_show(code, expected, tmp_path):
    shutil.copytree(ROOT / "sample_graphs", tmp_path / "sample_graphs")
    p = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.rstrip() == expected.rstrip()
