"""The picture budget: what a drawing will cost Graphviz to lay out, and how big a PNG of it may be.

Layout time in `dot` does not follow the number of boxes. What it follows is the work of ordering
every rank (mincross) and placing every box (network simplex), and both grow with the *virtual*
nodes dot inserts wherever an edge spans more than one rank: a DenseNet block's concatenations
(layer k reads layers 0…k-1) are few boxes and hundreds of long edges. An edge label is one more
virtual node on the edge, and each cluster border an edge crosses adds constraints. So the
estimate reads the picture as dot will get it (a scene, or the DOT text written from one): its
nodes, its edges with their rank spans (ranks by longest path, as dot assigns them before
balancing), labels and cluster crossings.

The pixel budget keeps default PNGs within what image viewers and Pillow open without complaint
(Pillow refuses images above 89 Mpx as decompression bombs, and browsers struggle long before):
at most MAX_PNG_PIXELS pixels and MAX_PNG_SIDE pixels a side. A bigger drawing is rasterised at
a lower resolution (dpi), down to MIN_DPI, below which 9-point labels stop being legible.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

MAX_PNG_PIXELS = 40_000_000       # 40 Mpx: well under Pillow's 89 Mpx decompression-bomb limit
MAX_PNG_SIDE = 16_000             # px a side (Cairo's own limit is 32,767)
DEFAULT_DPI = 96.0                # Graphviz's PNG resolution
MIN_DPI = 48.0                    # half size: a 9-point label is 6 px high, about the least one can read

# A default PNG of a model is an overview: the finest level whose picture at DEFAULT_DPI stays
# within this many pixels (cgviz.route.model). `dot -Tpng` costs about 50-65 ms per Mpx
# (Cairo's drawing and zlib; measured on the ResNet-50 twin's levels: 2.9 Mpx 0.20 s, 16 Mpx
# 1.06 s, 44 Mpx 1.95 s) while the layout itself takes 0.03-0.1 s, so pixels are the whole cost.
# 5 Mpx (about torchview's ResNet-50 PNG, 503×10397 = 5.2 Mpx) keeps the PNG near 0.3 s, shows
# every block of ResNet-50 or T5 with its numbers, and the modules inside a Llama layer's ×N frame
# (4.7 Mpx; at 4 Mpx only the frame was left). SVG, PDF and HTML keep the finest level.
PNG_OVERVIEW_PIXELS = 5_000_000

# What an automatic choice may cost (in the units of Cost.score below), set from measurements with
# Graphviz 2.43 (`dot -Tdot`, layout only): the T5 twin's every op scores 132k and lays out in 3 s;
# a DenseNet twin's dense block at depth 3 (88 nodes, 1,244 labelled edges) scores 484k and does not
# finish in 30 s; a 20-step LSTMCell's autograd view scores 513k with labels (no layout in 60 s)
# and 186k without (4 s). The estimate only picks where to start: a layout that still runs long is
# stopped and the next coarser level drawn (cgviz.route.model).
LAYOUT_BUDGET = 200_000

_ID = r'"(?:[^"\\]|\\.)*"'
_STMT = re.compile(rf'^\s*({_ID})\s*(?:->\s*({_ID})\s*)?\[(.*)\]\s*;?\s*$')
_SUBGRAPH = re.compile(rf'^\s*subgraph\s+({_ID})\s*\{{')
_NO_CONSTRAINT = re.compile(r'\bconstraint="?false"?', re.I)
_LABEL = re.compile(r'(?:^|\s)label=(?:"[^"]|<)')


@dataclass(frozen=True)
class Cost:
    nodes: int
    edges: int
    labels: int            # labelled edges (each is one more rank's worth of virtual node in dot)
    clusters: int
    crossing: int          # edges whose ends sit in different clusters
    virtual: int           # Σ over edges of the ranks they span beyond one: dot's virtual nodes
    ranks: int

    @property
    def score(self) -> int:
        """A layout-work estimate: every real and virtual node, weighted by how much reordering the
        ranks they sit on invites (the longer the edges, the more there are to cross)."""
        width = (self.nodes + self.virtual) / max(self.ranks, 1)       # boxes per rank
        items = self.nodes + 2 * self.virtual + self.labels + 2 * self.crossing
        return int(items * (1 + math.sqrt(width)) + 4 * self.clusters)

    def describe(self) -> str:
        frames = f", {self.crossing:,} across {self.clusters:,} frames" if self.clusters else ""
        return f"{self.nodes:,} nodes, {self.edges:,} edges spanning {self.virtual:,} ranks in all{frames}"


def layout_cost(dot_text: str) -> Cost:
    """Read the cost of laying out one DOT document written by cgviz (one statement a line). The
    pictures' levels are chosen by cgviz.view.dot.scene_cost, from the scene itself; this reading of
    the text is the reference the tests hold scene_cost to, and measures DOT from elsewhere."""
    stack: list[str] = []
    cluster_of: dict[str, str] = {}
    edges: list[tuple[str, str, bool, bool]] = []
    clusters = 0
    for line in dot_text.splitlines():
        s = line.strip()
        m = _SUBGRAPH.match(line)
        if m:
            stack.append(m.group(1))
            clusters += m.group(1).startswith('"cluster')
            continue
        if s == "}":
            if stack:
                stack.pop()
            continue
        m = _STMT.match(line)
        if m is None:
            continue
        a, b, attrs = m.groups()
        if b is None:
            cluster_of.setdefault(a, stack[-1] if stack else "")
        else:
            edges.append((a, b, not _NO_CONSTRAINT.search(attrs), bool(_LABEL.search(attrs))))
    return cost_of(cluster_of, edges, clusters)


def cost_of(cluster_of: dict[str, str], edges: list[tuple[str, str, bool, bool]], clusters: int) -> Cost:
    """The cost of nodes (id → the cluster they sit in) and edges (src, dst, constraining, labelled):
    read from DOT text here, from a scene by cgviz.view.dot.scene_cost."""
    # ranks: the longest path over the constraining edges (Kahn's order; edges closing a cycle,
    # which dot reverses, are left out)
    succ: dict[str, list[str]] = {}
    indeg = {n: 0 for n in cluster_of}
    for a, b, constrain, _lab in edges:
        if constrain and a != b:
            succ.setdefault(a, []).append(b)
            indeg[b] = indeg.get(b, 0) + 1
            indeg.setdefault(a, 0)
    rank = dict.fromkeys(indeg, 0)
    todo = [n for n, k in indeg.items() if k == 0]
    while todo:
        a = todo.pop()
        for b in succ.get(a, ()):
            rank[b] = max(rank[b], rank[a] + 1)
            indeg[b] -= 1
            if indeg[b] == 0:
                todo.append(b)
    virtual = crossing = labels = 0
    for a, b, constrain, lab in edges:
        span = abs(rank.get(b, 0) - rank.get(a, 0))
        virtual += max(span - 1, 0) * (2 if lab else 1)
        labels += lab
        crossing += cluster_of.get(a, "") != cluster_of.get(b, "")
    return Cost(len(cluster_of), len(edges), labels, clusters, crossing, virtual,
                max(rank.values(), default=0) + 1)


_BB = re.compile(r'\bbb="([-0-9.e+]+),([-0-9.e+]+),([-0-9.e+]+),([-0-9.e+]+)"')


def drawing_size(laid_out: str) -> tuple[float, float] | None:
    """The width and height in points of a laid-out DOT document (the root graph's bounding box)."""
    m = _BB.search(laid_out)
    if m is None:
        return None
    x0, y0, x1, y1 = (float(v) for v in m.groups())
    return x1 - x0, y1 - y0


def png_dpi(width_pt: float, height_pt: float, pad_pt: float = 0.2 * 72) -> float:
    """The resolution that keeps a PNG of this drawing within the pixel budget (at most DEFAULT_DPI)."""
    # Graphviz rounds the bitmap's size up and adds a margin of its own: aim 1% under the budget
    w, h = width_pt + 2 * pad_pt + 2, height_pt + 2 * pad_pt + 2
    fits = min(DEFAULT_DPI,
               0.99 * 72.0 * MAX_PNG_SIDE / max(w, h, 1.0),
               0.99 * 72.0 * math.sqrt(MAX_PNG_PIXELS / max(w * h, 1.0)))
    return math.floor(fits * 100) / 100       # never rounds up past the budget


def png_pixels(width_pt: float, height_pt: float, dpi: float, pad_pt: float = 0.2 * 72) -> tuple[int, int]:
    """The width and height in pixels of a PNG of a drawing this big (points) at `dpi`."""
    return (math.ceil((width_pt + 2 * pad_pt) * dpi / 72), math.ceil((height_pt + 2 * pad_pt) * dpi / 72))
