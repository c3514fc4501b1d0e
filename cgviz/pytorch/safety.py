"""Guards for opening untrusted model archives: no pickled code, no native libraries, no zip tricks.

`torch.export.load` is not safe on its own: it retries a failed weights-only load with
`weights_only=False`, unpickles custom objects with plain `pickle.loads`, and dlopens AOTInductor
libraries shipped inside the archive. Without `--trust` cgviz closes all three doors.
"""

from __future__ import annotations

import contextlib
import pickle
import zipfile

from ..core.errors import CgvizError

# A deflated member expanding more than this many times, to more than BOMB_BYTES, is a zip bomb:
# torch writes tensors stored (uncompressed), so real archives are nowhere near.
BOMB_RATIO = 200
BOMB_BYTES = 256 * 1024 * 1024


def check_members(path, infos: list[zipfile.ZipInfo]) -> None:
    """Refuse member names that point outside the archive and members that would expand absurdly."""
    for info in infos:
        name = info.filename.replace("\\", "/")
        parts = name.split("/")
        if name.startswith("/") or ".." in parts or (len(name) > 1 and name[1] == ":"):
            raise CgvizError(f"{path}: refusing a zip archive whose member {info.filename!r} points "
                             "outside it")
        if (info.compress_type != zipfile.ZIP_STORED and info.file_size > BOMB_BYTES
                and info.file_size > BOMB_RATIO * max(info.compress_size, 1)):
            raise CgvizError(f"{path}: refusing a zip archive whose member {info.filename!r} would "
                             f"expand from {info.compress_size:,} to {info.file_size:,} bytes (a zip bomb?)")


def native_code_members(names: list[str]) -> list[str]:
    """Members holding AOTInductor compiled libraries: loading them runs native code."""
    return [n for n in names if "data/aotinductor/" in n.replace("\\", "/")]


class PickledCode(CgvizError):
    """An archive that would have run pickled code while loading."""


class _NoPickle:
    """Stands in for the `pickle` module inside torch's archive reader: custom objects are refused."""

    UnpicklingError = pickle.UnpicklingError

    @staticmethod
    def loads(*a, **k):
        raise pickle.UnpicklingError("a custom Python object (plain pickle) would be unpickled")

    def __getattr__(self, name):
        return getattr(pickle, name)


@contextlib.contextmanager
def no_pickled_code():
    """Within the block every `torch.load` is weights-only, whatever the caller asked for, and the
    export archive reader cannot plain-unpickle: tensors load, code does not run."""
    import torch

    real_load = torch.load

    def weights_only_load(f, *args, **kwargs):
        kwargs["weights_only"] = True
        return real_load(f, *args, **kwargs)

    patched = [(torch, "load", weights_only_load)]
    try:
        from torch.export.pt2_archive import _package
        patched.append((_package, "pickle", _NoPickle()))
    except ImportError:     # an older or newer torch lays the reader out differently
        pass
    saved = [(obj, name, getattr(obj, name)) for obj, name, _ in patched]
    for obj, name, value in patched:
        setattr(obj, name, value)
    try:
        yield
    finally:
        for obj, name, value in saved:
            setattr(obj, name, value)
