/* Insight board: /api/insights (board, create, status), /api/journey (pitfalls to start from). */
import { api, byId, clear, drawChart, el, fail, fmt, isoDay, params, plural, rangeParams, setupPage, status } from "./cx-pages.js";
import { label, loadLabels, values } from "/static/shared/labels.js";

const COLUMNS = [
  ["new", "New"], ["accepted", "Accepted"], ["in_progress", "In progress"], ["applied", "Applied"], ["wont_do", "Won't do"],
];
const ACTIONS = { accepted: "Accept", in_progress: "Start", applied: "Mark applied", wont_do: "Won't do", new: "Reopen" };
const METRIC_LABEL = { csat: "CSAT", nps: "NPS", dropoff: "drop-off" };
let pitfalls = [];

function pitfallLabel(p) {
  const where = label("stage", p.stage) + (p.channel ? " · " + label("channel", p.channel) : "");
  const unit = p.metric === "nps" ? "" : " %";
  return where + " — " + METRIC_LABEL[p.metric] + " " + p.value + unit + " (threshold " + p.threshold + unit + ")";
}

async function loadPitfalls() {
  const select = byId("insight-pitfall");
  clear(select);
  try {
    pitfalls = (await api("journey", rangeParams(90))).pitfalls;
  } catch (error) {  // the board still works; only starting from a pitfall does not
    pitfalls = [];
    select.append(el("option", "", "pitfalls unavailable: " + error.message));
    return;
  }
  if (!pitfalls.length) select.append(el("option", "", "no pitfall in this range"));
  pitfalls.forEach((p, i) => {
    const option = el("option", "", pitfallLabel(p));
    option.value = String(i);
    // ?stage=&channel=&metric= (a link from the journey map) preselects a pitfall.
    if (p.stage === params.get("stage") && (p.channel || "") === (params.get("channel") || "") && p.metric === params.get("metric")) {
      option.selected = true;
    }
    select.append(option);
  });
}

function showOrigin() {
  const origin = byId("insight-origin").value;
  document.querySelectorAll("[data-origin]").forEach((node) => { node.hidden = node.dataset.origin !== origin; });
}

async function create(event) {
  event.preventDefault();
  const origin = byId("insight-origin").value;
  const range = rangeParams(90);
  const body = {
    title: byId("insight-title").value, owner_team: byId("insight-team").value, origin,
    customer_message: byId("insight-message").value.trim() || null, note: byId("insight-note").value.trim() || null,
  };
  if (origin === "pitfall") {
    const p = pitfalls[Number(byId("insight-pitfall").value)];
    if (!p) { status("Pick a pitfall first.", "error"); return; }
    body.pitfall = { stage: p.stage, channel: p.channel, metric: p.metric };
  } else if (origin === "theme") {
    body.theme = byId("insight-theme").value;
  } else {
    body.feedback_ids = byId("insight-feedback").value.split(/[\s,]+/).filter(Boolean).map(Number);
  }
  if (origin !== "feedback") ["from", "to", "tz"].forEach((k) => { body[k] = range.get(k); });
  try {
    const created = await api("insights", null, "POST", body);
    byId("new-insight").reset();
    showOrigin();
    status("Created “" + created.title + "” with " + created.linked.feedback + " comments.");
    await showBoard();
  } catch (error) { fail(error); }
}

// Criteria are explorer filters: [title, label group of the value].
const CRITERIA = {
  stage: ["Stage", "stage"], channel: ["Channel", "channel"], kind: ["Kind", "kind"], theme: ["Theme", "theme"],
  sentiment: ["Sentiment", "sentiment"], trigger: ["Survey", "trigger"], acquisition: ["Acquisition", "acquisition"],
  source: ["Source", "source"], score_min: ["Score at least"], score_max: ["Score at most"], product: ["Product"], q: ["Words"],
};
function criteriaText(criteria) {
  const parts = Object.entries(criteria).map(([k, v]) => {
    const [title, group] = CRITERIA[k] || [k];
    return title + ": " + String(v).split(",").map((x) => (group ? label(group, x) : x)).join(", ");
  });
  return parts.length ? parts.join(", ") : "no matching criteria";
}

function explorerLink(criteria) {
  const query = rangeParams(90);
  Object.entries(criteria).forEach(([k, v]) => query.set(k, v));
  return "/dashboard/explorer?" + query;
}

const VERDICTS = {
  better: "better", worse: "worse", no_clear_change: "no clear change", too_few_answers: "too few answers", too_early: "too early",
};

/** Before/after over equal windows (at least c.min_days each), with n and a z-test per metric. */
function comparisonTable(c) {
  const box = el("div", "comparison-box");
  const days = Math.round(c.window_days * 10) / 10;
  box.append(el("p", "comparison__note" + (c.too_early ? " comparison__note--early" : ""), c.too_early
    ? "Too early to tell: " + Math.floor(c.window_days) + " of the " + c.min_days + " days each side have passed; the comparison is ready on " + c.ready_at.slice(0, 10) + "."
    : days + " days before vs " + days + " days after. A change is called better or worse only when a z-test gives p < 0.05 with at least " +
      c.min_answers + " answers on each side."));
  const table = el("table", "comparison");
  table.dataset.field = "comparison";
  const head = el("tr");
  // Too early: the figures so far with their n, no change and no verdict.
  (c.too_early ? ["", "before", "after"] : ["", "before", "after", "change", "verdict"]).forEach((h) => head.append(el("th", "", h)));
  table.append(head);
  const rows = [
    ["CSAT %", (s) => s.csat.percent, (s) => s.csat.responses, "csat"], ["NPS", (s) => s.nps.score, (s) => s.nps.responses, "nps"],
    ["CES", (s) => s.ces.mean, (s) => s.ces.responses, "ces"], ["Negative %", (s) => s.negative.percent, (s) => s.volume, "negative"],
    ["Sentiment", (s) => s.sentiment.mean, (s) => s.sentiment.count, "sentiment"], ["Volume", (s) => s.volume, null, "volume"],
  ];
  rows.forEach(([name, get, n, key]) => {
    const before = get(c.before), after = get(c.after);
    const tr = el("tr");
    tr.dataset.metric = key;
    let change = "";
    if (!c.too_early && typeof before === "number" && typeof after === "number") {
      const delta = Math.round((after - before) * 100) / 100;
      change = (delta > 0 ? "+" : "") + delta;
    }
    const test = (c.tests || {})[key];
    let verdict = "", cls = "";
    if (test) {
      verdict = VERDICTS[test.verdict] + (test.p_value !== null && test.verdict !== "too_few_answers" ? " (p = " + test.p_value + ")" : "");
      if (test.verdict === "better" || test.verdict === "worse") cls = test.verdict;
    }
    const side = (s, value) => fmt(value) + (n ? " (n " + n(s) + ")" : "");
    tr.append(el("td", "", name), el("td", "figure", side(c.before, before)), el("td", "figure", side(c.after, after)));
    if (!c.too_early) tr.append(el("td", cls, change), el("td", cls + " verdict", verdict));
    table.append(tr);
  });
  const scroll = el("div", "comparison__scroll");
  scroll.append(table);
  box.append(scroll);
  return box;
}

function applyForm(item, card) {
  const form = el("form", "apply-form");
  const dateLabel = el("label", "", "Went live on");
  const date = el("input");
  date.type = "date";
  date.name = "applied_at";
  date.max = isoDay(new Date());
  date.value = isoDay(new Date());
  dateLabel.append(date);
  const tell = el("label", "inline");
  const box = el("input");
  box.type = "checkbox";
  box.name = "notify";
  box.disabled = !item.customer_message;
  tell.append(box, document.createTextNode(item.customer_message
    ? "Tell " + plural(item.linked.reachable_customers, "customer") + " in their next chat"
    : "Write a customer message first to tell the customers"));
  const confirm = el("button", "button", "Confirm applied");
  confirm.type = "submit";
  form.append(dateLabel, tell, confirm);
  form.onsubmit = (event) => {
    event.preventDefault();
    move(item, { status: "applied", applied_at: date.value, notify: box.checked });
  };
  card.append(form);
  date.focus();
}

async function move(item, body) {
  try {
    await api("insights/" + item.id + "/status", null, "POST", body);
    status("“" + item.title + "” is now " + body.status.replace("_", " ") + ".");
    await showBoard();
  } catch (error) { fail(error); }
}

function messageEditor(item, card) {
  if (item.notify_until) {
    card.append(el("p", "muted", "Told to " + item.linked.told + " of " + plural(item.linked.reachable_customers, "customer") +
      ": “" + item.customer_message + "”"));
    return;
  }
  const label = el("label", "", "Message to the customers");
  const text = el("textarea");
  text.maxLength = 500;
  text.value = item.customer_message || "";
  const save = el("button", "button button--ghost", "Save message");
  save.type = "button";
  save.onclick = async () => {
    try {
      await api("insights/" + item.id, null, "PATCH", { customer_message: text.value.trim() || null });
      status("Message saved.");
      await showBoard();
    } catch (error) { fail(error); }
  };
  label.append(text);
  card.append(label, save);
}

function card(item) {
  const node = el("article", "card");
  node.dataset.insightId = String(item.id);
  node.append(el("h3", "", item.title));
  const meta = el("p", "muted");
  meta.append(el("span", "tag", item.owner_team), document.createTextNode(" from a " + item.origin + " · " + item.created_at.slice(0, 10)));
  node.append(meta);
  const about = el("p", "");
  const link = el("a", "", criteriaText(item.criteria));
  link.href = explorerLink(item.criteria);
  about.append(link);
  node.append(about);
  const linked = el("p", "", plural(item.linked.feedback, "comment") + " from " + plural(item.linked.customers, "customer") +
    " · " + item.volume + " matching in 12 weeks");
  linked.dataset.field = "linked";
  node.append(linked);
  if (item.note) node.append(el("p", "muted", item.note));
  const chart = el("div", "chart");
  const canvas = el("canvas");
  canvas.dataset.chart = "trend-" + item.id;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", "Weekly matching feedback");
  chart.append(canvas);
  node.append(chart);
  if (item.applied_at) node.append(el("p", "", "Applied " + item.applied_at.slice(0, 10) + " — before vs after:"));
  if (item.comparison) node.append(comparisonTable(item.comparison));
  if (item.status !== "wont_do") messageEditor(item, node);
  const actions = el("div", "actions");
  item.next_statuses.forEach((next) => {
    const button = el("button", next === "wont_do" ? "button button--ghost" : "button", ACTIONS[next]);
    button.type = "button";
    button.onclick = () => (next === "applied" ? applyForm(item, node) : move(item, { status: next }));
    actions.append(button);
  });
  node.append(actions);
  return [node, () => drawChart(canvas, {
    type: "bar",
    data: { labels: item.trend.map((w) => w.start),
            datasets: [{ label: "matching", data: item.trend.map((w) => w.volume), backgroundColor: "#93c5fd" },
                       { label: "negative", data: item.trend.map((w) => w.negative), backgroundColor: "#b91c1c" }] },
    options: { plugins: { legend: { display: false } }, scales: { x: { display: false }, y: { display: false } } },
  })];
}

async function showBoard() {
  const data = await api("insights");
  const board = byId("board");
  clear(board);
  const draws = [];
  COLUMNS.forEach(([key, label]) => {
    const col = el("section", "board__col");
    col.dataset.status = key;
    const items = data.insights.filter((i) => i.status === key);
    col.append(el("h2", "", label + " (" + items.length + ")"));
    items.forEach((item) => {
      const [node, draw] = card(item);
      col.append(node);
      draws.push(draw);
    });
    board.append(col);
  });
  draws.forEach((draw) => draw());
}

async function boot() {
  setupPage("insights", 90);
  const themes = byId("insight-theme");
  await loadLabels();
  values("theme").forEach((t) => { const o = el("option", "", label("theme", t)); o.value = t; themes.append(o); });
  if (params.get("theme")) { byId("insight-origin").value = "theme"; themes.value = params.get("theme"); }
  if (params.get("origin") === "pitfall") byId("insight-origin").value = "pitfall";  // from the journey map
  if (params.get("origin") === "feedback") {  // from the rows picked in the comment explorer
    byId("insight-origin").value = "feedback";
    byId("insight-feedback").value = (params.get("feedback") || "").split(",").filter(Boolean).join(", ");
  }
  byId("insight-origin").onchange = showOrigin;
  byId("new-insight").onsubmit = create;
  showOrigin();
  await Promise.all([loadPitfalls(), showBoard()]);
}

status("Loading…");
boot().then(() => { status(""); document.body.dataset.ready = "true"; }, fail);
