/* Loyalty page: /api/loyalty (figures) and /api/loyalty/cohorts (retention table). */
import { api, byId, clear, drawChart, el, fail, fmt, params, plural, rangeParams, setupPage, status } from "./cx-pages.js";
import { label, loadLabels } from "/static/shared/labels.js";

let minAnswers = 10;  // the API's min_answers (DASHBOARD_MIN_ANSWERS)

const GROUPS = [
  ["by_csat", "CSAT of the lifecycle", { satisfied: "satisfied (4–5)", neutral: "neutral", dissatisfied: "dissatisfied (1–2)", no_answer: "no CSAT answer" }],
  ["by_nps", "NPS of the lifecycle", { promoter: "promoter (9–10)", passive: "passive (7–8)", detractor: "detractor (0–6)", no_answer: "no NPS answer" }],
  ["by_support", "Support", { none: "no support", support_contact: "support, no hand-over", escalated: "escalated to a person" }],
  ["by_acquisition", "Acquisition source", {}],
];

function kpi(id, label, value, note) {
  const card = el("div", "kpi");
  card.id = "kpi-" + id;
  const number = el("div", "kpi__value", value);
  card.append(el("div", "kpi__label", label), number, el("div", "kpi__previous", note));
  return card;
}

function showKpis(data) {
  const box = byId("kpis");
  clear(box);
  const r = data.repeat, l = data.lifecycles, n = data.renewal, o = data.return_rate.overall;
  box.append(
    kpi("repeat", "Repeat rate", fmt(r.rate, " %"),
      r.repeaters + " of " + plural(r.customers, "new customer") + " bought again within " + plural(data.window_days, "day") + "; " + r.pending + " pending"),
    kpi("lifecycles", "Lifecycles per customer", fmt(l.per_customer),
      plural(l.lifecycles, "lifecycle") + " of " + plural(l.customers, "customer") + " (" + l.new_customers + " new, " +
      l.returning_customers + " returning)"),
    kpi("renewal", "Subscription renewal", fmt(n.rate, " %"), n.renewed + " of " + plural(n.periods, "period") + " that ended " + (n.periods === 1 ? "was" : "were") + " renewed"),
    kpi("return", "Return rate", fmt(o.rate, " %"), o.returned + " of " + plural(o.lifecycles, "lifecycle") + " " + (o.lifecycles === 1 ? "was" : "were") + " followed by another"),
  );
}

function groupName(key, labels, groupKey) {
  return labels[groupKey] || label("acquisition", groupKey);
}

function groupPanel(key, title, labels, groups) {
  const box = el("section", "group");
  box.dataset.group = key;
  box.append(el("h3", "", title));
  const canvas = el("canvas");
  canvas.id = "chart-" + key;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", title);
  const chart = el("div", "chart chart--small");
  chart.append(canvas);
  const table = el("table", "table");
  const head = el("tr");
  ["Group", "Lifecycles", "Returned", "Return rate", "95 % interval"].forEach((h, i) => head.append(el("th", i ? "num" : "", h)));
  table.append(head);
  const few = (g) => g.lifecycles < minAnswers;
  groups.forEach((g) => {
    const tr = el("tr");
    tr.dataset.key = g.key;
    const rate = el("td", "num" + (few(g) && g.rate !== null ? " is-few" : ""),
      few(g) && g.rate !== null ? "too few (" + fmt(g.rate, " %") + ")" : fmt(g.rate, " %"));
    tr.append(el("td", "", groupName(key, labels, g.key)), el("td", "num", g.lifecycles), el("td", "num", g.returned), rate,
              el("td", "num", g.interval && !few(g) ? g.interval[0] + " – " + g.interval[1] + " %" : ""));
    table.append(tr);
  });
  const note = el("p", "muted legend", "n: lifecycles behind each bar; no bar on fewer than " + minAnswers + ".");
  box.append(chart, note, table);
  return [box, () => drawChart(canvas, {
    type: "bar",
    data: { labels: groups.map((g) => [groupName(key, labels, g.key), "n = " + g.lifecycles]),
            datasets: [{ label: "Return rate %", data: groups.map((g) => (few(g) ? null : g.rate)), backgroundColor: "#1d4ed8" }] },
    options: { scales: { y: { min: 0, max: 100 } }, plugins: { legend: { display: false } } },
  })];
}

function heat(percent) {
  if (percent === null || percent === undefined) return "";
  return " heat-" + Math.min(5, Math.floor(percent / 20));
}

function showCohorts(table) {
  const box = byId("cohort-table");
  clear(box);
  const head = el("tr");
  head.append(el("th", "", "First purchase"), el("th", "num", "Customers"));
  for (let k = 0; k < table.months; k += 1) head.append(el("th", "num", "M" + k));
  box.append(head);
  const rows = table.cohorts.concat([{ month: "all cohorts", customers: null, cells: table.average }]);
  rows.forEach((c) => {
    const tr = el("tr");
    tr.dataset.month = c.month;
    tr.append(el("td", "", c.month), el("td", "num", fmt(c.customers)));
    c.cells.forEach((cell) => {
      const td = el("td", "num" + heat(cell && cell.percent), cell ? fmt(cell.percent, " %") : "");
      if (cell) td.title = cell.customers + " customers";
      tr.append(td);
    });
    box.append(tr);
  });
  const labels = Array.from({ length: table.months }, (_, k) => "M" + k);
  const palette = ["#93c5fd", "#60a5fa", "#3b82f6", "#2563eb", "#1d4ed8", "#1e40af"];
  const datasets = table.cohorts.slice(-6).map((c, i) => ({
    label: c.month, data: c.cells.map((x) => (x ? x.percent : null)), borderColor: palette[i % palette.length], spanGaps: false, tension: 0.2,
  }));
  datasets.push({ label: "all cohorts", data: table.average.map((x) => (x ? x.percent : null)), borderColor: "#111827", borderWidth: 3 });
  drawChart(byId("cohort-chart"), { type: "line", data: { labels, datasets }, options: { scales: { y: { min: 0, max: 100 } } } });
}

async function show() {
  const query = rangeParams(365);
  if (params.get("window")) query.set("window", params.get("window"));
  const cohortQuery = rangeParams(365);
  if (params.get("months")) cohortQuery.set("months", params.get("months"));
  const [data, cohorts] = await Promise.all([api("loyalty", query), api("loyalty/cohorts", cohortQuery), loadLabels()]);
  minAnswers = data.min_answers;
  showKpis(data);
  const groups = byId("return-groups");
  clear(groups);
  const draws = GROUPS.map(([key, title, labels]) => {
    const [panel, draw] = groupPanel(key, title, labels, data.return_rate[key]);
    groups.append(panel);
    return draw;
  });
  draws.forEach((draw) => draw());
  showCohorts(cohorts);
}

setupPage("loyalty", 365, ["window", "months"]);
status("Loading…");
show().then(() => { status(""); document.body.dataset.ready = "true"; }, fail);
