/*
 * Console conversation page (/console/conversations/{id}): the transcript with internal
 * notes inline, the composer (reply or note, canned replies), Claim / Take over / Release /
 * Transfer… / Resolve / Reopen, the customer's side panel, live updates over /console/ws,
 * the read marker (unread counts) and new messages counted in the tab title while hidden.
 * CX managers read it only. Helpers: console.js.
 */
import C from "./console.js";

(function () {
  "use strict";

  var STAGES = ["discovery", "research", "purchase", "use", "support"];
  // Senders with a look of their own (console.css .msg--*); any other shows as system.
  var MESSAGE_CLASSES = ["customer", "bot", "agent", "system"];
  var CONVERSATION_STATES = {
    bot: "With the bot", waiting_for_agent: "Waiting for an agent",
    with_agent: "With an agent", closed: "Closed"
  };
  var SCALES = { csat: 5, ces: 7, nps: 10 };
  var LANGUAGE_NAMES = {
    de: "German", fr: "French", es: "Spanish", it: "Italian", nl: "Dutch", pt: "Portuguese",
    pl: "Polish", sv: "Swedish", da: "Danish"
  };
  var KINDS = { one_time: "One-time purchase", subscription_period: "Subscription period" };
  var HINT = "Enter to send, Shift+Enter for a new line.";
  var RESOLVE_TEXT = "Resolve & hand back to bot";
  var CONFIRM_TEXT = "Really resolve?";

  var match = /^\/console\/conversations\/([^/]+)\/?$/.exec(location.pathname);
  var conversationId = match ? decodeURIComponent(match[1]) : "";
  var apiBase = "/conversations/" + encodeURIComponent(conversationId);

  var log = C.byId("log");
  var title = C.byId("conv-title");
  var meta = C.byId("conv-meta");
  var stateLine = C.byId("conv-state");
  var presenceLine = C.byId("conv-presence");
  var claimButton = C.byId("claim");
  var takeOverButton = C.byId("takeover");
  var reopenButton = C.byId("reopen");
  var releaseButton = C.byId("release");
  var cannedPick = C.byId("canned-pick");
  var cannedSelect = C.byId("canned");
  var transferButton = C.byId("transfer");
  var transferPanel = C.byId("transfer-panel");
  var transferSelect = C.byId("transfer-to");
  var transferConfirm = C.byId("transfer-confirm");
  var transferCancel = C.byId("transfer-cancel");
  var resolveButton = C.byId("resolve");
  var resolveCancel = C.byId("resolve-cancel");
  var form = C.byId("composer");
  var textarea = C.byId("composer-text");
  var sendButton = C.byId("send");
  var hint = C.byId("composer-hint");
  var radios = form.querySelectorAll('input[name="mode"]');
  var customerBody = C.byId("customer-body");

  var me = null;
  var conversation = null;
  var escalation = null;
  var customer = null;
  var mode = "reply";
  var sending = false;
  var resolveArmedAt = 0;
  var shown = {}; // "m<id>" / "n<id>" -> true
  var lastMessageId = 0;
  var readUpTo = 0;
  var unseen = 0; // the customer's messages that arrived while the tab was hidden
  var transferForce = false;
  var canned = [];

  // ---- small helpers --------------------------------------------------------------------
  function unwrap(data, key) {
    return data && data[key] && typeof data[key] === "object" ? data[key] : data;
  }

  function isActive() {
    return !!escalation && (escalation.status === "waiting" || escalation.status === "claimed") &&
      !(conversation && conversation.status === "closed");
  }

  function claimedByMe() {
    return !!(escalation && escalation.claimed_by && me && escalation.claimed_by.id === me.id);
  }

  function customerTitle() {
    if (!customer) { return "Anonymous visitor"; }
    return customer.name || customer.email || customer.external_id || "Customer #" + customer.id;
  }

  // ---- the transcript -------------------------------------------------------------------
  // Follow new messages while the agent is at the bottom; leave them alone when scrolled up.
  var pinned = true;
  function scrollToEnd() {
    log.scrollTop = log.scrollHeight;
    pinned = true;
  }
  log.addEventListener("scroll", function () {
    pinned = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  });
  if (window.ResizeObserver) {
    new ResizeObserver(function () { if (pinned) { log.scrollTop = log.scrollHeight; } }).observe(log);
  }

  // Inserts in time order (live items are nearly always last, so search from the end).
  function insert(item, iso, stick) {
    var date = C.parseTime(iso);
    var ms = date ? date.getTime() : Date.now();
    item.setAttribute("data-time", String(ms));
    var after = log.lastElementChild;
    while (after && Number(after.getAttribute("data-time")) > ms) { after = after.previousElementSibling; }
    log.insertBefore(item, after ? after.nextSibling : log.firstChild);
    if (stick || pinned) { scrollToEnd(); }
  }

  function head(item, label, iso) {
    var line = C.el("p", "msg__head");
    line.appendChild(C.el("span", "msg__who", label));
    line.appendChild(document.createTextNode(" "));
    line.appendChild(C.timeElement(iso, "msg__time"));
    item.appendChild(line);
  }

  // Order cards (issue #19 item 3; docs/widget.md): what the customer saw instead of the
  // message's text (its plain-text fallback), read-only here.
  var CARD_STATUS = { placed: "Placed", shipped: "Shipped", delivered: "Delivered",
                      returned: "Returned", refunded: "Refunded", cancelled: "Cancelled" };
  var cardCount = 0;

  function cardFact(list, name, value) {
    list.appendChild(C.el("dt", "card__term", name));
    var dd = C.el("dd", "card__value");
    if (typeof value === "string") { dd.textContent = value; } else { dd.appendChild(value); }
    list.appendChild(dd);
  }

  function renderCards(cards) {
    var list = C.el("ul", "cards");
    list.setAttribute("aria-label", cards.length === 1 ? "Order card" : "Order cards");
    cards.forEach(function (card) {
      if (!card || typeof card.number !== "string") { return; }
      var headingId = "order-card-" + (++cardCount);
      var article = C.el("article", "card");
      article.setAttribute("aria-labelledby", headingId);
      var heading = C.el("h3", "card__title", "Order " + card.number);
      heading.id = headingId;
      article.appendChild(heading);
      var facts = C.el("dl", "card__facts");
      var placed = C.el("time", null, String(card.date || ""));
      placed.setAttribute("datetime", String(card.date || ""));
      cardFact(facts, "Ordered", placed);
      cardFact(facts, "Status", CARD_STATUS[card.status] || String(card.status));
      if (typeof card.tracking_url === "string" && /^https:\/\//.test(card.tracking_url)) {
        var track = C.el("a", null, [card.carrier, card.tracking_number].filter(Boolean).join(" ") || "Track parcel");
        track.href = card.tracking_url;
        track.target = "_blank";
        track.rel = "noopener noreferrer";
        track.appendChild(C.el("span", "visually-hidden", ", opens in a new tab"));
        cardFact(facts, "Tracking", track);
      } else if (card.tracking_number) {
        cardFact(facts, "Tracking", [card.carrier, card.tracking_number].filter(Boolean).join(" "));
      }
      article.appendChild(facts);
      var items = C.el("ul", "card__items");
      items.setAttribute("aria-label", "Items");
      (Array.isArray(card.items) ? card.items : []).forEach(function (i) {
        items.appendChild(C.el("li", null, String(i.quantity) + " × " + String(i.name)));
      });
      article.appendChild(items);
      if (typeof card.payload === "string") {
        article.appendChild(C.el("p", "card__offer", "Offered as a choice"));
      }
      var entry = C.el("li", "cards__item");
      entry.appendChild(article);
      list.appendChild(entry);
    });
    return list;
  }

  function addMessage(m, forceScroll) {
    if (!m || m.id === undefined || m.id === null || shown["m" + m.id]) { return; }
    shown["m" + m.id] = true;
    if (Number(m.id) > lastMessageId) { lastMessageId = Number(m.id); }
    var sender = MESSAGE_CLASSES.indexOf(m.sender) >= 0 ? m.sender : "system";
    var item = C.el("li", "msg msg--" + sender);
    item.setAttribute("data-message-id", String(m.id));
    head(item, sender === "agent" && m.author ? String(m.author) : C.label("sender", sender), m.time);
    var buttons = Array.isArray(m.buttons) ? m.buttons : [];
    var cards = Array.isArray(m.cards) ? m.cards : [];
    if (cards.length) {
      item.appendChild(renderCards(cards));
      var picks = cards.map(function (c) { return c && c.payload; });
      buttons = buttons.filter(function (b) { return !b || picks.indexOf(b.payload) < 0; });
    } else {
      item.appendChild(C.el("p", "msg__text", m.text === null || m.text === undefined ? "" : m.text));
    }
    if (m.photo !== undefined && m.photo !== null) { item.appendChild(photoLink(m.photo, m.time)); }
    if (buttons.length) {
      var list = C.el("ul", "msg__buttons");
      list.setAttribute("aria-label", "Buttons offered");
      buttons.forEach(function (b) {
        var label = b && typeof b === "object" ? (b.title || b.payload) : b;
        if (label !== undefined && label !== null && label !== "") { list.appendChild(C.el("li", "chip", label)); }
      });
      item.appendChild(list);
    }
    insert(item, m.time, forceScroll);
  }

  // Photos the customer attached (issue #19): served to staff only, by /console/api/photos/{id}.
  var photos = [];
  function photoUrl(id) { return "/console/api/photos/" + encodeURIComponent(String(id)); }
  function photoLink(id, iso) {
    var link = C.el("a", "msg__photo-link");
    link.href = photoUrl(id);
    link.target = "_blank";
    link.rel = "noopener";
    var image = C.el("img", "msg__photo");
    image.src = photoUrl(id);
    image.alt = "Photo from the customer, " + C.formatDate(iso) + " (opens full size)";
    image.loading = "lazy";
    link.appendChild(image);
    return link;
  }
  function notePhoto(m) {
    if (m.photo === undefined || m.photo === null) { return false; }
    for (var i = 0; i < photos.length; i++) { if (photos[i].id === m.photo) { return false; } }
    photos.unshift({ id: m.photo, created_at: m.time, order_number: null });
    return true;
  }
  function photoSection() {
    section("Photos", photos, "No photos sent.", function (li, p) {
      li.classList.add("entry--photo");
      li.appendChild(photoLink(p.id, p.created_at));
      li.appendChild(C.el("p", "entry__meta", [
        p.order_number ? "Damage report · order " + p.order_number : null,
        C.formatDate(p.created_at)
      ].filter(Boolean).join(" · ")));
    });
  }

  function addNote(n, forceScroll) {
    if (!n || n.id === undefined || n.id === null || shown["n" + n.id]) { return; }
    shown["n" + n.id] = true;
    var item = C.el("li", "msg msg--note");
    item.setAttribute("data-note-id", String(n.id));
    head(item, "Internal note · " + String(n.author || "staff"), n.time);
    item.appendChild(C.el("p", "msg__text", n.text === null || n.text === undefined ? "" : n.text));
    insert(item, n.time, forceScroll);
  }

  // ---- header, buttons and composer state ------------------------------------------------
  function stateText() {
    if (conversation && conversation.status === "closed") { return "This conversation is closed."; }
    if (!escalation) { return "No open escalation: the bot is handling this conversation."; }
    if (escalation.status === "waiting") {
      return "Waiting for an agent since " + C.formatTime(escalation.created_at) + ".";
    }
    if (escalation.status === "claimed") {
      if (claimedByMe()) { return "Claimed by you: the customer sees your replies live."; }
      return "Claimed by " + String((escalation.claimed_by && escalation.claimed_by.display_name) || "someone") + ".";
    }
    return "Handed back to the bot";
  }

  // "Customer left / came back" (issue #20): whether the customer has the chat open.
  function renderPresence(online) {
    presenceLine.setAttribute("data-online", online ? "true" : "false");
    presenceLine.textContent = online ? "The customer is in the chat."
      : "The customer has left the chat: they see your replies when they come back.";
  }

  function renderHeader() {
    title.textContent = customerTitle();
    showTitle();
    var parts = [];
    if (conversation) { parts.push(CONVERSATION_STATES[conversation.status] || C.humanize(conversation.status)); }
    // The language the customer wrote in when it was not English (issue #17).
    if (conversation && conversation.language) {
      parts.push("Writes in " + (LANGUAGE_NAMES[conversation.language] || String(conversation.language).toUpperCase()));
    }
    if (escalation) {
      parts.push(C.reasonLabel(escalation.reason));
      if (escalation.priority_label) { parts.push("Priority: " + C.priorityLabel(escalation.priority_label).toLowerCase()); }
      if (escalation.contact_email) { parts.push("Contact: " + escalation.contact_email); }
    }
    meta.textContent = parts.join(" · ");
    var text = stateText();
    if (stateLine.textContent !== text) { stateLine.textContent = text; }
    stateLine.setAttribute("data-state", escalation ? String(escalation.status) : "none");

    var active = isActive();
    var acts = C.canAct(me);
    var mine = claimedByMe() || (!!me && me.role === "admin");
    var claimed = active && escalation.status === "claimed";
    claimButton.hidden = !(acts && active && escalation.status === "waiting");
    takeOverButton.hidden = !(acts && claimed && !claimedByMe());
    releaseButton.hidden = !(acts && claimed && mine);
    // Transfer and resolve: what you hold (or, for a waiting one, may take); an admin any.
    transferButton.hidden = !(acts && active && (!claimed || mine));
    resolveButton.hidden = !(acts && active && (!claimed || mine));
    reopenButton.hidden = !(acts && escalation && escalation.status === "resolved" && escalation.conversation_id &&
      !(conversation && conversation.status === "closed"));
    if (!active) {
      disarmResolve();
      closeTransfer(false);
    }
    updateComposer();
  }

  function updateComposer() {
    var enabled = isActive() && conversation !== null && C.canAct(me);
    cannedPick.hidden = !enabled || mode !== "reply" || !canned.length;
    textarea.disabled = !enabled;
    sendButton.disabled = !enabled || sending;
    for (var i = 0; i < radios.length; i++) { radios[i].disabled = !enabled; }
    form.classList.toggle("composer--note", mode === "note");
    form.classList.toggle("composer--disabled", !enabled);
    textarea.placeholder = mode === "note"
      ? "Internal note: only staff can see it…" : "Reply to the customer…";
    if (me && !C.canAct(me)) {
      hint.textContent = "Read-only: CX managers can read conversations; agents answer them.";
    } else if (!enabled) {
      hint.textContent = escalation && escalation.status === "resolved"
        ? "Handed back to the bot. The composer is closed." : "There is nothing to answer here right now.";
    } else if (mode === "reply" && escalation.status === "claimed" && !claimedByMe()) {
      hint.textContent = String((escalation.claimed_by && escalation.claimed_by.display_name) || "Someone else") +
        " has this conversation: only they can reply. Internal notes work any time.";
    } else if (mode === "reply" && !claimedByMe()) {
      hint.textContent = "Claim this conversation to reply to the customer. Internal notes work any time.";
    } else {
      hint.textContent = HINT;
    }
  }

  function applyEscalation(esc) {
    if (!esc || typeof esc !== "object") { return; }
    escalation = esc;
    if (conversation && conversation.status !== "closed") {
      conversation.status = esc.status === "waiting" ? "waiting_for_agent"
        : esc.status === "claimed" ? "with_agent" : "bot";
    }
    renderHeader();
    // The customer panel lists this escalation too ("(this one)"): keep its status in step.
    var listed = customer && Array.isArray(customer.escalations) ? customer.escalations : [];
    for (var i = 0; i < listed.length; i++) {
      if (listed[i] && listed[i].id === esc.id && listed[i].status !== esc.status) {
        listed[i].status = esc.status;
        renderCustomer();
        break;
      }
    }
  }

  // ---- Claim ---------------------------------------------------------------------------
  claimButton.addEventListener("click", function () {
    if (!escalation) { return; }
    claimButton.disabled = true;
    C.api("POST", "/escalations/" + encodeURIComponent(String(escalation.id)) + "/claim").then(function (data) {
      claimButton.disabled = false;
      applyEscalation(unwrap(data, "escalation"));
      C.showStatus("You claimed this conversation. Your replies go to the customer live.", "ok");
      textarea.focus();
    }, function (error) {
      claimButton.disabled = false;
      C.showError(error); // 409: somebody else was quicker
      load();
    });
  });

  // ---- Take over / Release / Reopen ------------------------------------------------------
  function escalationAction(button, action, done) {
    button.addEventListener("click", function () {
      if (!escalation) { return; }
      button.disabled = true;
      C.api("POST", "/escalations/" + encodeURIComponent(String(escalation.id)) + "/" + action).then(function (data) {
        button.disabled = false;
        applyEscalation(unwrap(data, "escalation"));
        C.showStatus(done, "ok");
        if (!textarea.disabled) { textarea.focus(); } else { log.focus(); }
      }, function (error) {
        button.disabled = false;
        C.showError(error); // 409 claim_active: "… is online and active …"
        load();
      });
    });
  }
  escalationAction(takeOverButton, "takeover", "You took over this conversation. Your replies go to the customer live.");
  escalationAction(releaseButton, "release", "Released: the conversation waits in the queue for the next agent.");
  escalationAction(reopenButton, "reopen", "Reopened: the conversation is yours, the bot is paused.");

  // ---- Transfer… -------------------------------------------------------------------------
  function armTransfer(force) {
    transferForce = force;
    transferConfirm.textContent = force ? "Transfer anyway" : "Transfer now";
  }

  function closeTransfer(returnFocus) {
    armTransfer(false);
    transferPanel.hidden = true;
    transferButton.setAttribute("aria-expanded", "false");
    if (returnFocus && !transferButton.hidden) { transferButton.focus(); }
  }

  function fillStaff(staff) {
    C.clear(transferSelect);
    var others = (Array.isArray(staff) ? staff : []).filter(function (s) { return !me || s.id !== me.id; });
    others.sort(function (a, b) { return (b.online ? 1 : 0) - (a.online ? 1 : 0); });
    others.forEach(function (s) {
      var label = String(s.display_name) + " (" + C.roleLabel(s.role) + ") · " + (s.online ? "online" : "offline");
      transferSelect.appendChild(new Option(label, String(s.id)));
    });
    if (!others.length) {
      var none = new Option("Nobody else to transfer to", "");
      none.disabled = true;
      transferSelect.appendChild(none);
    }
    transferConfirm.disabled = !others.length;
  }

  transferButton.addEventListener("click", function () {
    if (!transferPanel.hidden) {
      closeTransfer(true);
      return;
    }
    disarmResolve();
    transferPanel.hidden = false;
    transferButton.setAttribute("aria-expanded", "true");
    C.clear(transferSelect);
    transferSelect.appendChild(new Option("Loading staff…", ""));
    transferConfirm.disabled = true;
    transferSelect.focus();
    C.api("GET", "/staff").then(function (data) {
      fillStaff(Array.isArray(data) ? data : data && data.items);
    }, function (error) {
      C.showError(error);
      closeTransfer(true);
    });
  });

  transferConfirm.addEventListener("click", function () {
    var id = Number(transferSelect.value);
    if (!escalation || !transferSelect.value || isNaN(id)) { return; }
    var name = transferSelect.options[transferSelect.selectedIndex].text.replace(/ \(.*$/, "");
    transferConfirm.disabled = true;
    C.api("POST", "/escalations/" + encodeURIComponent(String(escalation.id)) + "/transfer",
      { staff_user_id: id, force: transferForce }).then(function (data) {
      transferConfirm.disabled = false;
      closeTransfer(true);
      applyEscalation(unwrap(data, "escalation"));
      C.showStatus("Transferred to " + name + ".", "ok");
    }, function (error) {
      transferConfirm.disabled = false;
      C.showError(error); // 409 agent_offline: "… is offline … Transfer anyway?"
      if (error.code === "agent_offline") {
        armTransfer(true);
        transferConfirm.focus();
      }
    });
  });
  transferSelect.addEventListener("change", function () { armTransfer(false); });

  transferCancel.addEventListener("click", function () { closeTransfer(true); });
  transferPanel.addEventListener("keydown", function (event) {
    if (event.key === "Escape") {
      event.preventDefault();
      closeTransfer(true);
    }
  });

  // ---- Resolve: a second click on "Really resolve?" confirms ----------------------------
  function disarmResolve() {
    if (!resolveArmedAt) { return; }
    resolveArmedAt = 0;
    resolveButton.textContent = RESOLVE_TEXT;
    resolveButton.classList.remove("button--armed");
    resolveCancel.hidden = true;
  }

  resolveButton.addEventListener("click", function () {
    if (!escalation) { return; }
    if (!resolveArmedAt) {
      closeTransfer(false);
      resolveArmedAt = Date.now();
      resolveButton.textContent = CONFIRM_TEXT;
      resolveButton.classList.add("button--armed");
      resolveCancel.hidden = false;
      // The survey only when the transactional rule lets it (survey_after_resolve).
      C.showStatus((conversation && conversation.survey_after_resolve
        ? "The bot takes over again and asks the customer a short survey. "
        : "The bot takes over again and tells the customer their request is resolved " +
          "(no survey: they answered or declined one recently). ") +
        "Click “" + CONFIRM_TEXT + "” to confirm.", "info");
      return;
    }
    if (Date.now() - resolveArmedAt < 400) { return; } // a double click is not a confirmation
    resolveButton.disabled = true;
    C.api("POST", "/escalations/" + encodeURIComponent(String(escalation.id)) + "/resolve").then(function (data) {
      resolveButton.disabled = false;
      var esc = unwrap(data, "escalation");
      if (!esc || !esc.status) {
        esc = {};
        for (var key in escalation) { if (Object.prototype.hasOwnProperty.call(escalation, key)) { esc[key] = escalation[key]; } }
        esc.status = "resolved";
      }
      applyEscalation(esc);
      C.showStatus(data && data.handed_back === "survey"
        ? "Handed back to the bot: it asked the customer a short survey."
        : data && data.handed_back === "closing"
          ? "Handed back to the bot: the customer was told their request is resolved (no survey)."
          : "Handed back to the bot.", "ok");
      log.focus();
    }, function (error) {
      resolveButton.disabled = false;
      disarmResolve();
      C.showError(error);
    });
  });

  resolveCancel.addEventListener("click", function () {
    disarmResolve();
    C.showStatus("", null);
    resolveButton.focus();
  });
  resolveButton.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && resolveArmedAt) {
      event.preventDefault();
      disarmResolve();
      C.showStatus("", null);
    }
  });

  // ---- the composer ----------------------------------------------------------------------
  Array.prototype.forEach.call(radios, function (radio) {
    radio.addEventListener("change", function () {
      if (radio.checked) {
        mode = radio.value === "note" ? "note" : "reply";
        updateComposer();
      }
    });
  });

  // ---- "typing…" in the customer's chat (issue #20) ---------------------------------------
  // While the agent types a reply: "on" at most every TYPING_REPEAT_MS (the server throttles
  // too), "off" when sent, emptied, or after TYPING_IDLE_MS without a key.
  var TYPING_REPEAT_MS = 2000;
  var TYPING_IDLE_MS = 4000;
  var liveSocket = null;
  var typingSentAt = 0;
  var typingIdle = null;

  function typingOff() {
    if (typingIdle !== null) { clearTimeout(typingIdle); typingIdle = null; }
    if (typingSentAt && liveSocket) { liveSocket.send({ type: "typing", on: false }); }
    typingSentAt = 0;
  }

  textarea.addEventListener("input", function () {
    if (mode !== "reply" || textarea.disabled || !liveSocket || !textarea.value.trim()) {
      typingOff();
      return;
    }
    typingOn();
    if (typingIdle !== null) { clearTimeout(typingIdle); }
    typingIdle = setTimeout(typingOff, TYPING_IDLE_MS);
  });

  // Counted as sent only when it went out: typed while the socket was still connecting, it
  // goes out with the next key or when the socket opens (a short reply was otherwise never
  // shown as typing).
  function typingOn() {
    var now = Date.now();
    if (now - typingSentAt >= TYPING_REPEAT_MS && liveSocket.send({ type: "typing", on: true })) {
      typingSentAt = now;
    }
  }

  function submit() {
    typingOff();
    var text = textarea.value.trim();
    if (sending || textarea.disabled) { return; }
    if (!text) {
      C.showStatus("Write something first.", "error");
      textarea.focus();
      return;
    }
    var asNote = mode === "note";
    sending = true;
    updateComposer();
    C.api("POST", apiBase + (asNote ? "/notes" : "/messages"), { text: text }).then(function (data) {
      if (asNote) { addNote(unwrap(data, "note"), true); } else { addMessage(unwrap(data, "message"), true); }
      scrollToEnd(); // also when the live echo got here first
      textarea.value = "";
      C.showStatus("", null);
    }, function (error) {
      C.showError(error); // 409 when the conversation is not claimed by you: text stays
    }).then(function () {
      sending = false;
      updateComposer();
      if (!textarea.disabled) { textarea.focus(); }
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    submit();
  });
  textarea.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      submit();
    }
  });

  // ---- read marker and the tab title ----------------------------------------------------
  function baseTitle() { return customerTitle() + " · Support console"; }

  function showTitle() {
    document.title = (unseen ? "(" + unseen + ") " : "") + baseTitle();
  }

  // Tell the server what this agent has read (the queue's unread counts), while visible.
  function markRead() {
    if (document.hidden || !lastMessageId || lastMessageId <= readUpTo) { return; }
    var upTo = lastMessageId;
    C.api("POST", apiBase + "/read", { message_id: upTo }).then(function (data) {
      readUpTo = Math.max(readUpTo, Number(data && data.last_read_message_id) || upTo);
    }, function () { /* not critical: the next message or visit tries again */ });
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) { return; }
    unseen = 0;
    showTitle();
    markRead();
  });

  // ---- canned replies ---------------------------------------------------------------------
  function loadCanned() {
    if (!C.canAct(me)) { return; }
    C.api("GET", "/canned?conversation_id=" + encodeURIComponent(conversationId)).then(function (data) {
      canned = data && Array.isArray(data.items) ? data.items : [];
      while (cannedSelect.options.length > 1) { cannedSelect.remove(1); }
      canned.forEach(function (c) {
        cannedSelect.appendChild(new Option(String(c.title) + " (/" + String(c.shortcut) + ")", String(c.id)));
      });
      updateComposer();
    }, function () { canned = []; });
  }

  function insertCanned(item) {
    var text = String(item.filled || item.text || "");
    textarea.value = textarea.value.trim() ? textarea.value.replace(/\s*$/, " ") + text : text;
    textarea.focus();
    textarea.setSelectionRange(textarea.value.length, textarea.value.length);
    if (text.indexOf("{") !== -1) {
      C.showStatus("Fill in what is still in {braces} before sending.", "info");
    }
  }

  cannedSelect.addEventListener("change", function () {
    var id = Number(cannedSelect.value);
    cannedSelect.value = "";
    canned.forEach(function (c) { if (c.id === id) { insertCanned(c); } });
  });

  // "/shortcut" then Tab: the whole message box or its last word becomes the reply.
  textarea.addEventListener("keydown", function (event) {
    if (event.key !== "Tab" || event.shiftKey || mode !== "reply") { return; }
    var found = /(^|\s)\/([a-z0-9_-]+)$/.exec(textarea.value);
    if (!found) { return; }
    var match = null;
    canned.forEach(function (c) { if (c.shortcut === found[2]) { match = c; } });
    if (!match) { return; }
    event.preventDefault();
    textarea.value = textarea.value.slice(0, textarea.value.length - found[2].length - 1);
    insertCanned(match);
  });

  // ---- the customer panel ----------------------------------------------------------------
  function facts(parent, rows) {
    var list = C.el("dl", "facts");
    rows.forEach(function (row) {
      list.appendChild(C.el("dt", "", row[0]));
      list.appendChild(C.el("dd", "", row[1] === null || row[1] === undefined || row[1] === "" ? "—" : row[1]));
    });
    parent.appendChild(list);
  }

  function section(heading, entries, emptyText, renderEntry) {
    var box = C.el("section", "panel-section");
    box.appendChild(C.el("h3", "panel-section__title", heading));
    var list = Array.isArray(entries) ? entries : [];
    if (!list.length) {
      box.appendChild(C.el("p", "panel-section__empty", emptyText));
    } else {
      var ul = C.el("ul", "entries");
      list.forEach(function (entry) {
        var li = C.el("li", "entry");
        renderEntry(li, entry);
        ul.appendChild(li);
      });
      box.appendChild(ul);
    }
    customerBody.appendChild(box);
  }

  function stepper(stage, current) {
    var reached = STAGES.indexOf(stage);
    var list = C.el("ol", "stepper");
    list.setAttribute("aria-label", "Stage");
    STAGES.forEach(function (name, index) {
      var step = C.el("li", "stepper__step", C.humanize(name));
      if (index < reached) {
        step.classList.add("stepper__step--done");
        step.appendChild(C.el("span", "visually-hidden", " (passed)"));
      } else if (index === reached) {
        step.classList.add(current ? "stepper__step--current" : "stepper__step--last");
        if (current) { step.setAttribute("aria-current", "step"); }
        if (!current) { step.appendChild(C.el("span", "visually-hidden", " (last stage)")); }
      }
      list.appendChild(step);
    });
    return list;
  }

  function openedTime(l) {
    var d = C.parseTime(l.opened_at);
    return d ? d.getTime() : 0;
  }

  function renderCustomer() {
    C.clear(customerBody);
    if (!customer) {
      customerBody.appendChild(C.el("p", "customer__name", "Anonymous visitor (not verified)"));
      customerBody.appendChild(C.el("p", "customer__note",
        "The visitor has not signed in or verified an order, so no orders or history are shown."));
      if (escalation && escalation.contact_email) { facts(customerBody, [["Contact email", escalation.contact_email]]); }
      if (photos.length) { photoSection(); }
      return;
    }
    customerBody.appendChild(C.el("p", "customer__name", customer.name || "Name unknown"));
    facts(customerBody, [
      ["Email", customer.email],
      ["External ID", customer.external_id],
      ["Acquired via", customer.acquisition_source ? C.sourceLabel(customer.acquisition_source) : null]
    ]);

    var lifecycles = (Array.isArray(customer.lifecycles) ? customer.lifecycles : []).slice();
    lifecycles.sort(function (a, b) {
      if (!a.closed_at !== !b.closed_at) { return a.closed_at ? 1 : -1; }
      return openedTime(b) - openedTime(a);
    });
    section("Lifecycles", lifecycles, "No lifecycles yet.", function (li, l) {
      var current = !l.closed_at && l === lifecycles[0];
      li.classList.add(current ? "entry--current" : "entry--past");
      var line = C.el("p", "entry__title", KINDS[l.kind] || C.humanize(l.kind));
      if (l.order_number) { line.appendChild(document.createTextNode(" · Order " + l.order_number)); }
      line.appendChild(C.el("span", "badge" + (current ? " badge--current" : ""),
        current ? "Current" : l.closed_at ? "Closed" : "Open"));
      li.appendChild(line);
      li.appendChild(C.el("p", "entry__meta", "Opened " + C.formatDate(l.opened_at) +
        (l.closed_at ? " · closed " + C.formatDate(l.closed_at) : "") + " · stage " + C.humanize(l.stage)));
      li.appendChild(stepper(l.stage, current));
    });

    if (photos.length) { photoSection(); }

    section("Orders", customer.orders, "No orders.", function (li, o) {
      var line = C.el("p", "entry__title", "Order " + String(o.number));
      line.appendChild(C.el("span", "badge badge--" + String(o.status), C.humanize(o.status)));
      li.appendChild(line);
      li.appendChild(C.el("p", "entry__meta", C.formatMoney(o.total, o.currency) + " · placed " + C.formatDate(o.placed_at)));
    });

    // Item-level returns (issue #19): reference, order, and per item what, why, refund or replacement.
    if (customer.returns && customer.returns.length) {
      section("Returns", customer.returns, "", function (li, r) {
        li.appendChild(C.el("p", "entry__title", "Return " + String(r.reference) + " · order " + String(r.order_number)));
        var list = C.el("ul", "entry__items");
        r.items.forEach(function (item) {
          // An exchange for another size names the size; a missing item is sent again or refunded.
          var resolution = item.resolution === "replacement"
            ? (item.exchange_size ? "exchange for size " + String(item.exchange_size)
              : item.reason === "missing" ? "send again" : "replacement")
            : "refund " + C.formatMoney(item.refund_amount, r.currency);
          list.appendChild(C.el("li", null, item.quantity + "× " + item.name + " · " +
            (item.reason === "missing" ? "Missing from the parcel" : C.humanize(item.reason)) + " · " + resolution));
        });
        li.appendChild(list);
        li.appendChild(C.el("p", "entry__meta", "Opened " + C.formatDate(r.created_at)));
      });
    }

    section("Subscriptions", customer.subscriptions, "No subscriptions.", function (li, s) {
      var line = C.el("p", "entry__title", String(s.plan));
      line.appendChild(C.el("span", "badge badge--" + String(s.status), C.humanize(s.status)));
      li.appendChild(line);
    });

    section("Previous feedback", customer.feedback, "No feedback yet.", function (li, f) {
      var label = C.feedbackKindLabel(f.kind);
      if (f.score !== null && f.score !== undefined) {
        label += " " + f.score + (SCALES[f.kind] ? "/" + SCALES[f.kind] : "");
      }
      li.appendChild(C.el("p", "entry__title", label));
      if (f.text) { li.appendChild(C.el("p", "entry__quote", f.text)); }
      li.appendChild(C.el("p", "entry__meta", [
        f.stage ? "stage " + C.humanize(f.stage) : null,
        f.channel ? C.humanize(f.channel) : null,
        C.formatDate(f.time)
      ].filter(Boolean).join(" · ")));
    });

    section("Previous escalations", customer.escalations, "No earlier escalations.", function (li, e) {
      var line = C.el("p", "entry__title", C.reasonLabel(e.reason));
      if (escalation && e.id === escalation.id) { line.appendChild(document.createTextNode(" (this one)")); }
      line.appendChild(C.el("span", "badge badge--" + String(e.status), C.humanize(e.status)));
      li.appendChild(line);
      li.appendChild(C.el("p", "entry__meta", C.formatDate(e.created_at)));
    });
  }

  // ---- loading and live updates ----------------------------------------------------------
  function apply(data) {
    conversation = data.conversation || { id: conversationId, status: "bot" };
    escalation = data.escalation || null;
    customer = data.customer || null;
    photos = Array.isArray(data.photos) ? data.photos : [];
    var first = log.childElementCount === 0;
    if (first) { log.setAttribute("aria-live", "off"); } // don't read out the whole history
    (Array.isArray(data.messages) ? data.messages : []).forEach(function (m) { addMessage(m, first); });
    (Array.isArray(data.notes) ? data.notes : []).forEach(function (n) { addNote(n, first); });
    renderHeader();
    renderCustomer();
    renderPresence(!!conversation.customer_online);
    if (first) {
      scrollToEnd();
      setTimeout(function () { log.setAttribute("aria-live", "polite"); }, 0);
    }
    markRead();
  }

  function load() {
    return C.api("GET", apiBase).then(apply, function (error) {
      if (error.status === 404) {
        title.textContent = "Conversation not found";
        C.clear(customerBody);
        updateComposer();
      }
      C.showError(error);
    });
  }

  function onFrame(frame) {
    if (frame.conversation_id !== conversationId) { return; }
    if (frame.type === "message") {
      var isNew = frame.message && !shown["m" + frame.message.id];
      addMessage(frame.message, false);
      if (isNew && frame.message && notePhoto(frame.message)) { renderCustomer(); }
      if (isNew && frame.message.sender === "customer" && document.hidden) {
        unseen += 1;
        showTitle();
      }
      if (isNew && frame.message.sender === "customer") {
        C.alertCustomerMessage(String(frame.message.text || ""), null);
      }
      markRead();
    } else if (frame.type === "note") {
      addNote(frame.note, false);
    } else if (frame.type === "escalation") {
      applyEscalation(frame.escalation);
    } else if (frame.type === "customer_presence") {
      renderPresence(!!frame.online);
    }
  }

  updateComposer();
  if (!conversationId) {
    title.textContent = "Conversation not found";
    C.showStatus("This address does not name a conversation.", "error");
    return;
  }
  C.start().then(function (user) {
    me = user;
    C.alertToggle(me);
    loadCanned();
    return load();
  }).then(function () {
    liveSocket = C.live({
      onOpen: function (send, reconnected) {
        send({ type: "watch", conversation_id: conversationId });
        if (typingIdle !== null) { typingSentAt = 0; typingOn(); } // typed while connecting
        if (reconnected) { load(); } // fill in what arrived while we were offline
      },
      onFrame: onFrame
    });
  }, function (error) {
    C.showError(error);
  });
})();
