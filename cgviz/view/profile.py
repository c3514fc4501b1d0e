"""How what a profile measured (cgviz.core.costs: Cost, Profile) is shown: node fills by share of the time,
cost lines, the terminal table, the JSON fields, the legend and the per-module rows (cgviz.pytorch.profile
measures and fills the two types; this module shows them, and never imports torch)."""

from __future__ import annotations

import math

# what `--profile` measured: the result types live in the core (cgviz.core.costs); kept importable here
from ..core.costs import Cost, Profile  # noqa: F401


# light to dark orange; black text stays readable on the darkest
_RAMP = ((0.0, (0xff, 0xff, 0xff)), (0.3, (0xfe, 0xe6, 0xce)), (0.6, (0xfd, 0xae, 0x6b)),
         (1.0, (0xf1, 0x69, 0x13)))
LEGEND = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0)


def fill(share: float) -> str:
    """The fill of a node taking `share` of the total time: the square root spreads the small shares
    (most nodes) over the light half of the ramp; strictly darker for a larger share."""
    t = math.sqrt(min(max(share, 0.0), 1.0))
    for (a, ca), (b, cb) in zip(_RAMP, _RAMP[1:]):
        if t <= b:
            f = (t - a) / (b - a)
            return "#" + "".join(f"{round(x + (y - x) * f):02x}" for x, y in zip(ca, cb))
    return "#" + "".join(f"{x:02x}" for x in _RAMP[-1][1])


def ms_text(us: float) -> str:
    ms = us / 1000.0
    if ms >= 100:
        return f"{ms:.0f} ms"
    if ms >= 1:
        return f"{ms:.1f} ms"
    if ms >= 0.1:
        return f"{ms:.2f} ms"
    return f"{us:.0f} µs"


def bytes_text(n: int) -> str:
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            v = n / size
            return f"{v:.1f} {unit}" if v < 10 else f"{v:.0f} {unit}"
    return f"{n} B"


def cost_text(c: Cost) -> str:
    """`fwd 1.2 ms · bwd 2.9 ms · 14 MB`, the row a node's label gains."""
    return f"fwd {ms_text(c.fwd_us)} · bwd {ms_text(c.bwd_us)} · {bytes_text(c.mem)}"


def table(prof: Profile, graph, run, top: int = 10) -> str:
    """The top `top` recorded nodes by time, with the total and what was not attributed."""
    from ..core.fmt import columns
    from ..core.fmt import shape_label as shape_text
    from ..core.summary import first
    rows = []
    for node_id, c in sorted(prof.nodes.items(), key=lambda kv: (-kv[1].total_us, kv[0]))[:top]:
        n = graph[node_id]
        ins = [shape_text(run.edge_values[(n.id, k)].shape) for k in range(len(n.inputs))
               if (n.id, k) in run.edge_values and graph[n.inputs[k]].kind not in ("param", "const")]
        out = first(run.values.get(n.id))
        shapes = ", ".join(ins) + (" → " if ins else "→ ") + (shape_text(out.shape) if out is not None else "?")
        scope = n.meta.get("scope") or ()
        module = scope[-1].key if scope else "(top)"       # `cell:3`: the 3rd call of a looped module
        cls = n.meta.get("class")
        rows.append([module + (f" {cls}" if cls else ""), n.op or "", shapes, ms_text(c.fwd_us),
                     ms_text(c.bwd_us), bytes_text(c.mem), f"{100 * prof.share(c):.1f}%"])
    head = ["module", "op", "shapes", "forward", "backward", "memory", "share"]
    runs = f"{prof.runs} measured runs averaged" if prof.runs > 1 else "1 measured run"
    un = prof.unattributed_us
    pct = 100 * un / prof.total_us if prof.total_us else 0.0
    out = [f"profile ({prof.device}, {runs} after a warm-up): {ms_text(prof.total_us)} per forward + backward, "
           f"forward {ms_text(prof.fwd_us)}, backward {ms_text(prof.bwd_us)}"]
    out += columns(head, rows, right={3, 4, 5, 6})
    what = ", ".join(f"{w} {ms_text(us)}" for w, us in prof.unattributed_by[:3] if us > 0)
    out.append(f"not attributed to any node: {ms_text(un)} ({pct:.1f}%)" + (f": {what}" if what else ""))
    return "\n".join(out) + "\n"


def to_json_fields(prof: Profile) -> dict:
    """The top-level `profile` of the JSON."""
    return {"total_ms": prof.total_us / 1000, "fwd_ms": prof.fwd_us / 1000, "bwd_ms": prof.bwd_us / 1000,
            "unattributed_ms": prof.unattributed_us / 1000, "runs": prof.runs, "device": prof.device}


def node_json(prof: Profile, node_id: str) -> dict:
    """A node's `profile` in the JSON (zeros for an op the measured run did not see)."""
    c = prof.nodes.get(node_id) or Cost()
    return {"fwd_ms": c.fwd_us / 1000, "bwd_ms": c.bwd_us / 1000, "mem_bytes": c.mem, "share": prof.share(c)}


def legend(prof: Profile) -> str:
    """The caption row (HTML-like label markup): the fill scale and the totals."""
    from .markup import html_text
    cells = "  ".join(f'<FONT COLOR="{fill(s)}">██</FONT> {html_text(f"{100 * s:g}%")}' for s in LEGEND)
    un = prof.unattributed_us
    pct = 100 * un / prof.total_us if prof.total_us else 0.0
    runs = f", mean of {prof.runs} runs" if prof.runs > 1 else ""
    text = (f"   of {ms_text(prof.total_us)} CPU per forward + backward{runs} "
            f"({ms_text(un)}, {pct:.1f}%, not attributed to a node)")
    return f'<FONT POINT-SIZE="10">time share  {cells}{html_text(text)}</FONT>'


def cluster_row(prof: Profile, pic, scope: tuple) -> str:
    """A ×N fold's or a loop's sum over every repetition: the drawn nodes inside it hold them all."""
    members = [m for dn in pic.nodes.values() if tuple(dn.scope)[:len(scope)] == scope
               or (dn.module is not None and tuple(dn.module)[:len(scope)] == scope) for m in dn.members]
    c = prof.cost(dict.fromkeys(members))
    return f"Σ {cost_text(c)}  ({100 * prof.share(c):.1f}%)"
