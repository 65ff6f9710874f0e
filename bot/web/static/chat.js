// Chat page client. Every text is rendered with textContent, never as HTML.
(function () {
  "use strict";
  var TOKEN_KEY = "chat-token";
  // An emailed reply's link (issue #20): #resume=<signed token> continues that conversation.
  var RESUME = /^#resume=(rl1\.[0-9a-f]+\.\d+\.[A-Za-z0-9_-]+)$/;
  var TYPING_HIDE_MS = 6000; // an agent's typing without a repeat (sent every 2 s)
  var TYPING_ANNOUNCE_GAP_MS = 30000;
  var log = document.getElementById("log");
  var form = document.getElementById("composer");
  var input = document.getElementById("text");
  var statusEl = document.getElementById("status");
  var typing = document.getElementById("typing");
  var typingLive = document.getElementById("typing-live");
  var typingTimer = null;
  var typingAnnouncedAt = 0;
  var sendButton = form.querySelector("button[type=submit]");
  var socket = null;
  var sessionReady = false; // a session frame arrived on the current socket
  var retryDelay = 500;

  // ---- order cards (issue #19 item 3; docs/widget.md "Order cards"), as in the widget --
  var CARD_STATUS = { placed: "Placed", shipped: "Shipped", delivered: "Delivered",
                      returned: "Returned", refunded: "Refunded", cancelled: "Cancelled" };
  var cardCount = 0;

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined && text !== null) { node.textContent = text; }
    return node;
  }

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

  // `buttons`: the message's live buttons (none for history): a card picks with the payload
  // of the picker button it replaces, showing that button's title.
  function renderCards(cards, buttons) {
    var list = el("ul", "cards");
    list.setAttribute("aria-label", cards.length === 1 ? "Order" : "Orders");
    cards.forEach(function (card) {
      if (!card || typeof card.number !== "string") { return; }
      var headingId = "card-" + (++cardCount);
      var article = el("article", "card");
      article.setAttribute("aria-labelledby", headingId);
      var heading = el("h2", "card__title", "Order " + card.number);
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
      var same = (buttons || []).filter(function (b) { return b && b.payload === card.payload; })[0];
      if (typeof card.payload === "string" && same) {
        var pick = el("button", "card__pick", "Choose order " + card.number);
        pick.type = "button";
        pick.addEventListener("click", function () {
          list.querySelectorAll("button").forEach(function (x) { x.disabled = true; });
          send(card.payload, same.title);
        });
        article.appendChild(pick);
      }
      var entry = el("li", "cards__item");
      entry.appendChild(article);
      list.appendChild(entry);
    });
    return list;
  }

  function addMessage(sender, text, buttons, cards) {
    // Quick replies answer the latest prompt: once the customer says something, older rows
    // go (as in the widget; an old "Yes" clicked later answered whatever was asked then).
    if (sender === "customer") {
      log.querySelectorAll(".msg__buttons button, .cards button").forEach(function (x) { x.disabled = true; });
    }
    var item = document.createElement("li");
    item.className = "msg msg--" + sender;
    item.dataset.sender = sender;
    if (sender === "bot" && Array.isArray(cards) && cards.length) {
      // The cards replace the text (their plain-text fallback) and the buttons they pick with.
      item.appendChild(renderCards(cards, buttons));
      var picks = cards.map(function (c) { return c && c.payload; });
      buttons = (buttons || []).filter(function (b) { return picks.indexOf(b.payload) < 0; });
    } else {
      var body = document.createElement("div");
      body.className = "msg__text";
      body.textContent = text;
      item.appendChild(body);
    }
    if (buttons && buttons.length) {
      var row = document.createElement("div");
      row.className = "msg__buttons";
      buttons.forEach(function (b) {
        var button = document.createElement("button");
        button.type = "button";
        button.textContent = b.title;
        button.addEventListener("click", function () {
          row.querySelectorAll("button").forEach(function (x) { x.disabled = true; });
          send(b.payload, b.title);
        });
        row.appendChild(button);
      });
      item.appendChild(row);
    }
    log.appendChild(item);
    log.scrollTop = log.scrollHeight;
  }

  // Messages typed before the session frame (a hurried first message right after the page
  // opens) or while reconnecting wait here and go out once the session is there; they were
  // dropped with "You're offline" before.
  var waiting = [];

  function send(text, shown) {
    addMessage("customer", shown || text);
    if (!socket || socket.readyState !== WebSocket.OPEN || !sessionReady) {
      if (socket && socket.readyState !== WebSocket.OPEN && socket.readyState !== WebSocket.CONNECTING) {
        addMessage("system", "You're offline; reconnecting…");
      }
      waiting.push({ text: text, shown: shown });
      return;
    }
    transmit(text, shown);
  }

  function transmit(text, shown) {
    var frame = { type: "message", text: text };
    if (shown && shown !== text) { frame.display = shown; } // a button's title, for the transcript
    socket.send(JSON.stringify(frame));
  }

  function flushWaiting() {
    waiting.splice(0).forEach(function (m) {
      addMessage("customer", m.shown || m.text);
      transmit(m.text, m.shown);
    });
  }

  function stopTyping() {
    if (typingTimer !== null) { clearTimeout(typingTimer); typingTimer = null; }
    typing.hidden = true;
    typingLive.textContent = "";
  }

  // The bot's typing, and an agent's (by: agent): screen readers hear the agent's once
  // when it starts, not on each of the server's repeats.
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

  function takeResumeLink() {
    var match = RESUME.exec(location.hash);
    if (!match) { return; }
    try { localStorage.setItem(TOKEN_KEY, match[1]); } catch (e) { /* storage blocked */ }
    // Out of the address bar and the history: the link is a secret.
    history.replaceState(null, "", location.pathname + location.search);
  }

  // Closes the current socket without the close handler's automatic reconnect.
  function dropSocket() {
    var ws = socket;
    socket = null;
    sessionReady = false;
    if (ws) { try { ws.close(); } catch (e) { /* already closed */ } }
  }

  // The server refused this socket a session (e.g. too many new chats from this network):
  // show its message, stop sending, and reconnect only when the customer asks.
  function refuse(text) {
    dropSocket();
    stopTyping();
    var hadFocus = document.activeElement === input;
    addMessage("system", text);
    var item = log.lastElementChild;
    item.dataset.refused = "true";
    var row = document.createElement("div");
    row.className = "msg__buttons";
    var retry = document.createElement("button");
    retry.type = "button";
    retry.textContent = "Try again";
    retry.addEventListener("click", function () {
      retry.disabled = true;
      input.disabled = false;
      sendButton.disabled = false;
      statusEl.textContent = "Connecting…";
      retryDelay = 500;
      connect();
      input.focus();
    });
    row.appendChild(retry);
    item.appendChild(row);
    input.disabled = true;
    sendButton.disabled = true;
    statusEl.textContent = "Not connected";
    if (hadFocus) { retry.focus(); }
  }

  // "Online" only while a person of the team is, as in the widget (issue #20): the session
  // frame says whether anyone is and when the team is back.
  function teamStatus(team) {
    if (!team || typeof team !== "object" || team.online !== false) { return "Online"; }
    return typeof team.hours === "string" && team.hours
      ? "Team offline · back " + team.hours : "Team offline";
  }

  function connect() {
    var scheme = location.protocol === "https:" ? "wss://" : "ws://";
    var ws = new WebSocket(scheme + location.host + "/ws");
    socket = ws;
    sessionReady = false;
    ws.addEventListener("open", function () {
      retryDelay = 500;
      statusEl.textContent = "Online";
      ws.send(JSON.stringify({ type: "hello", token: localStorage.getItem(TOKEN_KEY) }));
    });
    ws.addEventListener("message", function (event) {
      if (socket !== ws) { return; } // a socket we dropped
      var data = JSON.parse(event.data);
      if (data.type === "session") {
        sessionReady = true;
        photoRules = data.photos && typeof data.photos === "object" ? data.photos : photoRules;
        attachButton.disabled = false;
        statusEl.textContent = teamStatus(data.team);
        localStorage.setItem(TOKEN_KEY, data.token);
        log.textContent = "";
        data.history.forEach(function (m) { addMessage(m.sender, m.text, [], m.cards); });
        if (!data.history.length) {
          addMessage("bot", "Hi! How can I help you today?", [
            { title: "Where is my order?", payload: "where is my order" },
            { title: "Start a return", payload: "I want to return something" },
            { title: "Leave feedback", payload: "I'd like to leave feedback" }
          ]);
        }
        flushWaiting();
      } else if (data.type === "message") {
        if (data.client_id && sentPhotos[data.client_id]) { return; } // our photo, shown already
        if (data.sender === "agent") { stopTyping(); statusEl.textContent = "Online"; }
        addMessage(data.sender, data.text, data.buttons, data.cards);
      } else if (data.type === "typing") {
        onTyping(data);
      } else if (data.type === "error") {
        if (data.reconnect === true) {
          refuse(data.error.message);
        } else if (data.error.code === "no_session") {
          ws.close(); // no session on this socket: the close handler reconnects and says hello
        } else {
          addMessage("system", data.error.message);
        }
      }
    });
    ws.addEventListener("close", function () {
      if (socket !== ws) { return; } // dropped on purpose: no automatic reconnect
      socket = null;
      sessionReady = false;
      statusEl.textContent = "Reconnecting…";
      stopTyping();
      setTimeout(connect, retryDelay);
      retryDelay = Math.min(retryDelay * 2, 10000);
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) { return; }
    input.value = "";
    send(text);
  });

  // ---- photos (issue #19), as in the widget: POST /chat/photos checks and stores them ----
  var attachButton = document.getElementById("attach");
  var photoInput = document.getElementById("photo-file");
  var photoRules = null; // from the session frame: max_bytes and the server's own words
  var sentPhotos = {};   // client ids of the photos this page sent (their echo is skipped)
  attachButton.addEventListener("click", function () { photoInput.click(); });
  photoInput.addEventListener("change", function () {
    var file = photoInput.files && photoInput.files[0];
    photoInput.value = "";
    if (file) { sendPhoto(file); }
  });

  function photoId() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join("");
  }

  function sendPhoto(file) {
    var rules = photoRules || {};
    var token = localStorage.getItem(TOKEN_KEY);
    if (file.size === 0 && rules.empty) { addMessage("system", rules.empty); return; }
    if (rules.max_bytes && file.size > rules.max_bytes && rules.too_big) {
      addMessage("system", rules.too_big);
      return;
    }
    if (!token) { addMessage("system", rules.no_chat || "Please wait until the chat is connected."); return; }
    var clientId = photoId();
    sentPhotos[clientId] = true;
    addMessage("customer", rules.caption || "[Photo]");
    var item = log.lastElementChild;
    item.dataset.state = "pending";
    // A preview from the file itself (a data: URL: the page's CSP allows no blob: images).
    var reader = new FileReader();
    reader.addEventListener("load", function () {
      var image = document.createElement("img");
      image.className = "msg__photo";
      image.src = String(reader.result);
      image.alt = "Your photo";
      item.insertBefore(image, item.firstChild);
    });
    reader.readAsDataURL(file);
    attachButton.disabled = true;
    fetch("/chat/photos", {
      method: "POST", body: file, credentials: "omit",
      headers: { "Content-Type": file.type || "application/octet-stream", "X-Chat-Token": token, "X-Client-Id": clientId }
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        return { ok: response.ok, body: body || {} };
      });
    }).then(function (result) {
      if (result.ok && result.body.message) {
        item.dataset.state = "sent";
      } else {
        item.dataset.state = "failed";
        addMessage("system", (result.body.error && result.body.error.message) ||
          "The photo could not be sent. Please try again.");
      }
    }, function () {
      item.dataset.state = "failed";
      addMessage("system", "The photo could not be sent. Please check your connection and try again.");
    }).then(function () { attachButton.disabled = false; });
  }

  takeResumeLink();
  connect();
})();
