"""The `--view autograd` graph: the backward graph as torchviz draws it, with the gradient on every edge."""

from __future__ import annotations

from typing import Any

import torch

from ..core.ir import Graph, Node
from ..core.summary import RunSummary, TensorInfo

OUTPUT = "output"   # the id of the output tensor's node (make_dot's green box)


def _info(t: torch.Tensor | None) -> TensorInfo | None:
    return None if t is None else TensorInfo.of(t)


def _next(fn) -> list:
    """The producers a grad_fn sends gradients to, None (no gradient needed) left out."""
    return [f for f, _ in getattr(fn, "next_functions", ()) if f is not None]


def _postorder(starts: list) -> list:
    """Every grad_fn reachable from `starts`, each after all of its next_functions.

    The walk is make_dot's (depth first, next_functions in order), iterative because a deep model's
    chain of grad_fns is longer than Python's recursion limit. Emitting each node after its producers
    gives both a topological order and ids numbered in forward order (the first Linear is
    `AddmmBackward0`, the last one `AddmmBackward0_3`).
    """
    order, seen = [], set()
    for start in starts:
        if start is None or start in seen:
            continue
        seen.add(start)
        stack = [(start, iter(_next(start)))]
        while stack:
            fn, rest = stack[-1]
            for child in rest:
                if child not in seen:
                    seen.add(child)
                    stack.append((child, iter(_next(child))))
                    break
            else:
                stack.pop()
                order.append(fn)
    return order


def _forward_value(fn) -> TensorInfo | list[TensorInfo] | None:
    """What a grad_fn's forward op produced: shape and dtype from autograd's own metadata, with the
    values when the node saved its result anyway (sigmoid, exp, tanh …); a list for several outputs."""
    try:
        infos = [TensorInfo(tuple(int(s) for s in m.shape), str(m.dtype).replace("torch.", ""), None)
                 for m in fn._input_metadata]      # private, so anything may go wrong: then no value
    except Exception:
        return None
    if not infos:
        return None
    try:
        saved = fn._saved_result
    except Exception:
        saved = None
    if isinstance(saved, torch.Tensor) and tuple(saved.shape) == infos[0].shape:
        infos[0] = TensorInfo.of(saved)
    return infos[0] if len(infos) == 1 else infos


def _custom_saved(fn) -> list[torch.Tensor]:
    """The tensors a custom autograd.Function saved: make_dot draws these even without show_saved."""
    if not hasattr(fn, "saved_tensors"):
        return []
    return [t for t in fn.saved_tensors if torch.is_tensor(t)]


def _pick(value, index: int):
    if isinstance(value, list):
        return value[index] if index < len(value) else None
    return value if index == 0 else None


class AutogradRecorder:
    """Hooks the backward graph of `root` before `root.backward()`; `result()` after it.

    Nodes mirror make_dot(root, params): one op node per grad_fn (AccumulateGrad included), one leaf
    per AccumulateGrad variable (named from `params` or `inputs`), the tensors custom Functions saved,
    and the output tensor (`output`) with, when it is a view, its base tensor.
    """

    def __init__(self, root: torch.Tensor, params: dict[str, torch.Tensor],
                 inputs: dict[str, torch.Tensor] | None = None, hidden: list | None = None):
        """`hidden`: grad_fns of cgviz's own making (the copy of an input each forward reads,
        run.fresh_inputs), drawn as the one node each passes its gradient to, not as a node."""
        self.graph = Graph(meta={"view": "autograd"})
        self._hidden = {id(f) for f in hidden or () if f is not None}
        self.run = RunSummary()
        self.handles: list = []
        self._names: dict[int, tuple[str, str]] = {id(t): (n, "param") for n, t in params.items()}
        for n, t in (inputs or {}).items():
            self._names.setdefault(id(t), (n, "input"))
        # Parameter and input names are reserved so that no op id can take one first.
        self._reserved = {n for n, _ in self._names.values()}
        self._taken: set[str] = set()
        self._counts: dict[str, int] = {}
        self._tensors: dict[int, str] = {}                  # id(tensor) → its leaf node
        self._keep: list[torch.Tensor] = []                  # keeps those ids unique while we build
        self._leaves: dict[str, torch.Tensor] = {}          # AccumulateGrad variables: .grad later
        self._fns: dict[Any, str] = {}                       # grad_fn → node id, only while building
        try:
            self._build(root)
        except BaseException:
            self.remove_hooks()     # the hooks sit on the user's graph: none may stay behind
            raise
        finally:
            self._fns.clear()      # hold no grad_fn: backward may free the graph as usual

    def remove_hooks(self) -> None:
        """Take cgviz's hooks off the graph's grad_fns (result() does it too; safe to repeat)."""
        for h in self.handles:
            h.remove()
        self.handles.clear()

    # ---- building -----------------------------------------------------------------------------
    def _build(self, root: torch.Tensor) -> None:
        base = root._base if root._is_view() else None
        starts = [root.grad_fn, base.grad_fn if base is not None else None]
        for fn in _postorder(starts):
            if id(fn) in self._hidden:
                nxt = _next(fn)
                if len(nxt) == 1 and nxt[0] in self._fns:
                    self._fns[fn] = self._fns[nxt[0]]
                    continue
            if hasattr(fn, "variable"):
                self._add_accumulate(fn)
            else:
                self._add_fn(fn)
        self._add_output(root, base)

    def _unique(self, base: str, own: bool = False) -> str:
        n = self._counts.get(base, 0)
        while True:
            n += 1
            cand = base if n == 1 else f"{base}_{n}"
            if cand not in self._taken and (own or cand not in self._reserved):
                break
        self._counts[base] = n
        self._taken.add(cand)
        return cand

    def _tensor_node(self, t: torch.Tensor, default: str, kind: str) -> str:
        """The leaf node of a tensor, made on first sight (make_dot keys its boxes by tensor too)."""
        known = self._tensors.get(id(t))
        if known is not None:
            return known
        name, kind = self._names.get(id(t), (None, kind))
        node_id = self._unique(name, own=True) if name else self._unique(default)
        owner = name.rpartition(".")[0] if name and kind == "param" else ""
        info = TensorInfo.of(t)         # a nested tensor has no single shape: the summary's is its elements'
        self.graph.add(Node(id=node_id, kind=kind, name=name or node_id,
                            meta={"module": owner, "scope": (), "numel": info.numel,
                                  "shape": info.shape}))
        self.run.values[node_id] = info
        self.run.grads[node_id] = None
        self._tensors[id(t)] = node_id
        self._keep.append(t)
        return node_id

    def _add_accumulate(self, fn) -> None:
        var = fn.variable
        leaf = self._tensor_node(var, "leaf", "param")
        self._leaves.setdefault(leaf, var)
        node_id = self._unique(f"{leaf}/AccumulateGrad")
        self._fns[fn] = node_id
        self.graph.add(Node(id=node_id, kind="op", op=type(fn).__name__, inputs=(leaf,),
                            meta={"module": "", "scope": (), "out_index": (0,), "accumulates": leaf}))
        self.run.values[node_id] = self.run.values[leaf]
        self.run.edge_values[(node_id, 0)] = self.run.values[leaf]
        self.run.grads[node_id] = None
        self.run.edge_grads[(node_id, 0)] = None

        def hook(grad_inputs, grad_outputs):
            # What reaches AccumulateGrad is the sum over every use: what the leaf accumulates.
            g = _info(grad_outputs[0]) if grad_outputs else None
            self.run.grads[node_id] = g
            self.run.edge_grads[(node_id, 0)] = g
        self.handles.append(fn.register_hook(hook))

    def _add_fn(self, fn) -> None:
        node_id = self._unique(type(fn).__name__)
        self._fns[fn] = node_id
        pairs = [(i, f, nr) for i, (f, nr) in enumerate(fn.next_functions) if f is not None]
        inputs = [self._fns[f] for _, f, _ in pairs]
        out_index = [nr for _, _, nr in pairs]
        saved = [self._tensor_node(t, f"{node_id}/saved", "const") for t in _custom_saved(fn)]
        self.graph.add(Node(id=node_id, kind="op", op=type(fn).__name__, inputs=tuple(inputs + saved),
                            meta={"module": "", "scope": (), "out_index": tuple(out_index + [0] * len(saved)),
                                  "saved": len(saved)}))
        self.run.values[node_id] = _forward_value(fn)
        self.run.grads[node_id] = None
        for k, src in enumerate(inputs + saved):
            nr = out_index[k] if k < len(out_index) else 0
            self.run.edge_values[(node_id, k)] = _pick(self.run.values.get(src), nr)
            self.run.edge_grads[(node_id, k)] = None      # saved-tensor edges carry no gradient
        self._hook_fn(fn, node_id, [i for i, _, _ in pairs])

    def _hook_fn(self, fn, node_id: str, args: list[int]) -> None:
        """grad_outputs[0] is what arrived at the node (autograd sums over consumers before calling
        it); grad_inputs[args[k]] is what it sends back along argument k."""
        def hook(grad_inputs, grad_outputs):
            self.run.grads[node_id] = _info(grad_outputs[0]) if grad_outputs else None
            for k, i in enumerate(args):
                self.run.edge_grads[(node_id, k)] = _info(grad_inputs[i]) if i < len(grad_inputs) else None
        self.handles.append(fn.register_hook(hook))

    def _add_output(self, root: torch.Tensor, base: torch.Tensor | None) -> None:
        if root.grad_fn is None:
            # A leaf as the loss: make_dot draws just its box, and so do we.
            node_id = self._tensor_node(root, OUTPUT, "param")
            self._leaves[node_id] = root
            self._set_output(node_id)
            return
        fn_id = self._fns[root.grad_fn]
        inputs = [fn_id]
        if base is not None:
            inputs.append(self._base_node(base))
        node_id = self._unique(OUTPUT, own=True)
        self.graph.add(Node(id=node_id, kind="op", op=OUTPUT, inputs=tuple(inputs),
                            meta={"module": "", "scope": (), "out_index": (root.output_nr, 0)[:len(inputs)],
                                  "root": fn_id}))
        self.run.values[node_id] = TensorInfo.of(root)
        self.run.grads[node_id] = None
        for k, src in enumerate(inputs):
            self.run.edge_values[(node_id, k)] = _pick(self.run.values.get(src), (root.output_nr, 0)[k])
            self.run.edge_grads[(node_id, k)] = None   # the base edge is make_dot's dotted view edge

        nr = root.output_nr

        def seed(grad_outputs):
            # The gradient backward starts with (1 for a scalar loss), as the root grad_fn receives it.
            g = _info(grad_outputs[nr]) if nr < len(grad_outputs) else None
            self.run.grads[node_id] = g
            self.run.edge_grads[(node_id, 0)] = g
        self.handles.append(root.grad_fn.register_prehook(seed))
        self.graph.meta["root"] = fn_id
        self._set_output(node_id)

    def _base_node(self, base: torch.Tensor) -> str:
        """The tensor the output is a view of (make_dot's dark green box), unless already drawn."""
        if id(base) in self._tensors or base.grad_fn is None:
            return self._tensor_node(base, "base", "const")
        fn_id = self._fns[base.grad_fn]
        node_id = self._unique(f"{OUTPUT}/base", own=True)
        self.graph.add(Node(id=node_id, kind="op", op="base", inputs=(fn_id,),
                            meta={"module": "", "scope": (), "out_index": (base.output_nr,)}))
        self.run.values[node_id] = TensorInfo.of(base)
        self.run.grads[node_id] = None
        self.run.edge_values[(node_id, 0)] = _pick(self.run.values.get(fn_id), base.output_nr)
        self.run.edge_grads[(node_id, 0)] = None
        self._tensors[id(base)] = node_id
        self._keep.append(base)
        return node_id

    def _set_output(self, node_id: str) -> None:
        self.graph.output = node_id
        self.graph.loss = node_id

    # ---- after backward -----------------------------------------------------------------------
    def leaf_tensors(self) -> list[torch.Tensor]:
        """The tensors gradients accumulate into (parameters and other leaves), in graph order."""
        return list(self._leaves.values())

    def result(self, leaf_grads: dict[int, torch.Tensor | None] | None = None) -> tuple[Graph, RunSummary]:
        """Remove the hooks and read each leaf's gradient; call after `root.backward()`.

        `leaf_grads` (id(leaf) → gradient) stands in for `.grad` when the gradients were taken with
        torch.autograd.grad, which leaves `.grad` alone and runs no AccumulateGrad node."""
        self.remove_hooks()
        if leaf_grads is not None:
            for node in self.graph:
                leaf = node.meta.get("accumulates")
                if leaf is not None:
                    g = _info(leaf_grads.get(id(self._leaves[leaf])))
                    self.run.grads[node.id] = g
                    self.run.edge_grads[(node.id, 0)] = g
        for node_id, t in self._leaves.items():
            g = _info(t.grad if leaf_grads is None else leaf_grads.get(id(t)))
            self.run.grads[node_id] = g
            node = self.graph[node_id]
            if node.kind == "param":
                self.run.param_grads[node.name] = g
        self._keep.clear()
        self._tensors.clear()
        return self.graph, self.run
