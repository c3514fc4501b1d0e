"""The files a command reads and writes, checked before any work is done.

Inputs: cgviz reads only regular files (and `-`, standard input, where a command takes it). A FIFO
or a device is refused *before* it is opened, since reading one may never end (a FIFO with no
writer blocks for ever, /dev/zero never stops giving bytes). Files read whole into memory are
capped: SOURCE_LIMIT for expression files, manifests and standard input.

Model files (--input and --weights too) are not capped: torch reads them, real checkpoints run to
tens of GB, and a regular file's size is known and bounded by the disk, so a cap would only refuse
models people really have. What could make a read endless — a pipe or a device — is refused.

Outputs: an output must not be any input of the command (by resolved path, or by device and inode,
which also catches hard links and symbolic links), nor another output of the same command; its
folder must be a folder. Every command calls `check_paths` with its lists of inputs and outputs.
"""

from __future__ import annotations

import errno
import os
import stat
import sys
from pathlib import Path
from typing import Iterable, NamedTuple

from .errors import CgvizError

MiB = 1 << 20
SOURCE_LIMIT = 64 * MiB          # expression files, manifests, standard input: read whole into memory


class PathConflict(CgvizError):
    """An output that names an input, or two outputs naming one file: a usage mistake (exit 2)."""

    exit_code = 2


class Arg(NamedTuple):
    """A file the user named on the command line: the option (or argument) that named it, and the path.
    `note` is said after the path, e.g. " (the default)"."""

    option: str
    path: "str | os.PathLike[str] | None"
    note: str = ""

    def shown(self) -> str:
        if not self.option:
            return f"{self.path}{self.note}"
        # a Python keyword (`input_file=`, from cgviz.core.spelling) reads as an assignment, a flag as a flag
        if self.option.endswith("="):
            return f"{self.option}{str(self.path)!r}{self.note}"
        return f"{self.option} {self.path}{self.note}"


def shown(path) -> str:
    """A file name as text that prints and encodes anywhere: bytes that are not UTF-8 (which Python
    keeps as lone surrogates, `bad\\udcff.cg`) written as `\\xff`, as a shell shows them. Such a name
    in a picture's title, the JSON or a plot's title used to end in an internal error."""
    text = os.fsdecode(os.fspath(path))
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def size_text(n: int) -> str:
    """1536 → '1.5 KiB'; 70 MiB → '70.0 MiB'."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", MiB), ("KiB", 1 << 10)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"


def kind_of(mode: int) -> str:
    """What a file that is not a regular file is, in words."""
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (a named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def _missing_detail(path) -> str:
    """Why `path` is missing, when something on the way says more than ENOENT: a dangling link."""
    try:
        if os.path.islink(path):
            return f" (it is a symbolic link to {os.readlink(path)}, which does not exist)"
    except (OSError, ValueError):
        pass
    return ""


def _first_non_folder(path) -> str | None:
    """The first existing ancestor of `path` that is not a folder (for ENOTDIR), or None."""
    p = Path(path)
    for parent in reversed(p.parents):
        if str(parent) in ("", "."):
            continue
        try:
            st = os.stat(parent)
        except OSError:
            return None
        if not stat.S_ISDIR(st.st_mode):
            return str(parent)
    return None


def _read_error(e: OSError, shown: str, accepts: str) -> CgvizError:
    """An OSError from stat or open of an input, as a message that says what is wrong."""
    tail = f". {accepts}" if accepts else ""
    path = e.filename if e.filename is not None else ""
    if e.errno == errno.ENOENT:
        return CgvizError(f"{shown}: no such file{_missing_detail(path)}{tail}")
    if e.errno == errno.ELOOP:
        return CgvizError(f"{shown}: too many levels of symbolic links (a symbolic link that loops back "
                          f"on itself); it names no file{tail}")
    if e.errno == errno.ENOTDIR:
        where = _first_non_folder(path)
        why = f" ({where} is a file, not a folder)" if where else ""
        return CgvizError(f"{shown}: no such file{why}{tail}")
    if e.errno in (errno.EACCES, errno.EPERM):
        return CgvizError(f"cannot read {shown}: permission denied")
    if e.errno == errno.ENAMETOOLONG:
        return CgvizError(f"{shown}: the file name is too long")
    return CgvizError(f"cannot read {shown}: {e.strerror or e}")


def _refuse_kind(st: os.stat_result, shown: str, kind: str, accepts: str, limit: int | None) -> None:
    mode = st.st_mode
    if not stat.S_ISREG(mode):
        why = "" if stat.S_ISDIR(mode) else " (cgviz reads only regular files: reading a pipe or a device may never end)"
        raise CgvizError(f"{shown} is {kind_of(mode)}, not a regular file{why}. {accepts}".rstrip())
    if limit is not None and st.st_size > limit:
        raise CgvizError(f"{shown} is {size_text(st.st_size)}, more than the {size_text(limit)} cgviz reads "
                         f"from {kind}; is it the file you meant?")


def check_input(path, option: str = "", *, kind: str = "a file", accepts: str = "",
                limit: int | None = None) -> os.stat_result:
    """Stat an input without opening it: a CgvizError (exit 1) unless it is a regular file within
    `limit` bytes. `option` names it in messages (`--input`); `kind` says what cgviz reads there
    ("an expression file"); `accepts` is a sentence added to the message (what to give instead)."""
    shown = Arg(option, path).shown()
    try:
        st = os.stat(path)
    except OSError as e:
        raise _read_error(e, shown, accepts) from None
    except ValueError:          # a NUL byte in the name
        raise CgvizError(f"{shown!r}: not a valid file name") from None
    _refuse_kind(st, shown, kind, accepts, limit)
    return st


def read_input(path, option: str = "", *, kind: str = "a file", accepts: str = "",
               limit: int | None = None) -> bytes:
    """The bytes of a user's input file, checked as `check_input` checks it, and read no further than
    `limit` (a file that grows while it is read is still capped)."""
    shown = Arg(option, path).shown()
    check_input(path, option, kind=kind, accepts=accepts, limit=limit)
    try:
        # O_NONBLOCK: should a FIFO replace the file after the stat, open does not wait for a writer
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        raise _read_error(e, shown, accepts) from None
    with os.fdopen(fd, "rb") as f:
        try:
            _refuse_kind(os.fstat(fd), shown, kind, accepts, limit)
            os.set_blocking(fd, True)
            data = f.read() if limit is None else read_capped(f, limit)
        except OSError as e:
            raise _read_error(e, shown, accepts) from None
    if limit is not None and len(data) > limit:
        raise CgvizError(f"{shown} is more than the {size_text(limit)} cgviz reads from {kind}; "
                         "is it the file you meant?")
    return data


def read_capped(f, limit: int, chunk: int = MiB) -> bytes:
    """Up to limit + 1 bytes of a stream, in chunks: f.read(limit + 1) would allocate the whole
    limit up front for a 100-byte file."""
    parts, n = [], 0
    while n <= limit:
        part = f.read(min(chunk, limit + 1 - n))
        if not part:
            break
        parts.append(part)
        n += len(part)
    return b"".join(parts)


def read_stdin(kind: str = "an expression file", limit: int = SOURCE_LIMIT) -> bytes:
    """Standard input, read no further than `limit` bytes (`yes | cgviz render -` must end)."""
    data = read_capped(sys.stdin.buffer, limit)
    if len(data) > limit:
        raise CgvizError(f"standard input holds more than the {size_text(limit)} cgviz reads as {kind}; "
                         "is it what you meant to pipe in?")
    return data


# ---------------------------------------------------------------- outputs

def _identity(path) -> list[tuple]:
    """The keys under which two names of one file meet: the resolved path, and (when it exists) the
    device and inode, which a hard link or a symbolic link shares. Never raises."""
    try:
        keys: list[tuple] = [("path", os.path.realpath(path))]
    except (OSError, ValueError, RuntimeError):      # a symbolic link loop is only itself
        keys = [("path", os.path.abspath(path))]
    try:
        st = os.stat(path)
        keys.append(("inode", st.st_dev, st.st_ino))
    except (OSError, ValueError):
        pass
    return keys


def _is_device(path) -> bool:
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


def same_file(a, b) -> bool:
    """Whether two paths name one file: the same resolved path, or the same device and inode (a hard
    link, or a symbolic link resolving elsewhere)."""
    return bool(set(_identity(a)) & set(_identity(b)))


def _write_problem(path) -> str | None:
    """Why `path` cannot be written as an output, or None when it can (it may not exist yet)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as e:
        if e.errno == errno.ELOOP:
            return ("too many levels of symbolic links (a symbolic link that loops back on itself); "
                    "remove it or choose another name")
        if e.errno == errno.ENOTDIR:
            where = _first_non_folder(path)
            return f"{where} is a file, not a folder" if where else "a part of the path is not a folder"
        if e.errno == errno.ENAMETOOLONG:
            return "the file name is too long"
        if e.errno in (errno.EACCES, errno.EPERM):
            return "permission denied"
        return e.strerror or str(e)
    except ValueError:
        return "not a valid file name"
    if st is not None:
        mode = st.st_mode
        if stat.S_ISDIR(mode):
            return f"it is a folder; give a file name inside it, such as {Path(path) / 'graph.png'}"
        if stat.S_ISSOCK(mode) or stat.S_ISBLK(mode):
            return f"it is {kind_of(mode)}, not a file cgviz can write a picture to"
        return None               # a regular file (replaced), a character device or FIFO (written into)
    # it does not exist: its folder must be (or become, via mkdir) a folder
    where = _first_non_folder(path)
    if where:
        return f"{where} is a file, not a folder"
    return None


def check_output(path, option: str = "") -> None:
    """A CgvizError (exit 1) when `path` cannot be written as an output: it is a folder, its folder is
    a file, it is a symbolic link loop, a socket or a block device."""
    problem = _write_problem(path)
    if problem:
        shown = f" ({option})" if option else ""
        raise CgvizError(f"cannot write {path}{shown}: {problem}")


def check_paths(inputs: Iterable[Arg], outputs: Iterable[Arg]) -> None:
    """Refuse, before any work, an output that is one of the command's inputs or another output
    (PathConflict, exit 2), and an output that cannot be written (CgvizError, exit 1). Paths that are
    None or `-` (standard input or output) are left out."""
    ins = [a for a in inputs if a.path is not None and str(a.path) != "-"]
    outs = [a for a in outputs if a.path is not None and str(a.path) != "-"]
    read: dict[tuple, Arg] = {}
    for inp in ins:
        for key in _identity(inp.path):
            read.setdefault(key, inp)
    written: dict[tuple, Arg] = {}
    for out in outs:
        keys = _identity(out.path)
        inp = next((read[k] for k in keys if k in read), None)
        if inp is not None:
            raise PathConflict(f"{out.shown()} is the same file as {inp.shown()}: cgviz never "
                               f"overwrites its input (choose another {out.option or 'output'})")
        other = next((written[k] for k in keys if k in written), None)
        if other is not None and not _is_device(out.path):     # -o /dev/null --curve /dev/null is fine
            raise PathConflict(f"{other.shown()} and {out.shown()} name the same file; one would overwrite "
                               "the other (give them different names)")
        for key in keys:
            written.setdefault(key, out)
    for out in outs:
        check_output(out.path, out.option)


def check_folder(path, option: str) -> None:
    """An output folder (`--out`, `--golden`): it may not exist yet, but must not be a file or a loop."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        where = _first_non_folder(path)
        if where:
            raise CgvizError(f"cannot write to {option} {path}: {where} is a file, not a folder") from None
        return
    except OSError as e:
        raise CgvizError(f"cannot write to {option} {path}: {_write_problem(path) or e.strerror}") from None
    if not stat.S_ISDIR(st.st_mode):
        raise CgvizError(f"{option} {path} is {kind_of(st.st_mode) if not stat.S_ISREG(st.st_mode) else 'a file'}, "
                         "not a folder; give a folder (it is created when missing)")


HUB = "hf:"      # `hf:gpt2`, `hf:meta-llama/Llama-3.2-1B?num_hidden_layers=2`: a Hugging Face model, no file


def is_hub(spec) -> bool:
    """Whether a model spec names a Hugging Face model (`hf:…`, cgviz.pytorch.hf_source) rather than a file.
    Told from the text alone, so the expression path never imports transformers; a file whose name
    starts with `hf:` is still reachable as `./hf:…`."""
    return isinstance(spec, str) and spec.startswith(HUB)


def hub_name(spec: str) -> str:
    """The name part of an `hf:` spec, for naming outputs: `hf:meta-llama/Llama-3.2-1B?x=1` → `Llama-3.2-1B`."""
    ident = spec[len(HUB):].partition("?")[0].rstrip("/")
    return ident.rpartition("/")[2] or "hf"


def split_spec(spec: str, base: str | os.PathLike | None = None) -> tuple[Path, str | None]:
    """`model.py:build` → (model.py, "build"); a plain path (even one holding ':') stays whole. The one
    reader of a model spec (the loader, the commands' output names, snapshot manifests): the part
    after the last ':' is a factory when it is an identifier and the part before it is a file, looked
    for under `base` when given (a manifest's folder) and returned as written. An `hf:` model is no
    file: its name (`hf:org/gpt2` → gpt2), which callers use for naming and never look for on disk."""
    if is_hub(spec):
        return Path(hub_name(spec)), None

    def there(path: str) -> bool:   # lexists: a link that loops or dangles is still the file named
        return os.path.lexists(path if base is None else Path(base) / path)
    p = Path(spec)
    if there(spec):
        return p, None
    head, sep, tail = spec.rpartition(":")
    if sep and head and tail.isidentifier() and there(head):
        return Path(head), tail
    return p, None
