/*
 * Console account page (/console/account, issue #22): the signed-in staff member's own
 * live sessions (browser, address, signed in, last used, which is this one) with "End" for
 * each (ending this one signs out), and their two-factor sign-in: set it up (secret and
 * otpauth:// link as text, confirmed with a code) or turn it off. Helpers: console.js.
 */
import C from "./console.js";

(function () {
  "use strict";

  var table = C.byId("sessions-table");
  var body = C.byId("sessions-body");
  var summary = C.byId("sessions-summary");
  var loadingNote = C.byId("sessions-loading");
  var tfaState = C.byId("tfa-state");
  var tfaSetup = C.byId("tfa-setup");
  var tfaPending = C.byId("tfa-pending");
  var confirmForm = C.byId("tfa-confirm-form");
  var disableForm = C.byId("tfa-disable-form");

  function browserLabel(userAgent) {
    var ua = typeof userAgent === "string" ? userAgent : "";
    if (!ua) { return "Unknown browser"; }
    var name = /Edg\//.test(ua) ? "Edge" : /Firefox\//.test(ua) ? "Firefox" :
      /Chrom(e|ium)\//.test(ua) ? "Chrome" : /Safari\//.test(ua) ? "Safari" : "";
    var os = /Windows/.test(ua) ? "Windows" : /Android/.test(ua) ? "Android" :
      /iPhone|iPad/.test(ua) ? "iOS" : /Mac OS X/.test(ua) ? "macOS" : /Linux/.test(ua) ? "Linux" : "";
    if (name && os) { return name + " on " + os; }
    return name || os || ua.slice(0, 60);
  }

  function endSession(item, button) {
    button.disabled = true;
    C.api("DELETE", "/sessions/" + encodeURIComponent(String(item.id))).then(function () {
      if (item.current) {
        location.assign("/console/login");
        return;
      }
      C.showStatus("Session ended.", "ok");
      loadSessions();
    }, function (error) {
      button.disabled = false;
      C.showError(error);
    });
  }

  function renderRow(item) {
    var row = C.el("tr", "row");
    row.setAttribute("data-session-id", String(item.id));
    var browser = C.el("td", "cell-browser", browserLabel(item.user_agent));
    if (item.user_agent) { browser.title = String(item.user_agent); }
    if (item.current) {
      browser.appendChild(document.createTextNode(" "));
      browser.appendChild(C.el("strong", "session-current", "(this session)"));
    }
    row.appendChild(browser);
    row.appendChild(C.el("td", "cell-address", item.client_address ? String(item.client_address) : "—"));
    var started = C.el("td", "cell-when");
    started.appendChild(C.timeElement(item.created_at));
    row.appendChild(started);
    var used = C.el("td", "cell-when");
    used.appendChild(C.timeElement(item.last_used_at));
    row.appendChild(used);
    var action = C.el("td", "cell-action");
    var button = C.el("button", "button button--small", "End");
    button.type = "button";
    button.setAttribute("aria-label", item.current ? "End this session (sign out)" :
      "End the session of " + browserLabel(item.user_agent) +
      (item.client_address ? " at " + String(item.client_address) : ""));
    button.addEventListener("click", function () { endSession(item, button); });
    action.appendChild(button);
    row.appendChild(action);
    return row;
  }

  function loadSessions() {
    return C.api("GET", "/sessions").then(function (data) {
      var items = data && Array.isArray(data.sessions) ? data.sessions : [];
      C.clear(body);
      items.forEach(function (item) { body.appendChild(renderRow(item)); });
      loadingNote.hidden = true;
      table.hidden = items.length === 0;
      summary.textContent = (items.length === 1 ? "1 session" : items.length + " sessions") +
        (data && data.idle_minutes ? "; a session unused for " + data.idle_minutes +
          " minutes ends by itself." : ".");
    }, function (error) {
      loadingNote.hidden = true;
      C.showError(error);
    });
  }

  function showTwoFactor(state) {
    var enabled = !!(state && state.enabled);
    var required = !!(state && state.required);
    tfaState.textContent = enabled
      ? "Two-factor sign-in is on: signing in needs a code from your authenticator app."
      : "Two-factor sign-in is off." + (required ? " Your role must use it here." : "");
    tfaSetup.hidden = enabled;
    tfaSetup.textContent = state && state.pending ? "Start the set-up again" : "Set up two-factor sign-in";
    disableForm.hidden = !enabled;
    if (enabled) { tfaPending.hidden = true; }
  }

  function loadTwoFactor() {
    return C.api("GET", "/2fa").then(showTwoFactor, C.showError);
  }

  tfaSetup.addEventListener("click", function () {
    tfaSetup.disabled = true;
    C.api("POST", "/2fa/setup").then(function (data) {
      tfaSetup.disabled = false;
      C.byId("tfa-secret").textContent = data ? String(data.secret) : "";
      C.byId("tfa-uri").textContent = data ? String(data.otpauth_uri) : "";
      tfaPending.hidden = false;
      C.byId("tfa-confirm-code").focus();
    }, function (error) {
      tfaSetup.disabled = false;
      C.showError(error);
    });
  });

  function codeForm(form, input, path, done) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      var submit = form.querySelector("button[type='submit']");
      submit.disabled = true;
      C.api("POST", path, { code: input.value.trim() }).then(function (state) {
        submit.disabled = false;
        input.value = "";
        showTwoFactor(state);
        C.showStatus(done, "ok");
      }, function (error) {
        submit.disabled = false;
        input.setAttribute("aria-invalid", "true");
        C.showError(error);
      });
    });
    input.addEventListener("input", function () { input.removeAttribute("aria-invalid"); });
  }

  codeForm(confirmForm, C.byId("tfa-confirm-code"), "/2fa/confirm", "Two-factor sign-in is on.");
  codeForm(disableForm, C.byId("tfa-disable-code"), "/2fa/disable", "Two-factor sign-in is off.");

  C.start().then(function () {
    loadSessions();
    loadTwoFactor();
  }, function (error) {
    loadingNote.hidden = true;
    C.showError(error);
  });
})();
