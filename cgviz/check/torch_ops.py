"""Run the same IR through PyTorch autograd (float64), from each op's `torch` twin in the op table.

Imported only by the gradient check and the tests: torch is an optional extra, and nothing on the
expression-language path imports this module.
"""

from __future__ import annotations

import numpy as np

from ..core.ir import Graph
from ..lang.ops import OPS


def torch_run(graph: Graph):
    """Values and leaf/op gradients computed by torch.autograd, as NumPy arrays keyed by node id.

    Returns (values, grads); grads holds None where torch computes no gradient (consts, integer
    labels, nodes the output does not depend on).
    """
    import torch

    tensors: dict[str, "torch.Tensor"] = {}
    for node in graph:
        if node.is_leaf:
            v = node.attrs["value"]
            if v.dtype.kind in "iu":
                t = torch.tensor(v, dtype=torch.int64)
            else:
                t = torch.tensor(np.asarray(v, dtype=np.float64), dtype=torch.float64,
                                 requires_grad=node.kind in ("input", "param"))
        else:
            d = OPS[node.op]
            xs = [tensors[i] for i in node.inputs]
            # integer labels only reach ops that declare them non-differentiable; elsewhere cast
            xs = [x if (x.dtype == torch.float64 or k in d.nondiff) else x.to(torch.float64)
                  for k, x in enumerate(xs)]
            t = d.torch(torch, xs, **node.attrs)
            if not isinstance(t, torch.Tensor):
                t = torch.as_tensor(t, dtype=torch.float64)
        if t.requires_grad and not t.is_leaf:
            t.retain_grad()
        tensors[node.id] = t
    out = tensors[graph.output]
    if out.requires_grad:
        out.backward(torch.ones_like(out))
    values = {k: t.detach().numpy().copy() for k, t in tensors.items()}
    grads = {k: (t.grad.detach().numpy().copy() if t.grad is not None else None)
             for k, t in tensors.items()}
    return values, grads
