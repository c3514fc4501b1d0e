"""Turn DOT text into PNG/SVG/PDF with the `dot` program, and write any output file atomically."""

from __future__ import annotations

import errno
import os
import re
import stat
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import CgvizError

IMAGE_FORMATS = ("png", "svg", "pdf")
TEXT_FORMATS = ("dot", "json")
PAGE_FORMATS = ("html",)           # the interactive page: the SVG plus numbers and a script
FORMATS = IMAGE_FORMATS + TEXT_FORMATS + PAGE_FORMATS
DEFAULT_TIMEOUT = 60.0

INSTALL_HINT = ("Graphviz's `dot` program is not installed (or not on PATH), so cgviz cannot draw "
                "PNG, SVG or PDF. Install it with `sudo apt-get install graphviz` (Debian/Ubuntu), "
                "`brew install graphviz` (macOS) or `conda install graphviz`; `--format dot` and "
                "`--format json` work without it.")


class DotMissing(CgvizError):
    """`dot` is not on PATH."""


def dot_executable() -> str:
    exe = shutil.which("dot")
    if exe is None:
        raise DotMissing(INSTALL_HINT)
    return exe


def run_dot(dot_text: str, fmt: str, timeout: float | None = DEFAULT_TIMEOUT, nodes: int | None = None,
            hint: str = "", rankdir: str | None = None) -> bytes:
    """Lay out and draw with `dot -T<fmt>`; a slow layout is stopped and explained, never waited on forever.

    The advice on failure depends on what was asked: `hint` is the caller's own (ending in ", "),
    `rankdir` the layout direction (read from the DOT text when not given); nothing already in
    effect is suggested."""
    exe = dot_executable()
    if rankdir is None:
        hit = _RANKDIR.search(dot_text)
        rankdir = hit.group(1).upper() if hit else "TB"      # Graphviz's default
    try:
        proc = subprocess.run([exe, f"-T{fmt}"], input=dot_text.encode("utf-8"),
                              capture_output=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        size = f" {nodes} nodes" if nodes else " the graph"
        faster = "--format svg (much faster than PNG for big graphs), " if fmt == "png" else ""
        raise CgvizError(f"Graphviz did not finish laying out{size} within {timeout:g} s. "
                         f"Try {hint}{faster}--format dot to get the text without layout, or a longer "
                         "--timeout.") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        if "longer than 16384" in err:
            # a name of a node, module or file longer than Graphviz takes in one string
            raise CgvizError("a name in this graph (of a node, module or file) is too long for Graphviz, "
                             "which takes at most 16,384 characters in one string; shorten it, or use "
                             "--format json, which has no such limit")
        raise CgvizError(f"Graphviz `dot -T{fmt}` failed (exit status {proc.returncode}): {err}")
    if fmt == "png":
        _check_cairo_scale(proc.stderr, nodes, hint, rankdir)
    return proc.stdout


_RANKDIR = re.compile(r'\brankdir="?(LR|TB|RL|BT)"?', re.I)


# Cairo draws bitmaps of at most 32,767 pixels a side. Past that, `dot -Tpng` shrinks the whole
# picture to fit and says so on stderr; below this factor the labels are too small to read, so the
# PNG would be a useless (often near-blank) strip.
MIN_PNG_SCALE = 0.5
_CAIRO_SCALED = re.compile(rb"too large for cairo-renderer bitmaps\. Scaling by ([0-9.eE+-]+)")


def _check_cairo_scale(stderr: bytes, nodes: int | None, hint: str, rankdir: str = "LR") -> None:
    m = _CAIRO_SCALED.search(stderr)
    if m is None:
        return
    try:
        scale = float(m.group(1))
    except ValueError:
        scale = 0.0
    if scale >= MIN_PNG_SCALE:
        return
    size = f" of {nodes} nodes" if nodes else ""
    raise CgvizError(f"the picture{size} is too big for a PNG: Graphviz's PNG renderer (Cairo) draws at "
                     f"most 32,767 pixels a side and would shrink it to {scale:.0%}, too small to read. "
                     f"Use {hint}--format svg or pdf (no size limit), "
                     + ("--rankdir TB for a long chain, " if rankdir.upper() == "LR" else "")
                     + "or --format dot for the text without layout.")


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file, and an
    existing file is only replaced once the new one is complete.

    A character device or a FIFO (/dev/null, /dev/stdout, a shell's `>(…)`) is written into, never
    replaced; a folder, a symbolic link loop, or a path under a file is refused in words."""
    from .paths import check_output
    path = Path(path)
    check_output(path)
    try:
        mode = os.stat(path).st_mode
    except OSError:
        mode = 0
    if stat.S_ISCHR(mode) or stat.S_ISFIFO(mode):
        _write_into(path, data, "a FIFO" if stat.S_ISFIFO(mode) else "a character device")
        return
    folder = path.parent if str(path.parent) else Path(".")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=folder)
    except OSError as e:
        raise CgvizError(f"cannot write {path}: {e.strerror or e} (is the folder writable?)") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        # mkstemp makes the file private (0600); give it the mode a plain open() would have had
        # (or keep the mode of the file it replaces).
        try:
            mode = path.stat().st_mode & 0o7777
        except OSError:
            mode = 0o666 & ~_umask()
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise CgvizError(f"cannot write {path}: {e.strerror or e}") from None
        raise


def _write_into(path: Path, data: bytes, what: str) -> None:
    """Write into a device or a pipe that already exists (as a shell's `>` does), without waiting for
    a reader that is not there."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as e:
        if e.errno == errno.ENXIO:
            raise CgvizError(f"cannot write {path}: it is {what} that no process is reading") from None
        raise CgvizError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        os.set_blocking(fd, True)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    except OSError as e:
        raise CgvizError(f"cannot write {path}: {e.strerror or e}") from None


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
