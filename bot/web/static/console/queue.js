/*
 * Console queue page (/console/): escalated conversations by priority and age, filter tabs,
 * Claim buttons, unread counts (also in the tab title), live refresh on
 * {"type":"queue_changed"} and {"type":"customer_message"} frames. CX managers see it
 * read-only. Helpers: console.js.
 */
import C from "./console.js";

(function () {
  "use strict";

  var FILTERS = { all: true, mine: true, unassigned: true };
  var EMPTY_TEXT = {
    all: "No conversations are waiting. 🎉",
    unassigned: "No conversations are waiting. 🎉",
    mine: "You have no claimed conversations right now."
  };
  var TICK_MS = 10000;
  var DEBOUNCE_MS = 300;

  var table = C.byId("queue-table");
  var body = C.byId("queue-body");
  var empty = C.byId("empty");
  var loadingNote = C.byId("loading");
  var summary = C.byId("summary");
  var filterButtons = document.querySelectorAll(".filter");

  var params = new URLSearchParams(location.search);
  var filter = FILTERS[params.get("filter")] ? params.get("filter") : "all";
  var me = null;
  var items = [];
  var fetchedAt = 0;
  var loading = false;
  var reloadAfter = false;
  var debounceTimer = null;

  function conversationUrl(item) {
    return "/console/conversations/" + encodeURIComponent(String(item.conversation_id));
  }

  function customerName(customer) {
    if (!customer) { return "Anonymous visitor"; }
    return customer.name || customer.email || customer.external_id || "Customer #" + customer.id;
  }

  function claimedByText(claimedBy) {
    if (!claimedBy) { return "Claimed"; }
    if (me && claimedBy.id === me.id) { return "Claimed by you"; }
    return "Claimed by " + String(claimedBy.display_name || "someone");
  }

  function waitingSeconds(item) {
    return (Number(item.waiting_seconds) || 0) + (Date.now() - fetchedAt) / 1000;
  }

  // ---- rendering ----------------------------------------------------------------------
  function cell(row, className, text) {
    var td = C.el("td", className, text);
    row.appendChild(td);
    return td;
  }

  function renderRow(item) {
    var waiting = item.status === "waiting";
    // Flagged for follow-up (an unhappy complaint, a low score): nobody is waiting live.
    var flagged = waiting && !!item.follow_up;
    var unread = Number(item.unread) || 0;
    var row = C.el("tr", "row row--" + (waiting ? "waiting" : "claimed") + (unread ? " row--unread" : ""));
    row.setAttribute("data-escalation-id", String(item.escalation_id));
    row.setAttribute("data-conversation-id", String(item.conversation_id));

    var reason = cell(row, "cell-reason", C.reasonLabel(item.reason));
    // Still queued while the customer talks to the bot again (issue #17).
    if (item.back_with_bot) { reason.appendChild(C.el("span", "cell-note", "customer back with the bot")); }
    if (flagged && item.conversation_id) { reason.appendChild(C.el("span", "cell-note", "flagged, not waiting: the customer is with the bot")); }
    cell(row, "cell-priority").appendChild(C.priorityBadges(item));

    var who = cell(row, "cell-customer");
    // A closed-loop follow-up (detractor from the call center, email, ...) has no chat:
    // no conversation page; its summary, due time and contact are shown in the row.
    var followUp = !item.conversation_id;
    var link = C.el(followUp ? "span" : "a", "row__link", customerName(item.customer));
    if (!followUp) {
      link.href = conversationUrl(item);
      link.setAttribute("data-kind", "link");
    }
    who.appendChild(link);
    if (unread) {
      var badge = C.el("span", "unread", String(unread));
      badge.appendChild(C.el("span", "visually-hidden", unread === 1 ? " unread message" : " unread messages"));
      who.appendChild(badge);
    }
    if (followUp) {
      var contact = item.customer && item.customer.email ? ": " + item.customer.email : "";
      who.appendChild(C.el("span", "cell-note", "Follow-up by phone or email" + contact));
    } else if (!item.customer) { who.appendChild(C.el("span", "cell-note", "not verified")); }
    if (item.stage) { who.appendChild(C.el("span", "cell-note cell-note--stage", "Stage: " + C.humanize(item.stage))); }

    cell(row, "cell-stage", item.stage ? C.humanize(item.stage) : "—");

    var last = cell(row, "cell-last");
    var lastMessage = item.last_message;
    if (followUp && item.summary) {
      var due = item.due_at ? " · due " + new Date(item.due_at).toLocaleString() : "";
      var note = C.el("span", "truncate", String(item.summary) + due);
      note.title = String(item.summary) + due;
      last.appendChild(note);
    } else if (lastMessage && lastMessage.text) {
      // The customer's last words (the API leaves out bot replies and system notes).
      var span = C.el("span", "truncate", String(lastMessage.text));
      span.title = String(lastMessage.text);
      last.appendChild(span);
    } else {
      last.textContent = "—";
    }

    var wait = cell(row, "cell-waiting", C.formatDuration(waitingSeconds(item)));
    wait.setAttribute("data-waiting", "");

    cell(row, "cell-status", flagged ? "Follow-up" : waiting ? "Waiting" : claimedByText(item.claimed_by));

    var action = cell(row, "cell-action");
    if (!C.canAct(me)) {
      // Read-only (CX managers): nothing to claim or resolve.
    } else if (waiting) {
      var claim = C.el("button", "button button--primary button--small", "Claim");
      claim.type = "button";
      claim.setAttribute("data-kind", "claim");
      claim.addEventListener("click", function () { claimItem(item, claim); });
      action.appendChild(claim);
    } else if (followUp && me && item.claimed_by && item.claimed_by.id === me.id) {
      var resolve = C.el("button", "button button--small", "Resolve");
      resolve.type = "button";
      resolve.setAttribute("data-kind", "resolve");
      resolve.addEventListener("click", function () { resolveFollowUp(item, resolve); });
      action.appendChild(resolve);
    }

    // The whole row opens the conversation for mouse users; keyboard users have the link.
    row.addEventListener("click", function (event) {
      if (followUp) { return; }
      if (event.target.closest("a, button")) { return; }
      if (window.getSelection && String(window.getSelection())) { return; } // selecting text
      location.assign(link.href);
    });
    return row;
  }

  function render() {
    // Keep the keyboard focus on the same row's link or button across re-renders.
    var focusRow = null;
    var focusKind = null;
    var active = document.activeElement;
    if (active && body.contains(active)) {
      var tr = active.closest("tr");
      focusRow = tr && tr.getAttribute("data-escalation-id");
      focusKind = active.getAttribute("data-kind");
    }

    C.clear(body);
    items.forEach(function (item) { body.appendChild(renderRow(item)); });
    loadingNote.hidden = true;
    table.hidden = items.length === 0;
    empty.hidden = items.length !== 0;
    empty.textContent = EMPTY_TEXT[filter];

    var waitingCount = items.filter(function (i) { return i.status === "waiting" && !i.follow_up; }).length;
    summary.textContent = items.length === 0 ? "" :
      items.length + (items.length === 1 ? " conversation" : " conversations") +
      " · " + waitingCount + " waiting";
    // Unread: the customer's new messages in what is mine to answer (waiting or claimed by me).
    var unreadCount = items.reduce(function (sum, i) {
      var relevant = i.status === "waiting" || (me && i.claimed_by && i.claimed_by.id === me.id);
      return sum + (relevant ? Number(i.unread) || 0 : 0);
    }, 0);
    var counts = [];
    if (unreadCount) { counts.push(unreadCount + " unread"); }
    if (waitingCount) { counts.push(waitingCount + " waiting"); }
    document.title = (counts.length ? "(" + counts.join(", ") + ") " : "") + "Queue · Support console";

    if (focusRow !== null) {
      var again = body.querySelector('tr[data-escalation-id="' + focusRow.replace(/["\\]/g, "") + '"]');
      var target = again && (again.querySelector('[data-kind="' + focusKind + '"]') ||
        again.querySelector('[data-kind="link"]'));
      if (target) {
        target.focus();
      } else {
        document.querySelector('.filter[aria-pressed="true"]').focus();
      }
    }
  }

  function tick() {
    var rows = body.querySelectorAll("tr[data-escalation-id]");
    for (var i = 0; i < rows.length && i < items.length; i++) {
      rows[i].querySelector("[data-waiting]").textContent = C.formatDuration(waitingSeconds(items[i]));
    }
  }

  // ---- loading ------------------------------------------------------------------------
  function load() {
    if (loading) {
      reloadAfter = true;
      return;
    }
    loading = true;
    var requested = filter;
    C.api("GET", "/queue?filter=" + encodeURIComponent(filter)).then(function (data) {
      if (requested !== filter) { return; } // the filter changed meanwhile: reloadAfter is set
      items = data && Array.isArray(data.items) ? data.items : [];
      fetchedAt = Date.now();
      render();
    }, function (error) {
      loadingNote.hidden = true;
      C.showError(error);
    }).then(function () {
      loading = false;
      if (reloadAfter) {
        reloadAfter = false;
        load();
      }
    });
  }

  function loadSoon() {
    if (debounceTimer !== null) { clearTimeout(debounceTimer); }
    debounceTimer = setTimeout(function () {
      debounceTimer = null;
      load();
    }, DEBOUNCE_MS);
  }

  function claimItem(item, button) {
    button.disabled = true;
    C.showStatus("Claiming…", "info");
    C.api("POST", "/escalations/" + encodeURIComponent(String(item.escalation_id)) + "/claim")
      .then(function () {
        if (!item.conversation_id) {
          C.showStatus("Claimed. Follow up with the customer, then resolve it here.", "ok");
          load();
          return;
        }
        C.showStatus("Claimed. Opening the conversation…", "ok");
        location.assign(conversationUrl(item));
      }, function (error) {
        button.disabled = false;
        C.showError(error); // 409: "Alex claimed this a moment ago."
        load();
      });
  }

  function resolveFollowUp(item, button) {
    button.disabled = true;
    C.api("POST", "/escalations/" + encodeURIComponent(String(item.escalation_id)) + "/resolve")
      .then(function () {
        C.showStatus("Resolved. The customer gets a short survey in their next chat.", "ok");
        load();
      }, function (error) {
        button.disabled = false;
        C.showError(error);
        load();
      });
  }

  // ---- filters ------------------------------------------------------------------------
  function setFilter(value) {
    filter = value;
    for (var i = 0; i < filterButtons.length; i++) {
      var b = filterButtons[i];
      b.setAttribute("aria-pressed", b.getAttribute("data-filter") === value ? "true" : "false");
    }
    var url = new URL(location.href);
    if (value === "all") { url.searchParams.delete("filter"); } else { url.searchParams.set("filter", value); }
    history.replaceState(null, "", url.pathname + url.search);
  }

  Array.prototype.forEach.call(filterButtons, function (button) {
    button.addEventListener("click", function () {
      var value = button.getAttribute("data-filter");
      if (value === filter) { return; }
      setFilter(value);
      C.showStatus("", null);
      load();
    });
  });

  // ---- start --------------------------------------------------------------------------
  setFilter(filter);
  C.start().then(function (user) {
    me = user;
    C.alertToggle(me);
    if (!C.canAct(me)) {
      C.byId("readonly").hidden = false;
      C.byId("filter-mine").hidden = true;
    }
    load();
    setInterval(tick, TICK_MS);
    C.live({
      onOpen: function (send, reconnected) {
        send({ type: "watch", conversation_id: null });
        if (reconnected) { load(); } // we may have missed changes while offline
      },
      onFrame: function (frame) {
        if (frame.type === "queue_changed" || frame.type === "customer_message") { loadSoon(); }
        if (frame.type === "customer_message") {
          C.alertCustomerMessage("", "/console/conversations/" + encodeURIComponent(String(frame.conversation_id)));
        }
      }
    });
  }, function (error) {
    loadingNote.hidden = true;
    C.showError(error);
  });
})();
