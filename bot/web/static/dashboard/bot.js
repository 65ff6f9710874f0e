/* Bot page (issue #24): /api/bot-quality, how well the bot understands, with n. */
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
];

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
  );
  table(byId("week-table"), "Week", data.by_week, "week");
  table(byId("intent-table"), "Intent", data.by_intent, "intent");
}

setupPage("bot", 90);
status("Loading…");
show().then(() => { status(""); document.body.dataset.ready = "true"; }, fail);
