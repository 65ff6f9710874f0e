/*
 * CX dashboard: one shell, five views chosen by the path (/dashboard/, /breakdowns, /journey,
 * /explorer, /transcript). Every number comes from the JSON API; the date range and the
 * explorer's filters live in the query string, so every view is a shareable link.
 * CSP-safe: no inline code, no innerHTML; data is rendered with textContent only.
 * Charts: Chart.js 4 (vendored, /static/vendor/chartjs/, global `Chart`).
 */

const STAGES = ["discovery", "research", "purchase", "use", "support"];
const CHANNELS = ["website_chat", "support", "call_center", "email", "social", "storefront"];
const KINDS = ["csat", "ces", "nps", "comment", "complaint", "praise", "discovery_source", "churn_reason"];
const THEMES = ["delivery", "product_quality", "price", "support", "website", "billing", "returns", "subscription"];
const DIMENSIONS = [
  ["stage", "Stage"], ["channel", "Channel"], ["product", "Product"],
  ["acquisition_source", "Acquisition source"], ["trigger", "Survey trigger"],
];
// Explorer filter a breakdown row opens.
const DIMENSION_FILTER = {
  stage: "stage", channel: "channel", product: "product", acquisition_source: "acquisition", trigger: "trigger",
};
const FILTER_KEYS = ["stage", "channel", "kind", "score_min", "score_max", "sentiment", "theme", "product", "q", "trigger", "acquisition", "customer"];
const METRICS = {
  csat: { label: "CSAT %", value: (m) => m.csat.percent, better: 1 },
  nps: { label: "NPS", value: (m) => m.nps.score, better: 1 },
  ces: { label: "CES", value: (m) => m.ces.mean, better: -1 },
  response_rate: { label: "Response rate %", value: (m) => m.response_rate.percent, better: 1 },
  volume: { label: "Feedback volume", value: (m) => m.volume, better: 0 },
  sentiment: { label: "Sentiment", value: (m) => m.sentiment.mean, better: 1 },
};

const charts = {};
const params = new URLSearchParams(location.search);

// ---- helpers ---------------------------------------------------------------------------
function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}
function clear(node) { while (node.firstChild) node.removeChild(node.firstChild); }
function byId(id) { return document.getElementById(id); }
function fmt(value, digits) {
  if (value === null || value === undefined) return "–";
  return typeof value === "number" && digits !== undefined ? value.toFixed(digits) : String(value);
}
function status(text, kind) {
  const node = byId("status");
  node.textContent = text || "";
  node.className = "status" + (kind ? " status--" + kind : "");
}
function isoDay(date) { return date.toISOString().slice(0, 10); }

function rangeParams() {
  const out = new URLSearchParams();
  const today = new Date();
  const from = params.get("from") || isoDay(new Date(today.getTime() - 89 * 86400000));
  out.set("from", from);
  out.set("to", params.get("to") || isoDay(today));
  out.set("tz", params.get("tz") || "UTC");
  return out;
}

async function api(path, query) {
  const url = "/api/" + path + (query ? "?" + query.toString() : "");
  const response = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.status === 401) {
    location.assign("/console/login?next=" + encodeURIComponent(location.pathname + location.search));
    throw new Error("Please sign in.");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new Error(body && body.error ? body.error.message : "Request failed (" + response.status + ").");
  }
  return body;
}

function explorerUrl(filter) {
  const query = rangeParams();
  Object.entries(filter || {}).forEach(([key, value]) => { if (value !== null && value !== "") query.set(key, value); });
  return "/dashboard/explorer?" + query.toString();
}

function drawChart(canvasId, config) {
  if (charts[canvasId]) charts[canvasId].destroy();
  if (typeof Chart === "undefined") { status("The charting library did not load.", "error"); return; }
  config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false }, config.options || {});
  charts[canvasId] = new Chart(byId(canvasId), config);
}

// ---- overview ----------------------------------------------------------------------------
function kpi(key, current, previous) {
  const meta = METRICS[key];
  const card = el("div", "kpi");
  card.id = "kpi-" + key;
  const now = meta.value(current), before = meta.value(previous);
  const value = el("div", "kpi__value", fmt(now));
  value.dataset.value = now === null ? "" : String(now);
  let note = "previous period: " + fmt(before);
  const prev = el("div", "kpi__previous");
  if (typeof now === "number" && typeof before === "number" && meta.better !== 0 && now !== before) {
    const better = (now - before) * meta.better > 0;
    note += " (" + (now > before ? "+" : "") + (Math.round((now - before) * 100) / 100) + ")";
    prev.classList.add(better ? "delta--up" : "delta--down");
  }
  prev.textContent = note;
  card.append(el("div", "kpi__label", meta.label), value, prev);
  return card;
}

async function showOverview() {
  const bucket = params.get("bucket") || "week";
  byId("bucket").value = bucket;
  const query = rangeParams();
  query.set("bucket", bucket);
  const data = await api("metrics", query);
  const box = byId("kpis");
  clear(box);
  Object.keys(METRICS).forEach((key) => box.append(kpi(key, data.current, data.previous)));
  const drawTrend = () => {
    const key = byId("trend-metric").value;
    drawChart("trend-chart", {
      type: "line",
      data: {
        labels: data.trend.map((p) => p.start),
        datasets: [{ label: METRICS[key].label, data: data.trend.map((p) => METRICS[key].value(p)), borderColor: "#1d4ed8", spanGaps: true, tension: 0.2 }],
      },
    });
  };
  byId("trend-metric").onchange = drawTrend;
  byId("bucket").onchange = () => { params.set("bucket", byId("bucket").value); history.replaceState(null, "", "?" + params); showOverview().catch(fail); };
  drawTrend();
}

// ---- breakdowns --------------------------------------------------------------------------
const COLUMNS = [
  ["label", "Group", (g) => g.label],
  ["volume", "Volume", (g) => g.volume],
  ["csat", "CSAT %", (g) => g.csat.percent],
  ["nps", "NPS", (g) => g.nps.score],
  ["ces", "CES", (g) => g.ces.mean],
  ["response_rate", "Response %", (g) => g.response_rate.percent],
  ["sentiment", "Sentiment", (g) => g.sentiment.mean],
  ["previous", "Volume before", (g) => g.previous.volume],
  ["csat_previous", "CSAT % before", (g) => g.previous.csat.percent],
];

async function showBreakdowns() {
  const dimension = params.get("group_by") || "stage";
  const tabs = byId("dimension-tabs");
  clear(tabs);
  DIMENSIONS.forEach(([key, label]) => {
    const tab = el("button", "", label);
    tab.type = "button";
    tab.setAttribute("role", "tab");
    tab.setAttribute("aria-selected", String(key === dimension));
    tab.onclick = () => { params.set("group_by", key); history.replaceState(null, "", "?" + params); showBreakdowns().catch(fail); };
    tabs.append(tab);
  });
  const query = rangeParams();
  query.set("bucket", "none");
  query.set("group_by", dimension);
  const data = await api("metrics", query);
  const groups = data.breakdown.groups;
  drawChart("breakdown-chart", {
    type: "bar",
    data: {
      labels: groups.map((g) => g.label),
      datasets: [
        { label: "Volume", data: groups.map((g) => g.volume), backgroundColor: "#93c5fd", yAxisID: "y" },
        { label: "CSAT %", data: groups.map((g) => g.csat.percent), backgroundColor: "#1d4ed8", yAxisID: "y1" },
      ],
    },
    options: { scales: { y: { position: "left" }, y1: { position: "right", min: 0, max: 100, grid: { drawOnChartArea: false } } } },
  });
  let sortKey = "volume", descending = true;
  const table = byId("breakdown-table");
  const render = () => {
    const getter = COLUMNS.find((c) => c[0] === sortKey)[2];
    const rows = groups.slice().sort((a, b) => {
      const x = getter(a), y = getter(b);
      if (x === y) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * (descending ? -1 : 1);
    });
    clear(table);
    const head = el("tr");
    COLUMNS.forEach(([key, label]) => {
      const th = el("th", key === "label" ? "" : "num");
      const button = el("button", "", label + (key === sortKey ? (descending ? " ▼" : " ▲") : ""));
      button.type = "button";
      button.onclick = () => { descending = key === sortKey ? !descending : true; sortKey = key; render(); };
      th.setAttribute("aria-sort", key === sortKey ? (descending ? "descending" : "ascending") : "none");
      th.append(button);
      head.append(th);
    });
    table.append(head);
    rows.forEach((g) => {
      const tr = el("tr", "clickable");
      tr.dataset.key = g.key;
      COLUMNS.forEach(([key, , get], i) => tr.append(el("td", i ? "num" : "", fmt(get(g)))));
      tr.onclick = () => location.assign(explorerUrl({ [DIMENSION_FILTER[dimension]]: g.key }));
      table.append(tr);
    });
  };
  render();
}

// ---- journey map --------------------------------------------------------------------------
function stat(label, value, field) {
  const row = el("div", "journey__stat");
  const number = el("span", "", fmt(value));
  if (field) number.dataset.field = field;
  row.append(el("span", "", label), number);
  return row;
}

function pitfallText(p) {
  const where = p.stage + (p.channel ? " · " + p.channel : "");
  const what = { csat: "CSAT", nps: "NPS", dropoff: "drop-off" }[p.metric];
  const cmp = p.metric === "dropoff" ? " > " : " < ";
  return where + ": " + what + " " + p.value + cmp + p.threshold;
}

async function showJourney() {
  const data = await api("journey", rangeParams());
  const t = data.thresholds;
  byId("journey-legend").textContent = "Pitfall: CSAT below " + t.csat_below + " %, NPS below " + t.nps_below +
    " (at least " + t.min_responses + " answers) or drop-off above " + t.dropoff_above + " %. Click a stage, channel or pitfall to read its comments.";
  const list = byId("pitfall-list");
  clear(list);
  data.pitfalls.forEach((p) => {
    const button = el("button", "pitfall", pitfallText(p));
    button.type = "button";
    button.dataset.stage = p.stage;
    button.onclick = () => location.assign(explorerUrl(p.filter));
    // Acting on it: the insight board preselects this pitfall from the query string.
    const insight = el("a", "pitfall__insight", "Make an insight");
    insight.href = "insights?" + new URLSearchParams({ origin: "pitfall", stage: p.stage, channel: p.channel || "", metric: p.metric });
    list.append(button, insight);
  });
  const grid = byId("journey");
  clear(grid);
  const sources = el("div", "journey__col journey__sources");
  sources.append(el("h2", "", "Acquisition sources"));
  data.sources.forEach((s) => {
    const row = el("div", "source");
    row.dataset.source = s.source;
    const link = el("button", "", s.source);
    link.type = "button";
    link.onclick = () => location.assign(explorerUrl({ acquisition: s.source }));
    row.append(link, el("span", "", s.customers + " customers (" + fmt(s.share_percent) + " %)"));
    sources.append(row);
  });
  grid.append(sources);
  data.stages.forEach((s) => {
    const col = el("div", "journey__col" + (s.pitfalls.length ? " is-pitfall" : ""));
    col.dataset.stage = s.stage;
    const title = el("button", "journey__stage-link", s.stage);
    title.type = "button";
    title.onclick = () => location.assign(explorerUrl({ stage: s.stage }));
    col.append(
      title,
      stat("Customers reached", s.customers, "customers"),
      stat(s.stage === "use" ? "Needed support" : "Moved on", s.moved_on_percent === null ? null : s.moved_on_percent + " %", "moved_on"),
      stat("Feedback", s.volume, "volume"),
      stat("CSAT % (" + s.csat.responses + ")", s.csat.percent, "csat"),
      stat("NPS (" + s.nps.responses + ")", s.nps.score, "nps"),
      stat("CES (" + s.ces.responses + ")", s.ces.mean, "ces"),
      stat("Sentiment", s.sentiment.mean, "sentiment"),
    );
    if (s.negative_themes.length) {
      col.append(el("div", "muted", "Top negative themes"));
      const themes = el("ol", "themes");
      s.negative_themes.forEach((th) => themes.append(el("li", "", th.theme + " (" + th.count + ")")));
      col.append(themes);
    }
    const cells = el("ul", "cells");
    s.channels.forEach((c) => {
      const li = el("li");
      const cell = el("button", "cell" + (c.pitfalls.length ? " is-pitfall" : ""),
        c.channel + " · " + c.volume + " · CSAT " + fmt(c.csat.percent) + " · NPS " + fmt(c.nps.score));
      cell.type = "button";
      cell.dataset.channel = c.channel;
      cell.onclick = () => location.assign(explorerUrl({ stage: s.stage, channel: c.channel }));
      li.append(cell);
      cells.append(li);
    });
    col.append(cells);
    grid.append(col);
  });
}

// ---- comment explorer ------------------------------------------------------------------------
function fillSelect(select, values) {
  if (select.options.length > 1) return;
  values.forEach((v) => select.append(new Option(v, v)));
}

async function showExplorer() {
  const form = byId("explorer-form");
  fillSelect(form.elements.stage, STAGES);
  fillSelect(form.elements.channel, CHANNELS);
  fillSelect(form.elements.kind, KINDS);
  fillSelect(form.elements.theme, THEMES);
  FILTER_KEYS.forEach((key) => { form.elements[key].value = params.get(key) || ""; });
  form.onsubmit = (event) => {
    event.preventDefault();
    FILTER_KEYS.forEach((key) => { const v = form.elements[key].value.trim(); if (v) params.set(key, v); else params.delete(key); });
    params.delete("page");
    history.pushState(null, "", "?" + params);
    showExplorer().catch(fail);
  };
  const query = rangeParams();
  FILTER_KEYS.forEach((key) => { if (params.get(key)) query.set(key, params.get(key)); });
  byId("export-csv").href = "/api/export?format=csv&" + query;
  byId("export-json").href = "/api/export?format=json&" + query;
  const page = Number(params.get("page") || "1");
  query.set("page", String(page));
  query.set("per_page", "25");
  const data = await api("feedback", query);
  const hidden = ["trigger", "acquisition", "customer"].filter((key) => params.get(key));
  byId("explorer-summary").textContent = data.total + (data.total_exact ? "" : "+") + " feedback rows" +
    (hidden.length ? " · also filtered by " + hidden.map((key) => key + " = " + params.get(key)).join(", ") : "");
  const clearHidden = byId("clear-hidden");
  clearHidden.hidden = !hidden.length;
  clearHidden.onclick = () => { hidden.forEach((key) => params.delete(key)); params.delete("page"); history.pushState(null, "", "?" + params); showExplorer().catch(fail); };
  byId("explorer-summary").dataset.total = String(data.total);
  const table = byId("feedback-table");
  clear(table);
  const head = el("tr");
  ["When", "Stage", "Channel", "Kind", "Score", "Sentiment", "Themes", "Comment", "Customer", "Links"].forEach((h) => head.append(el("th", "", h)));
  table.append(head);
  data.items.forEach((row) => {
    const tr = el("tr");
    tr.dataset.id = String(row.id);
    const links = el("td");
    const customer = el("a", "", "customer");
    customer.href = row.links.customer;
    links.append(customer);
    if (row.links.conversation) {
      const conversation = el("a", "", "transcript");
      conversation.href = row.links.conversation;
      links.append(document.createTextNode(" · "), conversation);
    }
    tr.append(
      el("td", "", row.created_at.slice(0, 16).replace("T", " ")),
      el("td", "", row.stage), el("td", "", row.channel), el("td", "", row.kind),
      el("td", "num", fmt(row.score)), el("td", "num", fmt(row.sentiment)),
      el("td", "", row.themes.join(", ")), el("td", "comment", row.text || ""),
      el("td", "", (row.customer.name || "") + " (" + row.customer.external_id + ")" + (row.order_number ? " · " + row.order_number : "")),
      links,
    );
    table.append(tr);
  });
  byId("page-info").textContent = "Page " + data.page + " of " + data.pages;
  const go = (delta) => { params.set("page", String(page + delta)); history.pushState(null, "", "?" + params); showExplorer().catch(fail); };
  byId("prev-page").disabled = page <= 1;
  byId("next-page").disabled = page >= data.pages;
  byId("prev-page").onclick = () => go(-1);
  byId("next-page").onclick = () => go(1);
}

// ---- transcript --------------------------------------------------------------------------------
async function showTranscript() {
  const id = params.get("conversation") || "";
  const data = await api("transcripts/" + encodeURIComponent(id));
  byId("transcript-meta").textContent = "Conversation " + data.conversation.id + " · " + data.conversation.channel + " · " + data.conversation.status;
  const list = byId("transcript");
  clear(list);
  data.messages.forEach((m) => {
    const li = el("li");
    li.append(el("span", "sender", m.sender + (m.author ? " (" + m.author + ")" : "") + " · " + m.created_at.slice(0, 16).replace("T", " ")), document.createTextNode(m.text));
    list.append(li);
  });
}

// ---- boot ----------------------------------------------------------------------------------------
const VIEWS = { "": ["overview", showOverview], breakdowns: ["breakdowns", showBreakdowns], journey: ["journey", showJourney], explorer: ["explorer", showExplorer], transcript: ["transcript", showTranscript] };

function fail(error) { status(error.message || String(error), "error"); }

function boot() {
  const name = location.pathname.replace(/^\/dashboard\/?/, "").replace(/\/$/, "");
  const [view, show] = VIEWS[name] || VIEWS[""];
  byId("view-" + view).hidden = false;
  document.querySelectorAll(".topbar__nav a").forEach((a) => {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page");
    a.href = a.getAttribute("href").split("?")[0] + "?" + rangeParams();
  });
  const range = rangeParams();
  byId("range-from").value = range.get("from");
  byId("range-to").value = range.get("to");
  byId("range-tz").value = range.get("tz");
  byId("range-form").onsubmit = (event) => {
    event.preventDefault();
    params.set("from", byId("range-from").value);
    params.set("to", byId("range-to").value);
    params.set("tz", byId("range-tz").value.trim() || "UTC");
    params.delete("page");
    location.assign(location.pathname + "?" + params);
  };
  window.addEventListener("popstate", () => location.reload());
  status("Loading…");
  show().then(() => { status(""); document.body.dataset.ready = "true"; }, fail);
}

boot();
