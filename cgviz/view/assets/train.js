// cgviz train's page (cgviz.view.html.train_page): the slider over the kept steps of gradient descent.
(function () {
  // The training slider: every label, red edge width and shade, and the panel's numbers follow the
  // chosen step; the layout is the last step's (the graph's shape never changes while training).
  const data = window.cgviz.data, T = data.train, NS = "http://www.w3.org/2000/svg";
  const svg = document.querySelector("#graph svg");
  const nodeLines = {};
  svg.querySelectorAll("g.node").forEach(g => {
    const texts = Array.from(g.querySelectorAll("text"));
    if (!texts.length) return;
    const shape = g.querySelector("polygon, ellipse, path");
    const b = shape.getBBox();
    const ys = [...new Set(texts.map(t => Number(t.getAttribute("y"))))].sort((a, b) => a - b);
    const dy = ys.length > 1 ? (ys[ys.length - 1] - ys[0]) / (ys.length - 1) : 12;
    nodeLines[g.getAttribute("data-id")] = {parent: texts[0].parentNode, cx: b.x + b.width / 2, ys, dy,
      family: texts[0].getAttribute("font-family"), size: Number(texts[0].getAttribute("font-size")), texts};
  });
  const edges = {};
  svg.querySelectorAll("g.edge").forEach(g => { const k = g.getAttribute("data-key"); (edges[k] = edges[k] || []).push(g); });
  function setNode(id, rows) {
    const n = nodeLines[id]; if (!n) return;
    n.texts.forEach(t => t.remove());
    n.texts = rows.map(([text, color, bold, small], i) => {
      const t = document.createElementNS(NS, "text");
      const y = i < n.ys.length ? n.ys[i] : n.ys[n.ys.length - 1] + (i - n.ys.length + 1) * n.dy;
      t.setAttribute("text-anchor", "middle"); t.setAttribute("x", n.cx); t.setAttribute("y", y);
      t.setAttribute("font-family", n.family); t.setAttribute("font-size", small ? n.size * 9 / 11 : n.size);
      if (bold) t.setAttribute("font-weight", "bold");
      if (color) t.setAttribute("fill", color);
      t.textContent = text; n.parent.appendChild(t); return t;
    });
  }
  function setEdges(key, list) {
    (edges[key] || []).forEach((g, i) => {
      const e = list[i]; if (!e) return;
      g.querySelectorAll("text").forEach((t, j) => { if (j < e.lines.length) t.textContent = e.lines[j]; });
      if (e.w !== undefined) g.querySelectorAll("path, polygon").forEach(p => {
        p.setAttribute("stroke-width", e.w); p.setAttribute("stroke-opacity", e.a);
        if (p.tagName === "polygon") p.setAttribute("fill-opacity", e.a);
      });
    });
  }
  const slider = document.getElementById("train-step"), info = document.getElementById("train-info");
  const marker = document.getElementById("train-marker");
  function setFrame(i) {
    const f = T.frames[i];
    Object.entries(f.nodes).forEach(([id, rows]) => setNode(id, rows));
    Object.entries(f.edges).forEach(([k, list]) => setEdges(k, list));
    Object.entries(f.panel).forEach(([id, kv]) => {
      const d = data.nodes[id]; if (!d) return;
      d.rows.forEach(r => { if (kv[r[0]] !== undefined) r[1] = kv[r[0]]; });
    });
    marker.setAttribute("cx", f.mx); marker.setAttribute("cy", f.my);
    info.textContent = `step ${f.step} of ${T.steps} · ${f.loss}`;
    slider.value = i; window.cgviz.trainFrame = i;
    const open = document.querySelector("g.node.selected");
    if (open) open.dispatchEvent(new MouseEvent("click"));
  }
  slider.addEventListener("input", e => setFrame(Number(e.target.value)));
  window.cgviz.train = {setFrame, frames: T.frames.length};
  setFrame(T.frames.length - 1);
})();
