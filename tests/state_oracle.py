"""The state oracle: everything of a module, its inputs and the process that a cgviz call must give
back as it was, read bit for bit, written independently of cgviz.pytorch.state (which it checks).

`capture(modules, tensors)` reads: every parameter's and buffer's bytes, dtype, device, shape,
strides, memory address, object identity, version counter, requires_grad, .grad (bytes) and tensor
hooks; every submodule's class, train/eval flag, children and every hook dictionary; the inputs'
bytes and flags; torch's CPU (and CUDA, when in use) generator, Python's `random`, NumPy's global
generator, torch's default dtype, grad mode and thread count. `differences(before, after)` lists what
changed, one line each, empty when nothing did.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def _bits(t: torch.Tensor):
    if t.device.type == "meta":
        return None
    t = t.detach()
    if t.layout != torch.strided:            # a sparse embedding's gradient
        return (str(t.layout), _bits(t.to_dense()))
    flat = t.cpu().contiguous().reshape(-1)
    return flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b""


def _tensor(t: torch.Tensor | None) -> tuple | None:
    if t is None:
        return None
    if isinstance(t, torch.nn.parameter.UninitializedTensorMixin):     # a lazy module's, still empty
        return (type(t).__name__, id(t), None, None, None, None, None, None, None, None, None, None, None)
    grad = t.grad if t.is_leaf else None
    return (type(t).__name__, id(t), str(t.dtype), str(t.device), tuple(t.shape), tuple(t.stride()),
            t.data_ptr() if t.device.type != "meta" else 0, t._version, t.requires_grad, _bits(t),
            _hooks(getattr(t, "_backward_hooks", None)),
            _hooks(getattr(t, "_post_accumulate_grad_hooks", None)),
            None if grad is None else (str(grad.dtype), tuple(grad.shape), _bits(grad)))


def _hooks(d) -> tuple | None:
    return None if d is None else tuple((k, id(v)) for k, v in d.items())


def _module(m: torch.nn.Module) -> dict:
    out = {"class": type(m).__name__, "training": m.training,
           "children": tuple((k, id(v)) for k, v in m._modules.items()),
           "parameters": tuple((k, id(v)) for k, v in m._parameters.items()),
           "buffers": tuple((k, id(v)) for k, v in m._buffers.items()),
           "non_persistent": tuple(sorted(m._non_persistent_buffers_set))}
    for name, value in vars(m).items():
        if "hook" in name and isinstance(value, dict):
            out[name] = _hooks(value)
    if hasattr(m, "_flat_weights"):           # an RNN's cached weight list
        out["_flat_weights"] = tuple(id(w) for w in m._flat_weights)
    return out


def process() -> dict:
    state = {"torch": _bits(torch.get_rng_state()), "random": random.getstate(),
             "numpy": repr(np.random.get_state(legacy=False)),
             "default_dtype": str(torch.get_default_dtype()), "grad": torch.is_grad_enabled(),
             "threads": torch.get_num_threads()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = [_bits(s) for s in torch.cuda.get_rng_state_all()]
    return state


def capture(modules=(), tensors=()) -> dict:
    """Everything a call must give back, for `modules` (nn.Modules) and `tensors` (any pytree)."""
    from torch.utils._pytree import tree_flatten
    out = {"process": process()}
    for i, root in enumerate(modules):
        for name, m in root.named_modules(remove_duplicate=False):
            out[f"module {i} {name or '(root)'}"] = _module(m)
        for name, t in root.named_parameters(remove_duplicate=False):
            out[f"param {i} {name}"] = _tensor(t)
        for name, t in root.named_buffers(remove_duplicate=False):
            out[f"buffer {i} {name}"] = _tensor(t)
        out[f"state_dict {i}"] = {k: _tensor(v)[2:] for k, v in root.state_dict(keep_vars=True).items()}
    leaves, _ = tree_flatten(tensors)
    for j, t in enumerate(leaves):
        out[f"input {j}"] = _tensor(t) if isinstance(t, torch.Tensor) else repr(t)
    return out


def differences(before: dict, after: dict) -> list[str]:
    lines = []
    for key in sorted(set(before) | set(after)):
        a, b = before.get(key), after.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            for k in sorted(set(a) | set(b)):
                if a.get(k) != b.get(k):
                    lines.append(f"{key}: {k} changed")
        else:
            lines.append(f"{key} changed")
    return lines
