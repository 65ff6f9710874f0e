/* Bot page (issue #24): /api/bot-quality, how well the bot understands, with n; and
   /api/bot-quality/retrainings, the same figures before and after each change of model. */
import { api, byId, clear, el, fail, fmt, plural, rangeParams, setupPage, status } from "./cx-pages.js";

function pct(rate) { return rate === null || rate === undefined ? "–" : (Math.round(rate * 1000) / 10) + " %"; }

function kpi(id, label, value, note) {
  const card = el("div", "kpi");
  card.id = "kpi-" + id;
  card.append(el("div", "kpi__label", label), el("div", "kpi__value", value), el("div", "kpi__previous", note));
  return card;
}

const COLUMNS = [
  ["Conversations (n)", (f) => String(f.conversations)],
  ["Messages (n)", (f) => String(f.turns)],
  ["Containment", (f) => pct(f.containment)],
  ["Fallback rate", (f) => pct(f.fallback_rate)],
  ["Misunderstanding hand-over", (f) => pct(f.misunderstanding_handover_rate)],
  ["Rephrase rate", (f) => pct(f.rephrase_rate)],
  ["Flagged per 100 conversations", (f) => fmt(f.flagged_per_100_conversations)],
  ["Helpful (n rated)", (f) => pct(f.helpful_rate) + " (" + f.answers_rated + ")"],
];

// Rows of a before/after table: [label, value, n].
const COMPARED = [
  ["Conversations (n)", (f) => String(f.conversations), () => ""],
  ["Messages (n)", (f) => String(f.turns), () => ""],
  ["Containment", (f) => pct(f.containment), (f) => f.contained + " of " + f.conversations],
  ["Fallback rate", (f) => pct(f.fallback_rate), (f) => f.fallbacks + " of " + f.turns],
  ["Misunderstanding hand-over", (f) => pct(f.misunderstanding_handover_rate), (f) => f.misunderstanding_handovers + " of " + f.conversations],
  ["Rephrase rate", (f) => pct(f.rephrase_rate), (f) => f.rephrases + " of " + f.turns],
  ["Flagged messages", (f) => pct(f.flagged_rate), (f) => f.flagged_turns + " of " + f.turns],
  ["Flagged per 100 conversations", (f) => fmt(f.flagged_per_100_conversations), () => ""],
  ["Answers rated helpful", (f) => pct(f.helpful_rate), (f) => f.helpful + " of " + f.answers_rated],
];

function shortId(id) { return String(id).slice(0, 8); }
function day(iso) { return new Date(iso).toISOString().slice(0, 16).replace("T", " ") + " UTC"; }

function retrainingTable(change, index) {
  const wrap = el("div", "table-scroll");
  const node = el("table", "table");
  node.id = "retraining-" + index;
  node.dataset.model = change.model_id;
  const caption = el("caption", "",
    "Model " + shortId(change.previous_model_id) + " → " + shortId(change.model_id) +
    ", changed " + day(change.changed_at) + "; " + fmt(change.window_days) + " days each side");
  node.append(caption);
  const head = el("tr");
  ["Figure", "Before", "After", "n before", "n after"].forEach((title, i) => {
    const th = el("th", i ? "num" : "", title);
    th.scope = "col";
    head.append(th);
  });
  node.append(head);
  COMPARED.forEach(([label, value, n]) => {
    const tr = el("tr");
    tr.dataset.key = label;
    const th = el("th", "", label);
    th.scope = "row";
    tr.append(th, el("td", "num", value(change.before)), el("td", "num", value(change.after)),
      el("td", "num", n(change.before)), el("td", "num", n(change.after)));
    node.append(tr);
  });
  wrap.append(node);
  return wrap;
}

async function showRetrainings() {
  const data = await api("bot-quality/retrainings", new URLSearchParams({ window_days: "7" }));
  const box = byId("retrainings");
  clear(box);
  const changes = data.retrainings.slice(0, 3);
  if (!changes.length) {
    box.append(el("p", "muted", data.models.length
      ? "One model so far (" + shortId(data.models[0].model_id) + "): nothing to compare yet."
      : "No model recorded yet."));
    return;
  }
  changes.forEach((change, i) => box.append(retrainingTable(change, i)));
}

function table(node, first, rows, key) {
  clear(node);
  const head = el("tr");
  const th = el("th", "", first);
  th.scope = "col";
  head.append(th);
  COLUMNS.forEach(([title]) => { const c = el("th", "num", title); c.scope = "col"; head.append(c); });
  node.append(head);
  rows.forEach((row) => {
    const tr = el("tr");
    tr.dataset.key = row[key];
    const name = el("th", "", row[key]);
    name.scope = "row";
    tr.append(name);
    COLUMNS.forEach(([, value]) => tr.append(el("td", "num", value(row))));
    node.append(tr);
  });
  if (!rows.length) {
    const tr = el("tr");
    const td = el("td", "muted", "No customer messages in this range.");
    td.colSpan = COLUMNS.length + 1;
    tr.append(td);
    node.append(tr);
  }
}

async function show() {
  const data = await api("bot-quality", rangeParams(90));
  const o = data.overall;
  const box = byId("kpis");
  clear(box);
  box.append(
    kpi("containment", "Containment", pct(o.containment), o.contained + " of " + plural(o.conversations, "conversation") + " without a person"),
    kpi("fallback", "Fallback rate", pct(o.fallback_rate), o.fallbacks + " of " + plural(o.turns, "message")),
    kpi("handover", "Misunderstanding hand-over", pct(o.misunderstanding_handover_rate), o.misunderstanding_handovers + " of " + plural(o.conversations, "conversation")),
    kpi("rephrase", "Rephrase rate", pct(o.rephrase_rate), o.rephrases + " of " + plural(o.turns, "message")),
    kpi("flagged", "Flagged per 100 conversations", fmt(o.flagged_per_100_conversations), plural(o.flagged_turns, "flagged message")),
    kpi("helpful", "Did this help?", pct(o.helpful_rate), o.helpful + " yes of " + plural(o.answers_rated, "rated answer")),
  );
  table(byId("week-table"), "Week", data.by_week, "week");
  table(byId("intent-table"), "Intent", data.by_intent, "intent");
}

setupPage("bot", 90);
status("Loading…");
Promise.all([show(), showRetrainings()]).then(() => { status(""); document.body.dataset.ready = "true"; }, fail);
