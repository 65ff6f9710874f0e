/*
 * Console history page (/console/history): resolved conversations (those the user may
 * read), searched by customer, order number, words and the day resolved; Open, and Reopen
 * for agents and admins (the chat is theirs again, the bot paused). Helpers: console.js.
 */
import C from "./console.js";

(function () {
  "use strict";

  var form = C.byId("search");
  var q = C.byId("q");
  var from = C.byId("from");
  var to = C.byId("to");
  var table = C.byId("history-table");
  var body = C.byId("history-body");
  var empty = C.byId("empty");
  var loadingNote = C.byId("loading");
  var summary = C.byId("summary");
  var me = null;

  function customerName(customer) {
    if (!customer) { return "Anonymous visitor"; }
    return customer.name || customer.email || customer.external_id || "Customer #" + customer.id;
  }

  function conversationUrl(item) {
    return "/console/conversations/" + encodeURIComponent(String(item.conversation_id));
  }

  function reopen(item, button) {
    button.disabled = true;
    C.api("POST", "/escalations/" + encodeURIComponent(String(item.id)) + "/reopen").then(function () {
      C.showStatus("Reopened. Opening the conversation…", "ok");
      location.assign(conversationUrl(item));
    }, function (error) {
      button.disabled = false;
      C.showError(error); // 409: escalated again meanwhile, or not the latest request
    });
  }

  function renderRow(item) {
    var row = C.el("tr", "row");
    row.setAttribute("data-escalation-id", String(item.id));
    var when = C.el("td", "cell-when");
    when.appendChild(C.timeElement(item.resolved_at));
    row.appendChild(when);
    var who = C.el("td", "cell-customer");
    var link = C.el("a", "row__link", customerName(item.customer));
    link.href = conversationUrl(item);
    who.appendChild(link);
    if (item.customer && item.customer.email && item.customer.name) {
      who.appendChild(C.el("span", "cell-note", item.customer.email));
    }
    row.appendChild(who);
    row.appendChild(C.el("td", "cell-reason", C.reasonLabel(item.reason)));
    var last = C.el("td", "cell-last");
    var text = item.last_message && item.last_message.text ? String(item.last_message.text) : "—";
    var span = C.el("span", "truncate", text);
    span.title = text;
    last.appendChild(span);
    row.appendChild(last);
    row.appendChild(C.el("td", "cell-by", item.claimed_by ? String(item.claimed_by.display_name) : "—"));
    var action = C.el("td", "cell-action");
    if (C.canAct(me)) {
      var button = C.el("button", "button button--small", "Reopen");
      button.type = "button";
      button.addEventListener("click", function () { reopen(item, button); });
      action.appendChild(button);
    }
    row.appendChild(action);
    return row;
  }

  function search() {
    var params = new URLSearchParams();
    if (q.value.trim()) { params.set("q", q.value.trim()); }
    if (from.value) { params.set("from", from.value); }
    if (to.value) { params.set("to", to.value); }
    var query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
    loadingNote.hidden = false;
    C.api("GET", "/history" + (query ? "?" + query : "")).then(function (data) {
      var items = data && Array.isArray(data.items) ? data.items : [];
      C.clear(body);
      items.forEach(function (item) { body.appendChild(renderRow(item)); });
      loadingNote.hidden = true;
      table.hidden = items.length === 0;
      empty.hidden = items.length !== 0;
      summary.textContent = items.length === 1 ? "1 conversation" :
        items.length + " conversations" + (items.length >= 50 ? " (the 50 most recent: narrow the search)" : "");
      C.showStatus("", null);
    }, function (error) {
      loadingNote.hidden = true;
      C.showError(error);
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    search();
  });
  C.byId("clear").addEventListener("click", function () {
    q.value = "";
    from.value = "";
    to.value = "";
    search();
    q.focus();
  });

  var params = new URLSearchParams(location.search);
  q.value = params.get("q") || "";
  from.value = params.get("from") || "";
  to.value = params.get("to") || "";
  C.start().then(function (user) {
    me = user;
    search();
  }, function (error) {
    loadingNote.hidden = true;
    C.showError(error);
  });
})();
