"""One definition of each option: its type, range and help, read by the command line and by snapshot manifests.

A manifest entry says `depth = 2` where the command line says `--depth 2`; both go through the same
`Opt.convert`, so a value the command line refuses is refused in a manifest too, with the same words.
Numbers are checked here once: finite, in range, and with an upper bound wherever a huge value
would mean hours of work (or an overflow deep inside a library, which used to be an internal error).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import click

from ..diagnose.health import EXPLODE, VANISH
from ..view.graphviz import DEFAULT_TIMEOUT

MAX_TIMEOUT = 86_400.0          # a day: past that a Graphviz layout is not going to finish
MAX_SEED = 2**63 - 1            # torch.manual_seed takes a 64-bit integer
MAX_ELEMENTS_CAP = 10**12       # 8 TB of float64: beyond any machine, so beyond any sensible limit


class Number(click.ParamType):
    """A finite number in a range: nan, inf and out-of-range values are usage errors that say the range.

    click's FloatRange lets nan through (every comparison with nan is false), which is how
    `--rtol nan` used to pass as "ok" and `--timeout nan` reached Graphviz."""

    def __init__(self, whole: bool = False, min: float | None = None, max: float | None = None,
                 min_open: bool = False):
        self.whole, self.min, self.max, self.min_open = whole, min, max, min_open
        self.name = "integer" if whole else "number"

    def describe(self) -> str:
        lo = "" if self.min is None else (f"above {self.min:g}" if self.min_open else f"at least {self.min:g}")
        hi = "" if self.max is None else f"at most {self.max:,}" if self.whole else f"at most {self.max:g}"
        what = "a whole number" if self.whole else ("a positive number" if self.min == 0 and self.min_open
                                                    else "a number")
        rng = " and ".join(p for p in (lo if not (self.min == 0 and self.min_open) else "", hi) if p)
        return f"{what}{' ' + rng if rng else ''}"

    def convert(self, value: Any, param, ctx):
        if isinstance(value, bool):         # TOML true is not 1
            self.fail(f"must be {self.describe()}, got {value!r}", param, ctx)
        shown = value if not isinstance(value, str) else value.strip()
        if isinstance(shown, str) and len(shown) > 40:
            shown = shown[:20] + "…" + shown[-8:]
        try:
            if self.whole:
                if isinstance(value, float):
                    if not value.is_integer():
                        raise ValueError
                    number: float = int(value)
                elif isinstance(value, int):
                    number = value
                else:
                    text = str(value).strip().replace("_", "")
                    if len(text) > 40:      # int() of a 5000-digit string is slow and pointless
                        raise OverflowError
                    number = int(text)
            else:
                text = value if isinstance(value, (int, float)) else str(value).strip()
                if isinstance(text, str) and len(text) > 60:
                    raise OverflowError
                number = float(text)
        except OverflowError:
            self.fail(f"must be {self.describe()}, got {shown} (far too large)", param, ctx)
        except (TypeError, ValueError):
            self.fail(f"must be {self.describe()}, got {shown!r}", param, ctx)
        if not self.whole and not math.isfinite(number):
            self.fail(f"must be {self.describe()}, got {number}", param, ctx)
        too_low = self.min is not None and (number <= self.min if self.min_open else number < self.min)
        too_high = self.max is not None and number > self.max
        if too_low or too_high:
            self.fail(f"must be {self.describe()}, got {shown}", param, ctx)
        return number


def positive(max: float | None = None) -> Number:
    return Number(min=0, min_open=True, max=max)


def whole(min: int = 1, max: int | None = None) -> Number:
    return Number(whole=True, min=min, max=max)


class Bool(click.ParamType):
    """A manifest's true/false (the command line spells these as flags)."""

    name = "boolean"

    def convert(self, value, param, ctx):
        if not isinstance(value, bool):
            self.fail(f"must be true or false, got {value!r}", param, ctx)
        return value


class Text(click.ParamType):
    """A manifest's string (a path or a NAME=VALUE table's value)."""

    name = "text"

    def convert(self, value, param, ctx):
        if not isinstance(value, str) or not value or "\x00" in value:
            self.fail(f"must be a non-empty string, got {value!r}", param, ctx)
        return value


@dataclass(frozen=True)
class Opt:
    """An option: the click declarations, and the type both the command line and a manifest check values with.

    `manifest_type` stands in where the command line spells the option differently (a flag on the
    command line is true/false in a manifest; --train/--eval is `mode = "train"`)."""

    decls: tuple[str, ...]
    type: Any
    help: str
    kwargs: dict = field(default_factory=dict)
    manifest_type: Any = None

    def option(self, **overrides):
        """The click decorator for this option."""
        kw = {"help": self.help, **self.kwargs, **overrides}
        if not kw.get("is_flag"):
            kw.setdefault("type", self.type)
        return click.option(*self.decls, **kw)

    def convert(self, value: Any) -> Any:
        """A manifest's value, checked as the command line checks it; click.BadParameter says what is wrong."""
        t = self.manifest_type or self.type
        if isinstance(t, click.Choice):
            if not isinstance(value, str):
                raise click.BadParameter(f"must be one of {', '.join(map(repr, t.choices))}, got {value!r}")
            return t.convert(value, None, None)
        return t.convert(value, None, None)


class LossText(click.ParamType):
    """--loss: a name (sum, mean, mse, ce), a function of the model file (`loss`), or MODULE:FUNCTION
    (`losses.py:focal`, `torch.nn:CrossEntropyLoss`); cgviz.pytorch.loss resolves it once the model is loaded."""

    name = "loss"
    NAMES = ("sum", "mean", "mse", "ce")

    def convert(self, value, param, ctx):
        if not isinstance(value, str):
            self.fail(f"must be a string, got {value!r}", param, ctx)
        text = value.strip()
        head, sep, func = text.rpartition(":")
        module_ok = head.endswith(".py") or all(p.isidentifier() for p in head.split("."))
        if text in self.NAMES or (not sep and text.isidentifier()) or (sep and head and module_ok and func.isidentifier()):
            return text
        self.fail(f"must be {', '.join(self.NAMES)}, the name of a function in the model file (def loss(out, "
                  f"targets)), or MODULE:FUNCTION (losses.py:focal, torch.nn:CrossEntropyLoss); got {value!r}",
                  param, ctx)


_DTYPES = click.Choice(["float32", "float64", "float16", "bfloat16"])
_RANKDIR = click.Choice(["LR", "TB"], case_sensitive=False)

# Every option that takes a number or is shared with manifests, by the name a manifest uses.
OPTIONS: dict[str, Opt] = {
    "timeout": Opt(("--timeout",), positive(MAX_TIMEOUT), "Give up on Graphviz's layout after this long.",
                   {"default": DEFAULT_TIMEOUT, "show_default": True, "metavar": "SECONDS"}),
    "dpi": Opt(("--dpi",), positive(1200.0),
               "PNG resolution in dots per inch [default: Graphviz's 96, lowered for a big drawing so the "
               "PNG stays within 40 Mpx and 16,000 px a side; SVG, PDF and HTML are never scaled].",
               {"default": None, "metavar": "N"}),
    "max_elements": Opt(("--max-elements",), whole(1, MAX_ELEMENTS_CAP),
                        "Refuse a program whose tensors (values and gradients together) would hold more "
                        "elements than this, or a model input that big, before allocating them "
                        "[default: 50,000,000, about 400 MB].", {"default": None, "metavar": "N"}),
    "lr": Opt(("--lr",), positive(), "The learning rate η of w ← w − η · ∂L/∂w.", {"metavar": "RATE"}),
    "clip_norm": Opt(("--clip-norm",), positive(),
                     "Clip the params' gradients to global norm C first (as clip_grad_norm_).", {"metavar": "C"}),
    "steps": Opt(("--steps",), whole(1, 1_000_000), "How many steps of gradient descent.",
                 {"default": 100, "show_default": True, "metavar": "N"}),
    "vanish": Opt(("--vanish",), positive(),
                  "Flag a gradient as vanishing below T (params: ‖g‖/‖w‖; inputs and zero params: ‖g‖).",
                  {"default": VANISH, "show_default": True, "metavar": "T"}),
    "explode": Opt(("--explode",), positive(),
                   "Flag a gradient as exploding above T (params: ‖g‖/‖w‖; inputs and zero params: ‖g‖).",
                   {"default": EXPLODE, "show_default": True, "metavar": "T"}),
    "seed": Opt(("--seed",), Number(whole=True, min=0, max=MAX_SEED),
                "Seeds random inputs, ce targets and dropout.", {"default": 0, "show_default": True}),
    "depth": Opt(("--depth",), whole(1, 1000),
                 "Draw every module nested deeper than N as one box [default: the deepest level whose "
                 "layout fits the picture budget (nodes, edges, labels, frames); for a PNG, the deepest "
                 "whose picture stays within 5 Mpx at 96 dpi].", {"metavar": "N"}),   # budget.PNG_OVERVIEW_PIXELS
    "focus": Opt(("--focus",), Text(), "Draw only the inside of this module (layers.3.self_attn) at full detail, "
                 "with a stub for each tensor entering or leaving it, named after its producer or consumer "
                 "outside; a ×N block's member (layers.7) shows that block's numbers. --depth then counts "
                 "from this module.", {"metavar": "MODULE"}),
    "profile_runs": Opt(("--profile-runs",), whole(1, 1000),
                        "With --profile: average N measured passes [default: 1].", {"metavar": "N"}),
    "profile_top": Opt(("--top", "profile_top"), whole(1, 100_000),
                       "With --profile: rows in the table [default: 10].", {"metavar": "N"}),
    "jobs": Opt(("-j", "--jobs"), whole(1, 256), "Render in N parallel processes.",
                {"default": 1, "show_default": True, "metavar": "N"}),
    "tolerance": Opt(("--tolerance",), Number(min=0, max=1),
                     "Share of pixels that may differ before the PNG counts as changed.",
                     {"default": 0.001, "show_default": True, "metavar": "T"}),
    "threshold": Opt(("--threshold",), Number(whole=True, min=0, max=255),
                     "A pixel differs when a colour channel moves by more than N (of 255).",
                     {"default": 48, "show_default": True, "metavar": "N"}),
    "rtol": Opt(("--rtol",), Number(min=0, max=1e6), "Relative tolerance against PyTorch autograd.",
                {"default": 1e-5, "show_default": True}),
    "atol": Opt(("--atol",), Number(min=0, max=1e300), "Absolute tolerance against PyTorch autograd.",
                {"default": 1e-8, "show_default": True}),
    "fd_rtol": Opt(("--fd-rtol",), Number(min=0, max=1e6), "Relative tolerance against finite differences.",
                   {"default": 1e-4, "show_default": True}),
    "fd_atol": Opt(("--fd-atol",), Number(min=0, max=1e300), "Absolute tolerance against finite differences.",
                   {"default": 1e-6, "show_default": True}),
    "fd_samples": Opt(("--fd-samples",), whole(1, 10_000_000),
                      "Finite differences at most N elements per tensor, the same ones every run "
                      "[default: 64 for an expression file, 16 for a model].", {"default": None, "metavar": "N"}),
    # the options a manifest entry shares with `render` and `torch`
    "rankdir": Opt(("--rankdir",), _RANKDIR, "Layout direction: left to right, or top to bottom.",
                   {"show_default": True}),
    "no_grad": Opt(("--no-grad",), Bool(), "Forward graph only: no backward pass, no red edges.",
                   {"is_flag": True}),
    "dtype": Opt(("--dtype",), _DTYPES, "Cast the model and its float inputs first."),
    "loss": Opt(("--loss",), LossText(),
                "What backward starts from: sum, mean, mse or ce; FUNCTION, a def FUNCTION(out, targets) in "
                "the model file; or MODULE:FUNCTION (losses.py:focal, torch.nn:CrossEntropyLoss, a class made "
                "with no arguments). With --targets, mse and ce compare the output with them; without, mse is "
                "against zeros and ce against random classes [default: the model's own loss (out.loss), else "
                "its output if a scalar, else its sum].", {"metavar": "LOSS"}),
    "targets": Opt(("--targets", "targets_file"), Text(), "Targets saved with torch.save (a tensor, or a tuple or "
                   "dict of them; read with weights_only), which --loss compares the output with.",
                   {"metavar": "FILE"}),
    "view": Opt(("--view",), click.Choice(["ops", "autograd"]),
                "ops: the forward ops as they ran, in module clusters; autograd: the backward "
                "graph of grad_fn nodes, as torchviz draws it.", {"default": "ops", "show_default": True}),
    "no_fold": Opt(("--no-fold",), Bool(), "Draw repeated identical blocks and loop steps one by one.",
                   {"is_flag": True}),
    "no_simplify": Opt(("--no-simplify",), Bool(), "Draw pass-through ops too (eval-mode dropout, a .to() or view "
                       "that changes nothing), which the picture otherwise leaves out.", {"is_flag": True}),
    "meta": Opt(("--meta",), Bool(), "Trace on the meta device: shapes, structure and parameter counts of a "
                "model too big to run, without values or gradients.", {"is_flag": True}),
    "trust": Opt(("--trust",), Bool(), "Allow loading a pickled nn.Module (torch.save(model)); this runs "
                 "code from the file.", {"is_flag": True}),
    "download": Opt(("--download",), Bool(), "Let a Hugging Face model (hf:ORG/NAME) missing from the local "
                    "cache be downloaded from the Hub (never while HF_HUB_OFFLINE=1).", {"is_flag": True}),
    "mode": Opt(("--train/--eval", "mode"), None, "Run in training or evaluation mode [default: as saved].",
                {"default": None}, manifest_type=click.Choice(["train", "eval"])),
    "input": Opt(("--input", "input_file"), Text(), "Inputs saved with torch.save: a tensor, a tuple of "
                 "tensors or a dict (read with weights_only).", {"metavar": "FILE"}),
    "imports": Opt(("--import", "imports"), Text(), "Import this Python module first (from the current folder or "
                   "the installed packages), e.g. the package that registers a .pt2 program's output classes: "
                   "--import transformers. Repeatable; it runs that module's code.",
                   {"multiple": True, "metavar": "MODULE"}),
    "weights": Opt(("--weights",), Text(), "A state_dict to load into the model a Python file defines.",
                   {"metavar": "STATE.pt"}),
}


# `render` and `train` choose the direction from the graph's shape unless told (cgviz.view.expression_scene.auto_rankdir)
AUTO_RANKDIR_HELP = ("Layout direction: left to right, or top to bottom [default: TB when the graph is much "
                     "deeper than wide, a long chain of layers; else LR].")


def parse_sets(sets) -> dict[str, str]:
    """`NAME=VALUE` items (--set, or a manifest's `set` table) → {name: value text}."""
    out: dict[str, str] = {}
    for item in sets:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name or not value.strip():
            raise click.UsageError(f"--set takes NAME=VALUE (for example --set w=0.1), got {item!r}")
        if name in out:
            raise click.UsageError(f"--set {name} is given twice")
        out[name] = value
    return out


def option(key: str, **overrides):
    """The click decorator of OPTIONS[key], with per-command overrides (a default, a help text)."""
    return OPTIONS[key].option(**overrides)
