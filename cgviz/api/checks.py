"""Option checks every call shares: values by their one definition (cgviz.api.options), and combinations that do not fit."""

from __future__ import annotations

import os

from ..core.errors import CgvizError, OptionError
from ..core.spelling import flag, keyword, on_command_line, spell


def _checked(caller: str, **values) -> dict:
    """Option values checked by their one definition (cgviz.api.options), the errors in the caller's words."""
    return {key: None if value is None else _converted(key, value, caller) for key, value in values.items()}


def _converted(key: str, value, caller: str = "draw"):
    if key == "loss" and not isinstance(value, str):
        return value            # a function or an nn.Module loss: cgviz.pytorch.loss checks it
    from .options import OPTIONS
    try:
        return OPTIONS[key].convert(value)
    except Exception as e:          # click.BadParameter
        raise CgvizError(f"{caller}(): {key}={value!r}: {getattr(e, 'message', e)}") from None


def check_step(lr: float | None, clip_norm: float | None, grad: bool) -> None:
    """The learning-rate step's options fit together (the command line and draw() check them)."""
    name = flag if on_command_line() else keyword
    if lr is not None and not grad:
        fix = f"leave out {flag('no_grad')}" if on_command_line() else "leave grad=True"
        raise OptionError(f"{name('lr')} needs gradients; {fix}")
    if clip_norm is not None and lr is None:
        raise OptionError(f"{name('clip_norm')} clips the step {name('lr')} takes; give {name('lr')} too")


def check_thresholds(vanish: float, explode: float) -> None:
    """The gradient-health thresholds in order (the command line and every call here check them)."""
    if not vanish < explode:
        raise OptionError(f"{spell('vanish', f'{vanish:g}')} must be smaller than {spell('explode', f'{explode:g}')}")


def _refuse_model_options(source, **given) -> None:
    """Model options given with an expression program: a usage mistake, said by name, not ignored."""
    named = [spell(key) for key, value in given.items() if value]
    if named:
        raise OptionError(f"{', '.join(named)} appl{'ies' if len(named) == 1 else 'y'} to a model; "
                          f"{source} is an expression file")


def _check_targets_file(targets) -> None:
    """A targets file is a regular file, said before torch is imported (as check_model_files says it of
    the model, --input and --weights)."""
    if isinstance(targets, (str, os.PathLike)):
        from ..core.paths import check_input
        from ..pytorch.loss import TARGETS_ACCEPTS
        check_input(os.fspath(targets), spell("targets"), kind="targets", accepts=TARGETS_ACCEPTS)
