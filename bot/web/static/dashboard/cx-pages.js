/*
 * Helpers of the loyalty and insight pages (ES module). CSP-safe: no inline code, no
 * innerHTML; every text is set with textContent. Charts: the vendored Chart.js (global).
 */

import { byId, isoDay } from "/static/shared/dom.js";

export { byId, clear, el, isoDay } from "/static/shared/dom.js";
export const params = new URLSearchParams(location.search);
const charts = {};
let csrfToken = null;

export function fmt(value, suffix) {
  if (value === null || value === undefined) return "–";
  // one decimal at most: "33.3", not "33.3333" (a tester, on the bot page)
  const shown = typeof value === "number" && !Number.isInteger(value) ? Math.round(value * 10) / 10 : value;
  return String(shown) + (suffix || "");
}
export function status(text, kind) {
  const node = byId("status");
  node.textContent = text || "";
  node.className = "status" + (kind ? " status--" + kind : "");
}
export function plural(n, word) { return n + " " + word + (n === 1 ? "" : "s"); }

/** from/to/tz of the query string, defaulting to the last `days` days in UTC. */
export function rangeParams(days) {
  const out = new URLSearchParams();
  const today = new Date();
  out.set("from", params.get("from") || isoDay(new Date(today.getTime() - (days - 1) * 86400000)));
  out.set("to", params.get("to") || isoDay(today));
  out.set("tz", params.get("tz") || "UTC");
  return out;
}

async function csrf() {
  if (csrfToken) return csrfToken;
  const response = await fetch("/console/api/me", { credentials: "same-origin", cache: "no-store" });
  const body = await response.json().catch(() => null);
  csrfToken = body && body.csrf_token;
  return csrfToken;
}

/** JSON API call; errors become exceptions with the server's message. */
export async function api(path, query, method, body) {
  const url = "/api/" + path + (query ? "?" + query.toString() : "");
  const init = { method: method || "GET", credentials: "same-origin", cache: "no-store",
                 headers: { Accept: "application/json" } };
  if (init.method !== "GET") {
    init.headers["X-CSRF-Token"] = await csrf();
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body || {});
  }
  const response = await fetch(url, init);
  if (response.status === 401) {
    location.assign("/console/login?next=" + encodeURIComponent(location.pathname + location.search));
    throw new Error("Please sign in.");
  }
  const data = await response.json().catch(() => null);
  if (!response.ok) {
    throw new Error(data && data.error ? data.error.message : "Request failed (" + response.status + ").");
  }
  return data;
}

export function drawChart(canvas, config) {
  const key = canvas.id || canvas.dataset.chart;
  if (charts[key]) charts[key].destroy();
  if (typeof Chart === "undefined") { status("The charting library did not load.", "error"); return; }
  config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false },
                                 config.options || {});
  charts[key] = new Chart(canvas, config); // eslint-disable-line no-undef
}

/** Wire the shared top bar and the range form (fields with ids range-*). */
export function setupPage(view, days, extraFields) {
  // Links keep the range the user chose here (each page has its own default otherwise).
  const chosen = new URLSearchParams();
  ["from", "to", "tz"].forEach((name) => { if (params.get(name)) chosen.set(name, params.get(name)); });
  document.querySelectorAll(".topbar__nav a").forEach((a) => {
    if (a.dataset.view === view) a.setAttribute("aria-current", "page");
    a.href = a.getAttribute("href").split("?")[0] + (chosen.toString() ? "?" + chosen : "");
  });
  const range = rangeParams(days);
  byId("range-from").value = range.get("from");
  byId("range-to").value = range.get("to");
  byId("range-tz").value = range.get("tz");
  (extraFields || []).forEach((name) => { if (params.get(name)) byId("range-" + name).value = params.get(name); });
  byId("range-form").onsubmit = (event) => {
    event.preventDefault();
    ["from", "to", "tz", ...(extraFields || [])].forEach((name) => {
      const value = byId("range-" + name).value.trim();
      if (value) params.set(name, value); else params.delete(name);
    });
    location.assign(location.pathname + "?" + params);
  };
}

export function fail(error) { status(error.message || String(error), "error"); }
