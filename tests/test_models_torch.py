"""`cgviz torch` end to end: numbers equal plain PyTorch's, pictures fold and collapse, output is stable."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest
import torch

from conftest import ROOT

MODELS = ROOT / "sample_graphs" / "models"


def _module(path):
    spec = importlib.util.spec_from_file_location(f"m_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _json(cli, *args):
    r = cli("torch", *args, "--format", "json", "-o", "-")
    assert r.exit_code == 0, r.stderr
    return json.loads(r.stdout)


def _plain(model, args, loss="sum"):
    """The same run in plain PyTorch: output, loss and every parameter's gradient norm."""
    torch.manual_seed(0)
    out = model(*args)
    if loss == "sum":
        L = out.sum()
    elif loss == "mean":
        L = out.mean()
    else:
        raise AssertionError(loss)
    L.backward()
    return out, float(L), {n: float(p.grad.norm()) for n, p in model.named_parameters() if p.grad is not None}


CASES = [("rnn_loop.py", None, ()), ("res_cnn.py", None, ()),
         ("tiny_gpt.py", "build", ("--input-shape", "1,16:long"))]


@pytest.mark.parametrize("file, factory, extra", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("view", ["ops", "autograd"])
def test_gradient_norms_equal_plain_pytorch(cli, file, factory, extra, view):
    spec = str(MODELS / file) + (f":{factory}" if factory else "")
    doc = _json(cli, spec, *extra, "--view", view)
    mod = _module(MODELS / file)
    model = getattr(mod, factory)() if factory else mod.model
    if extra:
        from cgviz.pytorch.inputs import make_inputs, parse_shape
        args = make_inputs([parse_shape(extra[1])], model, torch.float32, 0)
    else:
        args = mod.example_inputs
    _, loss, norms = _plain(model, args)
    assert doc["model"]["loss_value"] == pytest.approx(loss, rel=1e-5)
    assert set(doc["param_grad_norms"]) == set(dict(model.named_parameters()))
    for name, n in norms.items():
        assert doc["param_grad_norms"][name] == pytest.approx(n, rel=1e-5), name
    # and on the param nodes themselves
    for node in doc["nodes"]:
        if node["kind"] == "param" and node["name"] in norms:
            assert node["grad_stats"]["norm"] == pytest.approx(norms[node["name"]], rel=1e-5)


def test_output_values_match(cli):
    mod = _module(MODELS / "res_cnn.py")
    out, _, _ = _plain(mod.model, mod.example_inputs)
    doc = _json(cli, MODELS / "res_cnn.py")
    fc = next(n for n in doc["nodes"] if n["id"] == "fc/linear")
    assert fc["shape"] == [2, 10]
    assert torch.allclose(torch.tensor(fc["value"], dtype=torch.float32), out.detach(), rtol=1e-5, atol=1e-6)


def test_edge_gradients_add_up_to_the_node_gradient(cli):
    """A tensor used twice (the residual's skip and the block) gets the sum of both edges' gradients."""
    doc = _json(cli, MODELS / "res_cnn.py", "--input-shape", "1,3,8,8")   # small: grads in full
    by_src: dict[str, list] = {}
    for e in doc["edges"]:
        if e["grad"] is not None or e["grad_stats"] is not None:
            by_src.setdefault(e["src"], []).append(e)
    nodes = {n["id"]: n for n in doc["nodes"]}
    checked = 0
    for src, es in by_src.items():
        node = nodes[src]
        if len(es) > 1 and node["kind"] == "op" and node["grad"] is not None and all(e["grad"] is not None for e in es):
            total = sum(torch.tensor(e["grad"]) for e in es)
            assert torch.allclose(total, torch.tensor(node["grad"]), rtol=1e-4, atol=1e-7)
            checked += 1
    assert checked >= 3   # the stem output and each block's input feed two consumers


@pytest.mark.parametrize("view", ["ops", "autograd"])
def test_same_command_twice_gives_byte_identical_dot(tmp_path, view):
    outs = []
    for i in range(2):
        p = tmp_path / f"g{i}.dot"
        subprocess.run([sys.executable, "-m", "cgviz", "torch", str(MODELS / "tiny_gpt.py") + ":build",
                        "--input-shape", "1,16:long", "--view", view, "-o", str(p), "-q"], check=True,
                       env={"PYTHONHASHSEED": str(i), "PATH": "/usr/bin:/bin"})
        outs.append(p.read_bytes())
    assert outs[0] == outs[1]


def test_identical_blocks_fold_into_one_with_each_norm(cli):
    r = cli("torch", str(MODELS / "tiny_gpt.py") + ":build", "--input-shape", "1,16:long", "--format", "dot", "-o", "-")
    assert "blocks.0 … blocks.3" in r.stdout and "×4" in r.stdout
    assert "blocks.1/" not in r.stdout            # repetitions 2–4 are not drawn
    norms = r.stdout.split("per block: ")[1].split("<")[0].split(", ")
    assert len(norms) == 4
    unfolded = cli("torch", str(MODELS / "tiny_gpt.py") + ":build", "--input-shape", "1,16:long",
                   "--no-fold", "--format", "dot", "-o", "-").stdout
    assert "blocks.3/" in unfolded and "<B>×4</B>" not in unfolded


def test_a_loop_is_drawn_once_in_a_time_step_region(cli):
    dot = cli("torch", MODELS / "rnn_loop.py", "--format", "dot", "-o", "-").stdout
    assert "time_step=20" in dot and "rounded,dashed" in dot
    assert "cell:2/" not in dot and "next step" in dot
    steps = dot.split("per step: ")[1].split("<")[0].split(", ")
    assert len(steps) == 20
    # backprop through 20 tanh steps: the first step's share of the gradient is the smallest
    assert float(steps[0]) < float(steps[-1])
    doc = _json(cli, MODELS / "rnn_loop.py")
    assert any(n["id"] == "cell:20/tanh" for n in doc["nodes"])     # JSON keeps every step


def test_depth_collapses_modules_into_boxes(cli):
    dot = cli("torch", MODELS / "res_cnn.py", "--depth", "1", "--format", "dot", "-o", "-").stdout
    label = dot.split('"layer1" [')[1].split("\n")[0]
    assert "Sequential" in label and "14.0k params" in label and "‖∇θ‖" in label
    assert "[2×16×16×16] → [2×16×16×16]" in label
    assert "conv2d" not in dot and "cluster" not in dot      # everything inside is one box
    assert '"fc/linear"' not in dot and '"fc"' in dot


def test_automatic_depth_keeps_big_models_readable(cli, tmp_path):
    p = tmp_path / "deep.py"
    p.write_text(
        "import torch, torch.nn as nn\n"
        "class B(nn.Module):\n"
        "    def __init__(s, i):\n"
        "        super().__init__(); s.a = nn.Linear(8, 8 + (i % 2)); s.b = nn.Linear(8 + (i % 2), 8)\n"
        "    def forward(s, x):\n"
        "        return x + s.b(torch.relu(s.a(x))) * 0.5\n"
        "model = nn.Sequential(*[B(i) for i in range(60)])\n"
        "example_inputs = (torch.randn(2, 8),)\n")
    r = cli("torch", p, "--format", "dot", "-o", str(tmp_path / "d.dot"))
    assert r.exit_code == 0, r.stderr
    # the picture budget (cgviz.plan.budget) steps down from every op by the layout cost, not a node count
    assert "every op would be too slow for Graphviz" in r.stderr and "drew modules down to depth" in r.stderr
    from cgviz.plan.budget import LAYOUT_BUDGET, layout_cost
    assert layout_cost((tmp_path / "d.dot").read_text()).score <= LAYOUT_BUDGET


def test_meta_gives_shapes_without_numbers(cli):
    doc = _json(cli, MODELS / "tiny_gpt.py:build", "--input-shape", "1,16:long", "--meta")
    head = next(n for n in doc["nodes"] if n["id"] == "head/linear")
    assert head["shape"] == [1, 16, 64] and head["value"] is None and head["value_stats"] is None
    assert doc["model"]["loss_value"] is None


def test_forward_failure_shows_the_models_error_and_the_inputs(cli):
    r = cli("torch", MODELS / "res_cnn.py", "--input-shape", "2,5,16,16")
    assert r.exit_code == 1
    assert "[2×5×16×16] float32" in r.stderr and "RuntimeError" in r.stderr
    assert "res_cnn.py:" in r.stderr and "Traceback" not in r.stderr


def test_forward_failure_points_at_the_model_from_a_folder_named_cgviz(cli, tmp_path):
    """A project (or a clone of cgviz: git names the folder cgviz) under a folder named cgviz keeps the
    pointer into its model file: cgviz tells its own frames by its package's real directory."""
    folder = tmp_path / "cgviz" / "sample_graphs" / "models"
    folder.mkdir(parents=True)
    model = folder / "res_cnn.py"
    model.write_text((MODELS / "res_cnn.py").read_text())
    r = cli("torch", model, "--input-shape", "2,5,16,16")
    assert r.exit_code == 1
    assert "[2×5×16×16] float32" in r.stderr and "RuntimeError" in r.stderr
    assert "(at res_cnn.py:" in r.stderr and "Traceback" not in r.stderr


def test_cgviz_frames_are_told_by_the_package_directory_not_a_folder_name(tmp_path):
    import cgviz.pytorch.record
    from cgviz.pytorch import frames
    assert frames.is_cgviz(cgviz.pytorch.record.__file__) and frames.is_internal(torch.nn.modules.linear.__file__)
    for mine in (tmp_path / "cgviz" / "model.py", tmp_path / "cgviz" / "cgviz" / "pytorch" / "model.py"):
        assert not frames.is_cgviz(str(mine)) and not frames.is_internal(str(mine))
        assert not frames.is_library(str(mine))
    assert not frames.is_internal("<ipython-input-3-5e1b2a>") and frames.is_internal("<frozen runpy>")


def test_no_inputs_anywhere_asks_for_input_shape(cli, tmp_path):
    p = tmp_path / "m.py"
    p.write_text("import torch\nmodel = torch.nn.Linear(3, 2)\n")
    r = cli("torch", p)
    assert r.exit_code == 1 and "--input-shape" in r.stderr and "input" in r.stderr


def test_dict_input_and_tuple_output_with_none(cli, tmp_path):
    p = tmp_path / "dt.py"
    p.write_text(
        "import torch, torch.nn as nn\n"
        "class M(nn.Module):\n"
        "    def __init__(s):\n"
        "        super().__init__(); s.fc = nn.Linear(8, 3)\n"
        "    def forward(s, batch):\n"
        "        h = s.fc(batch['image'] * batch['mask'])\n"
        "        return h, None, {'aux': h.mean()}\n"
        "torch.manual_seed(0)\n"
        "model = M()\n"
        "example_inputs = ({'image': torch.randn(2, 8), 'mask': torch.ones(2, 8)},)\n")
    doc = _json(cli, p)
    mod = _module(p)
    h, _, aux = mod.model(*mod.example_inputs)
    assert doc["model"]["loss_value"] == pytest.approx(float(h.sum() + aux["aux"]), rel=1e-5)
    kinds = {n["id"]: n["kind"] for n in doc["nodes"]}
    assert kinds["batch.image"] == "input" and kinds["batch.mask"] == "input"


def test_ce_loss_and_integer_inputs_in_embedding_range(cli):
    doc = _json(cli, MODELS / "tiny_gpt.py:build", "--input-shape", "1,16:long", "--loss", "ce", "--seed", "3")
    idx = next(n for n in doc["nodes"] if n["kind"] == "input")
    assert idx["dtype"] == "int64" and 0 <= idx["value_stats"]["min"] and idx["value_stats"]["max"] < 64
    assert doc["model"]["loss"] == "ce"
    assert 3.0 < doc["model"]["loss_value"] < 6.0      # ≈ ln 64 for an untrained model


def test_train_and_eval_override_the_saved_mode(cli):
    ev = _json(cli, MODELS / "res_cnn.py")
    tr = _json(cli, MODELS / "res_cnn.py", "--train")
    assert ev["model"]["mode"] == "eval" and tr["model"]["mode"] == "train"
    assert ev["model"]["loss_value"] != tr["model"]["loss_value"]     # batch statistics differ


def test_dsl_path_does_not_import_torch():
    code = ("import sys; from click.testing import CliRunner; from cgviz.cli import main; "
            f"r = CliRunner().invoke(main, ['render', r'{ROOT / 'sample_graphs/pizza.cg'}', "
            "'--format', 'dot', '-o', '-']); "
            "assert r.exit_code == 0; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


INPLACE = """
import torch, torch.nn as nn
class M(nn.Module):
    def __init__(s):
        super().__init__(); s.fc1 = nn.Linear(4, 8); s.act = nn.ReLU(inplace=True); s.fc2 = nn.Linear(8, 2)
    def forward(s, x):
        h = s.act(s.fc1(x)) * 1.0
        h += 1.0
        h[:, 0] = 0.0
        return s.fc2(h)
torch.manual_seed(0)
model = M()
example_inputs = (torch.randn(5, 4),)
"""


def test_in_place_ops_are_nodes_with_the_right_gradients(cli, tmp_path):
    p = tmp_path / "inplace.py"
    p.write_text(INPLACE)
    doc = _json(cli, p)
    nodes = {n["id"]: n for n in doc["nodes"]}
    assert nodes["act/relu"]["inputs"] == ["fc1/linear"]
    assert nodes["add_"]["inputs"] == ["mul"] and nodes["setitem"]["inputs"] == ["add_"]
    assert nodes["fc2/linear"]["inputs"][0] == "setitem"
    mod = _module(p)
    m, x = mod.model, mod.example_inputs[0]
    r = torch.relu(m.fc1(x))
    r.retain_grad()
    h = r * 1.0 + 1.0
    h.retain_grad()
    h2 = h.clone()
    h2[:, 0] = 0.0
    h2.retain_grad()
    m.fc2(h2).sum().backward()
    assert nodes["act/relu"]["grad_stats"]["norm"] == pytest.approx(float(r.grad.norm()), rel=1e-5)
    assert nodes["add_"]["grad_stats"]["norm"] == pytest.approx(float(h.grad.norm()), rel=1e-5)
    assert nodes["setitem"]["grad_stats"]["norm"] == pytest.approx(float(h2.grad.norm()), rel=1e-5)


def test_backward_failing_in_the_model_is_a_message(cli, tmp_path):
    p = tmp_path / "bad_inplace.py"
    p.write_text(INPLACE.replace(") * 1.0", ")"))      # += on ReLU's saved output: autograd refuses
    r = cli("torch", p)
    assert r.exit_code == 1 and "backward pass failed" in r.stderr and "inplace" in r.stderr


def test_meta_traces_a_multi_billion_parameter_model_in_little_memory(tmp_path):
    """A 6.7B-parameter GPT built from a config: without --meta it would need ~26 GB."""
    p = tmp_path / "big.py"
    p.write_text(f"import sys\nsys.path.insert(0, {str(MODELS)!r})\nfrom tiny_gpt import TinyGPT\n"
                 "model = TinyGPT(vocab=32000, d=4096, heads=32, layers=32, context=4096)\n")
    code = ("import resource, sys; from click.testing import CliRunner; from cgviz.cli import main; "
            f"r = CliRunner().invoke(main, ['torch', {str(p)!r}, '--meta', '--input-shape', '1,128:long', "
            "'--format', 'dot', '-o', '-']); "
            "assert r.exit_code == 0, r.output; "
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024); print(r.stdout)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    rss_mb, dot = out.split("\n", 1)
    assert int(rss_mb) < 1500
    assert "6.7B parameters" in dot and "blocks.0 … blocks.31" in dot and "<B>×32</B>" in dot
    assert "[1×128×32000]" in dot and "‖" not in dot          # shapes, no gradients


def test_dtype_float64_runs_the_model_in_double(cli):
    doc = _json(cli, MODELS / "res_cnn.py", "--dtype", "float64")
    mod = _module(MODELS / "res_cnn.py")
    model = mod.model.double()
    _, loss, norms = _plain(model, tuple(x.double() for x in mod.example_inputs))
    assert doc["model"]["loss_value"] == pytest.approx(loss, rel=1e-12)
    assert next(n for n in doc["nodes"] if n["id"] == "fc/linear")["dtype"] == "float64"
    assert doc["param_grad_norms"]["fc.weight"] == pytest.approx(norms["fc.weight"], rel=1e-12)


def test_input_file_holds_the_inputs(cli, tmp_path):
    x = torch.randn(3, 3, 8, 8)
    torch.save((x,), tmp_path / "in.pt")
    doc = _json(cli, MODELS / "res_cnn.py", "--input", tmp_path / "in.pt")
    mod = _module(MODELS / "res_cnn.py")
    _, loss, _ = _plain(mod.model, (x,))
    assert doc["model"]["loss_value"] == pytest.approx(loss, rel=1e-5)
    assert doc["model"]["inputs"] == "[3×3×8×8] float32"


@pytest.mark.parametrize("args, words", [
    (("--input-shape", "1,a,3"), ["'a' is not a whole number"]),
    (("--input-shape", "1,3:complex"), ["unknown dtype"]),
    (("--input-shape", "100000,100000,100"), ["more than the 50,000,000"]),
])
def test_bad_input_shapes_are_usage_errors(cli, args, words):
    r = cli("torch", MODELS / "res_cnn.py", *args)
    assert r.exit_code == 2
    for w in words:
        assert w in r.stderr


def test_the_quick_exit_keeps_output_and_exit_status():
    """`run()` leaves with os._exit after a model run: stdout must be complete, statuses kept."""
    ok = subprocess.run([sys.executable, "-m", "cgviz", "torch", str(MODELS / "rnn_loop.py"), "-f", "json", "-o", "-"],
                        capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["format"] == "cgviz-graph"
    assert "wrote" not in ok.stderr
    bad = subprocess.run([sys.executable, "-m", "cgviz", "torch", str(MODELS / "rnn_loop.py"), "--input-shape", "2,3"],
                         capture_output=True, text=True)
    assert bad.returncode == 1 and "forward failed" in bad.stderr
    usage = subprocess.run([sys.executable, "-m", "cgviz", "torch", str(MODELS / "rnn_loop.py"), "--view", "x"],
                           capture_output=True, text=True)
    assert usage.returncode == 2


def test_torchscript_the_interpreter_cannot_follow_falls_back_to_the_autograd_view(cli, tmp_path):
    class Forked(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = torch.nn.Linear(4, 2)

        def forward(self, x):
            return torch.jit.wait(torch.jit.fork(self.fc, x)).tanh()

    torch.manual_seed(0)
    torch.jit.save(torch.jit.script(Forked()), tmp_path / "forked.ts")
    torch.save((torch.randn(3, 4),), tmp_path / "in.pt")
    r = cli("torch", tmp_path / "forked.ts", "--input", tmp_path / "in.pt", "--format", "json", "-o", "-")
    assert r.exit_code == 0, r.stderr
    assert "prim::fork is not supported" in r.stderr and "autograd view" in r.stderr
    doc = json.loads(r.stdout)
    assert doc["model"]["view"] == "autograd"
    assert any(n["op"] == "AccumulateGrad" for n in doc["nodes"])
    assert doc["param_grad_norms"]["fc.weight"] > 0


def test_nan_is_flagged_in_words_and_in_the_picture(cli, tmp_path):
    p = tmp_path / "nan.py"
    p.write_text("import torch, torch.nn as nn\n"
                 "class M(nn.Module):\n"
                 "    def __init__(s):\n"
                 "        super().__init__(); s.fc = nn.Linear(3, 2)\n"
                 "    def forward(s, x):\n"
                 "        return torch.sqrt(s.fc(x) - 100.0)\n"
                 "model = M()\nexample_inputs = (torch.randn(2, 3),)\n")
    r = cli("torch", p, "--format", "dot", "-o", "-")
    assert r.exit_code == 0
    assert "warning: the loss is nan" in r.stderr and "fc.weight" in r.stderr
    sqrt = next(line for line in r.stdout.splitlines() if line.strip().startswith('"sqrt" ['))
    assert "#ffcc80" in sqrt                                   # drawn orange, where the NaN starts
    linear = next(line for line in r.stdout.splitlines() if line.strip().startswith('"fc/linear" ['))
    assert "#ffcc80" in linear                                 # its gradient is NaN too
    doc = _json(cli, p)
    assert any("nan" in w for w in doc["warnings"])
    # an attention mask's -inf is not a warning
    clean = cli("torch", str(MODELS / "tiny_gpt.py") + ":build", "--input-shape", "1,16:long", "--format", "dot", "-o", "-")
    assert "warning" not in clean.stderr and "#ffcc80" not in clean.stdout


def test_a_compiled_function_inside_a_model_runs_eagerly_while_recording(capfd):
    # dynamo used to trace cgviz's own recorder into the compiled region: recompiles, warnings, seconds
    import cgviz
    from torch._dynamo.utils import counters

    @torch.compile(backend="eager")
    def fused(x, w):
        return torch.tanh(x @ w) * 2

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(4, 4))

        def forward(self, x):
            return sum(fused(x[:k], self.w).sum() for k in range(1, 10))

    counters.clear()
    d = cgviz.draw(Net(), torch.randn(9, 4))
    assert sum(counters["stats"].values()) == 0 and not counters["recompiles"]   # dynamo never ran
    assert sum(1 for n in d.graph if n.op == "tanh") == 9                       # the ops inside are drawn
    err = capfd.readouterr().err
    assert "recompile" not in err and "torch._dynamo" not in err


def test_a_function_compiled_inside_forward_runs_eagerly_while_recording():
    # torch.compile called lazily from forward (dynamo not loaded up front): the stance is set at that
    # first call, so dynamo still never traces the recorder; torch.compile is restored afterwards
    import cgviz
    real_compile = torch.compile

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.randn(4, 4))
            self.fused = None

        def forward(self, x):
            if self.fused is None:
                self.fused = torch.compile(lambda a, w: torch.tanh(a @ w) * 2, backend="eager")
            return sum(self.fused(x[:k], self.w).sum() for k in range(1, 6))

    d = cgviz.draw(Net(), torch.randn(5, 4))
    assert sum(1 for n in d.graph if n.op == "tanh") == 5
    assert torch.compile is real_compile


def test_a_model_that_compiles_nothing_does_not_load_dynamo():
    # importing torch._dynamo costs ~0.5 s or more: only a model that compiles something pays it
    import subprocess
    import sys
    code = ("import sys, torch, cgviz\n"
            "m = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1))\n"
            "cgviz.draw(m, torch.randn(2, 3))\n"
            "print('torch._dynamo' in sys.modules)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"


NO_GRAD_FOR_BOXES = '''
import torch, torch.nn as nn

class Scale(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, boxes):
        return x * 2 + boxes.sum()

    @staticmethod
    def backward(ctx, g):
        return g * 2, None          # as torchvision's roi_align does for its boxes: no gradient

class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.box = nn.Linear(4, 2)

    def forward(self, x):
        return Scale.apply(self.fc(x), self.box(x)).sum()

torch.manual_seed(0)
model = M()
example_inputs = (torch.randn(3, 4),)
'''


def test_a_gradient_that_backward_leaves_undefined_is_drawn_as_none(cli, tmp_path):
    """A custom function whose backward returns None for an input (Mask R-CNN's roi_align and its
    boxes) hands cgviz's hooks None: that input gets no gradient, as in PyTorch, and no crash."""
    path = tmp_path / "boxes.py"
    path.write_text(NO_GRAD_FOR_BOXES)
    doc = _json(cli, path)
    mod = _module(path)
    mod.model(*mod.example_inputs).backward()
    assert doc["param_grad_norms"]["box.weight"] is None and mod.model.box.weight.grad is None
    assert doc["param_grad_norms"]["fc.weight"] == pytest.approx(float(mod.model.fc.weight.grad.norm()), rel=1e-6)
