"""What to draw of a big model: module clusters, `--depth` collapsing, ×N folding and loop regions.

The recorded graph is never changed; this pass computes a *picture*: which recorded nodes are drawn
as one box (a collapsed module, a folded block, a repeated loop body) and which edges remain.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from ..core.ir import Graph, Node, Scope
from ..core.summary import RunSummary, TensorInfo, first

WORDS = {"loop": ("step", "steps"), "fold": ("block", "blocks")}   # what one repetition is called


@dataclass
class Group:
    """Sibling module calls drawn once: `fold` (×N identical blocks) or `loop` (one module called N times)."""

    style: str                    # fold | loop
    calls: list[tuple]            # scope prefixes (tuples of Frames), the first is drawn
    cls: str
    grad_norms: list[float | None]

    @property
    def n(self) -> int:
        return len(self.calls)


@dataclass
class DNode:
    """One box or ellipse of the picture, standing for one or more recorded nodes."""

    id: str
    kind: str                     # input | param | const | op | module | params (a module's leaves)
    members: list[str]
    scope: tuple                  # the frames of the cluster it sits in
    copies: int = 1               # parallel duplicates merged into it (x[:, t] over 20 steps)
    module: tuple | None = None   # for kind == module: the frames of the collapsed call
    parts: list[str] = field(default_factory=list)   # for kind == params: the tensors, one row each
    word: str = ""                # "steps" or "blocks" when it stands for a loop's steps or a fold's blocks


@dataclass
class DEdge:
    src: str
    dst: str
    value: TensorInfo | None
    grad: TensorInfo | None
    count: int = 1
    back: bool = False            # a loop's step-to-step edge (h_t → h_{t+1})
    leaf: bool = False            # from a parameter/buffer box, which already shows the numbers
    per_step: int = 1             # a loop's state handed on per step: 2 for (h, c)
    note: str = ""                # what the gradient stands for when the edge stands for N steps or blocks
    over: tuple | None = None     # the fold or loop whose N repetitions' numbers the edge pools
    parts: list[str] = field(default_factory=list)   # from a params box: the tensors it carries
    shapes: list[tuple] = field(default_factory=list)  # several tensors as one edge: their distinct shapes


@dataclass
class Picture:
    nodes: dict[str, DNode]
    edges: list[DEdge]
    groups: dict[tuple, Group] = field(default_factory=dict)   # representative call → its group
    depth: int | None = None
    max_depth: int = 0
    same: dict[str, list[str]] = field(default_factory=dict)   # block 1's node → it in every block


def scope_of(node: Node) -> Scope:
    return Scope.of(node.meta.get("scope") or ())



def max_depth(graph: Graph) -> int:
    return max((len(scope_of(n)) for n in graph), default=0)


def module_calls(graph: Graph) -> dict[tuple, list[str]]:
    """Every module call (a scope prefix) → the recorded nodes inside it, in topological order."""
    out: dict[tuple, list[str]] = {}
    for n in graph:
        for call in scope_of(n).prefixes():
            out.setdefault(call, []).append(n.id)
    return out


# A frame's id is the path of module calls it stands for (`layer1.0/layer1.0.conv1`); past this
# nesting, its first and last calls and the depth between, which still name one call (a call's key
# is unique in a run), since the whole path grows with the square of the depth (150 nested modules
# made ids longer than Graphviz takes).
FULL_CLUSTER_ID = 8


def cluster_id(scope) -> str:
    """The id of the frame of a module call (the DOT writer adds `cluster_`); the page and its
    levels (cgviz.plan.levels) find frames by it."""
    if len(scope) <= FULL_CLUSTER_ID:
        return "/".join(f.key for f in scope)
    return f"{scope[0].key}/…{len(scope) - 2}…/{scope[-1].key}"


def _children(calls) -> dict[tuple, list[tuple]]:
    kids: dict[tuple, list[tuple]] = {}
    for c in calls:
        kids.setdefault(Scope.of(c).parent, []).append(c)
    return kids


def _ops(graph: Graph, members: list[str]) -> list[str]:
    return [m for m in members if graph[m].kind == "op"]


def _role(graph: Graph, node_id: str, prefix: str) -> str:
    """A parameter's name relative to the block (`fc1.weight`), so block 3's matches block 1's."""
    name = graph[node_id].name or node_id
    return name[len(prefix):] if prefix and name.startswith(prefix) else name


def _signature(graph: Graph, run: RunSummary, call: tuple, members: list[str]):
    """What makes two module calls 'the same block': op sequence, shapes, wiring and parameter roles.
    Only ops count: a module called in a loop creates its parameter boxes on the first call only."""
    ops = _ops(graph, members)
    index = {m: i for i, m in enumerate(ops)}
    prefix = call[-1].path
    sig = [call[-1].cls]
    for m in ops:
        n = graph[m]
        rel = tuple((f.path[len(prefix):], f.cls) for f in scope_of(n)[len(call):])
        v = run.values.get(m)
        shape = tuple((x.shape, x.dtype) for x in v) if isinstance(v, list) else (
            (v.shape, v.dtype) if v is not None else None)
        # each input's shape too: a 1×1 convolution from 16 channels and a 3×3 one from 4 give the
        # same output shape (Inception's branch2.0 and branch2.1 folded ×2 on it), but are not one block
        ins = tuple((index[i] if i in index else
                     ("p", _role(graph, i, prefix)) if graph[i].kind in ("param", "const") else "ext",
                     getattr(run.edge_values.get((m, k)), "shape", None))
                    for k, i in enumerate(n.inputs))
        sig.append((n.op, rel, shape, ins))
    return tuple(sig)


def param_norm(graph: Graph, run: RunSummary, members: list[str]) -> float | None:
    """The norm of the gradient this call sent to parameters, read from the edges parameters feed:
    for a loop, step t's share of the shared weights' gradient (which shows vanishing over time)."""
    total, seen = 0.0, False
    for m in _ops(graph, members):
        for k, i in enumerate(graph[m].inputs):
            if graph[i].kind == "param":
                g = run.edge_grads.get((m, k))
                if g is not None and g.norm is not None:
                    total += g.norm ** 2
                    seen = True
    return math.sqrt(total) if seen else None


def _chained(graph: Graph, prev: list[str], nxt: list[str], first: list[str] | None = None) -> bool:
    """Block i+1 reads block i's results along one main path, like 12 transformer layers, not two
    Linear layers with a ReLU between them. Besides parameters it may read side inputs shared by the
    whole run (a Llama layer's rotary cos/sin, T5's position bias, the encoder's states for a decoder
    layer): the very tensor the run's first block reads at the same place. Anything else (a skip from
    two blocks back, as in a U-Net or DenseNet) keeps the blocks apart."""
    inside, before = set(nxt), set(prev)
    lead = _ops(graph, first) if first is not None else None
    fed = False
    for j, m in enumerate(_ops(graph, nxt)):
        for k, i in enumerate(graph[m].inputs):
            if i in inside or graph[i].kind in ("param", "const"):
                continue
            if i in before:
                fed = True
            elif lead is None or j >= len(lead) or k >= len(graph[lead[j]].inputs) or graph[lead[j]].inputs[k] != i:
                return False
    return fed


def _steps_chained(graph: Graph, prev: list[str], nxt: list[str]) -> bool:
    """Call t+1 of one module reads a result of call t directly: a loop's state (h, or (h, c)).
    A stateless module used at two places (torchvision's BasicBlock calls one `self.relu` twice,
    with convolutions between) is not a loop."""
    before = set(prev)
    return any(i in before for m in nxt for i in graph[m].inputs)


@dataclass(frozen=True)
class Gathered:
    """The frame of a box that stands for ops run in no module (cgviz.view.model_scene draws it as a
    collapsed module): `ops after roi_heads`, Mask R-CNN's post-processing."""

    path: str
    cls: str
    call: int = 1

    @property
    def key(self) -> str:
        return self.path


SPLIT_MAX = 3       # distinct tensors between two boxes drawn as edges of their own; more are one edge


def _repeated(dn: DNode, groups: dict) -> bool:
    """A box that stands for a ×N fold or loop (its inputs are read by every repetition)."""
    return dn.kind == "module" and dn.module in groups


GATHER_MIN = 8      # ops drawn loose in all, below which gathering them would hide more than it saves


def gathered_ops(graph: Graph, depth: int = 1) -> dict[str, tuple]:
    """At this depth, the ops drawn as themselves because they ran in no module at or below it (in
    no module at all, or directly in a module above the depth), in runs between two calls of that
    module's children: node → the scope of its run's box (the module's frames and a Gathered one).
    With each constant only one run reads. Empty when fewer than GATHER_MIN ops are loose, or none
    in a run of two or more. torchvision's detection models post-process in plain functions after
    roi_heads (~800 ops pasting 100 masks) and loop over images and classes inside roi_heads: their
    depth-1 and depth-2 PNGs were tens of Mpx of loose ops."""
    runs: dict[tuple, list] = {}        # scope → its runs so far: (the child call it follows, [ops])
    open_: set[tuple] = set()            # scopes whose last run is still open
    last: dict[tuple, str] = {}          # scope → the key of its child called last
    loose = 0
    for n in graph:
        s = scope_of(n)
        for k in range(min(len(s), depth)):         # n runs in a child of s[:k]: that scope's run ends
            open_.discard(s[:k])
            last[s[:k]] = s[k].key
        if n.kind != "op" or n.id == graph.output or len(s) >= depth:
            continue
        loose += 1
        if s not in open_:
            runs.setdefault(s, []).append((last.get(s, ""), []))
            open_.add(s)
        runs[s][-1][1].append(n.id)
    if loose < GATHER_MIN:
        return {}
    out: dict[str, tuple] = {}
    for s, pieces in runs.items():
        for prev, ids in pieces:
            if len(ids) < 2:
                continue
            where = f"ops after {prev}" if prev else (f"ops in {s[-1].key}" if s else "ops before the first module")
            frame = Gathered(where, f"{len(ids)} ops in no module" if not s else f"{len(ids)} ops of {s[-1].cls}")
            out.update((i, s + (frame,)) for i in ids)
    if not out:
        return {}
    readers = graph.consumers()
    for n in graph:         # a constant that only one run's ops read goes into its box
        if n.kind == "const" and len(scope_of(n)) < depth:
            homes = {out.get(e.dst) for e in readers.get(n.id, ())}
            if len(homes) == 1 and None not in homes:
                out[n.id] = homes.pop()
    return out


def _read_apart(graph: Graph, readers_of: dict, fmap: dict[str, str], leaf: str, depth: int) -> bool:
    """A parameter or buffer whose readers are drawn in different boxes at this depth: T5's tied
    `shared.weight`, read by the encoder's and the decoder's embeddings and by lm_head. Collapsed into
    the module of its first reader, it would leave that box as if it were its output; drawn on its own,
    it is an input of each box that reads it."""
    homes = set()
    for e in readers_of.get(leaf, ()):
        r = fmap.get(e.dst, e.dst)
        s = scope_of(graph[r])
        homes.add(s[:depth] if len(s) >= depth else r)
        if len(homes) > 1:
            return True
    return False


def find_groups(graph: Graph, run: RunSummary, members: dict[tuple, list[str]] | None = None) -> dict[tuple, Group]:
    """Loops (one module path called repeatedly) and folds (consecutive same-structure siblings)."""
    members = module_calls(graph) if members is None else members
    kids = _children(members)
    groups: dict[tuple, Group] = {}
    hidden: set[tuple] = set()
    under_hidden: set[tuple] = set()      # hidden calls and everything inside them
    for parent in sorted(kids, key=len):
        if parent in hidden or (len(parent) and Scope.of(parent).parent in under_hidden):
            under_hidden.add(parent)
            continue
        calls = kids[parent]
        if len(calls) < 2:
            continue                    # nothing to fold or loop over: a lone call (deep nesting)
        sigs = _Signatures(graph, run, members)
        used: set[tuple] = set()
        # loops: the same module path called several times with the same structure
        by_path: dict[str, list[tuple]] = {}
        for c in calls:
            by_path.setdefault(c[-1].path, []).append(c)
        for path_calls in by_path.values():
            # runs of calls where each reads the one before and has the same structure
            steps: list[tuple] = []
            for c in path_calls + [None]:
                if (c is not None and steps and sigs.same(c, steps[0])
                        and _steps_chained(graph, members[steps[-1]], members[c])):
                    steps.append(c)
                    continue
                if len(steps) > 1:
                    groups[steps[0]] = Group("loop", list(steps), steps[0][-1].cls,
                                             [param_norm(graph, run, members[x]) for x in steps])
                    used.update(steps)
                    hidden.update(steps[1:])
                    under_hidden.update(steps[1:])
                steps = [c] if c is not None else []
        # folds: runs of consecutive calls of different modules with equal signatures
        run_: list[tuple] = []
        for c in calls + [None]:
            if (c is not None and c not in used and run_ and sigs.same(c, run_[0])
                    and _chained(graph, members[run_[-1]], members[c], members[run_[0]])):
                run_.append(c)
                continue
            if len(run_) > 1:
                groups[run_[0]] = Group("fold", list(run_), run_[0][-1].cls,
                                        [param_norm(graph, run, members[x]) for x in run_])
                hidden.update(run_[1:])
                under_hidden.update(run_[1:])
            run_ = [c] if c is not None and c not in used else []
    return groups


class _Signatures(dict):
    """_signature of each call, taken when first compared: a call with no sibling of its class
    never needs one, and a signature costs the call's ops times their nesting below it."""

    def __init__(self, graph: Graph, run: RunSummary, members: dict):
        super().__init__()
        self.graph, self.run, self.members = graph, run, members

    def __missing__(self, call):
        sig = self[call] = _signature(self.graph, self.run, call, self.members[call])
        return sig

    def same(self, a, b) -> bool:
        """Equal signatures; refused at once when the classes differ (the signature's first item)."""
        return a[-1].cls == b[-1].cls and self[a] == self[b]


def build_picture(graph: Graph, run: RunSummary, depth: int | None = None, fold: bool = True,
                  groups: dict[tuple, Group] | None = None, gather: bool = False) -> Picture:
    """Map every recorded node to the drawn node that stands for it, and merge the edges. `groups`:
    find_groups(graph, run), when the caller has it already (they do not depend on the depth, and
    the levels of one model's picture were each finding them again). `gather`: the ops that ran in
    no module are collapsed too, each run of them between two module calls into one box
    (gathered_ops), for a picture coarser than depth 1."""
    members = module_calls(graph)
    pseudo = gathered_ops(graph, depth or 1) if gather else {}
    if not fold:
        groups = {}
    elif groups is None:
        groups = find_groups(graph, run, members)
    # 1. folding: members of repetitions 2..N stand for the same-position member of repetition 1
    fmap = {n.id: n.id for n in graph}
    call_of: dict[str, tuple] = {}      # recorded node → (group rep, repetition index)
    for rep, grp in groups.items():
        prefix = rep[-1].path
        rep_leaves = {_role(graph, m, prefix): m for m in members[rep] if graph[m].kind != "op"}
        for j, c in enumerate(grp.calls):
            pairs = list(zip(_ops(graph, members[c]), _ops(graph, members[rep]), strict=True))
            cp = c[-1].path
            pairs += [(m, rep_leaves[_role(graph, m, cp)]) for m in members[c]
                      if graph[m].kind != "op" and _role(graph, m, cp) in rep_leaves]
            for a, b in pairs:
                if fmap[a] == a:
                    fmap[a] = fmap[b] if j else a
                call_of.setdefault(a, (rep, j))
    # 2. depth: anything at or below level `depth` becomes its module's node
    dmap: dict[str, str] = {}
    nodes: dict[str, DNode] = {}
    readers_of = graph.consumers()
    for n in graph:
        rid = fmap[n.id]
        r = graph[rid]
        s = scope_of(r)
        if rid in pseudo or (depth is not None and len(s) >= depth and depth >= 1 and not (n.kind == "input") and not (
                n.kind in ("param", "const") and _read_apart(graph, readers_of, fmap, n.id, depth))):
            mod = pseudo.get(rid) or s.prefix(depth)
            did = "/".join(f.key for f in mod)
            if did not in nodes:
                nodes[did] = DNode(did, "module", [], mod.parent if isinstance(mod, Scope) else mod[:-1], module=mod)
                if rid in call_of:
                    nodes[did].word = WORDS[groups[call_of[rid][0]].style][1]
            dmap[n.id] = did
            nodes[did].members.append(n.id)
            continue
        dmap[n.id] = rid
        if rid not in nodes:
            nodes[rid] = DNode(rid, r.kind, [], s)
            if rid in call_of:
                nodes[rid].word = WORDS[groups[call_of[rid][0]].style][1]
        nodes[rid].members.append(n.id)
    # 3. parallel duplicates feeding a repeated body merge into one node: x[:, t] for every step
    # (in TorchScript and export programs that is a slice and a select per step, so a node whose
    # readers all feed the body counts as feeding it too)
    if groups:
        readers: dict[str, list[str]] = {}
        for n in graph:
            for i in n.inputs:
                readers.setdefault(i, []).append(n.id)
        feeds: dict[str, frozenset] = {}
        for n in reversed(graph.nodes):
            if n.kind != "op" or n.id in call_of or dmap[n.id] != n.id or not readers.get(n.id):
                continue
            reached: set = set()
            for c in readers[n.id]:
                if c in call_of:
                    reached.add(call_of[c][0])
                elif c in feeds:
                    reached |= feeds[c]
                else:
                    break
            else:
                feeds[n.id] = frozenset(reached)
        seen: dict[tuple, str] = {}
        for n in graph:
            if n.id not in feeds:
                continue
            v = run.values.get(n.id)
            key = (n.op, tuple(dmap[i] for i in n.inputs), scope_of(n), getattr(first(v), "shape", None),
                   feeds[n.id])
            if key in seen:
                keep = seen[key]
                dmap[n.id] = keep
                nodes[keep].members.append(n.id)
                nodes[keep].copies += 1
                del nodes[n.id]
            else:
                seen[key] = n.id
    # 3b. a module's parameters and buffers that feed the same op share one box (BatchNorm's four
    # tensors are one box with four rows, not four boxes side by side)
    by_owner: dict[tuple, list[str]] = {}
    for n in graph:
        did = dmap[n.id]
        if n.kind in ("param", "const") and did == n.id and n.name and "." in n.name:
            readers = {dmap[c.dst] for c in readers_of.get(n.id, [])}
            if len(readers) == 1:
                by_owner.setdefault((n.name.rpartition(".")[0], next(iter(readers))), []).append(n.id)
    for (owner, _reader), leaves in by_owner.items():
        if len(leaves) < 2:
            continue
        gid = f"{owner}/params"
        if gid in nodes:
            continue
        lead = nodes[leaves[0]]
        nodes[gid] = DNode(gid, "params", [], lead.scope, parts=list(leaves), word=lead.word)
        for leaf in leaves:
            for m in nodes.pop(leaf).members:
                dmap[m] = gid
                nodes[gid].members.append(m)
    # 4. edges between drawn nodes, merged; inside one drawn node they disappear
    edges: dict[tuple, DEdge] = {}
    tensors: dict[tuple, set] = {}       # drawn edge → the distinct recorded tensors it stands for
    recs: dict[tuple, list] = {}         # drawn edge → the recorded edges (consumer, arg), tensor, where
    n_consumers: dict[str, int] = {}
    reads: dict[tuple, int] = {}         # recorded tensor (node, output) → how many edges read it
    for n in graph:
        outs = n.meta.get("out_index") or ()
        for k, src in enumerate(n.inputs):
            n_consumers[src] = n_consumers.get(src, 0) + 1
            t = (src, outs[k] if k < len(outs) else 0)
            reads[t] = reads.get(t, 0) + 1
    drawn: list[tuple] = []              # every recorded edge that is drawn: (node, k, src, s, d, back, what)
    for n in graph:
        outs = n.meta.get("out_index") or ()
        for k, src in enumerate(n.inputs):
            s, d = dmap[src], dmap[n.id]
            cs, cd = call_of.get(src), call_of.get(n.id)
            # a loop's step-to-step edge (h_t → h_{t+1}); a one-op body (LSTMCell) makes it a self-loop
            back = bool(cs and cd and cs[0] == cd[0] and cs[1] != cd[1] and groups[cs[0]].style == "loop"
                        and graph[src].kind == "op")
            if s == d and not back:
                continue
            if cs and cd and cs[0] == cd[0] and cs[1] != cd[1] and not back and graph[src].kind == "op":
                continue                # block i → block i+1 inside a ×N fold: the ×N says it
            # which tensor: named by its representative (block 1's, step 1's), so N blocks' or steps'
            # copies of it are one
            if back:
                what = None
            elif nodes[s].kind == "module":
                what = (fmap[src], outs[k] if k < len(outs) else 0)
            else:
                what = (s, (outs[k] if k < len(outs) else 0) if nodes[s].kind == "op" else 0)
            drawn.append((n, k, src, s, d, back, what))
    # One drawn edge per tensor: a box handing on three tensors (T5's block 0 gives the folded blocks
    # its hidden state and two position biases) draws three edges, each with its own shape and
    # numbers, not one labelled with the first's shape and "×3". Many tensors between two boxes that
    # are not a fold (an FPN's five feature maps into the RPN) stay one edge, which names the shapes
    # it pools (DEdge.shapes): five edges side by side made Mask R-CNN's picture twice as wide. A
    # loop's step-to-step edge stays one, (h, c) counted per step.
    kinds: dict[tuple, set] = {}
    for _n, _k, _src, s, d, back, what in drawn:
        kinds.setdefault((s, d, back), set()).add(what)
    for n, k, src, s, d, back, what in drawn:
        outs = n.meta.get("out_index") or ()
        cs, cd = call_of.get(src), call_of.get(n.id)
        tensor = (src, outs[k] if k < len(outs) else 0)
        split = (len(kinds[(s, d, back)]) <= SPLIT_MAX or _repeated(nodes[s], groups)
                 or _repeated(nodes[d], groups) or s in call_of or d in call_of)
        key = (s, d, back, what if split else None)
        if key not in edges:
            edges[key] = DEdge(s, d, run.edge_values.get((n.id, k)), run.edge_grads.get((n.id, k)), 1, back,
                               leaf=graph[src].kind in ("param", "const") and n_consumers.get(src) == 1)
            tensors[key] = set()
            recs[key] = []
        # which step, block or merged copy this recorded edge belongs to
        recs[key].append(((n.id, k), tensor, (cs, cd, n.id if d in nodes and nodes[d].copies > 1 else None)))
        if graph[src].kind != "op" and cd and cd[1] > 0:
            continue                # repetition k's use of a shared parameter: drawn once
        same_group = cs and cd and cs[0] == cd[0]
        if back or not (same_group or graph[src].kind in ("param", "const")):
            tensors[key].add(tensor if not cs or cs[1] == 0 else (tensor, cs[1]))
    for key, e in edges.items():
        # ×k counts distinct tensors (20 steps' outputs into one stack), not one tensor read twice
        e.count = max(1, len(tensors[key]))
        if e.back:      # ×19 steps, each handing on its state: h, or the 2 tensors of (h, c)
            steps = len({t[1] for t in tensors[key]})
            e.per_step, e.count = max(1, e.count // max(steps, 1)), max(1, steps)
        _aggregate(e, recs[key], run, reads, groups)
        if key[3] is None and not e.back and e.count > 1:       # several tensors as one edge: their shapes
            seen = dict.fromkeys(getattr(run.edge_values.get(x), "shape", None) for x, _t, _w in recs[key])
            e.shapes = [tuple(x) for x in seen if x is not None]
        if nodes[e.src].kind == "params":       # which of the box's tensors the edge carries
            owner = e.src.rpartition("/")[0]
            carried = {t[0] for _e, t, _w in recs[key]}
            e.parts = [(graph[m].name or m)[len(owner) + 1:] for m in nodes[e.src].parts if m in carried]
    same: dict[str, list[str]] = {}
    for a, b in fmap.items():
        if a != b:
            same.setdefault(b, [b]).append(a)
    return Picture(nodes, list(edges.values()), groups, depth, max_depth(graph), same)


def combine(infos: list) -> TensorInfo | None:
    """Several distinct tensors as one: the statistics of all their elements together (the norm is
    √Σ‖tᵢ‖², so 20 slices x[:, t] combine to x's norm). Values are dropped; the shape is the first's."""
    infos = [i for i in infos if i is not None]
    if not infos:
        return None
    if len(infos) == 1:
        return infos[0]
    head = infos[0]
    if any(i.stats is None or i.stats.get("mean") is None for i in infos):
        return TensorInfo(head.shape, head.dtype, None)
    sizes = [max(i.numel, 1) for i in infos]
    total = sum(sizes)
    mean = sum(n * i.stats["mean"] for n, i in zip(sizes, infos)) / total
    var = sum(n * (i.stats["std"] ** 2 + (i.stats["mean"] - mean) ** 2) for n, i in zip(sizes, infos)) / total
    lows, highs = [i.stats["min"] for i in infos], [i.stats["max"] for i in infos]
    nan = any(x != x for x in lows + highs)
    st = {"mean": mean, "std": math.sqrt(max(var, 0.0)) if var == var else var,
          "min": math.nan if nan else min(lows), "max": math.nan if nan else max(highs),
          "norm": math.sqrt(sum(i.stats["norm"] ** 2 for i in infos))}
    return TensorInfo(head.shape, head.dtype, st)


def _sum_exact(infos: list) -> TensorInfo | None:
    """One tensor's gradients along several edges, added element by element (values kept only for
    small tensors, so None when any is missing)."""
    from ..core.fmt import stats
    if any(i is None or i.values is None for i in infos):
        return None
    total = sum(i.values for i in infos)
    return TensorInfo(infos[0].shape, infos[0].dtype, stats(total), total)



def _aggregate(e: DEdge, recs: list, run: RunSummary, reads: dict, groups: dict) -> None:
    """The numbers of a drawn edge that stands for several recorded edges (N steps, N blocks, N
    merged copies, several reads of one tensor, a box's several tensors): the value over all of them,
    and the gradient summed per tensor (∂L/∂x over every read of x) then taken over all tensors, so it
    agrees with the node it leaves. The note says what was summed or pooled, in words that say what
    the parts are: blocks or steps only when the recorded edges lie in different repetitions of one
    fold or loop (four branches reading one tensor are four reads, not four blocks). When a sum
    cannot be computed exactly (large tensors keep no values), the edge keeps the first read's
    gradient and says whose it is."""
    if len(recs) < 2:
        return
    by_tensor: dict[tuple, list] = {}
    for edge, tensor, _w in recs:
        by_tensor.setdefault(tensor, []).append(edge)
    e.value = combine([run.edge_values.get(es[0]) for es in by_tensor.values()]) or e.value
    grads, exact = [], True
    for (src, idx), es in by_tensor.items():
        gs = [run.edge_grads.get(x) for x in es]
        if len(es) == 1 or all(g is None for g in gs):
            grads.append(gs[0])
        elif reads.get((src, idx)) == len(es) and idx == 0 and run.grads.get(src) is not None:
            grads.append(run.grads[src])          # every read of the tensor: its whole gradient
        else:
            g = _sum_exact(gs)
            if g is None:
                exact = False
                break
            grads.append(g)
    span = _span(recs)
    unit_of = [_unit(w, span) for _e, _t, w in recs]
    n, k = len(set(unit_of)), len(by_tensor)
    one, many = WORDS[groups[span].style] if span is not None else ("read", "reads")
    if not exact:
        e.note = (f"{one} 1's read; all {n} {many} read it" if k == 1 and n > 1 else
                  f"{one} 1's only, of {n}" if n > 1 else f"1 of {len(recs)} reads")
        return
    e.grad = combine(grads)
    if e.grad is None:
        return
    if k == 1:
        if n > 1:
            e.note = f"Σ {n} {many}" if len(recs) == n else f"Σ {len(recs)} reads in {n} {many}"
    elif n < 2:
        e.note = f"{k} tensors"
    elif _own(recs, unit_of):
        e.note = f"all {n} {many}"          # each block's (step's) own tensors, pooled
        e.over = span
    else:
        e.note = f"{k} tensors, each Σ {n} {many}"


def _span(recs: list) -> tuple | None:
    """The fold or loop a drawn edge spans: its recorded edges lie in two or more of that group's
    repetitions. Reads that each enter block 0 of a different fold (Inception's branches, each with
    a fold inside) span none: they are reads, not blocks."""
    seen: dict[tuple, set] = {}
    for _e, _t, (cs, cd, _c) in recs:
        for c in (cs, cd):
            if c:
                seen.setdefault(c[0], set()).add(c[1])
    return max((g for g in seen if len(seen[g]) > 1), key=lambda g: len(seen[g]), default=None)


def _unit(where: tuple, span: tuple | None):
    """Which repetition of the spanned group a recorded edge lies in (None: outside it), or, when
    the edge spans none, which merged copy (x[:, t] for step t) it reads into."""
    cs, cd, copy = where
    if span is None:
        return copy
    return next((c[1] for c in (cd, cs) if c and c[0] == span), None)


def _own(recs: list, units: list) -> bool:
    """Each tensor is read in one repetition only: every block (step) of the edge has its own tensors."""
    where: dict[tuple, set] = {}
    for (_e, t, _w), u in zip(recs, units):
        where.setdefault(t, set()).add(u)
    return all(len(v) == 1 for v in where.values())
