"""The picture budget (issue 17): no default run fails on Graphviz's layout limit, no default PNG is
bigger than people can open, and a step down to a coarser picture is said on stderr."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from cgviz.plan.budget import MAX_PNG_PIXELS, MAX_PNG_SIDE
from cgviz.route.sizing import take

pytestmark = pytest.mark.skipif(shutil.which("dot") is None, reason="needs Graphviz")
import torch  # noqa: F401,E402

TWINS = Path(__file__).resolve().parent


def _model_file(folder: Path, factory: str, inputs: str) -> Path:
    f = folder / f"{factory}_model.py"
    f.write_text(f"import sys\nsys.path.insert(0, {str(TWINS)!r})\nimport twins\n"
                 f"model = twins.{factory}()\nexample_inputs = {inputs}\n")
    return f


def _size(png: Path) -> tuple[int, int]:
    with Image.open(png) as im:       # Pillow's own bomb check would refuse a picture over 89 Mpx
        return im.size


def _within_budget(png: Path) -> None:
    w, h = _size(png)
    assert w * h <= MAX_PNG_PIXELS and max(w, h) <= MAX_PNG_SIDE, (w, h)


@pytest.mark.parametrize("factory, inputs", [
    ("densenet", "twins.image_inputs()"),
    ("llama", "twins.inputs('llama')"),
    ("t5", "twins.inputs('t5')"),
    ("resnet", "twins.inputs('resnet')"),
])
def test_default_png_of_each_twin_is_drawn_within_the_pixel_budget(cli, tmp_path, factory, inputs):
    model = _model_file(tmp_path, factory, inputs)
    r = cli("torch", model, "-o", tmp_path / "out.png")
    assert r.exit_code == 0, r.stderr
    assert "did not finish" not in r.stderr
    _within_budget(tmp_path / "out.png")


@pytest.mark.parametrize("factory, inputs, meta", [
    ("densenet", "twins.image_inputs()", False),
    ("t5", "twins.inputs('t5')", False),
    ("lstm", "twins.inputs('lstm')", False),
    ("llama", "twins.inputs('llama')", True),      # shapes without statistics
])
def test_the_layout_cost_is_read_from_the_shape_alone(tmp_path, factory, inputs, meta):
    """The level is chosen by the cost of the scene without its numbers (labels=False): it must count
    the same nodes, edges, labels and frames as the full DOT text, at every level."""
    from cgviz.pytorch.load import load_model
    from cgviz.route.model import picture_model
    from cgviz.plan.budget import layout_cost
    from cgviz.view.dot import scene_cost
    from cgviz.pytorch.trace import TraceOptions
    d = picture_model(load_model(str(_model_file(tmp_path, factory, inputs)), meta=meta), TraceOptions(meta=meta))
    levels = 0
    while True:
        full = layout_cost(d.dot())
        assert layout_cost(d.dot(labels=False)) == full, d.depth
        assert scene_cost(d.scene(labels=False)) == full, d.depth
        levels += 1
        if not d.coarser:
            break
        take(d, d.coarser.pop(0))
    assert levels >= 2


def test_densenet_dense_block_steps_down_and_says_why(cli, tmp_path):
    """densenet121's wiring: 89 boxes at depth 3 but 1,244 labelled concatenation edges, which dot
    does not lay out in a minute; the budget starts at a level it can lay out and says so."""
    model = _model_file(tmp_path, "densenet", "twins.image_inputs()")
    r = cli("torch", model, "-f", "dot", "-o", tmp_path / "out.dot")
    assert r.exit_code == 0, r.stderr
    note = [line for line in r.stderr.splitlines() if line.startswith("note:") and "too slow" in line]
    assert note and "edges" in note[0] and "depth" in note[0], r.stderr
    # the JSON still has every op, whatever the picture shows
    r = cli("torch", model, "-f", "json", "-o", tmp_path / "out.json")
    import json
    data = json.loads((tmp_path / "out.json").read_text())
    assert len(data["nodes"]) > 600


def test_lstm_autograd_view_keeps_every_grad_fn_within_the_budget(cli, tmp_path):
    model = _model_file(tmp_path, "lstm", "twins.inputs('lstm')")
    r = cli("torch", model, "--view", "autograd", "-o", tmp_path / "ag.png")
    assert r.exit_code == 0, r.stderr
    assert re.search(r"note: .*without edge labels", r.stderr), r.stderr
    _within_budget(tmp_path / "ag.png")
    r = cli("torch", model, "--view", "autograd", "-f", "dot", "-o", tmp_path / "ag.dot")
    dot = (tmp_path / "ag.dot").read_text()
    assert dot.count("AccumulateGrad") >= 5 and 'shape="ellipse"' not in dot
    assert "tooltip=\"[2×16] float32" in dot        # the edge numbers moved into tooltips


def _chain(n: int) -> str:
    """x → ×1 → ×1 … n times, as tests/test_hardening.py's chain: 2n + 1 nodes in a row (LR)."""
    return "\n".join(["input x = 1"] + [f"h{i} = {'h' + str(i - 1) if i else 'x'} * 1" for i in range(n)]) + "\n"


def test_a_wide_png_comes_out_smaller_and_dpi_asks_for_more(cli, tmp_path):
    (tmp_path / "long.cg").write_text(_chain(100))        # 201 nodes in a row: ~27,000 px at 96 dpi
    # LR forced: by default so deep a chain is laid out top to bottom (dot.auto_rankdir)
    r = cli("render", tmp_path / "long.cg", "--rankdir", "LR", "-o", tmp_path / "small.png")
    assert r.exit_code == 0, r.stderr
    _within_budget(tmp_path / "small.png")
    r = cli("render", tmp_path / "long.cg", "--rankdir", "LR", "--dpi", "96", "-o", tmp_path / "big.png")
    assert r.exit_code == 0, r.stderr
    assert _size(tmp_path / "big.png")[0] > _size(tmp_path / "small.png")[0] > 8000
    # SVG keeps full size: Graphviz's points, not scaled
    r = cli("render", tmp_path / "long.cg", "-o", tmp_path / "long.svg")
    assert r.exit_code == 0


def test_dpi_is_checked_like_every_number(cli, tmp_path):
    (tmp_path / "a.cg").write_text(_chain(2))
    r = cli("render", tmp_path / "a.cg", "--dpi", "0", "-o", tmp_path / "a.png")
    assert r.exit_code == 2 and "--dpi" in r.stderr


def _cluster_boxes(laid_out: str) -> dict[str, tuple[float, float, float, float]]:
    out = {}
    for m in re.finditer(r'subgraph "cluster_([^"]+)" \{\s*graph \[[^\]]*?bb="([-0-9.,e+]+)"', laid_out):
        out[m.group(1)] = tuple(float(v) for v in m.group(2).split(","))
    return out


def test_resnet18_block_frames_stack_along_the_main_path(cli, tmp_path):
    """torchvision's resnet18 came out as a wide diagonal staircase of block frames; in TB the
    frames stack: the drawing is more than twice as tall as wide (it was 1.9× before the main path
    kept one column)."""
    model = _model_file(tmp_path, "resnet18", "twins.image_inputs()")
    r = cli("torch", model, "-f", "dot", "-o", tmp_path / "r.dot")
    assert r.exit_code == 0, r.stderr
    laid = subprocess.run(["dot", "-Tdot", str(tmp_path / "r.dot")], capture_output=True, text=True,
                          timeout=120, check=True).stdout
    x0, y0, x1, y1 = (float(v) for v in re.search(r'bb="([^"]+)"', laid).group(1).split(","))
    assert (y1 - y0) > 2.2 * (x1 - x0)
    assert len(_cluster_boxes(laid)) >= 6


def test_block_frames_stack_at_every_op_too(cli, tmp_path):
    """At every op (--depth 9) the block frames drifted right one after another, each parameter box
    sitting on the rank above its op, outside the frames, beside the next frame: the twin's frames'
    left edges ran 280, 290, 581, 596, 874, 896, 1186 pt. With each box on its op's rank the frames
    stack: together they are hardly wider than the widest one (1.88× before, 1.01× after)."""
    model = _model_file(tmp_path, "resnet18", "twins.image_inputs()")
    r = cli("torch", model, "--depth", "9", "-f", "dot", "-o", tmp_path / "r.dot")
    assert r.exit_code == 0, r.stderr
    laid = subprocess.run(["dot", "-Tdot", str(tmp_path / "r.dot")], capture_output=True, text=True,
                          timeout=120, check=True).stdout
    blocks = [b for name, b in _cluster_boxes(laid).items() if re.fullmatch(r"layer\d/layer\d\.\d", name)]
    assert len(blocks) >= 6
    union = max(b[2] for b in blocks) - min(b[0] for b in blocks)
    widest = max(b[2] - b[0] for b in blocks)
    assert union <= 1.35 * widest, (union, widest)


# ---- the default PNG's level, chosen by its size (issue 17: the PNG's pixels were the cost) ----

def _wrote_nodes(stderr: str) -> int:
    return int(re.search(r"wrote .* \((\d+) nodes", stderr).group(1))


def _pixels_at_96_dpi(dot_text: str) -> int:
    from cgviz.plan.budget import DEFAULT_DPI, drawing_size, png_pixels
    from cgviz.view.graphviz import layout
    w, h = png_pixels(*drawing_size(layout(dot_text)), DEFAULT_DPI)
    return w * h


def test_the_default_png_is_the_finest_level_within_the_overview_pixels(tmp_path):
    """resnet18's every op is ~30 Mpx at 96 dpi: the PNG draws a coarser level, and exactly the
    finest one that fits, since the next finer one is over the target."""
    from cgviz.pytorch.load import load_model
    from cgviz.route.model import picture_model
    from cgviz.plan.budget import PNG_OVERVIEW_PIXELS
    model = _model_file(tmp_path, "resnet18", "twins.image_inputs()")
    d = picture_model(load_model(str(model)))
    finest_nodes = len(d.pic.nodes)
    assert d.depth is None and _pixels_at_96_dpi(d.dot()) > PNG_OVERVIEW_PIXELS
    p = d.for_png()
    assert p.depth is not None and len(p.pic.nodes) < finest_nodes
    assert _pixels_at_96_dpi(p.dot()) <= PNG_OVERVIEW_PIXELS
    assert p.laid is not None and p.laid[0] == p.dot()        # the sizing layout is the one drawn from
    finer = picture_model(load_model(str(model)), depth=p.depth + 1)
    assert _pixels_at_96_dpi(finer.dot()) > PNG_OVERVIEW_PIXELS
    # the drawing it came from is untouched: SVG, PDF and HTML keep the finest level
    assert d.depth is None and len(d.pic.nodes) == finest_nodes
    assert any("the PNG shows modules down to depth" in n for n in d.notes)


def test_png_steps_down_with_a_note_while_svg_and_depth_keep_their_level(cli, tmp_path):
    model = _model_file(tmp_path, "resnet18", "twins.image_inputs()")
    r = cli("torch", model, "-o", tmp_path / "out.png")
    assert r.exit_code == 0, r.stderr
    note = [line for line in r.stderr.splitlines() if "the PNG shows modules down to depth" in line]
    assert len(note) == 1 and "--depth" in note[0] and "--format svg" in note[0], r.stderr
    assert "to keep the picture readable" not in r.stderr          # one note, not two
    depth = int(re.search(r"down to depth (\d+)", note[0]).group(1))
    png_nodes = _wrote_nodes(r.stderr)
    w, h = _size(tmp_path / "out.png")
    from cgviz.plan.budget import PNG_OVERVIEW_PIXELS
    assert w * h <= PNG_OVERVIEW_PIXELS

    r = cli("torch", model, "-o", tmp_path / "out.svg")
    assert r.exit_code == 0, r.stderr
    assert "the PNG shows" not in r.stderr and _wrote_nodes(r.stderr) > png_nodes

    # --depth given is obeyed, however big the PNG: no step down, no note, more nodes than the overview
    # a loss given, so that the only note there could be is the picture budget's
    r = cli("torch", model, "--loss", "mean", "--depth", str(depth + 1), "-o", tmp_path / "deep.png")
    assert r.exit_code == 0, r.stderr
    assert "the PNG shows" not in r.stderr and "note:" not in r.stderr
    assert _wrote_nodes(r.stderr) > png_nodes
    w2, h2 = _size(tmp_path / "deep.png")
    assert w2 * h2 > PNG_OVERVIEW_PIXELS


def test_a_small_model_keeps_every_op_in_its_png(cli, tmp_path):
    (tmp_path / "mlp.py").write_text("import torch\ntorch.manual_seed(0)\n"
                                     "model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), "
                                     "torch.nn.Linear(8, 2))\nexample_inputs = (torch.randn(3, 4),)\n")
    png = cli("torch", tmp_path / "mlp.py", "--loss", "mean", "-o", tmp_path / "mlp.png")   # no loss note
    svg = cli("torch", tmp_path / "mlp.py", "-o", tmp_path / "mlp.svg")
    assert png.exit_code == 0 and svg.exit_code == 0, png.stderr + svg.stderr
    assert "note:" not in png.stderr
    assert _wrote_nodes(png.stderr) == _wrote_nodes(svg.stderr)


WIDE = """
import torch, torch.nn as nn
class Wide(nn.Module):
    def __init__(self):
        super().__init__()
        self.branches = nn.ModuleList(nn.Sequential(nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 8)) for _ in range(60))
    def forward(self, x):
        return torch.stack([b(x) for b in self.branches]).sum(0)
torch.manual_seed(0)
model = Wide()
example_inputs = (torch.randn(2, 8),)
"""


def test_when_even_the_coarsest_level_is_over_the_overview_the_note_says_so(cli, tmp_path):
    """60 parallel branches are wider than 5 Mpx at every level: the PNG is the coarsest level at a
    lower resolution, and the note must not claim it stays within the overview's pixels."""
    from PIL import Image
    from cgviz.plan.budget import PNG_OVERVIEW_PIXELS
    (tmp_path / "wide.py").write_text(WIDE)
    r = cli("torch", tmp_path / "wide.py", "-o", tmp_path / "wide.png")
    assert r.exit_code == 0, r.stderr
    note = [line for line in r.stderr.splitlines() if line.startswith("note: the PNG shows")]
    assert len(note) == 1 and "the coarsest level, which is still over" in note[0], r.stderr
    assert "to stay within" not in note[0]
    w, h = Image.open(tmp_path / "wide.png").size
    assert w * h > PNG_OVERVIEW_PIXELS          # drawn anyway, at the resolution the pixel budget allows


def test_a_layout_that_runs_past_its_time_steps_down_a_level_and_says_so(cli, tmp_path, monkeypatch):
    """The picture budget's estimate only picks where to start: a layout still running when its share
    of --timeout is spent is stopped, and the next coarser level drawn, with a note. A fake `dot` on
    PATH hangs on res_cnn's every-op picture (it names layer1.0.bn1's batch_norm op) and hands any
    other to the real one."""
    real = shutil.which("dot")
    folder = tmp_path / "bin"
    folder.mkdir()
    fake = folder / "dot"
    fake.write_text("#!/bin/sh\n"
                    f'tmp="{tmp_path}/in.$$"; cat > "$tmp"\n'
                    'if grep -q "layer1.0.bn1/batch_norm" "$tmp"; then exec sleep 30; fi\n'
                    f'exec {real} "$@" < "$tmp"\n')
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
    res_cnn = Path(__file__).resolve().parents[2] / "sample_graphs" / "models" / "res_cnn.py"
    r = cli("torch", res_cnn, "--timeout", "3", "-o", tmp_path / "out.svg")
    assert r.exit_code == 0, r.stderr
    assert ("Graphviz did not finish the layout within 3 s for every op, so cgviz drew modules down to depth 3 "
            "(18 nodes); a longer --timeout gives each level more time, and --format json has every op without "
            "a layout") in r.stderr, r.stderr
    svg = (tmp_path / "out.svg").read_text()
    assert svg.startswith("<?xml") and "layer1.0.bn1/batch_norm" not in svg


def test_ops_run_in_no_module_are_gathered_when_depth_1_is_still_over_the_png_budget(cli, tmp_path):
    """Mask R-CNN's post-processing runs in plain functions after roi_heads: depth 1 left ~50 loose
    ops and a 7.8 Mpx PNG. The twin's depth 1 is over 10 Mpx; the default PNG gathers each run of
    such ops into one box, stays within the overview's pixels, and says so."""
    from cgviz.plan.budget import PNG_OVERVIEW_PIXELS
    model = _model_file(tmp_path, "detector", "twins.image_inputs()")
    r = cli("torch", model, "--depth", "1", "-f", "dot", "-o", tmp_path / "d1.dot")
    assert r.exit_code == 0, r.stderr
    assert _pixels_at_96_dpi((tmp_path / "d1.dot").read_text()) > 2 * PNG_OVERVIEW_PIXELS
    r = cli("torch", model, "-o", tmp_path / "out.png")
    assert r.exit_code == 0, r.stderr
    w, h = _size(tmp_path / "out.png")
    assert w * h <= PNG_OVERVIEW_PIXELS
    assert "the ops run in no module gathered into boxes" in r.stderr, r.stderr
    r = cli("torch", model, "-f", "json", "-o", tmp_path / "out.json")      # the JSON keeps every op
    import json
    assert sum(1 for n in json.loads((tmp_path / "out.json").read_text())["nodes"] if n["op"] == "sigmoid") == 12


def test_a_box_of_gathered_ops_holds_each_run_between_module_calls():
    import twins
    from cgviz.pytorch.load import Loaded
    from cgviz.route.model import picture_model
    from cgviz.plan.structure import build_picture
    d = picture_model(Loaded("memory", twins.detector(), "twin", twins.image_inputs(), {}))
    assert d.coarser[-1].gather and d.coarser[-1].depth == 1
    pic = build_picture(d.drawn, d.run, 1, groups=d.groups, gather=True)
    boxes = {k: n for k, n in pic.nodes.items() if n.kind == "module" and k.startswith("ops ")}
    assert list(boxes) == ["ops after head"]          # flatten alone between backbone and head stays an op
    box = boxes["ops after head"]
    assert all(d.drawn[m].op != "flatten" for m in box.members)
    assert sum(1 for m in box.members if d.drawn[m].op == "sigmoid") == 12
    assert "flatten" in pic.nodes and {"backbone", "head", "loss"} <= set(pic.nodes)
    # edges into and out of the box carry the recorded numbers: head's output in, the stack out
    (into,) = [e for e in pic.edges if e.dst == "ops after head"]
    assert e_shape(into) == (2, 60) and into.src == "head"
    (out,) = [e for e in pic.edges if e.src == "ops after head"]
    assert e_shape(out) == (2, 12, 4) and out.dst == "loss"
    dot = d.dot()      # the finest level's picture is unchanged by the level list
    assert "ops after head" not in dot


def e_shape(e):
    return tuple(e.value.shape)
