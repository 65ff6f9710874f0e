/*
 * Embeddable chat widget. A shop adds one tag to any page:
 *
 *   <script src="https://HOST/widget.js" data-identity="JWT-or-empty" data-title="Help" defer></script>
 *
 * With data-mode="page" the chat fills the page instead (the web service's own chat page,
 * `/`): no launcher, always open, connected at once, the title as the page's <h1>.
 *
 * Plain ES5-style JavaScript, no build step, no dependencies. Everything lives in an open
 * Shadow DOM root attached to <div id="shop-chat-widget">, so the shop's CSS cannot break
 * the widget and the widget's CSS cannot leak into the shop. Every text is rendered with
 * textContent; only http(s) URLs become links. See docs/widget.md for the protocol.
 */
(function () {
  "use strict";

  var HOST_ID = "shop-chat-widget";
  var MAX_CHARS = 2000;
  var RETRY_MIN_MS = 500;
  var RETRY_MAX_MS = 10000;
  var DROP_CODES = { message_too_long: true, empty_message: true, rate_limited: true };
  // An agent's typing indicator goes away without a repeat (the console repeats every 2 s).
  var TYPING_HIDE_MS = 6000;
  var TYPING_ANNOUNCE_GAP_MS = 30000;
  var SENDER_LABELS = { customer: "You", bot: "Assistant", agent: "Support", system: "Notice" };
  // The quick reply "Back to the assistant" offered while the customer waits for a person
  // (bot/domain/escalations.py BACK_TO_BOT_PAYLOAD): only for that wait (syncBackToBot).
  var BACK_TO_BOT_PAYLOAD = "talk to the bot";

  if (document.getElementById(HOST_ID)) {
    return; // the tag was included twice: one widget is enough
  }

  // ---- where we come from ------------------------------------------------------------
  var script = document.currentScript || document.querySelector('script[src$="/widget.js"]');
  var scriptUrl = new URL((script && script.src) || "/widget.js", location.href);
  var ORIGIN = scriptUrl.origin;
  var WS_URL = (scriptUrl.protocol === "https:" ? "wss://" : "ws://") + scriptUrl.host + "/ws";
  var identity = (script && script.getAttribute("data-identity")) || null;
  var TITLE = (script && script.getAttribute("data-title")) || "Chat with us";
  var PAGE = !!script && script.getAttribute("data-mode") === "page";
  // The chat page keeps its own conversation (its keys from before it ran this script), apart
  // from the widget on a shop page served from the same origin (the demo shop).
  var KEY_PREFIX = PAGE ? "chat-" : "shop-chat-";
  var TOKEN_KEY = KEY_PREFIX + "token";
  var OUTBOX_KEY = KEY_PREFIX + "outbox";
  var SUBJECT_KEY = KEY_PREFIX + "subject";
  // An emailed reply's link to the chat page: #resume=<signed token> continues that chat.
  var RESUME = /^#resume=(rl1\.[0-9a-f]+\.\d+\.[A-Za-z0-9_-]+)$/;

  // ---- storage that never throws (private mode, blocked storage, sandboxed frames) ----
  function storageGet(area, key) {
    try { return window[area].getItem(key); } catch (e) { return null; }
  }
  function storageSet(area, key, value) {
    try {
      if (value === null) { window[area].removeItem(key); } else { window[area].setItem(key, value); }
    } catch (e) { /* storage unavailable: the widget still works for this page view */ }
  }

  function uuid4() {
    var c = window.crypto;
    if (c && typeof c.randomUUID === "function") {
      try { return c.randomUUID(); } catch (e) { /* insecure context: fall through */ }
    }
    var bytes = new Uint8Array(16);
    if (c && typeof c.getRandomValues === "function") {
      c.getRandomValues(bytes);
    } else {
      for (var i = 0; i < 16; i++) { bytes[i] = Math.floor(Math.random() * 256); }
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = [];
    for (var j = 0; j < 16; j++) { hex.push((bytes[j] + 0x100).toString(16).slice(1)); }
    return hex.slice(0, 4).join("") + "-" + hex.slice(4, 6).join("") + "-" +
      hex.slice(6, 8).join("") + "-" + hex.slice(8, 10).join("") + "-" + hex.slice(10).join("");
  }

  // The customer id inside the identity token, read only to notice a change of customer on
  // this browser (the server verifies the token; nothing here trusts this value).
  function tokenSubject(jwt) {
    try {
      var part = jwt.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      while (part.length % 4) { part += "="; }
      var sub = JSON.parse(atob(part)).sub;
      return typeof sub === "string" ? sub : null;
    } catch (e) {
      return null;
    }
  }
  var subject = identity ? tokenSubject(identity) || "?" : null;

  if (PAGE) {
    var resume = RESUME.exec(location.hash);
    if (resume) {
      storageSet("localStorage", TOKEN_KEY, resume[1]);
      storageSet("localStorage", SUBJECT_KEY, null);
      storageSet("sessionStorage", OUTBOX_KEY, null); // typed in another chat: not this one's
      // Out of the address bar and the history: the link is a secret.
      history.replaceState(null, "", location.pathname + location.search);
    }
  }

  // A conversation started by a signed-in customer is not continued by somebody else on a
  // shared computer: after signing out, or as another customer, the chat starts afresh.
  var storedSubject = storageGet("localStorage", SUBJECT_KEY);
  if (storedSubject && storedSubject !== subject) {
    storageSet("localStorage", TOKEN_KEY, null);
    storageSet("localStorage", SUBJECT_KEY, null);
    storageSet("sessionStorage", OUTBOX_KEY, null);
  }

  // ---- state -------------------------------------------------------------------------
  var socket = null;
  var sessionReady = false;      // a session frame arrived on the current socket
  var hadSession = false;        // a session frame arrived on any socket of this page
  var chatStatus = "bot";        // bot | waiting_for_agent | with_agent | closed (server's word)
  var retryAttempt = 0;
  var retryTimer = null;
  var wantConnection = false;    // connect lazily: on open, or at once for known visitors
  var open = PAGE;                // the page is always open; the widget opens on a click
  var unread = 0;
  var renderedIds = {};          // server message id -> true
  var bubbles = {};              // client_id -> <li> of a customer bubble in the log
  var localClientIds = {};       // client_ids this tab rendered itself
  var earlyErrors = [];          // errors that arrived before the session frame
  var refused = false;           // the server refused this tab a session (e.g. too many new
                                 // chats from its network): no reconnect until "Try again"
  var outbox = loadOutbox();     // [{client_id, text, shown, time}] not yet acknowledged

  function loadOutbox() {
    try {
      var parsed = JSON.parse(storageGet("sessionStorage", OUTBOX_KEY) || "[]");
      if (!Array.isArray(parsed)) { return []; }
      return parsed.filter(function (m) {
        return m && typeof m.client_id === "string" && typeof m.text === "string";
      });
    } catch (e) {
      return [];
    }
  }
  function saveOutbox() {
    storageSet("sessionStorage", OUTBOX_KEY, outbox.length ? JSON.stringify(outbox) : null);
  }
  function inOutbox(clientId) {
    for (var i = 0; i < outbox.length; i++) {
      if (outbox[i].client_id === clientId) { return true; }
    }
    return false;
  }
  function dropFromOutbox(clientId) {
    var before = outbox.length;
    outbox = outbox.filter(function (m) { return m.client_id !== clientId; });
    if (outbox.length !== before) { saveOutbox(); }
  }
  outbox.forEach(function (m) { localClientIds[m.client_id] = true; });

  // ---- DOM helpers -------------------------------------------------------------------
  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

  var URL_PATTERN = /\bhttps?:\/\/[^\s<>"']+/gi;
  var TRAILING_PUNCTUATION = /[.,;:!?)\]}'"]+$/;

  // Appends `text` to `parent`: text nodes, and <a> only for valid http(s) URLs.
  function appendLinkified(parent, text) {
    var last = 0;
    var match;
    URL_PATTERN.lastIndex = 0;
    while ((match = URL_PATTERN.exec(text)) !== null) {
      var candidate = match[0].replace(TRAILING_PUNCTUATION, "");
      var start = match.index;
      var url = null;
      try { url = new URL(candidate); } catch (e) { url = null; }
      if (!url || (url.protocol !== "http:" && url.protocol !== "https:") || !candidate) {
        continue;
      }
      if (start > last) { parent.appendChild(document.createTextNode(text.slice(last, start))); }
      var link = el("a", "msg__link", candidate);
      link.href = url.href;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      parent.appendChild(link);
      last = start + candidate.length;
      URL_PATTERN.lastIndex = last;
    }
    if (last < text.length) { parent.appendChild(document.createTextNode(text.slice(last))); }
  }

  function twoDigits(n) { return (n < 10 ? "0" : "") + n; }

  function timeElement(iso) {
    if (typeof iso === "string" && /T\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(iso)) {
      iso += "Z"; // a time without a zone is UTC on this server
    }
    var date = iso ? new Date(iso) : new Date();
    if (isNaN(date.getTime())) { date = new Date(); }
    var node = el("time", "msg__time", twoDigits(date.getHours()) + ":" + twoDigits(date.getMinutes()));
    node.dateTime = date.toISOString();
    return node;
  }

  // ---- the UI --------------------------------------------------------------------------
  var host = el("div");
  host.id = HOST_ID;
  var shadow = host.attachShadow({ mode: "open" });

  var stylesheet = document.createElement("link");
  stylesheet.rel = "stylesheet";
  stylesheet.href = ORIGIN + "/widget.css";
  shadow.appendChild(stylesheet);

  var root = el("div", PAGE ? "root root--page root--open" : "root");
  root.hidden = true; // until the stylesheet is there: no flash of an unstyled widget
  shadow.appendChild(root);
  function reveal() {
    root.hidden = false;
    if (open && !PAGE) { input.focus(); } // the page leaves the focus (and phones' keyboards) alone
  }
  stylesheet.addEventListener("load", reveal);
  stylesheet.addEventListener("error", reveal);

  var launcher = el("button", "launcher");
  launcher.type = "button";
  launcher.setAttribute("aria-label", "Open chat");
  launcher.setAttribute("aria-expanded", "false");
  launcher.setAttribute("aria-controls", "shop-chat-panel");
  launcher.setAttribute("aria-describedby", "shop-chat-badge");
  launcher.appendChild(el("span", "launcher__icon"));
  var badge = el("span", "badge");
  badge.id = "shop-chat-badge";
  badge.hidden = true;
  launcher.appendChild(badge);

  // The widget's panel is a dialog over the shop's page; the page's is its main content.
  var panel = el(PAGE ? "main" : "section", "panel");
  panel.id = "shop-chat-panel";
  panel.hidden = !PAGE;
  if (!PAGE) { panel.setAttribute("role", "dialog"); }
  panel.setAttribute("aria-label", TITLE);

  var header = el("header", "header");
  var heading = el("div", "header__text");
  heading.appendChild(el(PAGE ? "h1" : "h2", "header__title", TITLE));
  var statusEl = el("p", "header__status", "Connecting…");
  statusEl.setAttribute("role", "status");
  heading.appendChild(statusEl);
  header.appendChild(heading);
  var closeButton = el("button", "close");
  closeButton.type = "button";
  closeButton.setAttribute("aria-label", "Close chat");
  closeButton.appendChild(el("span", "close__icon"));
  if (!PAGE) { header.appendChild(closeButton); }

  var log = el("ol", "log");
  log.setAttribute("aria-live", "polite");
  log.setAttribute("aria-label", "Conversation");
  log.tabIndex = 0; // scrollable region reachable by keyboard

  var typing = el("p", "typing", "The assistant is typing…");
  typing.hidden = true;
  typing.setAttribute("aria-hidden", "true"); // said once by typingLive, not on each refresh
  // Screen readers hear "… is typing" once when an agent starts (not on every repeat of
  // the server's throttled frames, nor more than once in TYPING_ANNOUNCE_GAP_MS).
  var typingLive = el("p", "visually-hidden");
  typingLive.setAttribute("aria-live", "polite");
  typingLive.setAttribute("aria-atomic", "true");

  var form = el("form", "composer");
  form.setAttribute("autocomplete", "off");
  var input = el("input", "composer__input");
  input.type = "text";
  input.name = "text";
  input.maxLength = MAX_CHARS;
  input.placeholder = "Type your message…";
  input.setAttribute("aria-label", "Your message");
  var sendButton = el("button", "composer__send", "Send");
  sendButton.type = "submit";
  form.appendChild(input);
  form.appendChild(sendButton);

  // A photo of a damaged item (issue #19): the button opens the file picker; the image goes
  // to POST /chat/photos (bot/web/photos.py), checked there by content. Enabled once the
  // chat has a session (its resume token authorises the upload).
  var photoRules = null;         // from the session frame: max_bytes and the server's words
  var photoInput = el("input", "composer__file");
  photoInput.type = "file";
  photoInput.accept = "image/jpeg,image/png,image/webp";
  photoInput.hidden = true;
  photoInput.tabIndex = -1;
  var attachButton = el("button", "composer__attach");
  attachButton.type = "button";
  attachButton.disabled = true;
  attachButton.setAttribute("aria-label", "Attach a photo");
  attachButton.title = "Attach a photo (JPEG, PNG or WebP)";
  attachButton.appendChild(el("span", "composer__attach-icon")); // a camera, drawn in CSS
  form.insertBefore(attachButton, input);
  form.appendChild(photoInput);

  panel.appendChild(header);
  panel.appendChild(log);
  panel.appendChild(typing);
  panel.appendChild(typingLive);
  panel.appendChild(form);
  root.appendChild(panel);
  if (!PAGE) { root.appendChild(launcher); }

  // ---- rendering messages ------------------------------------------------------------
  function scrollToEnd() { log.scrollTop = log.scrollHeight; }

  function disableRow(row) {
    var buttons = row.querySelectorAll("button");
    for (var i = 0; i < buttons.length; i++) { buttons[i].disabled = true; }
  }

  // Quick replies answer the latest prompt: once the customer says something, older rows go.
  function disableAllRows() {
    var rows = log.querySelectorAll(".msg__buttons, .cards");
    for (var i = 0; i < rows.length; i++) { disableRow(rows[i]); }
  }

  // ---- order cards (issue #19 item 3; docs/widget.md "Order cards") ------------------
  var CARD_STATUS = { placed: "Placed", shipped: "Shipped", delivered: "Delivered",
                      returned: "Returned", refunded: "Refunded", cancelled: "Cancelled" };
  var cardCount = 0;

  function cardDay(iso) {
    var parts = /^(\d{4})-(\d{2})-(\d{2})$/.exec(String(iso || ""));
    if (!parts) { return String(iso || ""); }
    var day = new Date(Date.UTC(+parts[1], +parts[2] - 1, +parts[3]));
    return day.toLocaleDateString("en-GB", { day: "numeric", month: "short", year: "numeric", timeZone: "UTC" });
  }

  function cardFact(list, name, value) {
    list.appendChild(el("dt", "card__term", name));
    var dd = el("dd", "card__value");
    if (typeof value === "string") { dd.textContent = value; } else { dd.appendChild(value); }
    list.appendChild(dd);
  }

  // A list of cards, each an article headed "Order A10001"; a card that picks an order has a
  // "Choose order A10001" button sending the payload of the picker button it replaces.
  function renderCards(cards, buttons) {
    var list = el("ul", "cards");
    list.setAttribute("aria-label", cards.length === 1 ? "Order" : "Orders");
    cards.forEach(function (card) {
      if (!card || typeof card.number !== "string") { return; }
      var headingId = "shop-chat-card-" + (++cardCount);
      var article = el("article", "card");
      article.setAttribute("aria-labelledby", headingId);
      var heading = el(PAGE ? "h2" : "h3", "card__title", "Order " + card.number);
      heading.id = headingId;
      article.appendChild(heading);
      var facts = el("dl", "card__facts");
      var placed = el("time", null, cardDay(card.date));
      placed.setAttribute("datetime", String(card.date));
      cardFact(facts, "Ordered", placed);
      cardFact(facts, "Status", CARD_STATUS[card.status] || String(card.status));
      if (typeof card.tracking_url === "string" && /^https:\/\//.test(card.tracking_url)) {
        var track = el("a", "msg__link", "Track parcel" + (card.carrier ? " (" + card.carrier + ")" : ""));
        track.href = card.tracking_url;
        track.target = "_blank";
        track.rel = "noopener noreferrer";
        track.appendChild(el("span", "visually-hidden", ", opens in a new tab"));
        cardFact(facts, "Tracking", track);
      } else if (card.tracking_number) {
        cardFact(facts, "Tracking", [card.carrier, card.tracking_number].filter(Boolean).join(" "));
      }
      article.appendChild(facts);
      var items = el("ul", "card__items");
      items.setAttribute("aria-label", "Items");
      (Array.isArray(card.items) ? card.items : []).forEach(function (i) {
        items.appendChild(el("li", null, String(i.quantity) + " × " + String(i.name)));
      });
      article.appendChild(items);
      if (typeof card.payload === "string") {
        var same = buttons.filter(function (b) { return b && b.payload === card.payload; })[0];
        var pick = el("button", "quick card__pick", "Choose order " + card.number);
        pick.type = "button";
        pick.addEventListener("click", function () {
          disableRow(list);
          // Exactly what the picker button did: its payload, its title in the transcript.
          sendMessage(card.payload, same && typeof same.title === "string" ? same.title : "Order " + card.number);
          input.focus();
        });
        article.appendChild(pick);
      }
      var entry = el("li", "cards__item");
      entry.appendChild(article);
      list.appendChild(entry);
    });
    return list;
  }

  function renderMessage(m) {
    var sender = SENDER_LABELS.hasOwnProperty(m.sender) ? m.sender : "system";
    var item = el("li", "msg msg--" + sender);
    item.setAttribute("data-sender", sender);
    if (m.id !== undefined && m.id !== null) {
      item.setAttribute("data-id", String(m.id));
      renderedIds[String(m.id)] = true;
    }
    var label = sender === "agent" && m.author ? m.author : SENDER_LABELS[sender];
    item.appendChild(el("span", "visually-hidden", label + ": "));
    if (sender === "agent" && m.author) {
      item.appendChild(el("p", "msg__author", String(m.author)));
    }
    var cards = Array.isArray(m.cards) && sender === "bot" ? m.cards : [];
    var buttons = Array.isArray(m.buttons) ? m.buttons : [];
    if (cards.length) {
      // The cards replace the text (their plain-text fallback) and the buttons they pick with.
      item.appendChild(renderCards(cards, buttons));
      var picks = cards.map(function (c) { return c && c.payload; });
      buttons = buttons.filter(function (b) { return !b || picks.indexOf(b.payload) < 0; });
    } else {
      var body = el("p", "msg__text");
      appendLinkified(body, String(m.text === undefined || m.text === null ? "" : m.text));
      item.appendChild(body);
    }
    item.appendChild(timeElement(m.time));
    if (sender === "customer") {
      disableAllRows();
      item.setAttribute("data-state", m.state || "sent");
      if (m.client_id) { bubbles[m.client_id] = item; }
    }
    if (buttons.length && sender !== "customer") {
      var row = el("div", "msg__buttons");
      row.setAttribute("role", "group");
      row.setAttribute("aria-label", "Quick replies");
      buttons.forEach(function (b) {
        if (!b || typeof b.title !== "string") { return; }
        var button = el("button", "quick", b.title);
        button.type = "button";
        if (typeof b.payload === "string") { button.setAttribute("data-payload", b.payload); }
        button.addEventListener("click", function () {
          disableRow(row);
          sendMessage(typeof b.payload === "string" ? b.payload : b.title, b.title);
          input.focus();
        });
        row.appendChild(button);
      });
      item.appendChild(row);
    }
    log.appendChild(item);
    scrollToEnd();
    return item;
  }

  // "Did this help?" under a knowledge answer (issue #24): the server asks for it with an
  // ask_helpful frame once the turn is stored; a click sends a rate frame, `rated` confirms.
  function helpfulGroup(messageId) {
    var item = log.querySelector('li[data-id="' + String(Number(messageId)) + '"]');
    return item ? item.querySelector(".msg__helpful") : null;
  }

  function onAskHelpful(data) {
    var id = Number(data.message_id);
    if (!isFinite(id)) { return; }
    var item = log.querySelector('li[data-id="' + String(id) + '"]');
    if (!item || item.querySelector(".msg__helpful")) { return; }
    var group = el("div", "msg__helpful");
    group.setAttribute("role", "group");
    group.setAttribute("aria-label", "Did this help?");
    group.appendChild(el("span", "msg__helpful-question", "Did this help?"));
    [[true, "\uD83D\uDC4D", "Yes"], [false, "\uD83D\uDC4E", "No"]].forEach(function (choice) {
      var button = el("button", "helpful");
      button.type = "button";
      button.setAttribute("aria-pressed", "false");
      button.setAttribute("data-helpful", String(choice[0]));
      var icon = el("span", "helpful__icon", choice[1]);
      icon.setAttribute("aria-hidden", "true");
      button.appendChild(icon);
      button.appendChild(document.createTextNode(" " + choice[2]));
      button.addEventListener("click", function () {
        if (!socketReady()) { return; }
        socket.send(JSON.stringify({ type: "rate", message_id: id, helpful: choice[0] }));
      });
      group.appendChild(button);
    });
    var thanks = el("span", "msg__helpful-thanks");
    thanks.setAttribute("role", "status");
    group.appendChild(thanks);
    item.appendChild(group);
    scrollToEnd();
  }

  function onRated(data) {
    var group = helpfulGroup(data.message_id);
    if (!group) { return; }
    var buttons = group.querySelectorAll("button");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].setAttribute("aria-pressed",
        String(buttons[i].getAttribute("data-helpful") === String(data.helpful === true)));
    }
    group.querySelector(".msg__helpful-thanks").textContent = "Thanks for telling us.";
  }

  function systemNote(text) {
    return renderMessage({ sender: "system", text: text, time: new Date().toISOString() });
  }

  function setUnread(count) {
    unread = count;
    badge.textContent = count > 99 ? "99+" : String(count);
    badge.setAttribute("aria-label", count === 1 ? "1 unread message" : count + " unread messages");
    badge.hidden = count === 0;
  }

  function markSent(clientId, id) {
    var item = bubbles[clientId];
    if (item) {
      item.setAttribute("data-state", "sent");
      if (id !== undefined && id !== null) { item.setAttribute("data-id", String(id)); }
    }
    if (id !== undefined && id !== null) { renderedIds[String(id)] = true; }
    dropFromOutbox(clientId);
  }

  // ---- sending -------------------------------------------------------------------------
  function socketReady() {
    return socket !== null && socket.readyState === WebSocket.OPEN && sessionReady;
  }

  function transmit(entry) {
    var frame = { type: "message", text: entry.text, client_id: entry.client_id };
    if (entry.shown && entry.shown !== entry.text) { frame.display = entry.shown; } // a quick reply's title
    socket.send(JSON.stringify(frame));
  }

  function sendMessage(text, shown) {
    var entry = {
      client_id: uuid4(),
      text: text,
      shown: shown || text,
      time: new Date().toISOString()
    };
    outbox.push(entry);
    saveOutbox();
    localClientIds[entry.client_id] = true;
    renderMessage({
      sender: "customer", text: entry.shown, time: entry.time,
      client_id: entry.client_id, state: "pending"
    });
    if (socketReady()) {
      transmit(entry);
    } else {
      wantConnection = true;
      if (!refused && socket === null && retryTimer === null) { connect(); }
    }
  }

  // ---- the connection ------------------------------------------------------------------
  function setStatus(text) { statusEl.textContent = text; }

  // The quick replies are the session frame's `menu` (utter_greet's buttons in domain.yml).
  function greeting(customerName, menu) {
    var first = typeof customerName === "string" ? customerName.trim().split(/\s+/)[0] : "";
    renderMessage({
      sender: "bot",
      text: first ? "Hi " + first + "! How can I help you today?" : "Hi! How can I help you today?",
      buttons: Array.isArray(menu) ? menu : [],
      time: new Date().toISOString()
    });
  }

  function onSession(data) {
    if (typeof data.token === "string" && data.token) {
      storageSet("localStorage", TOKEN_KEY, data.token);
    }
    if (data.identity === "verified" && subject) {
      storageSet("localStorage", SUBJECT_KEY, subject);
    }
    chatStatus = String(data.status || "bot");
    panel.setAttribute("data-status", chatStatus);
    panel.setAttribute("data-identity", String(data.identity || "anonymous"));
    var seenBefore = hadSession ? renderedIds : null;
    hadSession = true;
    log.setAttribute("aria-busy", "true"); // don't read the whole history out again
    log.textContent = "";
    renderedIds = {};
    bubbles = {};
    var missed = 0;
    var history = Array.isArray(data.history) ? data.history : [];
    history.forEach(function (m) {
      if (!m || (m.id !== undefined && m.id !== null && renderedIds[String(m.id)])) { return; }
      var isNew = seenBefore !== null && m.id !== undefined && m.id !== null &&
        !seenBefore[String(m.id)];
      if (isNew && m.sender !== "customer") { missed += 1; }
      renderMessage(m);
      if (m.sender === "customer" && m.client_id && inOutbox(m.client_id)) {
        dropFromOutbox(m.client_id); // stored before the acknowledgement got lost
      }
    });
    if (!history.length) { greeting(data.customer_name, data.menu); }
    syncBackToBot(false);
    if (!open && missed) { setUnread(unread + missed); } // arrived while we were offline
    log.removeAttribute("aria-busy");
    earlyErrors.splice(0).forEach(function (text) { systemNote(text); });
    sessionReady = true;
    retryAttempt = 0;
    if (data.photos && typeof data.photos === "object") { photoRules = data.photos; }
    attachButton.disabled = false;
    setStatus(teamStatus(data.team));
    // Messages typed while offline (or restored after a reload): show, then send once.
    renderOutbox();
    outbox.slice().forEach(transmit);
  }

  // The chat changed hands (a status frame: an agent joined, released it, resolved it, or
  // the customer went back to the bot).
  function onStatus(data) {
    if (typeof data.status !== "string") { return; }
    chatStatus = data.status;
    panel.setAttribute("data-status", chatStatus);
    syncBackToBot(chatStatus === "waiting_for_agent");
  }

  // "Back to the assistant" goes away once nobody is waiting any more (a person joined, or
  // the chat is the bot's again): clicked then, it only sent its words to the agent. When
  // the chat waits for a person again (released to the queue), the latest one comes back.
  function syncBackToBot(reshowLatest) {
    var buttons = log.querySelectorAll('button.quick[data-payload="' + BACK_TO_BOT_PAYLOAD + '"]');
    var waiting = chatStatus === "waiting_for_agent";
    for (var i = 0; i < buttons.length; i++) {
      var row = buttons[i].parentNode;
      if (!waiting) {
        buttons[i].disabled = true;
        if (row) { row.hidden = true; }
      } else if (reshowLatest && i === buttons.length - 1) {
        buttons[i].disabled = false;
        if (row) { row.hidden = false; }
      }
    }
  }

  // The header says "Online" only while a person of the team is (issue #20).
  function teamStatus(team) {
    if (!team || typeof team !== "object" || team.online !== false) { return "Online"; }
    return typeof team.hours === "string" && team.hours
      ? "Team offline · usually here " + team.hours : "Team offline";
  }

  function onMessage(m) {
    if (m.sender === "agent" && sessionReady) { setStatus("Online"); }
    if (m.sender === "agent") { stopTyping(); } // what they typed has arrived
    if (m.id !== undefined && m.id !== null && renderedIds[String(m.id)]) { return; }
    if (m.sender === "customer" && m.client_id && localClientIds[m.client_id]) {
      markSent(m.client_id, m.id); // our own message, echoed back
      return;
    }
    renderMessage(m);
    if (m.sender === "customer" && m.client_id) { dropFromOutbox(m.client_id); }
    if (!open && (m.sender === "bot" || m.sender === "agent" || m.sender === "system")) {
      setUnread(unread + 1);
    }
  }

  function onError(data) {
    var error = data.error || {};
    var text = typeof error.message === "string" && error.message
      ? error.message : "Something went wrong; please try again.";
    var clientId = typeof data.client_id === "string" ? data.client_id : null;
    if (clientId && DROP_CODES[error.code]) {
      dropFromOutbox(clientId);
      if (bubbles[clientId]) { bubbles[clientId].setAttribute("data-state", "failed"); }
    }
    if (error.code === "identity_refused") {
      identity = null; // don't send the refused token again on every reconnect
    }
    if (data.reconnect === true) { refuse(text); return; }
    if (error.code === "no_session") { dropSocket(); scheduleReconnect(); return; }
    if (sessionReady) { systemNote(text); } else { earlyErrors.push(text); }
  }

  // Closes the current socket without the close handler's automatic reconnect.
  function dropSocket() {
    var ws = socket;
    socket = null;
    sessionReady = false;
    if (ws !== null) { try { ws.close(); } catch (e) { /* already closed */ } }
  }

  // The server said this socket gets no session (its hello was refused): show why, stop
  // sending (the outbox waits) and let the customer try again; no automatic reconnect,
  // which would only be refused again.
  function refuse(text) {
    dropSocket();
    refused = true;
    if (retryTimer !== null) { clearTimeout(retryTimer); retryTimer = null; }
    stopTyping();
    var hadFocus = shadow.activeElement === input;
    earlyErrors.splice(0).forEach(function (early) { systemNote(early); });
    var note = systemNote(text);
    note.setAttribute("data-refused", "true");
    var row = el("div", "msg__buttons");
    var retry = el("button", "quick retry", "Try again");
    retry.type = "button";
    retry.addEventListener("click", function () {
      retry.disabled = true;
      refused = false;
      input.disabled = false;
      sendButton.disabled = false;
      retryAttempt = 0;
      setStatus("Connecting…");
      connect();
      input.focus();
    });
    row.appendChild(retry);
    note.appendChild(row);
    input.disabled = true;
    sendButton.disabled = true;
    setStatus("Not connected");
    if (!open) { setUnread(unread + 1); }
    if (hadFocus) { retry.focus(); }
  }

  function onFrame(event) {
    var data;
    try { data = JSON.parse(event.data); } catch (e) { return; }
    if (!data || typeof data !== "object") { return; }
    if (data.type === "session") {
      onSession(data);
    } else if (data.type === "message") {
      onMessage(data);
    } else if (data.type === "ack") {
      if (typeof data.client_id === "string") { markSent(data.client_id, data.id); }
    } else if (data.type === "typing") {
      onTyping(data);
    } else if (data.type === "status") {
      onStatus(data);
    } else if (data.type === "ask_helpful") {
      onAskHelpful(data);
    } else if (data.type === "rated") {
      onRated(data);
    } else if (data.type === "error") {
      onError(data);
    }
  }

  // The bot's typing (while a turn runs) and an agent's (issue #20, frames with by: agent).
  var typingTimer = null;
  var typingAnnouncedAt = 0;
  function stopTyping() {
    if (typingTimer !== null) { clearTimeout(typingTimer); typingTimer = null; }
    typing.hidden = true;
    typingLive.textContent = "";
  }
  function onTyping(data) {
    if (!data.on) { stopTyping(); return; }
    var agent = data.by === "agent";
    var wasHidden = typing.hidden;
    if (typingTimer !== null) { clearTimeout(typingTimer); typingTimer = null; }
    typing.textContent = !agent ? "The assistant is typing…"
      : (typeof data.name === "string" && data.name ? data.name : "Support") + " is typing…";
    typing.hidden = false;
    if (!agent) { return; }
    typingTimer = setTimeout(stopTyping, TYPING_HIDE_MS);
    if (wasHidden && Date.now() - typingAnnouncedAt > TYPING_ANNOUNCE_GAP_MS) {
      typingAnnouncedAt = Date.now();
      typingLive.textContent = typing.textContent;
    }
  }

  function scheduleReconnect() {
    if (retryTimer !== null) { return; }
    var base = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * Math.pow(2, retryAttempt));
    var delay = Math.min(RETRY_MAX_MS, base * (0.75 + Math.random() * 0.5));
    retryAttempt += 1;
    retryTimer = setTimeout(function () {
      retryTimer = null;
      connect();
    }, delay);
  }

  function connect() {
    if (socket !== null) { return; }
    wantConnection = true;
    sessionReady = false;
    earlyErrors = [];
    var ws;
    try {
      ws = new WebSocket(WS_URL);
    } catch (e) {
      setStatus("Reconnecting…");
      scheduleReconnect();
      return;
    }
    socket = ws;
    ws.addEventListener("open", function () {
      ws.send(JSON.stringify({
        type: "hello",
        token: storageGet("localStorage", TOKEN_KEY),
        identity: identity
      }));
    });
    ws.addEventListener("message", function (event) {
      if (socket === ws) { onFrame(event); }
    });
    ws.addEventListener("close", function () {
      if (socket !== ws) { return; }
      socket = null;
      sessionReady = false;
      stopTyping();
      setStatus("Reconnecting…");
      scheduleReconnect();
    });
  }

  // Back online: try at once instead of waiting for the backoff.
  window.addEventListener("online", function () {
    if (wantConnection && socket === null && retryTimer !== null) {
      clearTimeout(retryTimer);
      retryTimer = null;
      retryAttempt = 0;
      connect();
    }
  });

  // ---- opening and closing -------------------------------------------------------------
  function openPanel() {
    if (!open) {
      open = true;
      panel.hidden = false;
      launcher.setAttribute("aria-expanded", "true");
      root.classList.add("root--open");
      setUnread(0);
      scrollToEnd();
    }
    if (!refused && socket === null && retryTimer === null) { connect(); }
    if (input.disabled) {
      var retry = log.querySelector(".retry:not([disabled])");
      if (retry) { retry.focus(); }
    } else {
      input.focus();
    }
  }

  function closePanel(returnFocus) {
    if (!open || PAGE) { return; }
    open = false;
    panel.hidden = true;
    launcher.setAttribute("aria-expanded", "false");
    root.classList.remove("root--open");
    if (returnFocus) { launcher.focus(); }
  }

  launcher.addEventListener("click", function () {
    if (open) { closePanel(true); } else { openPanel(); }
  });
  closeButton.addEventListener("click", function () { closePanel(true); });
  root.addEventListener("keydown", function (event) {
    if ((event.key === "Escape" || event.key === "Esc") && open && !PAGE) {
      event.preventDefault();
      event.stopPropagation();
      closePanel(true);
    }
  });
  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) { return; }
    if (text.length > MAX_CHARS) { text = text.slice(0, MAX_CHARS); }
    input.value = "";
    sendMessage(text);
  });

  // ---- photos ----------------------------------------------------------------------------
  attachButton.addEventListener("click", function () { photoInput.click(); });
  photoInput.addEventListener("change", function () {
    var file = photoInput.files && photoInput.files[0];
    photoInput.value = ""; // the same file may be chosen again
    if (file) { sendPhoto(file); }
  });

  function sendPhoto(file) {
    var rules = photoRules || {};
    var token = storageGet("localStorage", TOKEN_KEY);
    // What is sure to be refused is not uploaded (the server checks everything again).
    if (file.size === 0 && rules.empty) { systemNote(rules.empty); return; }
    if (rules.max_bytes && file.size > rules.max_bytes && rules.too_big) {
      systemNote(rules.too_big);
      return;
    }
    if (!token) { systemNote(rules.no_chat || "Please wait until the chat is connected."); return; }
    var clientId = uuid4();
    localClientIds[clientId] = true; // its echo over the socket only marks it sent
    var item = renderMessage({
      sender: "customer", text: rules.caption || "[Photo]", time: new Date().toISOString(),
      client_id: clientId, state: "pending"
    });
    item.setAttribute("data-photo", "local");
    // A preview from the file itself (a data: URL: our pages' CSP allows no blob: images).
    var reader = new FileReader();
    reader.addEventListener("load", function () {
      var image = el("img", "msg__photo");
      image.src = String(reader.result);
      image.alt = "Your photo";
      image.addEventListener("load", scrollToEnd);
      item.insertBefore(image, item.querySelector(".msg__text"));
    });
    reader.readAsDataURL(file);
    attachButton.disabled = true; // one photo at a time
    var headers = { "X-Chat-Token": token, "X-Client-Id": clientId };
    headers["Content-Type"] = file.type || "application/octet-stream";
    fetch(ORIGIN + "/chat/photos", {
      method: "POST", body: file, headers: headers, credentials: "omit", mode: "cors"
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        return { ok: response.ok, body: body || {} };
      });
    }).then(function (result) {
      if (result.ok && result.body.message) {
        markSent(clientId, result.body.message.id);
        if (result.body.reply) { onMessage(result.body.reply); }
      } else {
        photoFailed(item, result.body.error && result.body.error.message);
      }
    }, function () {
      photoFailed(item, null);
    }).then(function () { attachButton.disabled = false; });
  }

  function photoFailed(item, message) {
    item.setAttribute("data-state", "failed");
    systemNote(typeof message === "string" && message
      ? message : "The photo could not be sent. Please check your connection and try again.");
  }

  window.ShopChat = {
    open: function () { openPanel(); },
    close: function () { closePanel(false); },
    isOpen: function () { return open; }
  };

  function renderOutbox() {
    outbox.forEach(function (entry) {
      if (!bubbles[entry.client_id]) {
        renderMessage({
          sender: "customer", text: entry.shown || entry.text, time: entry.time,
          client_id: entry.client_id, state: "pending"
        });
      }
    });
  }

  function mount() {
    document.body.appendChild(host);
    renderOutbox(); // typed before a reload and not acknowledged yet: still on its way
    // Known visitors connect at once (unread badge, surveys pushed live); first-time
    // anonymous visitors only when they open the chat, so that browsing creates no chats.
    // The chat page is open: it connects at once.
    if (PAGE || storageGet("localStorage", TOKEN_KEY) || identity || outbox.length) { connect(); }
  }

  if (document.body) {
    mount();
  } else {
    document.addEventListener("DOMContentLoaded", mount);
  }
})();
