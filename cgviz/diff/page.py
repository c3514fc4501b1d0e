"""The side-by-side page of a comparison: A's picture, the diff, B's picture, one self-contained HTML
file; clicking a node in any panel selects its counterparts in the other two and says why they match."""

from __future__ import annotations

import html
import json
import re

_NODE_TITLE = re.compile(r'<g id="[^"]*" class="node">\s*<title>(.*?)</title>', re.S)


def titles(svg: str) -> list[str]:
    """The DOT id of every node Graphviz drew, from its <title>."""
    return [html.unescape(t) for t in _NODE_TITLE.findall(svg)]


def _side_map(svg: str, doc: dict, union_of: dict[str, str]) -> dict[str, list[str]]:
    """A drawing's node titles → union ids: a node by its id, a module's parameter box (`M/params`)
    by the parameters of M."""
    out: dict[str, list[str]] = {}
    for t in titles(svg):
        if t in union_of:
            out[t] = [union_of[t]]
        elif t.endswith("/params"):
            module = t[: -len("/params")]
            out[t] = [union_of[n["id"]] for n in doc["nodes"]
                      if n.get("kind") == "param" and n.get("module") == module and n["id"] in union_of]
    return out


def page(c) -> str:
    """The page of Comparison `c` (a side that is a saved document, not drawn here, has no panel)."""
    from .picture import boxes
    diff = c.difference
    where, _ = boxes(diff, c.max_nodes)
    info = {n.id: {"status": n.status, "a": n.a, "b": n.b, "reason": n.reason,
                   "lines": n.facts + [x.text(s) for x, s in ((n.value, "‖v‖"), (n.grad, "‖g‖"))
                                       if x is not None and x.beyond]} for n in diff.nodes}
    diff_svg = c.svg()
    diff_map: dict[str, list[str]] = {}
    for uid, box in where.items():
        diff_map.setdefault(box, []).append(uid)
    panels = []
    maps = {"diff": diff_map}
    for key, s, title in (("a", c.a, "A"), ("b", c.b, "B")):
        if s.drawing is None:
            continue
        svg = s.drawing.svg()
        union_of = {n.a if key == "a" else n.b: n.id for n in diff.nodes if (n.a if key == "a" else n.b)}
        maps[key] = _side_map(svg, s.doc, union_of)
        panels.append((key, f"{title}: {s.label}", svg))
    panels.insert(1 if panels and panels[0][0] == "a" else 0, ("diff", "difference", diff_svg))
    body = "".join(f'<section class="pane" id="pane-{k}"><h2>{html.escape(t)}</h2><div class="svg">{svg}</div></section>'
                   for k, t, svg in panels)
    data = json.dumps({"maps": maps, "info": info}, ensure_ascii=False).replace("</", "<\\/")
    summary = "".join(f"<li>{html.escape(line)}</li>" for line in diff.summary_lines())
    return _PAGE.format(title=html.escape(f"cgviz diff: {diff.a_label} ↔ {diff.b_label}"), summary=summary,
                        body=body, data=data, n=len(panels))


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<style>
body {{ font-family: "DejaVu Sans", sans-serif; margin: 0; }}
header {{ padding: 6px 12px; border-bottom: 1px solid #ddd; font-size: 13px; }}
header ul {{ margin: 4px 0; padding-left: 18px; }}
#info {{ min-height: 1.4em; color: #333; font-weight: bold; }}
main {{ display: grid; grid-template-columns: repeat({n}, 1fr); height: calc(100vh - 160px); }}
.pane {{ border-right: 1px solid #ddd; display: flex; flex-direction: column; min-width: 0; }}
.pane h2 {{ font-size: 13px; margin: 4px 8px; }}
.svg {{ overflow: auto; flex: 1; }}
.svg svg {{ max-width: none; }}
g.node {{ cursor: pointer; }}
g.node.sel > ellipse, g.node.sel > polygon, g.node.sel > path {{ stroke: #ff00aa; stroke-width: 4px; }}
</style></head><body>
<header><div>{title}</div><ul>{summary}</ul><div id="info">Click a node in any panel: its counterparts are selected in the others.</div></header>
<main>{body}</main>
<script id="cgviz-diff-data" type="application/json">{data}</script>
<script>
(function () {{
  const data = JSON.parse(document.getElementById("cgviz-diff-data").textContent);
  const title = g => (g.querySelector("title") || {{}}).textContent;
  function select(uids) {{
    const want = new Set(uids);
    for (const [pane, map] of Object.entries(data.maps)) {{
      let first = null;
      document.querySelectorAll(`#pane-${{pane}} g.node`).forEach(g => {{
        const hit = (map[title(g)] || []).some(u => want.has(u));
        g.classList.toggle("sel", hit);
        if (hit && !first) first = g;
      }});
      if (first) first.scrollIntoView({{block: "center", inline: "center"}});
    }}
    const said = uids.map(u => {{
      const i = data.info[u];
      return i ? `${{u}}: ${{i.status}}${{i.reason ? " — " + i.reason : ""}}${{i.lines.length ? " — " + i.lines.join("; ") : ""}}` : u;
    }});
    document.getElementById("info").textContent = said.slice(0, 3).join(" | ") + (said.length > 3 ? ` (and ${{said.length - 3}} more)` : "");
  }}
  for (const pane of Object.keys(data.maps)) {{
    document.querySelectorAll(`#pane-${{pane}} g.node`).forEach(g => g.addEventListener("click", () => {{
      select(data.maps[pane][title(g)] || []);
    }}));
  }}
  window.cgvizDiff = {{select, data}};
}})();
</script></body></html>
"""
