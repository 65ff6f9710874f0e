/*
 * Console login page: POST /console/api/login, then on to /console/ (or to the console page
 * the session ended on, ?next=/console/...). See console.js for the shared helpers.
 */
import C from "./console.js";

(function () {
  "use strict";

  var form = C.byId("login-form");
  var email = C.byId("email");
  var password = C.byId("password");
  var codeField = C.byId("code-field");
  var code = C.byId("code");
  var button = C.byId("signin");
  var next = C.safeNext(new URLSearchParams(location.search).get("next"));
  var busy = false;

  // CX managers have no console queue: they go to the dashboard instead; bot trainers to
  // the review inbox (issue #24).
  function destination(me) {
    if (me && me.role === "bot_trainer" && next === "/console/") { return "/console/review"; }
    return me && me.role === "cx_manager" && next === "/console/" ? "/dashboard/" : next;
  }

  // Already signed in (e.g. the login page was bookmarked): straight on.
  C.api("GET", "/me", null, { allow401: true }).then(function (me) {
    if (me && me.id !== undefined) { location.replace(destination(me)); }
  }, function () { /* not signed in: stay here */ });

  function invalid(input, isInvalid) {
    if (isInvalid) { input.setAttribute("aria-invalid", "true"); } else { input.removeAttribute("aria-invalid"); }
  }

  [email, password, code].forEach(function (input) {
    input.addEventListener("input", function () { invalid(input, false); });
  });

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (busy) { return; }
    var address = email.value.trim();
    invalid(email, !address);
    invalid(password, !password.value);
    if (!address || !password.value) {
      C.showStatus("Enter your email and password.", "error");
      (address ? password : email).focus();
      return;
    }
    busy = true;
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    C.showStatus("Signing in…", "info");
    var body = { email: address, password: password.value };
    if (!codeField.hidden) { body.code = code.value.trim(); }
    C.api("POST", "/login", body, { allow401: true })
      .then(function (me) {
        C.setCsrfToken(me && me.csrf_token);
        C.showStatus("Signed in. Opening the console…", "ok");
        location.assign(destination(me));
      }, function (error) {
        busy = false;
        button.disabled = false;
        form.removeAttribute("aria-busy");
        C.showError(error);
        if (error.code === "totp_required" || error.code === "bad_totp") {
          // Two-factor sign-in (issue #22): the password was right, the code is asked for.
          codeField.hidden = false;
          code.value = "";
          invalid(code, error.code === "bad_totp");
          code.focus();
        } else if (error.status === 401) {
          password.value = "";
          invalid(password, true);
          password.focus();
        }
      });
  });
})();
