/* lineinspect QA UI, model lifecycle (issue 21): the "to review" queue (#/review) and the
 * shadow candidate's disagreements with both overlays side by side (#/shadow).
 * Uses the helpers of app.js ($, el, getJSON, query, fmtTime, API). */
"use strict";

const REASON_HELP = {
  disagreement: "the shadow candidate disagrees with the live verdict or classes",
  uncertain: "the highest defect score is just above its threshold",
  drift: "captured while the line's frames drifted from the reference",
};

/* Show the lifecycle view of hash h; false when h is not one (app.js routes the rest). */
function showLifecycle(h) {
  const review = h === "#/review", shadow = h === "#/shadow";
  $("#review-view").hidden = !review;
  $("#shadow-view").hidden = !shadow;
  $("#nav-review").classList.toggle("active", review);
  $("#nav-shadow").classList.toggle("active", shadow);
  if (review) loadReviewQueue();
  if (shadow) loadShadow();
  return review || shadow;
}

function reasonBadge(reason) {
  return el("span", { class: `reason reason-${reason}`, title: REASON_HELP[reason] || reason }, reason);
}

function whyText(item) {
  return item.reasons.map((r) => {
    const d = item.detail[r] || {};
    if (r === "uncertain") return `score ${d.max_score} vs threshold ${d.threshold} (band ${d.band})`;
    if (r === "drift") return `drift distance ${d.distance} > ${d.limit}`;
    if (r === "disagreement") return `${d.candidate}: ${d.live} → ${d.candidate_verdict} (${d.kind})`;
    return r;
  }).join(" · ");
}

async function refreshReviewCount() {
  try {
    const q = await getJSON(`${API}/review-queue?limit=1`);
    $("#review-count").textContent = q.pending ? String(q.pending) : "";
  } catch (_) { /* the count is a hint only */ }
}

async function loadReviewQueue() {
  const err = $("#review-error");
  try {
    const q = await getJSON(`${API}/review-queue?limit=200`);
    err.hidden = true;
    $("#review-count").textContent = q.pending ? String(q.pending) : "";
    $("#review-total").textContent = `(${q.pending} pending · daily cap ${q.daily_cap} per line)`;
    $("#review-lines").replaceChildren(...(q.lines.length ? q.lines.map((l) => el("li", { "data-line": l.line_id },
      `${l.line_id}: ${l.sampled_today} of ${q.daily_cap} sampled today`,
      l.sampled_today >= q.daily_cap ? el("strong", {}, " (cap reached)") : "",
      ` · ${l.pending} pending`,
      Object.keys(l.pending_by_reason).length
        ? ` (${Object.entries(l.pending_by_reason).map(([r, n]) => `${r} ${n}`).join(", ")})` : ""))
      : [el("li", { class: "muted" }, "Nothing sampled yet.")]));
    $("#review-table tbody").replaceChildren(...(q.items.length ? q.items.map((it, i) => el("tr", {
      "data-id": it.inspection_id, "data-reason": it.reason,
      onclick: () => { location.hash = `#/inspections/${it.inspection_id}`; } },
      el("td", {}, i + 1), el("td", {}, reasonBadge(it.reason)), el("td", {}, it.score.toFixed(2)),
      el("td", {}, it.line_id), el("td", {}, fmtTime(it.captured_at)), el("td", {}, it.frame_id),
      el("td", {}, el("span", { class: `badge ${it.verdict}` }, it.verdict)),
      el("td", { class: "why" }, whyText(it))))
      : [el("tr", { class: "empty" }, el("td", { colspan: 8, class: "muted" }, "Nothing to review."))]));
    document.body.dataset.reviewLoaded = String(Date.now());
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
  }
}

function overlayImage(src, alt) {
  const img = el("img", { alt });
  // with the key where reads need one (auth.js's setImage), else a plain <img src>
  if (typeof setImage === "function") setImage(img, src);
  else img.src = src;
  return img;
}

function overlayFigure(src, caption, kind) {
  return el("figure", { "data-kind": kind },
    src ? overlayImage(src, caption) : el("p", { class: "muted" }, "frame not retained"),
    el("figcaption", {}, caption));
}

async function loadShadow() {
  const err = $("#shadow-error");
  const line = $("#s-line").value;
  try {
    const [summary, list] = await Promise.all([
      getJSON(`${API}/shadow/summary${query({ line_id: line })}`),
      getJSON(`${API}/shadow/disagreements${query({ line_id: line, limit: 20 })}`),
    ]);
    err.hidden = true;
    const lines = summary.lines.map((l) => l.line_id);
    if (!line) fillSelect($("#s-line"), lines);
    const rows = summary.lines.flatMap((l) => [...l.days].reverse().map((d) => el("tr", { "data-line": l.line_id, "data-day": d.day },
      el("td", {}, l.line_id), el("td", {}, d.day), el("td", { class: "num" }, d.runs),
      el("td", { class: "num verdict" }, d.verdict), el("td", { class: "num classes" }, d.classes))));
    $("#shadow-summary tbody").replaceChildren(...(rows.length ? rows
      : [el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No shadow results in the last 30 days."))]));
    $("#shadow-list").replaceChildren(...(list.items.length ? list.items.map((it) => el("article", {
      class: "shadow-item", "data-shadow-id": it.shadow_id, "data-kind": it.disagreement },
      el("h3", {},
        it.inspection_id ? el("a", { href: `#/inspections/${it.inspection_id}` }, `Inspection #${it.inspection_id}`) : "Not logged",
        ` · ${it.line_id} · frame ${it.frame_id} · ${fmtTime(it.captured_at)} · `,
        el("span", { class: "reason reason-disagreement" }, it.disagreement), " ",
        el("span", { class: `badge ${it.live_verdict}` }, it.live_verdict), " → ",
        el("span", { class: `badge ${it.verdict}` }, it.verdict)),
      el("div", { class: "pair" },
        overlayFigure(it.links.live_overlay, `Live: ${it.live_verdict} [${it.live_classes.join(", ") || "no defect"}]`, "live"),
        overlayFigure(it.links.candidate_overlay, `Candidate ${it.recipe}: ${it.verdict} [${it.classes.join(", ") || "no defect"}] · ${it.latency_ms.toFixed(0)} ms`, "candidate"))))
      : [el("p", { class: "muted" }, "The candidate agrees with the live recipe (or no shadow runs).")]));
    document.body.dataset.shadowLoaded = String(Date.now());
  } catch (e) {
    err.textContent = e.message;
    err.hidden = false;
  }
}

/* A frame opened from the queue offers the way back to it (also after j/k). */
function trackQueueVisit(ev) {
  const from = new URL(ev.oldURL).hash, detail = /^#\/inspections\/\d+$/;
  const back = $("#back-to-queue");
  back.hidden = !(detail.test(location.hash) && (from === "#/review" || (!back.hidden && detail.test(from))));
}

document.addEventListener("DOMContentLoaded", () => {
  $(".detail-nav").prepend(el("a", { href: "#/review", id: "back-to-queue", hidden: true }, "← Back to the review queue"));
  window.addEventListener("hashchange", trackQueueVisit);
  $("#s-line").addEventListener("change", loadShadow);
  refreshReviewCount();
  setInterval(refreshReviewCount, 10000);
});
