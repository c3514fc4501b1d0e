"""ONNX files (cgviz.pytorch.onnx_graph, onnx_source, sources): models exported from PyTorch are run by
cgviz's op table; forward values equal onnxruntime's, gradients equal PyTorch's on the original module,
repeated blocks fold, and what cannot be converted or read is refused by name, with nothing drawn."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn as nn

import onnx          # the onnx extra; `make install` has it, so CI runs these
import onnxruntime as ort
from onnx import TensorProto, helper  # noqa: E402


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(4, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)

    def forward(self, x):
        return torch.relu(self.bn(self.conv1(x)) + x)


class SmallCNN(nn.Module):
    """A stem, two residual blocks with BatchNorm, pooling and a linear head."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 3)
        self.layer1 = nn.Sequential(Block(), Block())
        self.pool = nn.MaxPool2d(2)
        self.fc = nn.Linear(4, 5)

    def forward(self, x):
        x = self.pool(self.layer1(self.stem(x)))
        return self.fc(torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1))


class Attention(nn.Module):
    def __init__(self, d=8, heads=2):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d)
        self.fc1 = nn.Linear(d, 16)
        self.fc2 = nn.Linear(16, d)

    def forward(self, x):
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q, k, v = [z.reshape(b, t, self.heads, d // self.heads).transpose(1, 2) for z in (q, k, v)]
        a = torch.softmax(q @ k.transpose(-2, -1) / math.sqrt(d // self.heads), dim=-1) @ v
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.fc2(nn.functional.gelu(self.fc1(self.ln2(x))))


class TinyTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 8)
        self.blocks = nn.Sequential(Attention(), Attention(), Attention())
        self.head = nn.Linear(8, 20)

    def forward(self, ids):
        return self.head(self.blocks(self.emb(ids)))


def _mlp():
    return nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 16), nn.ReLU(), nn.Linear(16, 3))


def _export(model, x, path, name, dynamic=None):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the TorchScript-based exporter: its node names carry the module scopes
        # (/layer1/layer1.0/conv1/Conv), and it needs nothing beyond the onnx package
        torch.onnx.export(model, (x,), str(path), dynamo=False, input_names=[name], dynamic_axes=dynamic,
                          do_constant_folding=False, training=torch.onnx.TrainingMode.PRESERVE)
    return path


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name → (original module, its input, the .onnx path, the input saved for --input)."""
    d = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    cnn = SmallCNN().eval()
    for b in cnn.layer1:        # running statistics that are not the identity, so BatchNorm counts
        b.bn.running_mean.uniform_(-0.5, 0.5)
        b.bn.running_var.uniform_(0.5, 2.0)
    models = {
        "mlp": (_mlp().eval(), torch.randn(4, 6), "x", None),
        "cnn": (cnn, torch.randn(2, 3, 9, 9), "x", {"x": {0: "batch"}}),
        "transformer": (TinyTransformer().eval(), torch.randint(0, 20, (2, 5)), "ids",
                        {"ids": {0: "batch", 1: "seq"}}),
    }
    out = {}
    for key, (model, x, name, dynamic) in models.items():
        path = _export(model, x, d / f"{key}.onnx", name, dynamic)
        inputs = d / f"{key}_x.pt"
        torch.save(x, inputs)
        out[key] = (model, x, path, inputs)
    return out


def _json(cli, *args):
    r = cli("torch", *args, "--format", "json", "-o", "-", "-q")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("key", ["mlp", "cnn", "transformer"])
def test_forward_values_equal_onnxruntime(exported, key):
    from cgviz.pytorch.load import load_model
    _, x, path, _ = exported[key]
    loaded = load_model(str(path))
    assert loaded.kind == "onnx" and loaded.description == "ONNX model"
    ours = loaded.model(x).detach().numpy()
    name = loaded.model.declared[0][0]
    theirs = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, {name: x.numpy()})[0]
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("key", ["mlp", "cnn", "transformer"])
def test_gradients_equal_pytorch_on_the_original_module(cli, exported, key):
    model, x, path, inputs = exported[key]
    x = x.clone().requires_grad_(x.is_floating_point())
    model.zero_grad()
    out = model(x)
    out.sum().backward()                # cgviz's loss when none is given: the output's sum
    doc = _json(cli, path, "--input", inputs)
    loss = next(n for n in doc["nodes"] if n["id"] == doc["loss"])
    assert loss["value"] == pytest.approx(float(out.sum().detach()), rel=1e-5, abs=1e-5)
    theirs = {n: float(p.grad.norm()) for n, p in model.named_parameters()}
    ours = doc["param_grad_norms"]
    # every parameter of the original module is a parameter of the ONNX graph, under its own name
    # (a transposed MatMul weight, a deduplicated LayerNorm weight, an anonymous one named by its op)
    assert set(theirs) <= set(ours), set(theirs) - set(ours)
    for name, norm in theirs.items():
        assert ours[name] == pytest.approx(norm, rel=1e-4, abs=1e-6), name
    if x.is_floating_point():
        node = next(n for n in doc["nodes"] if n["kind"] == "input")
        assert node["grad_stats"]["norm"] == pytest.approx(float(x.grad.norm()), rel=1e-4)


def test_ops_are_named_by_onnx_op_type_in_their_modules(cli, exported):
    doc = _json(cli, exported["cnn"][2], "--input", exported["cnn"][3])
    ops = {(n["op"], n["module"]) for n in doc["nodes"] if n["kind"] == "op"}
    assert ("Conv", "layer1.0.conv1") in ops and ("BatchNormalization", "layer1.1.bn") in ops
    assert ("Add", "layer1.1") in ops and ("Gemm", "fc") in ops


@pytest.mark.parametrize("key, blocks", [("cnn", "<B>layer1.0 … layer1.1</B>  layer1  <B>×2</B>"),
                                         ("transformer", "<B>blocks.0 … blocks.2</B>")])
def test_repeated_blocks_fold(cli, exported, key, blocks):
    r = cli("torch", exported[key][2], "--input", exported[key][3], "-f", "dot", "-o", "-", "-q")
    assert r.exit_code == 0, r.stderr
    assert blocks in r.stdout


def test_symbolic_dimensions_are_asked_for_by_name(cli, exported, tmp_path):
    path = exported["transformer"][2]
    out = tmp_path / "t.svg"
    r = cli("torch", path, "-o", out)
    assert r.exit_code == 1
    assert "input 'ids' has the symbolic dimension 'batch'" in r.stderr and "--dim batch=N" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()
    r = cli("torch", path, "--dim", "batch=2", "-o", out)
    assert r.exit_code == 1 and "symbolic dimension 'seq'" in r.stderr
    doc = _json(cli, path, "--dim", "batch=3", "--dim", "seq=4")
    node = next(n for n in doc["nodes"] if n["kind"] == "input")
    assert node["shape"] == [3, 4] and node["dtype"] == "int64"
    assert node["value_stats"]["max"] < 20          # token ids within the embedding table


def test_a_bad_dim_is_a_usage_error(cli, exported):
    r = cli("torch", exported["mlp"][2], "--dim", "batch")
    assert r.exit_code == 2 and "NAME=SIZE" in r.stderr


def test_inputs_come_from_the_declared_shapes(cli, exported):
    doc = _json(cli, exported["mlp"][2])          # no --input: a random one of the file's shape
    node = next(n for n in doc["nodes"] if n["kind"] == "input")
    assert node["name"] == "x" and node["shape"] == [4, 6] and node["dtype"] == "float32"


def test_draw_from_python(exported):
    import cgviz
    from cgviz.core.errors import CgvizError
    model, x, path, _ = exported["mlp"]
    drawing = cgviz.draw(str(path), x)
    assert "Gemm" in drawing.dot and "Tanh" in drawing.dot
    path = exported["transformer"][2]
    with pytest.raises(CgvizError, match=r"symbolic dimension 'batch': give its size with dims=\{'batch': N\}"):
        cgviz.draw(str(path))
    drawing = cgviz.draw(str(path), dims={"batch": 2, "seq": 3})
    assert json.loads(drawing.json())["model"]["inputs"] == "[2×3] int64"


def _model(nodes, inputs, outputs, initializers=(), opset=17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _vi(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def test_an_op_without_a_mapping_is_named_and_nothing_is_drawn(cli, tmp_path):
    m = _model([helper.make_node("Relu", ["x"], ["h"], name="/act/Relu"),
                helper.make_node("Hardmax", ["h"], ["y"], name="/head/Hardmax")],
               [_vi("x", [2, 3])], [_vi("y", [2, 3])])
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    out = tmp_path / "m.svg"
    r = cli("torch", path, "-o", out)
    assert r.exit_code == 1 and not out.exists()
    assert "/head/Hardmax (Hardmax)" in r.stderr and "nothing was drawn" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_control_flow_subgraph_is_named(cli, tmp_path):
    branch = helper.make_graph([helper.make_node("Identity", ["x"], ["z"])], "b", [], [_vi("z", [2])])
    cond = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
    m = _model([helper.make_node("If", ["c"], ["y"], name="/gate/If", then_branch=branch, else_branch=branch)],
               [cond, _vi("x", [2])], [_vi("y", [2])])
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    r = cli("torch", path, "-o", tmp_path / "m.svg")
    assert r.exit_code == 1 and "/gate/If is a If, a control-flow op" in r.stderr


def test_an_op_from_another_domain_is_named(cli, tmp_path):
    m = _model([helper.make_node("FusedGemm", ["x", "x"], ["y"], name="fused", domain="com.microsoft")],
               [_vi("x", [2, 2])], [_vi("y", [2, 2])])
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    path = tmp_path / "m.onnx"
    onnx.save(m, path)
    r = cli("torch", path, "-o", tmp_path / "m.svg")
    assert r.exit_code == 1 and "fused (com.microsoft.FusedGemm)" in r.stderr


@pytest.mark.parametrize("damage", ["garbage", "truncated", "dangling", "empty-graph"])
def test_a_corrupt_or_hostile_file_is_a_clean_error(cli, exported, tmp_path, damage):
    good = exported["cnn"][2].read_bytes()
    path = tmp_path / "bad.onnx"
    if damage == "garbage":
        path.write_bytes(np.random.default_rng(0).bytes(4000))
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif damage == "dangling":     # a node reading a tensor nothing makes: the checker refuses it
        onnx.save(_model([helper.make_node("Relu", ["nowhere"], ["y"], name="r")], [_vi("x", [2])],
                         [_vi("y", [2])]), path)
    else:
        onnx.save(_model([], [_vi("x", [2])], [_vi("x", [2])]), path)
    out = tmp_path / "bad.svg"
    r = cli("torch", path, "-o", out)
    assert r.exit_code == 1, r.stderr
    assert "not a valid ONNX model" in r.stderr or "not an ONNX model with a graph" in r.stderr
    assert "Traceback" not in r.stderr and not out.exists()


def test_external_data_is_refused_before_reading_it(cli, tmp_path):
    w = onnx.numpy_helper.from_array(np.array([1.0, 2.0], dtype=np.float32), "w")   # raw data: saved outside
    m = _model([helper.make_node("Mul", ["x", "w"], ["y"], name="/m/Mul")], [_vi("x", [2])], [_vi("y", [2])], [w])
    onnx.save(m, tmp_path / "m.onnx", save_as_external_data=True, all_tensors_to_one_file=True,
              location="weights.bin", size_threshold=0)
    assert (tmp_path / "weights.bin").exists()
    r = cli("torch", tmp_path / "m.onnx", "-o", tmp_path / "m.svg")
    assert r.exit_code == 1 and "initializer w keeps its data in an external file" in r.stderr


SAMPLES = ["res_cnn", "tiny_gpt", "tiny_llama", "tiny_t5", "rnn_loop", "classifier"]


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """The sample models (sample_graphs/models) exported to ONNX: name → (module, inputs, path, inputs file)."""
    import sys

    from conftest import ROOT
    d = tmp_path_factory.mktemp("samples")
    out = {}
    folder = str(ROOT / "sample_graphs" / "models")
    sys.path.insert(0, folder)          # tiny_t5 imports tiny_llama, as `cgviz torch` lets it
    try:
        yield _export_samples(d, out)
    finally:
        sys.path.remove(folder)


def _export_samples(d, out):
    import importlib.util

    from conftest import ROOT
    for name in SAMPLES:
        spec = importlib.util.spec_from_file_location(f"onnx_{name}", ROOT / "sample_graphs" / "models" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        model = (mod.model if hasattr(mod, "model") else mod.build()).eval()
        ex = getattr(mod, "example_inputs", None)
        ex = ex() if callable(ex) else ex
        ex = (ex,) if isinstance(ex, torch.Tensor) else tuple(ex) if ex is not None else (
            torch.randint(0, 64, (1, 16), generator=torch.Generator().manual_seed(0)),)
        path = d / f"{name}.onnx"
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(model, ex, str(path), dynamo=False, do_constant_folding=False,
                              training=torch.onnx.TrainingMode.PRESERVE)
        inputs = d / f"{name}_inputs.pt"
        torch.save(ex, inputs)
        out[name] = (model, ex, path, inputs)
    return out


@pytest.mark.parametrize("name", SAMPLES)
def test_sample_models_exported_to_onnx_equal_onnxruntime_and_pytorch(cli, samples, name):
    """Held out: models written for the other sources, exported as a user would, with no change made
    for this source: forward equals onnxruntime's, every gradient norm equals PyTorch's."""
    from cgviz.pytorch.load import load_model
    model, ex, path, inputs = samples[name]
    ours = load_model(str(path)).model(*ex)
    ours = ours[0] if isinstance(ours, tuple) else ours
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    theirs = sess.run(None, {i.name: a.numpy() for i, a in zip(sess.get_inputs(), ex)})[0]
    np.testing.assert_allclose(ours.detach().numpy(), theirs, rtol=1e-4, atol=1e-5)

    model.zero_grad()
    out = model(*[a.clone() for a in ex])
    out = out[0] if isinstance(out, tuple) else out
    out.sum().backward()
    doc = _json(cli, path, "--input", inputs)
    grads = {n: float(p.grad.norm()) for n, p in model.named_parameters() if p.grad is not None}
    assert grads and set(grads) <= set(doc["param_grad_norms"]), set(grads) - set(doc["param_grad_norms"])
    for n, norm in grads.items():
        assert doc["param_grad_norms"][n] == pytest.approx(norm, rel=1e-4, abs=1e-6), n


def test_shape_arithmetic_is_not_drawn(cli, exported):
    """The exporter's Shape → Gather → Unsqueeze → Concat chains are PyTorch's `x.shape` arithmetic:
    computed, not drawn, as `cgviz torch` on the Python model draws no node for `x.reshape(b, t, -1)`."""
    doc = _json(cli, exported["transformer"][2], "--input", exported["transformer"][3])
    ops = [n["op"] for n in doc["nodes"] if n["kind"] == "op"]
    assert "Reshape" in ops and not {"Shape", "Concat", "Unsqueeze"} & set(ops)


def test_a_sample_language_model_folds_like_its_python_source(cli, samples):
    r = cli("torch", samples["tiny_gpt"][2], "--input", samples["tiny_gpt"][3], "--depth", "3", "-f", "dot", "-o", "-", "-q")
    assert r.exit_code == 0 and "<B>blocks.0 … blocks.3</B>" in r.stdout


def test_the_newer_exporters_scope_metadata_gives_modules_and_classes(cli, tmp_path):
    """torch.onnx.export(dynamo=True) names nodes `node_Gemm_0` and keeps the module path and class
    of each node in its metadata (two aligned lists, from the root '' to the node itself)."""
    w = onnx.numpy_helper.from_array(np.ones((3, 2), dtype=np.float32), "p_fc_weight")
    nodes = []
    for k in range(2):
        node = helper.make_node("Gemm", ["x", "p_fc_weight"], [f"h{k}"], name=f"node_Gemm_{k}", transB=1)
        node.metadata_props.add(key="pkg.torch.onnx.name_scopes", value=f"['', 'layers', 'layers.{k}', 'linear']")
        node.metadata_props.add(key="pkg.torch.onnx.class_hierarchy",
                                value="['__main__.Net', 'torch.nn.modules.container.Sequential', "
                                      "'__main__.Block', 'aten.linear.default']")
        nodes.append(node)
    nodes.append(helper.make_node("Add", ["h0", "h1"], ["y"], name="node_Add_2"))
    path = tmp_path / "m.onnx"
    onnx.save(_model(nodes, [_vi("x", [4, 2])], [_vi("y", [4, 3])], [w]), path)
    doc = _json(cli, path)
    ops = {n["id"]: (n["module"], n["module_class"], n["module_call"]) for n in doc["nodes"] if n["kind"] == "op"}
    assert ops["layers.0/Gemm"] == ("layers.0", "Block", ["layers", "layers.0"])
    assert ops["layers.1/Gemm"] == ("layers.1", "Block", ["layers", "layers.1"])
    assert ops["Add"][0] == ""


def test_meta_is_refused_with_the_reason(cli, exported):
    r = cli("torch", exported["mlp"][2], "--meta", "-o", "-", "-f", "json")
    assert r.exit_code == 1 and "--meta cannot run an ONNX graph" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("dtype", ["float64"])
def test_dtype_casts_the_initializers(cli, exported, dtype):
    doc = _json(cli, exported["cnn"][2], "--input", exported["cnn"][3], "--dtype", dtype)
    assert {n["dtype"] for n in doc["nodes"] if n["kind"] == "param"} == {dtype}
