/*
 * Staff console: helpers shared by every console page (login, queue, conversation).
 *
 * An ES module (the page scripts import it: `import C from "./console.js"`), no build step;
 * the DOM helpers are the dashboard's too (/static/shared/dom.js). The pages run under a
 * strict Content-Security-Policy (default-src 'self'): no inline scripts, styles or
 * handlers, no eval, no innerHTML. Every string that comes from a customer or a colleague
 * is rendered with textContent.
 */
import { byId, clear, el } from "/static/shared/dom.js";
import { label, loadLabels } from "/static/shared/labels.js";

const ConsoleApp = (function () {
  "use strict";

  var API_ROOT = "/console/api";
  var LOGIN_PATH = "/console/login";
  var HOME_PATH = "/console/";
  var RETRY_MIN_MS = 1000;
  var RETRY_MAX_MS = 15000;

  var csrfToken = null;
  var redirecting = false;

  // ---- the status area (one per page, id="status", role="status") ---------------------
  function showStatus(text, kind) {
    var node = byId("status");
    if (!node) { return; }
    node.textContent = text || "";
    node.className = "status" + (text && kind ? " status--" + kind : "");
  }

  function showError(error) {
    if (error && error.redirecting) { return; }
    var text = error && typeof error.message === "string" && error.message
      ? error.message : "Something went wrong. Please try again.";
    showStatus(text, "error");
  }

  // ---- the JSON API ---------------------------------------------------------------------
  function safeNext(value) {
    // Only same-site paths (the console, the dashboard): never another site ("//evil",
    // "/\\evil", "https:"), no whitespace or control characters (browsers drop tabs).
    if (typeof value === "string" && /^\/(?![\/\\])[^\\\s\x00-\x1f]*$/.test(value) &&
        value.indexOf("//") === -1 && value.indexOf(LOGIN_PATH) !== 0) {
      return value;
    }
    return HOME_PATH;
  }

  function goToLogin() {
    if (redirecting) { return; }
    redirecting = true;
    var here = location.pathname + location.search;
    var url = LOGIN_PATH;
    if (here !== HOME_PATH && safeNext(here) === here) {
      url += "?next=" + encodeURIComponent(here);
    }
    location.assign(url);
  }

  function apiError(status, code, message) {
    var error = new Error(message);
    error.status = status;
    error.code = code;
    return error;
  }

  /*
   * api("GET", "/queue?filter=all") -> Promise of the parsed JSON (null for 204).
   * Rejects with an Error carrying .status, .code and the server's .message.
   * A 401 sends the browser to the login page (unless options.allow401).
   */
  function api(method, path, body, options) {
    options = options || {};
    var headers = { "Accept": "application/json", "X-Requested-With": "console" };
    var init = { method: method, headers: headers, credentials: "same-origin", cache: "no-store" };
    if (method !== "GET") {
      headers["Content-Type"] = "application/json";
      if (csrfToken) { headers["X-CSRF-Token"] = csrfToken; }
      init.body = JSON.stringify(body === undefined || body === null ? {} : body);
    }
    return fetch(API_ROOT + path, init).then(function (response) {
      if (response.status === 401 && !options.allow401) {
        goToLogin();
        var error = apiError(401, "unauthorized", "Your session has ended. Please sign in again.");
        error.redirecting = true;
        throw error;
      }
      if (response.status === 204) { return null; }
      return response.text().then(function (raw) {
        var data = null;
        if (raw) {
          try { data = JSON.parse(raw); } catch (e) { data = null; }
        }
        if (response.ok) { return data; }
        var info = data && data.error && typeof data.error === "object" ? data.error : {};
        throw apiError(
          response.status,
          typeof info.code === "string" ? info.code : "http_" + response.status,
          typeof info.message === "string" && info.message
            ? info.message
            : "Something went wrong (HTTP " + response.status + "). Please try again."
        );
      });
    }, function () {
      throw apiError(0, "network_error", "Cannot reach the server. Check your connection and try again.");
    });
  }

  function setCsrfToken(token) {
    if (typeof token === "string" && token) { csrfToken = token; }
  }

  // ---- the signed-in user (every page but login) ---------------------------------------
  /*
   * Loads /me (which also gives the CSRF token), fills "Signed in as …" and wires the
   * Sign out button. Resolves with the user.
   */
  function start() {
    var signOut = byId("signout");
    if (signOut) {
      signOut.addEventListener("click", function () {
        signOut.disabled = true;
        api("POST", "/logout").then(function () {
          redirecting = true;
          location.assign(LOGIN_PATH);
        }, function (error) {
          signOut.disabled = false;
          showError(error);
        });
      });
    }
    // The labels of keys (reasons, roles, ...) come from /api/labels, like the dashboard's;
    // without them a key is humanised ("bot_failure" -> "Bot failure").
    var labelsLoaded = loadLabels().catch(function () { /* keys humanised */ });
    return Promise.all([api("GET", "/me"), labelsLoaded]).then(function (loaded) {
      var me = loaded[0];
      setCsrfToken(me && me.csrf_token);
      var who = byId("whoami");
      if (who && me) {
        who.textContent = "Signed in as " + String(me.display_name || me.email || "?") +
          " (" + roleLabel(me.role) + ")";
      }
      // CX managers read the console (no canned replies to manage or insert): no dead link.
      if (me && me.role === "cx_manager") {
        var replies = document.querySelector(".topbar__nav a[href='/console/replies']");
        if (replies) { replies.parentNode.removeChild(replies); }
      }
      // The bot's review inbox (issue #24): admins and bot trainers; trainers have no queue.
      var topnav = document.querySelector(".topbar__nav");
      if (topnav && me && (me.role === "admin" || me.role === "bot_trainer") &&
          !topnav.querySelector("a[href='/console/review']")) {
        var review = el("a", "", "Review inbox");
        review.href = "/console/review";
        topnav.appendChild(review);
      }
      if (topnav && me && me.role === "bot_trainer") {
        ["/console/", "/console/history", "/console/replies"].forEach(function (href) {
          var dead = topnav.querySelector("a[href='" + href + "']");
          if (dead) { dead.parentNode.removeChild(dead); }
        });
      }
      // The knowledge base (issue #19): admins.
      if (topnav && me && me.role === "admin" &&
          !topnav.querySelector("a[href='/console/knowledge']")) {
        var knowledgeLink = el("a", "", "Knowledge");
        knowledgeLink.href = "/console/knowledge";
        topnav.appendChild(knowledgeLink);
      }
      // CX managers and admins also have the dashboard: link it from the header.
      var nav = document.querySelector(".topbar__nav");
      if (nav && me && (me.role === "cx_manager" || me.role === "admin") &&
          !nav.querySelector("a[href='/dashboard/']")) {
        var link = el("a", "", "Dashboard");
        link.href = "/dashboard/";
        nav.appendChild(link);
      }
      return me;
    });
  }

  // ---- formatting -----------------------------------------------------------------------
  function parseTime(iso) {
    if (typeof iso !== "string" || !iso) { return null; }
    if (/T\d\d:\d\d(:\d\d(\.\d+)?)?$/.test(iso)) { iso += "Z"; } // no zone: UTC
    var date = new Date(iso);
    return isNaN(date.getTime()) ? null : date;
  }

  function twoDigits(n) { return (n < 10 ? "0" : "") + n; }

  var MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  function formatDate(iso) {
    var date = parseTime(iso);
    if (!date) { return "—"; }
    return date.getDate() + " " + MONTHS[date.getMonth()] + " " + date.getFullYear();
  }

  // "14:05" today, "3 Mar 14:05" this year, "3 Mar 2023 14:05" before.
  function formatTime(iso) {
    var date = parseTime(iso);
    if (!date) { return ""; }
    var now = new Date();
    var clock = twoDigits(date.getHours()) + ":" + twoDigits(date.getMinutes());
    if (date.toDateString() === now.toDateString()) { return clock; }
    var day = date.getDate() + " " + MONTHS[date.getMonth()];
    if (date.getFullYear() !== now.getFullYear()) { day += " " + date.getFullYear(); }
    return day + " " + clock;
  }

  function timeElement(iso, className) {
    var date = parseTime(iso);
    var node = el("time", className || "", date ? formatTime(iso) : "");
    if (date) {
      node.dateTime = date.toISOString();
      node.title = date.toLocaleString();
    }
    return node;
  }

  // 59 s -> "< 1 min", 125 s -> "2 min", 3900 s -> "1 h 5 min", 2 days -> "2 d 3 h".
  function formatDuration(seconds) {
    var s = Math.max(0, Math.floor(Number(seconds) || 0));
    if (s < 60) { return "< 1 min"; }
    var minutes = Math.floor(s / 60);
    if (minutes < 60) { return minutes + " min"; }
    var hours = Math.floor(minutes / 60);
    if (hours < 24) { return hours + " h" + (minutes % 60 ? " " + (minutes % 60) + " min" : ""); }
    var days = Math.floor(hours / 24);
    return days + " d" + (hours % 24 ? " " + (hours % 24) + " h" : "");
  }

  function humanize(value) {
    if (value === null || value === undefined || value === "") { return "—"; }
    var text = String(value).replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function lookup(table, value) {
    return Object.prototype.hasOwnProperty.call(table, value) ? table[value] : humanize(value);
  }

  // Priority words (bot/domain/handoff.py priority_label): never a bare 2 or 3.
  var PRIORITIES = { normal: "Normal", high: "High", urgent: "Urgent" };

  function priorityLabel(label) { return lookup(PRIORITIES, label || "normal"); }

  // A badge for the priority, and "Overdue" beside it when the escalation is overdue.
  function priorityBadges(item) {
    var box = el("span", "prio");
    var label = item && typeof item.priority_label === "string" ? item.priority_label : "normal";
    box.appendChild(el("span", "prio__badge prio__badge--" + (PRIORITIES[label] ? label : "normal"),
      priorityLabel(label)));
    if (item && item.overdue) { box.appendChild(el("span", "prio__badge prio__badge--overdue", "Overdue")); }
    return box;
  }

  // Whether the signed-in user works the queue (agents, admins) rather than only reads it.
  function canAct(me) { return !!me && (me.role === "agent" || me.role === "admin"); }

  // The label of a key in a group of bot/domain/labels.py (served by /api/labels); "—" for none.
  function labelOf(group, key) {
    return key === null || key === undefined || key === "" ? "—" : label(group, key);
  }
  function reasonLabel(reason) { return labelOf("reason", reason); }
  function roleLabel(role) { return role ? label("role", role) : "staff"; }
  function sourceLabel(source) { return labelOf("acquisition", source); }
  function feedbackKindLabel(kind) { return labelOf("kind", kind); }

  function formatMoney(total, currency) {
    if (total === null || total === undefined || total === "") { return "—"; }
    var amount = Number(total);
    if (!isNaN(amount) && typeof currency === "string" && /^[A-Za-z]{3}$/.test(currency)) {
      try {
        return new Intl.NumberFormat(undefined, { style: "currency", currency: currency }).format(amount);
      } catch (e) { /* unknown currency: fall through */ }
    }
    return String(total) + (currency ? " " + currency : "");
  }

  // ---- live updates: /console/ws with reconnect and backoff ----------------------------
  /*
   * live({onOpen: function (send, reconnected) {}, onFrame: function (frame) {}})
   * Shows "Live" / "Reconnecting…" in the element id="live". Backoff 1 s doubling to 15 s.
   */
  function live(options) {
    var statusNode = byId("live");
    var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/console/ws";
    var socket = null;
    var attempt = 0;
    var timer = null;
    var opened = false;
    var stopped = false;

    function setState(text, state) {
      if (!statusNode) { return; }
      statusNode.textContent = text;
      statusNode.setAttribute("data-state", state);
    }

    // True when the frame went out: a frame sent while (re)connecting is dropped, and the
    // caller decides whether to send it again from onOpen.
    function send(frame) {
      if (!socket || socket.readyState !== WebSocket.OPEN) { return false; }
      socket.send(JSON.stringify(frame));
      return true;
    }

    function schedule() {
      if (timer !== null || stopped || redirecting) { return; }
      var delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * Math.pow(2, attempt));
      attempt += 1;
      timer = setTimeout(function () {
        timer = null;
        // A closed socket may mean an ended session: /me sends us to the login page then.
        api("GET", "/me").then(function (me) { setCsrfToken(me && me.csrf_token); }, function () {})
          .then(function () { if (!redirecting) { connect(); } });
      }, delay);
    }

    function connect() {
      if (socket !== null || stopped) { return; }
      var ws;
      try {
        ws = new WebSocket(url);
      } catch (e) {
        setState("Reconnecting…", "down");
        schedule();
        return;
      }
      socket = ws;
      ws.addEventListener("open", function () {
        if (socket !== ws) { return; }
        attempt = 0;
        setState("Live", "live");
        var again = opened;
        opened = true;
        options.onOpen(send, again);
      });
      ws.addEventListener("message", function (event) {
        if (socket !== ws) { return; }
        var frame;
        try { frame = JSON.parse(event.data); } catch (e) { return; }
        if (frame && typeof frame === "object") { options.onFrame(frame); }
      });
      ws.addEventListener("close", function () {
        if (socket !== ws) { return; }
        socket = null;
        if (stopped) { return; }
        setState("Reconnecting…", "down");
        schedule();
      });
    }

    window.addEventListener("online", function () {
      if (socket === null && timer !== null) {
        clearTimeout(timer);
        timer = null;
        attempt = 0;
        connect();
      }
    });
    window.addEventListener("pagehide", function () {
      stopped = true;
      if (socket) { socket.close(); }
    });

    setState("Connecting…", "connecting");
    connect();
    return { send: send };
  }

  // ---- optional sound / desktop alert for a new customer message (issue #20) -------------
  /*
   * Off unless the agent turns it on (remembered per browser in localStorage). Sound: a short
   * tone (Web Audio). Desktop: a notification while the tab is hidden, when the browser's
   * permission was granted (asked when the toggle is turned on).
   */
  var ALERTS_KEY = "console-alerts";
  var audio = null;

  function alertsOn() {
    try { return localStorage.getItem(ALERTS_KEY) === "on"; } catch (e) { return false; }
  }

  function alertToggle(me) {
    var bar = document.querySelector(".topbar__user");
    if (!bar || !canAct(me) || byId("alerts")) { return; }
    var label = el("label", "alerts-toggle");
    var box = document.createElement("input");
    box.type = "checkbox";
    box.id = "alerts";
    box.checked = alertsOn();
    label.appendChild(box);
    label.appendChild(document.createTextNode(" Sound & desktop alerts"));
    bar.insertBefore(label, bar.firstChild);
    box.addEventListener("change", function () {
      try { localStorage.setItem(ALERTS_KEY, box.checked ? "on" : "off"); } catch (e) { /* blocked */ }
      if (box.checked && window.Notification && Notification.permission === "default") {
        Notification.requestPermission();
      }
      if (box.checked) { tone(); } // also unlocks audio: this click is the user's gesture
    });
  }

  function tone() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!Context) { return; }
    try {
      audio = audio || new Context();
      var osc = audio.createOscillator();
      var gain = audio.createGain();
      osc.frequency.value = 880;
      gain.gain.value = 0.08;
      osc.connect(gain);
      gain.connect(audio.destination);
      osc.start();
      osc.stop(audio.currentTime + 0.15);
    } catch (e) { /* no audio device */ }
  }

  // A customer wrote: tone, and a desktop notification when this tab is not in view.
  function alertCustomerMessage(body, href) {
    if (!alertsOn()) { return; }
    document.body.setAttribute("data-alerts", String(Number(document.body.getAttribute("data-alerts") || 0) + 1));
    tone();
    if (document.hidden && window.Notification && Notification.permission === "granted") {
      try {
        var note = new Notification("New customer message", { body: body || "", tag: "console-customer" });
        note.onclick = function () { window.focus(); if (href) { location.assign(href); } };
      } catch (e) { /* notifications unavailable here */ }
    }
  }

  return {
    alertToggle: alertToggle,
    alertCustomerMessage: alertCustomerMessage,
    el: el,
    clear: clear,
    byId: byId,
    api: api,
    start: start,
    setCsrfToken: setCsrfToken,
    safeNext: safeNext,
    showStatus: showStatus,
    showError: showError,
    live: live,
    parseTime: parseTime,
    formatDate: formatDate,
    formatTime: formatTime,
    timeElement: timeElement,
    formatDuration: formatDuration,
    formatMoney: formatMoney,
    humanize: humanize,
    label: labelOf,
    reasonLabel: reasonLabel,
    priorityLabel: priorityLabel,
    priorityBadges: priorityBadges,
    canAct: canAct,
    roleLabel: roleLabel,
    sourceLabel: sourceLabel,
    feedbackKindLabel: feedbackKindLabel
  };
})();

export default ConsoleApp;
