// ucp dashboard: plain DOM + inline SVG, no libraries. Data is only ever set as text (never as HTML).
"use strict";

const KEY = new URLSearchParams(location.search).get("code");
const SVG = "http://www.w3.org/2000/svg";
const $ = (id) => document.getElementById(id);

// --- API ------------------------------------------------------------------------------------------------
function apiUrl(path, params = {}) {
  const url = new URL("/api/" + path, location.origin);
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  if (KEY) url.searchParams.set("code", KEY); // the function key the page was opened with
  return url;
}

async function api(path, params, payload) { // with a payload: POST it as JSON
  const init = { headers: { Accept: "application/json" }, referrerPolicy: "no-referrer" };
  if (payload !== undefined) {
    Object.assign(init, { method: "POST", body: JSON.stringify(payload),
      headers: { ...init.headers, "Content-Type": "application/json" } });
  }
  const resp = await fetch(apiUrl(path, params), init);
  const body = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const hint = resp.status === 401 ? " — open the dashboard with ?code=<function key>" : "";
    const err = new Error((body.detail || body.title || "HTTP " + resp.status) + hint);
    err.status = resp.status;
    throw err;
  }
  return body;
}

function showError(err) {
  const box = $("error");
  if (!err) { box.hidden = true; box.textContent = ""; return; }
  box.textContent = err.message || String(err);
  box.hidden = false;
}

// --- small DOM helpers ------------------------------------------------------------------------------------
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v; else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(c ?? ""));
  return node;
}

function svg(tag, attrs = {}, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
  if (text !== undefined) node.textContent = text;
  return node;
}

function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); return node; }
const pct = (x) => (x === null || x === undefined ? "–" : (100 * x).toFixed(1) + "%");
const num = (x) => (x === null || x === undefined ? "–" : Number(x).toLocaleString("en-GB"));

function duration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  if (seconds < 60) return Math.round(seconds) + " s";
  if (seconds < 3600) return Math.round(seconds / 60) + " min";
  if (seconds < 86400) return (seconds / 3600).toFixed(1) + " h";
  return (seconds / 86400).toFixed(1) + " d";
}

const MONEY_MEASURES = ["total_spend", "returns", "net_spend", "average_order_value"];

// Numbers as numbers, ISO timestamps as "YYYY-MM-DD HH:MM", anything else as text.
function measure(v) {
  if (v === null || v === undefined) return "–";
  if (typeof v === "number") return num(v);
  if (typeof v === "string" && /^\d{4}-\d{2}-\d{2}T/.test(v)) return v.replace("T", " ").slice(0, 16);
  return typeof v === "object" ? JSON.stringify(v) : String(v);
}

function kpis(container, items) {
  clear(container);
  for (const [label, value] of items) container.append(el("div", { class: "kpi" }, el("b", {}, value), el("span", {}, label)));
}

// Horizontal bar chart in SVG: rows of {label, value, note}.
function barChart(rows, { width = 640, color = "#2563eb", format = num } = {}) {
  const rowH = 26, labelW = 150, max = Math.max(1, ...rows.map((r) => r.value));
  const chart = svg("svg", { viewBox: `0 0 ${width} ${rows.length * rowH + 8}`, width: "100%", role: "img", class: "bar-chart" });
  rows.forEach((r, i) => {
    const y = i * rowH + 4, w = ((width - labelW - 110) * r.value) / max;
    chart.append(svg("text", { x: 0, y: y + 15, "font-size": 12 }, r.label));
    chart.append(svg("rect", { x: labelW, y: y + 4, width: Math.max(w, 1), height: 14, rx: 3, fill: r.color || color }));
    chart.append(svg("text", { x: labelW + w + 6, y: y + 15, "font-size": 12 }, format(r.value) + (r.note ? "  " + r.note : "")));
  });
  return chart;
}

// --- profile card -----------------------------------------------------------------------------------------
const RISK_COLOR = { low: "#16a34a", medium: "#d97706", high: "#dc2626" };

function gauge(churn) {
  const box = clear($("churn-gauge"));
  if (!churn || typeof churn.score !== "number") { box.append(el("p", { class: "muted" }, "No churn score yet.")); return; }
  const s = Math.max(0, Math.min(1, churn.score)), r = 70, cx = 90, cy = 85;
  const angle = Math.PI * (1 - s), x = cx + r * Math.cos(angle), y = cy - r * Math.sin(angle);
  const g = svg("svg", { viewBox: "0 0 180 110", width: 220, role: "img", "aria-label": "churn score " + s.toFixed(2), id: "gauge-svg" });
  g.append(svg("path", { d: `M ${cx - r} ${cy} A ${r} ${r} 0 0 1 ${cx + r} ${cy}`, stroke: "#e5e7eb", "stroke-width": 14, fill: "none" }));
  g.append(svg("path", { d: `M ${cx - r} ${cy} A ${r} ${r} 0 0 1 ${x.toFixed(2)} ${y.toFixed(2)}`,
                         stroke: RISK_COLOR[churn.risk] || "#2563eb", "stroke-width": 14, fill: "none" }));
  g.append(svg("text", { x: cx, y: cy - 10, "text-anchor": "middle", "font-size": 24, "font-weight": 600 }, s.toFixed(2)));
  g.append(svg("text", { x: cx, y: cy + 16, "text-anchor": "middle", "font-size": 13, fill: RISK_COLOR[churn.risk] || "#111" },
               (churn.risk || "") + " risk"));
  box.append(g);
  const factors = clear($("churn-factors"));
  for (const f of churn.top_factors || []) {
    const impact = typeof f.impact === "number" ? (f.impact > 0 ? "+" : "") + f.impact.toFixed(3) : "";
    factors.append(el("li", {}, (f.factor || f.feature || "factor") + " ", el("span", { class: f.impact > 0 ? "risk-high" : "risk-low" }, impact)));
  }
}

function activityLine(a) {
  if (a.kind === "transaction") return `${a.amount >= 0 ? "purchase" : "return"} ${num(a.amount)}${a.channel ? " · " + a.channel : ""}${a.category ? " · " + a.category : ""}`;
  if (a.kind === "review") return `review ${a.rating ? a.rating + "★" : ""}`;
  return `${a.type || "event"} ${a.event || ""}${a.channel ? " · " + a.channel : ""}`;
}

function renderProfile(view, insights) {
  $("profile").hidden = false;
  const attr = (n) => (view.attributes[n] || {}).value;
  $("profile-name").textContent = [attr("given_name"), attr("family_name")].filter(Boolean).join(" ") || attr("full_name") || view.id;
  $("profile-id").textContent = view.id;
  $("profile-sources").textContent = view.source_records.map((r) => r.key).join(", ");
  const ids = clear($("profile-identifiers"));
  for (const i of view.identifiers) ids.append(el("li", {}, i));

  const tbody = clear($("profile-attributes").tBodies[0]);
  for (const [name, a] of Object.entries(view.attributes).sort()) {
    tbody.append(el("tr", {}, el("td", {}, name), el("td", {}, String(a.value ?? "")), el("td", {}, a.source || ""), el("td", {}, a.rule || "")));
  }
  gauge(view.churn);

  // Money measures per currency ("GBP 100 · EUR 80"), never one sum across currencies.
  const m = clear($("profile-measures")), ms = view.measures || {};
  const perCurrency = Object.entries(ms.by_currency || {});
  const inEach = (k) => perCurrency.map(([cur, c]) => (cur === "unknown" ? "" : `${cur} `) + measure(c[k]))
    .join(" · ");
  for (const [k, v] of Object.entries(ms)) {
    if (k === "by_currency") continue;
    const text = MONEY_MEASURES.includes(k) && perCurrency.length ? inEach(k) : measure(v);
    m.append(el("dt", {}, k.replaceAll("_", " ")), el("dd", {}, text));
  }

  const segs = clear($("profile-segments"));
  for (const s of insights.segments || []) segs.append(el("li", {}, s.name));
  if (!segs.children.length) segs.append(el("li", {}, "none"));

  const stages = clear($("profile-stages"));
  for (const st of Object.values(insights.journey_stage || view.journey_stage || {})) {
    stages.append(el("li", { class: "stage" }, `${st.journey}: step ${st.step} of ${st.steps} — ${st.step_name}${st.completed ? " ✓" : ""}`));
  }
  if (!stages.children.length) stages.append(el("li", { class: "muted" }, "no journey started"));

  const needs = clear($("profile-needs"));
  const aff = (insights.needs || {}).affinity || {};
  for (const [cat, v] of Object.entries(aff).slice(0, 5)) {
    needs.append(el("div", { class: "bar-row" }, el("span", {}, cat), el("span", { class: "bar" }), el("span", { class: "muted" }, pct(v))));
    needs.lastChild.children[1].style.width = Math.round(v * 160) + "px";
  }
  const next = (insights.needs || {}).next_categories || [];
  needs.append(el("p", { class: "muted" }, next.length ? "next likely: " + next.join(", ") : "no category signals yet"));

  const tl = clear($("profile-timeline"));
  for (const a of view.recent_activity || []) tl.append(el("li", {}, el("time", {}, (a.timestamp || "").replace("T", " ").slice(0, 16)), activityLine(a)));
  if (!tl.children.length) tl.append(el("li", { class: "muted" }, "no activity"));
}

async function searchProfile(type, value) {
  const current = ticket("profile");
  showError(null);
  let view;
  if (type === "profile_id") view = await api("profiles/" + encodeURIComponent(value));
  else if (type === "source") {
    const [source, ...rest] = value.split("|");
    view = await api("profiles", { source, source_id: rest.join("|") });
  } else view = await api("profiles", { [type]: value });
  const insights = await api("insights/profiles/" + encodeURIComponent(view.id));
  if (!current()) return;
  renderProfile(view, insights);
}

// --- unification and churn ----------------------------------------------------------------------------------
async function loadUnification() {
  const r = await api("reports/unification");
  kpis($("unification-kpis"), [["records", num(r.records)], ["profiles", num(r.profiles)], ["match rate", pct(r.match_rate)],
    ["merges", num(r.merges)], ["review list", num(r.review_open)]]);
  const rows = Object.entries(r.per_source).map(([s, v]) => ({ label: s, value: v.records, note: "match " + pct(v.match_rate) }));
  clear($("unification-chart")).append(rows.length ? barChart(rows) : el("p", { class: "muted" }, "No profiles yet."));
}

async function loadChurn() {
  const r = await api("reports/churn");
  kpis($("churn-kpis"), [["scored", num(r.scored)], ["unscored", num(r.unscored)], ["average score", r.average_score === null ? "–" : r.average_score.toFixed(3)],
    ["high risk", num(r.risk.high)]]);
  clear($("churn-risk-chart")).append(barChart(["low", "medium", "high"].map((k) => ({ label: k, value: r.risk[k] || 0, color: RISK_COLOR[k] })), { width: 420 }));
  const t = r.thresholds || { medium: 0.4, high: 0.7 }; // the app's risk thresholds (settings)
  const hist = r.score_histogram, w = 420, h = 160, bw = w / hist.length, max = Math.max(1, ...hist.map((b) => b.profiles));
  const chart = svg("svg", { viewBox: `0 0 ${w} ${h + 20}`, width: "100%", role: "img", id: "churn-histogram-svg" });
  hist.forEach((b, i) => {
    const bh = (h * b.profiles) / max;
    chart.append(svg("rect", { x: i * bw + 2, y: h - bh, width: bw - 4, height: bh, fill: b.from >= t.high ? RISK_COLOR.high : b.from >= t.medium ? RISK_COLOR.medium : RISK_COLOR.low }));
    chart.append(svg("text", { x: i * bw + bw / 2, y: h + 14, "text-anchor": "middle", "font-size": 10 }, b.from.toFixed(1)));
  });
  clear($("churn-histogram")).append(chart);
  const model = clear($("churn-model"));
  if (!r.model) model.append(el("dt", {}, "model"), el("dd", {}, "none published yet"));
  else {
    model.append(el("dt", {}, "version"), el("dd", {}, r.model.version));
    for (const [k, v] of Object.entries(r.model.metrics || {})) model.append(el("dt", {}, k), el("dd", {}, typeof v === "number" ? v.toFixed(4) : JSON.stringify(v)));
  }
}

// --- funnels -----------------------------------------------------------------------------------------------
async function loadJourneys() {
  const { journeys } = await api("journeys");
  const select = clear($("funnel-journey"));
  for (const j of journeys) select.append(el("option", { value: j.id }, j.name));
  if (journeys.length) await loadFunnel();
  else $("funnel-title").textContent = "No journeys defined yet (POST /api/journeys).";
}

async function loadFunnel() {
  const id = $("funnel-journey").value;
  if (!id) return;
  const current = ticket("funnel");
  const r = await api(`journeys/${encodeURIComponent(id)}/funnel`, { ...dayRange("funnel-from", "funnel-to"), channel: $("funnel-channel").value });
  if (!current()) return;
  $("funnel-title").textContent = `${r.journey}: ${num(r.entered)} entered, ${pct(r.overall_conversion)} completed`;
  const w = 640, rowH = 34, max = Math.max(1, r.steps[0].reached);
  const chart = svg("svg", { viewBox: `0 0 ${w} ${r.steps.length * rowH}`, width: "100%", role: "img", id: "funnel-svg" });
  r.steps.forEach((s, i) => {
    const bw = ((w - 40) * s.reached) / max;
    chart.append(svg("rect", { x: (w - bw) / 2, y: i * rowH + 3, width: Math.max(bw, 2), height: rowH - 8, rx: 4, fill: "#2563eb", "fill-opacity": 1 - i * 0.12 }));
    chart.append(svg("text", { x: w / 2, y: i * rowH + rowH / 2 + 3, "text-anchor": "middle", "font-size": 12, fill: "#fff", stroke: "#1e3a8a", "stroke-width": 0.3 },
                     `${s.name}: ${num(s.reached)}`));
  });
  clear($("funnel-chart")).append(chart);
  const tbody = clear($("funnel-table").tBodies[0]);
  for (const s of r.steps) {
    tbody.append(el("tr", {}, el("td", {}, `${s.step}. ${s.name}`), el("td", {}, num(s.reached)), el("td", {}, pct(s.conversion_from_previous)),
      el("td", {}, s.step > 1 ? `${num(s.drop_off)} (${pct(s.drop_off_rate)})` : "–"), el("td", {}, duration(s.median_seconds_from_previous))));
  }
}

// --- activity: web and mobile analytics, revenue ---------------------------------------------------------------
// The form's dates (UTC days); empty fields start as the last 30 days, so every report on a view uses one range.
function dayRange(fromId, toId) {
  if (!$(fromId).value && !$(toId).value) {
    const today = new Date();
    $(toId).value = today.toISOString().slice(0, 10);
    $(fromId).value = new Date(today.getTime() - 30 * 86400000).toISOString().slice(0, 10);
  }
  const from = $(fromId).value, to = $(toId).value;
  // Reports take [from, to): midnight after the "to" day keeps that whole day (its final second too).
  return { from: from ? from + "T00:00:00Z" : "", to: to ? nextDay(to) + "T00:00:00Z" : "" };
}

function nextDay(day) {
  return new Date(Date.parse(day + "T00:00:00Z") + 86400000).toISOString().slice(0, 10);
}

function lineChart(points, { width = 1000, height = 140 } = {}) {
  const chart = svg("svg", { viewBox: `0 0 ${width} ${height + 24}`, width: "100%", role: "img", id: "daily-svg" });
  if (!points.length) return el("p", { class: "muted" }, "No activity in this range.");
  const max = Math.max(1, ...points.map((p) => p.value)), step = points.length > 1 ? (width - 40) / (points.length - 1) : 0;
  const xy = points.map((p, i) => [20 + i * step, height - (height - 10) * (p.value / max)]);
  chart.append(svg("polyline", { points: xy.map(([x, y]) => `${x.toFixed(1)},${y.toFixed(1)}`).join(" "), fill: "none", stroke: "#2563eb", "stroke-width": 2 }));
  xy.forEach(([x, y], i) => {
    chart.append(svg("circle", { cx: x.toFixed(1), cy: y.toFixed(1), r: 3, fill: "#2563eb" }));
    if (points.length <= 14 || i % Math.ceil(points.length / 10) === 0)
      chart.append(svg("text", { x: x.toFixed(1), y: height + 16, "text-anchor": "middle", "font-size": 10 }, points[i].label));
  });
  chart.append(svg("text", { x: 2, y: 12, "font-size": 10, fill: "#6b7280" }, "max " + max));
  return chart;
}

// Only the latest request of a view may render: an older, slower answer must not overwrite a newer one.
const latest = {};
function ticket(view) { latest[view] = (latest[view] || 0) + 1; const mine = latest[view]; return () => latest[view] === mine; }

// Revenue per currency ("GBP 100 · USD 80"); never one sum across currencies.
function money(r) {
  const parts = Object.entries(r.by_currency || {});
  if (!parts.length) return num(r.revenue);
  return parts.map(([cur, m]) => (cur === "unknown" ? "" : cur + " ") + num(m.revenue)).join(" · ");
}

async function loadActivity() {
  const current = ticket("activity");
  const params = { ...dayRange("activity-from", "activity-to"), channel: $("activity-channel").value };
  const [a, r] = await Promise.all([api("reports/analytics", params), api("reports/revenue", params)]);
  if (!current()) return;
  kpis($("activity-kpis"), [["active profiles", num(a.active_profiles)], ["sessions", num(a.sessions)],
    ["median session", duration(a.median_session_seconds)], ["revenue", money(r)], ["orders", num(r.orders)]]);
  clear($("activity-daily")).append(lineChart(a.daily_active.map((d) => ({ label: d.date.slice(5), value: d.active }))));
  // One bar per channel and currency: amounts in different currencies are never added.
  const several = Object.keys(r.by_currency || {}).length > 1;
  const rev = Object.entries(r.by_channel).flatMap(([c, v]) => Object.entries(v.by_currency || { "": v })
    .map(([cur, m]) => ({ label: several ? `${c} ${cur}` : c, value: m.revenue, note: `${num(m.orders)} orders` })));
  clear($("activity-revenue")).append(rev.length ? barChart(rev, { width: 420 }) : el("p", { class: "muted" }, "No orders in this range."));
  const tbody = clear($("activity-conversion").tBodies[0]);
  for (const [c, v] of Object.entries(a.conversion_by_channel)) tbody.append(el("tr", {}, el("td", {}, c), el("td", {}, num(v.active)), el("td", {}, num(v.converted)), el("td", {}, pct(v.rate))));
  for (const [id, rows] of [["activity-pages", a.top_pages], ["activity-screens", a.top_screens]]) {
    const list = clear($(id));
    for (const p of rows) list.append(el("li", {}, `${p.name} — ${num(p.views)}`));
    if (!rows.length) list.append(el("li", { class: "muted" }, "none"));
  }
}

async function loadSegments() {
  const { segments } = await api("segments");
  const tbody = clear($("segments-table").tBodies[0]);
  for (const s of segments) tbody.append(el("tr", {}, el("td", {}, s.name), el("td", {}, num(s.size)), el("td", {}, (s.evaluated_at || "never").slice(0, 16))));
}

// --- review list: what the resolver left to a person -----------------------------------------------------------
const COMPARED = ["given_name", "family_name", "full_name", "birth_date", "email", "phone", "loyalty_id",
  "address_line1", "address_line2", "postcode", "city", "country"];

async function loadReviews() {
  const current = ticket("reviews");
  showError(null);
  const filter = { reason: $("review-reason").value, min_score: $("review-min-score").value, page_size: 100 };
  const { reviews, continuation } = await api("reviews", filter);
  if (!current()) return;
  const tbody = clear($("reviews-table").tBodies[0]);
  for (const r of reviews) {
    const open = el("button", { type: "button" }, "Open");
    open.addEventListener("click", () => guard(openReview)(r.id));
    const score = r.score === null || r.score === undefined ? "–" : r.score.toFixed(4);
    tbody.append(el("tr", { "data-review": r.id }, el("td", {}, (r.created_at || "").replace("T", " ").slice(0, 16)),
      el("td", {}, r.reason), el("td", {}, score), el("td", {}, r.record_key), el("td", {}, open)));
  }
  const count = `${reviews.length}${continuation ? "+" : ""} open`;
  $("reviews-count").textContent = reviews.length ? count : "no open reviews";
  $("review").hidden = true;
}

function levelLine(name, level, bits) {
  if (level === null || level === "null") return el("li", { class: "muted" }, `${name}: missing on one side`);
  const text = typeof bits === "number" ? ` ${bits > 0 ? "+" : ""}${bits.toFixed(2)} bits` : "";
  return el("li", {}, `${name}: ${level}`, el("span", { class: bits > 0 ? "risk-low" : "risk-high" }, text));
}

async function openReview(id) {
  const r = await api("reviews/" + encodeURIComponent(id));
  const candidate = r.candidate || {};
  const mine = (r.record || {}).values || {}, theirs = (candidate.compared_record || {}).values || {};
  const attrs = candidate.attributes || {};
  $("review").hidden = false;
  $("review").dataset.review = r.id;
  $("review-title").textContent = r.reason + (r.score === null ? "" : ` (match probability ${r.score.toFixed(4)})`);
  const records = (candidate.records || []).join(", ");
  $("review-sides").textContent = `${r.record_key} → profile ${candidate.profile_id || "(gone)"} (${records})`;
  const tbody = clear($("review-compare").tBodies[0]);
  for (const f of COMPARED.filter((f) => f in mine || f in theirs || f in attrs)) {
    const a = String(mine[f] ?? ""), b = String(theirs[f] ?? attrs[f] ?? "");
    const same = a.toLowerCase() === b.toLowerCase() ? "same" : "differs";
    tbody.append(el("tr", { class: same }, el("td", {}, f), el("td", {}, a), el("td", {}, b)));
  }
  const levels = clear($("review-levels"));
  for (const [name, level] of Object.entries(r.levels || {})) {
    if (name !== "explained_against") levels.append(levelLine(name, level, (r.contributions || {})[name]));
  }
  if (!levels.children.length) levels.append(el("li", { class: "muted" }, "not scored"));
}

async function approveMatching() {
  // One decision for every open review the filter shows (POST /api/reviews/approve, a page at a time).
  const by = $("review-by").value.trim(), reason = $("review-reason").value, score = $("review-min-score").value;
  if (!reason && !score) throw new Error("choose a reason or a score first: approving every review is not a decision");
  if (!by) throw new Error("say who decides (your steward id) first");
  const filter = { ...(reason ? { reason } : {}), ...(score ? { min_score: Number(score) } : {}) };
  if (!confirm(`Approve every open review that matches (${$("reviews-count").textContent}) as ${by}?`)) return;
  let approved = 0, refused = 0, continuation = null;
  do {
    const done = await api("reviews/approve", {}, { by, ...filter, ...(continuation ? { continuation } : {}) });
    approved += done.approved.length;
    refused += done.not_approved.length;
    continuation = done.continuation;
  } while (continuation);
  await loadReviews();
  $("reviews-count").textContent = `approved ${approved}, not approved ${refused} · ` + $("reviews-count").textContent;
}

async function decideReview(decision) {
  const id = $("review").dataset.review;
  const by = $("review-by").value.trim();
  const done = await api(`reviews/${encodeURIComponent(id)}/${decision}`, {}, by ? { by } : {});
  await loadReviews();
  $("reviews-count").textContent = `${done.status}: ${done.record_key} · ` + $("reviews-count").textContent;
}

// --- wiring -------------------------------------------------------------------------------------------------
const LOADERS = { unification: loadUnification, churn: loadChurn, funnels: loadJourneys, activity: loadActivity,
  segments: loadSegments, reviews: loadReviews };

function guard(fn) {
  return (...args) => Promise.resolve().then(() => fn(...args)).catch(showError);
}

function showTab(name) {
  for (const b of document.querySelectorAll("#tabs button")) b.classList.toggle("active", b.dataset.tab === name);
  for (const s of document.querySelectorAll("main .tab")) s.hidden = s.id !== "tab-" + name;
  showError(null);
  document.body.dataset.tab = name;
  if (LOADERS[name]) return guard(LOADERS[name])();
}

document.addEventListener("DOMContentLoaded", () => {
  for (const b of document.querySelectorAll("#tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("search").addEventListener("submit", (e) => { e.preventDefault(); guard(searchProfile)($("search-type").value, $("search-value").value.trim()); });
  $("funnel-form").addEventListener("submit", (e) => { e.preventDefault(); guard(loadFunnel)(); });
  $("activity-form").addEventListener("submit", (e) => { e.preventDefault(); guard(loadActivity)(); });
  $("reviews-form").addEventListener("submit", (e) => { e.preventDefault(); guard(loadReviews)(); });
  $("review-approve").addEventListener("click", () => guard(decideReview)("approve"));
  $("review-reject").addEventListener("click", () => guard(decideReview)("reject"));
  $("reviews-approve-all").addEventListener("click", () => guard(approveMatching)());
  const start = new URLSearchParams(location.search).get("tab");
  if (start && LOADERS[start]) showTab(start);
  document.body.dataset.ready = "1";
});
