/*
 * DOM helpers shared by the staff console and the dashboard (ES module, served at
 * /static/shared/dom.js). CSP-safe: no inline code, no innerHTML; every text is set with
 * textContent.
 */

/** A new element with an optional class and text. */
export function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = String(text);
  return node;
}

/** Remove every child of `node`. */
export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
}

export function byId(id) {
  return document.getElementById(id);
}

/** "2026-03-12": a date's UTC day. */
export function isoDay(date) {
  return date.toISOString().slice(0, 10);
}
