/*
 * Review inbox (/console/review, issue #24): flagged customer messages with three turns of
 * context before and after; confirm what the bot understood, pick the right intent (and mark
 * an entity), or dismiss as "not a real request". API: /console/api/review. Helpers: console.js.
 */
import C from "./console.js";

(function () {
  "use strict";

  var form = C.byId("filters");
  var reason = C.byId("reason");
  var intent = C.byId("intent");
  var from = C.byId("from");
  var to = C.byId("to");
  var state = C.byId("state");
  var list = C.byId("turns");
  var empty = C.byId("empty");
  var loadingNote = C.byId("loading");
  var summary = C.byId("summary");
  var prev = C.byId("prev");
  var next = C.byId("next");
  var offset = 0;
  var choices = { reasons: [], intents: [], entities: [] };

  var VERDICTS = { confirmed: "Confirmed as", corrected: "Corrected to", dismissed: "Dismissed: not a real request" };

  function reasonLabel(value) { return C.label("review_reason", value); }
  function percent(value) {
    return typeof value === "number" ? Math.round(value * 100) + " %" : "—";
  }

  function fillSelect(select, values, label) {
    var keep = select.value;
    while (select.options.length > 1) { select.remove(1); }
    values.forEach(function (value) {
      var option = C.el("option", "", label ? label(value) : value);
      option.value = value;
      select.appendChild(option);
    });
    select.value = keep;
  }

  function line(message, current) {
    var item = C.el("li", "review-line" + (current ? " review-line--current" : ""));
    item.appendChild(C.el("span", "review-line__who", C.label("sender", message.sender) + ":"));
    item.appendChild(C.el("span", "", message.text));
    return item;
  }

  function nluList(item) {
    var dl = C.el("dl", "review-nlu");
    function row(term, value) {
      dl.appendChild(C.el("dt", "", term));
      dl.appendChild(C.el("dd", "", value));
    }
    row("Understood as", (item.intent || "—") + " (" + percent(item.confidence) + ")");
    row("Runner-up", (item.runner_up_intent || "—") + " (" + percent(item.runner_up_confidence) + ")");
    if (item.entities && item.entities.length) {
      row("Entities", item.entities.map(function (e) { return e.entity + " = " + e.value; }).join(", "));
    }
    if (item.bot_steps && item.bot_steps.length) { row("The bot ran", item.bot_steps.join(", ")); }
    return dl;
  }

  function verdictText(turn) {
    var label = VERDICTS[turn.review_status] || "Reviewed";
    return turn.review_status === "dismissed" ? label : label + " " + turn.reviewed_intent + ".";
  }

  function send(card, item, body, buttons) {
    buttons.forEach(function (b) { b.disabled = true; });
    C.api("POST", "/review/" + encodeURIComponent(String(item.message_id)), body).then(function (turn) {
      card.classList.add("review-card--done");
      var done = card.querySelector(".review-verdict");
      done.textContent = verdictText(turn);
      done.hidden = false;
      C.showStatus("Saved: " + verdictText(turn), "ok");
    }, function (error) {
      buttons.forEach(function (b) { b.disabled = false; });
      C.showError(error);
    });
  }

  function actions(card, item) {
    var id = String(item.message_id);
    var box = C.el("div", "review-actions");
    var confirm = C.el("button", "button button--primary button--small",
      item.suggested_intent ? "Confirm: " + item.suggested_intent : "Nothing to confirm");
    confirm.type = "button";
    confirm.disabled = !item.suggested_intent;
    box.appendChild(confirm);

    var pick = C.el("div", "field");
    var pickLabel = C.el("label", "", "Right intent");
    pickLabel.htmlFor = "intent-" + id;
    var select = C.el("select", "");
    select.id = "intent-" + id;
    choices.intents.forEach(function (name) {
      var option = C.el("option", "", name);
      option.value = name;
      select.appendChild(option);
    });
    select.value = item.suggested_intent && choices.intents.indexOf(item.suggested_intent) >= 0 ?
      item.suggested_intent : choices.intents[0];
    pick.appendChild(pickLabel);
    pick.appendChild(select);
    box.appendChild(pick);

    var entityField = C.el("div", "field");
    var entityLabel = C.el("label", "", "Entity (optional)");
    entityLabel.htmlFor = "entity-" + id;
    var entity = C.el("select", "");
    entity.id = "entity-" + id;
    var none = C.el("option", "", "None");
    none.value = "";
    entity.appendChild(none);
    choices.entities.forEach(function (name) {
      var option = C.el("option", "", name);
      option.value = name;
      entity.appendChild(option);
    });
    entityField.appendChild(entityLabel);
    entityField.appendChild(entity);
    box.appendChild(entityField);

    var valueField = C.el("div", "field");
    var valueLabel = C.el("label", "", "Entity words");
    valueLabel.htmlFor = "value-" + id;
    var value = C.el("input", "");
    value.id = "value-" + id;
    value.type = "text";
    value.maxLength = 200;
    value.autocomplete = "off";
    valueField.appendChild(valueLabel);
    valueField.appendChild(value);
    box.appendChild(valueField);

    var correct = C.el("button", "button button--small", "Save with this intent");
    correct.type = "button";
    box.appendChild(correct);
    var dismiss = C.el("button", "button button--quiet button--small", "Not a real request");
    dismiss.type = "button";
    box.appendChild(dismiss);

    // Issue #24: the conversation up to this turn as a regression conversation
    // (tests/conversations/ format, personal data replaced), downloaded as a file.
    var save = C.el("a", "button button--small", "Save as regression conversation");
    save.href = "/console/api/review/" + encodeURIComponent(id) + "/regression.yml";
    save.setAttribute("download", "reviewed-rv" + id + ".yml");
    box.appendChild(save);

    var all = [confirm, correct, dismiss];
    confirm.addEventListener("click", function () { send(card, item, { verdict: "confirm" }, all); });
    correct.addEventListener("click", function () {
      var entities = entity.value && value.value.trim() ?
        [{ entity: entity.value, value: value.value.trim() }] : [];
      send(card, item, { verdict: "correct", intent: select.value, entities: entities }, all);
    });
    dismiss.addEventListener("click", function () { send(card, item, { verdict: "dismiss" }, all); });
    return box;
  }

  function render(item) {
    var card = C.el("li", "review-card");
    card.setAttribute("data-message-id", String(item.message_id));
    var head = C.el("div", "review-card__head");
    head.appendChild(C.el("h2", "review-card__title", "Message " + item.message_id));
    var when = C.el("span", "review-card__when");
    when.appendChild(C.timeElement(item.created_at));
    head.appendChild(when);
    card.appendChild(head);
    var reasons = C.el("ul", "review-reasons");
    reasons.setAttribute("aria-label", "Why it was flagged");
    (item.reasons || []).forEach(function (r) { reasons.appendChild(C.el("li", "review-reason", reasonLabel(r))); });
    card.appendChild(reasons);
    card.appendChild(C.el("blockquote", "review-turn", item.text));
    card.appendChild(nluList(item));
    var context = C.el("details", "review-context");
    context.open = true;
    context.appendChild(C.el("summary", "", "Conversation around it"));
    var lines = C.el("ol", "");
    (item.before || []).forEach(function (m) { lines.appendChild(line(m, false)); });
    lines.appendChild(line({ sender: "customer", text: item.text }, true));
    (item.after || []).forEach(function (m) { lines.appendChild(line(m, false)); });
    context.appendChild(lines);
    card.appendChild(context);
    card.appendChild(actions(card, item));
    var verdict = C.el("p", "review-verdict");
    verdict.setAttribute("role", "status");
    if (item.review_status) { verdict.textContent = verdictText(item); card.classList.add("review-card--done"); }
    else { verdict.hidden = true; }
    card.appendChild(verdict);
    return card;
  }

  function load() {
    var params = new URLSearchParams();
    if (reason.value) { params.set("reason", reason.value); }
    if (intent.value) { params.set("intent", intent.value); }
    if (from.value) { params.set("from", from.value); }
    if (to.value) { params.set("to", to.value); }
    if (state.value && state.value !== "open") { params.set("state", state.value); }
    var query = params.toString();
    history.replaceState(null, "", location.pathname + (query ? "?" + query : ""));
    if (offset) { params.set("offset", String(offset)); }
    loadingNote.hidden = false;
    C.api("GET", "/review?" + params.toString()).then(function (data) {
      choices = { reasons: data.reasons || [], intents: data.intents || [], entities: data.entities || [] };
      fillSelect(reason, choices.reasons, reasonLabel);
      fillSelect(intent, choices.intents.concat(["nlu_fallback"]));
      var items = Array.isArray(data.items) ? data.items : [];
      C.clear(list);
      items.forEach(function (item) { list.appendChild(render(item)); });
      loadingNote.hidden = true;
      empty.hidden = items.length !== 0;
      summary.textContent = data.total === 1 ? "1 flagged message" : data.total + " flagged messages" +
        (items.length ? " (" + (offset + 1) + "–" + (offset + items.length) + " shown)" : "");
      prev.hidden = offset === 0;
      next.hidden = offset + items.length >= data.total;
      C.showStatus("", null);
    }, function (error) {
      loadingNote.hidden = true;
      C.showError(error);
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    offset = 0;
    load();
  });
  C.byId("clear").addEventListener("click", function () {
    reason.value = ""; intent.value = ""; from.value = ""; to.value = ""; state.value = "open";
    offset = 0;
    load();
  });
  prev.addEventListener("click", function () { offset = Math.max(0, offset - 25); load(); });
  next.addEventListener("click", function () { offset += 25; load(); });

  var params = new URLSearchParams(location.search);
  from.value = params.get("from") || "";
  to.value = params.get("to") || "";
  state.value = params.get("state") || "open";
  C.start().then(function () {
    // The selects are filled by the first answer; then the URL's choice is applied.
    var wanted = { reason: params.get("reason") || "", intent: params.get("intent") || "" };
    if (wanted.reason) { reason.appendChild(new Option(wanted.reason, wanted.reason)); }
    reason.value = wanted.reason;
    if (wanted.intent) { intent.appendChild(new Option(wanted.intent, wanted.intent)); }
    intent.value = wanted.intent;
    load();
  }, function (error) {
    loadingNote.hidden = true;
    C.showError(error);
  });
})();
