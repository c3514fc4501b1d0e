"""The loss backward starts from, as one value the tracer, the checker and a training loop all call.

In order of preference:
1. the loss the user gives: a function of the output (and targets), an nn.Module loss such as
   `nn.CrossEntropyLoss()` with targets, or a name (`sum`, `mean`, `mse`, `ce`);
2. the model's own: an output that carries a scalar `loss` (a Hugging Face `ModelOutput` given
   `labels=`, or a dict with a `loss` key), drawn alone;
3. the output itself when it is one number;
4. the output's sum, a fallback that says its gradients' scale means nothing.

`Loss` is the value type: `Loss(spec, targets)(out)` gives a `LossValue` (the scalar tensor and how
to describe it). `resolve(loaded, opts)` makes one from what the command line or `draw()` was given:
`--loss FUNCTION` names a function of the model file, `--loss MODULE:FUNCTION` one of a module or a
`.py` file, `--targets FILE` a tensor file read as `--input` files are (weights only).
"""

from __future__ import annotations

import inspect
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from ..core.errors import CgvizError, OptionError
from ..core.spelling import flag, keyword, on_command_line, spell

NAMES = ("sum", "mean", "mse", "ce")
# the tags of a named loss, as the JSON's `model.loss` and the picture say them
WITH_TARGETS = {"mse": "mse vs targets", "ce": "ce vs targets"}
WITHOUT_TARGETS = {"mse": "mse vs zeros", "ce": "ce vs random classes"}
FALLBACK = "sum, no loss given"     # the tag of the fallback: the output's sum, for want of anything better
TARGETS_ACCEPTS = "Give targets saved with torch.save(tensor, path) (or a tuple or dict of tensors)."


@dataclass(frozen=True)
class LossValue:
    """A computed loss: the scalar tensor backward starts from and what it is."""

    tensor: Any
    tag: str                    # the JSON's model.loss: "sum", "ce", "output", "the model's own (…)", "f(out, targets)"
    fallback: bool = False      # the output's sum because nothing better was given: its scale means nothing
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, eq=False)
class Loss:
    """What to differentiate: `spec` None (the model's own loss, else the scalar output, else the
    output's sum), a name of NAMES, a callable `f(out)` / `f(out, targets)`, or an nn.Module loss
    called on the prediction tensor (the output, or its `logits`) and the targets."""

    spec: Any = None
    targets: Any = None
    shown: str | None = None        # the --loss text it came from, for messages

    def __post_init__(self):
        check_spec(self.spec, self.targets)

    def __call__(self, out, seed: int = 0) -> LossValue:
        """The loss of one model output (`seed` draws `ce`'s random classes when there are no targets)."""
        if self.spec is None:
            return _default(out)
        if isinstance(self.spec, str):
            return _named(out, self.spec, self.targets, seed)
        return _called(out, self.spec, self.targets, self.what)

    @property
    def what(self) -> str:
        """How a message names this loss: `--loss focal` or `loss=focal_loss`."""
        if self.shown is not None:
            return spell("loss", self.shown)
        return f"{keyword('loss')}={_name(self.spec)}"

    def to(self, dtype=None, device: str | None = None) -> "Loss":
        """The same loss with its float targets cast to `dtype` and every target moved to `device`
        (as the model's inputs are cast for --dtype, --meta and the float64 finite differences)."""
        if self.targets is None:
            return self
        import torch
        from torch.utils._pytree import tree_map

        def one(t):
            if not isinstance(t, torch.Tensor):
                return t
            t = t.detach()
            if device is not None and t.device.type != device:
                t = t.to(device)
            if dtype is not None and t.is_floating_point():
                t = t.to(dtype)
            return t
        return replace(self, targets=tree_map(one, self.targets))


# ---- what a loss may be ------------------------------------------------------------------------
def check_spec(spec, targets) -> None:
    """A loss and targets that go together, or an OptionError that says what is accepted."""
    if spec is None:
        if targets is not None:
            raise OptionError(f"targets ({spell('targets', metavar='FILE')}) are compared with the output by a "
                              f"loss; give one too: {_accepted()}")
        return
    if isinstance(spec, str):
        if spec not in NAMES:
            raise OptionError(f"{spell('loss', spec)}: unknown loss name; {_accepted()}")
        if targets is not None and spec not in WITH_TARGETS:
            raise OptionError(f"{spell('loss', spec)} takes no targets; {spell('targets', metavar='FILE')} go "
                              f"with {spell('loss', 'mse')}, {spell('loss', 'ce')}, a function or a module loss")
        if targets is not None:
            _one_tensor(targets, spell("loss", spec))
        return
    import torch
    if isinstance(spec, torch.nn.Module):
        if targets is not None:
            _one_tensor(targets, f"{keyword('loss')}={_name(spec)}")
        return
    if not callable(spec):
        raise OptionError(f"{keyword('loss')}={spec!r}: a {type(spec).__name__} is not a loss; {_accepted()}")


def _accepted() -> str:
    if on_command_line():
        return (f"{flag('loss')} takes {', '.join(NAMES)}, the name of a function in the model file "
                f"(def loss(out, targets)), or MODULE:FUNCTION (losses.py:focal, torch.nn:CrossEntropyLoss)")
    return ("loss= takes a function of the output (loss=lambda out: ...; with targets=, "
            "def loss(out, targets)), an nn.Module loss with targets= (loss=nn.CrossEntropyLoss()), "
            f"or a name: {', '.join(map(repr, NAMES))}")


def how_to_give() -> str:
    """How to pass the loss one trains with, as the caller writes options."""
    if on_command_line():
        # MODULE:FUNCTION too: a model with no file of the user's (hf:gpt2) has nowhere to put a def
        return (f"{flag('loss')} FUNCTION (a def loss(out, targets) in the model file, or MODULE:FUNCTION) with "
                f"{flag('targets')} FILE, or {flag('loss')} ce|mse")
    return "loss=fn (a function of the output), or loss=nn.CrossEntropyLoss() with targets=y"


def _a_function() -> str:
    """A function loss, as the caller writes it."""
    return spell("loss", "FUNCTION") if on_command_line() else "loss=lambda out, y: ..."


def _one_tensor(targets, what: str) -> None:
    import torch
    if not isinstance(targets, torch.Tensor):
        raise OptionError(f"{what} compares the output with one tensor of targets, not a "
                          f"{type(targets).__name__}; a function loss takes targets of any structure")


def _name(fn) -> str:
    """`focal`, `lambda`, `CrossEntropyLoss()`: a loss callable as a short readable name."""
    import functools
    import torch
    if isinstance(fn, str):
        return repr(fn)
    if isinstance(fn, torch.nn.Module):
        return f"{type(fn).__name__}()"
    if isinstance(fn, functools.partial):
        fn = fn.func
    name = getattr(fn, "__name__", None) or type(fn).__name__
    return "lambda" if name == "<lambda>" else name


# ---- the model's output ------------------------------------------------------------------------
def _field(out, key: str):
    """out[key] of a mapping (a Hugging Face ModelOutput is one), else out.key, else None."""
    import torch
    from collections.abc import Mapping
    if isinstance(out, torch.Tensor):
        return None
    if isinstance(out, Mapping):
        return out.get(key)
    if isinstance(out, (tuple, list)):
        return getattr(out, key, None) if hasattr(type(out), "_fields") else None   # a namedtuple's field
    return getattr(out, key, None)


def own_loss(out):
    """(the scalar `loss` the output carries, how to name it), or None."""
    import torch
    t = _field(out, "loss")
    if not isinstance(t, torch.Tensor) or not t.is_floating_point() or t.numel() != 1:
        return None
    return t, ("out['loss']" if type(out) is dict else f"{type(out).__name__}.loss")


def prediction(out) -> tuple[list, str]:
    """The tensors a named or module loss compares: the output itself, its `logits`, or else its float
    tensors other than the model's own loss (a cache of keys and values is no prediction)."""
    import torch

    from .inputs import flat_tensors
    if isinstance(out, torch.Tensor):
        return [out], "out"
    logits = _field(out, "logits")
    if isinstance(logits, torch.Tensor) and logits.is_floating_point():
        return [logits], "out.logits"
    own = _field(out, "loss")
    floats = [t for t in flat_tensors(out) if t.is_floating_point() and t is not own]
    return floats, "out"


def _default(out) -> LossValue:
    from .inputs import flat_tensors
    found = own_loss(out)
    if found is not None:
        t, name = found
        return LossValue(t if t.dim() == 0 else t.reshape(()), f"the model's own ({name})")
    notes = []
    own = _field(out, "loss")
    if own is not None and getattr(own, "shape", None) is not None:
        notes.append(f"the output's `loss` is [{'×'.join(map(str, own.shape))}], not one number, so it is not "
                     f"the loss drawn; give the one you train with: {how_to_give()}")
    preds, _ = prediction(out)
    if not preds:
        floats = [t for t in flat_tensors(out) if t.is_floating_point()]
        if not floats:
            raise CgvizError("the model's output holds no floating-point tensor, so there is no loss to take "
                             "the gradient of")
        preds = floats
    if len(preds) == 1 and preds[0].numel() == 1:
        t = preds[0]
        return LossValue(t if t.dim() == 0 else t.reshape(()), "output", notes=tuple(notes))
    total = _sum(t.sum() for t in preds)
    return LossValue(total, FALLBACK, fallback=True, notes=tuple(notes))


def _sum(terms):
    terms = list(terms)
    total = terms[0]
    for t in terms[1:]:
        total = total + t
    return total


# ---- the names -----------------------------------------------------------------------------------
def _named(out, kind: str, targets, seed: int) -> LossValue:
    import torch
    import torch.nn.functional as F
    preds, what = prediction(out)
    if not preds:
        raise CgvizError("the model's output holds no floating-point tensor, so there is no loss to take "
                         "the gradient of")
    if targets is not None:
        if len(preds) != 1:
            raise CgvizError(f"{spell('loss', kind)} with {spell('targets', metavar='FILE')} compares one tensor "
                             f"with the targets, but the output holds {len(preds)} float tensors; say which with a "
                             f"function: {_a_function()}")
        pred = preds[0]
        if kind == "mse":
            if tuple(pred.shape) != tuple(targets.shape):
                raise CgvizError(f"{spell('loss', 'mse')}: the prediction {what} is {_shape(pred)} and the targets "
                                 f"{_shape(targets)}; they must have the same shape")
            return LossValue(F.mse_loss(pred, targets.to(pred.dtype)), WITH_TARGETS[kind])
        return LossValue(_ce(pred, targets, what), WITH_TARGETS[kind])
    g = torch.Generator().manual_seed(seed + 1)
    terms = []
    for t in preds:
        if kind == "sum":
            terms.append(t.sum())
        elif kind == "mean":
            terms.append(t.mean())
        elif kind == "mse":
            terms.append(F.mse_loss(t, torch.zeros_like(t)))
        else:
            if t.dim() == 0:
                raise CgvizError(f"{spell('loss', 'ce')} needs class scores (an output with a class dimension), "
                                 "but the output is a scalar")
            logits = t.reshape(-1, t.shape[-1])   # classes on the last dimension, as LM heads have them
            if t.device.type == "meta":
                target = torch.zeros(logits.shape[0], dtype=torch.long, device="meta")
            else:
                target = torch.randint(0, t.shape[-1], (logits.shape[0],), generator=g)
            terms.append(F.cross_entropy(logits, target))
    return LossValue(_sum(terms), kind)


def _ce(pred, targets, what: str):
    """Cross-entropy of class scores against class indices (or probabilities of the same shape):
    classes on the last dimension (an LM head's [B×T×V] against [B×T]), else on dimension 1 as
    PyTorch's F.cross_entropy takes them ([N×C×H×W] against [N×H×W])."""
    import torch.nn.functional as F
    shape, tshape = tuple(pred.shape), tuple(targets.shape)
    if pred.dim() == 0:
        raise CgvizError(f"{spell('loss', 'ce')} needs class scores (an output with a class dimension), but the "
                         "output is a scalar")
    if not targets.is_floating_point():
        if tshape == shape[:-1]:
            return F.cross_entropy(pred.reshape(-1, shape[-1]), targets.reshape(-1).long())
        if pred.dim() >= 2 and tshape == shape[:1] + shape[2:]:
            return F.cross_entropy(pred, targets.long())
    elif tshape == shape:                   # class probabilities
        return F.cross_entropy(pred.reshape(-1, shape[-1]), targets.reshape(-1, shape[-1]).to(pred.dtype))
    raise CgvizError(f"{spell('loss', 'ce')}: the class scores {what} are {_shape(pred)} and the targets "
                     f"{_shape(targets)} {str(targets.dtype).replace('torch.', '')}; give class indices shaped "
                     f"like the scores without their last dimension ({_shape(shape[:-1])}), or class "
                     f"probabilities of the scores' shape")


def _shape(t) -> str:
    dims = t if isinstance(t, tuple) else tuple(t.shape)
    return "[" + "×".join(map(str, dims)) + "]"


# ---- functions and module losses -----------------------------------------------------------------
def _positional(fn) -> tuple[int, float]:
    """(required, accepted) positional parameters of fn; (0, inf) when Python cannot tell."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return 0, math.inf
    required, accepted = 0, 0.0
    for p in sig.parameters.values():
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            accepted += 1
            required += p.default is p.empty
        elif p.kind == p.VAR_POSITIONAL:
            accepted = math.inf
    return required, accepted


def _called(out, fn, targets, what: str) -> LossValue:
    import torch
    module = isinstance(fn, torch.nn.Module)
    name = _name(fn)
    callname = type(fn).__name__ if module else name      # CrossEntropyLoss(out, targets), focal(out, targets)
    if module:
        preds, pname = prediction(out)
        if len(preds) != 1:
            raise CgvizError(f"{what} is called on one prediction tensor, but the output holds {len(preds)} float "
                             f"tensors; say which with a function: {_a_function()}")
        arg, argname = preds[0], pname
    else:
        arg, argname = out, "out"
    required, accepted = _positional(fn)
    if targets is None and required >= 2:
        raise OptionError(f"{what} takes targets ({name} has {required} required arguments); give them with "
                          f"{spell('targets', metavar='FILE')}")
    if targets is not None and accepted < 2:
        raise OptionError(f"{what} takes only the output, but targets were given ({spell('targets', metavar='FILE')}); "
                          f"write it as def {name if name.isidentifier() else 'loss'}(out, targets), or leave the "
                          "targets out")
    from .load import user_frame
    try:
        value = fn(arg, targets) if targets is not None else fn(arg)
    except CgvizError:
        raise
    except Exception as e:
        text = (str(e).strip().splitlines() or [""])[0][:300]
        hint = ""
        if module and targets is not None and _shape_trouble(text):
            hint = (f". It was called as {callname}({argname} {_shape(arg)}, targets {_shape(targets)}), as PyTorch "
                    "calls it; to reshape first (an LM's classes on the last dimension), use a function: "
                    + (f"{_a_function()} with def loss(out, targets) in the model file" if on_command_line() else
                       "loss=lambda out, y: F.cross_entropy(out.logits.flatten(0, 1), y.flatten())"))
        raise CgvizError(f"{what} failed: {type(e).__name__}: {text}{user_frame(e)}{hint}") from None
    tensor = checked_scalar(value, what)
    args = f"{argname}, targets" if targets is not None else argname
    return LossValue(tensor, f"{callname}({args})")


def _shape_trouble(text: str) -> bool:
    import re
    return bool(re.search(r"shape|size|dimension|batch|target", text, re.I))


def checked_scalar(value, what: str):
    """The loss a function returned, as a 0-d float tensor, or a message saying what is wrong with it."""
    import torch
    if not isinstance(value, torch.Tensor):
        shown = f"the number {value!r}" if isinstance(value, (int, float)) else f"a {type(value).__name__}"
        hint = " (.item() or float() turn a loss into a number that has no gradient)" if isinstance(value, float) else ""
        raise CgvizError(f"{what} returned {shown}, not a tensor{hint}; a loss is a scalar tensor computed from "
                         "the output, e.g. F.cross_entropy(out, targets)")
    if value.numel() != 1:
        raise CgvizError(f"{what} returned a tensor of shape {_shape(value)}, not one number; reduce it (.mean() "
                         "or .sum(), or reduction='mean' for a module loss)")
    if not (value.is_floating_point() or value.is_complex()):
        raise CgvizError(f"{what} returned a {str(value.dtype).replace('torch.', '')} tensor; a loss is a "
                         "floating-point number")
    return value if value.dim() == 0 else value.reshape(())


def check_connected(value: LossValue, out, what: str) -> None:
    """A loss backward can start from: it depends on something that gets a gradient (the output,
    the parameters). A function that detached the output, or rebuilt the loss from .item(), has none."""
    from .inputs import flat_tensors
    t = value.tensor
    if t.requires_grad and t.grad_fn is not None:
        return
    if not any(x.requires_grad for x in flat_tensors(out)):
        raise CgvizError("the output does not depend on any parameter or input that needs a gradient (is the "
                         "model's forward under torch.no_grad?)")
    why = ("it is a new tensor, not computed from the output" if t.requires_grad else
           "it has no gradient path back to the output (computed from .detach(), .item() or under torch.no_grad?)")
    raise CgvizError(f"{what}: the loss is not connected to the model's graph: {why}; compute it from the "
                     "output with torch operations")


# ---- from the command line (and draw()'s strings) ---------------------------------------------------
def resolve(loaded, opts) -> Loss:
    """The Loss a run uses, from TraceOptions: `loss` (None, a Loss, a name, a function name, MODULE:FUNCTION,
    a callable or an nn.Module), `targets` (tensors) or `targets_file` (a .pt file), cast as the inputs are."""
    spec = opts.loss
    if isinstance(spec, Loss):
        return spec
    targets = getattr(opts, "targets", None)
    path = getattr(opts, "targets_file", None)
    if path is not None:
        if targets is not None:
            raise OptionError("give targets as tensors or as a file, not both")
        targets = load_targets(path)
    shown = None
    if isinstance(spec, str) and spec not in NAMES:
        shown = spec
        spec = function_named(spec, loaded)
    import torch
    loss = Loss(spec, targets, shown)
    return loss.to(getattr(torch, opts.dtype) if opts.dtype else None, "meta" if opts.meta else None)


def load_targets(path: str):
    """`--targets FILE`: a tensor, or a tuple/list/dict of them, read with weights_only (never code)."""
    import torch

    from .inputs import flat_tensors, read_tensors
    obj = read_tensors(path, "targets", "targets", TARGETS_ACCEPTS, "the targets with torch.save(tensor, path)")
    from torch.utils._pytree import tree_flatten
    leaves = tree_flatten(obj)[0]
    if not flat_tensors(obj) or any(not isinstance(x, (torch.Tensor, int, float, bool)) for x in leaves):
        raise CgvizError(f"{spell('targets', path)} holds a {type(obj).__name__}; {TARGETS_ACCEPTS}")
    return tuple(obj) if isinstance(obj, list) else obj


def function_named(text: str, loaded) -> Any:
    """`focal` (a function of the model file), `losses.py:focal` or `pkg.losses:focal` (a module's; a
    class such as torch.nn:CrossEntropyLoss is made with no arguments) → the callable."""
    import torch
    head, sep, name = text.rpartition(":")
    where: str
    if not sep:
        ns = getattr(loaded, "namespace", None)
        if ns is None:
            raise OptionError(f"{spell('loss', text)} names a function of a Python model file, and "
                              f"{loaded.path} is a {loaded.description}"
                              + (f"; name a module's function with {spell('loss', 'MODULE:FUNCTION')}"
                                 if on_command_line() else "; pass the function itself: loss=fn"))
        if text not in ns:
            funcs = sorted(k for k, v in ns.items() if callable(v) and not isinstance(v, type)
                           and getattr(v, "__module__", None) == "cgviz_model" and not k.startswith("_"))
            raise OptionError(f"{spell('loss', text)}: {loaded.path} defines no {text!r}"
                              + (f"; its functions: {', '.join(funcs)}" if funcs else "")
                              + f". {_accepted()}")
        obj, where = ns[text], f"{loaded.path}"
    else:
        obj, where = _from_module(text, head, name), head
    if isinstance(obj, type) and issubclass(obj, torch.nn.Module):
        try:
            obj = obj()
        except Exception as e:
            raise CgvizError(f"{spell('loss', text)}: {obj.__name__}() failed ({type(e).__name__}: "
                             f"{(str(e).splitlines() or [''])[0][:200]}); a class is made with no arguments, so "
                             "for others write a function that makes it") from None
    elif isinstance(obj, type) or not callable(obj):
        raise OptionError(f"{spell('loss', text)}: {name or text} in {where} is a {type(obj).__name__}, not a "
                          "function or an nn.Module loss class")
    return obj


def _from_module(text: str, head: str, name: str):
    import importlib
    import runpy
    if head.endswith(".py"):
        from .load import _sys_path, _user_code
        from ..core.paths import check_input
        path = Path(head)
        check_input(path, spell("loss"), kind="a Python file of losses",
                    accepts=f"{flag('loss') if on_command_line() else 'loss='} MODULE:FUNCTION takes a .py file or "
                            "an importable module, then the function's name: losses.py:focal")
        with _sys_path(path.resolve().parent), _user_code(path, "running"):
            ns = runpy.run_path(str(path), run_name="cgviz_loss")
        if name not in ns:
            raise OptionError(f"{spell('loss', text)}: {head} defines no {name!r}")
        return ns[name]
    from .load import _sys_path
    try:
        with _sys_path(Path.cwd()):
            mod = importlib.import_module(head)
    except Exception as e:
        raise CgvizError(f"{spell('loss', text)}: could not import {head} ({type(e).__name__}: "
                         f"{(str(e).splitlines() or [''])[0][:200]})") from None
    if not hasattr(mod, name):
        raise OptionError(f"{spell('loss', text)}: module {head} has no {name!r}")
    return getattr(mod, name)


# ---- how the picture says it -------------------------------------------------------------------
def title_text(tag: str, value: float | None) -> str:
    """`loss (ce vs targets) = 2.3`, `loss: the model's own (CausalLMOutput.loss) = 4.6`."""
    from ..core.fmt import num
    shown = "" if value is None else f" = {num(value)}"
    tag = WITHOUT_TARGETS.get(tag, tag)
    return f"loss ({tag}){shown}" if short(tag) else f"loss: {tag}{shown}"


def fallback_caveat() -> str:
    """What the picture and the notes say when backward starts from the output's sum."""
    return ("no loss given: backward starts from the output's sum, whose scale makes the gradients' sizes "
            f"meaningless; give the loss you train with: {how_to_give()}")


def short(tag: str) -> bool:
    """A tag that reads well in parentheses (`sum`, `ce vs targets`); a function's or the model's own reads
    `loss: …`."""
    return (tag in NAMES or tag in ("output", FALLBACK) or tag in WITH_TARGETS.values()
            or tag in WITHOUT_TARGETS.values())
