"""Which stack frames are the user's: told by the real directories of cgviz, torch and the standard
library (and, for error messages, installed packages), never by a folder's name, so that a project or
a checkout that lives in a folder called `cgviz` keeps its "(at model.py:30 …)" pointers."""

from __future__ import annotations

import linecache
import sys
import sysconfig
from functools import lru_cache
from pathlib import Path

# cgviz's package directory, from this file's place in it (importing the package itself would be an
# import of the top layer: tests/test_layers.py)
_CGVIZ = Path(__file__).resolve().parent.parent


def _real(p) -> str:
    return str(Path(p).resolve())


def _roots() -> tuple[tuple[str, ...], tuple[str, ...]]:
    return _roots_with("torch" in sys.modules)


@lru_cache(maxsize=2)
def _roots_with(torch_loaded: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(cgviz's and torch's package directories and the standard library's; installed-package
    directories), each with a trailing separator so that /x/cgviz does not claim /x/cgviz_demo."""
    import os
    own = [_CGVIZ]
    torch = sys.modules.get("torch") if torch_loaded else None
    if torch is not None and getattr(torch, "__file__", None):
        own.append(Path(torch.__file__).resolve().parent)
    paths = sysconfig.get_paths()
    for key in ("stdlib", "platstdlib"):
        if paths.get(key):
            own.append(Path(paths[key]).resolve())
    installed = {Path(paths[k]).resolve() for k in ("purelib", "platlib") if paths.get(k)}
    for p in sys.path:       # a venv's site-packages, user site, dist-packages of a system Python
        if p and Path(p).name in ("site-packages", "dist-packages"):
            installed.add(Path(p).resolve())
    sep = os.sep
    return (tuple(str(p) + sep for p in own), tuple(str(p) + sep for p in installed))


@lru_cache(maxsize=4096)
def is_internal(filename: str) -> bool:
    """A frame of cgviz itself, of torch, of the standard library, or of no file (`<frozen …>`;
    an older IPython's `<ipython-input-…>` and `<stdin>` are the user's own code)."""
    if not filename:
        return True
    if filename.startswith("<"):
        return not filename.startswith(("<ipython-input-", "<stdin>"))
    own, _ = _roots()
    return _real(filename).startswith(own)


@lru_cache(maxsize=1024)
def is_cgviz(filename: str) -> bool:
    """A frame of cgviz's own package (by its real directory, not by a folder's name)."""
    own, _ = _roots()
    return bool(filename) and not filename.startswith("<") and _real(filename).startswith(own[0])


@lru_cache(maxsize=4096)
def is_library(filename: str) -> bool:
    """An internal frame, or one of an installed package (transformers, timm …)."""
    if is_internal(filename):
        return True
    _, installed = _roots()
    return _real(filename).startswith(installed)


def caller() -> tuple[str, int] | None:
    """(file, line) of the innermost frame outside cgviz, torch and the standard library, called from
    cgviz's recorder: the model code that called the op being recorded (an installed library's, when
    the model is one). None when cgviz itself made the call (a .pt2 or TorchScript program run node by
    node by cgviz's interpreter has no model source to point at)."""
    f = sys._getframe(1)
    while f is not None and is_cgviz(f.f_code.co_filename):     # the recorder's own frames
        f = f.f_back
    while f is not None:
        name = f.f_code.co_filename
        if not is_internal(name):
            return name, f.f_lineno
        if is_cgviz(name):
            return None
        f = f.f_back
    return None


def where(site: tuple[str, int] | None, code: bool = True) -> str:
    """`model.py:16` or `model.py:16: r = torch.sqrt(z)` for a (file, line) pair; '' for None."""
    if site is None:
        return ""
    name, line = site
    text = f"{Path(name).name}:{line}"
    if code:
        src = linecache.getline(name, line).strip()
        if src:
            text += f": {src}"
    return text
