"""Every numeric option of every command refuses nan, inf, out-of-range and huge values as a usage
error (exit 2) that names the option, found by walking the commands, so a new option is covered too."""

from __future__ import annotations

import click
import pytest

from cgviz.cli import main
from cgviz.api.options import OPTIONS, Number
from conftest import ROOT

PIZZA = str(ROOT / "sample_graphs" / "pizza.cg")
HOSTILE = ["nan", "inf", "-inf", "0", "-5", "1e300", "1e23", "123456789012345678901234567890", "9" * 5000, "abc", ""]


def _numeric_options():
    for name, cmd in sorted(main.commands.items()):
        for p in cmd.params:
            if isinstance(p, click.Option) and isinstance(p.type, Number):
                yield name, p


def _valid(t: Number, value: str) -> bool:
    try:
        t.convert(value, None, None)
        return True
    except click.BadParameter:
        return False


CASES = [(cmd, p.opts[-1], value) for cmd, p in _numeric_options() for value in HOSTILE if not _valid(p.type, value)]


def test_the_walk_finds_the_numeric_options():
    found = {(cmd, p.opts[-1]) for cmd, p in _numeric_options()}
    # the options the issue named, on the commands it named
    for pair in [("render", "--timeout"), ("render", "--lr"), ("render", "--clip-norm"), ("train", "--steps"),
                 ("torch", "--seed"), ("torch", "--profile-runs"), ("torch", "--depth"), ("check", "--rtol"),
                 ("snapshot", "--jobs"), ("grads", "--vanish")]:
        assert pair in found


@pytest.mark.parametrize("command, flag, value", CASES)
def test_hostile_numbers_are_usage_errors(cli, command, flag, value):
    extra = ["--lr", "1"] if flag == "--clip-norm" or (command == "train" and flag != "--lr") else []
    args = [command] + ([PIZZA] if command not in ("ops",) else []) + extra + [flag, value]
    if command == "snapshot":
        args += ["--golden", "g"]
    r = cli(*args)
    assert r.exit_code == 2, (args, r.stderr)
    assert flag in r.stderr or any(o in r.stderr for o in ("-j",)), r.stderr
    assert "must be" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr) < 600            # a 5000-digit value is not echoed back whole


@pytest.mark.parametrize("t, good, bad", [
    (Number(min=0, min_open=True, max=10), ["1e-300", "10", "0.5"], ["0", "nan", "10.5", "inf"]),
    (Number(whole=True, min=1, max=5), ["1", "5", 3, 4.0], ["0", "6", "2.5", True, "1e3", 2.5]),
    (Number(min=0), ["0", "1e300"], ["-1e-300", "-inf"]),
])
def test_number_type(t, good, bad):
    for v in good:
        t.convert(v, None, None)
    for v in bad:
        with pytest.raises(click.BadParameter):
            t.convert(v, None, None)


def test_every_manifest_key_has_one_definition():
    from cgviz.snapshot.runner import CG_KEYS, MODEL_KEYS
    for key in set(CG_KEYS) | set(MODEL_KEYS):
        assert key in OPTIONS or key in ("set", "input_shape")


def test_input_shape_with_too_many_dimensions_is_a_usage_error(cli):
    r = cli("torch", str(ROOT / "sample_graphs" / "models" / "res_cnn.py"), "--input-shape", ",".join(["1"] * 100))
    assert r.exit_code == 2 and "100 dimensions" in r.stderr
    r = cli("torch", str(ROOT / "sample_graphs" / "models" / "res_cnn.py"), "--input-shape", "9" * 5000)
    assert r.exit_code == 2 and "far too large" in r.stderr and len(r.stderr) < 600


def test_depth_help_states_the_png_overview_budget():
    """The help writes the overview's pixel budget itself (importing cgviz.plan.budget for one number
    cost every command ~3 ms); it must stay the one the model pipeline uses."""
    from cgviz.plan.budget import PNG_OVERVIEW_PIXELS
    assert f"stays within {PNG_OVERVIEW_PIXELS / 1e6:g} Mpx at 96 dpi" in OPTIONS["depth"].help
