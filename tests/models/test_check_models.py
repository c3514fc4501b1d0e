"""`cgviz check MODEL`: the zoo and the sample model pass; a wrong recorded gradient fails by name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RES_CNN = ROOT / "sample_graphs" / "models" / "res_cnn.py"
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.* is deprecated:DeprecationWarning")


def _rows(text: str) -> dict[str, list[str]]:
    out = {}
    for line in text.splitlines()[1:]:
        cells = re.split(r"\s{2,}", line.strip())
        if len(cells) == 9:
            out[cells[0]] = cells
    return out


@pytest.mark.parametrize("name, fmt", [("mlp", "pt2"), ("rescnn", "ts"), ("dicttuple", "pkl")])
def test_zoo_models_pass(cli, saved_models, name, fmt):
    args = ["check", saved_models[name][fmt], "--fd-samples", "4", "--format", "json"]
    if fmt != "pt2":      # TorchScript and pickles carry no example inputs
        args += ["--input", saved_models[name]["inputs"]]
    if fmt == "pkl":
        args.append("--trust")
    r = cli(*args)
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert data["ok"] and data["torch"] and data["tensors"]
    for t in data["tensors"]:
        assert t["torch"]["ok"] and t["fd"]["ok"], t
        assert t["fd_checked"] == min(4, t["elements"])
        assert t["torch"]["compared"] == "values" and t["torch"]["max_rel"] < 1e-5
    kinds = {t["kind"] for t in data["tensors"]}
    assert kinds == {"param", "input"}


def test_sample_model_passes_with_default_options(cli):
    r = cli("check", RES_CNN)
    assert r.exit_code == 0, r.output
    rows = _rows(r.stdout)
    assert rows["fc.bias"][3] == "10/10" and rows["layer1.0.conv1.weight"][3] == "16/2304"
    assert rows["x"][1] == "[2×3×16×16]"
    assert all(row[-1].startswith("ok") for row in rows.values())
    assert "ok: 24 gradients agree" in r.stdout
    assert "the model runs in float32" in r.stdout


def test_float64_and_train_mode_with_dropout(cli, tmp_path):
    """Dropout masks are re-drawn with the same seed before every forward, and batch norm uses the
    batch's statistics: finite differences stay meaningful in training mode, tightly in float64."""
    f = tmp_path / "drop.py"
    f.write_text(
        "import torch, torch.nn as nn\n"
        "torch.manual_seed(0)\n"
        "model = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Tanh(), nn.Dropout(0.5), nn.Linear(8, 3))\n"
        "example_inputs = (torch.randn(5, 6),)\n")
    r = cli("check", f, "--train", "--dtype", "float64", "--loss", "mse", "--fd-samples", "8")
    assert r.exit_code == 0, r.output
    assert "the model runs in float32" not in r.stdout
    rows = _rows(r.stdout)
    assert set(rows) == {"0.weight", "0.bias", "1.weight", "1.bias", "4.weight", "4.bias", "input"}
    for row in rows.values():
        assert float(row[6]) < 1e-6 if row[6] != "0" else True


def test_wrong_recorded_gradient_fails_by_name(cli, saved_models, monkeypatch):
    """Corrupt what the recorder keeps of one parameter's gradient: check must notice."""
    import numpy as np

    from cgviz.pytorch import record
    from cgviz.core.summary import TensorInfo

    real = record.Recorder.finish

    def finish(self, output_id):
        graph, run = real(self, output_id)
        g = run.param_grads["fc2.bias"]
        bad = g.values * 1.01
        run.param_grads["fc2.bias"] = TensorInfo(g.shape, g.dtype, g.stats, bad)
        return graph, run
    monkeypatch.setattr(record.Recorder, "finish", finish)
    r = cli("check", saved_models["mlp"]["pt2"], "--fd-samples", "4")
    assert r.exit_code == 1
    rows = _rows(r.stdout)
    assert rows["fc2.bias"][-1] == "FAIL" and rows["fc1.bias"][-1] == "ok"
    assert "FAIL: 1 of 7 gradients disagree: fc2.bias" in r.stdout
    assert "fc2.bias: differs from plain PyTorch" in r.stdout
    assert np.isfinite(float(rows["fc2.bias"][4]))


def test_missing_model_is_a_clean_message(cli, saved_models):
    r = cli("check", saved_models["broken"]["random"])
    assert r.exit_code == 1
    assert "not a model file cgviz can read" in r.stderr and "Traceback" not in r.output
