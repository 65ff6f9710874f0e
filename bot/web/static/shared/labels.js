/*
 * Human labels of the keys in the API's answers, for the dashboard and the console. The table
 * lives in one place, Python's bot/domain/labels.py, served by GET /api/labels; this module
 * only reads it (loadLabels once, before the first label). A key the
 * table does not know is humanised by the same rule as labels.humanise ("call_center" ->
 * "Call center"), so a raw key never reaches the screen.
 */

let table = { groups: {}, values: {}, in_chat_prefix: "in_chat:", in_chat: "In the chat, after {flow}" };

export async function loadLabels() {
  const response = await fetch("/api/labels", { credentials: "same-origin", headers: { Accept: "application/json" } });
  if (response.ok) table = await response.json();
}

export function humanise(key) {
  const text = String(key).replace(/_/g, " ").trim();
  return text.charAt(0).toUpperCase() + text.slice(1);
}

/** The label of `key` in `group` (a group of bot/domain/labels.py: stage, channel, kind, reason, role, ...). */
export function label(group, key) {
  if (key === null || key === undefined || key === "") return "";
  if (group === "trigger" && String(key).startsWith(table.in_chat_prefix)) {
    const flow = String(key).slice(table.in_chat_prefix.length);
    const flows = table.groups.flow || {};
    return table.in_chat.replace("{flow}", flows[flow] || humanise(flow).toLowerCase());
  }
  const known = (table.groups[group] || {})[key];
  return known || humanise(key);
}

/** Every value of `group` (stage, channel, kind, theme), in the order of Python's enums. */
export function values(group) {
  return (table.values || {})[group] || [];
}

/** "1 answer", "4 answers"; `many` for irregular plurals. */
export function plural(n, one, many) {
  return n + " " + (n === 1 ? one : many || one + "s");
}
