"""The inside of one module call as a graph of its own: its recorded nodes, and a stub for every
tensor that enters or leaves it, named after the producer or consumer outside.

`--focus` draws this graph at full detail, and each level of the drill-down page
(cgviz.plan.levels) is drawn from one. Nothing is recomputed: an edge from a stub carries the
summaries of the very recorded edge it stands for, so its numbers equal the full graph's.
"""

from __future__ import annotations

import dataclasses
from collections import ChainMap

from ..core.errors import OptionError
from ..core.ir import Graph, Node
from ..core.spelling import spell
from ..core.summary import RunSummary
from .structure import module_calls, scope_of

IN, OUT = "in:", "out:"      # stub id prefixes: a real node's id never has a colon before its slash


def calls_of(graph: Graph, members: dict[tuple, list[str]] | None = None) -> dict[str, tuple]:
    """Every module call by its name (`layers.3.self_attn`, or `cell:2` for a module's second call)
    → its scope prefix (a tuple of frames), in the order the calls ran. `members`:
    structure.module_calls(graph), when the caller has it."""
    out: dict[str, tuple] = {}
    for call in module_calls(graph) if members is None else members:
        out.setdefault(call[-1].key, call)
    return out


def find_call(graph: Graph, name: str) -> tuple:
    """The module call `name` names; an unknown name is a usage mistake that lists the nearest ones."""
    import difflib
    calls = calls_of(graph)
    if name in calls:
        return calls[name]
    near = difflib.get_close_matches(name, list(calls), n=3, cutoff=0.5)
    if not near:    # `attn` for `blocks.0.attn`: the names that end with it
        near = [k for k in calls if k.endswith("." + name) or k.split(".")[-1] == name][:3]
    hint = f"; did you mean {', '.join(near)}?" if near else (
        f"; its modules are {', '.join(list(calls)[:6])}{' …' if len(calls) > 6 else ''}" if calls else
        "; the model's ops ran in no module")
    raise OptionError(f"{spell('focus', name)}: the model has no module {name!r}{hint}")


def inside(graph: Graph, run: RunSummary, call: tuple,
           members: list[str] | None = None) -> tuple[Graph, RunSummary]:
    """The recorded nodes of `call` with boundary stubs, and the run their numbers are read from.

    Scopes start below the call (its children are the outermost frames), so a picture of depth 1
    shows the call's children as boxes, as the model's own depth 1 shows its top modules. A stub that feeds
    the inside is `in:<producer id>` and holds the producer's value; one that reads from it is
    `out:<consumer id>`, whose arguments are the inside's results it reads. Parameters and buffers of
    other modules (a tied embedding) come in as themselves. `members`: the call's recorded nodes
    (structure.module_calls(graph)[call]), when the caller has them: the page opens many calls of
    one graph, and finding each one's nodes by their scopes would read every node's scope again."""
    cut = len(call)
    sub = Graph(source=graph.source, meta=dict(graph.meta))
    values: dict = {}
    grads: dict = {}
    edge_values: dict = {}
    edge_grads: dict = {}
    inner = set(members) if members is not None else {n.id for n in graph if scope_of(n)[:cut] == call}
    outs: dict[str, list[tuple[str, int]]] = {}     # outside consumer → [(inner producer, its arg index)]
    for n in graph:
        if n.id not in inner:
            for k, i in enumerate(n.inputs):
                # a parameter read outside (a loop's later steps read the weights its first call
                # recorded) is not a result of the module
                if i in inner and graph[i].kind not in ("param", "const"):
                    outs.setdefault(n.id, []).append((i, k))
            continue
        ins = []
        for i in n.inputs:
            if i in inner:
                ins.append(i)
                continue
            src = graph[i]
            if src.kind in ("param", "const"):
                if i not in sub:
                    sub.add(Node(src.id, src.kind, src.op, (), src.name, src.attrs, {**src.meta, "scope": ()}))
                ins.append(i)
                continue
            sid = IN + i
            if sid not in sub:
                sub.add(Node(sid, "stub", src.op, (), i, {}, {"scope": (), "stub": "in", "of": i,
                                                             "module": src.meta.get("module")}))
                values[sid], grads[sid] = run.values.get(i), run.grads.get(i)
            ins.append(sid)
        sub.add(Node(n.id, n.kind, n.op, tuple(ins), n.name, n.attrs, {**n.meta, "scope": scope_of(n)[cut:]}))
    for c, reads in outs.items():
        node = graph[c]
        sid = OUT + c
        index = node.meta.get("out_index") or ()
        sub.add(Node(sid, "stub", node.op, tuple(i for i, _ in reads), c, {},
                     {"scope": (), "stub": "out", "of": c, "module": node.meta.get("module"),
                      "out_index": [index[k] if k < len(index) else 0 for _, k in reads]}))
        for j, (_, k) in enumerate(reads):
            edge_values[(sid, j)] = run.edge_values.get((c, k))
            edge_grads[(sid, j)] = run.edge_grads.get((c, k))
        values[sid], grads[sid] = run.values.get(c), run.grads.get(c)
    sub.output = graph.output if graph.output in inner else None
    sub.loss = graph.loss if sub.output else None
    overlay = dataclasses.replace(run, values=ChainMap(values, run.values), grads=ChainMap(grads, run.grads),
                                  edge_values=ChainMap(edge_values, run.edge_values),
                                  edge_grads=ChainMap(edge_grads, run.edge_grads))
    return sub, overlay


def repetition(calls, groups: dict, call: tuple) -> tuple | None:
    """The ×N fold or loop whose first repetition holds `call` (the nearest, for nested ones): its
    Group, and `call`'s counterpart in every repetition (None where a repetition has none). `calls`:
    every module call (the values of calls_of)."""
    best = None
    for rep, grp in groups.items():
        if call[:len(rep)] == rep and (best is None or len(rep) > len(best[0])):
            best = (rep, grp)
    if best is None:
        return None
    rep, grp = best
    rest = call[len(rep):]
    p0 = rep[-1].path

    def rel(frames: tuple, prefix: str) -> tuple:
        return tuple((f.path[len(prefix):], f.cls) for f in frames)

    want = rel(rest, p0)
    # among the calls below rep with the same relative names, `call` is the j-th (a loop inside a block)
    same = [c for c in calls if len(c) == len(call) and c[:len(rep)] == rep and rel(c[len(rep):], p0) == want]
    j = same.index(call)
    out = []
    for c in grp.calls:
        pk = c[-1].path
        found = [m for m in calls if len(m) == len(call) and m[:len(c)] == c and rel(m[len(c):], pk) == want]
        out.append(found[j] if j < len(found) else None)
    return grp, out
