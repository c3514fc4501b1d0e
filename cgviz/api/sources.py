"""What a source is (program text, an expression file or a model, by suffix and content); the files a call reads."""

from __future__ import annotations

import os
from pathlib import Path

from ..core.errors import CgvizError
from ..core.paths import is_hub
from ..core.spelling import spell

MODEL_SUFFIXES = (".py", ".pt2", ".pt", ".pth", ".ts", ".jit", ".pkl", ".zip", ".bin", ".onnx")
KINDS = ("text", "expression", "model", "file")


def _is_text_or_path(source) -> bool:
    return isinstance(source, (str, os.PathLike))


def source_kind(text_or_path: str, kind: str | None = None) -> str:
    """What a string names: "text" (a program), "expression" (an expression file) or "model".

    `kind` None tells text from a path (text has a newline, or an `=` and no such file), then a
    path by is_model; "file" is a path of either kind, told by is_model; the others are taken as said."""
    if kind not in (None,) + KINDS:
        raise CgvizError(f"kind={kind!r}: must be one of {', '.join(map(repr, KINDS))}")
    if kind in (None, "file") and is_hub(text_or_path):
        return "model"          # hf:gpt2, a Hugging Face model by name (cgviz.pytorch.hf_source)
    if kind is None and ("\n" in text_or_path or ("=" in text_or_path and not Path(text_or_path).exists())):
        return "text"
    if kind in (None, "file"):
        return "model" if is_model(text_or_path) else "expression"
    return kind


def is_model(target: str) -> bool:
    """Whether a path names a model rather than an expression file: by suffix first (.cg is an
    expression file, .py and torch's archives are models), else by content (a zip or pickle is a
    model; text is an expression file unless the expression parser rejects it and Python accepts it)."""
    from ..core.paths import split_spec
    if target == "-":
        return False
    if is_hub(target):
        return True
    path, factory = split_spec(target)
    if factory:
        return True
    suffix = path.suffix.lower()
    if suffix == ".cg":
        return False
    if suffix in MODEL_SUFFIXES:
        return True
    from ..core.paths import SOURCE_LIMIT, check_input, read_input
    # Not a regular file (a FIFO, a device, a folder, a loop) or missing: say so before anything opens it.
    accepts = "Give an expression file such as pizza.cg, or a model file (see cgviz torch --help)."
    if check_input(path, kind="an expression file or a model", accepts=accepts).st_size > SOURCE_LIMIT:
        return True             # too big for an expression file
    data = read_input(path, kind="an expression file or a model", accepts=accepts, limit=SOURCE_LIMIT)
    from ..pytorch.load import sniff
    try:
        kind = sniff(path, data)
    except CgvizError:
        return True             # a damaged zip: load_model says so
    if kind.startswith("zip") or kind == "pickle":
        return True
    if kind == "python":
        from ..lang.parser import parse
        try:
            parse(data.decode("utf-8-sig"), str(path))
        except CgvizError:
            return True
        return False
    return False


def _program(text_or_path: str, kind: str | None) -> tuple[str, str, tuple[str, ...]]:
    """(text, name, files read) of an expression program given as text or as a file."""
    from ..route.expression import read_source
    if source_kind(text_or_path, kind) == "text":
        return text_or_path, "<text>", ()
    text, name = read_source(text_or_path)
    return text, name, (text_or_path,)


def _evaluate(source, kind: str | None, sets, max_elements: int | None = None, grad: bool = True):
    """An expression program run forward and backward: (pipeline.Result, its name, files read)."""
    from ..route.expression import evaluate
    text, name, inputs = _program(os.fspath(source), kind)
    overrides = {k: str(v) for k, v in (sets or {}).items()}
    return evaluate(text, name, overrides, grad=grad, max_elements=max_elements), name, inputs


def _is_model(source, kind: str | None) -> bool:
    """A model file, or a module or function in memory; else an expression program."""
    return not _is_text_or_path(source) or source_kind(os.fspath(source), kind) == "model"


def _expression(source, kind: str | None, caller: str) -> str:
    """The kind of an expression source; a model is refused, since `caller` reads programs only."""
    if _is_model(source, kind):
        raise CgvizError(f"{caller}() reads expression programs; {source} is a model (draw() draws it)")
    return source_kind(os.fspath(source), kind)


def files_read(source: str, input_file: str | None = None, weights: str | None = None,
               targets: str | None = None) -> list:
    """The files a call reads (cgviz.core.paths.Arg, for checking outputs against them): the source file
    (`net.py` of `net.py:build`; none for "-"), the inputs file, the weights and the targets."""
    from ..core.paths import Arg, split_spec
    files = [] if source == "-" or is_hub(source) else [Arg("the input", split_spec(source)[0])]
    return files + [Arg(spell("input"), input_file), Arg(spell("weights"), weights), Arg(spell("targets"), targets)]
