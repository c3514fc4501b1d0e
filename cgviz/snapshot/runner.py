"""Golden graphs held steady: render each entry and compare its graph with the golden's, structure exactly and numbers within a tolerance.

The graph golden (`<entry>.json`, cgviz.view.golden) is the same on every machine: no rasteriser, font
or float32 kernel moves it beyond the tolerance, while a changed op, edge, shape or value does. The
PNG is written beside it for reviewers and diff sheets, and compared pixel by pixel only when asked
(`--pixels`, or `compare = ["graph", "png"]`), since pixels depend on the Graphviz build. Goldens of
earlier versions (`<entry>.dot` and `.png`, no `.json`) are still checked as they were, DOT as text,
until `--update` writes the graph golden.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..core.errors import CgvizError, OptionError
from ..core.paths import hub_name, is_hub, split_spec
from ..core.spelling import on_command_line, spell
from ..view.formats import suffix

# The keys a manifest entry may have, beyond `name` and `file`/`model`; each is a cgviz option, checked
# by the same definition as on the command line (cgviz.api.options).
CG_KEYS = ("set", "rankdir", "no_grad", "max_elements")
MODEL_KEYS = ("input_shape", "input", "dtype", "loss", "targets", "seed", "view", "depth", "no_fold", "trust",
              "weights", "meta", "mode", "no_grad", "rankdir", "no_simplify", "download")
# how an entry is compared, beside how it is drawn
CHECK_KEYS = ("compare", "rtol", "atol")
CHECKS = ("graph", "png")
GOLDEN_SUFFIXES = tuple(suffix(f) for f in ("json", "png", "dot"))   # .dot: goldens written before the graph golden
OUT_SUFFIXES = (".json", ".png", ".dot", ".diff.png", ".graphdiff.png", ".graphdiff.svg")
DEFAULT_THRESHOLD = 48      # a pixel differs when a colour channel moves by more than this (of 255)
DEFAULT_TOLERANCE = 0.001   # an entry changed when more than this share of its pixels differ


def _on_the_command_line() -> str:
    """Where an allow_* choice is made: on the command line, or as load_manifest's keyword."""
    return " to the command line" if on_command_line() else ""


class UsageProblem(OptionError):
    """A manifest or argument mistake: exit status 2, like any usage error."""


@dataclass(frozen=True)
class Entry:
    """One picture to hold steady: a .cg file or a model, with the options to draw it."""

    name: str
    path: str
    kind: str                                  # cg | model
    options: dict = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.name, self.path, self.kind))


def _toml(path: Path) -> dict:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover
        import tomli as tomllib
    from ..core.paths import SOURCE_LIMIT, read_input
    try:
        data = read_input(path, kind="a manifest", accepts="Give a TOML manifest such as cgviz.toml.",
                          limit=SOURCE_LIMIT)
        return tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise UsageProblem(f"{path}: not UTF-8 text (byte 0x{data[e.start]:02x} at offset {e.start}); "
                           "a manifest is a TOML file") from None
    except CgvizError as e:
        raise UsageProblem(str(e)) from None
    except tomllib.TOMLDecodeError as e:
        raise UsageProblem(f"{path}: not valid TOML: {e}") from None


def load_manifest(path: Path, allow_trust: bool = False, allow_outside: bool = False) -> list[Entry]:
    """`[[entry]]` tables: `file = "x.cg"` or `model = "net.py"`, plus options; paths are relative to
    the manifest's folder.

    In CI a manifest comes from a pull request, so it may not widen what cgviz runs or reads: every
    file it names must lie inside its folder unless `allow_outside`, and `trust = true` (unpickling
    a module, which runs code) needs `allow_trust`; both are the caller's command-line choice."""
    doc = _toml(path)
    items = doc.get("entry")
    if not isinstance(items, list) or not items:
        raise UsageProblem(f"{path}: no [[entry]] tables; each entry needs `file = \"x.cg\"` or "
                           "`model = \"net.py\"`")
    base = path.parent
    out = []
    for k, item in enumerate(items, 1):
        where = f"{path}: entry {k}"
        if not isinstance(item, dict):
            raise UsageProblem(f"{where} is not a table")
        has_file, has_model = "file" in item, "model" in item
        if has_file == has_model:
            raise UsageProblem(f"{where} needs exactly one of `file` (a .cg program) and `model`")
        kind = "cg" if has_file else "model"
        target = item["file" if has_file else "model"]
        if not isinstance(target, str) or not target.strip() or "\x00" in target:
            raise UsageProblem(f"{where}: `{'file' if has_file else 'model'}` must be a path, got {target!r}")
        opts = _entry_options(item, kind, where)
        if opts.get("trust") and not allow_trust:
            raise UsageProblem(f"{where} sets trust = true, which unpickles a whole nn.Module and so runs code "
                               f"from the file; a manifest cannot allow that by itself: add {spell('allow_trust')}{_on_the_command_line()} "
                               "if you trust every model this manifest names")
        # `net.py:build` keeps its factory; the path part is relative to the manifest
        factory = split_spec(target, base)[1] if kind == "model" else None
        file_part = target[:-len(factory) - 1] if factory else target
        hub = kind == "model" and is_hub(target)        # hf:gpt2, a model by name: no file to look for
        loss_file = _loss_file(opts.get("loss"), where)
        for key, rel in (("file" if has_file else "model", file_part), ("input", opts.get("input")),
                         ("weights", opts.get("weights")), ("targets", opts.get("targets")), ("loss", loss_file)):
            if rel is not None and not allow_outside and not (hub and rel is file_part):
                _inside(base, rel, f"{where}: {key}")
        for key in ("input", "weights", "targets"):
            if key in opts:
                opts[key] = str(base / opts[key])
        if loss_file is not None:       # losses.py:focal, relative to the manifest too
            opts["loss"] = f"{base / loss_file}:{opts['loss'].rpartition(':')[2]}"
        resolved = target if hub else str(base / file_part) + (f":{factory}" if factory else "")
        name = item.get("name")
        if name is None:
            name = hub_name(target) if hub else Path(file_part).stem
            check_name(name, f"{where}: the name taken from {file_part!r}")
        else:
            check_name(name, f"{where}: name")
        out.append(Entry(name, resolved, kind, opts))
    _unique(out, str(path))
    return out


def _loss_file(loss: str | None, where: str) -> str | None:
    """The .py file of a manifest's `loss = "losses.py:focal"`, which must lie inside its folder like any
    file it names. A module's function is taken from torch only (`torch.nn:CrossEntropyLoss`): a
    manifest may not make cgviz import and call whatever is installed."""
    if loss is None or ":" not in loss:
        return None
    head = loss.rpartition(":")[0]
    if head.endswith(".py"):
        return head
    if head != "torch" and not head.startswith("torch."):
        raise UsageProblem(f"{where}: loss {loss!r}: a manifest takes a loss name, a function of the model file, "
                           "a function of a .py file in its folder (losses.py:focal), or one of torch's "
                           "(torch.nn:CrossEntropyLoss); not another installed module's")
    return None


def _entry_options(item: dict, kind: str, where: str) -> dict[str, Any]:
    """An entry's options, each checked by the command line's own definition of that option."""
    import click

    from ..api.options import OPTIONS, parse_sets
    allowed = (CG_KEYS if kind == "cg" else MODEL_KEYS) + CHECK_KEYS
    opts: dict[str, Any] = {}
    for key, value in item.items():
        if key in ("file", "model", "name"):
            continue
        if key not in allowed:
            raise UsageProblem(f"{where}: unknown key {key!r} for a {'.cg file' if kind == 'cg' else 'model'}; "
                               f"known: {', '.join(sorted(allowed))}")
        try:
            if key == "compare":
                if not isinstance(value, list) or not value or any(v not in CHECKS for v in value):
                    raise click.BadParameter(f"must be a non-empty list of {' and '.join(map(repr, CHECKS))}, "
                                             f"got {value!r}")
                opts[key] = tuple(c for c in CHECKS if c in value)
            elif key == "set":
                if not isinstance(value, dict):
                    raise click.BadParameter(f"must be a table of NAME = VALUE, got {value!r}")
                opts[key] = parse_sets([f"{n}={v}" for n, v in value.items()])
            elif key == "input_shape":
                if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    raise click.BadParameter(f"must be a list of shapes such as [\"1,3,32,32\"], got {value!r}")
                from ..pytorch.inputs import parse_shape
                try:
                    opts[key] = tuple(parse_shape(v) for v in value)
                except ValueError as e:
                    raise click.BadParameter(str(e)) from None
            else:
                opts[key] = OPTIONS[key].convert(value)
        except click.UsageError as e:
            raise UsageProblem(f"{where}: {key} {e.message}") from None
    return opts


def _inside(base: Path, rel: str, what: str) -> None:
    """Refuse a path a manifest names that leads outside the manifest's folder (after symlinks)."""
    # realpath, not resolve(): Python 3.11's resolve() raises RuntimeError on a symlink loop (an
    # internal error); a loop stays itself here and is named as one when it is read
    root = Path(os.path.realpath(base))
    target = Path(os.path.realpath(base / rel))
    if target != root and root not in target.parents:
        raise UsageProblem(f"{what} {rel!r} lies outside the manifest's folder {base}; a manifest may only "
                           "name files inside its folder, since in CI it comes from a pull request. Move "
                           f"the file, or add {spell('allow_outside')}{_on_the_command_line()} if you trust the manifest")


# A golden's name is a plain file-name stem: it becomes <name>.png and <name>.dot inside --golden and
# --out, so a separator, `..`, a leading dot or a drive letter could reach outside them.
_NAME_FORBIDDEN = set('/\\:*?"<>|')
MAX_NAME = 120


def check_name(name: object, what: str) -> str:
    """A safe golden name, or UsageProblem saying why not."""
    if not isinstance(name, str) or not name:
        raise UsageProblem(f"{what} must be a non-empty string, got {name!r}")
    bad = sorted({c for c in name if c in _NAME_FORBIDDEN or ord(c) < 32 or ord(c) == 127})
    problem = None
    if bad:
        problem = f"has {', '.join(repr(c) for c in bad)}"
    elif name.startswith(".") or name.endswith((" ", ".")):
        problem = "starts with a dot or ends with a dot or a space"
    elif len(name) > MAX_NAME:
        problem = f"is {len(name)} characters long (at most {MAX_NAME})"
    if problem:
        raise UsageProblem(f"{what} {name[:60]!r} {problem}; a name becomes the golden's file name, so it "
                           "must be a plain file-name stem (letters, digits, -, _, . and spaces)")
    return name


def derived(folder: Path, name: str, suffix: str) -> Path:
    """<folder>/<name><suffix>, refused unless it stays directly inside the folder: names are checked
    when entries are made, and this is the second lock on the door, at the place that writes."""
    path = folder / f"{name}{suffix}"
    if path.parent != folder or name in ("", ".", "..") or os.sep in name or (os.altsep and os.altsep in name):
        raise UsageProblem(f"the golden name {name!r} would lead outside {folder}")
    return path


def entries_from_files(files: list[str]) -> list[Entry]:
    """Plain arguments: .cg programs (and model files, with default options)."""
    out = []
    for f in files:
        kind = "cg" if f.endswith(".cg") or f == "-" else "model"
        stem = hub_name(f) if is_hub(f) else (split_spec(f)[0] if kind == "model" else Path(f)).stem
        out.append(Entry(check_name(stem, f"the name taken from {f!r}"), f, kind, {}))
    _unique(out, "the arguments")
    return out


def _unique(entries: list[Entry], where: str) -> None:
    # names that differ only in case are one file on macOS and Windows, where goldens are checked out too
    seen: dict[str, Entry] = {}
    for e in entries:
        key = e.name.casefold()
        if key in seen:
            other = seen[key]
            if other.name == e.name:
                clash = f"are named {e.name!r} ({other.path} and {e.path})"
            else:
                clash = (f"are named {other.name!r} ({other.path}) and {e.name!r} ({e.path}), which differ "
                         "only in case: one file on macOS and Windows")
            raise UsageProblem(f"two entries in {where} {clash}; give one a `name`")
        seen[key] = e


@dataclass
class Rendering:
    """One entry drawn: its graph golden (cgviz.view.golden's document), DOT text and PNG."""

    doc: dict
    dot: str
    png: bytes


def draw_entry(path, kind: str, o: dict, text: bool = False):
    """cgviz.draw() of a file with a manifest entry's options (`kind` "cg" or "model"), as render
    and torch draw it; `cgviz diff --a KEY=VALUE` draws each side this way too (`text`: `path` is a
    program's text)."""
    from ..api.drawer import draw
    if kind == "cg":
        # rankdir None: as render chooses it from the graph's shape
        return draw(path, kind="text" if text else "expression", sets=o.get("set"), grad=not o.get("no_grad", False),
                    max_elements=o.get("max_elements"), rankdir=o.get("rankdir"))
    return draw(path, kind="model", input_size=o.get("input_shape") or None, input_file=o.get("input"),
                dtype=o.get("dtype"), loss=o.get("loss"), targets=o.get("targets"), seed=o.get("seed", 0),
                view=o.get("view", "ops"),
                mode=o.get("mode"), meta=o.get("meta", False), trust=o.get("trust", False),
                weights=o.get("weights"), depth=o.get("depth"), fold=not o.get("no_fold", False),
                rankdir=o.get("rankdir", "TB"), grad=not o.get("no_grad", False),
                simplify=not o.get("no_simplify", False), download=o.get("download", False))


def render(entry: Entry, timeout: float | None = None) -> Rendering:
    """The graph golden, DOT and PNG of one entry, drawn by cgviz.draw() as render and torch draw
    it; runs in a worker process under -j."""
    from ..view.golden import document
    from ..view.graphviz import run_dot
    d = draw_entry(entry.path, entry.kind, entry.options)
    # the golden PNG is the golden DOT laid out as it is (no picture budget stepping in between)
    dot_text = d.dot
    return Rendering(document(d), dot_text, run_dot(dot_text, "png", timeout=timeout, nodes=len(d)))


@dataclass
class PngDiff:
    share: float                 # of the pixels (of the larger picture) that differ
    pixels: int
    size_changed: bool
    diff_png: bytes | None       # the new picture greyed, differing pixels in red


def compare_png(old: bytes, new: bytes, threshold: int = DEFAULT_THRESHOLD) -> PngDiff:
    """Pixel by pixel: a pixel differs when any channel moves by more than `threshold`."""
    from PIL import Image, ImageChops
    a = Image.open(io.BytesIO(old)).convert("RGB")
    b = Image.open(io.BytesIO(new)).convert("RGB")
    size_changed = a.size != b.size
    w, h = max(a.size[0], b.size[0]), max(a.size[1], b.size[1])
    if size_changed:
        # compare on a common canvas: what one picture has and the other lacks counts as changed
        ca, cb = Image.new("RGB", (w, h), "white"), Image.new("RGB", (w, h), "white")
        ca.paste(a, (0, 0))
        cb.paste(b, (0, 0))
        a, b = ca, cb
    delta = ImageChops.difference(a, b)
    # max over channels, then threshold: a mask of the pixels that really differ
    r, g, bl = delta.split()
    mask = ImageChops.lighter(ImageChops.lighter(r, g), bl).point(lambda v: 255 if v > threshold else 0)
    changed = mask.histogram()[255]
    share = changed / float(w * h) if w * h else 0.0
    diff_png = None
    if changed or size_changed:
        # golden | new | the new one faded with every differing pixel in red, side by side
        faded = Image.blend(b.convert("L").convert("RGB"), Image.new("RGB", (w, h), "white"), 0.7)
        faded.paste(Image.new("RGB", (w, h), (220, 0, 0)), (0, 0), mask)
        gap = 12
        sheet = Image.new("RGB", (3 * w + 2 * gap, h), (160, 160, 160))
        for i, im in enumerate((a, b, faded)):
            sheet.paste(im, (i * (w + gap), 0))
        buf = io.BytesIO()
        sheet.save(buf, format="PNG")
        diff_png = buf.getvalue()
    return PngDiff(share, changed, size_changed, diff_png)


@dataclass
class Outcome:
    entry: Entry
    status: str                  # same | changed | new | missing golden | updated | error
    detail: str = ""
    report: list[str] = field(default_factory=list)   # what changed, one line each (cgviz.view.golden)
    legacy: bool = False         # checked against an old DOT/PNG golden, which has no graph golden
    picture: list[str] = field(default_factory=list)   # the graph diff picture written, and its summary


@dataclass(frozen=True)
class Settings:
    """How entries are compared, as the command line says; an entry's own `compare`, `rtol` and
    `atol` take the place of these for it."""

    pixels: bool = False
    rtol: float | None = None
    atol: float | None = None
    threshold: int = DEFAULT_THRESHOLD
    tolerance: float = DEFAULT_TOLERANCE

    def checks(self, entry: Entry) -> tuple[str, ...]:
        own = entry.options.get("compare")
        if own:
            return own
        return CHECKS if self.pixels else ("graph",)

    def tolerances(self, entry: Entry) -> tuple[float | None, float | None]:
        """The entry's own, else the command line's; None: cgviz.view.golden's default."""
        return entry.options.get("rtol", self.rtol), entry.options.get("atol", self.atol)


def check(entry: Entry, r: Rendering, golden: Path, out: Path, update: bool, settings: Settings = Settings()) -> Outcome:
    """Compare one rendering with its goldens; write the new files and the diff sheet when it changed
    (or, with update, the new goldens)."""
    from ..view.golden import compare, dumps, loads
    from ..view.graphviz import write_atomic
    gjson, gpng, gdot = (derived(golden, entry.name, s) for s in (".json", ".png", ".dot"))
    checks = settings.checks(entry)
    if not os.path.lexists(gjson) and os.path.lexists(gdot) and "graph" in checks:
        return _legacy(entry, r, golden, out, update, settings)
    new_json = dumps(r.doc).encode("utf-8")

    def write_goldens(status: str, detail: str, **kw) -> Outcome:
        write_atomic(gjson, new_json)
        write_atomic(gpng, r.png)
        return Outcome(entry, status, detail, **kw)

    def write_out() -> None:
        write_atomic(derived(out, entry.name, ".png"), r.png)
        write_atomic(derived(out, entry.name, ".json"), new_json)

    needed = [p for c, p in (("graph", gjson), ("png", gpng)) if c in checks]
    # lexists: a golden that is a dangling or looping link is not "missing"; reading it says what it is
    absent = [p for p in needed if not os.path.lexists(p)]
    if absent:
        if update:
            return write_goldens("new", "golden written")
        write_out()
        return Outcome(entry, "missing golden", f"no {'/'.join(p.name for p in absent)} in {golden}; "
                       f"run with {spell('update')}")
    parts: list[str] = []
    report: list[str] = []
    picture: list[str] = []
    if "graph" in checks:
        try:
            old = loads(_read_golden(gjson), str(gjson))
        except CgvizError:
            if not update:
                raise           # a FIFO, a folder, a loop, not JSON: the entry's error row says which
            old = None          # --update replaces it
        diff = compare(old, r.doc, *settings.tolerances(entry)) if old is not None else None
        if diff is None or not diff.same:
            report = diff.changes if diff else []
            parts.append(diff.summary if diff else "unreadable graph golden")
            if diff is not None and not update:
                picture = _graph_diff(entry, old, r.doc, out, settings)
    diff_png = None
    compared = "png" in checks
    # not compared, the PNG only gives a changed entry's diff sheet: no need to decode it otherwise
    if compared or (parts and not update):
        pixels = _pixels(entry, r, gpng, settings, compared=compared, update=update)
        if isinstance(pixels, Outcome):
            return pixels
        png_parts, diff_png = pixels
        parts += png_parts
    if not parts:
        return Outcome(entry, "same", "")
    if update:
        return write_goldens("updated", "; ".join(parts), report=report)
    write_out()
    if diff_png:
        write_atomic(derived(out, entry.name, ".diff.png"), diff_png)
    return Outcome(entry, "changed", "; ".join(parts), report=report, picture=picture)


def _graph_diff(entry: Entry, old: dict, new: dict, out: Path, settings: Settings) -> list[str]:
    """Draw the golden-to-now difference on the union graph to <out>/<entry>.graphdiff.png; the
    report's first lines name it and give its summary (the first divergence, the largest changes)."""
    from ..diff.report import write_picture
    diff, path, why = write_picture(old, new, derived(out, entry.name, ".graphdiff.png"),
                                    *settings.tolerances(entry))
    head = f"diff picture: {path}" if path else f"no diff picture: {why}"
    return [head] + [line for line in diff.summary_lines()[1:]]


def _pixels(entry: Entry, r: Rendering, gpng: Path, settings: Settings, compared: bool, update: bool):
    """(what differs, diff sheet) of the new PNG against the golden PNG, or an error Outcome
    when a compared golden PNG is unreadable. Not compared, the PNG still gives the diff sheet."""
    from PIL import Image
    if not os.path.lexists(gpng):
        return [], None
    try:
        diff = compare_png(_read_golden(gpng), r.png, settings.threshold)
    except CgvizError:
        if compared and not update:
            raise
        return (["unreadable PNG golden"] if compared else []), None
    except (OSError, ValueError, Image.DecompressionBombError) as e:   # UnidentifiedImageError is an OSError
        if compared and not update:
            return Outcome(entry, "error", f"the golden {gpng} is not a readable PNG ({type(e).__name__}); "
                           f"restore it from version control, or write a new one with {spell('update')}")
        return (["unreadable PNG golden"] if compared else []), None
    if not compared:
        return [], diff.diff_png
    parts = []
    if diff.size_changed:
        parts.append("PNG size changed")
    if diff.pixels and (diff.size_changed or diff.share > settings.tolerance):
        parts.append(f"{diff.pixels} px differ ({diff.share:.3%})")
    return parts, diff.diff_png


def _legacy(entry: Entry, r: Rendering, golden: Path, out: Path, update: bool, settings: Settings) -> Outcome:
    """An entry whose golden is from before the graph golden (`<entry>.dot` and `.png`): checked as it
    was, DOT as exact text and PNG by pixels; --update moves it to the graph golden."""
    from ..view.golden import dumps
    from ..view.graphviz import write_atomic
    gjson, gpng, gdot = (derived(golden, entry.name, s) for s in (".json", ".png", ".dot"))
    if update:
        write_atomic(gjson, dumps(r.doc).encode("utf-8"))
        write_atomic(gpng, r.png)
        gdot.unlink(missing_ok=True)
        return Outcome(entry, "updated", f"moved to the graph golden {gjson.name} (the old {gdot.name} is removed)")
    old_dot = _read_golden(gdot)
    parts = []
    if old_dot != r.dot.encode("utf-8"):
        parts.append(f"DOT differs ({_first_difference(old_dot.decode('utf-8', 'replace'), r.dot)})")
    pixels = _pixels(entry, r, gpng, settings, compared=True, update=False)
    if isinstance(pixels, Outcome):
        return pixels
    png_parts, diff_png = pixels
    parts += png_parts
    hint = f"old DOT/PNG golden (no {gjson.name})"
    if not parts:
        return Outcome(entry, "same", hint, legacy=True)
    write_atomic(derived(out, entry.name, ".png"), r.png)
    write_atomic(derived(out, entry.name, ".dot"), r.dot.encode("utf-8"))
    if diff_png:
        write_atomic(derived(out, entry.name, ".diff.png"), diff_png)
    return Outcome(entry, "changed", "; ".join(parts) + f"; {hint}", legacy=True)


def _read_golden(path: Path) -> bytes:
    """A golden file's bytes: a regular file only (cgviz.core.paths), never a FIFO or a device."""
    from ..core.paths import read_input
    return read_input(path, "golden", kind="a golden picture",
                      accepts=f"Remove it, or run with {spell('update')} to write the golden again.")


def _first_difference(old: str, new: str) -> str:
    a, b = old.splitlines(), new.splitlines()
    for i, (x, y) in enumerate(zip(a, b), 1):
        if x != y:
            return f"first at line {i}"
    return f"{abs(len(a) - len(b))} lines {'more' if len(b) > len(a) else 'fewer'}"


def orphans(golden: Path, entries: list[Entry]) -> list[str]:
    """Golden names (`old.json`/`old.png`/`old.dot` → `old`) that no entry claims: a renamed or
    deleted sample."""
    if not golden.is_dir():
        return []
    names = {e.name for e in entries}
    stems = {p.stem for p in golden.iterdir() if p.suffix in GOLDEN_SUFFIXES}
    return sorted(stems - names)


def clear_previous(out: Path, entries: list[Entry]) -> None:
    """Remove what an earlier run left in --out for these entries, so every file there is current."""
    for e in entries:
        for suffix in OUT_SUFFIXES:
            derived(out, e.name, suffix).unlink(missing_ok=True)


def render_all(entries: list[Entry], timeout: float | None, jobs: int = 1, done=None) -> list[tuple]:
    """render_job for every entry, in `jobs` processes; `done()` after each (a progress bar)."""
    from ..core.spelling import SURFACE
    surface = [SURFACE.get()] * len(entries)       # a worker spells options as its caller does
    if jobs > 1 and len(entries) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        import os

        from .workers import init, stop_workers
        results = []
        # spawn, not fork: a forked child of a process whose torch already started threads
        # can deadlock on their locks. Each worker dies with this process (cgviz.snapshot.workers).
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=init, initargs=(os.getpid(),)) as pool:
            try:
                for r in pool.map(render_job, entries, [timeout] * len(entries), surface):
                    results.append(r)
                    if done:
                        done()
            except BaseException:
                # Ctrl-C, SIGTERM: leaving the block would wait for every worker to finish its entry
                # (a layout can take minutes); they are told to stop, and stop their `dot` first
                stop_workers(pool)
                raise
        return results
    results = []
    for e in entries:
        results.append(render_job(e, timeout))
        if done:
            done()
    return results


def compare_all(results: list[tuple], golden: Path, out: Path, update: bool,
                settings: Settings = Settings()) -> list[Outcome]:
    """Each rendering against its golden (check); a failed rendering or an unreadable golden is that
    entry's row, and the others go on."""
    outcomes = []
    for entry, rendering, error in results:
        if error is not None:
            outcomes.append(Outcome(entry, "error", error.splitlines()[0]))
            continue
        try:
            outcomes.append(check(entry, rendering, golden, out, update, settings))
        except CgvizError as e:
            outcomes.append(Outcome(entry, "error", str(e).splitlines()[0]))
    return outcomes


def render_job(entry: Entry, timeout: float | None,
               surface: str | None = None) -> tuple[Entry, Rendering | None, str | None]:
    """render() for a worker process: errors come back as text, since a bad entry must not stop
    the others."""
    from ..core.spelling import SURFACE
    token = SURFACE.set(surface) if surface else None
    try:
        return entry, render(entry, timeout), None
    except CgvizError as e:
        return entry, None, str(e)
    except Exception as e:  # a bug in cgviz on this entry: reported as its error, the others still run
        return entry, None, f"internal error: {type(e).__name__}: {e} (a bug in cgviz; please report it)"
    finally:
        if token is not None:
            SURFACE.reset(token)


@dataclass
class Snapshot:
    """A whole snapshot run: each entry's outcome, and the goldens no entry claims."""

    outcomes: list[Outcome]
    orphans: list[str]

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status in ("changed", "missing golden", "error")]

    @property
    def written(self) -> list[str]:
        return [o.entry.name for o in self.outcomes if o.status in ("updated", "new")]

    @property
    def legacy(self) -> list[str]:
        """Entries still checked against an old DOT/PNG golden."""
        return [o.entry.name for o in self.outcomes if o.legacy]


def run(inputs: list[str], golden: Path, out: Path, *, update: bool = False, pixels: bool = False,
        rtol: float | None = None, atol: float | None = None, threshold: int = DEFAULT_THRESHOLD,
        tolerance: float = DEFAULT_TOLERANCE, jobs: int = 1, timeout: float | None = None,
        allow_trust: bool = False, allow_outside: bool = False, progress=None) -> Snapshot:
    """Everything `cgviz snapshot` does but printing: entries from one manifest or from files, every
    file checked before any work, each entry rendered and compared: its graph (rtol/atol, default
    cgviz.view.golden's), and its pixels too with `pixels` (threshold/tolerance). `progress(n)` gives a
    context manager with update(1) (a progress bar)."""
    import contextlib

    from ..core.paths import PathConflict, check_folder, check_paths, same_file
    if not inputs:
        raise UsageProblem("give a manifest (cgviz.toml) or .cg files to snapshot")
    manifest = inputs[0] if len(inputs) == 1 and inputs[0].endswith(".toml") else None
    if manifest:
        entries = load_manifest(Path(manifest), allow_trust=allow_trust, allow_outside=allow_outside)
    elif any(i.endswith(".toml") for i in inputs):
        raise UsageProblem("give one manifest, or files, not both")
    else:
        entries = entries_from_files(list(inputs))
    for key, folder in (("golden", golden), ("out", out)):
        if folder.exists() and not folder.is_dir():
            raise UsageProblem(f"{spell(key, folder)} is a file; it must name a folder (cgviz creates it if missing)")
    if same_file(out, golden):
        raise UsageProblem(f"{spell('out')} must not be the {spell('golden')} folder (it would overwrite the goldens)")
    check_folder(golden, spell("golden"))
    check_folder(out, spell("out"))
    try:
        check_paths(*_files(manifest, entries, golden, out, update))
    except PathConflict as e:
        raise UsageProblem(str(e)) from None
    clear_previous(out, entries)
    with (progress or (lambda n: contextlib.nullcontext()))(len(entries)) as bar:
        results = render_all(entries, timeout, jobs, done=bar and (lambda: bar.update(1)))
    settings = Settings(pixels, rtol, atol, threshold, tolerance)
    return Snapshot(compare_all(results, golden, out, update, settings), orphans(golden, entries))


def _files(manifest: str | None, entries: list[Entry], golden: Path, out: Path, update: bool) -> tuple[list, list]:
    """What snapshot reads (the manifest, each entry's file, its input and weights) and what it
    writes or removes (<entry>.json/.png/.dot/.diff.png in out; the goldens too with update)."""
    from ..api.sources import files_read
    from ..core.paths import Arg
    reads = [Arg("the manifest", manifest)]
    for e in entries:
        reads += [Arg(f"entry {e.name!r}:", a.path) if a.option == "the input" else
                  Arg(f"entry {e.name!r}: {a.option}", a.path)
                  for a in files_read(e.path, e.options.get("input"), e.options.get("weights"),
                                      e.options.get("targets"))]
    writes = [Arg(spell("out"), derived(out, e.name, suffix)) for e in entries for suffix in OUT_SUFFIXES]
    if update:
        writes += [Arg(spell("golden"), derived(golden, e.name, suffix)) for e in entries for suffix in GOLDEN_SUFFIXES]
    return reads, writes
