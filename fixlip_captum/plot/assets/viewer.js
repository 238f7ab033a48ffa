// fixlip_captum interactive viewer: draws the explanation data embedded in this page.
// No dependencies, no network: runs from file:// and inside a sandboxed notebook iframe.
(function () {
  "use strict";

  const DATA = JSON.parse(document.getElementById("fixlip-viewer-data").textContent);
  const PAIR = DATA.pair;
  const NI = PAIR.n_image;
  const NT = PAIR.n_text;
  const N = NI + NT;
  const ROWS = PAIR.grid[0];
  const COLS = PAIR.grid[1];
  const MAX_ALPHA = 0.85; // as the matplotlib figures: |v| = vmax gives alpha 0.85 over the image
  const POS = hexRgb(DATA.colours.positive);
  const NEG = hexRgb(DATA.colours.negative);
  const IMG_W = 320;
  const IMG_H = Math.round(IMG_W * PAIR.aspect);
  const K_MAX = 50;

  function hexRgb(hex) {
    const v = parseInt(hex.slice(1), 16);
    return [(v >> 16) & 255, (v >> 8) & 255, v & 255];
  }

  function decode(b64) {
    const bin = atob(b64);
    const view = new DataView(new ArrayBuffer(bin.length));
    for (let i = 0; i < bin.length; i++) view.setUint8(i, bin.charCodeAt(i));
    const out = new Float64Array(bin.length / 8);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat64(8 * i, true);
    return out;
  }

  function maxAbs(arr) {
    let m = 0;
    for (let i = 0; i < arr.length; i++) m = Math.max(m, Math.abs(arr[i]));
    return m;
  }

  function fmt(v) {
    if (v === null || v === undefined) return "n/a";
    if (typeof v !== "number") return String(v);
    if (Number.isInteger(v)) return String(v);
    const a = Math.abs(v);
    if (a !== 0 && (a < 1e-3 || a >= 1e4)) return v.toExponential(2);
    return v.toPrecision(a < 1 ? 3 : 4).replace(/\.?0+$/, "");
  }

  function signed(v) {
    return (v > 0 ? "+" : "") + fmt(v);
  }

  // ------------------------------------------------------------------------------------------
  // the panels' numbers: first order [N], pairs as a dense symmetric [N*N] (zero diagonal)

  const panels = DATA.panels.map(function (p, index) {
    const phi = decode(p.first_order);
    let pairs = null;
    let strongest = [];
    if (p.pairs !== null) {
      const tri = decode(p.pairs);
      pairs = new Float64Array(N * N);
      let t = 0;
      for (let i = 0; i < N; i++) {
        for (let j = i + 1; j < N; j++) {
          pairs[i * N + j] = tri[t];
          pairs[j * N + i] = tri[t];
          if (i < NI && j >= NI && tri[t] !== 0) strongest.push([i, j, tri[t]]);
          t++;
        }
      }
      strongest.sort((a, b) => Math.abs(b[2]) - Math.abs(a[2]));
      strongest = strongest.slice(0, K_MAX);
    }
    return {
      index: index,
      name: p.name,
      settings: p.settings,
      phi: phi,
      pairs: pairs,
      strongest: strongest, // top image-text pairs [(patch, token player, value)]
      vmaxFirst: maxAbs(phi),
      vmaxPairs: pairs === null ? 0 : maxAbs(pairs),
    };
  });

  function sharedMax(key) {
    let m = 0;
    panels.forEach((p) => (m = Math.max(m, p[key])));
    return m > 0 ? m : 1;
  }
  const SHARED = { first: sharedMax("vmaxFirst"), cond: sharedMax("vmaxPairs") };

  // ------------------------------------------------------------------------------------------
  // state: one for the page, so side-by-side panels always show the same player

  const state = {
    view: "first", // "first" | "cond"
    selected: null, // pinned player
    hover: null, // previewed player (mouse over / focus on a token)
    cursor: 0, // keyboard cursor on the patch grid
    k: Math.min(DATA.k, K_MAX),
    scale: "shared", // "shared" | "panel"
  };

  function active() {
    return state.hover !== null ? state.hover : state.selected;
  }

  function label(player) {
    if (player < NI) return "patch (" + Math.floor(player / COLS) + ", " + (player % COLS) + ")";
    return "“" + PAIR.tokens[player - NI] + "”";
  }

  // What a panel shows now: values [N], the scale, and a sentence saying what they are.
  function shown(panel) {
    const a = active();
    const cond = state.view === "cond" || state.hover !== null;
    if (cond && a !== null && panel.pairs !== null) {
      const row = panel.pairs.subarray(a * N, (a + 1) * N);
      const vmax = state.scale === "shared" ? SHARED.cond : panel.vmaxPairs || 1;
      return { values: row, vmax: vmax, player: a, what: "pair interactions with " + label(a) };
    }
    const vmax = state.scale === "shared" ? SHARED.first : panel.vmaxFirst || 1;
    let what = "first-order values";
    if (cond && a !== null) what += " (no pair terms: a first-order method)";
    return { values: panel.phi, vmax: vmax, player: a, what: what };
  }

  function mix(rgb, t) {
    // white -> rgb at t in [0, 1]: the matplotlib colour map of the figures
    return rgb.map((c) => Math.round(255 + (c - 255) * t));
  }

  function tokenColour(v, vmax) {
    const t = Math.min(1, Math.abs(v) / vmax);
    const rgb = mix(v >= 0 ? POS : NEG, t);
    const lum = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255;
    return { bg: "rgb(" + rgb.join(",") + ")", fg: lum > 0.55 ? "#111" : "#fff" };
  }

  // ------------------------------------------------------------------------------------------
  // DOM

  const root = document.getElementById("fixlip-viewer");
  const SVG = "http://www.w3.org/2000/svg";

  function el(tag, attrs, parent, text) {
    const node = document.createElement(tag);
    for (const key in attrs || {}) node.setAttribute(key, attrs[key]);
    if (text !== undefined) node.textContent = text;
    if (parent) parent.appendChild(node);
    return node;
  }

  function buildControls() {
    const bar = el("div", { class: "controls", role: "toolbar", "aria-label": "view settings" }, root);
    const views = el("div", { class: "seg", role: "radiogroup", "aria-label": "view" }, bar);
    [["first", "First-order (f)"], ["cond", "Interactions of a player (c)"]].forEach(function (v) {
      const b = el("button", { type: "button", role: "radio", "data-view": v[0] }, views, v[1]);
      b.addEventListener("click", () => setView(v[0]));
    });
    const kl = el("label", { class: "k" }, bar, "top-k image–text edges ");
    const slider = el("input", {
      type: "range", min: "0", max: String(K_MAX), step: "1", value: String(state.k),
      id: "fixlip-k", "aria-label": "number of image-text edges drawn",
    }, kl);
    const kout = el("output", { for: "fixlip-k", id: "fixlip-k-value" }, kl, String(state.k));
    slider.addEventListener("input", function () {
      state.k = parseInt(slider.value, 10);
      kout.textContent = String(state.k);
      render();
    });
    const sl = el("label", { class: "scale" }, bar, "colour scale ");
    const sel = el("select", { id: "fixlip-scale", "aria-label": "colour scale" }, sl);
    el("option", { value: "shared" }, sel, "shared by all panels");
    el("option", { value: "panel" }, sel, "per panel");
    sel.addEventListener("change", function () {
      state.scale = sel.value;
      render();
    });
    el(
      "p",
      { class: "help" },
      root,
      "Hover or click a word, click a patch (or Tab to the image and use the arrow keys, " +
        "Enter to select): colours show that player's pair interactions. Esc: back to " +
        "first-order values; f / c: switch view; + / −: more or fewer edges. Red raises " +
        "the similarity, blue lowers it."
    );
    return { slider: slider, kout: kout, views: views };
  }

  function buildPanel(panel) {
    const sec = el("section", { class: "panel", "data-panel": String(panel.index) }, null);
    el("h2", {}, sec, panel.name);
    const body = el("div", { class: "body" }, sec);
    const stage = el("div", { class: "stage" }, body);
    stage.style.width = IMG_W + "px";
    stage.style.height = IMG_H + "px";
    const dpr = window.devicePixelRatio || 1;
    function layer(cls) {
      const c = el("canvas", { class: cls }, stage);
      c.width = Math.round(IMG_W * dpr);
      c.height = Math.round(IMG_H * dpr);
      c.style.width = IMG_W + "px";
      c.style.height = IMG_H + "px";
      return c;
    }
    const base = layer("image");
    const heat = layer("heat"); // value cells only: what a patch's colour reads from
    const marks = layer("marks"); // grid lines, outlines, keyboard cursor
    heat.setAttribute("aria-hidden", "true");
    base.setAttribute("aria-hidden", "true");
    marks.setAttribute("tabindex", "0");
    marks.setAttribute("role", "grid");
    marks.setAttribute("aria-label", "image patches: arrow keys move, Enter selects");
    const tokens = el("div", { class: "tokens", role: "group", "aria-label": "caption tokens" }, body);
    const tokenEls = PAIR.tokens.map(function (word, j) {
      const b = el("button", { type: "button", class: "tok", "data-player": String(NI + j) }, tokens, word);
      return b;
    });
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("class", "edges");
    svg.setAttribute("aria-hidden", "true");
    body.appendChild(svg);
    const legend = el("div", { class: "legend" }, sec);
    const legendBar = el("canvas", { width: "200", height: "10", class: "bar" }, legend);
    const legendText = el("div", { class: "ticks" }, legend);
    const status = el("p", { class: "status", "aria-live": "polite" }, sec);
    const table = el("table", { class: "settings" }, sec);
    for (const key in panel.settings) {
      const tr = el("tr", {}, table);
      el("th", {}, tr, key);
      el("td", {}, tr, fmt(panel.settings[key]));
    }
    drawLegendBar(legendBar);
    Object.assign(panel, {
      section: sec, body: body, stage: stage, base: base, heat: heat, marks: marks,
      tokenEls: tokenEls, svg: svg, legendText: legendText, status: status, dpr: dpr,
    });
    return sec;
  }

  function drawLegendBar(canvas) {
    const ctx = canvas.getContext("2d");
    for (let x = 0; x < canvas.width; x++) {
      const v = (2 * x) / (canvas.width - 1) - 1;
      const rgb = mix(v >= 0 ? POS : NEG, Math.abs(v));
      ctx.fillStyle = "rgb(" + rgb.join(",") + ")";
      ctx.fillRect(x, 0, 1, canvas.height);
    }
  }

  function drawImage(panel) {
    const ctx = panel.base.getContext("2d");
    const w = panel.base.width;
    const h = panel.base.height;
    ctx.fillStyle = "#ededed";
    ctx.fillRect(0, 0, w, h);
    if (PAIR.image) {
      const img = new Image();
      img.onload = function () {
        ctx.imageSmoothingEnabled = true;
        ctx.drawImage(img, 0, 0, w, h);
      };
      img.src = PAIR.image;
    }
  }

  function cellRect(player, w, h) {
    const r = Math.floor(player / COLS);
    const c = player % COLS;
    const x0 = Math.round((c * w) / COLS);
    const y0 = Math.round((r * h) / ROWS);
    return [x0, y0, Math.round(((c + 1) * w) / COLS) - x0, Math.round(((r + 1) * h) / ROWS) - y0];
  }

  function patchAt(panel, event) {
    const box = panel.marks.getBoundingClientRect();
    const c = Math.floor(((event.clientX - box.left) / box.width) * COLS);
    const r = Math.floor(((event.clientY - box.top) / box.height) * ROWS);
    if (r < 0 || c < 0 || r >= ROWS || c >= COLS) return null;
    return r * COLS + c;
  }

  // ------------------------------------------------------------------------------------------
  // drawing one state

  function renderPanel(panel) {
    const s = shown(panel);
    const w = panel.heat.width;
    const h = panel.heat.height;
    const heat = panel.heat.getContext("2d");
    heat.clearRect(0, 0, w, h);
    for (let i = 0; i < NI; i++) {
      const v = s.values[i];
      if (v === 0 || i === s.player) continue;
      const rgb = v > 0 ? POS : NEG;
      const alpha = MAX_ALPHA * Math.min(1, Math.abs(v) / s.vmax);
      heat.fillStyle = "rgba(" + rgb.join(",") + "," + alpha.toFixed(4) + ")";
      const r = cellRect(i, w, h);
      heat.fillRect(r[0], r[1], r[2], r[3]);
    }
    const marks = panel.marks.getContext("2d");
    marks.clearRect(0, 0, w, h);
    marks.strokeStyle = "rgba(255,255,255," + (NI <= 100 ? 0.45 : 0.25) + ")";
    marks.lineWidth = 1;
    marks.beginPath();
    for (let c = 1; c < COLS; c++) {
      const x = Math.round((c * w) / COLS) + 0.5;
      marks.moveTo(x, 0);
      marks.lineTo(x, h);
    }
    for (let r = 1; r < ROWS; r++) {
      const y = Math.round((r * h) / ROWS) + 0.5;
      marks.moveTo(0, y);
      marks.lineTo(w, y);
    }
    marks.stroke();
    function outline(player, colour, width) {
      const r = cellRect(player, w, h);
      marks.lineWidth = width * panel.dpr;
      marks.strokeStyle = "#fff";
      marks.strokeRect(r[0] + 1, r[1] + 1, r[2] - 2, r[3] - 2);
      marks.lineWidth = (width - 1) * panel.dpr;
      marks.strokeStyle = colour;
      marks.strokeRect(r[0] + 1, r[1] + 1, r[2] - 2, r[3] - 2);
    }
    if (s.player !== null && s.player < NI) outline(s.player, "#111", 3);
    if (document.activeElement === panel.marks) outline(state.cursor, "#f5a623", 3);

    for (let j = 0; j < NT; j++) {
      const b = panel.tokenEls[j];
      const player = NI + j;
      const v = s.values[player];
      const col = tokenColour(player === s.player ? 0 : v, s.vmax);
      b.style.backgroundColor = col.bg;
      b.style.color = col.fg;
      b.classList.toggle("active", player === s.player);
      b.setAttribute("aria-pressed", player === state.selected ? "true" : "false");
      b.setAttribute("aria-label", PAIR.tokens[j] + ": " + (player === s.player ? "selected" : signed(v)));
    }
    panel.legendText.textContent = signed(-s.vmax) + "  ·  0  ·  " + signed(s.vmax) + "  " + s.what;
    drawEdges(panel, s);
  }

  function drawEdges(panel, s) {
    const svg = panel.svg;
    while (svg.firstChild) svg.removeChild(svg.firstChild);
    let edges;
    if (s.player !== null && panel.pairs !== null && s.values !== panel.phi) {
      // the active player's strongest partners of the other modality
      const partners = [];
      const lo = s.player < NI ? NI : 0;
      const hi = s.player < NI ? N : NI;
      for (let q = lo; q < hi; q++) if (s.values[q] !== 0) partners.push(q);
      partners.sort((a, b) => Math.abs(s.values[b]) - Math.abs(s.values[a]));
      edges = partners.slice(0, state.k).map(function (q) {
        return s.player < NI ? [s.player, q, s.values[q]] : [q, s.player, s.values[q]];
      });
    } else {
      edges = panel.strongest.slice(0, state.k);
    }
    if (!edges.length) return;
    const body = panel.body.getBoundingClientRect();
    svg.setAttribute("width", String(body.width));
    svg.setAttribute("height", String(body.height));
    const stage = panel.stage.getBoundingClientRect();
    let emax = 0;
    edges.forEach((e) => (emax = Math.max(emax, Math.abs(e[2]))));
    // weakest first, so strong edges stay on top
    edges.slice().reverse().forEach(function (e) {
      const r = cellRect(e[0], stage.width, stage.height);
      const x1 = stage.left - body.left + r[0] + r[2] / 2;
      const y1 = stage.top - body.top + r[1] + r[3] / 2;
      const tb = panel.tokenEls[e[1] - NI].getBoundingClientRect();
      const x2 = tb.left - body.left + tb.width / 2;
      const y2 = tb.top - body.top;
      const t = Math.abs(e[2]) / emax;
      const line = document.createElementNS(SVG, "line");
      line.setAttribute("x1", x1.toFixed(1));
      line.setAttribute("y1", y1.toFixed(1));
      line.setAttribute("x2", x2.toFixed(1));
      line.setAttribute("y2", y2.toFixed(1));
      line.setAttribute("stroke", "rgb(" + (e[2] > 0 ? POS : NEG).join(",") + ")");
      line.setAttribute("stroke-width", (0.8 + 3.2 * t).toFixed(2));
      line.setAttribute("stroke-opacity", (0.35 + 0.6 * t).toFixed(2));
      line.setAttribute("data-edge", e[0] + "-" + e[1]);
      svg.appendChild(line);
      const dot = document.createElementNS(SVG, "circle");
      dot.setAttribute("cx", x1.toFixed(1));
      dot.setAttribute("cy", y1.toFixed(1));
      dot.setAttribute("r", (2 + 2 * t).toFixed(1));
      dot.setAttribute("fill", line.getAttribute("stroke"));
      svg.appendChild(dot);
    });
  }

  let controls = null;
  const timing = { last: 0, count: 0, total: 0, max: 0 };

  function render() {
    const t0 = performance.now();
    panels.forEach(renderPanel);
    controls.views.querySelectorAll("button").forEach(function (b) {
      b.setAttribute("aria-checked", b.getAttribute("data-view") === state.view ? "true" : "false");
    });
    const ms = performance.now() - t0;
    timing.last = ms;
    timing.count += 1;
    timing.total += ms;
    timing.max = Math.max(timing.max, ms);
  }

  function setView(view) {
    state.view = view;
    if (view === "first") state.hover = null;
    render();
  }

  function select(player) {
    // clicking the selected player again unselects it
    state.selected = state.selected === player ? null : player;
    state.hover = null;
    state.view = state.selected === null ? "first" : "cond";
    render();
  }

  function setStatus(panel, player) {
    if (player === null) {
      panel.status.textContent = "";
      return;
    }
    const s = shown(panel);
    if (player === s.player && s.values !== panel.phi) {
      panel.status.textContent = label(player) + " (selected): first-order " + signed(panel.phi[player]);
      return;
    }
    panel.status.textContent = label(player) + ": " + signed(s.values[player]) + " (" + s.what + ")";
  }

  // ------------------------------------------------------------------------------------------
  // events

  function wire(panel) {
    panel.tokenEls.forEach(function (b) {
      const player = parseInt(b.getAttribute("data-player"), 10);
      b.addEventListener("mouseenter", function () {
        state.hover = player;
        render();
        setStatus(panel, player);
      });
      b.addEventListener("mouseleave", function () {
        state.hover = null;
        render();
      });
      b.addEventListener("focus", function () {
        state.hover = player;
        render();
      });
      b.addEventListener("blur", function () {
        state.hover = null;
        render();
      });
      b.addEventListener("click", () => select(player));
    });
    panel.marks.addEventListener("click", function (event) {
      const player = patchAt(panel, event);
      if (player === null) return;
      state.cursor = player;
      select(player);
      setStatus(panel, player);
    });
    panel.marks.addEventListener("mousemove", function (event) {
      setStatus(panel, patchAt(panel, event));
    });
    panel.marks.addEventListener("mouseleave", () => setStatus(panel, null));
    panel.marks.addEventListener("focus", render);
    panel.marks.addEventListener("blur", render);
    panel.marks.addEventListener("keydown", function (event) {
      const r = Math.floor(state.cursor / COLS);
      const c = state.cursor % COLS;
      const moves = { ArrowLeft: [0, -1], ArrowRight: [0, 1], ArrowUp: [-1, 0], ArrowDown: [1, 0] };
      if (event.key in moves) {
        const m = moves[event.key];
        const nr = Math.min(ROWS - 1, Math.max(0, r + m[0]));
        const nc = Math.min(COLS - 1, Math.max(0, c + m[1]));
        state.cursor = nr * COLS + nc;
        event.preventDefault();
        render();
        setStatus(panel, state.cursor);
      } else if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        select(state.cursor);
      }
    });
  }

  document.addEventListener("keydown", function (event) {
    if (event.target && event.target.tagName === "INPUT") return;
    if (event.key === "Escape") {
      state.selected = null;
      state.hover = null;
      setView("first");
    } else if (event.key === "f") {
      setView("first");
    } else if (event.key === "c") {
      setView("cond");
    } else if (event.key === "+" || event.key === "=" || event.key === "-") {
      state.k = Math.max(0, Math.min(K_MAX, state.k + (event.key === "-" ? -1 : 1)));
      controls.slider.value = String(state.k);
      controls.kout.textContent = String(state.k);
      render();
    }
  });

  // ------------------------------------------------------------------------------------------
  // build

  el("h1", {}, root, DATA.title);
  controls = buildControls();
  const row = el("div", { class: "panels" }, root);
  panels.forEach(function (panel) {
    row.appendChild(buildPanel(panel));
    drawImage(panel);
    wire(panel);
  });
  window.addEventListener("resize", render);
  render();

  // For tests and scripts: the state, the decoded numbers and the render times (ms).
  window.fixlipViewer = {
    state: state,
    panels: panels,
    timing: timing,
    scales: SHARED,
    select: select,
    setView: setView,
    render: render,
  };
})();
