// The interactive page (cgviz.view.html): pan/zoom, search, the node panel, edge toggles and the
// backward stepper. Reads the JSON the page embeds (#cgviz-data). A model's page has levels: each
// module's inside is a picture of its own, opened by clicking its box or frame, with a breadcrumb,
// the browser's back button (the level is in the URL's #fragment), and for a ×N block a selector of
// which repetition's numbers are shown.
(function () {
  const data = JSON.parse(document.getElementById("cgviz-data").textContent);
  const box = document.getElementById("graph");
  // an expression's or a training page has one picture, the inline SVG: one level
  const levels = data.levels || {"": {nodes: data.nodes, order: data.order, steps: data.steps}};
  const root = data.levels ? data.root : "";
  let shown = root;                       // the level whose SVG is in #graph (the root's is inline)
  levels[root].svg = levels[root].svg || box.innerHTML;
  let L = levels[root], svg = null, nodes = {}, red = {}, vb = [0, 0, 1, 1], home = vb, order = [];
  const info = document.getElementById("step-info");
  window.cgviz = {backwardOrder: [], stepIndex: 0, data: data, level: root, rep: 0};

  // --- pan and zoom: the viewBox moves; nothing is rasterised, so it stays sharp
  const apply = () => svg.setAttribute("viewBox", vb.join(" "));
  const toSvg = (cx, cy) => {
    const r = svg.getBoundingClientRect(), s = Math.max(vb[2] / r.width, vb[3] / r.height);
    const ox = vb[0] + (vb[2] - r.width * s) / 2, oy = vb[1] + (vb[3] - r.height * s) / 2;
    return [ox + (cx - r.left) * s, oy + (cy - r.top) * s, s];
  };
  let drag = null;
  box.addEventListener("wheel", e => {
    e.preventDefault();
    const [x, y] = toSvg(e.clientX, e.clientY), f = e.deltaY > 0 ? 1.15 : 1 / 1.15;
    vb = [x - (x - vb[0]) * f, y - (y - vb[1]) * f, vb[2] * f, vb[3] * f];
    apply();
  }, {passive: false});
  box.addEventListener("mousedown", e => { drag = [e.clientX, e.clientY, vb[0], vb[1]]; });
  window.addEventListener("mouseup", () => { drag = null; });
  window.addEventListener("mousemove", e => {
    if (!drag) return;
    const s = toSvg(0, 0)[2];
    vb[0] = drag[2] - (e.clientX - drag[0]) * s; vb[1] = drag[3] - (e.clientY - drag[1]) * s;
    apply();
  });
  const fit = () => { vb = home.slice(); apply(); };
  document.getElementById("fit").onclick = fit;
  const centre = g => {
    // getBBox is in the node's own coordinates; Graphviz's top group translates them
    const b = g.getBBox(), w = Math.max(vb[2] / 2, b.width * 4), h = Math.max(vb[3] / 2, b.height * 4);
    const m = svg.getScreenCTM().inverse().multiply(g.getScreenCTM());
    const c = new DOMPoint(b.x + b.width / 2, b.y + b.height / 2).matrixTransform(m);
    vb = [c.x - w / 2, c.y - h / 2, w, h]; apply();
  };

  // --- the panel: the level's own numbers, or the chosen repetition's
  const esc = s => String(s).replace(/[&<>]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;"}[c]));
  const rep = () => (L.reps && L.reps.data[window.cgviz.rep]) || null;
  const panelOf = id => { const r = rep(); return (r && r.nodes[id]) || L.nodes[id]; };
  let selected = null;
  function show(id) {
    const d = panelOf(id); if (!d) return;
    Object.values(nodes).forEach(g => g.classList.remove("selected"));
    nodes[id].classList.add("selected");
    selected = id;
    document.getElementById("panel").classList.add("open");
    document.getElementById("panel-title").textContent = d.title;
    document.getElementById("panel-body").innerHTML = d.rows.map(
      ([k, v]) => `<div class="k">${esc(k)}</div><pre>${esc(v)}</pre>`).join("");
    document.getElementById("panel-chain").textContent = (d.chain || []).join("\n");
    document.getElementById("chain-head").style.display = (d.chain || []).length ? "" : "none";
  }

  // --- levels: #<level>~<repetition> in the URL, so back and forward walk them
  const hashOf = (key, r) => "#" + encodeURIComponent(key) + (r ? "~" + r : "");
  const bound = new WeakSet();            // SVG elements whose nodes and frames have their click handlers
  let then = null;                        // what to do once the level is shown (search: select the node)
  function go(key, r, after) {
    then = after || null;
    const h = hashOf(key, r || 0);
    if (location.hash === h || (h === "#" && !location.hash)) route(); else location.hash = h;
  }
  function route() {
    const raw = decodeURIComponent(location.hash.slice(1)), cut = raw.lastIndexOf("~");
    let key = cut >= 0 ? raw.slice(0, cut) : raw, r = cut >= 0 ? Number(raw.slice(cut + 1)) || 0 : 0;
    if (!(key in levels)) { key = root; r = 0; }
    mount(key, r);
    const after = then; then = null;
    if (after) after();
  }
  function mount(key, r) {
    stop();
    if (shown !== key) { box.innerHTML = levels[key].svg; shown = key; }
    L = levels[key]; window.cgviz.level = key;
    svg = box.querySelector("svg");
    nodes = {}; red = {}; selected = null;
    const fresh = !bound.has(svg);        // the same level again (another block): its clicks are bound
    bound.add(svg);
    svg.querySelectorAll("g.node").forEach(g => {
      const id = g.querySelector("title").textContent;
      g.setAttribute("data-id", id);
      nodes[id] = g;
      const opens = L.opens && L.opens[id];
      if (opens) { g.classList.add("opens"); g.setAttribute("data-opens", opens); }
      if (fresh) g.addEventListener("click", e => { e.stopPropagation(); if (opens) go(opens); else show(id); });
    });
    svg.querySelectorAll("g.cluster").forEach(g => {
      const opens = L.opens && L.opens[g.querySelector("title").textContent];
      if (!opens) return;
      g.classList.add("opens");
      g.setAttribute("data-opens", opens);
      if (fresh) g.addEventListener("click", e => { e.stopPropagation(); go(opens); });
    });
    svg.querySelectorAll("g.edge").forEach(g => {
      const key = g.querySelector("title").textContent;
      const path = g.querySelector("path");
      const isRed = path && (path.getAttribute("stroke") || "").toLowerCase() === data.backward;
      g.classList.add(isRed ? "bwd" : "fwd");
      g.setAttribute("data-key", key);
      if (isRed) red[key] = g;
    });
    const full = svg.viewBox.baseVal;
    vb = [full.x, full.y, full.width, full.height]; home = vb.slice();
    ["fwd", "bwd"].forEach(c => toggle(c, document.getElementById("show-" + c).checked));
    order = (L.order || []).filter(k => red[k]);
    window.cgviz.backwardOrder = order; window.cgviz.stepIndex = 0; info.textContent = "";
    document.getElementById("panel").classList.remove("open");
    crumbs();
    setRep(L.reps ? Math.min(r, L.reps.data.length - 1) : 0);
  }
  function crumbs() {
    const nav = document.getElementById("crumbs");
    nav.hidden = !data.levels;
    if (!data.levels) return;
    nav.innerHTML = (L.crumbs || []).map(([label, key], i, all) => i === all.length - 1
      ? `<b>${esc(label)}</b>` : `<a href="${esc(hashOf(key, 0))}">${esc(label)}</a>`).join(" › ");
  }

  // --- a ×N block's repetitions: the selector, the per-block gradient norms, the numbers shown
  const slider = document.getElementById("rep");
  function setRep(r) {
    const R = L.reps, span = document.getElementById("reps");
    span.hidden = !R;
    window.cgviz.rep = R ? r : 0;
    if (!R) return;
    slider.max = R.data.length - 1; slider.value = r;
    document.getElementById("rep-word").textContent = R.word;
    document.getElementById("rep-info").textContent =
      `${r} of 0…${R.data.length - 1}: ${R.names[r] || "?"}` + (R.data[r] ? "" : " (drawn otherwise: numbers not shown)");
    chart(R, r);
    const d = R.data[r];
    if (d) Object.entries(d.edges).forEach(([key, [f, b]]) => {
      svg.querySelectorAll(`g.edge[data-key="${CSS.escape(key)}"]`).forEach(g => {
        const lines = g.classList.contains("bwd") ? b : f, texts = g.querySelectorAll("text");
        if (lines === null) texts.forEach(t => { t.textContent = "–"; });
        else if (texts.length === lines.length) texts.forEach((t, i) => { t.textContent = lines[i]; });
      });
    });
    if (d) Object.entries(d.labels || {}).forEach(([id, changed]) => {
      if (nodes[id]) nodes[id].querySelectorAll("text").forEach(t => {
        const was = t.dataset.first || (t.dataset.first = t.textContent.trim());
        t.textContent = changed[was] !== undefined ? changed[was] : was;
      });
    });
    if (selected) show(selected);
  }
  slider.addEventListener("input", e => setRep(Number(e.target.value)));
  function chart(R, r) {
    // bars of ‖∇θ‖ per repetition on a log scale; the chosen one dark; a click chooses
    // (made here: the page's first <svg> is the graph's)
    const W = 160, H = 28, n = R.norms.length;
    const logs = R.norms.map(v => v > 0 ? Math.log10(v) : null), ok = logs.filter(v => v !== null);
    const lo = Math.min(...ok) - 0.3, hi = Math.max(...ok), w = W / n;
    const c = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    c.setAttribute("width", W); c.setAttribute("height", H);
    document.getElementById("rep-chart").replaceChildren(c);
    c.innerHTML = `<rect width="${W}" height="${H}" fill="white" stroke="#ccc"/>` + logs.map((v, i) => {
      const h = v === null ? 0 : 2 + (H - 4) * (v - lo) / ((hi - lo) || 1);
      return `<rect data-rep="${i}" x="${(i * w + 0.5).toFixed(1)}" y="${(H - h).toFixed(1)}" width="${Math.max(w - 1, 1).toFixed(1)}"` +
             ` height="${h.toFixed(1)}" fill="var(--bwd)" opacity="${i === r ? 1 : 0.35}"><title>${R.word} ${i}: ‖∇θ‖ = ${R.norms[i]}</title></rect>`;
    }).join("");
    c.querySelectorAll("rect[data-rep]").forEach(b => b.addEventListener("click", () => setRep(Number(b.dataset.rep))));
  }

  // --- search: this picture first, then every level (the op's own level, the right repetition)
  document.getElementById("search").addEventListener("keydown", e => {
    if (e.key !== "Enter") return;
    const q = e.target.value.trim();
    if (!q) return;
    Object.values(nodes).forEach(g => g.classList.remove("found"));
    const ids = Object.keys(nodes), title = k => (panelOf(k) || {}).title || "";
    const here = k => { nodes[k].classList.add("found"); centre(nodes[k]); show(k); };
    let id = ids.find(k => k === q) || ids.find(k => title(k) === q);
    if (id) return here(id);
    const found = data.found || {};
    let hit = found[q];
    if (!hit) { id = ids.find(k => k.includes(q) || title(k).includes(q)); if (id) return here(id); }
    hit = hit || found[Object.keys(found).find(k => k.includes(q))];
    if (hit) go(hit[0], hit[2], () => { if (nodes[hit[1]]) here(hit[1]); });
  });

  // --- toggles
  function toggle(cls, on) { svg.querySelectorAll("g.edge." + cls).forEach(g => g.style.display = on ? "" : "none"); }
  document.getElementById("show-fwd").onchange = e => toggle("fwd", e.target.checked);
  document.getElementById("show-bwd").onchange = e => toggle("bwd", e.target.checked);

  // --- backprop, one red edge at a time, in the order the engine visits them
  function reset() {
    window.cgviz.stepIndex = 0; info.textContent = "";
    Object.values(red).forEach(g => g.classList.remove("done", "active", "pending"));
    stop();
  }
  function step() {
    const i = window.cgviz.stepIndex;
    if (i >= order.length) { stop(); return false; }
    if (i === 0) Object.values(red).forEach(g => g.classList.add("pending"));
    Object.values(red).forEach(g => g.classList.remove("active"));
    const g = red[order[i]];
    g.classList.remove("pending"); g.classList.add("done", "active");
    // inside a ×N block, the chosen repetition's texts (its names and numbers), else the level's
    const r = rep();
    info.textContent = ((r && r.steps) || L.steps || {})[order[i]] || order[i];
    window.cgviz.stepIndex = i + 1;
    return true;
  }
  let timer = null;
  function stop() { if (timer) { clearInterval(timer); timer = null; } document.getElementById("play").textContent = "play"; }
  document.getElementById("step").onclick = step;
  document.getElementById("reset").onclick = reset;
  document.getElementById("play").onclick = () => {
    if (timer) { stop(); return; }
    if (window.cgviz.stepIndex >= order.length) reset();
    document.getElementById("play").textContent = "pause";
    timer = setInterval(() => { if (!step()) stop(); }, 700);
  };
  window.addEventListener("hashchange", route);
  route();
})();
