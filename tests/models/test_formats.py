"""`cgviz torch` on every zoo model in every saved format: the numbers equal plain PyTorch's, the
autograd view has torchviz's node set, and each broken file gets its message."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
import torch
from click.testing import CliRunner

import zoo
from cgviz.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.* is deprecated:DeprecationWarning")
NAMES = list(zoo.MODELS)


def _run(*args):
    r = CliRunner().invoke(main, ["torch", *map(str, args)], catch_exceptions=False)
    return r


def _doc(*args):
    r = _run(*args, "--format", "json", "-o", "-")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def _reference(name):
    """Plain PyTorch: loss and parameter gradient norms, for the loss cgviz uses by default."""
    torch.manual_seed(0)
    model = zoo.MODELS[name][0]()
    out = model(*zoo.example_inputs(name))
    floats = [t for t in torch.utils._pytree.tree_flatten(out)[0]
              if isinstance(t, torch.Tensor) and t.is_floating_point()]
    loss = floats[0].reshape(()) if len(floats) == 1 and floats[0].numel() == 1 else sum(t.sum() for t in floats)
    loss.backward()
    return float(loss), {n: float(p.grad.norm()) for n, p in model.named_parameters() if p.grad is not None}


def _args(fmt, files):
    if fmt == "pt2":
        return [files["pt2"]]                                   # brings its own example inputs
    if fmt == "ts":
        return [files["ts"], "--input", files["inputs"]]
    if fmt == "pkl":
        return [files["pkl"], "--trust", "--input", files["inputs"]]
    raise AssertionError(fmt)


@pytest.mark.parametrize("fmt", ["pt2", "ts", "pkl"])
@pytest.mark.parametrize("name", NAMES)
def test_every_format_gives_plain_pytorchs_gradients(saved_models, name, fmt):
    doc = _doc(*_args(fmt, saved_models[name]))
    loss, norms = _reference(name)
    assert doc["model"]["loss_value"] == pytest.approx(loss, rel=1e-5, abs=1e-6)
    for pname, n in norms.items():
        assert doc["param_grad_norms"][pname] == pytest.approx(n, rel=1e-5, abs=1e-9), pname
    ops = [n for n in doc["nodes"] if n["kind"] == "op"]
    assert len(ops) > 3 and all(n["op"] for n in ops)
    # parameters appear by qualified name, attached to the module they belong to
    params = {n["name"]: n for n in doc["nodes"] if n["kind"] == "param"}
    assert set(params) <= set(norms) | {k for k in doc["param_grad_norms"]}
    for pname, node in params.items():
        assert node["module"] == pname.rpartition(".")[0]


@pytest.mark.parametrize("fmt", ["pt2", "ts", "pkl"])
def test_module_clusters_are_attribute_paths_in_every_format(saved_models, fmt):
    r = _run(*_args(fmt, saved_models["rescnn"]), "--no-fold", "--format", "dot", "-o", "-")
    assert r.exit_code == 0, r.stderr
    assert "layers.0 · " in r.stdout or "cluster_layers/layers.0" in r.stdout
    assert "layers.2.conv2.weight" in r.stdout


def test_python_file_and_its_state_dict(saved_models, tmp_path):
    from pathlib import Path
    here = Path(zoo.__file__).parent
    r = _run(saved_models["mlp"]["state"])
    assert r.exit_code == 1 and "state_dict" in r.stderr and "--weights" in r.stderr
    doc = _doc(here / "mlp_file.py", "--weights", saved_models["mlp"]["state"])
    loss, norms = _reference("mlp")
    assert doc["model"]["loss_value"] == pytest.approx(loss, rel=1e-5)
    for pname, n in norms.items():
        assert doc["param_grad_norms"][pname] == pytest.approx(n, rel=1e-5), pname
    # the weights really came from the file: zero them and the loss changes
    torch.save({k: torch.zeros_like(v) for k, v in torch.load(saved_models["mlp"]["state"]).items()},
               tmp_path / "zeros.pt")
    zero = _doc(here / "mlp_file.py", "--weights", tmp_path / "zeros.pt")
    assert zero["model"]["loss_value"] == 0.0


def test_factory_file(saved_models):
    from pathlib import Path
    here = Path(zoo.__file__).parent
    r = _run(f"{here / 'factory_file.py'}:build", "--input-shape", "4,16", "--format", "json", "-o", "-")
    assert r.exit_code == 0, r.stderr


def test_pickled_module_without_trust_runs_nothing(saved_models):
    r = _run(saved_models["mlp"]["pkl"])
    assert r.exit_code == 1 and "--trust" in r.stderr and "zoo.MLP" in r.stderr


@pytest.mark.parametrize("key, words", [("random", "not a model file"), ("truncated", "truncated"),
                                        ("empty", "empty"), ("text", "not Python source")])
def test_broken_files(saved_models, key, words):
    r = _run(saved_models["broken"][key])
    assert r.exit_code == 1 and words in r.stderr and "Traceback" not in r.stderr


def _torchviz_nodes(name):
    """(Counter of grad_fn names, set of parameter names) in torchviz's make_dot of the same run."""
    import torchviz

    from cgviz.pytorch.loss import Loss
    torch.manual_seed(0)
    model = zoo.MODELS[name][0]()
    # as cgviz runs it: float inputs need a gradient (so ∂L/∂x is drawn), the same loss
    args = torch.utils._pytree.tree_map(
        lambda t: t.clone().requires_grad_() if isinstance(t, torch.Tensor) and t.is_floating_point() else t,
        zoo.example_inputs(name))
    loss = Loss()(model(*args)).tensor
    dot = torchviz.make_dot(loss, params=dict(model.named_parameters()))
    labels = [m.group(1) for line in dot.body for m in [re.search(r'\blabel="?([^"\]\n]+)', line)] if m
              and "->" not in line]
    fns = Counter(lab for lab in labels if re.fullmatch(r"[A-Za-z0-9]+Backward\d*|AccumulateGrad", lab))
    params = {lab.split("\n")[0].strip() for lab in labels if lab.split("\n")[0].strip() in dict(model.named_parameters())}
    return fns, params


@pytest.mark.parametrize("name", NAMES)
def test_autograd_view_has_torchvizs_nodes(saved_models, name):
    doc = _doc(saved_models[name]["pkl"], "--trust", "--input", saved_models[name]["inputs"], "--view", "autograd")
    fns = Counter(n["op"] for n in doc["nodes"] if n["kind"] == "op" and n["op"] not in ("output", "base"))
    want_fns, want_params = _torchviz_nodes(name)
    assert fns == want_fns
    assert {n["name"] for n in doc["nodes"] if n["kind"] == "param"} >= want_params


def test_same_command_twice_same_dot_for_every_format(saved_models):
    for fmt in ("pt2", "ts"):
        a = _run(*_args(fmt, saved_models["tinygpt"]), "--format", "dot", "-o", "-").stdout
        b = _run(*_args(fmt, saved_models["tinygpt"]), "--format", "dot", "-o", "-").stdout
        assert a == b and "blocks.0" in a


@pytest.mark.parametrize("fmt", ["pt2", "ts", "pkl"])
def test_the_rnn_loop_folds_in_every_format(saved_models, fmt):
    r = _run(*_args(fmt, saved_models["rnnloop"]), "--format", "dot", "-o", "-")
    assert r.exit_code == 0, r.stderr
    assert "time_step=20" in r.stdout
    # the per-step input slicing (x[:, t]; slice + select in TorchScript) is one node, not 20
    assert r.stdout.count("×20</B>") >= 1
    drawn = len(re.findall(r'^\s+"[^"]+" \[', r.stdout, re.M))
    doc = _doc(*_args(fmt, saved_models["rnnloop"]))
    assert len(doc["nodes"]) > 100 and drawn < 25
    assert [n["id"] for n in doc["nodes"] if n["kind"] == "input"] == ["x"]


@pytest.mark.parametrize("fmt", ["pt2", "ts"])
def test_token_ids_stay_inside_the_embedding_tables_in_every_format(saved_models, fmt):
    smallest = min(m.num_embeddings for m in zoo.tinygpt().modules() if isinstance(m, torch.nn.Embedding))
    doc = _doc(saved_models["tinygpt"][fmt], "--input-shape", "1,16:long", "--seed", "5")
    ids = next(n for n in doc["nodes"] if n["kind"] == "input")
    assert ids["dtype"] == "int64" and 0 <= ids["value_stats"]["min"] and ids["value_stats"]["max"] < smallest
    assert ids["value_stats"]["max"] >= smallest // 2          # drawn over the range, not just 0…9


def test_meta_on_a_saved_program(saved_models):
    doc = _doc(saved_models["rescnn"]["pt2"], "--meta")
    assert doc["model"]["loss_value"] is None
    assert all(n["value_stats"] is None for n in doc["nodes"] if n["kind"] == "op")
    r = _run(saved_models["rescnn"]["ts"], "--input", saved_models["rescnn"]["inputs"], "--meta")
    assert r.exit_code == 1 and "cannot move to the meta device" in r.stderr


def test_input_shape_on_a_torchscript_model_without_embeddings(saved_models):
    """A TorchScript graph's `nodes` is a method, not an fx node list: reading it for embedding ops crashed."""
    doc = _doc(saved_models["rescnn"]["ts"], "--input-shape", "2,3,16,16")
    x = next(n for n in doc["nodes"] if n["kind"] == "input")
    assert x["shape"] == [2, 3, 16, 16]
