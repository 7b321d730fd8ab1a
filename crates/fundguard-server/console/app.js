// The fundguard console: a small single-page app over /api/v1, no build step.
// Views: #/alerts (queue), #/alerts/ID (detail), #/incidents (and #/incidents/ID, with the
// likely causes), #/dashboard, #/rules, #/health (and
// #/health/OWNER), #/coverage,
// #/suggestions (and #/suggestions/ID), #/sources, #/audit (admins). The current view
// refreshes every 3 seconds, so alerts arrive without a reload; the Sources link counts
// sources in trouble whatever the view.
"use strict";

const state = { session: null, filters: { status: "", severity: "", team: "", rule: "", since: "" }, offset: 0 };
const $ = (sel) => document.querySelector(sel);
const SEVERITIES = ["critical", "high", "medium", "low"];
const STATUSES = ["open", "acknowledged", "resolved", "false_positive", "expected"];

function esc(text) {
  return String(text ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
}

function showError(message) {
  const box = $("#error");
  box.textContent = message || "";
  box.hidden = !message;
}

async function api(path, options = {}) {
  const headers = { "Content-Type": "application/json" };
  if (options.method && options.method !== "GET" && state.session) headers["X-CSRF-Token"] = state.session.csrf;
  const response = await fetch(path, { credentials: "same-origin", ...options, headers });
  if (response.status === 401 && path !== "/api/v1/login") {
    state.session = null;
    render();
    throw new Error("please log in");
  }
  const text = await response.text();
  const body = text ? JSON.parse(text) : null;
  if (!response.ok) throw new Error((body && body.error) || `HTTP ${response.status}`);
  return body;
}

const post = (path, body) => api(path, { method: "POST", body: JSON.stringify(body || {}) });

function can(role) {
  const order = ["viewer", "operator", "admin"];
  return state.session && order.indexOf(state.session.role) >= order.indexOf(role);
}

// What the server allows (it checks again): operators change the alerts of their teams
// (every team's without `teams`) and switch the rules of the teams they list.
function worksFor(team) {
  const teams = state.session && state.session.teams;
  return can("admin") || (can("operator") && (!teams || teams.includes(team)));
}

function switchesRulesOf(team) {
  const teams = state.session && state.session.teams;
  return can("admin") || (can("operator") && !!teams && teams.includes(team));
}

function time(t) {
  return t ? new Date(t).toLocaleString() : "—";
}

// Money comes formatted from the server (one formatter, fundguard-core's money.rs): major
// units with the currency's ISO 4217 exponent, `4,198.45 CNY`; `amount_minor` is the exact value.
function money(m) {
  if (!m) return "—";
  const exact = m.amount_minor !== undefined ? `${m.amount_minor} minor units` : "as given";
  return `<span class="money" title="${esc(exact)}">${esc(m.display)}</span>`;
}

// ---- alert queue ----------------------------------------------------------------

function sinceParam(choice) {
  const hours = { "1h": 1, "24h": 24, "7d": 168 }[choice];
  return hours ? new Date(Date.now() - hours * 3600e3).toISOString() : "";
}

async function renderAlerts(view) {
  const f = state.filters;
  if (!view.querySelector("#alerts-table")) {
    const options = (list, chosen) =>
      ['<option value="">any</option>'].concat(list.map((v) => `<option value="${v}" ${v === chosen ? "selected" : ""}>${v}</option>`)).join("");
    view.innerHTML = `
      <div class="filters">
        <label>Status <select id="f-status">${options(STATUSES, f.status)}</select></label>
        <label>Severity <select id="f-severity">${options(SEVERITIES, f.severity)}</select></label>
        <label>Team <input id="f-team" value="${esc(f.team)}" placeholder="any"></label>
        <label>Rule <input id="f-rule" value="${esc(f.rule)}" placeholder="any"></label>
        <label>Seen <select id="f-since">${options(["1h", "24h", "7d"], f.since)}</select></label>
      </div>
      <table id="alerts-table"><thead><tr><th>#</th><th>Severity</th><th>Status</th><th>Team</th><th>Rule</th>
        <th>Key</th><th>Money at risk</th><th>Findings</th><th>Last seen</th><th>Message</th></tr></thead><tbody></tbody></table>
      <div class="pager"><button class="secondary" id="prev">Previous</button><button class="secondary" id="next">Next</button>
        <span class="muted" id="page"></span></div>`;
    for (const id of ["status", "severity", "team", "rule", "since"]) {
      view.querySelector(`#f-${id}`).addEventListener("change", (e) => {
        state.filters[id] = e.target.value.trim();
        state.offset = 0;
        refresh();
      });
    }
    view.querySelector("#prev").addEventListener("click", () => { state.offset = Math.max(0, state.offset - 50); refresh(); });
    view.querySelector("#next").addEventListener("click", () => { state.offset += 50; refresh(); });
  }
  const params = new URLSearchParams({ limit: "50", offset: String(state.offset) });
  for (const key of ["status", "severity", "team", "rule"]) if (f[key]) params.set(key, f[key]);
  if (f.since) params.set("since", sinceParam(f.since));
  const page = await api(`/api/v1/alerts?${params}`);
  const rows = page.alerts.map((a) => `
    <tr class="clickable" data-id="${a.id}">
      <td>${a.id}</td><td><span class="sev ${a.severity}">${a.severity}</span></td>
      <td class="status">${a.status}</td><td>${esc(a.owner)}</td><td>${esc(a.rule)}</td>
      <td><code>${esc(JSON.stringify(a.key))}</code></td><td>${money(a.money_at_risk)}</td><td>${a.count}</td>
      <td>${time(a.last_seen)}</td><td>${esc(a.message)}</td></tr>`);
  const body = view.querySelector("#alerts-table tbody");
  body.innerHTML = rows.join("") || '<tr><td colspan="10" class="muted">No alerts match.</td></tr>';
  body.querySelectorAll("tr[data-id]").forEach((tr) => tr.addEventListener("click", () => { location.hash = `#/alerts/${tr.dataset.id}`; }));
  view.querySelector("#prev").disabled = state.offset === 0;
  view.querySelector("#next").disabled = page.next_offset === null;
  view.querySelector("#page").textContent = `alerts ${state.offset + 1}–${state.offset + page.alerts.length}`;
}

// ---- alert detail ---------------------------------------------------------------

function pendingApproval(timeline) {
  let waiting = false;
  for (const t of timeline) {
    if (t.action === "action_awaiting_approval") waiting = true;
    if (t.action === "action_approved" || t.action === "action_rejected") waiting = false;
  }
  return waiting;
}

async function renderAlert(view, id) {
  const { alert: a, overdue, timeline } = await api(`/api/v1/alerts/${id}`);
  const typing = document.activeElement && ["INPUT", "TEXTAREA"].includes(document.activeElement.tagName);
  if (typing && view.dataset.alert === String(id)) return; // do not wipe what someone is typing
  view.dataset.alert = String(id);
  const active = a.status === "open" || a.status === "acknowledged";
  const evidence = (Array.isArray(a.evidence) ? a.evidence : []).map((e) => `
      <tr><td>${esc(e.table)}</td>
      <td>${esc(e.op)}</td><td>${time(e.commit_time)}</td>
      <td><pre>${esc(JSON.stringify(e.before ?? null, null, 1))}</pre></td><td><pre>${esc(JSON.stringify(e.after ?? null, null, 1))}</pre></td></tr>`);
  view.innerHTML = `
    <p><a href="#/alerts">← all alerts</a></p>
    <div class="grid">
      <div class="card"><h2>Alert ${a.id} · <span class="sev ${a.severity}">${a.severity}</span> <span id="alert-status" class="status">${a.status}</span></h2>
        <dl class="facts">
          <dt>Rule</dt><dd>${esc(a.rule)}</dd><dt>Team</dt><dd>${esc(a.owner)}</dd>
          <dt>Key</dt><dd><code>${esc(JSON.stringify(a.key))}</code></dd><dt>Message</dt><dd>${esc(a.message)}</dd>
          <dt>Money at risk</dt><dd id="alert-money">${money(a.money_at_risk)}</dd>
          <dt>Findings</dt><dd>${a.count} (first ${time(a.first_seen)}, last ${time(a.last_seen)})</dd>
          <dt>Detected in</dt><dd>${((new Date(a.first_seen) - new Date(a.event_time)) / 1000).toFixed(3)} s after the commit</dd>
          <dt>Assignee</dt><dd>${esc(a.assignee || "—")}</dd><dt>Root cause</dt><dd id="alert-root-cause">${esc(a.root_cause || "—")}</dd>
          <dt>Overdue</dt><dd>${["detect", "respond", "resolve"].filter((k) => overdue[k]).join(", ") || "no"}</dd>
        </dl></div>
      <div class="card"><h2>Actions</h2><div class="actions">
        ${worksFor(a.owner) ? `
        <div class="row"><button id="ack" ${a.status === "open" ? "" : "disabled"}>Acknowledge</button></div>
        <div class="row"><input id="root-cause" placeholder="Root cause (required to resolve)"><button id="resolve" ${active ? "" : "disabled"}>Resolve</button></div>
        <div class="row"><input id="fp-reason" placeholder="Why it is not a real problem"><button class="secondary" id="false-positive" ${active ? "" : "disabled"}>False positive</button></div>
        <div class="row"><input id="assignee" placeholder="Assign to"><button class="secondary" id="assign" ${active ? "" : "disabled"}>Assign</button></div>
        <div class="row"><input id="note" placeholder="Note"><button class="secondary" id="add-note">Add note</button></div>` : can("operator")
          ? `<p class="muted">Team ${esc(a.owner)}'s operators work this alert.</p>`
          : '<p class="muted">Viewers can read alerts; an operator works them.</p>'}
        ${can("admin") && pendingApproval(timeline) ? `
        <div class="row"><button id="approve-action">Approve containment action</button>
          <input id="reject-reason" placeholder="Why not"><button class="secondary" id="reject-action">Reject</button></div>` : ""}
      </div></div>
      <div class="card"><h2>Timeline</h2><ol id="timeline">${timeline.map((t) =>
        `<li data-action="${esc(t.action)}"><b>${esc(t.action)}</b> by ${esc(t.actor)} · ${time(t.at)}${t.detail ? `<br><span class="muted">${esc(t.detail)}</span>` : ""}</li>`).join("")}</ol></div>
    </div>
    ${a.incident_id ? `<div class="card spaced" id="alert-causes"><h2>Likely causes · <a href="#/incidents/${a.incident_id}">incident ${a.incident_id}</a></h2><p class="muted">loading…</p></div>` : ""}
    <div class="card spaced"><h2>Evidence</h2>
      <table id="evidence"><thead><tr><th>Table</th><th>Op</th><th>Commit</th><th>Before</th><th>After</th></tr></thead><tbody>${evidence.join("")}</tbody></table></div>`;
  const act = (button, change, body) => {
    const b = view.querySelector(button);
    if (!b) return;
    b.addEventListener("click", async () => {
      try {
        await post(`/api/v1/alerts/${a.id}/${change}`, body ? body() : {});
        showError("");
        view.dataset.alert = "";
        document.activeElement.blur();
        refresh();
      } catch (e) { showError(e.message); }
    });
  };
  if (a.incident_id) {
    const d = await api(`/api/v1/incidents/${a.incident_id}`);
    const card = view.querySelector("#alert-causes");
    if (card) card.innerHTML = `<h2>Likely causes · <a href="#/incidents/${d.id}">incident ${d.id}</a> (${d.alerts} alerts, ${esc(d.money_display)})</h2>${causesHtml(d, false, 3)}`;
  }
  const value = (sel) => view.querySelector(sel).value;
  act("#ack", "ack");
  act("#resolve", "resolve", () => ({ root_cause: value("#root-cause") }));
  act("#false-positive", "false-positive", () => ({ reason: value("#fp-reason") }));
  act("#assign", "assign", () => ({ to: value("#assignee") }));
  act("#add-note", "note", () => ({ text: value("#note") }));
  act("#approve-action", "approve-action");
  act("#reject-action", "reject-action", () => ({ reason: value("#reject-reason") }));
}

// ---- incidents --------------------------------------------------------------------

const pct = (x) => `${(x * 100).toFixed(x < 0.01 ? 2 : 1)} %`;

function verdict(f) {
  return f ? `<span class="verdict ${esc(f.verdict)}">${esc(f.verdict)} by ${esc(f.actor)}</span>` : "";
}

// The ranked causes of an incident, with the figures behind each; `judging` adds the
// buttons that confirm or reject one.
function causesHtml(d, judging, limit) {
  const judge = (name) => judging ? `<button class="secondary" data-cause="${esc(name)}" data-verdict="confirmed">Confirm</button>
      <button class="secondary" data-cause="${esc(name)}" data-verdict="rejected">Reject</button>` : "";
  const dims = d.dimensions.slice(0, limit).map((c) => `<tr data-cause="${esc(c.name)}"><td>${esc(c.name)}</td>
      <td>${pct(c.support)} (${c.incident_rows}/${c.incident_total})</td><td>${pct(c.baseline_share)}</td>
      <td>${c.lift.toFixed(1)}</td><td>${c.score.toFixed(2)}</td><td>${verdict(c.feedback)} ${judge(c.name)}</td></tr>`);
  const changes = d.changes.slice(0, limit).map((c) => `<tr data-cause="${esc(c.name)}">
      <td>${esc(c.change.kind)} <b>${esc(c.change.service)}</b> ${esc(c.change.version || "")}
        ${c.change.link ? `<a href="${esc(c.change.link)}" rel="noreferrer">link</a>` : ""}</td>
      <td>${time(c.change.at)} (${c.minutes_before.toFixed(0)} min before)</td><td>${esc(c.reason)}</td>
      <td>${c.score.toFixed(2)}</td><td>${verdict(c.feedback)} ${judge(c.name)}</td></tr>`);
  return `<h3>Dimensions: in the incident vs in the traffic</h3>
    <table id="dimension-causes"><thead><tr><th>Attribute</th><th>Of the incident</th><th>Of the traffic</th><th>Lift</th><th>Score</th><th></th></tr></thead>
      <tbody>${dims.join("") || '<tr><td colspan="6" class="muted">None stands out (or no baseline yet).</td></tr>'}</tbody></table>
    <h3>Changes before it</h3>
    <table id="change-causes"><thead><tr><th>Change</th><th>When</th><th>Why it may matter</th><th>Score</th><th></th></tr></thead>
      <tbody>${changes.join("") || '<tr><td colspan="5" class="muted">No change recorded in the 24 h before it.</td></tr>'}</tbody></table>`;
}

async function renderIncidents(view) {
  const incidents = await api("/api/v1/incidents?limit=200");
  const rows = incidents.map((i) => `
    <tr class="clickable" data-incident="${i.id}"><td>${i.id}</td><td><span class="sev ${i.severity}">${i.severity}</span></td>
      <td class="status">${i.status}</td><td>${esc(i.owner)}</td><td>${esc(i.flow)}</td><td>${i.alerts}</td>
      <td>${esc(i.money_display)}</td><td>${time(i.started_at)}</td><td>${time(i.last_at)}</td></tr>`);
  view.innerHTML = `<h2>Incidents</h2>
    <table id="incidents-table"><thead><tr><th>#</th><th>Severity</th><th>Status</th><th>Team</th><th>Flow</th><th>Alerts</th>
      <th>Money at risk</th><th>Started</th><th>Latest</th></tr></thead>
      <tbody>${rows.join("") || '<tr><td colspan="9" class="muted">No incidents.</td></tr>'}</tbody></table>`;
  view.querySelectorAll("tr[data-incident]").forEach((tr) => tr.addEventListener("click", () => { location.hash = `#/incidents/${tr.dataset.incident}`; }));
}

async function renderIncident(view, id) {
  const d = await api(`/api/v1/incidents/${id}`);
  const typing = document.activeElement && document.activeElement.tagName === "INPUT";
  if (typing && view.dataset.alert === `incident-${id}`) return;
  view.dataset.alert = `incident-${id}`;
  const works = worksFor(d.owner);
  view.innerHTML = `
    <p><a href="#/incidents">← all incidents</a></p>
    <div class="grid">
      <div class="card"><h2>Incident ${d.id} · <span class="sev ${d.severity}">${d.severity}</span> <span id="incident-status" class="status">${d.status}</span></h2>
        <dl class="facts">
          <dt>Flow</dt><dd>${esc(d.flow)}</dd><dt>Team</dt><dd>${esc(d.owner)}</dd>
          <dt>Alerts</dt><dd>${d.alerts} over ${d.keys} key(s)</dd><dt>Money at risk</dt><dd>${esc(d.money_display)}</dd>
          <dt>Events</dt><dd>${time(d.started_at)} – ${time(d.last_at)}</dd><dt>Root cause</dt><dd>${esc(d.root_cause || "—")}</dd>
        </dl></div>
      <div class="card"><h2>Actions</h2><div class="actions">${works ? `
        <div class="row"><button id="incident-ack" ${d.status === "open" ? "" : "disabled"}>Acknowledge all its alerts</button></div>
        <div class="row"><input id="incident-root-cause" placeholder="Root cause (required to resolve)">
          <button id="incident-resolve" ${d.status === "resolved" ? "disabled" : ""}>Resolve all its alerts</button></div>`
        : '<p class="muted">An operator of the team works incidents.</p>'}</div></div>
    </div>
    <div class="card spaced" id="likely-causes"><h2>Likely causes</h2>${causesHtml(d, works, 5)}</div>
    <div class="card spaced"><h2>Alerts</h2><p id="incident-alerts">${d.alert_ids.map((a) => `<a href="#/alerts/${a}">#${a}</a>`).join(" ")}</p></div>`;
  const act = (sel, action, body) => {
    const b = view.querySelector(sel);
    if (b) b.addEventListener("click", async () => {
      try { await post(`/api/v1/incidents/${d.id}/${action}`, body ? body() : {}); showError(""); view.dataset.alert = ""; refresh(); }
      catch (e) { showError(e.message); }
    });
  };
  act("#incident-ack", "ack");
  act("#incident-resolve", "resolve", () => ({ root_cause: view.querySelector("#incident-root-cause").value }));
  view.querySelectorAll("button[data-verdict]").forEach((b) => b.addEventListener("click", async () => {
    try { await post(`/api/v1/incidents/${d.id}/causes`, { cause: b.dataset.cause, verdict: b.dataset.verdict }); showError(""); view.dataset.alert = ""; refresh(); }
    catch (e) { showError(e.message); }
  }));
}

// ---- dashboard ------------------------------------------------------------------

const COLORS = { critical: "#c62828", high: "#ef6c00", medium: "#f9a825", low: "#2e7d32" };

function barChart(id, bars, { stacked = null, height = 160, label = (b) => b.label } = {}) {
  const width = 560, pad = 24, n = Math.max(bars.length, 1), w = (width - pad) / n;
  const total = (b) => (stacked ? stacked.reduce((s, k) => s + b[k], 0) : b.value);
  const max = Math.max(1, ...bars.map(total));
  const y = (v) => (height - 18) * (v / max);
  let rects = "";
  bars.forEach((b, i) => {
    let top = height - 18;
    for (const key of stacked || ["value"]) {
      const h = y(b[key]);
      if (h > 0) rects += `<rect x="${pad + i * w + 1}" y="${top - h}" width="${Math.max(w - 2, 1)}" height="${h}" fill="${COLORS[key] || "#1f6feb"}"><title>${esc(label(b))}: ${b[key]}</title></rect>`;
      top -= h;
    }
    if (bars.length <= 16 || i % Math.ceil(bars.length / 8) === 0) rects += `<text x="${pad + i * w}" y="${height - 4}">${esc(label(b))}</text>`;
  });
  return `<svg id="${id}" viewBox="0 0 ${width} ${height}" width="100%" role="img"><text x="0" y="10">${max}</text>${rects}</svg>`;
}

async function renderDashboard(view) {
  const d = await api("/api/v1/dashboard?minutes=60");
  const minutes = d.findings_per_minute.map((m) => ({ ...m, label: new Date(m.at).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" }) }));
  let previous = 0;
  const latency = d.detection_latency.buckets.map(([le, cumulative]) => {
    const value = cumulative - previous;
    previous = cumulative;
    return { label: `≤${le}s`, value };
  });
  const compliance = d.slo_compliance.map((c) => ({ label: c.team, value: Math.round(c.percent) }));
  const moneyRows = Object.entries(d.money_at_risk).flatMap(([team, byCurrency]) =>
    Object.entries(byCurrency).map(([currency, amount]) => `<tr><td>${esc(team)}</td><td data-testid="money-${esc(team)}-${esc(currency)}">${money(amount)}</td></tr>`));
  view.innerHTML = `
    <div class="counters">${Object.entries(d.active_alerts).filter(([s]) => s === "open" || s === "acknowledged").map(([s, n]) =>
      `<div class="counter"><span class="muted">${s}</span><b data-testid="active-${s}">${n}</b></div>`).join("")}
      <div class="counter"><span class="muted">findings (latency samples)</span><b data-testid="findings-total">${d.detection_latency.count}</b></div></div>
    <div class="grid spaced">
      <div class="card"><h2>Findings per minute, by severity</h2>${barChart("chart-findings", minutes, { stacked: SEVERITIES })}</div>
      <div class="card"><h2>Detection latency (commit → finding)</h2>${barChart("chart-latency", latency)}</div>
      <div class="card"><h2>SLO compliance per team (% of alerts within every deadline, last 7 days)</h2>${barChart("chart-slo", compliance)}
        <table id="slo-table"><thead><tr><th>Team</th><th>Alerts</th><th>Overdue</th><th>%</th></tr></thead><tbody>${d.slo_compliance.map((c) =>
          `<tr><td>${esc(c.team)}</td><td>${c.alerts}</td><td>${c.overdue}</td><td>${c.percent.toFixed(1)}</td></tr>`).join("")}</tbody></table></div>
      <div class="card"><h2>Open money at risk</h2><table id="money-table"><thead><tr><th>Team</th><th>Amount</th></tr></thead>
        <tbody>${moneyRows.join("") || '<tr><td colspan="2" class="muted">Nothing at risk.</td></tr>'}</tbody></table></div>
    </div>`;
}

// ---- rules ----------------------------------------------------------------------

async function renderRules(view) {
  const rules = await api("/api/v1/rules");
  view.innerHTML = `<table id="rules-table"><thead><tr><th>Rule</th><th>Team</th><th>Severity</th><th>Kind</th><th>Enabled</th>
    <th>Events</th><th>Findings</th><th>Open alerts</th><th>Errors</th><th>State</th><th></th></tr></thead><tbody>${rules.map((r) => `
    <tr data-rule="${esc(r.id)}"><td title="${esc(r.description)}">${esc(r.id)}</td><td>${esc(r.owner)}</td>
      <td><span class="sev ${r.severity}">${r.severity}</span></td><td>${esc(r.kind)}</td><td>${r.enabled ? "yes" : "no"}</td>
      <td>${r.events}</td><td>${r.findings}</td><td>${r.open_alerts}</td>
      <td title="${esc(r.last_error || "")}">${r.errors}</td><td>${r.state_bytes ? `${(r.state_bytes / 1024).toFixed(1)} KiB` : "—"}</td>
      <td>${switchesRulesOf(r.owner) ? `<button class="secondary toggle" data-id="${esc(r.id)}" data-to="${r.enabled ? "disable" : "enable"}">${r.enabled ? "Disable" : "Enable"}</button>` : ""}</td></tr>`).join("")}</tbody></table>`;
  view.querySelectorAll("button.toggle").forEach((b) => b.addEventListener("click", async () => {
    try { await post(`/api/v1/rules/${encodeURIComponent(b.dataset.id)}/${b.dataset.to}`); showError(""); refresh(); } catch (e) { showError(e.message); }
  }));
}

// ---- rule health: failing, drifted, stale, noisy, silent, ok --------------------

async function renderHealth(view, owner) {
  const query = owner ? `?owner=${encodeURIComponent(decodeURIComponent(owner))}` : "";
  const report = await api(`/api/v1/rules/health${query}`);
  const sort = view.dataset.sort || "state";
  const rules = [...report.rules];
  const order = ["failing", "drifted", "stale", "noisy", "silent", "ok"];
  const keyOf = {
    state: (h) => [order.indexOf(h.state), h.owner, h.id],
    owner: (h) => [h.owner, order.indexOf(h.state), h.id],
    rule: (h) => [h.id],
    events: (h) => [-h.totals.events, h.id],
    alerts: (h) => [-h.totals.alerts, h.id],
  }[sort] || ((h) => [h.id]);
  rules.sort((a, b) => { const x = keyOf(a), y = keyOf(b); for (let i = 0; i < x.length; i++) { if (x[i] < y[i]) return -1; if (x[i] > y[i]) return 1; } return 0; });
  const counts = order.map((st) => `<span class="counter health-count" data-state="${st}"><b>${report.rules.filter((h) => h.state === st).length}</b>${st}</span>`).join("");
  const owners = [...new Set(report.rules.map((h) => h.owner))].sort();
  const reason = (r) => `<li class="reason ${esc(r.state)}"><span class="health ${esc(r.state)}">${esc(r.state)}</span> ${esc(r.message)}${r.since ? ` <span class="muted">since ${time(r.since)}</span>` : ""}
      ${r.evidence.length ? `<ul class="evidence">${r.evidence.map((e) => `<li><code>${esc(e)}</code></li>`).join("")}</ul>` : ""}</li>`;
  const promote = (h) => h.mode === "shadow" && can("admin") ? `<button class="secondary promote" data-id="${esc(h.id)}">Promote to live</button>` : "";
  const shadowDays = (h) => h.mode === "shadow" && h.totals.per_day.length ? `<div class="muted">would have raised: ${h.totals.per_day.map(([d, , f]) => `${esc(d)} ${f}`).join(", ")}</div>` : "";
  view.innerHTML = `<h2>Rule health ${owner ? `› ${esc(decodeURIComponent(owner))} <a class="muted" href="#/health">(all owners)</a>` : ""}</h2>
    <p class="muted">Judged ${time(report.judged_at)}. Owners: ${owners.map((o) => `<a href="#/health/${encodeURIComponent(o)}">${esc(o)}</a>`).join(" · ")}</p>
    <div class="counters">${counts}</div>
    <table id="health-table" class="spaced"><thead><tr>${[["rule", "Rule"], ["owner", "Team"], ["state", "State"], ["events", "Events"], ["alerts", "Alerts"]].map(([k, label]) => `<th><a href="#" class="sort" data-sort="${k}">${label}${sort === k ? " ▾" : ""}</a></th>`).join("")}<th>Findings</th><th>Why</th><th></th></tr></thead>
    <tbody>${rules.map((h) => `<tr data-rule="${esc(h.id)}" data-state="${esc(h.state)}"><td>${esc(h.id)}${h.mode === "shadow" ? ' <span class="muted">(shadow)</span>' : ""}<div class="muted">${esc(h.kind)}</div></td><td>${esc(h.owner)}</td>
      <td><span class="health ${esc(h.state)}">${esc(h.state)}</span></td><td>${h.totals.events}</td><td>${h.totals.alerts}${h.totals.false_positives ? ` <span class="muted">(${h.totals.false_positives} false)</span>` : ""}</td><td>${h.totals.findings}</td>
      <td class="reasons"><ul>${h.reasons.map(reason).join("")}</ul>${h.top_keys.length && h.state === "noisy" ? `<div class="muted">top keys: ${h.top_keys.map(([k, n]) => `<code>${esc(k)}</code> ×${n}`).join(", ")}</div>` : ""}${shadowDays(h)}</td>
      <td>${promote(h)}</td></tr>`).join("")}</tbody></table>`;
  view.querySelectorAll("a.sort").forEach((a) => a.addEventListener("click", (e) => { e.preventDefault(); view.dataset.sort = a.dataset.sort; refresh(); }));
  view.querySelectorAll("button.promote").forEach((b) => b.addEventListener("click", async () => {
    try { await post(`/api/v1/rules/${encodeURIComponent(b.dataset.id)}/promote`); showError(""); refresh(); } catch (e) { showError(e.message); }
  }));
}

// ---- coverage: owner → table → column → rules -----------------------------------

function figure(f) {
  if (!f || f.total === 0) return '<span class="muted">—</span>';
  return `${Math.floor((f.covered * 1000) / f.total) / 10}% <span class="muted">(${f.covered}/${f.total})</span>`;
}

async function renderCoverage(view, owner) {
  // The report changes when CI rewrites it, not every 3 s: drawn once per visit, so the
  // tables someone opened stay open.
  if (view.dataset.coverage === (owner || "-")) return;
  const report = await api("/api/v1/coverage");
  view.dataset.coverage = owner || "-";
  if (!owner) {
    const rows = [["(all)", report.overall, null], ...Object.entries(report.owners).map(([o, d]) => [o, d, o])];
    view.innerHTML = `<h2>Coverage</h2><table id="coverage-owners"><thead><tr><th>Owner</th><th>Money fields</th><th>Metrics</th><th>Cross-system</th></tr></thead>
      <tbody>${rows.map(([name, d, link]) => `<tr data-owner="${esc(link || "")}"><td>${link ? `<a href="#/coverage/${encodeURIComponent(link)}">${esc(name)}</a>` : esc(name)}</td>
        <td>${figure(d.field)}</td><td>${figure(d.metric)}</td><td>${figure(d.cross_system)}</td></tr>`).join("")}</tbody></table>
      <h3>Relations between money tables</h3><table id="coverage-relations"><thead><tr><th>From</th><th>To</th><th>Reconciled by</th><th>Directions</th></tr></thead>
      <tbody>${report.relations.map((r) => `<tr><td>${esc(r.from)}</td><td>${esc(r.to)}</td>
        <td>${r.reconciled_by.length ? esc(r.reconciled_by.join(", ")) : '<span class="sev critical">not reconciled</span>'}</td><td>${esc(r.directions.join("; "))}</td></tr>`).join("")}</tbody></table>`;
    return;
  }
  owner = decodeURIComponent(owner);
  const columns = report.columns.filter((c) => c.owner === owner);
  const tables = [...new Set(columns.map((c) => c.table))];
  const money = (cs) => cs.filter((c) => c.money_field);
  view.innerHTML = `<h2><a href="#/coverage">Coverage</a> › ${esc(owner)}</h2>${tables.map((t) => {
    const cs = columns.filter((c) => c.table === t);
    const gaps = money(cs).filter((c) => !c.covered_by.length && !c.waived).length;
    const metric = report.metrics.find((m) => m.table === t);
    return `<details class="coverage-table" data-table="${esc(t)}"${gaps ? " open" : ""}><summary>${esc(t)} — ${money(cs).length} money field(s), ${gaps ? `<span class="sev critical">${gaps} uncovered</span>` : "all covered"}</summary>
      ${metric ? `<p class="muted">metrics: transition ${esc(metric.transition_rules.join(", ") || "MISSING")}; failure rate ${esc(metric.rate_rules.join(", ") || "MISSING")}</p>` : ""}
      <table><thead><tr><th>Column</th><th>Class</th><th>Confidence</th><th>Why</th><th>Checked by</th></tr></thead><tbody>${cs.map((c) => `
        <tr data-column="${esc(c.column)}"><td>${esc(c.column)}</td><td>${esc(c.class)}</td><td>${c.confidence}%</td><td class="muted">${esc(c.reason)}</td>
        <td class="rules">${c.waived ? `waived: ${esc(c.waived.reason)} (${esc(c.waived.owner)})` : c.covered_by.length ? c.covered_by.map((r) => esc(r)).join(", ") : c.money_field ? '<span class="sev critical">uncovered</span>' : ""}</td></tr>`).join("")}
      </tbody></table></details>`;
  }).join("") || '<p class="muted">No tables for this owner.</p>'}`;
}

// ---- suggestions: what `fundguard suggest` proposed, accepted or rejected ----------

// Operators of the suggestion's team and admins decide (the server checks again).
async function renderSuggestions(view, id) {
  const report = await api("/api/v1/suggestions");
  const list = report.suggestions;
  const badge = (d) => `<span class="decision ${esc(d.state)}">${esc(d.state)}</span>`;
  if (!id) {
    const signature = JSON.stringify(list.map((s) => [s.id, s.decision]));
    if (view.dataset.suggestions === signature) return;
    view.dataset.suggestions = signature;
    const sample = report.sample || {};
    view.innerHTML = `<h2>Suggestions</h2>
      <p class="muted">${esc(sample.events)} events of ${esc(sample.tables)} tables profiled, ${esc(sample.first || "—")} to ${esc(sample.last || "—")};
        accepted rules are written to ${esc(report.accept_into)}.</p>
      <table id="suggestions-table"><thead><tr><th>Rule</th><th>Kind</th><th>Team</th><th>Invariant</th><th>Verdict</th><th>Confidence</th>
        <th>Findings on the sample</th><th>Decision</th></tr></thead><tbody>${list.map((s) => `
        <tr class="clickable" data-suggestion="${esc(s.id)}"><td><a href="#/suggestions/${encodeURIComponent(s.id)}">${esc(s.id)}</a></td>
          <td>${esc(s.kind)}</td><td>${esc(s.owner)}</td><td>${esc(s.invariant)}</td><td>${esc(s.verdict)}</td><td>${s.ranked_confidence}%</td>
          <td>${s.backtest.findings}</td><td>${badge(s.decision)}</td></tr>`).join("")}</tbody></table>
      <p class="muted spaced">${(report.skipped || []).length} column(s), state(s) or relation(s) got no suggestion of some kind: see report.md in ${esc(report.dir)}.</p>`;
    view.querySelectorAll("#suggestions-table tr[data-suggestion]").forEach((row) => row.addEventListener("click", (e) => {
      if (e.target.tagName !== "A") location.hash = `#/suggestions/${encodeURIComponent(row.dataset.suggestion)}`;
    }));
    return;
  }
  id = decodeURIComponent(id);
  const s = list.find((x) => x.id === id);
  if (!s) { view.innerHTML = `<h2><a href="#/suggestions">Suggestions</a> › ${esc(id)}</h2><p>No such suggestion.</p>`; return; }
  // Drawn again only when the decision changes, so a reason being typed is kept.
  const signature = JSON.stringify(s.decision);
  if (view.dataset.suggestions === signature) return;
  view.dataset.suggestions = signature;
  const days = Object.entries(s.backtest.per_day || {});
  const decide = s.decision.state === "pending" && switchesRulesOf(s.owner);
  view.innerHTML = `<h2><a href="#/suggestions">Suggestions</a> › ${esc(s.id)} ${badge(s.decision)}</h2>
    <div class="grid">
      <div class="card"><h2>Invariant</h2><p id="suggestion-invariant">${esc(s.invariant)}</p>
        <dl class="facts"><dt>Kind</dt><dd>${esc(s.kind)}</dd><dt>Team</dt><dd>${esc(s.owner)}</dd>
          <dt>Tables</dt><dd>${esc(s.tables.join(", "))}</dd><dt>Columns</dt><dd>${esc(s.columns.join(", "))}</dd>
          <dt>Confidence</dt><dd>${s.confidence}% (after the backtest: ${s.ranked_confidence}%, ${esc(s.verdict)})</dd>
          ${s.decision.reason ? `<dt>Rejected because</dt><dd id="suggestion-reason">${esc(s.decision.reason)}</dd>` : ""}</dl>
        <h3>Evidence</h3><ul id="suggestion-evidence">${s.evidence.map((e) => `<li>${esc(e)}</li>`).join("")}</ul>
        ${s.review.length ? `<h3>To review</h3><ul>${s.review.map((r) => `<li>${esc(r)}</li>`).join("")}</ul>` : ""}</div>
      <div class="card"><h2>Backtest on the sample</h2>
        <p id="suggestion-backtest">${s.backtest.findings} finding(s)${s.backtest.errors ? `, ${s.backtest.errors} evaluation error(s): ${esc(s.backtest.last_error || "")}` : ""}</p>
        ${days.length ? `<table><thead><tr><th>Day</th><th>Findings</th></tr></thead><tbody>${days.map(([d, n]) => `<tr><td>${esc(d)}</td><td>${n}</td></tr>`).join("")}</tbody></table>` : ""}
        ${s.backtest.examples.length ? `<h3>Examples</h3><pre>${esc(s.backtest.examples.map((k) => JSON.stringify(k)).join("\n"))}</pre>` : ""}
        ${decide ? `<div class="actions spaced"><div class="row"><button id="suggestion-accept">Accept: start this rule</button></div>
          <div class="row"><input id="suggestion-reject-reason" placeholder="Why not (required to reject)"><button id="suggestion-reject" class="secondary">Reject</button></div></div>` : ""}</div>
      <div class="card"><h2>Rule file ${esc(s.file)}</h2><pre id="suggestion-file">${esc(s.rule_file)}</pre></div>
    </div>`;
  if (!decide) return;
  const act = async (path, body) => {
    try { await post(`/api/v1/suggestions/${encodeURIComponent(s.id)}/${path}`, body); showError(""); view.dataset.suggestions = ""; refresh(); } catch (e) { showError(e.message); }
  };
  $("#suggestion-accept").addEventListener("click", () => act("accept"));
  $("#suggestion-reject").addEventListener("click", () => {
    const reason = $("#suggestion-reject-reason").value.trim();
    if (!reason) { showError("say why the suggestion is rejected: the next `fundguard suggest` shows the reason instead of the rule"); return; }
    act("reject", { reason });
  });
}

// ---- audit (admins) -------------------------------------------------------------

async function renderAudit(view) {
  const page = await api("/api/v1/audit?limit=200");
  view.innerHTML = `<table id="audit-table"><thead><tr><th>When</th><th>Who</th><th>From</th><th>What</th><th>On</th><th>Detail</th></tr></thead>
    <tbody>${page.entries.map((e) => `<tr><td>${time(e.at)}</td><td>${esc(e.actor)}${e.role ? ` <span class="muted">(${esc(e.role)})</span>` : ""}</td>
      <td>${esc(e.from)}</td><td>${esc(e.action)}</td><td>${esc(e.target)}</td><td class="muted">${esc(e.detail || "")}</td></tr>`).join("")
      || '<tr><td colspan="6" class="muted">Nothing recorded yet.</td></tr>'}</tbody></table>`;
}

// ---- sources --------------------------------------------------------------------

// A duration in milliseconds as people read it: 850 ms, 4.2 s, 42 s, 3 min 12 s, 2 h 5 min, 3 d 4 h.
function duration(ms) {
  const s = Math.floor(ms / 1000), m = Math.floor(s / 60), h = Math.floor(m / 60), d = Math.floor(h / 24);
  if (ms < 1000) return `${ms} ms`;
  if (s < 10) return `${(Math.floor(ms / 100) / 10).toFixed(1)} s`;
  if (s < 60) return `${s} s`;
  if (m < 60) return `${m} min ${s % 60} s`;
  if (h < 24) return `${h} h ${m % 60} min`;
  return `${d} d ${h % 24} h`;
}

function lag(ms) {
  if (ms === null || ms === undefined) return "—";
  return ms < 0 ? `${duration(-ms)} ahead` : duration(ms);
}

// A source's `state` taken apart: `failed: <why> (retrying in 5s)`, `failed: <why>` (stopped
// for good), `disconnected` (reconnecting with backoff; a reason after `: ` is shown), or a
// state that needs nothing.
function sourceState(state) {
  const text = String(state || "");
  if (text.startsWith("failed: ")) {
    const rest = text.slice("failed: ".length);
    const retry = rest.match(/ \(retrying in ([^()]+)\)$/);
    return retry
      ? { kind: "failed", label: "failed", why: rest.slice(0, retry.index), retry: retry[1] }
      : { kind: "failed", label: "failed", why: rest, retry: null };
  }
  if (text.startsWith("disconnected")) {
    const why = text.slice("disconnected".length).replace(/^: /, "");
    return { kind: "warn", label: "disconnected", why: why || null };
  }
  if (text === "starting") return { kind: "warn", label: text };
  return { kind: "ok", label: text };
}

// The Sources link shows how many sources are failed, disconnected or still starting (what
// holds /readyz back), from any view.
function markSources(sources) {
  const badge = $("#sources-badge");
  const kinds = sources.map((s) => sourceState(s.state).kind);
  const trouble = kinds.filter((k) => k !== "ok").length;
  badge.textContent = String(trouble);
  badge.hidden = trouble === 0;
  badge.classList.toggle("failed", kinds.includes("failed"));
  badge.title = `${trouble} source${trouble === 1 ? "" : "s"} failed, disconnected or starting`;
}

async function renderSources(view) {
  const sources = await api("/api/v1/health");
  markSources(sources);
  const kinds = sources.map((s) => sourceState(s.state).kind);
  const count = (k) => kinds.filter((x) => x === k).length;
  const summary = sources.length
    ? `${count("ok")} of ${sources.length} source${sources.length === 1 ? "" : "s"} healthy` +
      (count("failed") ? ` · <b class="bad">${count("failed")} failed</b>` : "") +
      (count("warn") ? ` · <b class="warn">${count("warn")} disconnected or starting</b>` : "")
    : "No sources configured.";
  const rows = sources.map((s) => {
    const st = sourceState(s.state);
    let state = `<span class="state ${st.kind}">${esc(st.label)}</span>`;
    if (st.kind === "failed") {
      state += `<div class="why">${esc(st.why)}</div>` +
        `<div class="retry">${st.retry ? `retrying in ${esc(st.retry)}` : "stopped: not retrying, restart fundguard once fixed"}</div>`;
    } else if (st.label === "disconnected") {
      const why = st.why || s.last_error;
      state += (why ? `<div class="why">${esc(why)}</div>` : "") + '<div class="retry">reconnecting with backoff</div>';
    }
    const waiting = s.lag_events === null || s.lag_events === undefined ? "" : `<div class="muted">${s.lag_events} waiting upstream</div>`;
    return `
    <tr data-source="${esc(s.name)}" class="source-${st.kind}"><td><b>${esc(s.name)}</b></td><td class="source-state">${state}</td>
      <td class="lag" title="${s.lag_ms ?? ""} ms">${lag(s.lag_ms)}${waiting}</td>
      <td class="commit" title="${esc(s.last_commit_time || "")}">${time(s.last_commit_time)}</td>
      <td class="position">${s.last_position ? `<code>${esc(s.last_position)}</code>` : "—"}</td>
      <td class="events">${s.events}</td><td class="dead-letters${s.dead_letters ? " warn" : ""}">${s.dead_letters}</td>
      <td class="reconnects">${s.reconnects}</td></tr>`;
  });
  view.innerHTML = `<p id="sources-summary">${summary}</p>
    <table id="sources-table"><thead><tr><th>Source</th><th>State</th><th>Lag</th><th>Newest commit</th><th>Last position</th>
    <th>Events</th><th>Dead letters</th><th>Reconnects</th></tr></thead><tbody>${rows.join("")}</tbody></table>`;
}

// ---- shell ----------------------------------------------------------------------

function route() {
  const [, view, id] = (location.hash || "#/alerts").split("/");
  return { view: view || "alerts", id };
}

let busy = false;
async function refresh() {
  if (!state.session || busy) return;
  busy = true;
  const { view, id } = route();
  const el = $("#view");
  if (el.dataset.view !== view + (id || "")) { el.innerHTML = ""; el.dataset.view = view + (id || ""); el.dataset.alert = ""; el.dataset.coverage = ""; el.dataset.suggestions = ""; }
  document.querySelectorAll("#nav a").forEach((a) => a.classList.toggle("active", a.dataset.view === view));
  try {
    if (view === "alerts" && id) await renderAlert(el, id);
    else if (view === "incidents" && id) await renderIncident(el, id);
    else if (view === "incidents") await renderIncidents(el);
    else if (view === "dashboard") await renderDashboard(el);
    else if (view === "rules") await renderRules(el);
    else if (view === "coverage") await renderCoverage(el, id);
    else if (view === "health") await renderHealth(el, id);
    else if (view === "suggestions") await renderSuggestions(el, id);
    else if (view === "sources") await renderSources(el);
    else if (view === "audit" && can("admin")) await renderAudit(el);
    else await renderAlerts(el);
    if (view !== "sources") markSources(await api("/api/v1/health"));
  } catch (e) { showError(e.message); } finally { busy = false; }
}

function render() {
  const logged = !!state.session;
  $("#login").hidden = logged;
  $("#nav").hidden = !logged;
  $("#logout").hidden = !logged;
  $("#view").hidden = !logged;
  $("#nav-audit").hidden = !can("admin");
  const teams = logged && state.session.teams ? `, ${state.session.teams.join(", ")}` : "";
  $("#who").textContent = logged ? `${state.session.user} (${state.session.role}${teams})` : "";
  if (logged) refresh();
}

$("#login").addEventListener("submit", async (e) => {
  e.preventDefault();
  try {
    state.session = await post("/api/v1/login", { user: $("#login-user").value, password: $("#login-password").value });
    showError("");
    render();
  } catch (err) { showError(err.message); }
});

$("#logout").addEventListener("click", async () => {
  try { await post("/api/v1/logout"); } catch (_) { /* the session is gone either way */ }
  state.session = null;
  render();
});

window.addEventListener("hashchange", refresh);
setInterval(refresh, 3000);
api("/api/v1/session").then((s) => { state.session = s; render(); }).catch(() => render());
