"""Record a model's forward pass as it really runs: one IR node per torch call, in module scopes.

A `TorchFunctionMode` sees every torch function, tensor method and `torch.ops.aten` call made from
Python, so data-dependent control flow is recorded as it executed (a trace of what ran, not of what
the code says). Module forward hooks (or, for programs without live modules, a scope set by the
caller) say which module each op ran in. Hooks on each op's output and on an alias of each input
capture the gradient of the node and the gradient that flowed back along each edge.
"""

from __future__ import annotations

import contextlib

import torch
from torch.overrides import TorchFunctionMode, _get_current_function_mode_stack
from torch.autograd.graph import get_gradient_edge
from torch.utils._pytree import tree_flatten, tree_map

from . import frames
from ..core.ir import Frame, Graph, Node, Scope
from ..core.spelling import spell
from ..core.summary import RunSummary, TensorInfo
from .state import lend_grad

# Tensor properties worth a node when read (x.T); `.shape`, `.grad`, `.data` and friends are not ops.
_PROPERTY_OPS = {"T", "mT", "H", "mH", "real", "imag"}
# Calls that never become nodes: bookkeeping, not computation.
_SKIP = {"requires_grad_", "retain_grad", "register_hook", "backward", "data_ptr", "__repr__",
         "__format__", "tolist", "item", "numpy", "__len__", "__iter__", "__bool__", "__array__",
         "__reduce_ex__", "__deepcopy__", "_assert"}


# Argument types that torch's pytree takes as leaves, whatever is registered: when every argument
# of a call is one, its flat list is the arguments themselves, without tree_flatten's walk and
# TreeSpec (twice per op, ~40 µs, on thousands of ops).
_TENSORS = frozenset({torch.Tensor, torch.nn.Parameter})
_LEAVES = _TENSORS | {int, float, bool, complex, str, type(None), slice, type(Ellipsis), torch.dtype,
                      torch.device, torch.layout, torch.memory_format}


# The model's own backward inside its forward: run as they are, recorded as one op (Recorder._inner_backward).
_INNER_BACKWARD = frozenset(map(id, (torch.autograd.grad, torch.Tensor.backward, torch.autograd.backward)))


def _flat(args: tuple, kwargs: dict) -> list | None:
    """tree_flatten((args, kwargs))[0] when every argument is a leaf (args, then kwargs' values in
    order, as pytree flattens a dict), else None."""
    for a in args:
        if type(a) not in _LEAVES:
            return None
    if not kwargs:
        return list(args)
    for v in kwargs.values():
        if type(v) not in _LEAVES:
            return None
    return [*args, *kwargs.values()]


def op_name(func) -> str:
    """A short readable name for a torch callable: linear, add, getitem, T, conv2d."""
    name = getattr(func, "__name__", None) or type(func).__name__
    if name == "__get__":
        owner = getattr(func, "__self__", None)
        return getattr(owner, "__name__", "get")
    if type(func).__name__ == "OpOverload":           # aten.add.Tensor → add
        name = name.split(".")[0]
    name = name.strip("_") if name.startswith("__") else name
    return name or "op"


# Python's augmented assignments: x += y calls __iadd__, which writes into x. (Not every dunder that
# starts with __i: __invert__, __int__ and __index__ make something new.)
_AUGMENTED = frozenset(f"__i{op}__" for op in ("add", "sub", "mul", "truediv", "floordiv", "div", "mod", "pow",
                                                "matmul", "and", "or", "xor", "lshift", "rshift"))


def is_inplace(func, kwargs: dict) -> bool:
    """add_, x += y (__iadd__), x[i] = v, relu(x, inplace=True), out=…: the input is the output."""
    raw = getattr(func, "__name__", "") or ""
    if type(func).__name__ == "OpOverload":
        raw = raw.split(".")[0]
    return ((raw.endswith("_") and not raw.endswith("__")) or raw in _AUGMENTED or raw == "__setitem__"
            or kwargs.get("inplace") is True or "out" in kwargs)


def written(args: tuple, kwargs: dict) -> list[torch.Tensor]:
    """The tensors an in-place call overwrites: `out=`'s, else its first tensor argument (self, or
    `input` given by keyword)."""
    if "out" in kwargs:
        o = kwargs["out"]
        return [t for t in (o if isinstance(o, (tuple, list)) else (o,)) if isinstance(t, torch.Tensor)]
    first_arg = args[0] if args else kwargs.get("input", kwargs.get("self"))
    return [first_arg] if isinstance(first_arg, torch.Tensor) else []


def _storage(t: torch.Tensor):
    try:
        return t.untyped_storage().data_ptr()
    except Exception:       # sparse, nested and other tensors without one plain storage
        return None


def _sparse_grads(name: str, args: tuple, kwargs: dict) -> bool:
    """F.embedding / F.embedding_bag with sparse=True: the weight (argument 2) gets a sparse gradient."""
    at = {"embedding": 6, "embedding_bag": 7}.get(name)
    if at is None:
        return False
    return kwargs.get("sparse") is True or (len(args) > at and args[at] is True)


def not_an_op(func, name: str) -> bool:
    """Calls that are not drawn: bookkeeping (_SKIP) and attribute reads other than the few that
    compute something (`.T`, in _PROPERTY_OPS)."""
    return name in _SKIP or (name not in _PROPERTY_OPS and getattr(func, "__name__", "") == "__get__")


class Recorder(TorchFunctionMode):
    """Builds the ops-view graph while the model runs; `finish()` returns (Graph, RunSummary)."""

    def __init__(self, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
                 grads: bool = True):
        super().__init__()
        self.graph = Graph()
        self.run = RunSummary()
        self.grads = grads
        self.stack: list[Frame] = []
        self._root = Scope()
        self._scope = self._root                  # self.stack as a Scope: every op of a call shares it
        self._calls: dict[str, int] = {}          # module path → calls so far (loop detection)
        self._producer: dict[int, tuple[str, int]] = {}   # id(tensor) → (node id, output index)
        self._keep: list[torch.Tensor] = []        # keep recorded tensors alive so ids stay unique
        self._named = {id(t): (n, "param") for n, t in params.items()}
        self._named.update({id(t): (n, "const") for n, t in buffers.items() if id(t) not in self._named})
        self._ids: dict[str, int] = {}
        self._consts = 0
        self._hooks: list = []
        self._leaves: list[tuple[str, torch.Tensor]] = []   # leaves read .grad after backward
        self._uses: dict[str, int] = {}            # node id → ops that read its (first) output
        # node id → (gradient, its version, its summary) of the one edge out of a node read by one
        # op: the node's own gradient is then usually that very tensor (autograd passes it on, or
        # AccumulateGrad keeps it as .grad), and its summary is reused instead of taken twice
        self._only_edge: dict[str, tuple[torch.Tensor, int, TensorInfo]] = {}
        self.paused = False
        self._within: list[list[str]] = []   # per custom Function forward running: the torch calls it made
        self._inner = 0        # > 0 while the model's own torch.autograd.grad runs: hooks record nothing
        self.deepest = 0                           # the deepest nesting of module calls seen

    # ---- scopes -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def scope(self, path: str, cls: str):
        """Enter a module call (module hooks and program interpreters call this)."""
        n = self._calls.get(path, 0) + 1
        self._calls[path] = n
        frame = Frame(path, cls, n)
        outer = self._scope
        self.stack.append(frame)
        self._scope = outer.child(frame)
        self.deepest = max(self.deepest, len(self.stack))
        try:
            yield
        finally:
            self.stack.pop()
            self._scope = outer

    def set_stack(self, frames: list[Frame]) -> None:
        """For interpreters that know each op's module stack (torch.export's nn_module_stack)."""
        self.stack = list(frames)
        scope = self._root
        for f in frames:        # equal frames give the same Scope (Scope.child), so ops share it
            scope = scope.child(f)
        self._scope = scope

    def name_constant(self, t: torch.Tensor, name: str) -> None:
        """Draw `t`, a tensor the model computes from constants alone, as the constant `name` (an
        ONNX graph's mask made from shapes), as buffers are drawn: named, so repeated blocks fold."""
        self._named.setdefault(id(t), (name, "const"))
        self._keep.append(t)

    # ---- inputs -------------------------------------------------------------------------------
    def add_input(self, name: str, t: torch.Tensor) -> None:
        node = self.graph.add(Node(id=self._unique(name), kind="input", name=name,
                                   meta={"module": "", "scope": ()}))
        self._note(t, node.id, 0)
        self.run.values[node.id] = TensorInfo.of(t)
        if self.grads and t.requires_grad:
            self._hook_node(t, node.id)

    # ---- the mode -----------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if self.paused:
            return func(*args, **kwargs)
        name = op_name(func)
        if self._within:          # inside a custom Function's forward: named on its node, not drawn
            if not not_an_op(func, name):
                self._within[-1].append(name)
            return func(*args, **kwargs)
        if id(func) in _INNER_BACKWARD:
            return self._inner_backward(func, name, args, kwargs)
        if not_an_op(func, name):
            return func(*args, **kwargs)
        leaves = _flat(args, kwargs)
        simple = leaves is not None          # every argument is a leaf: no pytree walk needed
        if not simple:
            leaves = tree_flatten((args, kwargs))[0]
        flat_in = [t for t in leaves if isinstance(t, torch.Tensor)]
        inplace = is_inplace(func, kwargs)
        overwritten = written(args, kwargs) if inplace else []
        # An in-place op on a view writes into the view's base as well: a tensor already in the
        # picture, drawn from now on as this op's second output (autograd rebases it the same way,
        # its grad_fn becomes CopySlices).
        bases = [w._base for w in overwritten if w._is_view() and w._base is not None
                 and id(w._base) in self._producer] if overwritten else []
        edge_hooks: list[tuple[int, torch.Tensor]] = []
        from_fn: list[tuple[int, object]] = []   # (edge, GradientEdge before the op): read off its grad_fn
        # (an in-place call whose written tensor is not one argument, _foreach_add_(list, …), is run
        # as it is, without aliases: an alias of what it writes would write through a view)
        if (self.grads and (overwritten or not inplace) and torch.is_grad_enabled()
                and any(t.requires_grad for t in flat_in)):
            # An alias per input (a view, no copy) so a hook can see the gradient along *this* edge,
            # not the sum over every consumer of the tensor. The tensor an in-place op overwrites
            # (and anything sharing its memory) cannot be swapped for an alias, since the caller's
            # own tensor must change: its edge's gradient is read off the grad_fn the op makes.
            k = 0
            own = {id(w) for w in overwritten}
            memory = {_storage(w) for w in overwritten} - {None, 0}
            sparse_grads = _sparse_grads(name, args, kwargs)

            def alias(t):
                nonlocal k
                if isinstance(t, torch.Tensor):
                    k += 1
                    if t.requires_grad:
                        if own and (id(t) in own or _storage(t) in memory):
                            from_fn.append((k - 1, get_gradient_edge(t)))
                            return t
                    # a view of a sparse or nested tensor, or of a weight whose gradient will be sparse
                    # (Embedding(sparse=True)), fails in forward or backward: such an edge keeps no
                    # gradient of its own (the node's is still recorded)
                    if t.requires_grad and t.layout == torch.strided and not t.is_nested and not (
                            sparse_grads and k == 2):
                        a = t.view_as(t)
                        edge_hooks.append((k - 1, a))
                        return a
                return t
            if simple:
                args, kwargs = tuple(alias(a) for a in args), {key: alias(v) for key, v in kwargs.items()}
            else:
                args, kwargs = tree_map(alias, (args, kwargs))
            from_fn += [(len(flat_in) + j, get_gradient_edge(b)) for j, b in enumerate(bases) if b.requires_grad]
        out = func(*args, **kwargs)
        flat_out = [out] if type(out) in _TENSORS else [
            t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if not flat_out and overwritten:
            flat_out = overwritten[:1]      # x[i] = v returns None; the result is x, changed
        if not flat_out:
            return out
        node = self._add_op(name, func, flat_in + bases)
        for k, a in edge_hooks:
            self._hook_edge(a, node.id, k, node.inputs[k] if node.meta["out_index"][k] == 0 else None)
        if from_fn:
            self._hook_fn(node.id, from_fn, overwritten + bases)
        infos = []
        for i, t in enumerate(flat_out + bases):
            self._note(t, node.id, i)
            infos.append(TensorInfo.of(t))
        self.run.values[node.id] = infos[0] if len(infos) == 1 else infos
        if self.grads and flat_out[0].requires_grad:
            self._hook_node(flat_out[0], node.id)
        return out

    def _inner_backward(self, func, name: str, args: tuple, kwargs: dict):
        """torch.autograd.grad or .backward() called by the model's own forward (a gradient penalty,
        say). It runs as it would without cgviz: no input is swapped for an alias (that alias would
        not be part of the graph it differentiates), and cgviz's hooks record nothing while it runs
        (their numbers are the final backward's). A call that returns gradients is drawn as one op
        from the tensors it read to the gradients it gave."""
        self._inner += 1
        try:
            out = func(*args, **kwargs)
        finally:
            self._inner -= 1
        flat_out = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if not flat_out:
            return out
        flat_in = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        node = self._add_op(name, func, flat_in)
        node.meta["inner_grad"] = True
        infos = []
        for i, t in enumerate(flat_out):
            self._note(t, node.id, i)
            infos.append(TensorInfo.of(t))
        self.run.values[node.id] = infos[0] if len(infos) == 1 else infos
        if self.grads and flat_out[0].requires_grad:
            self._hook_node(flat_out[0], node.id)
        where = f" ({frames.where(node.meta.get('site'), code=False)})" if node.meta.get("site") else ""
        note = (f"the forward calls torch.autograd.{name}{where}: the gradient of its result flows back "
                "through the backward graph of what it differentiated, which the ops view does not draw, "
                f"so the edges into {node.id} carry no red gradient; the parameters' gradients include "
                f"that path ({spell('view', 'autograd')} draws it)")
        if note not in self.run.notes:
            self.run.notes.append(note)
        return out

    def function(self, cls, apply, args: tuple, kwargs: dict):
        """A custom torch.autograd.Function's apply, drawn as one op named by its class. Autograd sees
        one node (…Backward) whose backward is the Function's own (a straight-through estimator, a
        gradient reversal), so the edges into it carry what that backward sent to each tensor
        argument: its grad_inputs, read by a hook on that node. Its forward's own torch calls run
        under no_grad and get no gradient: they are not drawn, only named in the node's meta
        (`forward_ops`), since edges without a gradient there would say what autograd never did."""
        from torch.utils.checkpoint import CheckpointFunction
        if self._within:            # a Function inside a Function's forward: part of the outer one
            self._within[-1].append(cls.__name__)
            return apply(*args, **kwargs)
        if cls is CheckpointFunction:
            return self._checkpoint(*args)
        # The arguments are passed as they are (no alias, as __torch_function__ makes): the node's
        # hook sees each edge's gradient anyway, and a Function that writes its input in place
        # (ctx.mark_dirty) or checks `x is self.weight` gets the very tensor it was given.
        flat_in = [t for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)]
        self._within.append([])
        try:
            out = apply(*args, **kwargs)
        finally:
            inner = self._within.pop()
        # the mode is live here (apply is not a torch call it was handed): cgviz's own tensor calls
        # are made with it paused, so they are not drawn
        self.paused = True
        try:
            self._function_node(cls, inner, flat_in, out)
        finally:
            self.paused = False
        return out

    def _function_node(self, cls, inner: list[str], flat_in: list[torch.Tensor], out) -> None:
        flat_out = [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]
        if not flat_out:
            return
        node = self._add_op(cls.__name__, cls, flat_in)
        node.meta.update(custom_function=cls.__qualname__,
                         defined=_defined(cls), forward_ops=tuple(inner))
        infos = []
        for i, t in enumerate(flat_out):
            self._note(t, node.id, i)
            infos.append(TensorInfo.of(t))
        self.run.values[node.id] = infos[0] if len(infos) == 1 else infos
        if not self.grads:
            return
        if flat_out[0].requires_grad:
            self._hook_node(flat_out[0], node.id)
        # the Function's own backward node (an output's grad_fn could be another's only if torch
        # changed how outputs are wrapped: then no edge gradient rather than a wrong one)
        fn = next((t.grad_fn for t in flat_out if getattr(t.grad_fn, "_forward_cls", None) is cls), None)
        if fn is None:
            return
        # grad_inputs has one entry per tensor argument, in order (None where backward gave none)
        srcs = [src if i == 0 else None for src, i in zip(node.inputs, node.meta["out_index"])]

        def hook(grad_inputs, grad_outputs):
            for k, g in enumerate(grad_inputs[:len(srcs)]):
                self._edge_grad(node.id, k, srcs[k], g)
        self._hooks.append(fn.register_hook(hook))

    def _checkpoint(self, function, preserve_rng_state, *args):
        """torch.utils.checkpoint with use_reentrant=True: its Function runs the block under no_grad
        and, in backward, runs it again with grad and backpropagates through that copy. The copy's
        gradients are those of running the block once with grad (same ops, same inputs, the same
        random numbers), so the block is recorded once, as it runs here, and its edges carry those
        gradients; the recomputation is not drawn again. As the Function does, the block gets no
        gradient at all when no tensor input requires one (its parameters then get none either)."""
        needs = torch.is_grad_enabled() and any(isinstance(t, torch.Tensor) and t.requires_grad for t in args)
        first = len(self.graph.nodes)
        with torch.set_grad_enabled(needs):
            out = function(*args)
        for node in self.graph.nodes[first:]:
            if node.kind == "op":
                node.meta["checkpoint"] = "reentrant"
        if not needs and torch.is_grad_enabled():
            site = frames.caller()
            where = f" ({frames.where(site, code=False)})" if site else ""
            note = (f"torch.utils.checkpoint with use_reentrant=True{where}: none of its tensor inputs requires "
                    "grad, so PyTorch computes no gradient inside the block (its parameters get none); "
                    "use_reentrant=False does not have this limit")
            if note not in self.run.notes:
                self.run.notes.append(note)
        return out

    def _add_op(self, name: str, func, flat_in: list[torch.Tensor]) -> Node:
        inputs, outs = [], []
        for t in flat_in:
            src, idx = self._source(t)
            inputs.append(src)
            outs.append(idx)
        scope = self._scope
        node = Node(id=self._unique(self.op_base(name)), kind="op", op=name,
                    inputs=tuple(inputs),
                    meta={"module": scope[-1].path if scope else "",
                          "class": scope[-1].cls if scope else "",
                          "scope": scope,
                          "out_index": tuple(outs),
                          # the model's line that made the call: where a NaN is born is said by it
                          "site": frames.caller()})
        self.graph.add(node)
        for k, src in enumerate(inputs):
            if outs[k] == 0:
                self._uses[src] = self._uses.get(src, 0) + 1
            v = self.run.values[src]
            self.run.edge_values[(node.id, k)] = v[outs[k]] if isinstance(v, list) else v
        return node

    def op_base(self, name: str) -> str:
        """An op's id before `_unique` numbers repeats: the innermost module call names it
        (`--profile` computes the same ids on a later run, so this is the one place that says how)."""
        prefix = self.stack[-1].key if self.stack else ""
        return f"{prefix}/{name}" if prefix else name

    def _source(self, t: torch.Tensor) -> tuple[str, int]:
        """The node that produced `t`; parameters, buffers and stray constants get a leaf node."""
        hit = self._producer.get(id(t))
        if hit is not None:
            return hit
        named = self._named.get(id(t))
        if named is not None:
            name, kind = named
            node_id = self._unique(name)
        else:
            self._consts += 1
            name, kind = None, "const"
            node_id = self._unique("const")
        owner = name.rpartition(".")[0] if name else ""
        self.graph.add(Node(id=node_id, kind=kind, name=name or node_id,
                            meta={"module": owner, "scope": self._scope, "numel": t.numel()}))
        self.run.values[node_id] = TensorInfo.of(t)
        self._note(t, node_id, 0)
        if self.grads and t.requires_grad and t.is_leaf:
            lend_grad(t)        # a tensor of the user's (a function's closure) keeps its own .grad
            self._leaves.append((node_id, t))
        elif self.grads and t.requires_grad:
            self._hook_node(t, node_id)
        return node_id, 0

    # ---- hooks --------------------------------------------------------------------------------
    def _note(self, t: torch.Tensor, node_id: str, idx: int) -> None:
        self._producer[id(t)] = (node_id, idx)
        self._keep.append(t)

    def _hook_node(self, t: torch.Tensor, node_id: str) -> None:
        def hook(g):
            # g is None where backward defines no gradient (a custom function's None, as roi_align
            # gives its boxes): the node then has none, as PyTorch says
            if not self._inner and g is not None:
                self.run.grads[node_id] = self._summary(node_id, g)
        self._hooks.append(t.register_hook(hook))

    def _hook_fn(self, node_id: str, pending: list[tuple[int, object]], changed: list[torch.Tensor]) -> None:
        """The gradients along the edges of an in-place op whose tensors could not be aliased: the op's
        grad_fn (the one each changed tensor now has) sends back along next_functions[i] exactly what
        flows into the producer that edge came from. Each pending edge is matched to the entry that
        points at its tensor's grad_fn from before the op (by node and output number; `x += x` has
        two, matched in order). An edge no grad_fn points at gets no gradient from autograd (the view
        an op wrote through: CopySlices sends it to the base instead), and none is drawn."""
        fns = []
        for t in changed:
            if t.requires_grad:
                fn = get_gradient_edge(t).node
                if fn is not None and all(fn is not f for f in fns):
                    fns.append(fn)
        for fn in fns:
            taken: list[tuple[int, int]] = []
            nexts = fn.next_functions
            for k, edge in list(pending):
                for i, (f, nr) in enumerate(nexts):
                    if f is not None and f is edge.node and nr == edge.output_nr and all(i != j for _, j in taken):
                        taken.append((k, i))
                        pending.remove((k, edge))
                        break
            if not taken:
                continue

            def hook(grad_inputs, grad_outputs, taken=taken):
                if self._inner:
                    return
                for k, i in taken:
                    g = grad_inputs[i] if i < len(grad_inputs) else None
                    self.run.edge_grads[(node_id, k)] = TensorInfo.of(g) if g is not None else None
            self._hooks.append(fn.register_hook(hook))

    def _hook_edge(self, a: torch.Tensor, node_id: str, k: int, src: str | None) -> None:
        def hook(g):
            self._edge_grad(node_id, k, src, g)
        self._hooks.append(a.register_hook(hook))

    def _edge_grad(self, node_id: str, k: int, src: str | None, g: torch.Tensor | None) -> None:
        if self._inner or g is None:       # no gradient defined along this edge (see _hook_node)
            return
        info = TensorInfo.of(g)
        self.run.edge_grads[(node_id, k)] = info
        if src is not None and self._uses.get(src) == 1:
            self._only_edge[src] = (g, g._version, info)

    def _summary(self, node_id: str, g: torch.Tensor) -> TensorInfo:
        """The summary of a node's gradient `g`: its only edge's, when `g` is that edge's gradient
        unchanged (the same memory, held since so it cannot have been reused, with the same shape,
        strides, dtype and version: the same numbers), else taken afresh."""
        only = self._only_edge.pop(node_id, None)
        if only is not None:
            e, version, info = only
            if (e.data_ptr() == g.data_ptr() and e.shape == g.shape and e.stride() == g.stride()
                    and e.dtype == g.dtype and e.device == g.device and e._version == version
                    and g._version == version):
                return info
        return TensorInfo.of(g)

    def _unique(self, base: str) -> str:
        n = self._ids.get(base, 0) + 1
        self._ids[base] = n
        return base if n == 1 else f"{base}_{n}"

    def source_of(self, t: torch.Tensor) -> str | None:
        hit = self._producer.get(id(t))
        return hit[0] if hit else None

    def finish(self, output_id: str) -> tuple[Graph, RunSummary]:
        """After backward: leaf gradients, pruning of what does not reach the output, hooks removed."""
        for node_id, t in self._leaves:
            self.run.grads[node_id] = self._summary(node_id, t.grad) if t.grad is not None else None
            if self.graph[node_id].kind == "param":
                self.run.param_grads[self.graph[node_id].name] = self.run.grads[node_id]
        for h in self._hooks:
            h.remove()
        self._hooks.clear()
        self._only_edge.clear()
        self._keep.clear()
        self._producer.clear()
        self.graph.output = output_id
        self.graph.loss = output_id
        return prune(self.graph, output_id), self.run


def _defined(cls) -> str:
    """`model.py:12`: where a custom Function's forward is defined ('' when Python cannot say)."""
    import inspect
    try:
        fn = inspect.unwrap(cls.forward)
        return frames.where((inspect.getsourcefile(fn) or "", fn.__code__.co_firstlineno), code=False)
    except (TypeError, OSError, AttributeError):
        return ""


@contextlib.contextmanager
def functions(rec: Recorder):
    """While the model runs: every custom autograd Function's apply goes through `rec.function`. The
    function mode does not see Function.apply itself (only the ops its forward runs), so the class
    method is wrapped for the duration, and given back as it was."""
    base = torch.autograd.Function
    real = base.__dict__["apply"]
    original = real.__func__

    def apply(cls, *args, **kwargs):
        def run(*a, **k):
            return original(cls, *a, **k)
        # not while the recorder is not the running mode: a torch call it is already drawing (whose
        # Python implementation applies a Function) or the backward after the forward
        if rec.paused or rec._inner or not any(m is rec for m in _get_current_function_mode_stack()):
            return run(*args, **kwargs)
        return rec.function(cls, run, args, kwargs)

    base.apply = classmethod(apply)
    try:
        yield
    finally:
        base.apply = real


def prune(graph: Graph, output_id: str) -> Graph:
    """Keep only what the output depends on (`num_batches_tracked += 1` and dead branches go)."""
    need = {output_id}
    for node in reversed(graph.nodes):
        if node.id in need:
            need.update(node.inputs)
    kept = Graph(source=graph.source, meta=graph.meta, output=graph.output, loss=graph.loss)
    for node in graph.nodes:
        if node.id in need:
            kept.add(node)
    return kept


def module_hooks(model: torch.nn.Module, rec: Recorder):
    """Forward pre/post hooks on every submodule that enter/leave its scope on the recorder."""
    names: dict[int, str] = {}
    for name, mod in model.named_modules(remove_duplicate=False):
        names.setdefault(id(mod), name)
    handles = []
    open_scopes: dict[int, list] = {}

    def pre(mod, args):
        path = names.get(id(mod))
        if path is None or path == "":
            return
        cm = rec.scope(path, type(mod).__name__)
        cm.__enter__()
        open_scopes.setdefault(id(mod), []).append(cm)

    def post(mod, args, out):
        stack = open_scopes.get(id(mod))
        if stack:
            stack.pop().__exit__(None, None, None)

    for name, mod in model.named_modules():
        if name == "" or isinstance(mod, torch.jit.ScriptModule):
            continue
        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post, always_call=True))
    return handles
