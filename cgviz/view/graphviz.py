"""Turn DOT text into PNG/SVG/PDF with the `dot` program, and write any output file atomically."""

from __future__ import annotations

import contextlib
import errno
import os
import re
import stat
import subprocess
from pathlib import Path

from ..core.errors import CgvizError
from ..core.spelling import spell

from . import formats as _formats

# The registry (cgviz.view.formats) is the list; these names are kept for old imports.
IMAGE_FORMATS = _formats.by_producer(_formats.GRAPHVIZ)
TEXT_FORMATS = _formats.by_producer(_formats.DOT) + _formats.by_producer(_formats.JSON)
PAGE_FORMATS = _formats.by_producer(_formats.PAGE)
VIEWER_FORMATS = _formats.by_producer(_formats.VIEWER)
FORMATS = _formats.names()
DEFAULT_TIMEOUT = 60.0

def install_hint() -> str:
    """What to do without Graphviz; the formats named as the caller asks for them."""
    return ("Graphviz's `dot` program is not installed (or not on PATH), so cgviz cannot draw "
            "PNG, SVG or PDF. Install it with `sudo apt-get install graphviz` (Debian/Ubuntu), "
            f"`brew install graphviz` (macOS) or `conda install graphviz`; `{spell('format', 'dot')}` and "
            f"`{spell('format', 'json')}` work without it.")


class DotMissing(CgvizError):
    """`dot` is not on PATH."""


# The program is started by name and the system finds it on PATH as it starts it (execvp; on
# Windows CreateProcess, which also looks in the current folder first, as shutil.which did there
# before Python 3.12): a missing one is an error there (DotMissing, see _start). Looking it up first
# (shutil.which) meant importing shutil, and with it bz2 and lzma, ~3 ms of every `cgviz render`.
DOT = "dot"


class LayoutLimit(CgvizError):
    """Graphviz passed a limit cgviz gives it (time, memory): a coarser picture may still fit."""


class LayoutTimeout(LayoutLimit):
    """Graphviz did not lay the picture out in the time it was given."""


class LayoutMemory(LayoutLimit):
    """Graphviz ran out of the memory cgviz lets it use."""


# `dot` runs with at most this much address space (RLIMIT_AS, Linux): a wide fan-out of a few
# thousand nodes, each edge spanning thousands of ranks, took 18.7 GB and the kernel's OOM killer
# fired on the whole machine. Real pictures take far less (ResNet-50, GPT-2 and DenseNet at every
# op: at most 0.4 GB of address space, 0.15 GB resident). CGVIZ_DOT_MEMORY changes it (`8G`,
# `500M`; `0` or `none` for no limit).
DOT_MEMORY_ENV = "CGVIZ_DOT_MEMORY"
DEFAULT_DOT_MEMORY = 4 * 1024**3
_UNITS = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3, "T": 1024**4}


def dot_memory() -> int | None:
    """The memory limit for `dot` in bytes (None: none): CGVIZ_DOT_MEMORY, else the default, else
    half the machine's memory when that is less."""
    text = os.environ.get(DOT_MEMORY_ENV, "").strip()
    if not text:
        limit = DEFAULT_DOT_MEMORY
        with contextlib.suppress(ValueError, OSError, AttributeError):
            limit = min(limit, os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 2)
        return limit
    if text.lower() in ("0", "none", "unlimited"):
        return None
    m = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?", text, re.I)
    if m is None or float(m.group(1)) * _UNITS[m.group(2).upper()] < 1024**2:
        raise CgvizError(f"{DOT_MEMORY_ENV}={text!r}: give the memory Graphviz may use as a size of at least "
                         "1M, such as 8G or 500M, or 0 for no limit")
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def size_text(n: int) -> str:
    """4 GiB as `4G`, as CGVIZ_DOT_MEMORY spells it."""
    for unit in ("T", "G", "M", "K"):
        if n >= _UNITS[unit]:
            return f"{n // _UNITS[unit]}{unit}" if n % _UNITS[unit] == 0 else f"{n / _UNITS[unit]:.1f}{unit}"
    return str(n)


class PictureTooBig(CgvizError):
    """A PNG of the picture would not fit the pixel budget even at the lowest readable resolution."""


# `dot` processes started ahead of time (started_early), by their arguments; _dot takes one that fits.
_early: dict[tuple[str, ...], subprocess.Popen] = {}


# Every `dot` this process runs, so that a worker told to stop (cgviz.snapshot.workers) stops them first.
_running: set[subprocess.Popen] = set()


def _start(args: list[str]) -> subprocess.Popen:
    limit = dot_memory()        # a bad CGVIZ_DOT_MEMORY is said before anything starts
    try:
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    except (FileNotFoundError, PermissionError, NotADirectoryError):
        # no `dot` on PATH, or only one that cannot run (not executable, a folder): as shutil.which,
        # which skips those, did. The system tries every PATH entry before it gives up.
        raise DotMissing(install_hint()) from None
    proc.memory_limit = _limit_memory(proc, limit)
    _running.add(proc)
    return proc


def _limit_memory(proc: subprocess.Popen, limit: int | None) -> int | None:
    """Cap the address space of a `dot` just started; the limit set, or None.

    Set from outside with prlimit(2) rather than in the child before exec (preexec_fn), which is not
    safe while other threads run (the drill-down page lays out its levels from a thread pool). `dot`
    allocates its layout only once it has read the graph, which is sent after this, so nothing
    escapes the limit. prlimit is Linux's; elsewhere `dot` runs without one."""
    if limit is None:
        return None
    try:
        import resource                 # POSIX only
    except ImportError:
        return None
    prlimit = getattr(resource, "prlimit", None)
    if prlimit is None:
        return None
    try:
        # under a lower hard limit of its own (`ulimit -v`), which dot inherits, that one is the bound
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        if hard != resource.RLIM_INFINITY:
            limit = min(limit, hard)
        prlimit(proc.pid, resource.RLIMIT_AS, (limit, limit))
    except (OSError, ValueError):     # gone already: nothing to limit
        return None
    return limit


def stop_all() -> None:
    """Kill every `dot` still running (a worker process ending on a signal)."""
    for proc in list(_running):
        with contextlib.suppress(OSError):
            proc.kill()


@contextlib.contextmanager
def started_early(fmt: str):
    """Start the first `dot` a drawing in `fmt` will need now, and stop it at the end if unused.

    `dot` spends ~8 ms loading its plugins before it reads any input. Started before the program is
    parsed and evaluated, it does so on another core meanwhile, and _dot hands it the text when it
    is ready: a tenth less wall time for `cgviz render` of a small file. Without Graphviz nothing
    starts, and the drawing reports it as ever."""
    if _formats.REGISTRY.get(fmt) and _formats.REGISTRY[fmt].producer in (_formats.GRAPHVIZ, _formats.PAGE):
        with contextlib.suppress(CgvizError, OSError):
            args = (DOT, _first_pass("svg" if fmt == "html" else fmt))   # a page holds an SVG
            if args not in _early:
                _early[args] = _start(list(args))
    try:
        yield
    finally:
        while _early:
            _, proc = _early.popitem()
            _running.discard(proc)
            with proc:                 # closes the pipes and waits for it
                proc.kill()


def _first_pass(fmt: str) -> str:
    """The -T of the first `dot` run_dot starts for `fmt`: a PNG is laid out first (layout) to learn its size."""
    return "-Tdot" if fmt == "png" else f"-T{fmt}"


def _run(args: list[str], data: bytes, timeout: float | None) -> subprocess.CompletedProcess:
    """subprocess.run(args, input=data, capture_output=True), on a process started early if there is one."""
    proc = _early.pop(tuple(args), None) or _start(args)
    try:
        with proc:
            try:
                out, err = proc.communicate(data, timeout=timeout)
            except BaseException:          # a timeout, Ctrl-C, SIGTERM: never leave Graphviz running
                proc.kill()                # then wait (by `with`), without reading: as subprocess.run does
                raise
    finally:
        _running.discard(proc)
    done = subprocess.CompletedProcess(args, proc.returncode, out, err)
    done.memory_limit = getattr(proc, "memory_limit", None)
    return done


# How `dot` ends when an allocation fails under the limit: Graphviz's "out of memory" (then often
# a segfault, as it does not check every allocation), or C++'s bad_alloc (an abort)
_OUT_OF_MEMORY = re.compile(r"out of memory|cannot allocate|bad_alloc|memory exhausted", re.I)
_CRASH_SIGNALS = (-6, -7, -11)       # SIGABRT, SIGBUS, SIGSEGV


def _dot(args: list[str], data: bytes, fmt: str, timeout: float | None, nodes: int | None, hint: str,
         what: str = "laying out") -> subprocess.CompletedProcess:
    try:
        proc = _run(args, data, timeout)
    except subprocess.TimeoutExpired:
        size = f" {nodes} nodes" if nodes else " the graph"
        faster = f"{spell('format', 'svg')} (much faster than PNG for big graphs), " if fmt == "png" else ""
        raise LayoutTimeout(f"Graphviz did not finish {what}{size} within {timeout:g} s. "
                            f"Try {hint}{faster}{spell('format', 'dot')} to get the text without layout, or a "
                            f"longer {spell('timeout')}.") from None
    if proc.returncode != 0:
        err = proc.stderr.decode("utf-8", "replace").strip()
        limit = getattr(proc, "memory_limit", None)
        if limit is not None and (_OUT_OF_MEMORY.search(err) or proc.returncode in _CRASH_SIGNALS):
            e = LayoutMemory(
                f"Graphviz ran out of memory {what} the graph{_spans(data)}: cgviz lets `dot` use at most "
                f"{size_text(limit)}. Try {hint}{spell('format', 'dot')} to get the text without layout, "
                f"or allow more with {DOT_MEMORY_ENV}=16G (or {DOT_MEMORY_ENV}=0 for no limit).")
            e.limit_text = size_text(limit)
            raise e
        if "longer than 16384" in err:
            # a name of a node, module or file longer than Graphviz takes in one string
            raise CgvizError("a name in this graph (of a node, module or file) is too long for Graphviz, "
                             "which takes at most 16,384 characters in one string; shorten it, or use "
                             f"{spell('format', 'json')}, which has no such limit")
        raise CgvizError(f"Graphviz `dot -T{fmt}` failed (exit status {proc.returncode}): {err}")
    return proc


def _spans(data: bytes) -> str:
    """What makes the layout big, read from the DOT text: its edges' spans are nodes dot must place."""
    from ..plan.budget import layout_cost
    try:
        cost = layout_cost(data.decode("utf-8"))
    except Exception:       # an estimate for a message: never the reason a message is lost
        return ""
    return f" ({cost.describe()})" if cost.nodes else ""


def run_dot(dot_text: str, fmt: str, timeout: float | None = DEFAULT_TIMEOUT, nodes: int | None = None,
            hint: str = "", rankdir: str | None = None, dpi: float | None = None) -> bytes:
    """Lay out and draw with `dot -T<fmt>`; a slow layout is stopped and explained, never waited on forever.

    A PNG is laid out first (`dot -Tdot`) to learn its size, then drawn at the resolution `dpi`, or,
    by default, at the highest one (up to Graphviz's 96) that keeps it within the pixel budget of
    cgviz.plan.budget; a drawing that would need less than MIN_DPI is refused
    (PictureTooBig) rather than drawn unreadably small. SVG and PDF keep full detail.

    The advice on failure depends on what was asked: `hint` is the caller's own (ending in ", "),
    `rankdir` the layout direction (read from the DOT text when not given); nothing already in
    effect is suggested."""
    if rankdir is None:
        hit = _RANKDIR.search(dot_text)
        rankdir = hit.group(1).upper() if hit else "TB"      # Graphviz's default
    if fmt != "png":
        out = _with_groups_or_without(lambda text: _dot([DOT, _first_pass(fmt)], text.encode("utf-8"), fmt, timeout,
                                                        nodes, hint).stdout, dot_text)
        return keep_spaces(out) if fmt == "svg" else out
    laid = layout(dot_text, timeout, nodes, hint)
    return rasterise(dot_text, laid, dpi, timeout, nodes, hint, rankdir)


# a <text> element's leading spaces, or its trailing ones
_EDGE_SPACES = re.compile(rb"(<text\b[^>]*>)( +)|( +)(</text>)")


def keep_spaces(svg: bytes) -> bytes:
    """Graphviz's SVG with the spaces at either end of each <text> written as no-break spaces.

    Graphviz draws a label's runs of text (a bold name, then its shape) as separate <text> elements,
    each placed where its measurements say, and writes a run's leading space as a plain space:
    `<text>idx</text><text> [1×16]</text>`. SVG strips a text's leading and trailing spaces (unless
    xml:space="preserve", which SVG 2 deprecates and not every renderer honours), so every browser
    drew `idx[1×16]`. A no-break space is never stripped, has a space's width, and is what Graphviz
    itself writes for the second of two spaces."""
    return _EDGE_SPACES.sub(lambda m: m.group(1) + b"&#160;" * len(m.group(2)) if m.group(1) is not None
                            else b"&#160;" * len(m.group(3)) + m.group(4), svg)


def layout(dot_text: str, timeout: float | None = DEFAULT_TIMEOUT, nodes: int | None = None,
           hint: str = "") -> str:
    """The DOT text with every position filled in (`dot -Tdot`): the whole cost of the layout."""
    return _with_groups_or_without(lambda text: _dot([DOT, _first_pass("png")], text.encode("utf-8"), "png", timeout,
                                                      nodes, hint).stdout.decode("utf-8"), dot_text)


_GROUP = re.compile(r' group="main"')


def _with_groups_or_without(draw, dot_text: str):
    """Graphviz 2.43 sometimes fails with "trouble in init_rank" on `group` attributes inside
    clusters; the main-path groups only straighten the picture, so it is drawn without them then."""
    try:
        return draw(dot_text)
    except CgvizError as e:
        if "trouble in init_rank" not in str(e) or not _GROUP.search(dot_text):
            raise
        return draw(_GROUP.sub("", dot_text))


def png_resolution(laid_out: str, dpi: float | None = None, nodes: int | None = None, hint: str = "",
                   rankdir: str = "TB") -> float:
    """The dpi for a PNG of a laid-out picture: `dpi` when asked for, else the pixel budget's choice;
    PictureTooBig when that would be below MIN_DPI."""
    from ..plan.budget import DEFAULT_DPI, MAX_PNG_PIXELS, MAX_PNG_SIDE, MIN_DPI, drawing_size, png_dpi, png_pixels
    if dpi is not None:
        return dpi
    size = drawing_size(laid_out)
    if size is None:
        return DEFAULT_DPI
    fits = png_dpi(*size)
    if fits < MIN_DPI:
        w, h = png_pixels(*size, DEFAULT_DPI)
        what = f" of {nodes} nodes" if nodes else ""
        raise PictureTooBig(
            f"the picture{what} is too big for a readable PNG: {w:,}×{h:,} px at {DEFAULT_DPI:g} dpi, and "
            f"even at {MIN_DPI:g} dpi it would pass the default budget of {MAX_PNG_PIXELS / 1e6:g} Mpx and "
            f"{MAX_PNG_SIDE:,} px a side. Use {hint}{spell('format', 'svg or pdf')} (no size limit), "
            + (f"{spell('rankdir', 'TB')} for a long chain, " if rankdir.upper() == "LR" else "")
            + f"or ask for a resolution with {spell('dpi', metavar='N')} (a PNG that big may not open "
              "everywhere).")
    return fits


def rasterise(dot_text: str, laid_out: str, dpi: float | None = None, timeout: float | None = DEFAULT_TIMEOUT,
              nodes: int | None = None, hint: str = "", rankdir: str = "TB") -> bytes:
    """A PNG of a picture whose layout (`laid_out`) says how big it is (see run_dot).

    The PNG is drawn by `dot -Tpng` from the original text, at Graphviz's own resolution when that
    fits the budget (the same bytes as ever), else at the budget's. Rasterising from the laid-out
    positions (`neato -n2`) would save the second layout but moves captions by a few pixels."""
    from ..plan.budget import DEFAULT_DPI
    res = png_resolution(laid_out, dpi, nodes, hint, rankdir)
    args = [DOT, "-Tpng"] + ([] if res == DEFAULT_DPI and dpi is None else [f"-Gdpi={res:g}"])
    proc = _with_groups_or_without(lambda text: _dot(args, text.encode("utf-8"), "png", timeout, nodes, hint,
                                                     "drawing"), dot_text)
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
                     f"Use {hint}{spell('format', 'svg or pdf')} (no size limit), "
                     + (f"{spell('rankdir', 'TB')} for a long chain, " if rankdir.upper() == "LR" else "")
                     + f"a lower {spell('dpi')}, or {spell('format', 'dot')} for the text without layout.")


def write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside `path`, then rename: readers never see half a file, and an
    existing file is only replaced once the new one is complete.

    A character device or a FIFO (/dev/null, /dev/stdout, a shell's `>(…)`) is written into, never
    replaced; a folder, a symbolic link loop, or a path under a file is refused in words."""
    from ..core.paths import check_output
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
        fd, tmp = _new_private_file(folder, path.name)
    except OSError as e:
        raise CgvizError(f"cannot write {path}: {e.strerror or e} (is the folder writable?)") from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        # the file was made private (0600); give it the mode a plain open() would have had
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


def _new_private_file(folder: Path, name: str) -> tuple[int, str]:
    """Create `.NAME.<random>.part` in `folder`, readable by the owner only, and open it for writing.

    What tempfile.mkstemp does (a random name, O_EXCL, tried again on a clash), written out because
    importing tempfile (and with it shutil, bz2, lzma and random) cost ~5 ms of every `cgviz render`."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    # The temporary name is the output's plus 15 bytes; a file system takes 255 bytes a name, so a
    # long output name is cut here, or an output any shorter than that limit could not be written.
    stem = os.fsdecode(os.fsencode(name)[:200])
    for _ in range(100):
        tmp = os.path.join(folder, f".{stem}.{os.urandom(4).hex()}.part")
        try:
            return os.open(tmp, flags, 0o600), tmp
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no unused temporary file name", str(folder))


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
