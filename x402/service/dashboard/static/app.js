// The dashboard's pages: every read and every action is a call to the service's JSON API (/v1/...), with the
// session cookie as the credential and the session's CSRF token on every state-changing request. The API decides
// what the signed-in key may do; this script only shows the answer (including a refusal).
"use strict";

const PREFIX = "/dashboard";
const CSRF = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
const TENANT = document.body.dataset.tenant || "";
const DECIMALS = 6; // stablecoins (USDC and the dev token) use 6 decimals; amounts are shown with the atomic figure

class ApiError extends Error {
  constructor(status, doc) {
    super((doc && doc.detail) || `HTTP ${status}`);
    this.status = status;
    this.code = doc && doc.code;
    this.doc = doc;
  }
}

async function api(method, path, body) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") headers["X-CSRF-Token"] = CSRF;
  const opts = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    opts.body = JSON.stringify(body);
  }
  const r = await fetch(path, opts);
  const text = await r.text();
  let doc = null;
  try { doc = text ? JSON.parse(text) : null; } catch (e) { doc = { detail: text }; }
  if (r.status === 401 && doc && /^session_/.test(doc.code || "")) {
    location.assign(`${PREFIX}/login?next=${encodeURIComponent(location.pathname + location.search)}`);
  }
  if (!r.ok) throw new ApiError(r.status, doc);
  return doc;
}

function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c instanceof Node ? c : String(c));
  return e;
}

function flash(message, kind) {
  const box = document.getElementById("flash");
  box.textContent = "";
  box.className = kind || "ok";
  box.append(el("p", { text: message }));
}

function failure(err) {
  const code = err.code ? ` (${err.code})` : "";
  flash(`${err.message}${code}`, "error");
}

function units(atomic) {
  let n;
  try { n = BigInt(String(atomic)); } catch (e) { n = BigInt(Math.round(Number(atomic) || 0)); }
  const neg = n < 0n; if (neg) n = -n;
  const base = 10n ** BigInt(DECIMALS);
  const frac = (n % base).toString().padStart(DECIMALS, "0").replace(/0+$/, "");
  return `${neg ? "-" : ""}${n / base}${frac ? "." + frac : ""}`;
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toLocaleString();
}

function short(s) {
  s = String(s || "");
  return s.length > 14 ? `${s.slice(0, 8)}…${s.slice(-4)}` : s;
}

function statusBadge(status) {
  const good = ["success", "valid", "verified", "active", "approved", "allow", "accept", "low", "delivered"].includes(status);
  const bad = ["failed", "invalid", "paused", "rejected", "revoked", "deny", "block", "high", "dead", "disabled"].includes(status);
  return el("span", { class: `badge ${good ? "good" : bad ? "bad" : "warn"}`, text: status });
}

function rows(tbody, items, render, empty) {
  tbody.textContent = "";
  if (!items.length) {
    const cols = tbody.closest("table").querySelectorAll("thead th").length;
    tbody.append(el("tr", {}, el("td", { colspan: cols, class: "muted", text: empty })));
    return;
  }
  for (const item of items) tbody.append(render(item));
}

function paymentRow(p) {
  return el("tr", {},
    el("td", {}, el("a", { href: `${PREFIX}/payments/${p.id}`, text: when(p.createdAt) })),
    el("td", { text: p.kind }),
    el("td", {}, statusBadge(p.status)),
    el("td", { class: "num", title: `${p.amount} atomic units of ${p.asset}`, text: units(p.amount) }),
    el("td", { class: "mono", title: p.payer || "", text: short(p.payer) }),
    el("td", { text: p.network }));
}

function guard(fn) {
  return async (...args) => {
    try { await fn(...args); } catch (err) { failure(err); }
  };
}

function button(label, handler, attrs) {
  return el("button", { type: "button", ...(attrs || {}), onclick: guard(handler) }, label);
}

// ---- overview -------------------------------------------------------------------------------------------------

function chart(target, title, xs, series) {
  if (!window.uPlot) return;
  target.textContent = "";
  const width = Math.max(280, target.clientWidth || 600);
  const colors = ["#1f5fbf", "#b3261e", "#1e6b34"];
  const opts = {
    width, height: 220, title: undefined,
    scales: { x: { time: true } },
    series: [{}, ...series.map((s, i) => ({ label: s.label, stroke: s.color || colors[i], width: 2, fill: i === 0 ? "rgba(31,95,191,.12)" : undefined }))],
    axes: [{}, { size: 60 }],
  };
  new window.uPlot(opts, [xs, ...series.map((s) => s.values)], target);
  target.setAttribute("aria-label", `${title}: ${series.map((s) => `${s.label} total ${s.values.reduce((a, b) => a + (b || 0), 0)}`).join(", ")}`);
}

async function overview() {
  const warnings = [];
  const latest = document.querySelector("#latest tbody");
  const [usage, wallets, pending, recent] = await Promise.all([
    api("GET", "/v1/usage").catch((e) => { warnings.push(`Usage unavailable: ${e.message}`); return null; }),
    api("GET", "/v1/wallets").catch(() => ({ wallets: [] })),
    api("GET", "/v1/payments?status=pending&limit=100").catch(() => ({ data: [] })),
    api("GET", "/v1/payments?limit=10").catch((e) => { failure(e); return { data: [] }; }),
  ]);
  rows(latest, recent.data, paymentRow, "No payments yet.");
  if (usage) {
    const q = usage.quota;
    document.getElementById("t-total").textContent = usage.total;
    document.getElementById("t-payers").textContent = usage.uniquePayers;
    const share = q.limit ? Math.round((100 * q.used) / q.limit) : 0;
    document.getElementById("t-quota").textContent = `${share}% (${q.used} / ${q.limit})`;
    if (q.limit && q.used >= 0.8 * q.limit) warnings.push(`Quota: ${q.used} of ${q.limit} verifications used this month (${q.tier} tier).`);
  }
  for (const w of wallets.wallets || []) {
    if (w.status === "paused") warnings.push(`Wallet “${w.name}” is paused.`);
    const approvals = await api("GET", `/v1/wallets/${w.id}/approvals?status=pending`).catch(() => ({ approvals: [] }));
    if (approvals.approvals.length) warnings.push(`Wallet “${w.name}” has ${approvals.approvals.length} payment(s) waiting for approval.`);
  }
  if (pending.data.length) warnings.push(`${pending.data.length} settlement(s) pending on chain.`);
  const list = document.getElementById("warnings");
  list.textContent = "";
  if (!warnings.length) list.append(el("li", { class: "muted", text: "Nothing needs your attention." }));
  for (const w of warnings) list.append(el("li", { class: "warn", text: w }));
  await overviewCharts();
}

async function overviewCharts() {
  const to = new Date();
  const from = new Date(to.getTime() - 13 * 86400000);
  from.setHours(0, 0, 0, 0);
  const tz = Intl.DateTimeFormat().resolvedOptions().timeZone || "UTC";
  const q = new URLSearchParams({ interval: "day", from: from.toISOString(), to: to.toISOString(), tz });
  let series;
  try {
    series = await api("GET", `/v1/analytics/timeseries?${q}`);
  } catch (err) {
    for (const id of ["chart-revenue", "chart-payments"]) document.getElementById(id).textContent = `Charts unavailable: ${err.message}`;
    return;
  }
  const points = series.points || [];
  const xs = points.map((p) => Date.parse(p.bucket) / 1000);
  const usd = points.map((p) => Number(p.usd || 0));
  document.getElementById("t-usd").textContent = `$${usd.reduce((a, b) => a + b, 0).toFixed(2)}`;
  // USD counts known stablecoins only; the token figure (6-decimal units, every asset) also shows test tokens
  const tokens = points.map((p) => (p.volume || []).reduce((a, v) => a + Number(v.amount) / 10 ** DECIMALS, 0));
  chart(document.getElementById("chart-revenue"), "Revenue per day", xs, [
    { label: "USD", values: usd },
    { label: "tokens", values: tokens, color: "#1e6b34" },
  ]);
  chart(document.getElementById("chart-payments"), "Payments per day", xs, [
    { label: "succeeded", values: points.map((p) => p.succeeded || 0) },
    { label: "failed", values: points.map((p) => p.failed || 0) },
  ]);
}

// ---- payments -------------------------------------------------------------------------------------------------

async function payments() {
  const params = new URLSearchParams(location.search);
  const form = document.getElementById("filters");
  const q = new URLSearchParams({ limit: "25" });
  for (const [k, v] of params) {
    if (!v) continue;
    const field = form.elements.namedItem(k);
    if (field) field.value = v;
    if (k === "from" || k === "to") {
      const d = new Date(`${v}T00:00:00`);
      if (k === "to") d.setDate(d.getDate() + 1); // the day named is included
      q.set(k, d.toISOString());
    } else q.set(k, v);
  }
  const page = await api("GET", `/v1/payments?${q}`);
  rows(document.querySelector("#payments tbody"), page.data, paymentRow, "No payments match.");
  if (params.get("cursor")) document.getElementById("first-page").hidden = false;
  if (page.hasMore && page.nextCursor) {
    const next = new URLSearchParams(params);
    next.set("cursor", page.nextCursor);
    const link = document.getElementById("next-page");
    link.href = `${PREFIX}/payments?${next}`;
    link.hidden = false;
  }
}

function kv(dl, pairs) {
  dl.textContent = "";
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === "") continue;
    dl.append(el("dt", { text: k }), el("dd", {}, v instanceof Node ? v : String(v)));
  }
}

async function payment() {
  const id = document.getElementById("payment").dataset.id;
  let p;
  try { p = await api("GET", `/v1/payments/${id}`); } catch (err) {
    kv(document.getElementById("record"), [["Error", err.message]]);
    return;
  }
  kv(document.getElementById("record"), [
    ["Id", p.id], ["Time", when(p.createdAt)], ["Kind", p.kind], ["Status", statusBadge(p.status)],
    ["Amount", `${units(p.amount)} (${p.amount} atomic units)`], ["Asset", p.asset], ["Network", p.network],
    ["Payer", p.payer], ["Pay to", p.payTo], ["Resource", p.resource], ["Reason", p.reason],
  ]);
  kv(document.getElementById("onchain"), p.transaction
    ? [["Transaction", el("code", { class: "mono", text: p.transaction })], ["Network", p.network],
       ["Settled", p.kind === "settle" ? (p.status === "success" ? "yes" : p.status) : "n/a (not a settlement)"]]
    : [["Transaction", p.kind === "verify" ? "none: a verification moves no money" : "none recorded"]]);
  const risk = p.risk;
  kv(document.getElementById("risk"), risk
    ? [["Recommendation", statusBadge(risk.recommendation)], ["Level", risk.level || "–"], ["Flags", risk.flags.length ? risk.flags.join(", ") : "none"]]
    : [["Assessment", "none recorded: the risk stage did not assess this payment"], ["Reason", p.reason]]);
}

// ---- resources ------------------------------------------------------------------------------------------------

async function resources() {
  const page = await api("GET", "/discovery/resources?limit=50");
  const ids = await Promise.all((page.items || []).map((it) => it.id ? Promise.resolve(it) : Promise.resolve(it)));
  rows(document.querySelector("#resources tbody"), ids, (it) => {
    const ver = (it.verification && it.verification.status) || (it.quality && it.quality.verification) || "unverified";
    const live = it.liveness || (it.quality && it.quality.liveness) || {};
    const uptime = live.uptime !== undefined ? `${Math.round(100 * live.uptime)}%` : live.status || "–";
    const price = it.minPrice || ((it.accepts || [])[0] || {}).amount || ((it.accepts || [])[0] || {}).maxAmountRequired || "–";
    const nets = [...new Set((it.accepts || []).map((a) => a.network))].join(", ");
    return el("tr", {},
      el("td", {}, el("span", { class: "mono", text: it.resource }), el("br"), el("small", { text: it.description || "" })),
      el("td", { class: "num", text: price }), el("td", { text: nets }), el("td", {}, statusBadge(ver)), el("td", { text: uptime }),
      el("td", {}, it.id ? button("Verify", async () => {
        await api("POST", `/v1/resources/${it.id}/verify`, {});
        flash("Verification ran; reloading.");
        await resources();
      }, { "aria-label": `Verify ${it.resource}` }) : ""));
  }, "The registry lists no resources yet.");
}

// ---- wallets --------------------------------------------------------------------------------------------------

function bar(label, used, cap) {
  const u = Number(used), c = Number(cap);
  const id = `b-${Math.random().toString(36).slice(2)}`;
  return el("div", { class: "bar" },
    el("label", { for: id, text: `${label}: ${units(used)} of ${units(cap)}` }),
    el("progress", { id, max: String(c || 1), value: String(Math.min(u, c || u)) }, `${u}/${c}`));
}

async function wallets() {
  const root = document.getElementById("wallets");
  const doc = await api("GET", "/v1/wallets");
  root.textContent = "";
  if (!doc.wallets.length) root.append(el("p", { class: "muted", text: "No wallets yet (create them with POST /v1/wallets)." }));
  for (const w of doc.wallets) root.append(await walletCard(w));
}

async function walletCard(w) {
  const card = document.getElementById("wallet-tpl").content.firstElementChild.cloneNode(true);
  card.id = `wallet-${w.id}`;
  card.querySelector(".w-name").textContent = w.name || w.id;
  card.querySelector(".w-status").replaceWith(statusBadge(w.status));
  card.querySelector(".w-address").textContent = Object.entries(w.addresses || {}).map(([k, v]) => `${k}: ${v}`).join("  ");
  const pauseBtn = card.querySelector(".w-pause"), resumeBtn = card.querySelector(".w-resume");
  pauseBtn.hidden = w.status === "paused";
  resumeBtn.hidden = w.status !== "paused";
  pauseBtn.setAttribute("aria-label", `Pause wallet ${w.name}`);
  resumeBtn.setAttribute("aria-label", `Resume wallet ${w.name}`);
  const reload = async (msg) => { flash(msg); card.replaceWith(await walletCard(await api("GET", `/v1/wallets/${w.id}`))); };
  pauseBtn.addEventListener("click", guard(async () => { await api("POST", `/v1/wallets/${w.id}/pause`, { reason: "paused from the dashboard" }); await reload(`Wallet “${w.name}” paused.`); }));
  resumeBtn.addEventListener("click", guard(async () => { await api("POST", `/v1/wallets/${w.id}/resume`, {}); await reload(`Wallet “${w.name}” resumed.`); }));
  const [budget, approvals, pending] = await Promise.all([
    api("GET", `/v1/wallets/${w.id}/budget`).catch((e) => ({ error: e.message })),
    api("GET", `/v1/wallets/${w.id}/approvals?status=pending`).catch(() => ({ approvals: [] })),
    api("GET", `/v1/wallets/${w.id}/payments?status=pending`).catch(() => ({ payments: [] })),
  ]);
  const bars = card.querySelector(".w-budget");
  const caps = Object.entries(budget).filter(([, v]) => v && typeof v === "object" && "cap" in v);
  if (budget.error) bars.append(el("p", { class: "error", text: budget.error }));
  else if (!caps.length) bars.append(el("p", { class: "muted", text: "No caps set." }));
  for (const [name, c] of caps) bars.append(bar(name, c.used, c.cap));
  const al = card.querySelector(".w-approvals");
  if (!approvals.approvals.length) al.append(el("li", { class: "muted", text: "None." }));
  for (const a of approvals.approvals) {
    al.append(el("li", { class: "row" },
      el("span", { text: `${units(a.amount)} to ${short(a.payTo)} for ${a.url}` }),
      button("Approve", async () => { await api("POST", `/v1/wallets/${w.id}/approvals/${a.id}/approve`, {}); await reload("Payment approved: the agent may now retry it."); }, { "aria-label": `Approve payment of ${units(a.amount)} to ${a.url}` }),
      button("Reject", async () => { await api("POST", `/v1/wallets/${w.id}/approvals/${a.id}/reject`, {}); await reload("Payment rejected."); }, { class: "secondary", "aria-label": `Reject payment of ${units(a.amount)} to ${a.url}` })));
  }
  const pl = card.querySelector(".w-pending");
  const pend = (pending.payments || []).filter((p) => p.status === "pending" || p.status === "unknown");
  if (!pend.length) pl.append(el("li", { class: "muted", text: "None." }));
  for (const p of pend) pl.append(el("li", { text: `${units(p.amount)} to ${short(p.payTo)} (${p.status}) ${p.url || ""}` }));
  return card;
}

// ---- API keys -------------------------------------------------------------------------------------------------

function showSecret(value) {
  const box = document.getElementById("new-key");
  document.getElementById("new-key-value").textContent = value;
  box.hidden = false;
  box.focus();
}

async function keys() {
  const doc = await api("GET", `/v1/tenants/${TENANT}/keys`);
  rows(document.querySelector("#keys tbody"), doc.data, (k) => el("tr", { "data-prefix": k.prefix },
    el("td", { text: k.name || "–" }), el("td", { class: "mono", text: k.prefix }), el("td", { text: k.mode }),
    el("td", { text: (k.scopes || []).join(", ") }), el("td", { text: when(k.createdAt) }),
    el("td", {}, statusBadge(k.revokedAt ? "revoked" : "active")),
    el("td", { class: "actions" }, k.revokedAt ? "" : button("Rotate", async () => {
      const out = await api("POST", `/v1/keys/${k.id}/rotate`, { gracePeriodSeconds: 0 });
      showSecret(out.key);
      await keys();
    }, { class: "secondary", "aria-label": `Rotate key ${k.prefix}` }),
    k.revokedAt ? "" : button("Revoke", async () => {
      if (!confirm(`Revoke key ${k.prefix}? Clients using it stop working at once.`)) return;
      await api("DELETE", `/v1/keys/${k.id}`);
      flash(`Key ${k.prefix} revoked.`);
      await keys();
    }, { class: "danger", "aria-label": `Revoke key ${k.prefix}` }))), "No keys.");
}

function setupKeyForm() {
  const form = document.getElementById("create-key");
  form.addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const out = await api("POST", `/v1/tenants/${TENANT}/keys`, {
      name: data.get("name"), mode: data.get("mode"), scopes: data.getAll("scopes"),
    });
    form.reset();
    showSecret(out.key);
    await keys();
  }));
  document.getElementById("copy-key").addEventListener("click", guard(async () => {
    await navigator.clipboard.writeText(document.getElementById("new-key-value").textContent);
    flash("Copied to the clipboard.");
  }));
}

// ---- webhooks -------------------------------------------------------------------------------------------------

async function webhooks() {
  const [hooks, dead] = await Promise.all([api("GET", "/v1/webhooks"), api("GET", "/v1/webhooks/dead-letters")]);
  // the webhook machinery with delivery logs, ping and replay answers endpoints with `consecutiveFailures`; the older
  // wallet-webhook API has endpoints and dead letters only, so those buttons are offered only where they exist
  const machinery = hooks.webhooks.some((h) => "consecutiveFailures" in h) || dead.deadLetters.some((d) => "deliveryStatus" in d);
  rows(document.querySelector("#webhooks tbody"), hooks.webhooks, (h) => el("tr", { "data-id": h.id },
    el("td", { class: "mono", text: h.url }), el("td", { text: (h.events && h.events.length ? h.events : ["all"]).join(", ") }),
    el("td", {}, statusBadge(h.active === false ? "disabled" : "active")), el("td", { text: when(h.createdAt) }),
    el("td", { class: "actions" },
      machinery ? button("Ping", async () => { await api("POST", `/v1/webhooks/${h.id}/ping`, {}); flash("Ping queued."); await showDeliveries(h); }, { class: "secondary", "aria-label": `Ping ${h.url}` }) : "",
      machinery ? button("Deliveries", () => showDeliveries(h), { class: "secondary", "aria-label": `Deliveries to ${h.url}` }) : "",
      button("Remove", async () => {
        if (!confirm(`Remove the endpoint ${h.url} with its queue and dead letters?`)) return;
        await api("DELETE", `/v1/webhooks/${h.id}`); flash("Endpoint removed."); await webhooks();
      }, { class: "danger", "aria-label": `Remove endpoint ${h.url}` }))),
  "No endpoints.");
  const urls = Object.fromEntries(hooks.webhooks.map((h) => [h.id, h.url]));
  rows(document.querySelector("#dead-letters tbody"), dead.deadLetters, (d) => el("tr", {},
    el("td", { text: when(d.createdAt) }), el("td", { text: `${d.type || ""} → ${urls[d.endpointId] || d.endpointId || ""}` }),
    el("td", { class: "num", text: d.attempts }), el("td", { text: `${d.responseCode || ""} ${d.lastError || ""}` }),
    el("td", {}, statusBadge(d.deliveryStatus || "dead")),
    el("td", {}, !machinery ? "" : button("Replay", async () => { await api("POST", `/v1/webhooks/dead-letters/${d.id}/replay`, {}); flash("Delivery queued again."); await webhooks(); }, { "aria-label": `Replay ${d.type} to ${urls[d.endpointId] || "endpoint"}` }))),
  "No failed deliveries.");
  document.getElementById("replay-all").hidden = !(machinery && dead.deadLetters.length);
}

async function showDeliveries(h) {
  const doc = await api("GET", `/v1/webhooks/${h.id}/deliveries?limit=20`);
  const card = document.getElementById("deliveries-card");
  card.hidden = false;
  card.querySelector("h2").textContent = `Deliveries to ${h.url}`;
  rows(document.querySelector("#deliveries tbody"), doc.deliveries, (d) => el("tr", {},
    el("td", { text: when(d.lastAttemptAt || d.createdAt) }), el("td", { text: d.type }), el("td", {}, statusBadge(d.status)),
    el("td", { class: "num", text: d.attempts }), el("td", { text: `${d.responseCode || ""} ${d.lastError || d.responseExcerpt || ""}` })),
  "No deliveries yet.");
}

function setupWebhookForm() {
  const form = document.getElementById("create-webhook");
  form.addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    const out = await api("POST", "/v1/webhooks", { url: new FormData(form).get("url") });
    form.reset();
    flash(`Endpoint added. Its signing secret (shown once): ${out.secret}`);
    await webhooks();
  }));
  document.getElementById("replay-all").addEventListener("click", guard(async () => {
    const out = await api("POST", "/v1/webhooks/dead-letters/replay", {});
    flash(`Queued again: ${out.replayed !== undefined ? out.replayed : JSON.stringify(out)}.`);
    await webhooks();
  }));
}

// ---- risk -----------------------------------------------------------------------------------------------------

async function risk() {
  const [rules, lists, audit] = await Promise.all([api("GET", "/v1/risk/rules"), api("GET", "/v1/risk/lists"), api("GET", "/v1/risk/audit")]);
  const area = document.getElementById("rules");
  if (!area.dataset.loaded) { area.value = JSON.stringify(rules.rules || {}, null, 2); area.dataset.loaded = "1"; }
  const root = document.getElementById("lists");
  root.textContent = "";
  for (const [name, addrs] of Object.entries(lists)) {
    const ul = el("ul", { class: "list" });
    if (!addrs.length) ul.append(el("li", { class: "muted", text: "empty" }));
    for (const a of addrs) ul.append(el("li", { class: "row" }, el("span", { class: "mono", text: a }),
      button("Remove", async () => { await api("DELETE", `/v1/risk/lists/${name}`, { addresses: [a] }); flash(`Removed from ${name}.`); await risk(); }, { class: "secondary", "aria-label": `Remove ${a} from ${name}` })));
    root.append(el("section", {}, el("h3", { text: name }), ul));
  }
  const al = document.getElementById("risk-audit");
  al.textContent = "";
  if (!audit.length) al.append(el("li", { class: "muted", text: "No changes yet." }));
  for (const a of audit.slice(0, 20)) al.append(el("li", { text: `${when(a.at || a.createdAt)} ${a.actor || ""} ${a.action || a.change || JSON.stringify(a)}` }));
}

function setupRiskForms() {
  const form = document.getElementById("rules-form");
  const errorBox = document.getElementById("rules-error");
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errorBox.hidden = true;
    let doc;
    try { doc = JSON.parse(document.getElementById("rules").value || "{}"); } catch (e) {
      errorBox.textContent = `Not valid JSON: ${e.message}`; errorBox.hidden = false; return;
    }
    try {
      const out = await api("PUT", "/v1/risk/rules", doc);
      flash(`Rules saved (version ${out.version}).`);
      await risk();
    } catch (err) {
      errorBox.textContent = `${err.message}${err.code ? ` (${err.code})` : ""}`;
      errorBox.hidden = false;
      document.getElementById("rules").focus();
    }
  });
  const lf = document.getElementById("list-form");
  lf.addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    const data = new FormData(lf);
    await api("POST", `/v1/risk/lists/${data.get("list")}`, { addresses: [data.get("address")] });
    lf.reset();
    flash("Address added.");
    await risk();
  }));
}

// ---- usage ----------------------------------------------------------------------------------------------------

async function usage() {
  const u = await api("GET", "/v1/usage");
  const q = u.quota;
  document.getElementById("quota-text").textContent = `${q.used} of ${q.limit} verifications used in ${q.period} (${q.tier} tier)${q.overage ? `, ${q.overage} over` : ""}.`;
  const barEl = document.getElementById("quota-bar");
  barEl.max = q.limit || 1;
  barEl.value = Math.min(q.used, q.limit || q.used);
  const counts = [];
  for (const [kind, st] of Object.entries(u.counts)) for (const [status, n] of Object.entries(st)) counts.push({ kind, status, n });
  rows(document.querySelector("#counts tbody"), counts, (c) => el("tr", {}, el("td", { text: c.kind }), el("td", {}, statusBadge(c.status)), el("td", { class: "num", text: c.n })), "No records this month.");
  rows(document.querySelector("#volume tbody"), u.volume, (v) => el("tr", {}, el("td", { text: v.network }), el("td", { class: "mono", text: short(v.asset) }), el("td", { class: "num", text: v.count }), el("td", { class: "num", text: v.amount })), "No volume this month.");
  document.getElementById("payers").textContent = `${u.uniquePayers} unique payers, ${u.repeatPayers} paid more than once (repeat rate ${(100 * u.repeatRate).toFixed(1)}%).`;
}

function setupRegisterForm() {
  const form = document.getElementById("register");
  form.addEventListener("submit", guard(async (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    await api("POST", "/v1/resources", { resource: data.get("resource"), description: data.get("description") || undefined });
    form.reset();
    flash("Resource registered.");
    await resources();
  }));
}

const PAGES = {
  overview, payments, payment, wallets, usage,
  resources: async () => { setupRegisterForm(); await resources(); },
  keys: async () => { setupKeyForm(); await keys(); },
  webhooks: async () => { setupWebhookForm(); await webhooks(); },
  risk: async () => { setupRiskForms(); await risk(); },
};

document.addEventListener("DOMContentLoaded", () => {
  const run = PAGES[document.body.dataset.page];
  if (run) guard(run)().finally(() => document.body.setAttribute("data-ready", "1"));
});
