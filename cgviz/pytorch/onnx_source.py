"""Reading an ONNX file (the `onnx` extra): parsed and checked by the onnx package, run by onnx_graph."""

from __future__ import annotations

from pathlib import Path

from ..core.errors import CgvizError
from ..core.spelling import on_command_line, spell
from .load import Loaded
from .sources import require


def load_onnx(path: Path, data: bytes) -> Loaded:
    """The file as a Loaded model of kind "onnx"; a damaged or unconvertible file is a CgvizError."""
    onnx = require("onnx", f"reading the ONNX model {path}")
    try:
        model = onnx.load_model_from_string(data)
    except Exception as e:          # protobuf's DecodeError, and others for truncated input
        raise CgvizError(f"{path} is not a valid ONNX model (its protobuf does not parse: "
                         f"{str(e).splitlines()[0][:200] if str(e) else type(e).__name__}). Export it again.") from None
    if not model.HasField("graph") or not model.graph.node:
        raise CgvizError(f"{path} is not an ONNX model with a graph (no nodes were found). Export it again.")
    external = next((i.name for i in model.graph.initializer if i.data_location == onnx.TensorProto.EXTERNAL), None)
    if external is not None:
        # (onnx would read it from a path the file names, relative to wherever cgviz runs)
        raise CgvizError(f"{path}: initializer {external} keeps its data in an external file; cgviz reads "
                         "ONNX files that hold their weights (onnx.save(model, path, save_as_external_data=False))")
    try:
        onnx.checker.check_model(model)
    except Exception as e:          # onnx.checker.ValidationError, and errors for odd opsets
        raise CgvizError(f"{path} is not a valid ONNX model: {str(e).strip().splitlines()[0][:300]}") from None
    from .onnx_graph import graph_module
    module = graph_module(model, str(path))
    loaded = Loaded("onnx", module, str(path))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    loaded.notes.append(f"ONNX graph of {len(module.steps)} ops (opset {opset}, from "
                        f"{model.producer_name or 'an unnamed producer'})")
    return loaded


def _ask(dim: str, input_name: str) -> str:
    if on_command_line():
        return f"give its size with {spell('dims', f'{dim}=N')}, or the whole shape with {spell('input_shape')}"
    return f"give its size with dims={{{dim!r}: N}}, or give example inputs or {spell('input_shape')}"


def declared_inputs(loaded: Loaded, opts) -> tuple:
    """Random example inputs of the shapes and dtypes the graph declares."""
    from .onnx_graph import example_inputs
    return example_inputs(loaded.model, dict(getattr(opts, "dims", None) or {}), opts.seed, loaded.path, _ask)
