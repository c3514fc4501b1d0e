"""The side-by-side page of a comparison: A's picture, the diff, B's picture, one self-contained HTML
file; clicking a node in any panel selects its counterparts in the other two and says why they match,
clicking a module's box opens that module in all three (a picture per module level, breadcrumbs back)."""

from __future__ import annotations

import html
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor

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


def levels(c) -> tuple[dict[str, dict], str, dict[str, str]]:
    """The drill-down's levels of Comparison `c`: the whole model (key "") and the inside of every
    module drawn as one box somewhere (with more than one node), each {label, parent, where: union
    id → its box there}; the level it opens at, the shallowest that draws the first divergence (or,
    when nothing diverges, a change) as itself; and each union node's level, the shallowest drawing it."""
    from .picture import boxes, quieted
    diff, _ = quieted(c.difference)
    size: dict[str, int] = {}
    for n in diff.nodes:
        parts = n.module.split(".") if n.module else []
        for i in range(1, len(parts) + 1):
            size[".".join(parts[:i])] = size.get(".".join(parts[:i]), 0) + 1
    out: dict[str, dict] = {}
    todo = [("", None)]
    while todo:
        key, parent = todo.pop(0)
        where, _ = boxes(diff, c.max_nodes, key)
        opens = {}
        for box in sorted(set(where.values())):
            module = box[len("module:"):] if box.startswith("module:") else None
            if module is not None and size.get(module, 0) > 1:
                opens[box] = module
                if module not in out and all(module != k for k, _ in todo):
                    todo.append((module, key))
        label = "model" if not key else key[len(parent) + 1:] if parent else key
        out[key] = {"label": label, "parent": parent, "where": where, "opens": opens}
    home: dict[str, str] = {}
    for key, level in out.items():            # in breadth-first order: the shallowest first
        for uid, box in level["where"].items():
            if box == uid:
                home.setdefault(uid, key)
    first = c.difference.first_divergence
    changed = next((n.id for n in diff.nodes if n.status != "same" and n.id in home), None)
    start = home.get(first.id if first is not None else changed, "") if (first or changed) else ""
    return out, start, home


def page(c) -> str:
    """The page of Comparison `c` (a side that is a saved document, not drawn here, has no panel).
    With modules to drill into, every panel is drawn level by level from the union graph, so that
    A, the difference and B open the same module together; without, A and B are their own drawings."""
    from ..view.graphviz import run_dot
    from .picture import to_dot
    diff = c.difference
    lv, start, home = levels(c)
    info = {n.id: {"status": n.status, "a": n.a, "b": n.b, "reason": n.reason,
                   "lines": n.facts + [x.text(s) for x, s in ((n.value, "‖v‖"), (n.grad, "‖g‖"))
                                       if x is not None and x.beyond]} for n in diff.nodes}
    sides = [(k, s, t) for k, s, t in (("a", c.a, "A"), ("b", c.b, "B")) if s.drawing is not None]
    heads = {"diff": "difference", **{k: f"{t}: {s.label}" for k, s, t in sides}}
    order = [k for k in ("a", "diff", "b") if k in heads]
    # every level's DOT first, then Graphviz on all of them at once: a GPT-2's 49 levels are 146
    # small layouts, each mostly waiting for its process
    todo: dict[tuple[str, str], str] = {}
    for key in lv:
        for pane in order:
            if pane == "diff" and key != "":
                todo[key, pane] = to_dot(diff, c.rankdir, c.max_nodes, key)
            elif pane != "diff" and len(lv) > 1:    # one level: each side is its own drawing
                todo[key, pane] = to_dot(diff, c.rankdir, c.max_nodes, key, pane)
    with ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        drawn = dict(zip(todo, pool.map(lambda dot: run_dot(dot, "svg", timeout=c.timeout, nodes=len(diff.nodes))
                                        .decode("utf-8"), todo.values())))
    data_levels: dict[str, dict] = {}
    for key, level in lv.items():
        diff_map: dict[str, list[str]] = {}
        for uid, box in level["where"].items():
            diff_map.setdefault(box, []).append(uid)
        diff_map.update(_stubs(diff, key, level["where"]))
        svgs, maps = {}, {}
        for pane in order:
            if (key, pane) in todo:
                svg, maps[pane] = drawn[key, pane], diff_map
            elif pane == "diff":
                svg, maps[pane] = c.svg(), diff_map
            else:
                s = c.a if pane == "a" else c.b
                svg = s.drawing.svg()
                maps[pane] = _side_map(svg, s.doc, {getattr(n, pane): n.id for n in diff.nodes if getattr(n, pane)})
            svgs[pane] = _clean(svg)
        data_levels[key] = {"label": level["label"], "parent": level["parent"], "opens": level["opens"],
                            "maps": maps, "svg": svgs}
    body = "".join(f'<section class="pane" id="pane-{k}"><h2>{html.escape(heads[k])}</h2><div class="svg">'
                   f'{data_levels[start]["svg"][k]}</div></section>' for k in order)
    for k in order:             # the first level is in the page itself; the script keeps it from there
        data_levels[start]["svg"][k] = None
    data = json.dumps({"levels": data_levels, "start": start, "home": home, "panes": order, "info": info},
                      ensure_ascii=False).replace("</", "<\\/")
    first = diff.first_divergence
    summary = "".join(
        f'<li><a href="#" class="goto" data-uid="{html.escape(first.id)}">{html.escape(line)}</a></li>'
        if first is not None and line.startswith("first divergence") else f"<li>{html.escape(line)}</li>"
        for line in diff.summary_lines())
    return _PAGE.format(title=html.escape(f"cgviz diff: {diff.a_label} ↔ {diff.b_label}"), summary=summary,
                        body=body, data=data, n=len(order))


def _clean(svg: str) -> str:
    """Graphviz's SVG without its prolog and comments, to sit inside the page."""
    svg = re.sub(r"<\?xml[^>]*\?>|<!DOCTYPE[^>]*>", "", svg)
    return re.sub(r"<!--.*?-->", "", svg, flags=re.S).strip()


def _stubs(diff, root: str, where: dict[str, str]) -> dict[str, list[str]]:
    """A level's stubs (`outside:NAME`, as picture.scene draws them) → the union nodes outside it
    they stand for."""
    from .picture import outside
    by_id = {n.id: n for n in diff.nodes}
    out: dict[str, list[str]] = {}
    for e in diff.edges:
        if (e.src in where) != (e.dst in where):
            o = e.src if e.dst in where else e.dst
            members = out.setdefault("outside:" + outside(by_id[o], root), [])
            if o not in members:
                members.append(o)
    return out


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; img-src data:">
<style>
body {{ font-family: "DejaVu Sans", sans-serif; margin: 0; }}
header {{ padding: 6px 12px; border-bottom: 1px solid #ddd; font-size: 13px; }}
header ul {{ margin: 4px 0; padding-left: 18px; }}
#info {{ min-height: 1.4em; color: #333; font-weight: bold; }}
#crumbs {{ margin-top: 4px; }}
#crumbs a {{ color: #1565c0; }}
main {{ display: grid; grid-template-columns: repeat({n}, 1fr); height: calc(100vh - 180px); }}
.pane {{ border-right: 1px solid #ddd; display: flex; flex-direction: column; min-width: 0; }}
.pane h2 {{ font-size: 13px; margin: 4px 8px; }}
.svg {{ overflow: auto; flex: 1; }}
.svg svg {{ max-width: none; }}
g.node {{ cursor: pointer; }}
g.node.opens > polygon {{ stroke-width: 2px; }}
g.node.sel > ellipse, g.node.sel > polygon, g.node.sel > path {{ stroke: #ff00aa; stroke-width: 4px; }}
</style></head><body>
<header><div>{title}</div><ul>{summary}</ul>
<div id="crumbs"></div>
<div id="info">Click a node in any panel: its counterparts are selected in the others. Click a module's box to open it in every panel.</div></header>
<main>{body}</main>
<script id="cgviz-diff-data" type="application/json">{data}</script>
<script>
(function () {{
  const data = JSON.parse(document.getElementById("cgviz-diff-data").textContent);
  const title = g => (g.querySelector("title") || {{}}).textContent;
  let level = data.start, chosen = [];
  for (const pane of data.panes)        // the first level is drawn in the page: keep it for coming back
    data.levels[level].svg[pane] = document.querySelector(`#pane-${{pane}} .svg`).innerHTML;
  function mark(scroll) {{
    const want = new Set(chosen), maps = data.levels[level].maps;
    for (const pane of data.panes) {{
      let first = null;
      document.querySelectorAll(`#pane-${{pane}} g.node`).forEach(g => {{
        const hit = (maps[pane][title(g)] || []).some(u => want.has(u));
        g.classList.toggle("sel", hit);
        if (hit && !first) first = g;
      }});
      if (first && scroll) first.scrollIntoView({{block: "center", inline: "center"}});
    }}
  }}
  function select(uids) {{
    chosen = uids;
    mark(true);
    const said = uids.map(u => {{
      const i = data.info[u];
      return i ? `${{u}}: ${{i.status}}${{i.reason ? " — " + i.reason : ""}}${{i.lines.length ? " — " + i.lines.join("; ") : ""}}` : u;
    }});
    document.getElementById("info").textContent = said.slice(0, 3).join(" | ") + (said.length > 3 ? ` (and ${{said.length - 3}} more)` : "");
  }}
  function crumbs() {{
    const path = [];
    for (let k = level; k !== null; k = data.levels[k].parent) path.unshift(k);
    const nav = document.getElementById("crumbs");
    nav.textContent = "";
    if (Object.keys(data.levels).length === 1) return;     // nothing to drill into: no breadcrumbs
    path.forEach((k, i) => {{
      if (i) nav.append(" › ");
      if (k === level) {{ const b = document.createElement("b"); b.textContent = data.levels[k].label; nav.append(b); return; }}
      const a = document.createElement("a");
      a.href = "#"; a.textContent = data.levels[k].label; a.dataset.level = k;
      a.addEventListener("click", ev => {{ ev.preventDefault(); open(k); }});
      nav.append(a);
    }});
  }}
  function open(key, remember = true) {{
    // each level is a place in the browser's history: its Back button goes back up as the breadcrumbs do
    if (remember && key !== level) history.pushState({{level: key}}, "", "#" + encodeURIComponent(key));
    level = key;
    const L = data.levels[key];
    for (const pane of data.panes) {{
      document.querySelector(`#pane-${{pane}} .svg`).innerHTML = L.svg[pane];
      document.querySelectorAll(`#pane-${{pane}} g.node`).forEach(g => {{
        const t = title(g);
        if (L.opens[t]) g.classList.add("opens");
        g.addEventListener("click", () => L.opens[t] ? open(L.opens[t]) : select(L.maps[pane][t] || []));
      }});
    }}
    crumbs();
    mark(true);
  }}
  function go(uid) {{
    open(data.home[uid] !== undefined ? data.home[uid] : data.start);
    select([uid]);
  }}
  document.querySelectorAll("a.goto").forEach(a => a.addEventListener("click", ev => {{
    ev.preventDefault(); go(a.dataset.uid);
  }}));
  window.addEventListener("popstate", ev => {{
    const key = ev.state && ev.state.level !== undefined ? ev.state.level : data.start;
    if (key in data.levels) open(key, false);
  }});
  const asked = decodeURIComponent(location.hash.slice(1));
  if (location.hash && asked in data.levels) level = asked;       // a link to one level of the page
  history.replaceState({{level}}, "", location.hash ? location.hash : location.href);
  open(level, false);
  window.cgvizDiff = {{select, open, go, data, get level() {{ return level; }}}};
}})();
</script></body></html>
"""
