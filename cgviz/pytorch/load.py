"""Open a model file, telling its kind from its content (not its suffix), and never run its code unasked.

Kinds: a `torch.export` program, a TorchScript archive, a Python file defining the model, and — only
with `--trust` — a whole pickled `nn.Module`. A state_dict or a file of tensors has no graph; we say
so and show what to pass instead.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pickletools
import re
import sys
import traceback
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import CgvizError
from ..core.paths import split_spec  # noqa: F401  (it lives in cgviz.core.paths, light enough for the expression path)
from ..core.spelling import on_command_line, spell



def accepts() -> str:
    """What a model file may be; `--trust` or `trust=True` as the caller writes it."""
    return ("cgviz torch reads: a torch.export program (torch.export.save, usually .pt2), a TorchScript "
            "archive (torch.jit.save), a Python file defining the model (model.py or model.py:factory), "
            "an ONNX model (.onnx, with the onnx extra), a Hugging Face model by name (hf:gpt2, "
            "hf:meta-llama/Llama-3.2-1B, with the hf extra), "
            f"or, with {spell('trust')}, a whole pickled nn.Module (torch.save(model)).")

WEIGHTS_ACCEPTS = "Give a state_dict saved with torch.save(model.state_dict(), path)."
INPUT_ACCEPTS = "Give tensors saved with torch.save(tensor_or_tuple, path)."

EXPORT_HINT = ("To share a model safely, export it: "
               "torch.export.save(torch.export.export(model, example_inputs), 'model.pt2').")


@dataclass
class Loaded:
    """A model ready to run, and what we learnt about it while loading."""

    kind: str                 # export | torchscript | module | python | onnx | hf (pytorch.sources)
    model: Any                # nn.Module (ScriptModule for torchscript, GraphModule for export)
    path: str
    example_args: tuple | None = None
    example_kwargs: dict | None = None
    program: Any = None       # the ExportedProgram, for its graph's module stacks
    namespace: dict | None = None   # a Python model file's globals (`--loss FUNCTION` names one)
    notes: list[str] = field(default_factory=list)
    what: str = ""            # the title's words for this model, when its source says more than its kind

    @property
    def description(self) -> str:
        if self.what:
            return self.what
        from .sources import by_kind
        source = by_kind(self.kind)
        return source.description if source else "nn.Module in memory"


def _fail(msg: str) -> CgvizError:
    return CgvizError(msg)


def sniff(path: Path, data: bytes) -> str:
    """zip-export | zip-script | zip-pickle | pickle | python | unknown."""
    if data[:4] == b"PK\x03\x04" or data[:4] == b"PK\x05\x06":
        try:
            infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
        except (zipfile.BadZipFile, ValueError, OSError, EOFError, NotImplementedError) as e:
            # (a corrupted central directory can also surface as ValueError, EOFError, or as
            # NotImplementedError for a garbled "version needed to extract")
            raise _fail(f"{path} looks like a zip archive (as torch.save, torch.jit.save and "
                        f"torch.export.save write) but is damaged or truncated: {e}. Save it again. "
                        + accepts()) from None
        from .safety import check_members
        check_members(path, infos)
        names = [i.filename for i in infos]
        tails = {n.split("/", 1)[1] if "/" in n else n for n in names}
        if "archive_format" in tails or "models/model.json" in tails:
            return "zip-export"
        if "constants.pkl" in tails and any(t.startswith("code/") for t in tails):
            return "zip-script"
        if "data.pkl" in tails:
            return "zip-pickle"
        return "zip-other"
    if data[:1] == b"\x80" and len(data) > 2 and data[1] in range(2, 6):
        return "pickle"
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return "unknown"
    if "\x00" in text:
        return "unknown"
    import ast
    try:
        ast.parse(text, filename=str(path))
    except SyntaxError:
        return "text" if not path.suffix == ".py" else "python"   # a broken .py: let Python say where
    return "python"


@dataclass
class PickleScan:
    """What a pickle stream is, read from its opcodes (pickletools) without running any of it."""

    valid: bool               # the opcodes parse, up to the STOP that ends the stream
    problem: str = ""         # why not
    protocol: int = 0
    globals: list[str] = field(default_factory=list)    # every module.name it would import

    @property
    def classes(self) -> list[str]:
        """The imports worth naming in a message (not torch's own tensor rebuilding or containers)."""
        found = list(dict.fromkeys(self.globals))
        boring = ("torch._utils.", "collections.", "torch.", "builtins.", "__builtin__.", "copyreg.", "_codecs.",
                  "numpy.")
        return [f for f in found if not f.startswith(boring)] or [f for f in found if f.startswith("torch.nn.")]


_STRINGS = ("SHORT_BINUNICODE", "BINUNICODE", "UNICODE", "BINUNICODE8", "SHORT_BINSTRING", "BINSTRING", "STRING")


def scan_pickle(data: bytes) -> PickleScan:
    """Scan the pickle of a torch.save file: the `data.pkl` member of a zip, else the bytes themselves
    (a legacy file's first pickle). A garbled stream is reported, never guessed at."""
    blob = data
    if data[:2] == b"PK":
        try:
            z = zipfile.ZipFile(io.BytesIO(data))
            member = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
            if member is None:
                return PickleScan(False, "the archive has no data.pkl")
            blob = z.read(member)
        except Exception as e:      # zipfile raises many kinds for a damaged archive
            return PickleScan(False, f"the zip archive is damaged ({_first_line(e)})")
    scan = PickleScan(True)
    # a small model of the stack, enough to name STACK_GLOBAL's two strings (protocol 4 memoizes
    # them, so the memo is followed too)
    pushed: list = []
    memo: dict[int, Any] = {}
    try:
        for op, arg, pos in pickletools.genops(blob):
            name = op.name
            if name == "PROTO":
                scan.protocol = arg
            if name in _STRINGS:
                pushed.append(arg if isinstance(arg, str) else arg.decode("latin-1", "replace"))
            elif name in ("BINGET", "LONG_BINGET", "GET"):
                pushed.append(memo.get(int(arg)))
            elif name in ("BINPUT", "LONG_BINPUT", "PUT"):
                memo[int(arg)] = pushed[-1] if pushed else None
            elif name == "MEMOIZE":
                memo[len(memo)] = pushed[-1] if pushed else None
            elif name == "GLOBAL":
                scan.globals.append(arg.replace(" ", "."))
                pushed.append(None)
            elif name == "STACK_GLOBAL":
                mod, attr = (pushed[-2:] if len(pushed) >= 2 else [None, None])
                scan.globals.append(f"{mod}.{attr}" if isinstance(mod, str) and isinstance(attr, str)
                                    else "<unknown>")
                pushed.append(None)
            elif name not in ("FRAME", "MARK", "STOP"):
                pushed.append(None)
            del pushed[:-4]
    except Exception as e:          # genops raises ValueError for a bad opcode, others for truncation
        return PickleScan(False, f"{_first_line(e)}", scan.protocol, scan.globals)
    if not scan.protocol and blob[:1] == b"\x80":
        scan.protocol = blob[1]
    return scan


def pickled_classes(data: bytes) -> list[str]:
    """The `module.Class` names a pickle would import, read from its opcodes without running it."""
    return scan_pickle(data).classes


def refused_pickle(what: str, data: bytes) -> str | None:
    """Why torch's weights-only loader refused a file, when the reason is not pickled code: the
    bytes are not a valid pickle at all, or it was saved with a pickle protocol that loader cannot
    read (it reads 2, torch.save's default). None when the file really holds Python objects."""
    scan = scan_pickle(data)
    if not scan.valid:
        return f"{what} is damaged: it is not a valid pickle ({scan.problem}). Save it again"
    if scan.protocol > 2 and not scan.classes:
        return (f"{what} was saved with pickle protocol {scan.protocol}, which PyTorch's safe loader "
                "(weights_only) cannot read: it reads protocol 2, torch.save's default. It holds tensors "
                "and no classes of its own: save it again with torch.save's default protocol (leave out "
                "pickle_protocol)")
    return None


def _is_state_dict(obj) -> bool:
    import torch
    if isinstance(obj, dict) and obj:
        vals = list(obj.values())
        return all(isinstance(v, torch.Tensor) for v in vals) or any(
            isinstance(v, dict) and _is_state_dict(v) for v in vals)
    return False


def check_model_files(spec: str, input_file: str | None = None, weights: str | None = None) -> None:
    """Before torch is imported or the model's code runs: MODEL, --input and --weights are regular
    files (the same checks load_model, load_inputs and --weights make when they read them)."""
    from ..core.paths import check_input, is_hub
    if is_hub(spec):            # an hf: model is no file: its spelling is checked instead (cgviz.pytorch.hf_source)
        from .hf_source import parse
        parse(spec)
    else:
        check_input(split_spec(spec)[0], kind="a model", accepts=accepts())
    if input_file:
        check_input(input_file, spell("input"), kind="inputs", accepts=INPUT_ACCEPTS)
    if weights:
        check_input(weights, spell("weights"), kind="a state_dict", accepts=WEIGHTS_ACCEPTS)


def load_model(spec: str, trust: bool = False, weights: str | None = None, meta: bool = False,
               download: bool | None = None) -> Loaded:
    """Open MODEL as the user named it; every failure is a CgvizError that says what to do. `download`:
    whether an `hf:` model missing from the local cache may be fetched (None: as the caller's context
    says, cgviz.pytorch.hf_source.DOWNLOADS)."""
    from ..core.needs import require_torch
    from ..core.paths import read_input
    require_torch(f"reading the model {spec}")
    from .sources import by_scheme
    scheme = by_scheme(spec)
    if scheme is not None:          # a model by name, not a file
        loaded = scheme.load(spec, b"", trust=trust, meta=meta, download=download)
        if weights:
            _load_weights(loaded, weights)
        return loaded
    path, factory = split_spec(spec)
    # A regular file only (a FIFO or a device could be read for ever); its size is not capped (see
    # cgviz.core.paths), since torch reads what it holds and real checkpoints are large.
    data = read_input(path, kind="a model", accepts=accepts())
    if not data:
        raise _fail(f"{path} is empty (0 bytes). " + accepts())
    kind = sniff(path, data)
    if factory and kind != "python":
        raise _fail(f"{path}:{factory}: a ':factory' suffix only applies to Python files")
    if kind == "python" and path.suffix.lower() != ".py":
        # Told from content, a downloaded `model.pt` that is really a script would otherwise run.
        raise _fail(f"{path} holds Python source but is not named .py; cgviz runs a Python model file "
                    "(which executes its code) only when its name ends in .py. Rename it if you "
                    "wrote it or trust it.")
    from .sources import claim
    source = claim(path, data, kind)
    if source is not None:
        loaded = source.load(path, data, trust=trust, meta=meta, factory=factory)
    elif kind == "text":
        raise _fail(f"{path} is a text file but not Python source. " + accepts())
    else:
        raise _fail(f"{path} is not a model file cgviz can read (it is neither a zip archive written "
                    "by torch.save / torch.jit.save / torch.export.save, nor a pickle, nor Python "
                    "source, nor an ONNX model). " + accepts())
    if weights:
        if loaded.kind != "python" and loaded.kind != "module":
            raise _fail(f"{spell('weights')} applies to a Python model file; {path} is a {loaded.description} "
                        "that already holds its weights")
        _load_weights(loaded, weights)
    return loaded


def _torch_load(path: Path, **kw):
    import torch
    return torch.load(path, map_location="cpu", **kw)


def _load_pickle(path: Path, data: bytes, trust: bool) -> Loaded:
    import pickle
    import torch
    try:
        obj = _torch_load(path, weights_only=True)
    except pickle.UnpicklingError:
        obj = None
    except (RuntimeError, EOFError, ValueError, OSError, zipfile.BadZipFile) as e:
        raise _fail(f"{path} could not be read as a torch.save file: {_first_line(e)}. " + accepts()) from None
    if obj is not None:
        if isinstance(obj, torch.nn.Module):   # pragma: no cover - weights_only never yields one
            return Loaded("module", obj, str(path))
        if _is_state_dict(obj):
            raise _fail(f"{path} is a state_dict (a dict of {_count(obj)} tensors): it holds weights "
                        "but no graph. Pass the Python file that defines the model and these weights: "
                        + (f"cgviz torch model.py --weights {path}" if on_command_line()
                           else f"draw('model.py', weights={str(path)!r})"))
        if isinstance(obj, (torch.Tensor, tuple, list)):
            raise _fail(f"{path} holds tensors, not a model; to use them as the model's inputs, pass "
                        f"them with {spell('input', str(path))}. " + accepts())
        raise _fail(f"{path} holds a {type(obj).__name__}, not a model. " + accepts())
    why = refused_pickle(str(path), data)
    if why:
        raise _fail(f"{why}. " + accepts())
    classes = pickled_classes(data)
    what = f" (it would import {', '.join(classes[:3])})" if classes else ""
    if not trust:
        raise _fail(f"{path} is a pickled Python object{what}. Loading it runs code stored in the "
                    "file, which can do anything your account can; cgviz does that only when you say "
                    f"you trust the file: add {spell('trust')}. {EXPORT_HINT}")
    # Classes are imported by module name: the model's own folder and the working folder must be
    # importable, as they were when it was saved.
    with _sys_path(path.resolve().parent, Path.cwd()):
        try:
            obj = _torch_load(path, weights_only=False)
        except (ModuleNotFoundError, AttributeError) as e:
            raise _fail(f"{path} needs code that is not importable here: {_first_line(e)}. Run cgviz "
                        "from the folder where the model's classes can be imported, or pass the "
                        "Python file that defines the model.") from None
        except Exception as e:
            raise _fail(f"{path} could not be unpickled: {type(e).__name__}: {_first_line(e)}") from None
    if not isinstance(obj, torch.nn.Module):
        raise _fail(f"{path} unpickles to a {type(obj).__name__}, not an nn.Module. " + accepts())
    return Loaded("module", obj, str(path))


def _load_export(path: Path, trust: bool = False) -> Loaded:
    from .safety import native_code_members
    with zipfile.ZipFile(path) as z:
        native = native_code_members(z.namelist())
    if native and not trust:
        raise _fail(f"{path} holds compiled native code (AOTInductor: {native[0]}); loading it runs that "
                    f"code, which cgviz does only when you say you trust the file: add {spell('trust')}. {EXPORT_HINT}")
    # A program whose outputs are a library's classes (Hugging Face's ModelOutput dataclasses) loads
    # only once those classes are registered with torch's pytree, which their defining module does
    # when it is imported. cgviz imports such a module itself only when its package is already
    # imported (--import transformers, or a Python session that imported it): the user chose to run
    # that library's code, and a submodule of it is the same trust. Otherwise the message names it.
    tried: list[str] = []
    while True:
        unregistered, ep = _try_export_load(path, trust)
        if ep is not None:
            break
        module = unregistered.rsplit(".", 1)[0]
        if module not in tried and _import_within_imported(module):
            tried.append(module)
            continue
        raise _fail(_unregistered_message(path, unregistered, module, tried)) from None
    args, kwargs = None, None
    if ep.example_inputs is not None:
        args, kwargs = ep.example_inputs
    return Loaded("export", ep.module(), str(path), tuple(args) if args is not None else None,
                  dict(kwargs) if kwargs else None, program=ep)


def _try_export_load(path: Path, trust: bool):
    """(None, the program), or (the class name torch's pytree did not know, None)."""
    import pickle

    import torch

    from .safety import no_pickled_code
    # torch logs its own tracebacks while failing over between formats, and raises an exception that
    # only says "check the warnings above": keep those records, to name the real cause, and print none.
    caught = _Caught()
    quiet = [logging.getLogger(n) for n in ("torch.export", "torch._export")]
    saved = [(lg.handlers[:], lg.propagate) for lg in quiet]
    for lg in quiet:
        lg.handlers = [caught]      # torch's logging gives these loggers a stderr handler of their own
        lg.propagate = False
    try:
        with (contextlib.nullcontext() if trust else no_pickled_code()):
            return None, torch.export.load(str(path))
    except pickle.UnpicklingError as e:
        hit = re.search(r"GLOBAL (\S+)", str(e))
        what = f" (it would call {hit.group(1)})" if hit else ""
        raise _fail(f"{path} is a torch.export program that holds pickled Python objects{what}; "
                    "loading them runs code stored in the file, which cgviz does only when you say you "
                    f"trust the file: add {spell('trust')}. {EXPORT_HINT}") from None
    except Exception as e:
        unregistered = caught.unregistered_pytree()
        if unregistered:
            return unregistered, None
        raise _fail(f"{path} looks like a torch.export program but could not be loaded: "
                    + _archive_problem(path, e, _export_newer)) from None
    finally:
        for lg, (handlers, propagate) in zip(quiet, saved):
            lg.handlers = handlers
            lg.propagate = propagate


def _import_within_imported(module: str) -> bool:
    """Import `module` when its top-level package is already imported (and `module` exists);
    True if it was imported."""
    import importlib
    import importlib.util
    top = module.split(".")[0]
    if top not in sys.modules or module in sys.modules or not re.fullmatch(r"[\w.]+", module):
        return False
    try:
        if importlib.util.find_spec(module) is None:
            return False
        importlib.import_module(module)
    except Exception:       # ImportError, or the module's own failure: the message below names it
        return False
    return True


def _unregistered_message(path: Path, cls: str, module: str, tried: list[str]) -> str:
    """Why a program's output class is unknown, and the exact import that registers it."""
    import importlib.util
    top = module.split(".")[0]
    try:
        with _sys_path(Path.cwd()):      # where --import looks too
            installed = importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        installed = False

    def add(name: str) -> str:     # --import X on the command line; a Python caller imports it first
        return spell("imports", name) if on_command_line() else f"import {name}"
    head = f"{path} returns a {cls}, a class that torch's pytree knows only once the code defining it has run"
    if module in tried or module in sys.modules:
        return (f"{head}; importing {module} did not register it. Import the module that registers it"
                + (f": {spell('imports', metavar='MODULE')}" if on_command_line() else " first"))
    if not installed:
        return f"{head}, and {top} is not installed here: install it, then {add(module)}"
    if on_command_line():
        return (f"{head}: cgviz runs no library's code unasked. Add {add(module)}, which defines and "
                "registers it" + (f" (or {add(top)}: cgviz then imports {module} itself)" if top != module else ""))
    if top == module:
        return f"{head}: cgviz runs no library's code unasked. Run `{add(module)}` before loading it"
    return (f"{head}: cgviz runs no library's code unasked. Run `{add(top)}` (or `{add(module)}`) before "
            f"loading it: with {top} imported, cgviz imports {module} itself")


def _load_script(path: Path) -> Loaded:
    import torch
    try:
        sm = torch.jit.load(str(path), map_location="cpu")
    except Exception as e:
        raise _fail(f"{path} looks like a TorchScript archive but could not be loaded: "
                    + _archive_problem(path, e, _script_newer)) from None
    return Loaded("torchscript", sm, str(path))


def _damaged_member(path: Path) -> str | None:
    """The first member of a zip archive whose bytes do not match their checksum (or cannot be
    read at all), said in words; None when every member reads back intact."""
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                try:
                    with z.open(info) as f:
                        while f.read(1 << 20):
                            pass
                except zipfile.BadZipFile as e:
                    why = "its checksum does not match" if "CRC" in str(e) else _first_line(e)
                    return f"its member {info.filename} is damaged ({why})"
                except Exception as e:      # zlib.error, NotImplementedError, EOFError, OSError …
                    return f"its member {info.filename} is damaged ({type(e).__name__}: {_first_line(e)})"
    except Exception as e:
        return f"it is not a valid zip archive ({_first_line(e)})"
    return None


def _member(z: zipfile.ZipFile, tail: str) -> bytes | None:
    name = next((n for n in z.namelist() if n == tail or n.endswith("/" + tail)), None)
    return z.read(name) if name is not None else None


def _export_newer(path: Path, e: BaseException) -> str | None:
    """`its archive version is 9, this PyTorch reads 0`, when the archive records a newer format."""
    import json
    try:
        from torch._export.serde.schema import SCHEMA_VERSION
        from torch.export.pt2_archive.constants import ARCHIVE_VERSION_VALUE
    except ImportError:     # another torch lays these out differently: no claim either way
        return None
    try:
        with zipfile.ZipFile(path) as z:
            version = _member(z, "archive_version")
            if version is not None and int(version.decode().strip()) > int(ARCHIVE_VERSION_VALUE):
                return (f"its archive format is version {version.decode().strip()}, newer than the "
                        f"{ARCHIVE_VERSION_VALUE} this PyTorch reads")
            for name in z.namelist():
                if name.endswith(".json") and "/models/" in "/" + name:
                    schema = json.loads(z.read(name)).get("schema_version") or {}
                    if int(schema.get("major", 0)) > SCHEMA_VERSION[0]:
                        return (f"its program schema is version {schema.get('major')}.{schema.get('minor')}, "
                                f"newer than the {SCHEMA_VERSION[0]}.{SCHEMA_VERSION[1]} this PyTorch reads")
    except Exception:
        return None
    return None


def _script_newer(path: Path, e: BaseException) -> str | None:
    """The same for a TorchScript archive, from torch's own refusal of a too-new `version` member."""
    hit = re.search(r"version (\d+), but the maximum supported version for reading is (\d+)", str(e))
    if hit and int(hit.group(1)) > int(hit.group(2)):
        return f"its file format is version {hit.group(1)}, newer than the {hit.group(2)} this PyTorch reads"
    return None


class _Caught(logging.Handler):
    """Keeps torch's log records while an archive loads (their exceptions name the real cause)."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def unregistered_pytree(self) -> str | None:
        """The type name in torch's "Deserializing X in pytree is not registered", if it said that."""
        for r in self.records:
            exc = r.exc_info[1] if r.exc_info else None
            for text in (str(exc) if exc else "", r.getMessage()):
                m = re.search(r"Deserializing (\S+) in pytree is not registered", text)
                if m:
                    return m.group(1)
        return None


def import_modules(names) -> None:
    """--import MODULE: import what the user named (a package that registers pytree classes, say),
    from the current folder or the installed packages; importing is the user's explicit choice."""
    import importlib
    with _sys_path(Path.cwd()):
        for name in names:
            try:
                importlib.import_module(name)
            except Exception as e:    # ImportError, or the module's own failure
                raise _fail(f"{spell('imports', name)}: {type(e).__name__}: {_first_line(e)}") from None


def _archive_problem(path: Path, e: BaseException, newer) -> str:
    """What is wrong with an archive torch could not load: a damaged member, a format newer than
    this PyTorch reads, or else torch's own reason (without its pointers to logs cgviz hides)."""
    import torch
    damaged = _damaged_member(path)
    if damaged:
        return f"{damaged}. Save or download it again."
    why = newer(path, e)
    if why:
        return f"{why}: it comes from a newer PyTorch (this is {torch.__version__})."
    text = re.sub(r"\s*Please check the warnings above[^.]*\.*", "", _first_line(e)).rstrip(". ")
    text = text or type(e).__name__
    return f"{type(e).__name__}: {text}."


def _load_python(path: Path, factory: str | None, meta: bool) -> Loaded:
    import runpy
    import torch
    ns: dict[str, Any]
    device = torch.device("meta") if meta else contextlib.nullcontext()
    # --meta: the whole file runs under the meta device, so a module-level `model = Big()` with
    # billions of parameters allocates nothing.
    with _sys_path(path.resolve().parent), _user_code(path, "running"), \
            (torch.device("meta") if meta else contextlib.nullcontext()):
        ns = runpy.run_path(str(path), run_name="cgviz_model")
    if factory:
        if factory not in ns:
            names = [k for k, v in ns.items() if callable(v) and not k.startswith("_")
                     and getattr(v, "__module__", None) == "cgviz_model"]
            raise _fail(f"{path} defines no {factory!r}" + (f"; it defines {', '.join(sorted(names))}"
                                                           if names else ""))
        target = ns[factory]
    elif "model" in ns:
        target = ns["model"]
    else:
        mods = [k for k, v in ns.items() if isinstance(v, torch.nn.Module)]
        funcs = sorted(k for k, v in ns.items() if callable(v) and not isinstance(v, type)
                       and getattr(v, "__module__", None) == "cgviz_model" and not k.startswith("_"))
        hint = (f" It defines {', '.join(mods + funcs)}: name one, as in {path}:{(mods + funcs)[0]}."
                if mods or funcs else "")
        raise _fail(f"{path} has no module-level `model`. Define `model = MyNet()` in it, or name a "
                    f"function that returns the model: cgviz torch {path}:build.{hint}")
    if isinstance(target, torch.nn.Module):
        # (with --meta, a module built before the file ran — imported from the user's package — moves
        # to the meta device on stand-ins when it runs, and is given back as it was: pytorch.state)
        model = target
    elif callable(target):
        with _sys_path(path.resolve().parent), _user_code(path, f"calling {factory or 'model'}()"), device:
            model = target()
    else:
        raise _fail(f"{path}: {factory or 'model'} is a {type(target).__name__}, not an nn.Module "
                    "or a function returning one")
    if not isinstance(model, torch.nn.Module):
        raise _fail(f"{path}: {factory or 'model'}() returned a {type(model).__name__}, not an nn.Module")
    ex = ns.get("example_inputs")
    if callable(ex):
        with _user_code(path, "calling example_inputs()"):
            ex = ex()
    args = kwargs = None
    if isinstance(ex, dict):
        kwargs = ex
    elif isinstance(ex, (tuple, list)):
        args = tuple(ex)
    elif isinstance(ex, torch.Tensor):
        args = (ex,)
    return Loaded("python", model, str(path), args, kwargs, namespace=ns)


def _load_weights(loaded: Loaded, weights: str) -> None:
    import pickle
    from ..core.paths import check_input
    wp = Path(weights)
    check_input(wp, spell("weights"), kind="a state_dict", accepts=WEIGHTS_ACCEPTS)
    try:
        sd = _torch_load(wp, weights_only=True)
    except pickle.UnpicklingError:
        why = refused_pickle(spell("weights", weights), read_quietly(wp))
        raise _fail(why + "." if why else f"{spell('weights', weights)} is not a plain state_dict (it holds pickled "
                    "code); save it with torch.save(model.state_dict(), path)") from None
    except Exception as e:
        raise _fail(f"{spell('weights', weights)} could not be read: {_first_line(e)}") from None
    for key in ("state_dict", "model", "model_state_dict"):   # common checkpoint wrappers
        if isinstance(sd, dict) and isinstance(sd.get(key), dict) and not _is_tensor_dict(sd):
            sd = sd[key]
            break
    if not _is_tensor_dict(sd):
        raise _fail(f"{spell('weights', weights)} is not a state_dict (a dict of tensors)")
    from .state import active, borrow
    if active():
        # the model may be the user's own (a Python file imports it): the weights go into copies,
        # and the module is given back with its own when the call ends (pytorch.state)
        loaded.model = borrow(loaded.model, copy_params=True)
    result = loaded.model.load_state_dict(sd, strict=False)
    missing, unexpected = list(result.missing_keys), list(result.unexpected_keys)
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {len(missing)}: {', '.join(missing[:5])}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)}: {', '.join(unexpected[:5])}")
        raise _fail(f"{spell('weights', weights)} does not fit the model in {loaded.path} ({'; '.join(parts)})")
    loaded.notes.append(f"weights from {weights}")


def read_quietly(path: Path) -> bytes:
    """A file's bytes, or none when it cannot be read (the loader that follows says why)."""
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _is_tensor_dict(obj) -> bool:
    import torch
    return isinstance(obj, dict) and bool(obj) and all(isinstance(v, torch.Tensor) for v in obj.values())


def _count(obj) -> int:
    import torch
    if isinstance(obj, torch.Tensor):
        return 1
    if isinstance(obj, dict):
        return sum(_count(v) for v in obj.values())
    return 0


def _first_line(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0][:300]


@contextlib.contextmanager
def _sys_path(*folders: Path):
    added = [str(f) for f in folders if str(f) not in sys.path]
    sys.path[:0] = added
    try:
        yield
    finally:
        for f in added:
            with contextlib.suppress(ValueError):
                sys.path.remove(f)


@contextlib.contextmanager
def _user_code(path: Path, doing: str):
    """Errors raised by the user's own model file, shown with the line of *their* file that failed."""
    try:
        yield
    except CgvizError:
        raise
    except SystemExit as e:
        raise _fail(f"{path} called exit({e.code}) while {doing}") from None
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt):
            raise
        raise _fail(f"{path}: error while {doing}: {type(e).__name__}: {_first_line(e)}"
                    f"{user_frame(e, path)}") from None


def user_frame(e: BaseException, path: Path | None = None) -> str:
    """` (at model.py:12: return self.fc(x))`: the deepest frame in the user's file, if any."""
    from .frames import is_library
    frames = traceback.extract_tb(e.__traceback__)
    want = str(path.resolve()) if path else None
    hit = None
    for f in frames:
        # cgviz's own frames are told by its package's real directory, not by a folder named cgviz
        # (a checkout's default name, or a user's project folder)
        if (want and str(Path(f.filename).resolve()) == want) or (not want and not is_library(f.filename)):
            hit = f
    if hit is None:
        return ""
    return f" (at {Path(hit.filename).name}:{hit.lineno}: {(hit.line or '').strip()})"
