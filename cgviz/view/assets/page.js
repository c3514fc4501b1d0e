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
  let L = levels[root], svg = null, nodes = {}, frames = {}, red = {}, vb = [0, 0, 1, 1], home = vb, order = [];
  const info = document.getElementById("step-info");
  window.cgviz = {backwardOrder: [], stepIndex: 0, data: data, level: root, rep: 0};

  // --- pan and zoom: the viewBox moves; nothing is rasterised, so it stays sharp
  const apply = () => svg.setAttribute("viewBox", vb.join(" "));
  const toSvg = (cx, cy) => {
    const r = svg.getBoundingClientRect(), s = Math.max(vb[2] / r.width, vb[3] / r.height);
    const ox = vb[0] + (vb[2] - r.width * s) / 2, oy = vb[1] + (vb[3] - r.height * s) / 2;
    return [ox + (cx - r.left) * s, oy + (cy - r.top) * s, s];
  };
  // A press that moves more than SLOP pixels is a drag: it pans, and the click the browser sends
  // when it ends opens nothing and selects nothing (a frame covers most of a zoomed-in view).
  const SLOP = 4;
  let drag = null, dragged = false;
  const moved = () => { note(""); };
  box.addEventListener("wheel", e => {
    e.preventDefault();
    const [x, y] = toSvg(e.clientX, e.clientY), f = e.deltaY > 0 ? 1.15 : 1 / 1.15;
    vb = [x - (x - vb[0]) * f, y - (y - vb[1]) * f, vb[2] * f, vb[3] * f];
    apply(); moved();
  }, {passive: false});
  box.addEventListener("mousedown", e => {
    if (e.button !== 0) return;
    drag = [e.clientX, e.clientY, vb[0], vb[1]]; dragged = false;
    e.preventDefault();                   // no text selection while panning
  });
  window.addEventListener("mouseup", () => { drag = null; });
  window.addEventListener("mousemove", e => {
    if (!drag) return;
    if (!dragged && Math.hypot(e.clientX - drag[0], e.clientY - drag[1]) <= SLOP) return;
    if (!dragged) moved();
    dragged = true;
    const s = toSvg(0, 0)[2];
    vb[0] = drag[2] - (e.clientX - drag[0]) * s; vb[1] = drag[3] - (e.clientY - drag[1]) * s;
    apply();
  });
  // capture: runs before the handlers of the nodes and frames inside; a script's own click
  // (train.js re-shows the panel) is never a drag's
  box.addEventListener("click", e => {
    if (dragged && e.isTrusted) { e.stopPropagation(); e.preventDefault(); }
    dragged = false;
  }, true);
  const fit = () => { vb = home.slice(); apply(); moved(); };
  document.getElementById("fit").onclick = fit;
  // the panel opening (or the window changing) resizes the graph's box: a whole-picture view fits
  // the new box, a zoomed-in one keeps its zoom and its centre, and the selected node in view
  let boxSize = null;
  function resized() {
    const r = box.getBoundingClientRect(), was = boxSize;
    if (was && was[0] === r.width && was[1] === r.height) return;
    boxSize = [r.width, r.height];
    if (!svg || !was || !was[0] || !was[1] || !r.width || !r.height) return;
    if (vb.every((v, i) => Math.abs(v - home[i]) < 1e-6)) return;
    const s = Math.max(vb[2] / was[0], vb[3] / was[1]);
    const cx = vb[0] + vb[2] / 2, cy = vb[1] + vb[3] / 2;
    vb = [cx - r.width * s / 2, cy - r.height * s / 2, r.width * s, r.height * s];
    if (selected && nodes[selected]) {
      const b = nodes[selected].getBBox(), m = svg.getScreenCTM().inverse().multiply(nodes[selected].getScreenCTM());
      const lo = new DOMPoint(b.x, b.y).matrixTransform(m), hi = new DOMPoint(b.x + b.width, b.y + b.height).matrixTransform(m);
      const into = (a, b, start, size) => a < start ? a - 10 * s : b > start + size ? Math.min(a - 10 * s, b + 10 * s - size) : start;
      vb[0] = into(lo.x, hi.x, vb[0], vb[2]); vb[1] = into(lo.y, hi.y, vb[1], vb[3]);
    }
    apply();
  }
  new ResizeObserver(resized).observe(box);

  // --- the first view: the whole picture when its median label is READABLE px on screen or more,
  // else zoomed in until it is MIN_FONT px, at the picture's start (the top of a tall picture, the
  // left of a wide one), centred on the node found first there; `fit` shows the whole. (Between the
  // two sizes the whole picture is worth more than a slightly larger part of it.)
  const READABLE = 9, MIN_FONT = 11;
  const statusNote = document.getElementById("view-note");
  function note(text) { statusNote.textContent = text; statusNote.hidden = !text; }
  function firstView() {
    const r = svg.getBoundingClientRect();
    const sizes = [...svg.querySelectorAll("g.node text")].map(t => Number(t.getAttribute("font-size")))
      .filter(x => x > 0).sort((a, b) => a - b);
    if (!r.width || !r.height || !sizes.length) return home.slice();
    const m = svg.getScreenCTM().inverse().multiply(svg.querySelector("g.node text").getScreenCTM());
    const font = sizes[Math.floor(sizes.length / 2)] * Math.hypot(m.a, m.b);    // in viewBox units
    const fits = Math.min(r.width / home[2], r.height / home[3]), need = MIN_FONT / font;
    window.cgviz.fitFont = fits * font;
    if (fits * font >= READABLE) return home.slice();
    const w = r.width / need, h = r.height / need;
    const tall = home[3] / h >= home[2] / w;
    let best = null;                      // the topmost node of a tall picture, the leftmost of a wide one
    svg.querySelectorAll("g.node").forEach(g => {
      const b = g.getBBox(), t = svg.getScreenCTM().inverse().multiply(g.getScreenCTM());
      const c = new DOMPoint(b.x + b.width / 2, b.y + b.height / 2).matrixTransform(t);
      const key = tall ? c.y : c.x;
      if (!best || key < best[0] - 0.5) best = [key, c];
    });
    const clamp = (v, lo, size, span) => span >= size ? lo + (size - span) / 2 : Math.min(Math.max(v, lo), lo + size - span);
    const x = tall ? clamp(best[1].x - w / 2, home[0], home[2], w) : home[0];
    const y = tall ? home[1] : clamp(best[1].y - h / 2, home[1], home[3], h);
    return [x, y, w, h];
  }
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
    resized();
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
      if (fresh) outline(g);
      const opens = L.opens && L.opens[id];
      if (opens) { g.classList.add("opens"); g.setAttribute("data-opens", opens); }
      if (fresh) g.addEventListener("click", e => {
        e.stopPropagation();
        if (opens) { go(opens); return; }
        if (e.isTrusted) Object.values(nodes).forEach(n => { if (n !== g) n.classList.remove("found"); });
        show(id);
      });
    });
    frames = {};
    svg.querySelectorAll("g.cluster").forEach(g => {
      const key = g.querySelector("title").textContent;
      frames[key] = g;
      const opens = L.opens && L.opens[key];
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
    ["fwd", "bwd"].forEach(c => toggle(c, document.getElementById("show-" + c).checked));
    order = (L.order || []).filter(k => red[k]);
    window.cgviz.backwardOrder = order; window.cgviz.stepIndex = 0; info.textContent = "";
    document.getElementById("panel").classList.remove("open");
    boxSize = null; resized();            // the new level's view is made for the box as it is now
    crumbs();
    setRep(L.reps ? Math.min(r, L.reps.data.length - 1) : 0);
    // the whole picture: Graphviz's viewBox, kept apart (the same level again keeps its <svg>, panned)
    if (!svg.dataset.home) svg.dataset.home = svg.getAttribute("viewBox");
    home = svg.dataset.home.trim().split(/[\s,]+/).map(Number); vb = home.slice(); apply();
    vb = firstView(); apply();
    window.cgviz.firstView = vb.slice();
    note(vb.some((v, i) => Math.abs(v - home[i]) > 1e-6)
      ? "zoomed in to read the labels: drag to pan, the wheel zooms, fit shows the whole graph" : "");
    shownEvent();
  }
  // another level or block is on screen: the recorded-run page (watch.js) puts its step's numbers on it
  const shownEvent = () => document.dispatchEvent(new CustomEvent("cgviz:shown"));
  // the outline a search hit or the selected node gets: its shape (or shapes: the loss has two),
  // which Graphviz writes first, inside an <a> when the node has a tooltip
  function outline(g) {
    const inner = g.querySelector(":scope > g > a") || g.querySelector(":scope > a") || g;
    for (const c of inner.children) {
      if (c.tagName === "title") continue;
      if (!["polygon", "ellipse", "path", "polyline"].includes(c.tagName)) break;
      c.classList.add("shape");
    }
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
    const repInfo = document.getElementById("rep-info");
    repInfo.textContent = `${r} of 0…${R.data.length - 1}: ${short(R.names, r)}` + (R.data[r] ? "" : " (drawn otherwise: numbers not shown)");
    repInfo.title = R.names[r] || "";
    // as wide as its widest text, so that the controls after it stay put while the slider moves
    repInfo.style.minWidth = `${Math.max(...R.names.map((x, i) => short(R.names, i).length)) + 4 + 2 * String(R.data.length).length}ch`;
    chart(R, r);
    const d = R.data[r];
    if (d) Object.entries(d.edges).forEach(([key, [f, b]]) => {
      svg.querySelectorAll(`g.edge[data-key="${CSS.escape(key)}"]`).forEach(g => {
        const lines = g.classList.contains("bwd") ? b : f, texts = g.querySelectorAll("text");
        if (lines === null) texts.forEach(t => { t.textContent = "–"; });
        else if (texts.length === lines.length) texts.forEach((t, i) => { t.textContent = spaced(lines[i]); });
      });
    });
    // every label, frame caption and the picture's caption that differs in some repetition: back
    // to the first's, then this one's changes
    const labels = (d && d.labels) || {};
    if (!R.changed) R.changed = [...new Set(R.data.flatMap(x => x ? Object.keys(x.labels || {}) : []))];
    R.changed.forEach(id => { const g = nodes[id] || frames[id]; if (g) relabel(textsOf(g), labels[id] || {}); });
    relabel(captionTexts(), (d && d.caption) || {});
    if (selected) show(selected);
    if (svg.dataset.home) shownEvent();   // the selector moved (mount says so itself once it is done)
  }
  // the runs of text of a label as the page compares them: no-break spaces as spaces, trimmed
  const plain = s => s.replace(/\u00a0/g, " ").trim();
  // text as Graphviz writes it: no space stripped or collapsed (see cgviz.view.graphviz.keep_spaces)
  const spaced = s => s.replace(/ {2}/g, " \u00a0").replace(/^ | $/g, "\u00a0");
  const textsOf = g => [...g.querySelectorAll("text")].filter(t => t.closest("g.node, g.cluster, g.edge") === g);
  const captionTexts = () => [...svg.querySelectorAll("text")].filter(t => !t.closest("g.node, g.cluster, g.edge"));
  function relabel(texts, changed) {
    texts.forEach(t => {
      if (t.dataset.first === undefined) {
        t.dataset.first = t.textContent; t.dataset.x = t.getAttribute("x"); t.dataset.w = t.getComputedTextLength();
      }
      const was = t.dataset.first, now = changed[plain(was)];
      t.textContent = now === undefined ? was : was.match(/^\s*/)[0] + spaced(now.trim()) + was.match(/\s*$/)[0];
      t.setAttribute("x", t.dataset.x);
    });
    // a run that grew or shrank moves the runs after it on its line, as Graphviz placed them
    const lines = {};
    texts.filter(t => t.getAttribute("text-anchor") === "start")
      .forEach(t => (lines[t.getAttribute("y")] = lines[t.getAttribute("y")] || []).push(t));
    Object.values(lines).forEach(run => {
      let shift = 0;
      run.sort((a, b) => a.dataset.x - b.dataset.x).forEach(t => {
        if (shift) t.setAttribute("x", Number(t.dataset.x) + shift);
        if (t.textContent !== t.dataset.first) shift += t.getComputedTextLength() - Number(t.dataset.w);
      });
    });
  }
  slider.addEventListener("input", e => setRep(Number(e.target.value)));
  // a repetition's name as the breadcrumb's ×N names the list: `h.11` of transformer.h.11.attn.c_attn
  // (the whole name is the tooltip); a loop's steps share one name: its last part
  function short(names, r) {
    const mine = (names[r] || "?").split("."), first = (names[0] || "").split(".");
    const i = mine.findIndex((part, k) => part !== first[k]);
    return i < 0 ? mine[mine.length - 1] : mine.slice(Math.max(i - 1, 0), i + 1).join(".");
  }
  function chart(R, r) {
    // bars of ‖∇θ‖ per repetition on a log scale; the chosen one dark; a click chooses
    // (made here: the page's first <svg> is the graph's)
    const W = 120, H = 28, n = R.norms.length;
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
  window.cgviz.go = go;
  window.addEventListener("hashchange", route);
  route();
})();
