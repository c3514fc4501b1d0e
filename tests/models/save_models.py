"""Save every zoo model in each format `cgviz torch` meets, plus a few broken files for error tests.

    .venv/bin/python tests/models/save_models.py OUTDIR

For each model NAME in zoo.MODELS it writes
    NAME.pt2        torch.export program (torch.export.save)
    NAME.ts         TorchScript archive (torch.jit.script; torch.jit.trace as a fallback)
    NAME.pkl.pt     the whole pickled module (torch.save(model)), classes recorded as `zoo.X`
    NAME.state.pt   its state_dict
    NAME.inputs.pt  its example inputs, readable with torch.load(weights_only=True)
and the broken files random.bin, truncated.pt2, empty.pt and notes.txt. A format that cannot be
written for a model is left out of the returned dict and listed in manifest.json's "failures".
"""

from __future__ import annotations

import json
import random
import sys
import warnings
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
# Import zoo as the top-level module `zoo` (not tests.models.zoo): torch.save(model) records each
# class by its module's name, and a loader finds it again with just this folder on sys.path.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import zoo  # noqa: E402

FORMATS = ("pt2", "ts", "pkl", "state", "inputs")
SUFFIX = {"pt2": ".pt2", "ts": ".ts", "pkl": ".pkl.pt", "state": ".state.pt", "inputs": ".inputs.pt"}
BROKEN = "broken"      # the key of the broken files in save_all's result: {"random": path, ...}


def _export(model, args, path: Path) -> None:
    """torch.export, strict (TorchDynamo) first; non-strict (plain Python tracing) if that fails."""
    try:
        ep = torch.export.export(model, args)
    except Exception:
        ep = torch.export.export(model, args, strict=False)
    torch.export.save(ep, path)


def _script(model, args, path: Path) -> str:
    """TorchScript by scripting (keeps the Python loops as loops); tracing only if scripting fails.

    Returns how it was made. trace(strict=False) lets a traced module return dicts and lists, but
    tracing still rejects a None in the output, so DictTuple relies on scripting (which works)."""
    with warnings.catch_warnings():
        # torch 2.13 deprecates TorchScript, but cgviz must still read the archives people have.
        warnings.simplefilter("ignore", DeprecationWarning)
        try:
            sm = torch.jit.script(model)
            how = "script"
        except Exception:
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            sm = torch.jit.trace(model, args, strict=False)
            how = "trace"
        torch.jit.save(sm, str(path))
    return how


def _broken(outdir: Path, pt2: Path | None) -> dict[str, Path]:
    """Files no loader should accept: random bytes, half a zip archive, nothing, plain text."""
    files = {"random": outdir / "random.bin", "truncated": outdir / "truncated.pt2",
             "empty": outdir / "empty.pt", "text": outdir / "notes.txt"}
    files["random"].write_bytes(random.Random(0).randbytes(4096))
    if pt2 is not None:
        data = pt2.read_bytes()
        files["truncated"].write_bytes(data[: len(data) // 2])
    else:  # mlp.pt2 is always written today; keep the key meaningful if that ever changes
        files["truncated"].write_bytes(b"PK\x03\x04" + b"\0" * 60)
    files["empty"].write_bytes(b"")
    files["text"].write_text("These are notes about a model, not a model.\nlr = 3e-4, epochs = 10\n")
    return files


def save_all(outdir) -> dict[str, dict[str, Path]]:
    """Write every model in every format into outdir: {model name: {format: path}} (+ "broken").

    Formats: pt2, ts, pkl, state, inputs (see the module docstring). Failures are listed in
    outdir/manifest.json with the error, and their format is missing from the model's dict."""
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    result: dict[str, dict[str, Path]] = {}
    failures: dict[str, dict[str, str]] = {}
    notes: dict[str, dict[str, str]] = {}
    for name, (factory, make_inputs) in zoo.MODELS.items():
        model, args = factory(), make_inputs()
        paths = {fmt: outdir / f"{name}{SUFFIX[fmt]}" for fmt in FORMATS}
        writers = {
            "pt2": lambda p: _export(model, args, p),
            "ts": lambda p: notes.setdefault(name, {}).__setitem__("ts", _script(model, args, p)),
            "pkl": lambda p: torch.save(model, p),
            "state": lambda p: torch.save(model.state_dict(), p),
            "inputs": lambda p: torch.save(args, p),
        }
        result[name] = {}
        for fmt, write in writers.items():
            try:
                write(paths[fmt])
            except Exception as e:  # recorded, not raised: one model's failure must not hide the rest
                failures.setdefault(name, {})[fmt] = f"{type(e).__name__}: {e}".splitlines()[0]
                paths[fmt].unlink(missing_ok=True)
            else:
                result[name][fmt] = paths[fmt]
    result[BROKEN] = _broken(outdir, result.get("mlp", {}).get("pt2"))
    manifest = {"models": {n: {f: p.name for f, p in d.items()} for n, d in result.items()},
                "failures": failures, "torchscript": notes, "torch": torch.__version__}
    (outdir / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return result


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    result = save_all(argv[0])
    failures = json.loads((Path(argv[0]) / "manifest.json").read_text())["failures"]
    for name, files in result.items():
        print(f"{name:10s} " + " ".join(sorted(p.name for p in files.values())))
    for name, fails in failures.items():
        for fmt, err in fails.items():
            print(f"FAILED {name} {fmt}: {err}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
