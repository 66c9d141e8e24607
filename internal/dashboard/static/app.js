// Stratus dashboard: reads the APIs and /metrics with requests it signs
// itself (SigV4, WebCrypto), polls while the page is visible, and keeps a
// short history in memory for its charts. No data lives on the server for
// it; nothing runs when the tab is hidden.

const POLL_MS = 3000; // metrics, statuses, alerts, the open view
const SLOW_MS = 30000; // function list and usage (cost)
const HISTORY = 120; // samples kept for charts (6 minutes at POLL_MS)
const PAGE = 50; // functions per page

const state = {
  creds: null,
  samples: [], // [{t, m: parsed metrics}]
  functions: [], // ListFunctions
  status: new Map(), // name -> {warm, busy, urls, network}
  usage: new Map(), // name -> usage totals
  usageTotal: null,
  prices: null,
  alerts: [],
  queues: null,
  schedules: [],
  buckets: [],
  node: null,
  filter: "",
  page: 0,
  lastSlow: 0,
  fnDetail: null, // the open function's page data
  logAbort: null,
};

// ---- SigV4 in the browser ----

const enc = new TextEncoder();
const hex = (buf) => [...new Uint8Array(buf)].map((b) => b.toString(16).padStart(2, "0")).join("");
const sha256 = async (s) => hex(await crypto.subtle.digest("SHA-256", enc.encode(s)));
async function hmac(key, msg) {
  const k = await crypto.subtle.importKey("raw", typeof key === "string" ? enc.encode(key) : key, { name: "HMAC", hash: "SHA-256" }, false, ["sign"]);
  return crypto.subtle.sign("HMAC", k, enc.encode(msg));
}
const rfc3986 = (s) => encodeURIComponent(s).replace(/[!'()*]/g, (c) => "%" + c.charCodeAt(0).toString(16).toUpperCase());

function serviceOf(path) {
  if (path.startsWith("/stratus/") || path === "/metrics") return "stratus";
  if (path.startsWith("/v2/")) return "apigateway";
  if (path.startsWith("/schedules")) return "scheduler";
  return "lambda";
}

async function signedHeaders(method, url) {
  const { key, secret, region, token } = state.creds;
  const now = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  const day = now.slice(0, 8);
  const service = serviceOf(url.pathname);
  const path = url.pathname.split("/").map((s) => rfc3986(decodeURIComponent(s))).join("/");
  const query = [...url.searchParams.entries()]
    .map(([k, v]) => [rfc3986(k), rfc3986(v)])
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : 1))
    .map(([k, v]) => k + "=" + v)
    .join("&");
  const payload = await sha256("");
  const headers = { host: url.host, "x-amz-date": now };
  if (token) headers["x-amz-security-token"] = token;
  const names = Object.keys(headers).sort();
  const canonical = [method, path, query, names.map((n) => n + ":" + headers[n] + "\n").join(""), names.join(";"), payload].join("\n");
  const scope = `${day}/${region}/${service}/aws4_request`;
  const toSign = ["AWS4-HMAC-SHA256", now, scope, await sha256(canonical)].join("\n");
  let k = await hmac("AWS4" + secret, day);
  k = await hmac(k, region);
  k = await hmac(k, service);
  k = await hmac(k, "aws4_request");
  const sig = hex(await hmac(k, toSign));
  const out = { "x-amz-date": now, authorization: `AWS4-HMAC-SHA256 Credential=${key}/${scope}, SignedHeaders=${names.join(";")}, Signature=${sig}` };
  if (token) out["x-amz-security-token"] = token;
  return out;
}

class APIError extends Error {}

async function request(path, opts = {}) {
  const url = new URL(path, location.origin);
  const resp = await fetch(url, { headers: await signedHeaders("GET", url), signal: opts.signal });
  if (!resp.ok) {
    let msg = resp.status + " " + resp.statusText;
    try {
      const doc = await resp.json();
      msg = doc.message || doc.Message || msg;
    } catch {}
    if (resp.status === 403) signOut("The key was refused: " + msg);
    throw new APIError(msg);
  }
  return resp;
}
const getJSON = async (path) => (await request(path)).json();
const getText = async (path) => (await request(path)).text();

// ---- metrics ----

// parseMetrics reads Prometheus's text format: name -> [{labels, value}].
function parseMetrics(text) {
  const out = new Map();
  for (const line of text.split("\n")) {
    if (!line || line[0] === "#") continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    if (m[3]) for (const l of m[3].matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2].replace(/\\(.)/g, "$1");
    if (!out.has(m[1])) out.set(m[1], []);
    out.get(m[1]).push({ labels, value: Number(m[4]) });
  }
  return out;
}

// byLabel sums a metric's series by one label (filter picks series).
function byLabel(m, name, label, filter) {
  const out = new Map();
  for (const s of m.get(name) || []) {
    if (filter && !filter(s.labels)) continue;
    const k = s.labels[label] ?? "";
    out.set(k, (out.get(k) || 0) + s.value);
  }
  return out;
}
const total = (m, name) => (m.get(name) || []).reduce((a, s) => a + s.value, 0);

// window is the oldest sample within the last minute, for rates.
function windowPair() {
  const n = state.samples.length;
  if (n === 0) return null;
  const last = state.samples[n - 1];
  let first = state.samples[0];
  for (const s of state.samples) if (last.t - s.t <= 60000) { first = s; break; }
  return { first, last };
}

// quantile of a function's duration histogram between two samples (or
// since the node started, when there is one sample).
function quantile(fn, q, pair) {
  const buckets = (m) => {
    const b = new Map();
    for (const s of m.get("stratus_invocation_duration_seconds_bucket") || []) if (s.labels.function === fn) b.set(s.labels.le, s.value);
    return b;
  };
  const now = buckets(pair.last.m);
  const then = pair.first === pair.last ? new Map() : buckets(pair.first.m);
  const les = [...now.keys()].sort((a, b) => (a === "+Inf" ? 1 : b === "+Inf" ? -1 : Number(a) - Number(b)));
  const counts = les.map((le) => now.get(le) - (then.get(le) || 0));
  const n = counts[counts.length - 1] || 0;
  if (!n) return null;
  const rank = q * n;
  let prevLe = 0, prevC = 0;
  for (let i = 0; i < les.length; i++) {
    if (counts[i] >= rank) {
      if (les[i] === "+Inf") return prevLe;
      const le = Number(les[i]);
      return prevLe + (le - prevLe) * ((rank - prevC) / Math.max(counts[i] - prevC, 1));
    }
    prevLe = les[i] === "+Inf" ? prevLe : Number(les[i]);
    prevC = counts[i];
  }
  return prevLe;
}

function fnStats(name) {
  const pair = windowPair();
  if (!pair) return {};
  const m = pair.last.m;
  const f = (l) => l.function === name;
  const inv = [...byLabel(m, "stratus_invocations_total", "outcome", f).values()].reduce((a, b) => a + b, 0);
  const errors = [...byLabel(m, "stratus_invocations_total", "outcome", (l) => f(l) && (l.outcome === "error" || l.outcome === "timeout")).values()].reduce((a, b) => a + b, 0);
  const initSum = byLabel(m, "stratus_init_duration_seconds_sum", "function").get(name) || 0;
  const initN = byLabel(m, "stratus_init_duration_seconds_count", "function").get(name) || 0;
  const secs = (pair.last.t - pair.first.t) / 1000;
  const invThen = [...byLabel(pair.first.m, "stratus_invocations_total", "outcome", f).values()].reduce((a, b) => a + b, 0);
  return {
    invocations: inv,
    errors,
    throttles: byLabel(m, "stratus_throttles_total", "function").get(name) || 0,
    cold: byLabel(m, "stratus_cold_starts_total", "function").get(name) || 0,
    initMs: initN ? (1000 * initSum) / initN : null,
    rate: secs > 0 ? (inv - invThen) / secs : null,
    p50: quantile(name, 0.5, pair),
    p99: quantile(name, 0.99, pair),
    warm: byLabel(m, "stratus_function_instances", "function", (l) => l.state === "warm").get(name) || 0,
    busy: byLabel(m, "stratus_function_instances", "function", (l) => l.state === "busy").get(name) || 0,
  };
}

// ---- polling ----

let timer = null;
async function poll() {
  clearTimeout(timer);
  if (!state.creds) return;
  if (document.hidden) {
    timer = setTimeout(poll, POLL_MS);
    return;
  }
  try {
    const [metrics, alerts] = await Promise.all([getText("/metrics"), getJSON("/stratus/v1/alerts")]);
    state.samples.push({ t: Date.now(), m: parseMetrics(metrics) });
    if (state.samples.length > HISTORY) state.samples.shift();
    state.alerts = alerts.alerts;
    if (Date.now() - state.lastSlow > SLOW_MS || !state.functions.length) await slowPoll();
    await pollView();
    setStatus("live", "ok");
  } catch (e) {
    setStatus(e.message, "bad");
  }
  render();
  timer = setTimeout(poll, POLL_MS);
}

async function slowPoll() {
  const fns = [];
  let marker = "";
  do {
    const page = await getJSON("/2015-03-31/functions?MaxItems=50" + (marker ? "&Marker=" + encodeURIComponent(marker) : ""));
    fns.push(...page.Functions);
    marker = page.NextMarker || "";
  } while (marker);
  fns.sort((a, b) => (a.FunctionName < b.FunctionName ? -1 : 1));
  state.functions = fns;
  const usage = await getJSON("/stratus/v1/usage");
  state.usage = new Map((usage.functions || []).map((u) => [u.function, u]));
  state.usageTotal = usage.total;
  state.prices = usage.prices;
  state.lastSlow = Date.now();
}

async function pollView() {
  const route = currentRoute();
  const status = await getJSON("/stratus/v1/functions");
  state.status = new Map(status.functions.map((s) => [s.function, s]));
  if (route.view === "queues" || route.view === "functions") state.queues = await getJSON("/stratus/v1/queues");
  if (route.view === "schedules" || route.view === "function") state.schedules = (await getJSON("/stratus/v1/schedules")).schedules;
  if (route.view === "buckets" || route.view === "function") state.buckets = (await getJSON("/stratus/v1/buckets")).buckets;
  if (route.view === "node" || route.view === "functions") state.node = await getJSON("/stratus/v1/node");
  if (route.view === "function") await loadFunction(route.name, false);
}

// ---- rendering helpers ----

const h = (tag, attrs = {}, ...kids) => {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v);
  }
  for (const kid of kids.flat()) if (kid !== null && kid !== undefined) el.append(kid instanceof Node ? kid : String(kid));
  return el;
};
const fmtMs = (s) => (s === null || s === undefined ? "–" : s < 1 ? (s * 1000).toFixed(s < 0.01 ? 2 : 1) + " ms" : s.toFixed(2) + " s");
const fmtNum = (n) => (n === null || n === undefined ? "–" : Number.isInteger(n) ? n.toLocaleString("en-US") : n.toFixed(2));
const fmtUSD = (n) => (n === null || n === undefined ? "–" : "$" + n.toFixed(6));
const fmtBytes = (n) => (n < 0 ? "–" : n < 1024 ? n + " B" : n < 1 << 20 ? (n / 1024).toFixed(1) + " KB" : n < 1 << 30 ? (n / (1 << 20)).toFixed(1) + " MB" : (n / (1 << 30)).toFixed(2) + " GB");
const fmtAge = (s) => (s < 60 ? s.toFixed(0) + " s" : s < 3600 ? (s / 60).toFixed(1) + " min" : (s / 3600).toFixed(1) + " h");
const fmtTime = (t) => (t ? new Date(t).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC") : "–");

// chart draws series of (t, value) as SVG lines, with the latest values.
function chart(title, series, unit = "") {
  const W = 320, H = 90, pad = 4;
  const pts = series.flatMap((s) => s.points);
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", title);
  if (pts.length > 1) {
    const t0 = Math.min(...pts.map((p) => p[0])), t1 = Math.max(...pts.map((p) => p[0]));
    const vmax = Math.max(...pts.map((p) => p[1]), 1e-9);
    series.forEach((s, i) => {
      const line = document.createElementNS("http://www.w3.org/2000/svg", "polyline");
      line.setAttribute("points", s.points.map(([t, v]) => `${pad + ((t - t0) / Math.max(t1 - t0, 1)) * (W - 2 * pad)},${H - pad - (v / vmax) * (H - 2 * pad)}`).join(" "));
      line.setAttribute("class", "line l" + i);
      svg.append(line);
    });
  }
  const legend = h("div", { class: "legend" }, series.map((s, i) => h("span", { class: "key l" + i }, s.name + ": " + (s.points.length ? fmtNum(s.points[s.points.length - 1][1]) + unit : "–"))));
  return h("figure", { class: "card chart-card" }, h("figcaption", {}, title), svg, legend);
}

// history of a derived value over the kept samples.
function seriesOf(fn) {
  const out = [];
  for (let i = 1; i < state.samples.length; i++) {
    const v = fn(state.samples[i - 1], state.samples[i]);
    if (v !== null && v !== undefined && !Number.isNaN(v)) out.push([state.samples[i].t, v]);
  }
  return out;
}
const perSec = (name, filter) => (a, b) => {
  const sum = (s) => (s.m.get(name) || []).filter((x) => !filter || filter(x.labels)).reduce((acc, x) => acc + x.value, 0);
  return Math.max(sum(b) - sum(a), 0) / Math.max((b.t - a.t) / 1000, 0.001);
};
const gaugeOf = (name, filter) => (_, b) => (b.m.get(name) || []).filter((x) => !filter || filter(x.labels)).reduce((acc, x) => acc + x.value, 0);

function setStatus(text, kind) {
  const el = document.getElementById("status");
  el.textContent = text;
  el.className = "status " + kind;
}

// ---- views ----

function currentRoute() {
  const parts = location.hash.replace(/^#\/?/, "").split("/");
  if (parts[0] === "functions" && parts[1]) return { view: "function", name: decodeURIComponent(parts[1]) };
  if (["queues", "schedules", "buckets", "node"].includes(parts[0])) return { view: parts[0] };
  return { view: "functions" };
}

function alertsBanner(filter) {
  const list = state.alerts.filter((a) => !filter || filter(a));
  if (!list.length) return h("div", { class: "alerts none", id: "alerts" }, "No alerts.");
  return h("div", { class: "alerts", id: "alerts" }, h("strong", {}, "Alerts"),
    h("ul", {}, list.map((a) => h("li", { class: "sev-" + a.severity }, h("b", {}, a.name), " ", a.summary))));
}

function renderFunctions() {
  const node = state.node;
  const cards = h("div", { class: "cards" },
    h("div", { class: "card stat" }, h("span", {}, "Functions"), h("b", { id: "stat-functions" }, fmtNum(state.functions.length))),
    h("div", { class: "card stat" }, h("span", {}, "In flight"), h("b", { id: "stat-inflight" }, fmtNum(node ? node.inFlight : null))),
    h("div", { class: "card stat" }, h("span", {}, "Instances"), h("b", {}, fmtNum(node ? node.instances : null))),
    h("div", { class: "card stat" }, h("span", {}, "Cost so far"), h("b", { id: "stat-cost" }, fmtUSD(state.usageTotal ? state.usageTotal.cost : null))),
    h("div", { class: "card stat" }, h("span", {}, "Async pending"), h("b", {}, fmtNum(state.queues ? state.queues.async.pending : null))),
  );
  const charts = h("div", { class: "charts" },
    chart("Invocations per second", [
      { name: "all", points: seriesOf(perSec("stratus_invocations_total")) },
      { name: "errors", points: seriesOf(perSec("stratus_invocations_total", (l) => l.outcome === "error" || l.outcome === "timeout")) },
      { name: "throttles", points: seriesOf(perSec("stratus_throttles_total")) },
    ]),
    chart("Concurrency and instances", [
      { name: "in flight", points: seriesOf(gaugeOf("stratus_inflight_invocations")) },
      { name: "warm", points: seriesOf(gaugeOf("stratus_function_instances", (l) => l.state === "warm")) },
      { name: "busy", points: seriesOf(gaugeOf("stratus_function_instances", (l) => l.state === "busy")) },
      { name: "provisioned", points: seriesOf(gaugeOf("stratus_function_provisioned_instances")) },
    ]),
    chart("Cold starts per second", [{ name: "cold starts", points: seriesOf(perSec("stratus_cold_starts_total")) }]),
  );
  const filter = state.filter.toLowerCase();
  const list = state.functions.filter((f) => f.FunctionName.toLowerCase().includes(filter));
  const pages = Math.max(1, Math.ceil(list.length / PAGE));
  state.page = Math.min(state.page, pages - 1);
  const rows = list.slice(state.page * PAGE, (state.page + 1) * PAGE).map((f) => {
    const s = fnStats(f.FunctionName);
    const u = state.usage.get(f.FunctionName);
    return h("tr", { "data-function": f.FunctionName },
      h("td", {}, h("a", { href: "#/functions/" + encodeURIComponent(f.FunctionName) }, f.FunctionName)),
      h("td", { class: "hide-narrow" }, f.Runtime),
      h("td", { class: "num", "data-col": "invocations" }, fmtNum(s.invocations)),
      h("td", { class: "num", "data-col": "errors" }, fmtNum(s.errors)),
      h("td", { class: "num hide-narrow" }, fmtNum(s.throttles)),
      h("td", { class: "num" }, fmtMs(s.p50)),
      h("td", { class: "num" }, fmtMs(s.p99)),
      h("td", { class: "num hide-narrow", "data-col": "cold" }, fmtNum(s.cold)),
      h("td", { class: "num hide-narrow" }, s.initMs === null || s.initMs === undefined ? "–" : s.initMs.toFixed(1) + " ms"),
      h("td", { class: "num" }, fmtNum(s.warm) + " / " + fmtNum(s.busy)),
      h("td", { class: "num hide-narrow" }, fmtUSD(u ? u.cost : 0)),
    );
  });
  const search = h("input", { type: "search", placeholder: "Search functions", value: state.filter, id: "search", "aria-label": "Search functions",
    oninput: (e) => { state.filter = e.target.value; state.page = 0; render(); document.getElementById("search").focus(); } });
  const pager = h("div", { class: "pager" },
    h("button", { disabled: state.page === 0, onclick: () => { state.page--; render(); } }, "‹ Prev"),
    h("span", {}, `Page ${state.page + 1} of ${pages} · ${list.length} functions`),
    h("button", { disabled: state.page >= pages - 1, onclick: () => { state.page++; render(); } }, "Next ›"));
  return [alertsBanner(), cards, charts,
    h("div", { class: "toolbar" }, search, pager),
    h("div", { class: "table-wrap" }, h("table", { id: "functions" },
      h("thead", {}, h("tr", {}, ["Function", "Runtime", "Invocations", "Errors", "Throttles", "p50", "p99", "Cold starts", "Avg init", "Warm / busy", "Cost"].map((c, i) =>
        h("th", { class: [1, 4, 7, 8, 10].includes(i) ? "hide-narrow" : "" }, c)))),
      h("tbody", {}, rows.length ? rows : h("tr", {}, h("td", { colspan: 11 }, "No functions."))))),
    h("p", { class: "note" }, "Counts are this node's since it started; cost is from usage records, all time, at ",
      state.prices ? `$${state.prices.perMillionRequests} per 1M requests and $${state.prices.perGBSecond} per GB-second.` : "the configured prices.")];
}

async function loadFunction(name, full) {
  const en = encodeURIComponent(name);
  const d = state.fnDetail && state.fnDetail.name === name && !full ? state.fnDetail : { name };
  const [invs] = await Promise.all([getJSON(`/stratus/v1/functions/${en}/invocations`)]);
  d.invocations = invs.invocations;
  if (!d.config || full) {
    const [fn, versions, aliases, urls, mappings, apis] = await Promise.all([
      getJSON(`/2015-03-31/functions/${en}`),
      getJSON(`/2015-03-31/functions/${en}/versions`),
      getJSON(`/2015-03-31/functions/${en}/aliases`),
      getJSON(`/2021-10-31/functions/${en}/urls`),
      getJSON(`/2015-03-31/event-source-mappings?FunctionName=${en}`),
      getJSON(`/v2/apis`),
    ]);
    d.config = fn.Configuration;
    d.versions = versions.Versions;
    d.aliases = aliases.Aliases;
    d.urls = urls.FunctionUrlConfigs;
    d.mappings = mappings.EventSourceMappings;
    d.apis = [];
    for (const api of (apis.items || []).slice(0, 50)) {
      const integ = await getJSON(`/v2/apis/${api.apiId}/integrations`);
      if ((integ.items || []).some((i) => (i.integrationUri || "").includes(":function:" + name) || i.integrationUri === name)) d.apis.push(api);
    }
  }
  state.fnDetail = d;
}

function kv(pairs) {
  return h("dl", { class: "kv" }, pairs.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v ?? "–")]));
}

function renderFunction(name) {
  const d = state.fnDetail;
  const out = [h("p", {}, h("a", { href: "#/" }, "‹ Functions")), h("h1", {}, name), alertsBanner((a) => a.subject === name)];
  if (!d || d.name !== name || !d.config) return [...out, h("p", {}, "Loading…")];
  const c = d.config;
  const s = fnStats(name);
  const st = state.status.get(name) || {};
  const f = (l) => l.function === name;
  out.push(h("div", { class: "cards" },
    h("div", { class: "card stat" }, h("span", {}, "Invocations"), h("b", { id: "fn-invocations" }, fmtNum(s.invocations))),
    h("div", { class: "card stat" }, h("span", {}, "Errors"), h("b", { id: "fn-errors" }, fmtNum(s.errors))),
    h("div", { class: "card stat" }, h("span", {}, "p50 / p99"), h("b", {}, fmtMs(s.p50) + " / " + fmtMs(s.p99))),
    h("div", { class: "card stat" }, h("span", {}, "Cold starts"), h("b", {}, fmtNum(s.cold) + (s.initMs ? ` · ${s.initMs.toFixed(1)} ms init` : ""))),
    h("div", { class: "card stat" }, h("span", {}, "Warm / busy"), h("b", {}, fmtNum(st.warm ?? s.warm) + " / " + fmtNum(st.busy ?? s.busy))),
  ));
  out.push(h("div", { class: "charts" },
    chart("Invocations per second", [
      { name: "all", points: seriesOf(perSec("stratus_invocations_total", f)) },
      { name: "errors", points: seriesOf(perSec("stratus_invocations_total", (l) => f(l) && (l.outcome === "error" || l.outcome === "timeout"))) },
    ]),
    chart("Instances", [
      { name: "warm", points: seriesOf(gaugeOf("stratus_function_instances", (l) => f(l) && l.state === "warm")) },
      { name: "busy", points: seriesOf(gaugeOf("stratus_function_instances", (l) => f(l) && l.state === "busy")) },
      { name: "provisioned", points: seriesOf(gaugeOf("stratus_function_provisioned_instances", f)) },
    ]),
  ));
  out.push(h("section", { class: "card" }, h("h2", {}, "Configuration"), kv([
    ["Runtime", c.Runtime], ["Handler", c.Handler], ["Memory", c.MemorySize + " MB"], ["Timeout", c.Timeout + " s"],
    ["Code", fmtBytes(c.CodeSize)], ["Role", c.Role], ["Last modified", c.LastModified], ["Log format", c.LoggingConfig ? c.LoggingConfig.LogFormat : "Text"],
    ["Network", st.network || "–"], ["Environment", c.Environment ? Object.keys(c.Environment.Variables || {}).join(", ") || "–" : "–"],
  ])));
  out.push(h("section", { class: "card" }, h("h2", {}, "Versions and aliases"),
    h("p", {}, "Versions: ", d.versions.map((v) => v.Version).join(", ")),
    h("p", {}, "Aliases: ", d.aliases.length ? d.aliases.map((a) => `${a.Name} → ${a.FunctionVersion}`).join(", ") : "none")));
  const arn = c.FunctionArn;
  const triggers = [
    ...d.urls.map((u) => ["Function URL", h("a", { href: u.FunctionUrl, rel: "noreferrer" }, u.FunctionUrl), u.AuthType]),
    ...d.apis.map((a) => ["HTTP API", a.name, a.apiEndpoint]),
    ...d.mappings.map((m) => ["Queue", m.EventSourceArn.split(":").pop(), m.State]),
    ...state.schedules.filter((s) => s.target.startsWith(arn.replace(/:\$LATEST$/, "")) || s.target.endsWith(":function:" + name)).map((s) => ["Schedule", s.name + " (" + s.expression + ")", "next " + fmtTime(s.nextRun)]),
    ...state.buckets.filter((b) => (b.targets || []).some((t) => t.endsWith(":function:" + name))).map((b) => ["Bucket", b.name, "on upload"]),
  ];
  out.push(h("section", { class: "card" }, h("h2", {}, "Triggers"), triggers.length
    ? h("table", { id: "triggers" }, h("tbody", {}, triggers.map((t) => h("tr", {}, t.map((x) => h("td", {}, x))))))
    : h("p", {}, "No triggers.")));
  const invs = [...d.invocations].reverse().slice(0, 20);
  out.push(h("section", { class: "card" }, h("h2", {}, "Recent invocations"), h("div", { class: "table-wrap" }, h("table", { id: "invocations" },
    h("thead", {}, h("tr", {}, ["Started", "Request", "Outcome", "Duration", "Billed", "Memory used", "Cold"].map((x) => h("th", {}, x)))),
    h("tbody", {}, invs.map((r) => h("tr", { class: r.o === "success" ? "" : "bad" },
      h("td", {}, fmtTime(r.t)), h("td", { class: "mono" }, r.id || "–"), h("td", {}, r.o), h("td", { class: "num" }, (r.d || 0).toFixed(2) + " ms"),
      h("td", { class: "num" }, (r.b || 0) + " ms"), h("td", { class: "num" }, (r.mm || 0) + " MB"), h("td", {}, r.c ? "cold" : ""))))))));
  const logs = h("section", { class: "card" }, h("h2", {}, "Log (live)"), h("pre", { id: "log" }, state.logText || ""));
  out.push(logs);
  return out;
}

// followLog streams the open function's log into state.logText.
async function followLog(name) {
  if (state.logAbort) state.logAbort.abort();
  const ctl = new AbortController();
  state.logAbort = ctl;
  state.logText = "";
  try {
    const resp = await request(`/stratus/v1/functions/${encodeURIComponent(name)}/logs?follow=true&since=15m`, { signal: ctl.signal });
    const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      state.logText = (state.logText + value).slice(-64 * 1024);
      const pre = document.getElementById("log");
      if (pre) {
        pre.textContent = state.logText;
        pre.scrollTop = pre.scrollHeight;
      }
    }
  } catch (e) {
    if (e.name !== "AbortError") setStatus("log: " + e.message, "bad");
  }
}

function renderQueues() {
  const q = state.queues;
  if (!q) return [h("p", {}, "Loading…")];
  const dead = (c) => (c && c.deadLettered) || 0;
  return [h("h1", {}, "Queues"), alertsBanner((a) => a.name.startsWith("StratusQueue") || a.name.startsWith("StratusDeadLetter") || a.name.startsWith("StratusAsync")),
    h("div", { class: "table-wrap" }, h("table", { id: "queues" },
      h("thead", {}, h("tr", {}, ["Queue", "Visible", "In flight", "Delayed", "Oldest", "Dead-lettered"].map((x) => h("th", {}, x)))),
      h("tbody", {}, q.queues.length ? q.queues.map((r) => h("tr", { "data-queue": r.name }, h("td", {}, r.name), h("td", { class: "num", "data-col": "visible" }, fmtNum(r.visible)),
        h("td", { class: "num" }, fmtNum(r.inFlight)), h("td", { class: "num" }, fmtNum(r.delayed)), h("td", { class: "num" }, r.visible + r.inFlight ? fmtAge(r.oldestAgeSeconds) : "–"),
        h("td", { class: "num" }, fmtNum(dead(r.counts))))) : h("tr", {}, h("td", { colspan: 6 }, "No queues."))))),
    h("section", { class: "card" }, h("h2", {}, "Asynchronous events"), kv([
      ["Pending", fmtNum(q.async.pending)], ["Oldest", q.async.pending ? fmtAge(q.async.oldestAgeSeconds) : "–"],
      ...Object.entries(q.async.counts || {}).map(([k, v]) => [k.replace(/_/g, " "), fmtNum(v)]),
    ]))];
}

function renderSchedules() {
  return [h("h1", {}, "Schedules"), h("div", { class: "table-wrap" }, h("table", { id: "schedules" },
    h("thead", {}, h("tr", {}, ["Schedule", "Group", "Expression", "State", "Target", "Next run"].map((x) => h("th", {}, x)))),
    h("tbody", {}, state.schedules.length ? state.schedules.map((s) => h("tr", {}, h("td", {}, s.name), h("td", {}, s.group), h("td", { class: "mono" }, s.expression),
      h("td", {}, s.state), h("td", { class: "mono" }, s.target.split(":").slice(-2).join(":")), h("td", {}, fmtTime(s.nextRun))))
      : h("tr", {}, h("td", { colspan: 6 }, "No schedules.")))))];
}

function renderBuckets() {
  return [h("h1", {}, "Buckets"), h("div", { class: "table-wrap" }, h("table", { id: "buckets" },
    h("thead", {}, h("tr", {}, ["Bucket", "Objects", "Size", "Uploads in progress", "Notifications", "Created"].map((x) => h("th", {}, x)))),
    h("tbody", {}, state.buckets.length ? state.buckets.map((b) => h("tr", {}, h("td", {}, b.name), h("td", { class: "num" }, fmtNum(b.objects)), h("td", { class: "num" }, fmtBytes(b.bytes)),
      h("td", { class: "num" }, fmtNum(b.uploads)), h("td", {}, (b.targets || []).map((t) => t.split(":").pop()).join(", ") || "–"), h("td", {}, fmtTime(b.created))))
      : h("tr", {}, h("td", { colspan: 6 }, "No buckets.")))))];
}

function renderNode() {
  const n = state.node;
  if (!n) return [h("p", {}, "Loading…")];
  return [h("h1", {}, "Node"), alertsBanner((a) => a.name.startsWith("StratusStore")), h("section", { class: "card" }, kv([
    ["Version", n.version], ["Started", fmtTime(n.started)], ["Store", n.store], ["Store reachable", n.storeUp ? "yes" : "NO"],
    ["Store writable", n.storeWritable ? "yes" : "NO" + (n.storeProblem ? ": " + n.storeProblem : "")],
    ["Store holds", fmtBytes(n.storeUsedBytes) + (n.storeMaxBytes ? " of " + fmtBytes(n.storeMaxBytes) : "")],
    ["Free disk", fmtBytes(n.diskFreeBytes)], ["Instances", fmtNum(n.instances)], ["In flight", fmtNum(n.inFlight) + " of " + fmtNum(n.maxConcurrency)],
    ["Functions", fmtNum(n.functions)],
  ])), h("h2", {}, "Cluster nodes"), h("div", { class: "table-wrap" }, h("table", { id: "nodes" },
    h("thead", {}, h("tr", {}, ["Node", "API", "Started", "Instances", "In flight"].map((x) => h("th", {}, x)))),
    h("tbody", {}, (n.nodes || []).map((m) => h("tr", {}, h("td", {}, m.name + (m.self ? " (this one)" : "")), h("td", {}, m.api || "–"), h("td", {}, fmtTime(m.started)),
      h("td", { class: "num" }, fmtNum(m.instances)), h("td", { class: "num" }, fmtNum(m.inFlight))))))),
  ...(n.replication && n.replication.length ? [h("h2", {}, "Store replication"), h("div", { class: "table-wrap" }, h("table", { id: "replication" },
    h("thead", {}, h("tr", {}, ["Stream", "Replicas", "Current", "Leader", "Health"].map((x) => h("th", {}, x)))),
    h("tbody", {}, n.replication.map((r) => h("tr", {}, h("td", {}, r.name), h("td", { class: "num" }, fmtNum(r.replicas)), h("td", { class: "num" }, fmtNum(r.current)),
      h("td", {}, r.leader || "NONE"), h("td", { class: r.leader && !(r.offline || []).length && !(r.lagging || []).length ? "" : "bad" },
        !r.leader ? "no leader: writes refused" : (r.offline || []).length ? "offline: " + r.offline.join(", ") : (r.lagging || []).length ? "catching up: " + r.lagging.join(", ") : "ok"))))))] : []),
  ];
}

let lastRoute = "";
function render() {
  const view = document.getElementById("view");
  if (!state.creds) return;
  const route = currentRoute();
  const key = JSON.stringify(route);
  if (key !== lastRoute) {
    lastRoute = key;
    if (state.logAbort) state.logAbort.abort();
    if (route.view === "function") {
      state.fnDetail = null;
      loadFunction(route.name, true).then(render, (e) => setStatus(e.message, "bad"));
      followLog(route.name);
    }
  }
  for (const a of document.querySelectorAll("#nav a")) a.classList.toggle("active", a.getAttribute("href") === "#/" + (route.view === "functions" || route.view === "function" ? "" : route.view));
  const content = { functions: renderFunctions, function: () => renderFunction(route.name), queues: renderQueues, schedules: renderSchedules, buckets: renderBuckets, node: renderNode }[route.view]();
  const active = document.activeElement && document.activeElement.id;
  view.replaceChildren(...content);
  if (active === "search") {
    const s = document.getElementById("search");
    s.focus();
    s.setSelectionRange(s.value.length, s.value.length);
  }
}

// ---- sign-in ----

function signIn(creds) {
  state.creds = creds;
  sessionStorage.setItem("stratus-creds", JSON.stringify(creds));
  document.getElementById("login").hidden = true;
  document.getElementById("logout").hidden = false;
  poll();
}

function signOut(why) {
  state.creds = null;
  sessionStorage.removeItem("stratus-creds");
  document.getElementById("login").hidden = false;
  document.getElementById("logout").hidden = true;
  document.getElementById("view").replaceChildren();
  document.getElementById("login-error").textContent = why || "";
  setStatus("signed out", "bad");
}

function start() {
  // stratus dashboard hands the key over in the fragment, which no
  // request carries; it is taken out of the address at once.
  const frag = new URLSearchParams(location.hash.replace(/^#/, ""));
  if (frag.get("key") && frag.get("secret")) {
    const creds = { key: frag.get("key"), secret: frag.get("secret"), region: frag.get("region") || "us-east-1" };
    history.replaceState(null, "", location.pathname + "#/");
    signIn(creds);
  } else {
    const saved = sessionStorage.getItem("stratus-creds");
    if (saved) signIn(JSON.parse(saved));
    else signOut();
  }
  document.getElementById("login-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const f = new FormData(e.target);
    signIn({ key: f.get("key").trim(), secret: f.get("secret").trim(), region: f.get("region").trim() });
  });
  document.getElementById("logout").addEventListener("click", () => signOut());
  addEventListener("hashchange", () => { render(); poll(); });
  document.addEventListener("visibilitychange", () => { if (!document.hidden) poll(); });
}

start();
