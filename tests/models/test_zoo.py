"""The test models themselves: each runs forward and backward, and every saved format loads back equal."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import zoo  # noqa: E402
from save_models import BROKEN, FORMATS  # noqa: E402

NAMES = list(zoo.MODELS)
# torch 2.13 deprecates TorchScript; reading .ts archives back is still what these tests check.
pytestmark = pytest.mark.filterwarnings("ignore:.*torch.jit.* is deprecated:DeprecationWarning")


def _flat(out) -> list:
    """Every leaf of a nested output, None kept, so outputs compare position by position."""
    if isinstance(out, dict):
        return [x for k in sorted(out) for x in _flat(out[k])]
    if isinstance(out, (list, tuple)):
        return [x for o in out for x in _flat(o)]
    return [out]


def _same(a, b) -> None:
    fa, fb = _flat(a), _flat(b)
    assert len(fa) == len(fb)
    for x, y in zip(fa, fb):
        if x is None or y is None:
            assert x is None and y is None
        else:
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_forward_backward(name):
    factory, inputs = zoo.MODELS[name]
    model = factory()
    out = model(*inputs())
    zoo.scalar_loss(out).backward()
    grads = [p.grad for p in model.parameters()]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert not model.training
    # the zoo must stay small: a size bound, not a wall-clock one (timed tests flake on shared machines)
    size = sum(p.numel() for p in model.parameters())
    assert size < 200_000, f"{name} has {size:,} parameters: the zoo must stay small"


@pytest.mark.parametrize("name", NAMES)
def test_deterministic(name):
    factory, inputs = zoo.MODELS[name]
    _same(factory()(*inputs()), factory()(*zoo.example_inputs(name)))


def test_shapes_and_names():
    assert zoo.example_inputs("tinygpt")[0].dtype == torch.long
    batch = zoo.example_inputs("dicttuple")[0]
    assert set(batch) == {"image", "mask"}
    logits, none, aux = zoo.dicttuple()(batch)
    assert none is None and set(aux) == {"aux"}
    names = dict(zoo.rescnn().named_parameters())
    assert "layers.0.conv1.weight" in names and "layers.2.bn2.bias" in names
    assert "blocks.3.attn.q.weight" in dict(zoo.tinygpt().named_parameters())


def test_save_all_writes_everything(saved_models):
    for name in NAMES:
        assert set(saved_models[name]) == set(FORMATS), name
        assert all(p.stat().st_size > 0 for p in saved_models[name].values())
    broken = saved_models[BROKEN]
    assert broken["empty"].stat().st_size == 0
    assert broken["truncated"].read_bytes() == saved_models["mlp"]["pt2"].read_bytes()[: broken["truncated"].stat().st_size]


@pytest.mark.parametrize("name", NAMES)
def test_saved_formats_match_eager(saved_models, name):
    files = saved_models[name]
    args = torch.load(files["inputs"], weights_only=True)
    assert isinstance(args, tuple)
    expected = zoo.MODELS[name][0]()(*args)
    _same(torch.jit.load(str(files["ts"]))(*args), expected)
    _same(torch.export.load(files["pt2"]).module()(*args), expected)
    _same(torch.load(files["pkl"], weights_only=False)(*args), expected)
    fresh = zoo.MODELS[name][0]()
    fresh.load_state_dict(torch.load(files["state"], weights_only=True))
    _same(fresh(*args), expected)


def _load_file(path: Path):
    spec = importlib.util.spec_from_file_location(f"zoo_file_{path.stem}", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_model_files():
    m = _load_file(HERE / "mlp_file.py")
    m.model(*m.example_inputs).sum().backward()
    f = _load_file(HERE / "factory_file.py")
    assert not hasattr(f, "model")
    f.build()(torch.randn(4, 16)).sum().backward()
