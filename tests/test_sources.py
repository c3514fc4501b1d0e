"""The model-source registry (cgviz.pytorch.sources): which source claims a file, by content first."""

from __future__ import annotations

from pathlib import Path

import pytest

from cgviz.pytorch.sources import SOURCES, by_kind, claim

import onnx


def _onnx_bytes() -> bytes:
    from onnx import TensorProto, helper
    vi = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    out = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"], name="/act/Relu")], "g", [vi], [out])
    return helper.make_model(g).SerializeToString()


def test_the_registry_holds_every_source():
    assert [s.kind for s in SOURCES] == ["onnx", "export", "torchscript", "module", "python", "hf"]
    assert by_kind("onnx").description == "ONNX model" and by_kind("memory") is None
    # sources that run a program without live submodules say how each op finds its module
    assert {s.kind for s in SOURCES if s.run} == {"onnx", "export", "torchscript", "hf"}


def test_an_onnx_file_is_told_by_its_content(tmp_path):
    data = _onnx_bytes()
    assert claim(Path("model.bin"), data, "unknown").kind == "onnx"     # renamed: still ONNX
    assert claim(Path("model.onnx"), b"\x00garbage", "unknown").kind == "onnx"   # damaged: said as ONNX
    assert claim(Path("model.onnx"), b"PK\x03\x04", "zip-export").kind == "export"   # content wins
    assert claim(Path("model.py"), b"x = 1\n", "python").kind == "python"
    assert claim(Path("notes.txt"), b"hello there", "text") is None


def test_a_renamed_onnx_file_loads(tmp_path):
    from cgviz.pytorch.load import load_model
    p = tmp_path / "model.bin"
    p.write_bytes(_onnx_bytes())
    loaded = load_model(str(p))
    assert loaded.kind == "onnx" and loaded.description == "ONNX model"
    assert [s.op for s in loaded.model.steps] == ["Relu"]
