// The recorded-run page (cgviz.view.watch_page): the step slider puts any recorded step's numbers on
// the one layout (gradient rows of the labels, red edges' width, shade and label, the panel), and
// drives the heatmap, the loss curve's marker and the histograms; a heatmap cell or an event jumps
// to its step and layer.
(function () {
  const W = JSON.parse(document.getElementById("cgviz-watch").textContent);
  const data = window.cgviz.data, K = W.steps.length;
  const slider = document.getElementById("train-step"), info = document.getElementById("train-info");
  let step = K - 1, layer = null;

  // numbers as cgviz.fmt.num writes them: 4 significant digits, 1e-5 rather than 1e-05
  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v === "string") return v === "nan" ? "NaN" : v;
    if (v === 0) return "0";
    const e = Math.floor(Math.log10(Math.abs(v)));
    let t = (e < -4 || e >= 4) ? v.toExponential(3) : v.toPrecision(4);
    if (t.includes("e")) { let [m, x] = t.split("e"); if (m.includes(".")) m = m.replace(/0+$/, "").replace(/\.$/, ""); return m + "e" + Number(x); }
    if (t.includes(".")) t = t.replace(/0+$/, "").replace(/\.$/, "");
    return t;
  }
  const pIdx = {}, mIdx = {};
  W.params.forEach((p, i) => { pIdx[p] = i; });
  W.modules.forEach((m, i) => { mIdx[m] = i; });
  // √Σx² of the named parameters' ‖g‖ (or modules' ‖∂L/∂out‖) at step k; "NaN"/"inf" if one is
  function norm(kind, names, k) {
    const col = kind === "p" ? W.P.g : W.M.grad, idx = kind === "p" ? pIdx : mIdx;
    let s = 0, any = false;
    for (const n of names) {
      const i = idx[n]; if (i === undefined) continue;
      const v = col[i][k];
      if (v === null) continue;
      if (typeof v === "string") return v === "nan" ? "NaN" : v;
      s += v * v; any = true;
    }
    return any ? Math.sqrt(s) : null;
  }

  // --- the graph: the level shown (the model, or a module's inside opened from its box or frame)
  // and, inside a ×N block, the block the selector shows: what each drawn node and red edge stands
  // for in a step's record (W.levels, keyed as the page's levels; one level when nothing opens)
  const LV = W.levels || {"": {nodes: W.nodes, edges: W.edges, frames: W.frames}};
  const root = data.levels ? data.root : "";
  let map = LV[root], svg = null, nodeEls = {}, rows = [], red = {}, panelRows = {}, lo = Infinity, hi = -Infinity;
  // the panels page.js shows for the level and block on screen (the block's own, else the level's)
  function panels() {
    const lv = data.levels ? data.levels[window.cgviz.level] : data, R = lv && lv.reps;
    const r = R && R.data[window.cgviz.rep];
    return [(r && r.nodes) || {}, (lv && lv.nodes) || {}];
  }
  // each node's gradient rows, matched by the text they start with, and the red edges, for the
  // SVG on screen (a level shown again is a fresh copy of its SVG: matched again)
  function bind() {
    const lv = LV[window.cgviz.level] || LV[root];
    map = (lv.reps && lv.reps[window.cgviz.rep]) || lv;
    svg = document.querySelector("#graph svg"); nodeEls = {}; rows = []; red = {};
    svg.querySelectorAll("g.node").forEach(g => { nodeEls[g.getAttribute("data-id")] = g; });
    const frameEls = {};
    svg.querySelectorAll("g.cluster").forEach(g => { frameEls[g.querySelector("title").textContent] = g; });
    const owners = Object.entries(map.nodes).map(([id, d]) => [nodeEls[id], d])
      .concat(Object.entries(map.frames || {}).map(([id, list]) => [frameEls[id], {rows: list}]));
    owners.forEach(([g, d]) => {
      if (!g) return;
      const used = new Set(), texts = Array.from(g.querySelectorAll("text"));
      d.rows.forEach(([prefix, kind, names]) => {
        // the loss line is the one that says "= value" (its module's name may start with "loss" too)
        const t = texts.find(t => !used.has(t) && t.textContent.startsWith(prefix) && (kind !== "L" || t.textContent.includes("= ")));
        if (!t) return;
        used.add(t);
        // what follows the number, as the drawing wrote it (kept: a text this page rewrote has its own)
        const rest = t.dataset.wrote === t.textContent ? t.dataset.rest : t.textContent.slice(prefix.length).replace(/^\S+/, "");
        t.dataset.rest = rest;
        rows.push({t, prefix, kind, names, rest});
      });
    });
    svg.querySelectorAll("g.edge.bwd").forEach(g => { red[g.getAttribute("data-key")] = g; });
    // one log scale over every step, so an edge's strength compares across steps (as cgviz.health's)
    lo = Infinity; hi = -Infinity;
    Object.values(map.edges).forEach(([kind, names]) => {
      for (let k = 0; k < K; k++) {
        const v = norm(kind, names, k);
        if (typeof v === "number" && v > 0) { const l = Math.log10(v); lo = Math.min(lo, l); hi = Math.max(hi, l); }
      }
    });
    Object.entries(red).forEach(([key, g]) => {
      if (map.edges[key]) return;         // no record for it: say so once, rather than keep step 0's number
      g.querySelectorAll("text").forEach((t, j) => { t.textContent = j ? "" : "not recorded"; });
      g.querySelectorAll("path, polygon").forEach(p => p.setAttribute("stroke-opacity", 0.25));
    });
    // the panel: a first row with this step's record of the node's parameters and modules
    panelRows = {};
    const [own, level] = panels();
    Object.keys(map.nodes).forEach(id => {
      const d = own[id] || level[id]; if (!d) return;
      if (!(d.rows[0] && d.rows[0].atStep)) { const row = ["", ""]; row.atStep = true; d.rows.unshift(row); }
      panelRows[id] = d.rows[0];
    });
    // a click on a graph node picks its layer for the heatmap's row mark and the histograms
    Object.entries(nodeEls).forEach(([id, g]) => {
      if (g.dataset.watched) return;
      g.dataset.watched = "1";
      g.addEventListener("click", e => {
        if (!e.isTrusted) return;
        const d = map.nodes[id], ps = d ? d.params : [];
        const i = W.layers.findIndex(l => (window.cgviz.level === root && W.layerNode[l] === id) || W.layerParams[l].some(p => ps.includes(p)));
        if (i >= 0) { layer = i; drawHeat(); drawHists(); }
      });
    });
  }
  const strength = v => typeof v === "string" ? 1 : (typeof v !== "number" || v <= 0 || !(hi > lo)) ? (v > 0 ? 0.6 : 0)
    : (Math.log10(v) - lo) / (hi - lo);

  function stepRow(id, k) {
    const d = map.nodes[id]; if (!d) return null;
    const lines = d.params.map(p => {
      const i = pIdx[p]; if (i === undefined) return `${p}: not recorded`;
      const P = W.P, bad = (P.nan[i][k] || 0) + (P.inf[i][k] || 0);
      return `${p}: ‖w‖ ${fmt(P.w[i][k])}  ‖g‖ ${fmt(P.g[i][k])}  ‖g‖/‖w‖ ${fmt(P.ratio[i][k])}  update ${fmt(P.update[i][k])}` +
        (bad ? `  NaN ${P.nan[i][k]} inf ${P.inf[i][k]}` : "");
    }).concat(d.modules.map(m => {
      const i = mIdx[m]; if (i === undefined) return `${m}: not recorded`;
      const M = W.M, pct = v => typeof v === "number" ? ` ${(100 * v).toFixed(1)}%` : "";
      return `${m} output: mean ${fmt(M.mean[i][k])}  σ ${fmt(M.std[i][k])}` +
        (M.saturated[i][k] !== null ? `  saturated${pct(M.saturated[i][k])}` : "") +
        (M.dead[i][k] !== null ? `  dead${pct(M.dead[i][k])}` : "") + `  ‖∂L/∂out‖ ${fmt(M.grad[i][k])}`;
    }));
    return lines.length ? [`at step ${W.steps[k]}`, lines.join("\n")] : null;
  }

  // one gradient row of a label at step k: a norm, the norms of each block, or a saturation line
  function rowText(r, k) {
    if (r.kind === "L") return r.t.textContent.replace(/= \S+$/, "= " + (W.loss[k] !== null ? fmt(W.loss[k]) : (W.lossText[k] || "–")));
    if (r.kind === "pb") return r.prefix + r.names.map(ps => fmt(norm("p", ps, k))).join(", ");
    if (r.kind === "s") {
      const v = r.names.map(m => mIdx[m] === undefined ? null : W.M.saturated[mIdx[m]][k]).find(v => typeof v === "number");
      return v === undefined ? r.t.textContent : `${(100 * v).toFixed(1)}% saturated at this step`;
    }
    const v = norm(r.kind, r.names, k);
    return r.prefix + (v === null ? "not recorded" : fmt(v)) + (v === null ? "" : r.rest);
  }
  // the graph's numbers at step k: the labels' rows, the red edges, the panel's first row
  function drawGraph(k) {
    rows.forEach(r => { r.t.textContent = r.t.dataset.wrote = rowText(r, k); });
    Object.entries(map.edges).forEach(([key, [kind, names]]) => {
      const g = red[key]; if (!g) return;
      const v = norm(kind, names, k), s = strength(v);
      g.querySelectorAll("path, polygon").forEach(p => {
        p.setAttribute("stroke-width", (0.8 + 4 * s).toFixed(2)); p.setAttribute("stroke-opacity", (0.25 + 0.75 * s).toFixed(3));
        if (p.tagName === "polygon") p.setAttribute("fill-opacity", (0.25 + 0.75 * s).toFixed(3));
      });
      g.querySelectorAll("text").forEach((t, j) => { t.textContent = j ? "" : v === null ? "not recorded" : `‖g‖=${fmt(v)}`; });
    });
    Object.entries(panelRows).forEach(([id, row]) => { const r = stepRow(id, k) || ["at step", "–"]; row[0] = r[0]; row[1] = r[1]; });
    const open = document.querySelector("#graph g.node.selected");
    if (open) open.dispatchEvent(new MouseEvent("click"));
  }
  function setStep(k) {
    k = Math.max(0, Math.min(K - 1, k)); step = k;
    drawGraph(k);
    slider.value = k;
    const loss = W.loss[k] !== null ? fmt(W.loss[k]) : (W.lossText[k] || "–");
    info.textContent = `step ${W.steps[k]} (${k + 1} of ${K} recorded) · loss ${loss}${W.scaled ? " · gradients as scaled by AMP" : ""}`;
    drawHeat(); lossMarker(); drawHists();
    document.querySelectorAll("#w-events li[data-i]").forEach(li => {
      const e = W.events[Number(li.dataset.i)];
      li.classList.toggle("current", W.steps[k] >= e.from && W.steps[k] <= e.to);
    });
  }
  slider.addEventListener("input", e => setStep(Number(e.target.value)));
  // page.js showed another level or block (drill-down, breadcrumb, back, the block selector): its
  // numbers at the step the slider is on
  document.addEventListener("cgviz:shown", () => { bind(); drawGraph(step); });

  // a drawn node of the top level (the heatmap's and the events' nodes are the model picture's)
  function selectNode(id) {
    const click = () => { const g = nodeEls[id]; if (g) g.dispatchEvent(new MouseEvent("click")); };
    if (window.cgviz.level === root || !window.cgviz.go) click(); else window.cgviz.go(root, 0, click);
  }
  function selectLayer(i, withNode) {
    layer = i;
    if (withNode && W.layerNode[W.layers[i]]) selectNode(W.layerNode[W.layers[i]]);
    drawHeat(); drawHists();
  }

  // --- the heatmap: layers × steps, log10 ‖g‖/‖w‖ or the update ratio
  const heat = document.getElementById("w-heat"), heatInfo = document.getElementById("w-heat-info");
  let metric = "ratio";
  document.querySelectorAll('input[name="w-metric"]').forEach(r => r.addEventListener("change", e => { metric = e.target.value; drawHeat(); }));
  const LEFT = 150, TOP = 4;
  const names = W.layers.length;
  // cells as wide as the box allows (a fraction of a pixel for a long run), scrolled past 0.5 px
  const room = document.getElementById("w-heat-scroll").clientWidth - LEFT - 8;
  const cw = Math.max(0.5, Math.min(14, room / Math.max(K, 1))), ch = Math.max(9, Math.min(14, Math.floor(260 / Math.max(names, 1))));   // readable names: scroll past ~28 layers
  heat.width = Math.ceil(LEFT + cw * K + 4); heat.height = TOP + ch * names + 4;
  // viridis, a few stops
  const STOPS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  function colour(t) {
    t = Math.max(0, Math.min(1, t)) * (STOPS.length - 1);
    const i = Math.min(Math.floor(t), STOPS.length - 2), f = t - i, a = STOPS[i], b = STOPS[i + 1];
    return `rgb(${a.map((x, j) => Math.round(x + (b[j] - x) * f)).join(",")})`;
  }
  const base = {};
  function baseImage(which) {
    if (base[which]) return base[which];
    const M = W[which], c = document.createElement("canvas");
    c.width = heat.width; c.height = heat.height;
    const x = c.getContext("2d");
    let a = Infinity, b = -Infinity;
    M.forEach(row => row.forEach(v => { if (v !== null && Math.abs(v) < 99) { a = Math.min(a, v); b = Math.max(b, v); } }));
    if (!(b > a)) { b = a + 1; }
    x.fillStyle = "white"; x.fillRect(0, 0, c.width, c.height);
    x.font = `${Math.min(ch, 11)}px sans-serif`; x.textBaseline = "middle"; x.fillStyle = "#333";
    W.layers.forEach((l, i) => { l = l || "(model)"; x.fillText(l.length > 24 ? "…" + l.slice(-23) : l, 2, TOP + ch * i + ch / 2); });
    M.forEach((row, i) => row.forEach((v, k) => {
      x.fillStyle = W.bad[i][k] ? "#d50000" : v === null ? "#dddddd" : colour(v <= -99 ? 0 : v >= 99 ? 1 : (v - a) / (b - a));
      x.fillRect(Math.floor(LEFT + cw * k), TOP + ch * i, Math.max(1, Math.ceil(cw)), ch);
    }));
    return (base[which] = {c, lo: a, hi: b});
  }
  function drawHeat() {
    const x = heat.getContext("2d"), B = baseImage(metric);
    x.drawImage(B.c, 0, 0);
    x.strokeStyle = "#ff6d00"; x.lineWidth = 2;
    x.strokeRect(LEFT + cw * step - 1, TOP - 1, cw + 2, ch * names + 2);
    if (layer !== null) { x.strokeStyle = "#000"; x.strokeRect(LEFT - 1, TOP + ch * layer - 1, cw * K + 2, ch + 2); }
    const what = metric === "ratio" ? "log₁₀ ‖g‖/‖w‖" : "log₁₀ ‖Δw‖/‖w‖";
    heatInfo.textContent = `${what} from ${B.lo.toFixed(2)} (dark) to ${B.hi.toFixed(2)} (yellow); red: NaN/inf` +
      (layer !== null ? ` · ${W.layers[layer]} at step ${W.steps[step]}: ${W[metric][layer][step] === null ? "–" : W[metric][layer][step]}` : "");
  }
  // hovering a cell says its layer, step and value (the scale's words come back on leaving)
  heat.addEventListener("mousemove", e => {
    const r = heat.getBoundingClientRect();
    const k = Math.floor((e.clientX - r.left - LEFT) / cw), i = Math.floor((e.clientY - r.top - TOP) / ch);
    if (k < 0 || k >= K || i < 0 || i >= names) { heat.title = ""; return; }
    const v = W[metric][i][k];
    heat.title = `${W.layers[i] || "(model)"} at step ${W.steps[k]}: ${W.bad[i][k] ? "NaN/inf" : v === null ? "not recorded" : "10^" + v}`;
  });
  heat.addEventListener("click", e => {
    const r = heat.getBoundingClientRect();
    const k = Math.floor((e.clientX - r.left - LEFT) / cw), i = Math.floor((e.clientY - r.top - TOP) / ch);
    if (k < 0 || k >= K || i < 0 || i >= names) return;
    layer = i;
    setStep(k);
    selectLayer(i, true);
  });

  // --- the loss curve, with the step's marker; a click picks the nearest step
  const NS = "http://www.w3.org/2000/svg", lossSvg = document.getElementById("w-loss");
  const finite = W.loss.filter(v => v !== null);
  const logScale = finite.length && Math.min(...finite) > 0 && Math.max(...finite) / Math.min(...finite) > 30;
  const f = v => logScale ? Math.log10(v) : v;
  const ys = finite.map(f), yl = Math.min(...ys, 0 + (ys.length ? Infinity : 0)), yh = Math.max(...ys, -Infinity);
  const X = k => 4 + 392 * k / Math.max(K - 1, 1), Y = v => 114 - 108 * ((f(v) - yl) / ((yh - yl) || 1));
  const pts = W.loss.map((v, k) => v === null ? null : `${X(k).toFixed(1)},${Y(v).toFixed(1)}`).filter(Boolean).join(" ");
  lossSvg.innerHTML = `<polyline points="${pts}" fill="none" stroke="#1565c0" stroke-width="1.5" vector-effect="non-scaling-stroke"/>` +
    W.events.map(e => { const a = W.steps.findIndex(s => s >= e.from); return a < 0 ? "" :
      `<line x1="${X(a)}" x2="${X(a)}" y1="0" y2="120" stroke="#d32f2f" stroke-opacity="0.5" vector-effect="non-scaling-stroke"/>`; }).join("") +
    `<line id="w-loss-marker" y1="0" y2="120" stroke="#ff6d00" stroke-width="2" vector-effect="non-scaling-stroke"/>`;
  document.getElementById("w-loss-info").textContent = finite.length ? `${fmt(finite[0])} → ${fmt(finite[finite.length - 1])}${logScale ? " (log scale)" : ""}` : "";
  function lossMarker() { const m = document.getElementById("w-loss-marker"); m.setAttribute("x1", X(step)); m.setAttribute("x2", X(step)); }
  lossSvg.addEventListener("click", e => { const r = lossSvg.getBoundingClientRect(); setStep(Math.round((e.clientX - r.left) / r.width * 400 - 4) / 392 * Math.max(K - 1, 1) | 0); });

  // --- the selected layer's gradient histograms over time (x: step, y: gradient value, shade: count)
  function drawHists() {
    const box = document.getElementById("w-hists"), head = document.getElementById("w-hist-layer");
    if (layer === null) { head.textContent = "(click a heatmap row or a node)"; box.innerHTML = ""; return; }
    const l = W.layers[layer];
    head.textContent = l;
    box.innerHTML = "";
    W.layerParams[l].forEach(p => {
      const H = W.hist[p];
      const cap = document.createElement("div");
      cap.textContent = H ? `${p}: ${fmt(H.hi)} (top) … ${fmt(H.lo)} (bottom)` : `${p}: no histogram recorded`;
      box.appendChild(cap);
      if (!H) return;
      // a column per kept step, several pixels wide for a short run, so the step's mark stays thin
      const c = document.createElement("canvas"), n = H.counts[0].length, cw = Math.max(1, Math.floor(300 / H.at.length));
      c.width = H.at.length * cw; c.height = n * 4; c.className = "w-hist"; c.dataset.param = p;
      const x = c.getContext("2d");
      H.counts.forEach((col, j) => {
        const m = Math.max(...col, 1);
        col.forEach((v, b) => { const t = Math.log1p(v) / Math.log1p(m); x.fillStyle = `rgba(198,40,40,${t.toFixed(3)})`; x.fillRect(j * cw, (n - 1 - b) * 4, cw, 4); });
      });
      let j = 0; H.at.forEach((k, q) => { if (k <= step) j = q; });
      x.fillStyle = "rgba(255,109,0,0.9)"; x.fillRect(j * cw + Math.floor(cw / 2) - 1, 0, 2, n * 4);
      box.appendChild(c);
    });
  }

  // --- the events: a click goes to the first step and the place it names
  document.querySelectorAll("#w-events li[data-i]").forEach(li => li.addEventListener("click", () => {
    const e = W.events[Number(li.dataset.i)];
    let k = W.steps.findIndex(s => s >= e.from); if (k < 0) k = K - 1;
    setStep(k);
    const i = W.layers.findIndex(l => l === e.where || W.layerParams[l].includes(e.where));
    if (i >= 0) selectLayer(i, false);
    if (e.node) selectNode(e.node);
  }));

  window.cgviz.watch = {setStep, selectLayer, step: () => step, layer: () => layer, steps: K};
  if (W.layers.length) layer = 0;       // the first layer's histograms until another is picked
  bind();
  setStep(K - 1);
})();
