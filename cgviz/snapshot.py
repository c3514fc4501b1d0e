"""Golden pictures held steady: render each entry, compare DOT as text and PNG pixel by pixel.

The DOT is deterministic, so any difference in it is a real change (a label, a value, an edge).
The PNG is compared with a tolerance, so that rasterising noise (another Graphviz or font build)
does not fail a build while a changed picture does; a diff image shows where.
"""

from __future__ import annotations

import io
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import CgvizError

# The keys a manifest entry may have, beyond `name` and `file`/`model`; each is a cgviz option.
CG_KEYS = {"set": dict, "rankdir": str, "no_grad": bool, "max_elements": int}
MODEL_KEYS = {"input_shape": list, "input": str, "dtype": str, "loss": str, "seed": int, "view": str,
              "depth": int, "no_fold": bool, "trust": bool, "weights": str, "meta": bool, "mode": str,
              "no_grad": bool, "rankdir": str}
DEFAULT_THRESHOLD = 48      # a pixel differs when a colour channel moves by more than this (of 255)
DEFAULT_TOLERANCE = 0.001   # an entry changed when more than this share of its pixels differ


class UsageProblem(CgvizError):
    """A manifest or argument mistake: exit status 2, like any usage error."""

    exit_code = 2


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
    from .paths import SOURCE_LIMIT, read_input
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


def load_manifest(path: Path) -> list[Entry]:
    """`[[entry]]` tables: `file = "x.cg"` or `model = "net.py"`, plus options; paths are relative to
    the manifest's folder."""
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
        target = str(item["file" if has_file else "model"])
        allowed = CG_KEYS if kind == "cg" else MODEL_KEYS
        opts: dict[str, Any] = {}
        for key, value in item.items():
            if key in ("file", "model", "name"):
                continue
            if key not in allowed:
                raise UsageProblem(f"{where}: unknown key {key!r} for a {'.cg file' if has_file else 'model'}; "
                                   f"known: {', '.join(sorted(allowed))}")
            if not isinstance(value, allowed[key]):
                raise UsageProblem(f"{where}: {key} should be a {allowed[key].__name__}, got {value!r}")
            opts[key] = value
        for key in ("input", "weights"):
            if key in opts:
                opts[key] = str(base / opts[key])
        # `net.py:build` keeps its factory; the path part is relative to the manifest
        head, sep, tail = target.rpartition(":")
        resolved = str(base / head) + sep + tail if sep and tail.isidentifier() and head.endswith(".py") \
            else str(base / target)
        name = str(item.get("name") or Path(head if sep and tail.isidentifier() else target).stem)
        out.append(Entry(name, resolved, kind, opts))
    _unique(out, str(path))
    return out


def entries_from_files(files: list[str]) -> list[Entry]:
    """Plain arguments: .cg programs (and model files, with default options)."""
    out = []
    for f in files:
        kind = "cg" if f.endswith(".cg") or f == "-" else "model"
        out.append(Entry(Path(f.rpartition(":")[0] if kind == "model" and ":" in f and not Path(f).exists()
                              else f).stem, f, kind, {}))
    _unique(out, "the arguments")
    return out


def _unique(entries: list[Entry], where: str) -> None:
    seen: dict[str, Entry] = {}
    for e in entries:
        if e.name in seen:
            raise UsageProblem(f"two entries in {where} are named {e.name!r} ({seen[e.name].path} and "
                               f"{e.path}); give one a `name`")
        seen[e.name] = e


def render(entry: Entry, timeout: float | None = None) -> tuple[str, bytes]:
    """(DOT text, PNG bytes) for one entry; runs in a worker process under -j."""
    from .render import run_dot
    o = entry.options
    if entry.kind == "cg":
        from .dot import DotOptions, to_dot
        from .pipeline import evaluate, read_source
        text, name = read_source(entry.path)
        overrides = {k: str(v) for k, v in o.get("set", {}).items()}
        result = evaluate(text, name, overrides, grad=not o.get("no_grad", False),
                          max_elements=o.get("max_elements"))
        dot_text = to_dot(result.graph, result.run, DotOptions(rankdir=o.get("rankdir", "LR").upper(),
                                                                grad=not o.get("no_grad", False)))
        nodes = len(result.graph)
    else:
        from .models.inputs import parse_shape
        from .models.pipeline import draw_model
        from .models.trace import TraceOptions
        try:
            shapes = tuple(parse_shape(s) for s in o.get("input_shape", []))
        except ValueError as e:
            raise CgvizError(f"input_shape: {e}") from None
        opts = TraceOptions(input_shapes=shapes, input_file=o.get("input"), dtype=o.get("dtype"),
                            loss=o.get("loss"), seed=o.get("seed", 0), view=o.get("view", "ops"),
                            mode=o.get("mode"), meta=o.get("meta", False))
        res = draw_model(entry.path, "dot", trust=o.get("trust", False), weights=o.get("weights"), opts=opts,
                         depth=o.get("depth"), fold=not o.get("no_fold", False),
                         rankdir=o.get("rankdir", "TB").upper(), grad=not o.get("no_grad", False))
        dot_text = res.data.decode("utf-8")
        nodes = res.nodes
    return dot_text, run_dot(dot_text, "png", timeout=timeout, nodes=nodes)


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
    share: float | None = None


def check(entry: Entry, dot_text: str, png: bytes, golden: Path, out: Path, update: bool,
          threshold: int, tolerance: float) -> Outcome:
    """Compare one rendering with its golden pair; write the new files and the diff when they differ."""
    from .render import write_atomic
    gdot, gpng = golden / f"{entry.name}.dot", golden / f"{entry.name}.png"
    # lexists: a golden that is a dangling or looping link is not "missing"; reading it says what it is
    if not os.path.lexists(gdot) or not os.path.lexists(gpng):
        if update:
            write_atomic(gdot, dot_text.encode("utf-8"))
            write_atomic(gpng, png)
            return Outcome(entry, "new", "golden written")
        write_atomic(out / f"{entry.name}.png", png)
        write_atomic(out / f"{entry.name}.dot", dot_text.encode("utf-8"))
        return Outcome(entry, "missing golden", f"no {gpng.name}/{gdot.name} in {golden}; run with --update")
    try:
        old_dot, old_png = _read_golden(gdot), _read_golden(gpng)
        diff = _compare_golden(gpng, old_png, png, threshold)
    except CgvizError as e:
        if not update:
            raise               # the entry's row says what is wrong with its golden
        write_atomic(gdot, dot_text.encode("utf-8"))
        write_atomic(gpng, png)
        return Outcome(entry, "updated", f"the old golden could not be read, so it was replaced: "
                                         f"{str(e).split(';')[0]}")
    dot_same = old_dot == dot_text.encode("utf-8")
    png_same = not diff.size_changed and diff.share <= tolerance
    if dot_same and png_same:
        return Outcome(entry, "same", "" if not diff.pixels else f"{diff.pixels} px within tolerance",
                       diff.share)
    parts = []
    if not dot_same:
        parts.append(f"DOT differs ({_first_difference(old_dot.decode('utf-8', 'replace'), dot_text)})")
    if diff.size_changed:
        parts.append("PNG size changed")
    if diff.pixels:
        parts.append(f"{diff.pixels} px differ ({diff.share:.3%})")
    if update:
        write_atomic(gdot, dot_text.encode("utf-8"))
        write_atomic(gpng, png)
        return Outcome(entry, "updated", "; ".join(parts), diff.share)
    write_atomic(out / f"{entry.name}.png", png)
    write_atomic(out / f"{entry.name}.dot", dot_text.encode("utf-8"))
    if diff.diff_png:
        write_atomic(out / f"{entry.name}.diff.png", diff.diff_png)
    return Outcome(entry, "changed", "; ".join(parts), diff.share)


def _read_golden(path: Path) -> bytes:
    """A golden file's bytes: a regular file only (cgviz.paths), never a FIFO or a device."""
    from .paths import read_input
    return read_input(path, "golden", kind="a golden picture",
                      accepts="Remove it, or run with --update to write the golden again.")


def _compare_golden(gpng: Path, old: bytes, new: bytes, threshold: int) -> PngDiff:
    """compare_png, with a golden that is not a readable PNG said in words."""
    from PIL import Image
    try:
        return compare_png(old, new, threshold)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as e:
        raise CgvizError(f"golden {gpng} is not a PNG picture cgviz can read ({type(e).__name__}); "
                         "remove it, or run with --update to write it again") from None


def _first_difference(old: str, new: str) -> str:
    a, b = old.splitlines(), new.splitlines()
    for i, (x, y) in enumerate(zip(a, b), 1):
        if x != y:
            return f"first at line {i}"
    return f"{abs(len(a) - len(b))} lines {'more' if len(b) > len(a) else 'fewer'}"


def orphans(golden: Path, entries: list[Entry]) -> list[str]:
    """Golden names (`old.png`/`old.dot` → `old`) that no entry claims: a renamed or deleted sample."""
    if not golden.is_dir():
        return []
    names = {e.name for e in entries}
    stems = {p.stem for p in golden.iterdir() if p.suffix in (".png", ".dot")}
    return sorted(stems - names)


def clear_previous(out: Path, entries: list[Entry]) -> None:
    """Remove what an earlier run left in --out for these entries, so every file there is current."""
    for e in entries:
        for suffix in (".png", ".dot", ".diff.png"):
            (out / f"{e.name}{suffix}").unlink(missing_ok=True)


def render_job(entry: Entry, timeout: float | None) -> tuple[Entry, str | None, bytes | None, str | None]:
    """render() for a worker process: errors come back as text, since a bad entry must not stop
    the others."""
    try:
        dot_text, png = render(entry, timeout)
        return entry, dot_text, png, None
    except CgvizError as e:
        return entry, None, None, str(e)
