"""`make_dot()`: torchviz's call, drawing the grad_fn graph behind a tensor with its values and gradients."""

from __future__ import annotations

from ..core.errors import CgvizError
from ..pytorch.state import given_back
from .backends import _Model
from .drawing import Drawing


@given_back()
def make_dot(var, params: dict | None = None, show_attrs: bool = False, show_saved: bool = False,
             max_attr_chars: int = 50, *, rankdir: str = "TB", timeout: float | None = 60.0) -> Drawing:
    """torchviz.make_dot's graph of grad_fns, with values and gradients on it: swap the import.

    While the graph is alive (before backward, or after backward(retain_graph=True)), cgviz takes the
    gradients itself with torch.autograd.grad, which leaves every .grad as it was. After a plain
    backward() the graph's buffers are freed: the leaves then show their .grad and the inner edges
    show no gradient (the drawing's notes say so). show_attrs, show_saved and max_attr_chars are
    accepted for compatibility; cgviz shows shapes and values instead."""
    from ..core.needs import require_torch
    torch = require_torch("make_dot")
    from ..pytorch.autograd import AutogradRecorder
    from ..route.model import picture_model  # noqa: F401  (the same picture code as every model)
    if not isinstance(var, torch.Tensor):
        if isinstance(var, (tuple, list)) and var and all(isinstance(v, torch.Tensor) for v in var):
            var = sum(v.sum() for v in var if v.requires_grad)
        else:
            raise CgvizError(f"make_dot takes a tensor (or a tuple of tensors), not a {type(var).__name__}")
    if var.grad_fn is None and not var.requires_grad:
        raise CgvizError("make_dot: this tensor has no grad_fn and does not require grad, so there is no "
                         "graph behind it; compute it from tensors with requires_grad=True")
    named = dict(params or {})
    rec = AutogradRecorder(var, named, {})
    notes = []
    leaves = list(rec.leaf_tensors())
    grads = None
    root = var if var.numel() == 1 else var.sum()
    if var.grad_fn is not None and leaves:
        try:
            grads = torch.autograd.grad(root if var.numel() == 1 else var, leaves, retain_graph=True,
                                        allow_unused=True, grad_outputs=None if var.numel() == 1 else torch.ones_like(var))
        except RuntimeError as e:
            rec.remove_hooks()      # the hooks sit on the user's graph: none may stay behind
            if "second time" not in str(e) and "freed" not in str(e):
                raise CgvizError(f"make_dot: autograd could not take the gradients: {str(e).splitlines()[0]}") from None
            notes.append("the graph's buffers were freed by backward(), so only the leaves' .grad is shown; "
                         "call make_dot before backward(), or backward(retain_graph=True), to see every "
                         "gradient")
            # the failed pass may have reached a few nodes before the freed ones: start again, clean
            rec = AutogradRecorder(var, named, {})
        except BaseException:
            rec.remove_hooks()
            raise
    if var.numel() != 1:
        notes.append(f"the tensor has {var.numel()} elements: gradients are of its sum, whose scale means "
                     "nothing; draw the loss tensor you call backward() on to see your training's gradients")
    graph, run = rec.result(None if grads is None else dict(zip(map(id, leaves), grads)))
    if grads is None and all(g is None for g in run.param_grads.values()) and not notes:
        notes.append("no gradients yet: call backward() first, or draw before backward() and cgviz takes them")
    run.loss = float(root.detach()) if root.numel() == 1 else None
    run.meta.update({"view": "autograd", "kind": "tensor", "mode": "as run", "inputs": "(given)",
                     "params": sum(int(t.numel()) for t in named.values()), "loss": "output"})
    graph.source = "make_dot"
    from ..plan.structure import build_picture
    from ..route.model import ModelDrawing, nonfinite_warnings
    nonfinite_warnings(graph, run)      # a NaN loss or gradient named at the grad_fn where it is born
    pic = build_picture(graph, run, None, fold=False)
    title = f"make_dot  —  the graph behind a tensor of shape {list(var.shape)}"
    if grads is None:
        title += "  —  gradients: the leaves' .grad only" if any(g is not None for g in run.param_grads.values()) \
            else "  —  no gradients yet"
    d = ModelDrawing(graph, run, pic, title, extra={"view": "autograd", "depth": None, "folded": False}, flags=False,
                     vanish=None, explode=None, grad=True, depth=None, auto=False, fold=False, notes=notes)
    return Drawing(_Model(d, "make_dot", ()), rankdir, timeout)
