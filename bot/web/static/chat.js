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

  function addMessage(sender, text, buttons) {
    // Quick replies answer the latest prompt: once the customer says something, older rows
    // go (as in the widget; an old "Yes" clicked later answered whatever was asked then).
    if (sender === "customer") {
      log.querySelectorAll(".msg__buttons button").forEach(function (x) { x.disabled = true; });
    }
    var item = document.createElement("li");
    item.className = "msg msg--" + sender;
    item.dataset.sender = sender;
    var body = document.createElement("div");
    body.className = "msg__text";
    body.textContent = text;
    item.appendChild(body);
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
        statusEl.textContent = teamStatus(data.team);
        localStorage.setItem(TOKEN_KEY, data.token);
        log.textContent = "";
        data.history.forEach(function (m) { addMessage(m.sender, m.text, []); });
        if (!data.history.length) {
          addMessage("bot", "Hi! How can I help you today?", [
            { title: "Where is my order?", payload: "where is my order" },
            { title: "Start a return", payload: "I want to return something" },
            { title: "Leave feedback", payload: "I'd like to leave feedback" }
          ]);
        }
        flushWaiting();
      } else if (data.type === "message") {
        if (data.sender === "agent") { stopTyping(); statusEl.textContent = "Online"; }
        addMessage(data.sender, data.text, data.buttons);
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

  takeResumeLink();
  connect();
})();
