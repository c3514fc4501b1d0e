// The interactive page (cgviz.view.html): pan/zoom, search, the node panel, edge toggles and the
// backward stepper. Reads the JSON the page embeds (#cgviz-data).
(function () {
  const data = JSON.parse(document.getElementById("cgviz-data").textContent);
  const svg = document.querySelector("#graph svg");
  const nodes = {}, red = {}, blue = [];
  svg.querySelectorAll("g.node").forEach(g => {
    const id = g.querySelector("title").textContent;
    g.setAttribute("data-id", id);
    nodes[id] = g;
  });
  svg.querySelectorAll("g.edge").forEach(g => {
    const key = g.querySelector("title").textContent;
    const path = g.querySelector("path");
    const isRed = path && (path.getAttribute("stroke") || "").toLowerCase() === data.backward;
    g.classList.add(isRed ? "bwd" : "fwd");
    g.setAttribute("data-key", key);
    if (isRed) red[key] = g; else blue.push(g);
  });
  // --- pan and zoom: the viewBox moves; nothing is rasterised, so it stays sharp
  const full = svg.viewBox.baseVal;
  let vb = [full.x, full.y, full.width, full.height];
  const home = vb.slice();
  const apply = () => svg.setAttribute("viewBox", vb.join(" "));
  const toSvg = (cx, cy) => {
    const r = svg.getBoundingClientRect(), s = Math.max(vb[2] / r.width, vb[3] / r.height);
    const ox = vb[0] + (vb[2] - r.width * s) / 2, oy = vb[1] + (vb[3] - r.height * s) / 2;
    return [ox + (cx - r.left) * s, oy + (cy - r.top) * s, s];
  };
  svg.addEventListener("wheel", e => {
    e.preventDefault();
    const [x, y] = toSvg(e.clientX, e.clientY), f = e.deltaY > 0 ? 1.15 : 1 / 1.15;
    vb = [x - (x - vb[0]) * f, y - (y - vb[1]) * f, vb[2] * f, vb[3] * f];
    apply();
  }, {passive: false});
  let drag = null;
  svg.addEventListener("mousedown", e => { drag = [e.clientX, e.clientY, vb[0], vb[1]]; });
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
  // --- search
  document.getElementById("search").addEventListener("keydown", e => {
    if (e.key !== "Enter") return;
    const q = e.target.value.trim();
    Object.values(nodes).forEach(g => g.classList.remove("found"));
    const id = Object.keys(nodes).find(k => k === q) ||
               Object.keys(nodes).find(k => (data.nodes[k] || {}).title === q) ||
               Object.keys(nodes).find(k => k.includes(q) || ((data.nodes[k] || {}).title || "").includes(q));
    if (id) { nodes[id].classList.add("found"); centre(nodes[id]); show(id); }
  });
  // --- the panel
  const esc = s => String(s).replace(/[&<>]/g, c => ({"&": "&amp;", "<": "&lt;", ">": "&gt;"}[c]));
  function show(id) {
    const d = data.nodes[id]; if (!d) return;
    Object.values(nodes).forEach(g => g.classList.remove("selected"));
    nodes[id].classList.add("selected");
    document.getElementById("panel").classList.add("open");
    document.getElementById("panel-title").textContent = d.title;
    document.getElementById("panel-body").innerHTML = d.rows.map(
      ([k, v]) => `<div class="k">${esc(k)}</div><pre>${esc(v)}</pre>`).join("");
    document.getElementById("panel-chain").textContent = (d.chain || []).join("\n");
    document.getElementById("chain-head").style.display = (d.chain || []).length ? "" : "none";
  }
  Object.entries(nodes).forEach(([id, g]) => g.addEventListener("click", e => { e.stopPropagation(); show(id); }));
  // --- toggles
  const toggle = (cls, on) => svg.querySelectorAll("g.edge." + cls).forEach(g => g.style.display = on ? "" : "none");
  document.getElementById("show-fwd").onchange = e => toggle("fwd", e.target.checked);
  document.getElementById("show-bwd").onchange = e => toggle("bwd", e.target.checked);
  // --- backprop, one red edge at a time, in the order the engine visits them
  const order = data.order.filter(k => red[k]);
  const info = document.getElementById("step-info");
  window.cgviz = {backwardOrder: order, stepIndex: 0, data: data};
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
    info.textContent = data.steps[order[i]] || order[i];
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
})();
