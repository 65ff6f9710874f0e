/*
 * CX dashboard: one shell, five views chosen by the path (/dashboard/, /breakdowns, /journey,
 * /explorer, /transcript). Every number comes from the JSON API; the date range and the
 * explorer's filters live in the query string, so every view is a shareable link.
 * CSP-safe: no inline code, no innerHTML; data is rendered with textContent only.
 * Charts: Chart.js 4 (vendored, /static/vendor/chartjs/, global `Chart`).
 * Every figure shows how many answers it rests on; below the API's `min_answers`
 * (DASHBOARD_MIN_ANSWERS) a figure reads "too few answers" and a trend point is drawn hollow
 * and not joined. Keys are shown by their labels (labels.js, one table in Python).
 */
import { byId, clear, el, isoDay } from "/static/shared/dom.js";
import { label, loadLabels, plural, values } from "/static/shared/labels.js";

const DIMENSIONS = [
  ["stage", "Stage"], ["channel", "Channel"], ["product", "Product"],
  ["acquisition_source", "Acquisition source"], ["trigger", "Survey trigger"],
];
// Explorer filter a breakdown row opens.
const DIMENSION_FILTER = {
  stage: "stage", channel: "channel", product: "product", acquisition_source: "acquisition", trigger: "trigger",
};
const FILTER_KEYS = ["stage", "channel", "kind", "score_min", "score_max", "sentiment", "theme", "product", "q", "trigger", "acquisition", "customer"];
// n: what the figure rests on; interval: its 95 % interval (docs/dashboard.md).
const METRICS = {
  csat: { label: "CSAT %", value: (m) => m.csat.percent, better: 1, n: (m) => m.csat.responses, unit: "answer",
          interval: (m) => m.csat.interval },
  nps: { label: "NPS", value: (m) => m.nps.score, better: 1, n: (m) => m.nps.responses, unit: "answer",
         interval: (m) => m.nps.interval },
  ces: { label: "CES", value: (m) => m.ces.mean, better: -1, n: (m) => m.ces.responses, unit: "answer" },
  response_rate: { label: "Response rate %", value: (m) => m.response_rate.percent, better: 1,
                   n: (m) => m.response_rate.sent, unit: "survey sent", units: "surveys sent" },
  volume: { label: "Feedback volume", value: (m) => m.volume, better: 0 },
  sentiment: { label: "Sentiment", value: (m) => m.sentiment.mean, better: 1, n: (m) => m.sentiment.count, unit: "comment" },
};
let minAnswers = 10;  // replaced by the API's min_answers

/** Does the figure rest on too few answers to be read? */
function tooFew(key, m) {
  const meta = METRICS[key];
  if (!meta.n) return false;
  const n = meta.n(m);
  return n !== null && n !== undefined && n < minAnswers;
}
function countText(key, m) {
  const meta = METRICS[key];
  if (!meta.n || meta.n(m) === null || meta.n(m) === undefined) return "";
  return plural(meta.n(m), meta.unit, meta.units);
}
function intervalText(interval) {
  return interval ? "95 % interval " + interval[0] + " to " + interval[1] : "";
}
/** A CSAT % interval as "80.1–88.2" ("–" when there is none or too few answers to read). */
function intervalRange(score) {
  return score.interval && !score.too_few ? score.interval[0] + "\u2013" + score.interval[1] : "\u2013";
}

const charts = {};
const params = new URLSearchParams(location.search);

// ---- helpers ---------------------------------------------------------------------------
function fmt(value, digits) {
  if (value === null || value === undefined) return "–";
  return typeof value === "number" && digits !== undefined ? value.toFixed(digits) : String(value);
}
function status(text, kind) {
  const node = byId("status");
  node.textContent = text || "";
  node.className = "status" + (kind ? " status--" + kind : "");
}

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
  const few = tooFew(key, current), fewBefore = tooFew(key, previous);
  const value = el("div", "kpi__value" + (few && now !== null ? " kpi__value--few" : ""),
    few && now !== null ? "Too few answers" : fmt(now));
  value.dataset.value = now === null ? "" : String(now);
  value.dataset.tooFew = String(few);
  const detail = el("div", "kpi__n");
  detail.dataset.n = meta.n ? String(meta.n(current)) : String(current.volume);
  const parts = [countText(key, current)];
  if (few && now !== null) parts.push("fewer than " + minAnswers + ": " + fmt(now) + " is not reliable");
  else if (meta.interval) parts.push(intervalText(meta.interval(current)));
  detail.textContent = parts.filter(Boolean).join(" · ");
  let note = "previous period: " + (fewBefore && before !== null ? "too few answers" : fmt(before));
  if (meta.n) note += " (" + countText(key, previous) + ")";
  const prev = el("div", "kpi__previous");
  // A change is coloured only when both sides rest on enough answers.
  if (typeof now === "number" && typeof before === "number" && meta.better !== 0 && now !== before && !few && !fewBefore) {
    const better = (now - before) * meta.better > 0;
    note += ", change " + (now > before ? "+" : "") + (Math.round((now - before) * 100) / 100);
    prev.classList.add(better ? "delta--up" : "delta--down");
  }
  prev.textContent = note;
  card.append(el("div", "kpi__label", meta.label), value, detail, prev);
  return card;
}

function partialText(point) {
  return point.partial ? "partial: " + label("partial", point.partial) : "";
}

function trendTable(data, key) {
  const meta = METRICS[key];
  const table = byId("trend-table");
  clear(table);
  const head = el("tr");
  ["Period from", meta.label, "Based on", "95 % interval", "Note"].forEach((h, i) => head.append(el("th", i && i < 3 ? "num" : "", h)));
  table.append(head);
  data.trend.forEach((p) => {
    const tr = el("tr");
    tr.dataset.start = p.start;
    const few = tooFew(key, p) && meta.value(p) !== null;
    const notes = [few ? "too few answers" : "", partialText(p)].filter(Boolean);
    tr.append(el("td", "", p.start), el("td", "num", few ? "(" + fmt(meta.value(p)) + ")" : fmt(meta.value(p))),
      el("td", "num", meta.n ? countText(key, p) : ""), el("td", "", meta.interval && !few ? intervalText(meta.interval(p)).replace("95 % interval ", "") : ""),
      el("td", "", notes.join("; ")));
    if (few) tr.classList.add("is-few");
    table.append(tr);
  });
}

async function showOverview() {
  const bucket = params.get("bucket") || "week";
  byId("bucket").value = bucket;
  const query = rangeParams();
  query.set("bucket", bucket);
  const data = await api("metrics", query);
  minAnswers = data.min_answers;
  const box = byId("kpis");
  clear(box);
  Object.keys(METRICS).forEach((key) => box.append(kpi(key, data.current, data.previous)));
  byId("trend-legend").textContent = "Hollow grey points rest on fewer than " + minAnswers +
    " answers and are not joined; diamonds are partial periods (not over yet, or cut by the dates). " +
    "No line where there were no answers.";
  const drawTrend = () => {
    const key = byId("trend-metric").value;
    const meta = METRICS[key];
    const few = data.trend.map((p) => tooFew(key, p) && meta.value(p) !== null);
    const pointStyle = data.trend.map((p) => (p.partial ? "rectRot" : "circle"));
    drawChart("trend-chart", {
      type: "line",
      data: {
        labels: data.trend.map((p) => p.start),
        datasets: [
          { label: meta.label, data: data.trend.map((p, i) => (few[i] ? null : meta.value(p))), borderColor: "#1d4ed8",
            backgroundColor: "#1d4ed8", spanGaps: false, tension: 0.2, pointStyle, pointRadius: data.trend.map((p) => (p.partial ? 6 : 3)) },
          { label: "Too few answers (fewer than " + minAnswers + ")", data: data.trend.map((p, i) => (few[i] ? meta.value(p) : null)),
            borderColor: "#6b7280", backgroundColor: "#fff", showLine: false, pointStyle, pointRadius: 5, pointBorderWidth: 2 },
        ],
      },
      options: {
        plugins: {
          tooltip: {
            callbacks: {
              afterLabel: (ctx) => {
                const p = data.trend[ctx.dataIndex];
                return [countText(key, p), meta.interval && !few[ctx.dataIndex] ? intervalText(meta.interval(p)) : "", partialText(p)].filter(Boolean);
              },
            },
          },
        },
      },
    });
    trendTable(data, key);
  };
  byId("trend-metric").onchange = drawTrend;
  byId("bucket").onchange = () => { params.set("bucket", byId("bucket").value); history.replaceState(null, "", "?" + params); showOverview().catch(fail); };
  drawTrend();
}

// ---- breakdowns --------------------------------------------------------------------------
// [key, heading, value, metric whose "too few" applies to the cell, previous period?, text]
const COLUMNS = [
  ["label", "Group", (g) => g.shown],
  ["volume", "Volume", (g) => g.volume],
  ["csat", "CSAT %", (g) => g.csat.percent, "csat"],
  ["csat_n", "CSAT answers", (g) => g.csat.responses],
  ["csat_interval", "CSAT 95 % interval", (g) => (g.csat.interval && !g.csat.too_few ? g.csat.interval[0] : null),
    null, false, (g) => intervalRange(g.csat)],
  ["nps", "NPS", (g) => g.nps.score, "nps"],
  ["nps_n", "NPS answers", (g) => g.nps.responses],
  ["ces", "CES", (g) => g.ces.mean, "ces"],
  ["response_rate", "Response %", (g) => g.response_rate.percent],
  ["sentiment", "Sentiment", (g) => g.sentiment.mean],
  ["previous", "Volume before", (g) => g.previous.volume],
  ["csat_previous", "CSAT % before", (g) => g.previous.csat.percent, "csat", true],
];
// Label group of each breakdown dimension (products carry their name as the API's label).
const DIMENSION_LABELS = { stage: "stage", channel: "channel", acquisition_source: "acquisition", trigger: "trigger" };

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
  minAnswers = data.min_answers;
  const groups = data.breakdown.groups;
  groups.forEach((g) => { g.shown = DIMENSION_LABELS[dimension] ? label(DIMENSION_LABELS[dimension], g.key) : g.label; });
  byId("breakdown-legend").textContent = "CSAT bars are left out for groups with fewer than " + minAnswers +
    " CSAT answers (the table says \u201ctoo few\u201d); n under each group is its number of CSAT answers.";
  drawChart("breakdown-chart", {
    type: "bar",
    data: {
      labels: groups.map((g) => [g.shown, "n = " + g.csat.responses]),
      datasets: [
        { label: "Volume", data: groups.map((g) => g.volume), backgroundColor: "#93c5fd", yAxisID: "y" },
        { label: "CSAT %", data: groups.map((g) => (g.csat.too_few ? null : g.csat.percent)), backgroundColor: "#1d4ed8", yAxisID: "y1" },
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
      COLUMNS.forEach(([, , get, metric, before, text], i) => {
        const m = before ? g.previous : g;
        const few = metric && m[metric].too_few && get(g) !== null;
        const td = el("td", (i ? "num" : "") + (few ? " is-few" : ""), few ? "too few" : text ? text(m) : fmt(get(g)));
        if (few) td.title = fmt(get(g)) + " on fewer than " + minAnswers + " answers";
        tr.append(td);
      });
      tr.onclick = () => location.assign(explorerUrl({ [DIMENSION_FILTER[dimension]]: g.key }));
      table.append(tr);
    });
  };
  render();
  await showShareOfVoice(dimension === "channel");
}

/** Each channel's share of the feedback per bucket (GET /api/metrics/share-of-voice, issue #23). */
async function showShareOfVoice(shown) {
  const panel = byId("voice-panel");
  panel.hidden = !shown;
  if (!shown) return;
  const query = rangeParams();
  const chosen = params.get("bucket");
  const bucket = chosen && chosen !== "none" ? chosen : "month";
  query.set("bucket", bucket);
  const data = await api("metrics/share-of-voice", query);
  byId("voice-legend").textContent = "Share of the feedback rows per " + bucket + " (weeks start on Monday), " +
    "web reviews and reviewers who are not customers included; the volume is in brackets.";
  const table = byId("voice-table");
  clear(table);
  const head = el("tr");
  const first = el("th", "", "From");
  first.scope = "col";
  head.append(first);
  data.channels.forEach((c) => { const th = el("th", "num", label("channel", c)); th.scope = "col"; head.append(th); });
  table.append(head);
  data.points.forEach((p) => {
    const tr = el("tr");
    tr.dataset.start = p.start;
    tr.append(el("td", "", p.start));
    data.channels.forEach((c) => {
      const cell = p.channels[c];
      const td = el("td", "num", fmt(cell.share_percent) + " % (" + cell.volume + ")");
      td.dataset.channel = c;
      td.dataset.share = cell.share_percent === null ? "" : String(cell.share_percent);
      tr.append(td);
    });
    table.append(tr);
  });
}

// ---- journey map --------------------------------------------------------------------------
function stat(name, value, field, few) {
  const row = el("div", "journey__stat");
  const number = el("span", few && value !== null ? "is-few" : "", few && value !== null ? "too few" : fmt(value));
  if (field) { number.dataset.field = field; number.dataset.value = value === null ? "" : String(value); }
  row.append(el("span", "", name), number);
  return row;
}

/** A score row; CSAT % with its 95 % interval on a small line below (when it can be read). */
function scoreStat(s, key, name) {
  const meta = METRICS[key];
  const row = stat(name + " (" + plural(meta.n(s), "answer") + ")", meta.value(s), key, s[key].too_few);
  if (key !== "csat" || !s.csat.interval || s.csat.too_few) return [row];
  const interval = el("div", "journey__interval muted", intervalText(s.csat.interval) + " %");
  interval.dataset.field = "csat_interval";
  return [row, interval];
}

function pitfallText(p) {
  const where = label("stage", p.stage) + (p.channel ? " · " + label("channel", p.channel) : "");
  const what = { csat: "CSAT", nps: "NPS", dropoff: "drop-off" }[p.metric];
  const cmp = p.metric === "dropoff" ? " > " : " < ";
  return where + ": " + what + " " + p.value + cmp + p.threshold;
}

/** "What to fix first" (GET /api/journey/fix-first, docs/dashboard.md). */
async function showFixFirst() {
  const data = await api("journey/fix-first", rangeParams());
  byId("fix-first-legend").textContent = "Impact = journeys affected \u00d7 (CSAT shortfall + NPS shortfall + return-rate shortfall), each 0 to 1, " +
    "among the journeys opened in the range (all their answers), against every other one; a shortfall counts only with at least " + data.min_answers +
    " answers on both sides. Return: another purchase within " + data.window_days + " days, known only for journeys opened at least " +
    data.window_days + " days ago.";
  const body = byId("fix-first").tBodies[0];
  clear(body);
  const effect = (e) => (e.group === null ? "no answers" : fmt(e.group) + " vs " + fmt(e.rest) + " (n " + e.group_n + ")");
  if (!data.items.length) {
    const tr = el("tr");
    const td = el("td", "muted", "Nothing to fix in this range: no pitfall or negative theme.");
    td.colSpan = 8;
    tr.append(td);
    body.append(tr);
    return;
  }
  data.items.forEach((item, i) => {
    const tr = el("tr");
    tr.dataset.key = item.key;
    const where = label("stage", item.stage) + (item.channel ? " \u00b7 " + label("channel", item.channel) : "");
    const what = item.kind === "theme" ? "Negative theme " + label("theme", item.theme) + " at " + where
      : "Pitfall " + where + " (" + item.metrics.map((m) => m.toUpperCase()).join(", ") + ")";
    const link = el("a", "", what);
    link.href = explorerUrl(item.filter);
    const name = el("td");
    name.append(link);
    const act = el("td");
    const insight = el("a", "", "Make an insight");
    insight.href = "insights?" + new URLSearchParams(item.insight);
    act.append(insight);
    tr.append(el("td", "num", i + 1), name, el("td", "num", item.journeys), el("td", "", effect(item.csat)),
      el("td", "", effect(item.nps)), el("td", "", item.return_rate.group === null && item.return_rate.rest === null
        ? "not known yet (journeys under " + data.window_days + " days old)" : effect(item.return_rate)),
      el("td", "num", fmt(item.impact)), act);
    body.append(tr);
  });
}

async function showJourney() {
  // "What to fix first" loads alongside the map (it is the slower query): neither waits.
  const fixFirst = showFixFirst();
  const data = await api("journey", rangeParams());
  minAnswers = data.min_answers;
  const t = data.thresholds;
  byId("journey-legend").textContent = "Pitfall: CSAT below " + t.csat_below + " %, NPS below " + t.nps_below +
    " (at least " + t.min_responses + " answers) or drop-off above " + t.dropoff_above + " %. Scores on fewer than " +
    minAnswers + " answers read \u201ctoo few\u201d. Click a stage, channel or pitfall to read its comments.";
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
    const link = el("button", "", label("acquisition", s.source));
    link.type = "button";
    link.onclick = () => location.assign(explorerUrl({ acquisition: s.source }));
    row.append(link, el("span", "", plural(s.customers, "customer") + " (" + fmt(s.share_percent) + " %)"));
    sources.append(row);
  });
  grid.append(sources);
  data.stages.forEach((s) => {
    const col = el("div", "journey__col" + (s.pitfalls.length ? " is-pitfall" : ""));
    col.dataset.stage = s.stage;
    const title = el("button", "journey__stage-link", label("stage", s.stage));
    title.type = "button";
    title.onclick = () => location.assign(explorerUrl({ stage: s.stage }));
    col.append(
      title,
      stat("Customers reached", s.customers, "customers"),
      stat(s.stage === "use" ? "Needed support" : "Moved on", s.moved_on_percent === null ? null : s.moved_on_percent + " %", "moved_on"),
      stat("Feedback", s.volume, "volume"),
      ...scoreStat(s, "csat", "CSAT %"),
      ...scoreStat(s, "nps", "NPS"),
      ...scoreStat(s, "ces", "CES"),
      stat("Sentiment", s.sentiment.mean, "sentiment"),
    );
    if (s.negative_themes.length) {
      col.append(el("div", "muted", "Top negative themes"));
      const themes = el("ol", "themes");
      s.negative_themes.forEach((th) => themes.append(el("li", "", label("theme", th.theme) + " (" + th.count + ")")));
      col.append(themes);
    }
    const cells = el("ul", "cells");
    s.channels.forEach((c) => {
      const li = el("li");
      const score = (key) => {
        const n = METRICS[key].n(c);
        if (!n) return "no answers";
        const interval = key === "csat" && c.csat.interval && !c.csat.too_few ? "; 95 % " + intervalRange(c.csat) : "";
        return (c[key].too_few ? "too few" : fmt(METRICS[key].value(c))) + " (n " + n + interval + ")";
      };
      const cell = el("button", "cell" + (c.pitfalls.length ? " is-pitfall" : ""),
        label("channel", c.channel) + " · " + plural(c.volume, "feedback", "feedback") + " · CSAT " + score("csat") + " · NPS " + score("nps"));
      cell.type = "button";
      cell.dataset.channel = c.channel;
      cell.onclick = () => location.assign(explorerUrl({ stage: s.stage, channel: c.channel }));
      li.append(cell);
      cells.append(li);
    });
    col.append(cells);
    grid.append(col);
  });
  await fixFirst;
}

// ---- comment explorer ------------------------------------------------------------------------
function fillSelect(select, keys, group) {
  if (select.options.length > 1) return;
  keys.forEach((v) => select.append(new Option(label(group, v), v)));
}

/** "2026-03-12 10:00" in the chosen time zone (the API's times are UTC). */
function localTime(iso, tz) {
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone: tz, year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", hourCycle: "h23",
  }).formatToParts(new Date(iso));
  const get = (type) => (parts.find((x) => x.type === type) || {}).value;
  return get("year") + "-" + get("month") + "-" + get("day") + " " + get("hour") + ":" + get("minute");
}

/** Products with feedback in the range, by name: the product filter takes a name. */
async function productNames() {
  const query = rangeParams();
  query.set("bucket", "none");
  query.set("group_by", "product");
  const groups = (await api("metrics", query)).breakdown.groups;
  return groups.map((g) => ({ sku: g.key, name: g.label })).sort((a, b) => a.name.localeCompare(b.name));
}
const selected = new Set();

async function showExplorer() {
  const form = byId("explorer-form");
  for (const group of ["stage", "channel", "kind", "theme"]) fillSelect(form.elements[group], values(group), group);
  const products = await productNames();
  const list = byId("product-list");
  clear(list);
  products.forEach((p) => list.append(new Option(p.name + " (" + p.sku + ")", p.name)));
  FILTER_KEYS.forEach((key) => { form.elements[key].value = params.get(key) || ""; });
  const chosenProduct = products.find((p) => p.sku === params.get("product"));
  if (chosenProduct) form.elements.product.value = chosenProduct.name;
  form.onsubmit = (event) => {
    event.preventDefault();
    // A product is picked by its name; a SKU typed as such is taken as it is.
    const typed = form.elements.product.value.trim();
    const byName = products.find((p) => p.name.toLowerCase() === typed.toLowerCase());
    if (byName) form.elements.product.value = byName.sku;
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
  const hiddenText = (key) => ({ trigger: "survey trigger", acquisition: "acquisition source", customer: "customer" })[key] + ": " +
    (key === "customer" ? params.get(key) : label(key, params.get(key)));
  byId("explorer-summary").textContent = (data.total_exact ? plural(data.total, "feedback row") : data.total + "+ feedback rows") +
    (hidden.length ? " · also filtered by " + hidden.map(hiddenText).join(", ") : "");
  const clearHidden = byId("clear-hidden");
  clearHidden.hidden = !hidden.length;
  clearHidden.onclick = () => { hidden.forEach((key) => params.delete(key)); params.delete("page"); history.pushState(null, "", "?" + params); showExplorer().catch(fail); };
  byId("explorer-summary").dataset.total = String(data.total);
  const table = byId("feedback-table");
  clear(table);
  const head = el("tr");
  const tz = rangeParams().get("tz");
  const pickAll = el("input");
  pickAll.type = "checkbox";
  pickAll.setAttribute("aria-label", "Select every row on this page");
  const pickCell = el("th");
  pickCell.append(pickAll);
  head.append(pickCell);
  ["Id", "When (" + tz + ")", "Stage", "Channel", "Kind", "Score", "Sentiment", "Themes", "Comment", "Customer", "Links"].forEach((h) => head.append(el("th", "", h)));
  table.append(head);
  const boxes = [];
  const showSelected = () => {
    const ids = Array.from(selected);
    byId("selected-count").textContent = ids.length ? plural(ids.length, "row") + " selected" : "Select rows to make an insight from them";
    const make = byId("make-insight");
    make.hidden = !ids.length;
    // The explorer's dates and time zone go along: the insight board shows them.
    const query = rangeParams();
    query.set("origin", "feedback");
    query.set("feedback", ids.join(","));
    make.href = "insights?" + query;
    pickAll.checked = boxes.length > 0 && boxes.every((b) => b.checked);
  };
  pickAll.onchange = () => {
    boxes.forEach((b) => { b.checked = pickAll.checked; if (b.checked) selected.add(b.value); else selected.delete(b.value); });
    showSelected();
  };
  data.items.forEach((row) => {
    const tr = el("tr");
    tr.dataset.id = String(row.id);
    const box = el("input");
    box.type = "checkbox";
    box.value = String(row.id);
    box.checked = selected.has(box.value);
    box.setAttribute("aria-label", "Select feedback " + row.id);
    box.onchange = () => { if (box.checked) selected.add(box.value); else selected.delete(box.value); showSelected(); };
    boxes.push(box);
    const pick = el("td");
    pick.append(box);
    const links = el("td");
    const linkList = [];
    if (row.links.customer) {
      const customer = el("a", "", "customer");
      customer.href = row.links.customer;
      linkList.push(customer);
    }
    if (row.links.conversation) {
      const conversation = el("a", "", "transcript");
      conversation.href = row.links.conversation;
      linkList.push(conversation);
    }
    if (row.links.source && /^https?:\/\//.test(row.links.source)) {
      // The review or post on the platform (issue #23): opened in a new tab, no referrer.
      const source = el("a", "source-link", "source on " + (row.platform || "the web"));
      source.href = row.links.source;
      source.target = "_blank";
      source.rel = "noopener noreferrer";
      linkList.push(source);
    }
    linkList.forEach((a, i) => { if (i) links.append(document.createTextNode(" · ")); links.append(a); });
    const when = el("td", "", localTime(row.created_at, tz));
    when.dataset.utc = row.created_at;
    tr.append(
      pick, el("td", "num", row.id), when,
      el("td", "", label("stage", row.stage)), el("td", "", label("channel", row.channel)), el("td", "", label("kind", row.kind)),
      el("td", "num", fmt(row.score)), el("td", "num", fmt(row.sentiment)),
      el("td", "", row.themes.map((t) => label("theme", t)).join(", ")), el("td", "comment", row.text || ""),
      el("td", "", row.customer
        ? (row.customer.name || "") + " (" + row.customer.external_id + ")" + (row.order_number ? " · " + row.order_number : "")
        : "Reviewer " + (row.reviewer ? row.reviewer.handle : "") + " (not a known customer)"),
      links,
    );
    table.append(tr);
  });
  showSelected();
  byId("page-info").textContent = "Page " + data.page + " of " + data.pages;
  const go = (delta) => { params.set("page", String(page + delta)); history.pushState(null, "", "?" + params); showExplorer().catch(fail); };
  byId("prev-page").disabled = page <= 1;
  byId("next-page").disabled = page >= data.pages;
  byId("prev-page").onclick = () => go(-1);
  byId("next-page").onclick = () => go(1);
}

// ---- support operations ----------------------------------------------------------------------
function minutesText(value) { return value === null ? "–" : fmt(value) + " min"; }
function hoursText(value) { return value === null ? "–" : fmt(value) + " h"; }
function withinText(part, percent, whole) {
  return whole ? fmt(percent) + " % (" + part + " of " + whole + ")" : "–";
}

function opsCells(o) {
  return [
    [o.escalations, "escalations"],
    [minutesText(o.first_reply.mean_minutes) + " (n " + o.first_reply.replied + ")", "reply"],
    [withinText(o.first_reply.within_sla, o.first_reply.within_sla_percent, o.first_reply.replied), "reply_sla"],
    [hoursText(o.resolution.mean_hours) + " (n " + o.resolution.resolved + ")", "resolution"],
    [withinText(o.resolution.within_sla, o.resolution.within_sla_percent, o.resolution.resolved), "resolution_sla"],
    [o.sla_breaches.first_reply + " / " + o.sla_breaches.resolution, "breaches"],
  ];
}
const OPS_HEADINGS = ["Escalations", "First reply, mean", "Replied within SLA", "Resolution, mean", "Resolved within SLA",
  "SLA breaches (reply / resolution)"];

function opsTable(tableId, first, rows, extra) {
  const table = byId(tableId);
  clear(table);
  const head = el("tr");
  [first, ...OPS_HEADINGS, ...(extra ? extra.headings : [])].forEach((h, i) => head.append(el("th", i ? "num" : "", h)));
  table.append(head);
  rows.forEach(([key, name, o]) => {
    const tr = el("tr");
    tr.dataset.key = String(key);
    tr.append(el("td", "", name));
    opsCells(o).forEach(([text, field]) => { const td = el("td", "num", text); td.dataset.field = field; tr.append(td); });
    if (extra) extra.cells(o).forEach((td) => tr.append(td));
    table.append(tr);
  });
  if (!rows.length) {
    const tr = el("tr");
    const td = el("td", "muted", "No escalations in these dates.");
    td.colSpan = 1 + OPS_HEADINGS.length + (extra ? extra.headings.length : 0);
    tr.append(td);
    table.append(tr);
  }
}

function surveyCell(m, key) {
  const meta = METRICS[key];
  const n = meta.n(m), value = meta.value(m);
  const few = m[key].too_few && value !== null;
  const td = el("td", "num" + (few ? " is-few" : ""), n ? (few ? "too few" : fmt(value)) + " (n " + n + ")" : "no answers");
  td.dataset.field = key;
  return td;
}

async function showSupport() {
  const data = await api("support", rangeParams());
  minAnswers = data.min_answers;
  const t = data.total;
  byId("support-legend").textContent = "Escalations opened in these dates. First reply: the first agent message after a chat was " +
    "escalated; SLA " + data.sla.first_reply_minutes + " minutes (when the console calls a waiting chat overdue). Resolution SLA: " +
    data.sla.resolution_hours + " hours. A breach is late, or not done and past the SLA now. Means, with n; CSAT and CES come " +
    "from the survey after the agent resolved the chat (too few below " + minAnswers + " answers).";
  const box = byId("support-kpis");
  clear(box);
  const card = (id, name, value, note) => {
    const node = el("div", "kpi");
    node.id = "kpi-" + id;
    node.append(el("div", "kpi__label", name), el("div", "kpi__value", value), el("div", "kpi__n", note));
    return node;
  };
  box.append(
    card("escalations", "Escalations", t.escalations, plural(t.first_reply.chats, "chat") + ", " + (t.escalations - t.first_reply.chats) + " without a chat"),
    card("first-reply", "First agent reply", minutesText(t.first_reply.mean_minutes),
      "mean of " + plural(t.first_reply.replied, "chat") + " answered; " + withinText(t.first_reply.within_sla, t.first_reply.within_sla_percent, t.first_reply.replied) + " within " + data.sla.first_reply_minutes + " min"),
    card("resolution", "Resolution time", hoursText(t.resolution.mean_hours),
      "mean of " + plural(t.resolution.resolved, "resolved escalation") + "; " + withinText(t.resolution.within_sla, t.resolution.within_sla_percent, t.resolution.resolved) + " within " + data.sla.resolution_hours + " h"),
    card("breaches", "SLA breaches", t.sla_breaches.first_reply + t.sla_breaches.resolution,
      t.sla_breaches.first_reply + " late first replies, " + t.sla_breaches.resolution + " late resolutions"),
  );
  opsTable("support-reasons", "Reason", data.by_reason.map((r) => [r.reason, label("reason", r.reason), r]));
  opsTable("support-priorities", "Priority", data.by_priority.map((r) => [r.priority, label("priority", String(r.priority)), r]));
  opsTable("support-agents", "Agent", data.agents.map((a) => [a.agent_id, a.name, a]), {
    headings: ["Support CSAT %", "Support CES"],
    cells: (a) => [surveyCell(a, "csat"), surveyCell(a, "ces")],
  });
}

// ---- transcript --------------------------------------------------------------------------------
async function showTranscript() {
  const id = params.get("conversation") || "";
  const data = await api("transcripts/" + encodeURIComponent(id));
  byId("transcript-meta").textContent = "Conversation " + data.conversation.id + " · " + label("channel", data.conversation.channel) + " · " + data.conversation.status;
  const list = byId("transcript");
  clear(list);
  data.messages.forEach((m) => {
    const li = el("li");
    li.append(el("span", "sender", m.sender + (m.author ? " (" + m.author + ")" : "") + " · " + m.created_at.slice(0, 16).replace("T", " ")), document.createTextNode(m.text));
    list.append(li);
  });
}

// ---- boot ----------------------------------------------------------------------------------------
const VIEWS = { "": ["overview", showOverview], breakdowns: ["breakdowns", showBreakdowns], journey: ["journey", showJourney], explorer: ["explorer", showExplorer], transcript: ["transcript", showTranscript], support: ["support", showSupport] };

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
  loadLabels().then(show).then(() => { status(""); document.body.dataset.ready = "true"; }, fail);
}

boot();
