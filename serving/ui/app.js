// Driftline status page: reads the serving port's APIs with the key from the URL fragment.
// The fragment never reaches the server; the key lives in this tab's session storage only.
"use strict";

const KEY_ITEM = "driftline.key";
const REFRESH_MS = 5000;
const POINTS = 120;

function takeKey() {
  const match = location.hash.match(/(?:^#|&)key=([^&]+)/);
  if (match) {
    sessionStorage.setItem(KEY_ITEM, decodeURIComponent(match[1]));
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY_ITEM);
}

const key = takeKey();
const $ = (id) => document.getElementById(id);

function text(id, value, cls) {
  const el = $(id);
  el.textContent = value;
  if (cls !== undefined) el.className = cls;
}

function fill(id, items, render, empty) {
  const list = $(id);
  list.replaceChildren();
  if (!items.length) {
    const li = document.createElement("li");
    li.className = "muted";
    li.textContent = empty;
    list.append(li);
    return;
  }
  for (const item of items) list.append(render(item));
}

function item(parts) {
  const li = document.createElement("li");
  for (const [value, cls] of parts) {
    const span = document.createElement("span");
    span.textContent = value;
    if (cls) span.className = cls;
    li.append(span, " ");
  }
  return li;
}

async function getJson(path) {
  const response = await fetch(path, { headers: { Authorization: `Bearer ${key}` } });
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`${path}: ${response.status}`);
  return response.json();
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "";
}

function showModels(doc) {
  if (!doc) return;
  text("model", `model ${doc.model}`);
  const active = doc.active;
  text("active", `version ${active.version} on ${active.colour}`, `colour-${active.colour}`);
  text("candidate", !doc.shadow ? "none" : doc.shadow.version
    ? `version ${doc.shadow.version} on ${doc.shadow.colour} (shadow)`
    : `${doc.shadow.colour} (shadow, mirrored over HTTP)`);
}

let reportId = null;

function showDrift(doc) {
  if (!doc) {
    text("verdict", "no report yet", "severity");
    return;
  }
  reportId = doc.report_id;
  $("report-link").hidden = !reportId;
  text("verdict", doc.severity, `severity sev-${doc.severity}`);
  text("verdict-at", `at ${when(doc.created_at)}`);
  text("recommendation", doc.recommendation ? `recommendation: ${doc.recommendation}` : "");
  fill("reasons", doc.reasons || [], (r) => item([[r]]), "nothing moved beyond the reference's own variation");
  const moved = doc.drifted_features || [];
  const shown = moved.length > 8 ? [...moved.slice(0, 8), `and ${moved.length - 8} more`] : moved;
  fill("features", shown, (f) => item([[f]]), "none");
  fill("alerts", doc.open_alerts || [], (a) => item([[a.severity, `severity sev-${a.severity}`], [a.message || ""], [when(a.created_at), "muted"]]), "none");
}

// The report page needs the key too, so it is fetched here and opened from memory.
async function openReport(event) {
  event.preventDefault();
  const response = await fetch(`/api/drift/reports/${encodeURIComponent(reportId)}.html`, { headers: { Authorization: `Bearer ${key}` } });
  if (!response.ok) {
    text("connection", `error: report ${response.status}`, "pill fail");
    return;
  }
  const url = URL.createObjectURL(new Blob([await response.text()], { type: "text/html" }));
  window.open(url, "_blank", "noopener");
}

function showController(doc) {
  if (!doc) {
    text("phase", "no controller round yet", "muted");
    return;
  }
  text("phase", `${doc.phase}${doc.reason ? ": " + doc.reason : ""}`);
  const rollout = doc.rollout || {};
  if (rollout.candidate_version) text("candidate", `version ${rollout.candidate_version} (${doc.phase})`);
  fill("gates", rollout.gates || [], (g) => item([[g.passed ? "pass" : "fail", g.passed ? "pass" : "fail"], [g.name], [g.detail, "muted"]]), "no candidate under evaluation");
}

function showAudit(events) {
  fill("audit", (events || []).slice(-15).reverse(), (e) => item([[when(e.at), "muted"], [e.kind], [e.reason || ""]]), "no decisions yet");
}

async function refresh() {
  const calls = [
    getJson("/api/models").then(showModels),
    getJson("/api/drift/status").then(showDrift),
    getJson("/api/controller/state").then(showController),
    getJson("/api/audit?limit=50").then(showAudit),
  ];
  const results = await Promise.allSettled(calls);
  const failed = results.filter((r) => r.status === "rejected");
  text("connection", failed.length ? `error: ${failed[0].reason.message}` : `updated ${new Date().toLocaleTimeString()}`, failed.length ? "pill fail" : "pill");
}

// --- the live chart ---------------------------------------------------------------------
const predicted = [];
const realised = [];
let last = null;

function onMessage(message) {
  if (last && message.timestamp > last.timestamp && last.close > 0 && message.close > 0) {
    realised.push({ t: last.timestamp, v: Math.log(message.close / last.close) });
  } else if (last) {
    realised.length = 0; // the replay wrapped around: start the comparison afresh
    predicted.length = 0;
  }
  predicted.push({ t: message.timestamp, v: message.prediction });
  last = message;
  while (predicted.length > POINTS) predicted.shift();
  while (realised.length > POINTS) realised.shift();
  text("stream-info", `${message.symbol} ${message.timestamp.slice(0, 10)}, version ${message.model_version} (${message.colour})`);
  draw();
}

function polyline(points, times, scale, cls) {
  const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
  const x = (t) => (times.indexOf(t) / Math.max(1, POINTS - 1)) * 800;
  line.setAttribute("points", points.filter((p) => times.includes(p.t)).map((p) => `${x(p.t).toFixed(1)},${(110 - p.v * scale).toFixed(1)}`).join(" "));
  line.setAttribute("fill", "none");
  line.setAttribute("stroke", cls === "predicted" ? "#7c3aed" : "#d97706");
  line.setAttribute("stroke-width", "1.6");
  line.setAttribute("class", cls);
  return line;
}

function draw() {
  const svg = $("chart");
  const times = predicted.map((p) => p.t);
  const extent = Math.max(1e-4, ...predicted.map((p) => Math.abs(p.v)), ...realised.map((p) => Math.abs(p.v)));
  const scale = 100 / extent;
  const zero = document.createElementNS("http://www.w3.org/2000/svg", "line");
  for (const [k, v] of Object.entries({ x1: 0, x2: 800, y1: 110, y2: 110, stroke: "#cbd5e1" })) zero.setAttribute(k, v);
  svg.replaceChildren(zero, polyline(realised, times, scale, "realised"), polyline(predicted, times, scale, "predicted"));
}

function stream() {
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  // Browsers cannot set headers on a WebSocket: the key travels as a subprotocol.
  const socket = new WebSocket(`${scheme}://${location.host}/ws/predictions`, ["driftline.v1", `bearer.${key}`]);
  socket.onmessage = (event) => onMessage(JSON.parse(event.data));
  socket.onclose = () => setTimeout(stream, 3000);
}

if (!key) {
  $("auth").hidden = false;
  text("connection", "no key", "pill fail");
} else {
  $("report-link").addEventListener("click", openReport);
  refresh();
  setInterval(refresh, REFRESH_MS);
  stream();
}
