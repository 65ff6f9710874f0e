/*
 * Console canned replies (/console/replies): agents see the list; admins add, edit and
 * delete (bot/domain/inbox.py checks shortcut, title, text and placeholders).
 * Helpers: console.js.
 */
import C from "./console.js";

(function () {
  "use strict";

  var list = C.byId("list");
  var empty = C.byId("empty");
  var editor = C.byId("editor");
  var editorTitle = C.byId("editor-title");
  var shortcut = C.byId("shortcut");
  var title = C.byId("title");
  var text = C.byId("text");
  var cancel = C.byId("cancel-edit");
  var me = null;
  var editing = null;

  function isAdmin() { return !!me && me.role === "admin"; }

  function edit(item) {
    editing = item;
    editorTitle.textContent = item ? "Edit /" + item.shortcut : "New canned reply";
    shortcut.value = item ? item.shortcut : "";
    title.value = item ? item.title : "";
    text.value = item ? item.text : "";
    cancel.hidden = !item;
    if (item) { shortcut.focus(); }
  }

  function remove(item, button) {
    if (button.getAttribute("data-armed") !== "1") {
      button.setAttribute("data-armed", "1");
      button.textContent = "Really delete?";
      return;
    }
    button.disabled = true;
    C.api("DELETE", "/canned/" + encodeURIComponent(String(item.id))).then(function () {
      C.showStatus("Deleted /" + item.shortcut + ".", "ok");
      if (editing && editing.id === item.id) { edit(null); }
      load();
    }, function (error) {
      button.disabled = false;
      C.showError(error);
    });
  }

  function render(items) {
    C.clear(list);
    items.forEach(function (item) {
      var li = C.el("li", "canned-item");
      var head = C.el("p", "canned-item__title", String(item.title) + " ");
      head.appendChild(C.el("span", "canned-item__shortcut", "/" + String(item.shortcut)));
      li.appendChild(head);
      li.appendChild(C.el("p", "canned-item__text", item.text));
      if (isAdmin()) {
        var change = C.el("button", "button button--small", "Edit");
        change.type = "button";
        change.setAttribute("aria-label", "Edit /" + item.shortcut);
        change.addEventListener("click", function () { edit(item); });
        var del = C.el("button", "button button--small button--danger", "Delete");
        del.type = "button";
        del.setAttribute("aria-label", "Delete /" + item.shortcut);
        del.addEventListener("click", function () { remove(item, del); });
        li.appendChild(change);
        li.appendChild(document.createTextNode(" "));
        li.appendChild(del);
      }
      list.appendChild(li);
    });
    list.hidden = items.length === 0;
    empty.hidden = items.length !== 0;
  }

  function load() {
    return C.api("GET", "/canned").then(function (data) {
      render(data && Array.isArray(data.items) ? data.items : []);
    }, function (error) { C.showError(error); });
  }

  editor.addEventListener("submit", function (event) {
    event.preventDefault();
    var body = { shortcut: shortcut.value, title: title.value, text: text.value };
    var request = editing
      ? C.api("PUT", "/canned/" + encodeURIComponent(String(editing.id)), body)
      : C.api("POST", "/canned", body);
    request.then(function (saved) {
      C.showStatus("Saved /" + saved.shortcut + ".", "ok");
      edit(null);
      load();
    }, function (error) { C.showError(error); });
  });
  cancel.addEventListener("click", function () {
    edit(null);
    C.showStatus("", null);
  });

  C.start().then(function (user) {
    me = user;
    editor.hidden = !isAdmin();
    load();
  }, function (error) { C.showError(error); });
})();
