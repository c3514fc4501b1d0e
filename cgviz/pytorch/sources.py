"""Model sources as adapters: each kind of model file says how it is recognised, loaded and run.

A source has its file extensions and a content sniffer (content decides, never the suffix alone),
a `load` that gives a `Loaded`, and optionally a `run` that calls the model with the recorder's
scope known for each op (a program without live submodules for hooks to see) and `inputs` that
builds example inputs from what the file declares (a tuple of positional arguments, or a dict of
keyword arguments). `load_model` asks the registry; a new source is one entry in SOURCES. A source
with a `scheme` reads no file: a spec starting with it (`hf:gpt2`) names the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..core.errors import CgvizError


@dataclass(frozen=True)
class Source:
    kind: str                       # Loaded.kind
    description: str                # "ONNX model", in messages
    extensions: tuple[str, ...]
    sniff: Callable[[Path, bytes, str], bool]      # (path, data, the torch-file sniff's verdict)
    load: Callable[..., object]                    # (path, data, trust=, meta=, factory=) -> Loaded
    run: Callable | None = None                    # (model, args, kwargs, rec) -> outputs
    inputs: Callable | None = None                 # (loaded, opts) -> args or kwargs, when the user gave none
    scheme: str = ""                               # "hf:": the spec names the model, no file (sniff unused)


def _torch_kind(*verdicts: str):
    return lambda path, data, verdict: verdict in verdicts


def _python(path, data, trust=False, meta=False, factory=None):
    from .load import _load_python
    return _load_python(path, factory, meta)


def _export(path, data, trust=False, meta=False, factory=None):
    from .load import _load_export
    return _load_export(path, trust)


def _script(path, data, trust=False, meta=False, factory=None):
    from .load import _load_script
    return _load_script(path)


def _pickle(path, data, trust=False, meta=False, factory=None):
    from .load import _load_pickle
    return _load_pickle(path, data, trust)


def _run_export(model, args, kwargs, rec):
    from .run import _run_export
    return _run_export(model, args, kwargs, rec)


def _run_script(model, args, kwargs, rec):
    from .script import run_script
    return run_script(model, args, kwargs, scope=rec.scope)


def looks_onnx(path: Path, data: bytes, verdict: str = "") -> bool:
    """An ONNX ModelProto: a protobuf whose first field is ir_version (tag 0x08), or any file named
    .onnx that is no torch file (so a damaged one is reported as ONNX, not as 'unknown')."""
    if verdict in ("zip-export", "zip-script", "zip-pickle", "zip-other", "pickle", "python"):
        return False
    return path.suffix.lower() == ".onnx" or (data[:1] == b"\x08" and b"\x12" in data[:16])


def _onnx(path, data, trust=False, meta=False, factory=None):
    from .onnx_source import load_onnx
    return load_onnx(path, data)


def _run_onnx(model, args, kwargs, rec):
    model._recorder = rec
    try:
        return model(*args, **kwargs)
    finally:
        model._recorder = None


def _onnx_inputs(loaded, opts):
    from .onnx_source import declared_inputs
    return declared_inputs(loaded, opts)


def _never(path, data, verdict):
    return False


def _hf(spec, data, trust=False, meta=False, factory=None, download=None):
    from .hf_source import load_hub
    return load_hub(spec, trust=trust, meta=meta, download=download)


def _run_hf(model, args, kwargs, rec):
    from .hf_source import run
    return run(model, args, kwargs, rec)


def _hf_inputs(loaded, opts):
    from .hf_source import example_inputs
    return example_inputs(loaded, opts)


# Checked in order; the first whose sniff says yes loads the file.
SOURCES: tuple[Source, ...] = (
    Source("onnx", "ONNX model", (".onnx",), looks_onnx, _onnx, _run_onnx, _onnx_inputs),
    Source("export", "torch.export program", (".pt2",), _torch_kind("zip-export"), _export, _run_export),
    Source("torchscript", "TorchScript archive", (".pt", ".ts"), _torch_kind("zip-script"), _script, _run_script),
    Source("module", "pickled nn.Module", (".pt", ".pth", ".pkl"), _torch_kind("zip-pickle", "pickle"), _pickle),
    Source("python", "Python model file", (".py",), _torch_kind("python"), _python),
    Source("hf", "Hugging Face model", (), _never, _hf, _run_hf, _hf_inputs, scheme="hf:"),
)


def by_kind(kind: str) -> Source | None:
    return next((s for s in SOURCES if s.kind == kind), None)


def by_scheme(spec: str) -> Source | None:
    """The source a spec names by its scheme (`hf:gpt2`), or None for a file."""
    return next((s for s in SOURCES if s.scheme and isinstance(spec, str) and spec.startswith(s.scheme)), None)


def claim(path: Path, data: bytes, verdict: str) -> Source | None:
    """The source that reads this file, or None (load_model then says what it is instead)."""
    return next((s for s in SOURCES if s.sniff(path, data, verdict)), None)


def require(module: str, what: str):
    """Import an optional dependency, or say which extra brings it."""
    import importlib
    try:
        return importlib.import_module(module)
    except ImportError as e:
        raise CgvizError(f"{what} needs the {module} package ({e}). Install cgviz with its onnx extra: "
                         "pip install -e '.[torch,onnx]' from a checkout") from None
