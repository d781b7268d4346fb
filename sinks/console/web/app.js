// Vigil operator console: plain JavaScript over /api/v1, no dependencies.
"use strict";

const view = document.getElementById("view");
let token = sessionStorage.getItem("vigil-token") || "";
let me = null;

// ---- helpers ----

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "style") el.style.cssText = v; // CSSOM: allowed by the page's CSP, unlike a style attribute
    else el.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

const SVG = "http://www.w3.org/2000/svg";
function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) el.setAttribute(k, v);
  for (const c of children.flat(Infinity)) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

async function api(path, opts) {
  const headers = {};
  if (token) headers.Authorization = "Bearer " + token;
  const resp = await fetch("/api/v1" + path, Object.assign({ headers }, opts));
  const body = await resp.json().catch(() => ({}));
  if (resp.status === 401) {
    document.getElementById("login").hidden = false;
    throw new Error("sign in with a token");
  }
  if (!resp.ok) {
    const err = new Error(body.error || resp.statusText);
    err.status = resp.status;
    err.position = body.position;
    throw err;
  }
  return body;
}

function pill(status) { return h("span", { class: "pill " + status }, status); }

function sevName(n) { return n >= 9 ? "critical" : n >= 7 ? "high" : n >= 4 ? "medium" : "low"; }
function sev(n) { return h("span", { class: "sev " + sevName(n), title: sevName(n) }, n); }

// ago renders how long before now (the fleet's clock) t was.
function ago(t, now) {
  const d = (new Date(now) - new Date(t)) / 1000;
  if (!isFinite(d)) return "";
  if (d < 90) return Math.round(d) + " s ago";
  if (d < 5400) return Math.round(d / 60) + " min ago";
  if (d < 172800) return Math.round(d / 3600) + " h ago";
  return Math.round(d / 86400) + " d ago";
}

// fmtDur renders a duration of s seconds.
function fmtDur(s) {
  if (s % 3600 === 0) return s / 3600 + " h";
  if (s % 60 === 0) return s / 60 + " min";
  return s + " s";
}

function fmtTime(t) { return t ? t.replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/Z$/, " UTC") : ""; }

function fmtNum(v) {
  if (v === null || v === undefined) return "–";
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(2) + "M";
  if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
  if (a >= 100) return v.toFixed(0);
  if (a >= 1) return v.toFixed(1);
  return v.toPrecision(2);
}

function link(href, text) { return h("a", { href }, text); }
function devLink(name) { return link("#/device/" + encodeURIComponent(name), name); }
function groupLink(name) { return link("#/group/" + encodeURIComponent(name), name); }

function showError(err) {
  view.replaceChildren(h("div", { class: "panel error" }, String(err.message || err)));
}

function params() {
  const hash = location.hash.slice(1);
  const i = hash.indexOf("?");
  return new URLSearchParams(i >= 0 ? hash.slice(i + 1) : "");
}

// ---- fleet ----

const examples = ["status:alarm", "status:recommended OR status:quarantined", "fw<2.9.4", "connected:false",
  "site:plant-a AND NOT criticality:low", "detector:identity", "last_seen<-1h"];

async function fleetView() {
  const p = params();
  const q = p.get("q") || "";
  const sort = p.get("sort") || "-status";
  const cursor = p.get("cursor") || "";
  const prev = p.get("prev") || "";
  const input = h("input", { id: "q", value: q, placeholder: "search the fleet: field:value, fw<2.9.4, last_seen<-1h, AND / OR / NOT", spellcheck: "false" });
  const sortSel = h("select", { id: "sort", onchange: () => go(input.value, sortSel.value) },
    [["-status", "most urgent first"], ["device", "device"], ["group", "group"], ["-last_seen", "last seen, newest"],
      ["last_seen", "last seen, oldest"], ["-severity", "severity"]].map(([v, t]) => h("option", { value: v, selected: v === sort }, t)));
  const go = (query, srt) => { location.hash = "#/fleet?" + new URLSearchParams({ q: query, sort: srt }); };
  const form = h("form", { class: "search", onsubmit: (e) => { e.preventDefault(); go(input.value, sortSel.value); } },
    input, sortSel, h("button", { class: "primary", type: "submit" }, "Search"));
  const err = h("div", { class: "error", id: "query-error" });
  const ex = h("div", { class: "examples" }, "Try: ", examples.map((x) => h("a", { href: "#/fleet?" + new URLSearchParams({ q: x, sort }) }, x)));
  const results = h("div", { id: "results" });
  view.replaceChildren(h("h1", {}, "Fleet"), h("div", { class: "panel" }, form, err, ex), results);
  let res;
  try {
    res = await api("/devices?" + new URLSearchParams({ q, sort, limit: 50, cursor }));
  } catch (e) {
    if (e.status === 400) {
      err.textContent = e.position !== undefined ? q + "\n" + " ".repeat(e.position) + "^ " + e.message : e.message;
      return;
    }
    throw e;
  }
  const first = Number(p.get("from") || 1);
  const rows = res.devices.map((d) => h("tr", {},
    h("td", {}, devLink(d.device)),
    h("td", {}, pill(d.status)),
    h("td", {}, groupLink(d.group)),
    h("td", {}, d.attrs.site || ""),
    h("td", { class: "mono" }, d.attrs.fw || ""),
    h("td", {}, d.attrs.criticality || ""),
    h("td", {}, d.detectors.join(", ")),
    h("td", { class: "num" }, d.alarms ? sev(d.severity) : ""),
    h("td", {}, h("span", { class: "dot " + (d.connected ? "on" : "off"), title: d.connected ? "connected" : "not reporting" }), ago(d.last_seen, res.now)),
    h("td", {}, d.learning ? h("span", { class: "pill learning" }, "learning") : "")));
  const nav = h("div", { class: "pager" },
    h("span", { id: "count" }, res.total ? `${first}–${first + res.devices.length - 1} of ${res.total} devices` : "no device matches"),
    prev !== "" || cursor ? h("button", { onclick: () => history.back() }, "‹ Previous") : null,
    res.next ? h("button", { id: "next", onclick: () => { location.hash = "#/fleet?" + new URLSearchParams({ q, sort, cursor: res.next, prev: cursor, from: first + res.devices.length }); } }, "Next ›") : null,
    h("span", { class: "muted" }, "query: ", h("span", { class: "mono" }, res.query || "(all)"), " · now = newest report, " + fmtTime(res.now)));
  results.replaceChildren(nav, h("table", { id: "fleet" },
    h("thead", {}, h("tr", {}, ["Device", "Status", "Group", "Site", "Firmware", "Criticality", "Open alarms", "Severity", "Last seen", ""].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows)));
}

// ---- device ----

async function deviceView(name) {
  const d = await api("/devices/" + encodeURIComponent(name));
  const alerts = d.recent_alerts;
  const head = h("div", { class: "row" },
    h("div", {},
      h("h1", {}, d.device, " ", pill(d.status)),
      h("div", { class: "muted" }, "group ", groupLink(d.group), " · last report ", fmtTime(d.last_seen),
        d.interval_seconds ? ` · reports every ${fmtNum(d.interval_seconds)} s` : "",
        " · ", d.connected ? "connected" : "not reporting", d.learning ? " · group still learning" : "")));
  const parts = [head];
  if (d.quarantine) parts.push(quarantineCallout(d.quarantine));
  const attrs = h("dl", { class: "kv" }, d.attributes.map((a) => [h("dt", {}, a.key), h("dd", {}, a.value, h("span", { class: "src" }, a.source))]));
  const id = d.identity;
  const ident = h("dl", { class: "kv" },
    h("dt", {}, "source IPs"), h("dd", { class: "mono" }, id.source_ips.join(", ") || "–"),
    h("dt", {}, "client ids"), h("dd", { class: "mono" }, id.client_ids.join(", ") || "–"),
    h("dt", {}, "certificate"), h("dd", { class: "mono" }, id.cert || "–"),
    h("dt", {}, "firmware"), h("dd", { id: "firmware" }, firmwareHistory(id.firmware_history)));
  const open = d.open_alarms.length ? h("table", {}, h("tbody", {}, d.open_alarms.map((a) => h("tr", {},
    h("td", {}, sev(a.severity)), h("td", {}, a.detector), h("td", {}, a.behavior), h("td", { class: "msg" }, a.message),
    h("td", { class: "muted nowrap" }, "since " + fmtTime(a.alarm_start)))))) : h("div", { class: "muted" }, "No open alarm.");
  parts.push(h("div", { class: "panel", id: "open-alarms" }, h("h2", {}, "Open alarms"), open));
  parts.push(h("h2", {}, "Metrics against what was expected"),
    h("div", { class: "legend" }, h("span", {}, h("i", { class: "l-val" }), "value"), h("span", {}, h("i", { class: "l-exp" }), "expected"),
      h("span", {}, h("i", { class: "l-band" }), "accepted band"), h("span", {}, h("i", { class: "l-alarm" }), "in alarm"),
      h("span", {}, h("i", { class: "l-out" }), "outside the band"),
      d.recent_step_seconds ? h("span", { class: "muted", id: "recent-step" }, `a point per ${fmtDur(d.recent_step_seconds)}: its first value, or the one furthest outside the band`) : ""),
    h("div", { class: "charts" }, d.metrics.map((m) => metricChart(m, alarmSpans(alerts, m.name, d.last_seen)))));
  parts.push(h("div", { class: "row" },
    h("div", { class: "panel" }, h("h2", {}, "Attributes"), attrs),
    h("div", { class: "panel" }, h("h2", {}, "Identity"), ident)));
  parts.push(h("h2", {}, "Recent alerts"), alertTable(alerts, false));
  view.replaceChildren(...parts);
}

// firmwareHistory lists the firmware a device reported, newest first, each
// from its first report of it.
function firmwareHistory(runs) {
  if (!runs.length) return "–";
  return h("ol", { class: "fw" }, runs.slice().reverse().map((r, i) => h("li", {},
    h("span", { class: "mono" }, r.version), " ", h("span", { class: "muted" }, (i === 0 ? "since " : "from ") + (r.since ? fmtTime(r.since) : "before the state was restored")))));
}

// alarmSpans returns the [start, end] (ms) intervals a metric was in alarm,
// from the device's alerts (newest first).
function alarmSpans(alerts, metric, lastSeen) {
  const spans = [];
  const open = {};
  for (const a of [...alerts].reverse()) {
    if (a.behavior !== metric) continue;
    const key = a.detector;
    if (a.state === "alarm") open[key] = Date.parse(a.alarm_start);
    else if (open[key] !== undefined) { spans.push([open[key], Date.parse(a.event_time)]); delete open[key]; }
  }
  for (const k in open) spans.push([open[k], Date.parse(lastSeen)]);
  return spans;
}

// plotFrame returns an empty plot over times [t0, t1] (ms) and values
// [lo, hi], padded: its svg, the x and y of a time and a value, and axes,
// which draws the axes with three values and the first and last times.
function plotFrame(t0, t1, lo, hi, label) {
  const W = 520, H = 190, L = 46, R = 8, T = 8, B = 22;
  if (lo === hi) { lo -= 1; hi += 1; }
  const pad = (hi - lo) * 0.06;
  const x = (t) => L + (W - L - R) * (t - t0) / Math.max(1, t1 - t0);
  const y = (v) => T + (H - T - B) * (1 - (v - lo + pad) / (hi - lo + 2 * pad));
  const svg = s("svg", { class: "plot", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": label });
  const axes = () => {
    svg.append(s("line", { class: "axis", x1: L, y1: H - B, x2: W - R, y2: H - B }), s("line", { class: "axis", x1: L, y1: T, x2: L, y2: H - B }));
    for (const v of [lo, (lo + hi) / 2, hi]) svg.append(s("text", { x: L - 4, y: y(v) + 3, "text-anchor": "end" }, fmtNum(v)));
    const tick = (t, anchor) => s("text", { x: x(t), y: H - 6, "text-anchor": anchor }, new Date(t).toISOString().slice(5, 16).replace("T", " "));
    svg.append(tick(t0, "start"), tick(t1, "end"));
  };
  return { x, y, svg, axes, area: { left: L, right: W - R, top: T, bottom: H - B } };
}

function metricChart(m, spans) {
  const pts = m.points;
  const box = h("div", { class: "panel chart" });
  const g = m.group;
  const sub = [`${m.samples} samples`, m.from_group ? "judged on its group's baseline" : m.seasonal ? profileNames[g && g.profile_kind] || "seasonal profile" : "own baseline"];
  if (m.expected !== null) sub.push(`expected ${fmtNum(m.expected)} (${fmtNum(m.lower)} – ${fmtNum(m.upper)})`);
  if (g && g.percentiles) sub.push(`peers p50 ${fmtNum(g.percentiles.p50)}, p99 ${fmtNum(g.percentiles.p99)}`);
  box.append(h("h3", {}, m.name), h("div", { class: "sub" }, sub.join(" · ")));
  if (pts.length < 2) { box.append(h("div", { class: "muted" }, "Not enough values yet.")); return box; }
  const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
  let lo = Infinity, hi = -Infinity;
  for (const p of pts) for (const v of [p[1], p[3], p[4]]) if (v !== null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const { x, y, svg, axes, area } = plotFrame(t0, t1, lo, hi, m.name + " chart");
  for (const [a, b] of spans) {
    const xa = Math.max(area.left, x(a)), xb = Math.min(area.right, x(b));
    if (xb > xa - 1) svg.append(s("rect", { class: "alarmspan", x: xa, y: area.top, width: Math.max(2, xb - xa), height: area.bottom - area.top }));
  }
  // the band: runs of points with one, as polygons
  let run = [];
  const flush = () => {
    if (run.length > 1) {
      const up = run.map((p) => `${x(p[0])},${y(p[4])}`), down = run.slice().reverse().map((p) => `${x(p[0])},${y(p[3])}`);
      svg.append(s("polygon", { class: "band", points: up.concat(down).join(" ") }));
      svg.append(s("polyline", { class: "exp", points: run.map((p) => `${x(p[0])},${y(p[2])}`).join(" ") }));
    }
    run = [];
  };
  for (const p of pts) { if (p[2] === null) flush(); else run.push(p); }
  flush();
  svg.append(s("polyline", { class: "val", points: pts.filter((p) => p[1] !== null).map((p) => `${x(p[0])},${y(p[1])}`).join(" ") }));
  for (const p of pts) if (p[1] !== null && p[4] !== null && (p[1] > p[4] || p[1] < p[3])) svg.append(s("circle", { class: "out", cx: x(p[0]), cy: y(p[1]), r: 2.5 }));
  axes();
  box.append(svg);
  if (g && g.profile) box.append(profileStrip(g));
  return box;
}

const profileNames = { hour_of_day: "hour-of-day profile", hour_of_week: "hour-of-week profile" };

// profileStrip draws the recurring pattern a group's devices are expected
// to follow: its offset from a device's level by hour of day or of week,
// as bars above and below the level; an hour not learned yet has none.
function profileStrip(g) {
  const p = g.profile, n = p.length, W = 400, H = 36, mid = H / 2;
  let max = 0;
  for (const v of p) if (v !== null) max = Math.max(max, Math.abs(v));
  const svg = s("svg", { class: "profile", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": profileNames[g.profile_kind] });
  svg.append(s("line", { class: "axis", x1: 0, x2: W, y1: mid, y2: mid }));
  p.forEach((v, i) => {
    if (v === null || max === 0) return;
    const len = (Math.abs(v) / max) * (mid - 1);
    svg.append(s("rect", { class: v > 0 ? "above" : "below", x: (i * W) / n, width: Math.max(1, W / n - 0.6), y: v > 0 ? mid - len : mid, height: Math.max(0.5, len) }));
  });
  const learned = p.filter((v) => v !== null).length;
  const span = g.profile_kind === "hour_of_day" ? "00–23 h" : "Mon–Sun";
  return h("div", { class: "profile-strip" },
    h("div", { class: "sub" }, `${profileNames[g.profile_kind]} (${span}): the group's offset from a device's level, up to ±${fmtNum(max)}; ${learned} of ${n} hours learned`), svg);
}

function alertTable(alerts, withDevice) {
  if (!alerts.length) return h("div", { class: "panel muted" }, "No alert.");
  return h("table", { class: "alerts" },
    h("thead", {}, h("tr", {}, ["Time", "Severity", "State", "Detector", "Behavior", withDevice ? "Device" : null, "Technique", "Message"].filter((x) => x).map((t) => h("th", {}, t)))),
    h("tbody", {}, alerts.map((a) => h("tr", {},
      h("td", { class: "mono" }, fmtTime(a.event_time)), h("td", {}, sev(a.severity)), h("td", {}, a.state), h("td", {}, a.detector),
      h("td", {}, a.behavior), withDevice ? h("td", {}, devLink(a.device)) : null, h("td", {}, a.technique),
      h("td", { class: "msg" }, a.message)))));
}

// ---- quarantine ----

const pastTense = { approve: "approved", reject: "rejected", release: "released" };

function quarantineCallout(item) {
  const ev = item.event;
  const rec = item.state === "recommended";
  const actions = h("div", { class: "actions" });
  const status = h("span", { class: "muted" });
  const decide = (action) => async () => {
    for (const b of actions.querySelectorAll("button")) b.disabled = true;
    try {
      const r = await api(`/quarantine/${encodeURIComponent(item.event_id)}/${action}`, { method: "POST" });
      status.textContent = `Sent: ${r.event.action} — ${r.event.message}`;
      setTimeout(route, 600);
    } catch (e) {
      status.textContent = e.message;
      for (const b of actions.querySelectorAll("button")) b.disabled = false;
    }
  };
  const canDecide = !me || me.role === "operator";
  if (rec) {
    actions.append(h("button", { class: "approve", id: "approve-" + item.device, onclick: decide("approve"), disabled: !canDecide }, "Approve quarantine"),
      h("button", { class: "reject", id: "reject-" + item.device, onclick: decide("reject"), disabled: !canDecide }, "Reject"));
  } else {
    actions.append(h("button", { id: "release-" + item.device, onclick: decide("release"), disabled: !canDecide }, "Release"));
  }
  actions.append(status);
  return h("div", { class: "callout" + (rec ? "" : " q") },
    h("strong", {}, rec ? "Quarantine recommended" : "In quarantine", " "), devLink(item.device), " → ", h("span", { class: "mono" }, ev.target_group),
    h("div", { class: "msg" }, ev.message),
    item.decision ? h("div", { class: "muted" }, `${pastTense[item.decision.action] || item.decision.action} by ${item.decision.by} at ${fmtTime(item.decision.at)}`) : null,
    h("div", { class: "muted" }, `severity ${ev.severity} · ${fmtTime(ev.time)}`),
    actions);
}

async function quarantineView() {
  const res = await api("/quarantine");
  const parts = [h("h1", {}, "Quarantine")];
  parts.push(h("h2", {}, `Queue: ${res.queue.filter((q) => q.state === "recommended").length} waiting for a decision, ${res.queue.filter((q) => q.state === "quarantined").length} in quarantine`));
  if (!res.queue.length) parts.push(h("div", { class: "panel muted" }, "Nothing waits for a decision and no device is in quarantine."));
  for (const item of res.queue) parts.push(quarantineCallout(item));
  parts.push(h("h2", {}, "Quarantine events sent"), res.events.length ? h("table", {},
    h("thead", {}, h("tr", {}, ["Time", "Action", "Mode", "Device", "Target group", "Message"].map((t) => h("th", {}, t)))),
    h("tbody", {}, res.events.map((e) => h("tr", {}, h("td", { class: "mono" }, fmtTime(e.time)), h("td", {}, e.action), h("td", {}, e.mode),
      h("td", {}, devLink(e.device)), h("td", { class: "mono" }, e.target_group), h("td", { class: "msg" }, e.message))))) : h("div", { class: "panel muted" }, "None yet."));
  view.replaceChildren(...parts);
}

// ---- groups ----

async function groupsView() {
  const res = await api("/groups");
  view.replaceChildren(h("h1", {}, "Groups"), h("table", { id: "groups" },
    h("thead", {}, h("tr", {}, ["Group", "Mode", "Learning progress", "Rows learned", "Devices", "In alarm", "Recommended", "Quarantined"].map((t) => h("th", {}, t)))),
    h("tbody", {}, res.groups.map((g) => h("tr", {},
      h("td", {}, groupLink(g.name)),
      h("td", {}, h("span", { class: "pill " + (g.learning ? "learning" : "protecting") }, g.learning ? "learning" : "protecting")),
      h("td", {}, h("span", { class: "progress", title: Math.round(g.progress * 100) + "%" }, h("span", { style: `width:${Math.round(g.progress * 100)}%` })), " ", Math.round(g.progress * 100) + "%"),
      h("td", { class: "num" }, g.rows.toLocaleString()),
      h("td", { class: "num" }, g.devices),
      h("td", { class: "num" }, g.status.alarm || ""),
      h("td", { class: "num" }, g.status.recommended || ""),
      h("td", { class: "num" }, g.status.quarantined || ""))))));
}

async function groupView(name) {
  const g = await api("/groups/" + encodeURIComponent(name));
  const qs = ["p1", "p5", "p50", "p95", "p99", "p99.9"];
  const profiles = Object.entries(g.metrics).sort().filter(([, m]) => m.profile);
  view.replaceChildren(
    h("h1", {}, name, " ", h("span", { class: "pill " + (g.learning ? "learning" : "protecting") }, g.learning ? "learning" : "protecting")),
    h("div", { class: "panel" }, h("dl", { class: "kv" },
      h("dt", {}, "learning"), h("dd", {}, h("span", { class: "progress" }, h("span", { style: `width:${Math.round(g.progress * 100)}%` })), ` ${Math.round(g.progress * 100)}% · ${g.rows.toLocaleString()} of ${g.min_samples.toLocaleString()} rows` + (g.min_duration_seconds ? `, ${fmtNum(g.span_seconds / 3600)} h of ${fmtNum(g.min_duration_seconds / 3600)} h` : "")),
      h("dt", {}, "devices"), h("dd", {}, `${g.devices} (`, Object.entries(g.status).map(([k, v]) => `${v} ${k}`).join(", "), ")"),
      h("dt", {}, "search"), h("dd", {}, link("#/fleet?" + new URLSearchParams({ q: `group:"${name}"` }), "its devices in the fleet table")))),
    h("h2", {}, "Per-metric distribution"),
    h("table", {}, h("thead", {}, h("tr", {}, ["Metric", "Samples", "Mean", "Std", ...qs, "Seasonal buckets"].map((t) => h("th", {}, t)))),
      h("tbody", {}, Object.entries(g.metrics).sort().map(([k, m]) => h("tr", {}, h("td", {}, k), h("td", { class: "num" }, m.samples.toLocaleString()),
        h("td", { class: "num" }, fmtNum(m.mean)), h("td", { class: "num" }, fmtNum(m.std)), qs.map((q) => h("td", { class: "num" }, fmtNum(m.percentiles[q]))),
        h("td", { class: "num" }, `${m.seasonal_buckets} / 168`))))),
    ...(profiles.length ? [h("h2", {}, "Recurring patterns"), h("div", { class: "charts", id: "profiles" }, profiles.map(([k, m]) => h("div", { class: "panel chart" }, h("h3", {}, k), profileStrip(m))))] : []),
    h("h2", {}, "Members"), h("div", { class: "panel" }, g.members.map((m, i) => [i ? ", " : "", devLink(m)])));
}

// ---- rollouts ----

const rolloutStates = { in_progress: "in progress", regressed: "regressed", abort_recommended: "abort recommended", healthy: "healthy" };
function rolloutPill(state) { return h("span", { class: "pill rollout-" + state }, rolloutStates[state] || state); }
function rolloutLink(group) { return link("#/rollout/" + encodeURIComponent(group), group); }

function progressBar(r) {
  const pct = Math.round(r.progress * 100);
  return [h("span", { class: "progress", title: `${r.upgraded} of ${r.upgraded + r.not_upgraded} devices on ${r.to_version}` }, h("span", { style: `width:${pct}%` })),
    ` ${r.upgraded} / ${r.upgraded + r.not_upgraded}`];
}

async function rolloutsView() {
  const res = await api("/rollouts");
  if (!res.rollouts.length) {
    view.replaceChildren(h("h1", {}, "Rollouts"), h("div", { class: "panel muted" }, "No firmware rollout seen (detect.rollout must be enabled)."));
    return;
  }
  view.replaceChildren(h("h1", {}, "Rollouts"), h("table", { id: "rollouts" },
    h("thead", {}, h("tr", {}, ["Group", "Firmware", "Devices on the new version", "Last hour", "State", "Last alert"].map((t) => h("th", {}, t)))),
    h("tbody", {}, res.rollouts.map((r) => h("tr", {},
      h("td", { class: "nowrap" }, rolloutLink(r.group)),
      h("td", { class: "mono nowrap" }, `${r.from_version} → ${r.to_version}`),
      h("td", { class: "nowrap" }, progressBar(r)),
      h("td", { class: "num" }, r.upgraded_last_hour || ""),
      h("td", { class: "nowrap" }, rolloutPill(r.state)),
      h("td", { class: "msg" }, r.last_alert ? [h("span", { class: "mono" }, fmtTime(r.last_alert.event_time)), " ", r.last_alert.behavior, ": ", r.last_alert.message] : ""))))));
}

async function rolloutView(group) {
  const [r, alerts] = await Promise.all([api("/rollouts/" + encodeURIComponent(group)),
    api("/alerts?" + new URLSearchParams({ q: `detector:rollout group:"${group}"`, limit: 50 }))]);
  view.replaceChildren(
    h("h1", {}, group, " ", h("span", { class: "mono" }, `${r.from_version} → ${r.to_version}`), " ", rolloutPill(r.state)),
    h("div", { class: "panel" }, h("dl", { class: "kv" },
      h("dt", {}, "progress"), h("dd", {}, progressBar(r), ` devices on ${r.to_version} · ${r.upgraded_last_hour} upgraded in the last hour` + (r.silent ? ` · ${r.silent} upgraded devices silent` : "")),
      h("dt", {}, "upgrades"), h("dd", {}, `first ${fmtTime(r.first_upgrade)} · latest ${fmtTime(r.last_upgrade)}`),
      h("dt", {}, "group"), h("dd", {}, groupLink(group)))),
    h("h2", {}, "KPIs: upgraded devices against those not upgraded, same group, same windows"),
    h("div", { class: "legend" }, h("span", {}, h("i", { class: "l-up" }), `upgraded (${r.to_version})`), h("span", {}, h("i", { class: "l-notup" }), `not upgraded (${r.from_version})`),
      h("span", {}, h("i", { class: "l-thr" }), `regression threshold (${r.threshold_percent}% of not upgraded)`), h("span", {}, h("i", { class: "l-out" }), "significant regression")),
    h("div", { class: "charts" }, r.kpis.map((k) => rolloutChart(k, r.threshold_percent))),
    h("h2", {}, "Rollout alerts"), alertTable(alerts.alerts, false));
}

// rolloutChart plots a KPI's cohort means over the windows, with the
// regression threshold relative to the not-upgraded cohort.
function rolloutChart(k, threshold) {
  const box = h("div", { class: "panel chart rollout-chart" });
  const last = k.latest;
  const sub = [`bad: ${k.bad}`];
  if (last) sub.push(`latest: ${fmtNum(last.upgraded_mean)} vs ${fmtNum(last.not_upgraded_mean)} (medians ${fmtNum(last.upgraded_median)} vs ${fmtNum(last.not_upgraded_median)})`,
    `effect ${last.effect_percent > 0 ? "+" : ""}${Math.round(last.effect_percent)}%`, `p=${last.p_value === null ? "–" : last.p_value.toPrecision(2)}`, `${last.upgraded} vs ${last.not_upgraded} devices`);
  box.append(h("h3", {}, k.metric), h("div", { class: "sub" }, sub.join(" · ")));
  const ws = k.windows.filter((w) => w.upgraded_mean !== null && w.not_upgraded_mean !== null);
  if (ws.length < 2) { box.append(h("div", { class: "muted" }, "Not enough windows compared yet.")); return box; }
  const f = k.bad === "up" ? 1 + threshold / 100 : 1 - threshold / 100;
  const pts = ws.map((w) => [Date.parse(w.end), w.upgraded_mean, w.not_upgraded_mean, w.not_upgraded_mean * f, w.breach]);
  const t0 = pts[0][0], t1 = pts[pts.length - 1][0];
  let lo = Infinity, hi = -Infinity;
  for (const p of pts) for (const v of [p[1], p[2], p[3]]) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  const { x, y, svg, axes } = plotFrame(t0, t1, lo, hi, k.metric + " cohorts chart");
  const line = (cls, i) => s("polyline", { class: cls, points: pts.map((p) => `${x(p[0])},${y(p[i])}`).join(" ") });
  svg.append(line("notup", 2), line("thr", 3), line("up", 1));
  for (const p of pts) if (p[4]) svg.append(s("circle", { class: "out", cx: x(p[0]), cy: y(p[1]), r: 2.5 }));
  axes();
  box.append(svg);
  return box;
}

// ---- alerts ----

async function alertsView() {
  const q = params().get("q") || "";
  const input = h("input", { id: "aq", value: q, placeholder: "detector:identity severity>=7 time>-6h", spellcheck: "false" });
  const form = h("form", { class: "search", onsubmit: (e) => { e.preventDefault(); location.hash = "#/alerts?" + new URLSearchParams({ q: input.value }); } },
    input, h("button", { class: "primary", type: "submit" }, "Search"));
  const err = h("div", { class: "error" });
  view.replaceChildren(h("h1", {}, "Alerts"), h("div", { class: "panel" }, form, err,
    h("div", { class: "examples" }, "Try: ", ["state:alarm severity>=7", "detector:identity", "NOT detector:novelty", "technique:T08*"].map((x) => h("a", { href: "#/alerts?" + new URLSearchParams({ q: x }) }, x)))));
  let res;
  try {
    res = await api("/alerts?" + new URLSearchParams({ q, limit: 500 }));
  } catch (e) {
    if (e.status === 400) { err.textContent = q + "\n" + " ".repeat(e.position || 0) + "^ " + e.message; return; }
    throw e;
  }
  view.append(h("div", { class: "panel" }, h("div", { class: "muted" }, `${res.total} alerts match; the newest ${res.alerts.length} below, alarms per hour of event time:`), timeline(res.alerts)),
    alertTable(res.alerts, true));
}

function timeline(alerts) {
  const W = 1200, H = 90, B = 16;
  const svg = s("svg", { class: "timeline", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none" });
  const ts = alerts.filter((a) => a.state === "alarm").map((a) => Date.parse(a.event_time));
  if (!ts.length) return svg;
  const hour = 3600e3;
  const t0 = Math.floor(Math.min(...ts) / hour) * hour, t1 = Math.ceil((Math.max(...ts) + 1) / hour) * hour;
  const n = Math.max(1, Math.round((t1 - t0) / hour));
  const counts = new Array(n).fill(0), hot = new Array(n).fill(false);
  alerts.forEach((a) => {
    if (a.state !== "alarm") return;
    const i = Math.min(n - 1, Math.floor((Date.parse(a.event_time) - t0) / hour));
    counts[i]++; hot[i] = hot[i] || a.severity >= 7;
  });
  const max = Math.max(...counts), bw = W / n;
  counts.forEach((c, i) => {
    if (!c) return;
    const bh = (H - B - 4) * c / max;
    svg.append(s("rect", { class: "bar" + (hot[i] ? " hot" : ""), x: i * bw + 1, y: H - B - bh, width: Math.max(1, bw - 2), height: bh }, s("title", {}, `${new Date(t0 + i * hour).toISOString().slice(0, 13)}h: ${c} alarms`)));
  });
  svg.append(s("text", { x: 2, y: H - 3 }, new Date(t0).toISOString().slice(0, 16).replace("T", " ")),
    s("text", { x: W - 2, y: H - 3, "text-anchor": "end" }, new Date(t1).toISOString().slice(0, 16).replace("T", " ")));
  return svg;
}

// ---- routing ----

async function refreshPending() {
  try {
    const res = await api("/quarantine");
    const n = res.queue.filter((q) => q.state === "recommended").length;
    const b = document.getElementById("pending");
    b.hidden = n === 0;
    b.textContent = n;
  } catch (e) { /* shown by the view */ }
}

async function route() {
  const hash = location.hash || "#/fleet";
  const path = hash.slice(2).split("?")[0];
  const [tab, ...rest] = path.split("/");
  const arg = decodeURIComponent(rest.join("/"));
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.tab === ({ device: "fleet", group: "groups", rollout: "rollouts" }[tab] || tab));
  try {
    if (!me) {
      me = await api("/whoami");
      document.getElementById("who").textContent = `${me.name} (${me.role})`;
    }
    switch (tab) {
      case "device": await deviceView(arg); break;
      case "groups": await groupsView(); break;
      case "group": await groupView(arg); break;
      case "rollouts": await rolloutsView(); break;
      case "rollout": await rolloutView(arg); break;
      case "alerts": await alertsView(); break;
      case "quarantine": await quarantineView(); break;
      default: await fleetView();
    }
    refreshPending();
    document.body.dataset.ready = hash;
  } catch (e) {
    showError(e);
  }
}

document.getElementById("login-form").addEventListener("submit", (e) => {
  e.preventDefault();
  token = document.getElementById("token").value.trim();
  sessionStorage.setItem("vigil-token", token);
  document.getElementById("login").hidden = true;
  me = null;
  route();
});
window.addEventListener("hashchange", route);
route();
