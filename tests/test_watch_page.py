"""cgviz render run.cgw: the page and the picture of a recorded training run (cgviz.view.watch_page),
built from synthetic records in the documented format; the page is tried in Chromium."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys

import numpy as np
import pytest
from no_torch import cli_without_torch

from test_html import Opened, browser  # noqa: F401  (the browser fixture)
from watch_records import synthetic

ROOT = __import__("pathlib").Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def graph_doc():
    """A folded sigmoid MLP's cgviz-graph document, as the recorder's header holds it."""
    import torch
    from torch import nn

    import cgviz

    from watch_models import SigmoidBlock as Block

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.inp = nn.Linear(8, 16)
            self.blocks = nn.Sequential(*[Block() for _ in range(4)])
            self.head = nn.Linear(16, 1)

        def forward(self, x):
            return self.head(self.blocks(torch.relu(self.inp(x))))

    torch.manual_seed(0)
    return cgviz.draw(Net(), torch.randn(4, 8), loss="mean").to_dict()


def _params(doc):
    return {n["name"]: n["shape"] for n in doc["nodes"] if n["kind"] == "param"}


def _modules(doc):
    return sorted({n["module"] for n in doc["nodes"] if n.get("module")})


@pytest.fixture(scope="module")
def record(tmp_path_factory, graph_doc):
    """60 recorded steps every 10: inp's gradient fades by 10× every 10 records, and blocks.2.fc.weight's
    gradient is NaN from record 45 (step 450) on."""
    path = tmp_path_factory.mktemp("watch") / "run.cgw"
    synthetic(path, _params(graph_doc), _modules(graph_doc), 60, graph=graph_doc, every=10,
              fade={"inp.weight": lambda k: 10 ** (-k / 10), "inp.bias": lambda k: 10 ** (-k / 10)},
              nan_at=(45, "blocks.2.fc.weight"))
    return path


@pytest.fixture(scope="module")
def page_file(record, tmp_path_factory):
    out = tmp_path_factory.mktemp("page") / "run.html"
    r = subprocess.run([sys.executable, "-m", "cgviz", "render", str(record), "-o", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "60 recorded steps" in r.stderr
    return out


def _data(html: str) -> dict:
    blob = html.split('<script type="application/json" id="cgviz-watch">', 1)[1].split("</script>", 1)[0]
    return json.loads(blob)


# ---------------------------------------------------------------- the numbers

def test_heatmap_is_log_grad_over_weight_per_layer(record):
    from cgviz.view.watch_page import matrices
    from cgviz.watch.read import read_run
    run = read_run(record)
    m = matrices(run)
    assert m["layers"][:2] == ["inp", "blocks.0.fc"]
    i, k = m["layers"].index("head"), 7
    ps = [run.steps[k].params[p] for p in ("head.weight", "head.bias")]
    want = math.log10(math.sqrt(sum(p.g ** 2 for p in ps)) / math.sqrt(sum(p.w ** 2 for p in ps)))
    assert m["ratio"][i, k] == pytest.approx(want)
    upd = math.log10(math.sqrt(sum((p.update * p.w) ** 2 for p in ps)) / math.sqrt(sum(p.w ** 2 for p in ps)))
    assert m["update"][i, k] == pytest.approx(upd)
    # the fading layer: one decade lower every 10 records
    j = m["layers"].index("inp")
    assert m["ratio"][j, 50] < m["ratio"][j, 0] - 4
    # NaN from record 45 in blocks.2.fc only
    b = m["layers"].index("blocks.2.fc")
    assert m["bad"][b, 45:].all() and not m["bad"][b, :45].any() and not m["bad"][j].any()


def test_every_parameter_maps_onto_a_drawn_node(record, graph_doc):
    from cgviz.view.watch_graph import from_json, mapping, picture
    graph, run = from_json(graph_doc)
    pic = picture(graph, run)
    assert pic.groups, "the 4 blocks fold into one ×4 frame"
    nodes, edges, frames = mapping(graph, pic)
    shown = {p for d in nodes.values() for p in d["params"]}
    assert shown == set(_params(graph_doc))
    # the folded fc box's weight row stands for all 4 blocks' weights
    rows = [r for d in nodes.values() for r in d["rows"] if r[1] == "p"]
    assert any(sorted(r[2]) == [f"blocks.{i}.fc.weight" for i in range(4)] for r in rows)
    # the ×4 frame's per-block row: one list of parameters per block
    (per,) = [r[2] for rows_ in frames.values() for r in rows_]
    assert [sorted(x) for x in per] == [[f"blocks.{i}.fc.bias", f"blocks.{i}.fc.weight"] for i in range(4)]
    # red edges out of a module's output op carry that module's ‖∂L/∂out‖
    assert any(kind == "m" and names == ["head"] for kind, names in edges.values())


def test_page_data(page_file):
    html = page_file.read_text()
    d = _data(html)
    assert d["steps"] == list(range(0, 600, 10))
    assert d["loss"][44] is not None and d["loss"][45] is None and d["lossText"][45] == "nan"
    assert len(d["ratio"]) == len(d["layers"]) and len(d["ratio"][0]) == 60
    assert "http://" not in html.replace("http://www.w3.org", "")      # self-contained


def test_reading_and_drawing_a_record_never_imports_torch(record, tmp_path):
    out = tmp_path / "x.html"
    cli_without_torch(["render", record, "-o", out])
    assert out.stat().st_size > 10_000


def test_record_without_a_graph(tmp_path, cli):
    path = tmp_path / "nograph.cgw"
    synthetic(path, {"a.weight": [4, 4], "b.weight": [4]}, ["a"], 5)
    r = cli("render", path, "-o", tmp_path / "p.html")
    assert r.exit_code == 0, r.stderr
    html = (tmp_path / "p.html").read_text()
    assert "holds no model graph" in html and _data(html)["layers"] == ["a", "b"]


# ---------------------------------------------------------------- the picture

@pytest.mark.parametrize("suffix", ["png", "svg"])
def test_static_picture(record, tmp_path, cli, suffix):
    out = tmp_path / f"run.{suffix}"
    r = cli("render", record, "-o", out)
    assert r.exit_code == 0, r.stderr
    data = out.read_bytes()
    if suffix == "svg":
        assert data.lstrip().startswith(b"<?xml") and b"<svg" in data and b"events" in data
        return
    from PIL import Image
    im = Image.open(io.BytesIO(data)).convert("RGB")
    assert im.width >= 800 and im.height >= 400
    a = np.asarray(im)
    assert a.std() > 20                        # not blank
    red = (a[..., 0] > 180) & (a[..., 1] < 40) & (a[..., 2] < 40)
    assert red.sum() > 100                     # the NaN cells are painted red


# ---------------------------------------------------------------- bad input

def test_not_a_record(tmp_path, cli):
    bad = tmp_path / "bad.cgw"
    bad.write_text('{"format": "something-else"}\n')
    out = tmp_path / "bad.html"
    r = cli("render", bad, "-o", out)
    assert r.exit_code == 1 and "not a cgviz watch record" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()


def test_a_record_with_no_step_yet(tmp_path, cli):
    p = tmp_path / "empty.cgw"
    p.write_text(json.dumps({"format": "cgviz-watch", "version": 1, "source": "x", "graph": None,
                             "params": [], "modules": []}) + "\n")
    r = cli("render", p, "-o", tmp_path / "e.png")
    assert r.exit_code == 1 and "no step" in r.stderr
    assert not (tmp_path / "e.png").exists()


def test_a_format_the_record_has_not(record, tmp_path, cli):
    r = cli("render", record, "-o", tmp_path / "x.dot")
    assert r.exit_code == 2 and "html, png, svg or pdf" in r.stderr


def test_the_output_may_not_be_the_record(record, cli):
    r = cli("render", record, "-f", "html", "-o", record)
    assert r.exit_code == 2
    assert record.read_text().startswith('{"format": "cgviz-watch"')


# ---------------------------------------------------------------- in Chromium

@pytest.fixture
def opened(browser, page_file):  # noqa: F811
    o = Opened(browser, page_file)
    o.page.wait_for_function("() => window.cgviz.watch")
    yield o
    assert o.errors == []
    assert all(u.startswith("file:") or u.startswith("data:") for u in o.requests)
    o.page.close()


def _fc_weight_text(o) -> str:
    return o.js("""() => [...document.querySelectorAll('#graph svg g.node text')].map(t => t.textContent)
                   .find(t => t.startsWith('‖∇‖ = ') && t.includes('all 4'))""")


def test_slider_changes_a_nodes_gradient_number(opened):
    o = opened
    assert o.js("() => window.cgviz.watch.step()") == 59
    at_end = _fc_weight_text(o)
    assert at_end.startswith("‖∇‖ = NaN")        # blocks.2.fc.weight is NaN by then
    o.page.locator("#train-step").fill("3")
    early = _fc_weight_text(o)
    assert early != at_end and "NaN" not in early
    # the number is the record's: √Σ‖g‖² over the 4 blocks' weights at record 3
    d = _data(o.page.content())
    g = [d["P"]["g"][d["params"].index(f"blocks.{i}.fc.weight")][3] for i in range(4)]
    shown = float(early.split("= ")[1].split()[0])
    assert shown == pytest.approx(math.sqrt(sum(x * x for x in g)), rel=1e-3)
    assert "step 30 " in o.page.locator("#train-info").text_content()
    # a red edge's width follows too
    widths = lambda: o.js("""() => [...document.querySelectorAll('#graph svg g.edge.bwd path')]
                             .map(p => p.getAttribute('stroke-width')).join()""")
    before = widths()
    o.page.locator("#train-step").fill("20")
    assert widths() != before


def test_clicking_a_heatmap_cell_moves_the_slider_and_selects_the_layer(opened):
    o = opened
    layers = o.js("() => JSON.parse(document.getElementById('cgviz-watch').textContent).layers")
    row = layers.index("head")
    box = o.page.locator("#w-heat").bounding_box()
    cw = o.js("() => (document.getElementById('w-heat').width - 154) / 60")
    ch = o.js(f"() => (document.getElementById('w-heat').height - 8) / {len(layers)}")
    o.page.mouse.click(box["x"] + 150 + cw * 12.5, box["y"] + 4 + ch * (row + 0.5))
    assert o.js("() => window.cgviz.watch.step()") == 12
    assert o.page.locator("#train-step").input_value() == "12"
    assert o.js("() => window.cgviz.watch.layer()") == row
    assert o.page.locator("#panel").get_attribute("class") == "open"
    assert "head" in o.page.locator("#panel-title").text_content()
    assert "at step 120" in o.page.locator("#panel-body").text_content()
    assert o.page.locator("#w-hist-layer").text_content() == "head"
    assert o.page.locator("#w-hists canvas").count() == 2


def test_events_are_listed_and_go_to_their_step(opened):
    o = opened
    items = o.page.locator("#w-events li")
    assert items.count() >= 1
    nan = o.page.locator("#w-events li", has_text="NaN")
    assert "450" in nan.first.text_content()
    nan.first.click()
    assert o.js("() => window.cgviz.watch.step()") == 45
    assert o.page.locator("#w-diagnosis p").count() >= 1


def test_switching_the_heatmap_to_the_update_ratio(opened):
    o = opened
    before = o.page.locator("#w-heat-info").text_content()
    o.page.locator('input[name="w-metric"][value="update"]').check()
    after = o.page.locator("#w-heat-info").text_content()
    assert "‖Δw‖/‖w‖" in after and after != before


# ---------------------------------------------------------------- a real recorded run

@pytest.fixture(scope="module")
def real_page(tmp_path_factory):
    """The deep sigmoid MLP of the watch tests, trained 40 steps and recorded every 2 by cgviz.watch."""
    import torch

    import cgviz
    from watch_models import loop, sigmoid_mlp
    tmp = tmp_path_factory.mktemp("real")
    model, x, y, loss_fn = sigmoid_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    with cgviz.watch(model, tmp / "run.cgw", every=2, loss=lambda out: loss_fn(out, y)) as w:
        loop(model, x, y, loss_fn, opt, 40, w)
    out = tmp / "run.html"
    r = subprocess.run([sys.executable, "-m", "cgviz", "render", str(tmp / "run.cgw"), "-o", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return tmp / "run.cgw", out


def test_real_run_page_says_what_the_analysis_found(real_page):
    from cgviz.watch.analysis import diagnosis, events
    from cgviz.watch.read import read_run
    record, page = real_page
    run = read_run(record)
    d = _data(page.read_text())
    assert d["steps"] == [s.step for s in run.steps] == list(range(0, 40, 2))
    evs = events(run)
    assert any(e.kind == "vanishing" and e.where == "0" for e in evs)
    assert [e["text"] for e in d["events"]] == [e.text for e in evs]
    assert d["diagnosis"] == diagnosis(run)
    # the vanishing first layer's event points at the box that draws its parameters
    first = next(e for e in d["events"] if e["where"] == "0")
    assert first["node"] and "0.weight" in d["nodes"][first["node"]]["params"]
    # its ‖g‖/‖w‖ row is three decades under the last layer's
    assert d["ratio"][d["layers"].index("0")][0] < d["ratio"][d["layers"].index("16")][0] - 2


def test_real_run_page_in_chromium(browser, real_page):  # noqa: F811
    o = Opened(browser, real_page[1])
    o.page.wait_for_function("() => window.cgviz.watch")
    texts = lambda: o.js("""() => [...document.querySelectorAll('#graph svg g.node text')].map(t => t.textContent)
                            .filter(t => t.startsWith('‖∇‖ = ')).join('|')""")
    last = texts()
    o.page.locator("#train-step").fill("0")
    assert texts() != last
    o.page.locator("#w-events li").first.click()
    assert o.page.locator("#panel").get_attribute("class") == "open"
    assert o.errors == []
    o.page.close()


def test_a_record_still_being_written(tmp_path, cli):
    path = tmp_path / "live.cgw"
    synthetic(path, {"a.weight": [4, 4]}, ["a"], 4)
    with open(path, "a") as f:
        f.write('{"step": 4, "loss": 0.5, "par')          # the record being written
    r = cli("render", path, "-o", tmp_path / "p.html")
    assert r.exit_code == 0, r.stderr
    html = (tmp_path / "p.html").read_text()
    assert _data(html)["steps"] == [0, 1, 2, 3] and "last line was incomplete" in html


def test_a_page_without_a_graph_in_chromium(browser, tmp_path, cli):  # noqa: F811
    path = tmp_path / "nograph.cgw"
    synthetic(path, {"a.weight": [4, 4], "b.weight": [4]}, ["a"], 8)
    cli("render", path, "-o", tmp_path / "p.html")
    o = Opened(browser, tmp_path / "p.html")
    o.page.wait_for_function("() => window.cgviz.watch")
    o.page.locator("#train-step").fill("2")
    assert o.js("() => window.cgviz.watch.step()") == 2
    assert "step 2 " in o.page.locator("#train-info").text_content()
    assert o.errors == []
    o.page.close()


def test_an_expression_programs_training_record(tmp_path, cli):
    """`cgviz train prog.cg -o run.cgw` writes the same record: one page serves both. Its params
    belong to no module, so each is a heatmap row of its own, drawn on its own box."""
    rec = tmp_path / "run.cgw"
    r = cli("train", ROOT / "sample_graphs" / "deep_sigmoid.cg", "--lr", "0.5", "--steps", "20", "-o", rec,
            "--curve", tmp_path / "loss.png", "-q")
    assert r.exit_code == 0, r.stderr
    r = cli("render", rec, "-o", tmp_path / "run.html")
    assert r.exit_code == 0, r.stderr
    d = _data((tmp_path / "run.html").read_text())
    assert d["layers"][:2] == ["W1", "W2"] and all(d["layerNode"][x] for x in d["layers"])


# ---------------------------------------------------------------- drill-down at every step

def _levels(o) -> dict:
    return o.js("() => JSON.parse(document.getElementById('cgviz-watch').textContent).levels")


def _param_texts(o) -> list[str]:
    return o.js("""() => [...document.querySelectorAll('#graph svg g.node text')].map(t => t.textContent)
                   .filter(t => t.startsWith('‖∇‖ = '))""")


def _g(d, name, k):
    return d["P"]["g"][d["params"].index(name)][k]


def _number(text: str) -> float:
    return float(text.split("= ")[1].split()[0])


def test_the_page_has_the_model_pages_levels(page_file):
    html = page_file.read_text()
    d = _data(html)
    assert set(d["levels"]) == {"", "blocks", "blocks.0"}
    inner = d["levels"]["blocks.0"]
    # the block's level: one mapping per block of the ×4 fold, each on the first block's layout
    assert [sorted(p for n in r["nodes"].values() for p in n["params"]) for r in inner["reps"]] == \
        [[f"blocks.{i}.fc.bias", f"blocks.{i}.fc.weight"] for i in range(4)]
    assert all(set(r["nodes"]) == set(inner["nodes"]) for r in inner["reps"])


def test_opening_a_module_shows_its_parameters_at_the_step(opened):
    o = opened
    d = _data(o.page.content())
    o.page.locator("#train-step").fill("7")
    o.js("() => window.cgviz.go('blocks.0')")
    o.page.wait_for_function("() => window.cgviz.level === 'blocks.0'")
    assert "›" in o.page.locator("#crumbs").text_content()
    assert not o.page.locator("#reps").is_hidden()
    # the block's own weight and bias, at record 7: one number each (not the 4 blocks' together)
    texts = _param_texts(o)
    assert len(texts) == 2 and not any("all 4" in t for t in texts)
    assert sorted(_number(t) for t in texts) == pytest.approx(
        sorted([_g(d, "blocks.0.fc.weight", 7), _g(d, "blocks.0.fc.bias", 7)]), rel=1e-3)
    # the module op's ‖∂L/∂out‖ is the record's for blocks.0.act at record 7
    act = o.js("""() => [...document.querySelectorAll('#graph svg g.node text')].map(t => t.textContent)
                  .filter(t => t.startsWith('‖∂L/∂out‖ = '))""")
    want = d["M"]["grad"][d["modules"].index("blocks.0.act")][7]
    assert any(_number(t) == pytest.approx(want, rel=1e-3) for t in act), act
    # the slider moves them while drilled in, and the red edges with them
    widths = lambda: o.js("""() => [...document.querySelectorAll('#graph svg g.edge.bwd path')]
                             .map(p => p.getAttribute('stroke-width')).join()""")
    before = widths()
    o.page.locator("#train-step").fill("30")
    assert sorted(_number(t) for t in _param_texts(o)) == pytest.approx(
        sorted([_g(d, "blocks.0.fc.weight", 30), _g(d, "blocks.0.fc.bias", 30)]), rel=1e-3)
    assert widths() != before
    # a box's panel says this step's record of the block's own parameters
    o.page.locator('#graph svg g.node[data-id="blocks.0.fc/params"]').click()
    body = o.page.locator("#panel-body").text_content()
    assert "at step 300" in body and "blocks.0.fc.weight: ‖w‖" in body and "blocks.1.fc.weight" not in body


def test_the_block_selector_shows_each_blocks_numbers(opened):
    o = opened
    d = _data(o.page.content())
    o.page.locator("#train-step").fill("50")          # blocks.2.fc.weight is NaN from record 45
    o.js("() => window.cgviz.go('blocks.0')")
    o.page.wait_for_function("() => window.cgviz.level === 'blocks.0'")
    for i in (1, 3):
        o.page.locator("#rep").fill(str(i))
        assert o.js("() => window.cgviz.rep") == i
        assert sorted(_number(t) for t in _param_texts(o)) == pytest.approx(
            sorted([_g(d, f"blocks.{i}.fc.weight", 50), _g(d, f"blocks.{i}.fc.bias", 50)]), rel=1e-3)
    o.page.locator("#rep").fill("2")
    assert any(t.startswith("‖∇‖ = NaN") for t in _param_texts(o))
    o.page.locator("#train-step").fill("10")
    assert not any("NaN" in t for t in _param_texts(o))
    assert sorted(_number(t) for t in _param_texts(o)) == pytest.approx(
        sorted([_g(d, "blocks.2.fc.weight", 10), _g(d, "blocks.2.fc.bias", 10)]), rel=1e-3)


def test_back_returns_to_the_top_at_the_same_step(opened):
    o = opened
    o.page.locator("#train-step").fill("3")
    top = _fc_weight_text(o)
    o.page.locator('#graph svg g.cluster[data-opens="blocks.0"]').first.click(position={"x": 4, "y": 4})
    o.page.wait_for_function("() => window.cgviz.level === 'blocks.0'")
    o.page.locator("#train-step").fill("12")
    o.page.locator("#crumbs a").first.click()          # the breadcrumb back to the model
    o.page.wait_for_function("() => window.cgviz.level === ''")
    assert o.js("() => window.cgviz.watch.step()") == 12
    at12 = _fc_weight_text(o)
    assert at12 != top and at12.startswith("‖∇‖ = ")
    d = _data(o.page.content())
    g = [_g(d, f"blocks.{i}.fc.weight", 12) for i in range(4)]
    assert _number(at12) == pytest.approx(math.sqrt(sum(x * x for x in g)), rel=1e-3)
    # the browser's back button walks the levels too, and the step stays
    o.page.go_back()
    o.page.wait_for_function("() => window.cgviz.level === 'blocks.0'")
    assert o.js("() => window.cgviz.watch.step()") == 12
    assert "step 120 " in o.page.locator("#train-info").text_content()
    assert sorted(_number(t) for t in _param_texts(o)) == pytest.approx(
        sorted([_g(d, "blocks.0.fc.weight", 12), _g(d, "blocks.0.fc.bias", 12)]), rel=1e-3)


def test_an_event_clicked_while_drilled_in_goes_back_to_its_node(opened):
    o = opened
    o.js("() => window.cgviz.go('blocks.0')")
    o.page.wait_for_function("() => window.cgviz.level === 'blocks.0'")
    o.page.locator("#w-events li", has_text="NaN").first.click()
    o.page.wait_for_function("() => window.cgviz.level === ''")
    assert o.js("() => window.cgviz.watch.step()") == 45
    assert o.page.locator("#panel").get_attribute("class") == "open"
    assert "at step 450" in o.page.locator("#panel-body").text_content()
    assert _fc_weight_text(o).startswith("‖∇‖ = NaN")
