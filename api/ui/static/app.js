/* lineinspect QA UI: vanilla JS against the JSON API (no build step).
 * Views by URL hash: #/ defect log, #/inspections/<id> detail, #/charts charts,
 * #/review the "to review" queue and #/shadow the shadow candidate (lifecycle.js). */
"use strict";

const API = "/api/v1";
const $ = (sel) => document.querySelector(sel);
const state = {
  filters: {},        // defect-log filters (query parameters)
  cursors: [null],    // cursor of each visited page (keyset paging)
  page: 0,
  nextCursor: null,
  detail: null,       // inspection shown in the detail view
  classes: [],
};

/* -- helpers ------------------------------------------------------------------------------ */
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svgEl(tag, attrs, text) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== "" && v !== null && v !== undefined) q.set(k, v);
  const s = q.toString();
  return s ? "?" + s : "";
}

async function getJSON(path) {  // with the API key where reads need one (auth.js)
  const resp = await apiFetch(path, { headers: { Accept: "application/json" } });
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) throw new Error(errorText(resp.status, body));
  return body;
}

function errorText(status, body) {
  let detail = body && body.detail;
  if (Array.isArray(detail)) detail = detail.map((d) => d.msg || JSON.stringify(d)).join("; ");
  return `${status} ${(body && body.error) || "error"}: ${detail || ""}`;
}

function fmtTime(iso) {
  if (!iso) return "–";
  return iso.replace("T", " ").replace("Z", "").slice(0, 23);
}

function fmtAge(ms) {
  if (ms === null || ms === undefined) return "–";
  const s = Math.abs(ms) / 1000;
  if (s < 1) return `${Math.round(Math.abs(ms))} ms`;
  if (s < 120) return `${s.toFixed(1)} s`;
  if (s < 7200) return `${(s / 60).toFixed(1)} min`;
  if (s < 172800) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} d`;
}

function classColor(i) {  // same golden-angle hues as the server's overlay
  const hue = ((i + 1) * 0.618033988749895 % 1) * 360;
  return `hsl(${hue.toFixed(0)}, 80%, 48%)`;
}

function fillSelect(select, values) {
  const current = select.value;
  select.replaceChildren(el("option", { value: "" }, "all"), ...values.map((v) => el("option", { value: v }, v)));
  if (values.includes(current)) select.value = current;
}

/* -- credentials (kept in this browser only) ----------------------------------------------- */
function initAuth() {
  for (const id of ["reviewer", "apikey"]) {
    const input = $("#" + id);
    input.value = localStorage.getItem("lineinspect." + id) || "";
    input.addEventListener("input", () => localStorage.setItem("lineinspect." + id, input.value));
  }
  $("#apikey").addEventListener("change", () => {  // a key entered where reads need one
    if (!auth.readsNeedKey) return;
    refreshFacets();
    refreshLines();
    route();
  });
  downloadWithKey($("#csv-link"));
}

/* -- line status --------------------------------------------------------------------------- */
// What each lamp means (the API's `lamp`: api/ui/routes.py).
const LAMPS = {
  OK: { text: "OK", help: "live verdict OK" },
  NG: { text: "NG", help: "live verdict NG" },
  overloaded: { text: "OVERLOADED", help: "frames wait longer than the recipe allows and are not inspected" },
  stale: { text: "STALE", help: "no verdict younger than the recipe's stale_after_ms" },
  camera_down: { text: "CAMERA DOWN", help: "camera disconnected or acquisition not reporting" },
  no_verdict: { text: "NO VERDICT", help: "no frame inspected yet" },
  unknown: { text: "UNKNOWN", help: "verdict unknown" },
};

async function refreshLines() {
  const box = $("#lines");
  try {
    const body = await getJSON(`${API}/stats/lines`);
    if (!body.lines.length) {
      box.replaceChildren(el("p", { class: "muted" }, "No line has reported yet."));
      return;
    }
    // lines with a camera first, then camera down, then lines that never had a verdict
    const rank = (l) => (l.camera_connected ? 0 : l.age_ms === null || l.age_ms === undefined ? 2 : 1);
    const lines = [...body.lines].sort((a, b) => rank(a) - rank(b) || a.line_id.localeCompare(b.line_id));
    box.replaceChildren(...lines.map((l) => {
      const lastNg = l.last_ng
        ? el("a", { href: `#/inspections/${l.last_ng.inspection_id}` }, fmtTime(l.last_ng.captured_at))
        : "none";
      const num = (v, digits) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
      const lamp = LAMPS[l.lamp] || LAMPS.unknown;
      const load = l.inspections_per_s === null || l.inspections_per_s === undefined ? null
        : el("span", { class: "load" }, ` · ${num(l.inspections_per_s, 1)} inspected/s`,
             l.skipped ? ` · ${l.skipped} not inspected (backlog)` : "",
             l.backlog_ms ? ` · backlog ${fmtAge(l.backlog_ms)}` : "");
      return el("div", { class: "line-card", "data-line": l.line_id, "data-verdict": l.verdict,
                         "data-lamp": l.lamp },
        el("div", { class: `lamp lamp-${l.lamp} ${l.verdict}`, title: lamp.help, role: "img",
                    "aria-label": `${lamp.text}: ${lamp.help}` }),
        el("h3", {}, l.line_id, " ", el("span", { class: `badge ${l.verdict}` }, l.verdict),
           l.lamp === l.verdict ? "" : el("span", { class: `state state-${l.lamp}` }, " ", lamp.text)),
        el("span", { class: "age" }, `verdict age ${fmtAge(l.age_ms)}`, l.reason ? ` (${l.reason})` : ""),
        el("div", { class: "facts" },
          el("span", { class: "camera" }, `camera ${l.camera_connected ? "connected" : "DISCONNECTED"}`),
          ` · ${num(l.camera_fps, 1)} frames/s`, load || " · inference not reporting",
          " · last NG ", lastNg));
    }));
  } catch (err) {
    box.replaceChildren(el("p", { class: "error" }, `Line status unavailable: ${err.message}`));
  }
}

async function refreshFacets() {
  try {
    const f = await getJSON(`${API}/stats/facets`);
    state.classes = f.classes;
    fillSelect($("#f-line"), f.lines);
    fillSelect($("#c-line"), f.lines);
    fillSelect($("#f-class"), f.classes);
    $("#class-options").replaceChildren(...f.classes.map((c) => el("option", { value: c })));
    $("#f-line").value = state.filters.line_id || "";
    $("#f-class").value = state.filters.defect_class || "";
  } catch (err) {
    console.warn("facets", err);
  }
}

/* -- defect log ---------------------------------------------------------------------------- */
function readFilters() {
  const f = {};
  for (const [id, key] of [["f-line", "line_id"], ["f-verdict", "verdict"], ["f-class", "defect_class"],
                            ["f-reviewed", "reviewed"], ["f-since", "since"], ["f-until", "until"]]) {
    const v = $("#" + id).value;
    if (v) f[key] = v;
  }
  return f;
}

function applyFilters() {
  state.filters = readFilters();
  sessionStorage.setItem("lineinspect.filters", JSON.stringify(state.filters));
  state.cursors = [null];
  state.page = 0;
  loadLog();
}

function restoreFilters() {
  try { state.filters = JSON.parse(sessionStorage.getItem("lineinspect.filters") || "{}"); }
  catch (_) { state.filters = {}; }
  for (const [id, key] of [["f-line", "line_id"], ["f-verdict", "verdict"], ["f-class", "defect_class"],
                            ["f-reviewed", "reviewed"], ["f-since", "since"], ["f-until", "until"]]) {
    $("#" + id).value = state.filters[key] || "";
  }
}

function reviewCell(item) {
  if (!item.reviewed) return el("span", { class: "muted" }, "–");
  const r = item.review || {};
  return el("span", { class: "review-mark", title: `${r.reviewer || ""} ${r.created_at || ""}` },
    `✓ ${r.action || "reviewed"}`, r.reviewer ? ` · ${r.reviewer}` : "");
}

async function loadLog() {
  const cursor = state.cursors[state.page];
  const params = { ...state.filters, limit: 50, cursor };
  $("#csv-link").href = `${API}/inspections.csv${query(state.filters)}`;
  const err = $("#log-error");
  try {
    const body = await getJSON(`${API}/inspections${query(params)}`);
    err.hidden = true;
    state.nextCursor = body.next_cursor;
    $("#log-table tbody").replaceChildren(...body.items.map((it) => {
      const classes = [...new Set(it.defects.map((d) => d.class))].join(", ");
      const maxScore = it.defects.length ? Math.max(...it.defects.map((d) => d.score)).toFixed(3) : "";
      return el("tr", { "data-id": it.inspection_id, class: it.reviewed ? "reviewed" : null,
                        onclick: () => { location.hash = `#/inspections/${it.inspection_id}`; } },
        el("td", {}, it.inspection_id), el("td", {}, fmtTime(it.captured_at)), el("td", {}, it.line_id),
        el("td", {}, it.frame_id), el("td", {}, el("span", { class: `badge ${it.verdict}`,
          title: it.verdict === "UNKNOWN" ? "not inspected: waited longer than the recipe's max_backlog_ms" : null }, it.verdict)),
        el("td", { class: "classes" }, classes), el("td", {}, maxScore), el("td", { class: "review" }, reviewCell(it)));
    }));
    if (!body.items.length) {
      $("#log-table tbody").replaceChildren(el("tr", { class: "empty" }, el("td", { colspan: 8, class: "muted" }, "No inspection matches.")));
    }
    $("#page-info").textContent = `page ${state.page + 1} · ${body.items.length} rows`;
    $("#page-newer").disabled = state.page === 0;
    $("#page-older").disabled = !state.nextCursor;
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
  }
}

/* -- detail -------------------------------------------------------------------------------- */
function showImage() {
  const it = state.detail;
  const img = $("#detail-image");
  if (!it || !it.has_image) {
    img.hidden = true;
    $("#image-caption").textContent = "Frame not retained (image retention policy).";
    return;
  }
  const overlay = $("#overlay-toggle").checked;
  img.hidden = false;
  img.dataset.kind = overlay ? "overlay" : "image";
  setImage(img, overlay ? it.links.overlay : it.links.image);
  $("#image-caption").textContent = overlay ? "Frame with defect mask and boxes" : "Frame";
}

function renderDetail(it) {
  state.detail = it;
  $("#detail-title").replaceChildren(`Inspection #${it.inspection_id} `,
    el("span", { class: `badge ${it.verdict}`, id: "detail-verdict" }, it.verdict),
    it.reviewed ? el("span", { class: "review-mark", id: "detail-reviewed" }, " ✓ reviewed") : "");
  const facts = [["Line", it.line_id], ["Frame", it.frame_id], ["Captured (UTC)", fmtTime(it.captured_at)],
    ["Latency", `${it.latency_ms} ms`], ["Recipe", it.recipe || "–"], ["Size", `${it.width} × ${it.height}`],
    ["Brightness", it.brightness]];
  $("#detail-facts").replaceChildren(...facts.flatMap(([k, v]) => [el("dt", {}, k), el("dd", {}, v)]));
  $("#defects-table tbody").replaceChildren(...(it.defects.length ? it.defects.map((d, i) => el("tr", {},
    el("td", { class: "num" }, i + 1), el("td", {}, d.class), el("td", {}, d.score.toFixed(3)),
    el("td", { class: "box" }, `[${d.bbox.join(", ")}]`), el("td", {}, d.area_px), el("td", {}, d.model),
    el("td", { class: "evidence" }, evidenceText(d)))) : [el("tr", {}, el("td", { colspan: 7, class: "muted" }, "no defects"))]));
  const models = Object.entries(it.models || {});
  $("#models-list").replaceChildren(...(models.length ? models.map(([m, v]) => el("li", {}, `${m} ${v}`)) : [el("li", { class: "muted" }, "–")]));
  const reviews = it.reviews || [];
  const last = reviews[reviews.length - 1];
  $("#review-state").replaceChildren(last
    ? el("span", { class: "reviewed-banner" }, `Reviewed: ${last.action} by ${last.reviewer} at ${fmtTime(last.created_at)}`,
         last.verdict ? ` → ${last.verdict}` : "", last.classes && last.classes.length ? ` [${last.classes.join(", ")}]` : "")
    : el("span", { class: "muted" }, "Not reviewed yet."));
  $("#review-history").replaceChildren(...reviews.map((r) => el("li", {},
    `${fmtTime(r.created_at)} · ${r.reviewer} · ${r.action}`, r.verdict ? ` → ${r.verdict}` : "",
    r.classes ? ` [${r.classes.join(", ")}]` : "", r.comment ? ` — ${r.comment}` : "")));
  $("#rv-false-reject").disabled = it.verdict !== "NG";
  $("#rv-classes").value = [...new Set(it.defects.map((d) => d.class))].join(", ");
  showImage();
}

function evidenceText(d) {  // the other models' opinions of the same region
  const others = (d.evidence || []).filter((e) => e.model !== d.model);
  if (!others.length) return "–";
  return others.map((e) => `${e.model}: ${e.class}${e.mapped !== e.class ? ` → ${e.mapped}` : ""} ${e.score.toFixed(2)}`).join(" · ");
}

async function loadDetail(id) {
  const err = $("#detail-error");
  $("#review-message").textContent = "";
  try {
    const it = await getJSON(`${API}/inspections/${encodeURIComponent(id)}`);
    err.hidden = true;
    renderDetail(it);
    updateNeighbours(id);
  } catch (e) {
    state.detail = null;
    err.textContent = e.message;
    err.hidden = false;
  }
}

async function updateNeighbours(id) {
  const params = { ...state.filters, verdict: "NG" };
  try {
    const n = await getJSON(`${API}/inspections/${id}/neighbours${query(params)}`);
    state.neighbours = { ...n, of: String(id) };
    $("#prev-ng").disabled = !n.newer;
    $("#next-ng").disabled = !n.older;
    document.body.dataset.neighboursOf = String(id);  // j/k ready (the tests wait for it)
  } catch (_) {
    state.neighbours = null;
  }
}

function goNeighbour(which) {
  const n = state.neighbours;  // only the shown inspection's neighbours, never a stale set
  const shown = state.detail && String(state.detail.inspection_id);
  if (n && n.of === shown && n[which]) location.hash = `#/inspections/${n[which]}`;
}

async function submitReview(action) {
  const it = state.detail;
  const msg = $("#review-message");
  const reviewer = $("#reviewer").value.trim();
  const key = $("#apikey").value;
  if (!it) return;
  if (!reviewer || !key) {
    msg.className = "error";
    msg.textContent = "Enter your reviewer name and the API key (top right) first.";
    return;
  }
  const body = { reviewer, action };
  const comment = $("#rv-comment").value.trim();
  if (comment) body.comment = comment;
  if (action === "correct") {
    body.verdict = $("#rv-verdict").value;
    const classes = $("#rv-classes").value.split(",").map((s) => s.trim()).filter(Boolean);
    if (body.verdict === "NG" || classes.length) body.classes = body.verdict === "OK" ? [] : classes;
  }
  const resp = await fetch(`${API}/inspections/${it.inspection_id}/review`, {
    method: "POST", headers: { "Content-Type": "application/json", "X-API-Key": key },
    body: JSON.stringify(body),
  });
  const out = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    msg.className = "error";
    msg.textContent = `Review not saved: ${errorText(resp.status, out)}`;
    return;
  }
  msg.className = "saved";
  msg.textContent = `Saved: ${out.review.action} by ${out.review.reviewer}`;
  $("#rv-comment").value = "";
  await loadDetail(it.inspection_id);
}

/* -- charts -------------------------------------------------------------------------------- */
const RANGES = { "1h": [3600, 60], "24h": [86400, 3600], "7d": [604800, 21600], "30d": [2592000, 86400] };

async function loadCharts() {
  const [span, bucket] = RANGES[$("#c-range").value] || RANGES["24h"];
  const until = new Date();
  const since = new Date(until.getTime() - span * 1000);
  const line = $("#c-line").value;
  try {
    const d = await getJSON(`${API}/stats/defects${query({ since: since.toISOString(), until: until.toISOString(), bucket_s: bucket, line_id: line })}`);
    drawStacked($("#chart-defects"), d);
    const r = await getJSON(`${API}/stats/ng-rate${query({ since: since.toISOString(), until: until.toISOString() })}`);
    drawNgRate($("#chart-ngrate"), r.lines);
  } catch (e) {
    $("#chart-defects").replaceChildren(el("p", { class: "error" }, e.message));
  }
}

function drawStacked(box, d) {
  const W = 900, H = 260, L = 40, B = 40, T = 10;
  const n = d.buckets.length;
  const totals = d.buckets.map((_, k) => d.classes.reduce((s, c) => s + d.series[c][k], 0));
  const max = Math.max(1, ...totals);
  const svg = svgEl("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "defects per class over time" });
  const bw = (W - L - 40) / Math.max(1, n);
  const step = Math.max(1, Math.ceil(n * 80 / (W - L - 40)));  // about 80 px per axis label
  const span = n * d.bucket_s;
  svg.append(svgEl("line", { x1: L, y1: H - B, x2: W - 10, y2: H - B, stroke: "#888" }));
  for (const frac of [0, 0.5, 1]) {
    const y = H - B - frac * (H - B - T);
    svg.append(svgEl("text", { x: L - 5, y: y + 4, "text-anchor": "end" }, String(Math.round(frac * max))));
  }
  d.buckets.forEach((b, k) => {
    let y = H - B;
    d.classes.forEach((c, ci) => {
      const v = d.series[c][k];
      if (!v) return;
      const h = v / max * (H - B - T);
      y -= h;
      const rect = svgEl("rect", { x: L + k * bw + 1, y, width: Math.max(1, bw - 2), height: h, fill: classColor(ci), "data-class": c });
      rect.append(svgEl("title", {}, `${fmtTime(b)}: ${c} ${v}`));
      svg.append(rect);
    });
    if (k % step === 0) {
      const label = d.bucket_s < 86400 && span <= 86400 ? b.slice(11, 16) : b.slice(5, 16).replace("T", " ");
      svg.append(svgEl("text", { x: L + k * bw + bw / 2, y: H - B + 14, "text-anchor": "middle" }, label));
    }
  });
  const swatch = (ci) => {  // colour through the CSSOM: the page's CSP forbids style attributes
    const i = el("i", { "data-class-index": ci });
    i.style.background = classColor(ci);
    return i;
  };
  const legend = el("div", { class: "legend" }, ...d.classes.map((c, ci) => el("span", {}, swatch(ci), c)));
  box.replaceChildren(d.classes.length ? svg : el("p", { class: "muted" }, "No defects in this range."), legend);
}

function drawNgRate(box, lines) {
  if (!lines.length) { box.replaceChildren(el("p", { class: "muted" }, "No inspections in this range.")); return; }
  const W = 900, row = 26, L = 150, H = lines.length * row + 10;
  const svg = svgEl("svg", { width: W, height: H, viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "NG rate per line" });
  lines.forEach((l, i) => {
    const y = 5 + i * row;
    const w = l.ng_rate * (W - L - 160);
    svg.append(svgEl("text", { x: L - 8, y: y + 15, "text-anchor": "end" }, l.line_id));
    svg.append(svgEl("rect", { x: L, y: y + 3, width: W - L - 160, height: 16, fill: "#eef0f4" }));
    const bar = svgEl("rect", { x: L, y: y + 3, width: Math.max(0, w), height: 16, fill: "#d0312d", "data-line": l.line_id });
    bar.append(svgEl("title", {}, `${l.line_id}: ${l.ng} NG of ${l.inspected} inspected (${l.unknown} not inspected)`));
    svg.append(bar);
    svg.append(svgEl("text", { x: W - 150, y: y + 15, class: "ng-rate-label" }, `${(l.ng_rate * 100).toFixed(1)} % (${l.ng}/${l.inspected})${l.unknown ? ` · ${l.unknown} not inspected` : ""}`));
  });
  box.replaceChildren(svg);
}

/* -- routing and keys ---------------------------------------------------------------------- */
function route() {
  const h = location.hash || "#/";
  const m = h.match(/^#\/inspections\/(\d+)$/);
  const lifecycle = showLifecycle(h);  // #/review, #/shadow (lifecycle.js)
  $("#log-view").hidden = !!m || h === "#/charts" || lifecycle;
  $("#detail-view").hidden = !m;
  $("#charts-view").hidden = h !== "#/charts";
  $("#nav-log").classList.toggle("active", !m && h !== "#/charts" && !lifecycle);
  $("#nav-charts").classList.toggle("active", h === "#/charts");
  if (m) loadDetail(m[1]);
  else if (h === "#/charts") loadCharts();
  else if (!lifecycle) loadLog();
}

function onKey(ev) {
  if (ev.target.closest && ev.target.closest("input, select, textarea")) return;
  if (ev.ctrlKey || ev.metaKey || ev.altKey || $("#detail-view").hidden) return;
  const k = ev.key;
  if (k === "j" || k === "ArrowRight") goNeighbour("older");
  else if (k === "k" || k === "ArrowLeft") goNeighbour("newer");
  else if (k === "o") { $("#overlay-toggle").checked = !$("#overlay-toggle").checked; showImage(); }
  else if (k === "Escape") location.hash = "#/";
  else return;
  ev.preventDefault();
}

function init() {
  initAuth();
  restoreFilters();
  $("#f-apply").addEventListener("click", applyFilters);
  $("#f-reset").addEventListener("click", () => { $("#filters").reset(); applyFilters(); });
  for (const id of ["f-line", "f-verdict", "f-class", "f-reviewed"]) $("#" + id).addEventListener("change", applyFilters);
  $("#page-older").addEventListener("click", () => {
    if (!state.nextCursor) return;
    state.cursors[state.page + 1] = state.nextCursor;
    state.page += 1;
    loadLog();
  });
  $("#page-newer").addEventListener("click", () => { if (state.page > 0) { state.page -= 1; loadLog(); } });
  $("#overlay-toggle").addEventListener("change", showImage);
  $("#prev-ng").addEventListener("click", () => goNeighbour("newer"));
  $("#next-ng").addEventListener("click", () => goNeighbour("older"));
  $("#rv-confirm").addEventListener("click", () => submitReview("confirm"));
  $("#rv-false-reject").addEventListener("click", () => submitReview("false_reject"));
  $("#rv-correct").addEventListener("click", () => submitReview("correct"));
  $("#c-range").addEventListener("change", loadCharts);
  $("#c-line").addEventListener("change", loadCharts);
  document.addEventListener("keydown", onKey);
  window.addEventListener("hashchange", route);
  refreshFacets();
  refreshLines();
  setInterval(refreshLines, 2000);
  route();
  document.body.dataset.ready = "1";
}

document.addEventListener("DOMContentLoaded", init);
