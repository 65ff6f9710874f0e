/*
 * Knowledge page (/console/knowledge, issue #19): unanswered questions with counts, and the
 * products and help-centre articles the bot answers from, editable. API:
 * /console/api/knowledge. Helpers: console.js.
 */
import C from "./console.js";

(function () {
  "use strict";

  var data = { unanswered: [], products: [], articles: [] };
  var PRODUCT_FIELDS = ["sku", "name", "url", "stock", "description", "materials", "care", "sizes", "warranty"];

  function cell(text) { return C.el("td", "", text); }

  function editButton(label, onClick) {
    var td = C.el("td");
    var button = C.el("button", "button button--quiet", "Edit");
    button.type = "button";
    button.setAttribute("aria-label", "Edit " + label);
    button.addEventListener("click", onClick);
    td.appendChild(button);
    return td;
  }

  function render() {
    var unanswered = C.byId("unanswered");
    C.clear(unanswered);
    data.unanswered.forEach(function (q) {
      var row = C.el("tr");
      row.appendChild(cell(q.question));
      row.appendChild(cell(q.count));
      row.appendChild(cell(C.formatDate ? C.formatDate(q.last_asked_at) : q.last_asked_at));
      row.appendChild(cell((q.closest || []).join(", ")));
      unanswered.appendChild(row);
    });
    C.byId("unanswered-empty").hidden = data.unanswered.length > 0;

    var articles = C.byId("articles");
    C.clear(articles);
    data.articles.forEach(function (a) {
      var row = C.el("tr");
      row.appendChild(cell(a.title));
      row.appendChild(cell(a.slug));
      row.appendChild(cell(C.formatDate ? C.formatDate(a.updated_at) : a.updated_at));
      row.appendChild(editButton(a.title, function () {
        C.byId("article-slug").value = a.slug;
        C.byId("article-title").value = a.title;
        C.byId("article-body").value = a.body;
        C.byId("article-title").focus();
      }));
      articles.appendChild(row);
    });

    var products = C.byId("products");
    C.clear(products);
    data.products.forEach(function (p) {
      var row = C.el("tr");
      row.appendChild(cell(p.name));
      row.appendChild(cell(p.sku));
      row.appendChild(cell(p.stock));
      row.appendChild(editButton(p.name, function () {
        PRODUCT_FIELDS.forEach(function (name) {
          C.byId("product-" + name).value = p[name] === null || p[name] === undefined ? "" : p[name];
        });
        C.byId("product-name").focus();
      }));
      products.appendChild(row);
    });

    C.byId("summary").textContent = data.products.length + " products, " +
      data.articles.length + " articles, " + data.unanswered.length + " unanswered questions";
  }

  function load() {
    return C.api("GET", "/knowledge").then(function (body) {
      data = body;
      render();
    }, C.showError);
  }

  C.byId("article-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var body = {
      slug: C.byId("article-slug").value.trim(),
      title: C.byId("article-title").value,
      body: C.byId("article-body").value
    };
    C.api("POST", "/knowledge/articles", body).then(function (saved) {
      C.showStatus(saved.changed ? "Article “" + saved.title + "” saved." : "Nothing changed.");
      return load();
    }, C.showError);
  });

  C.byId("product-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var body = {};
    PRODUCT_FIELDS.forEach(function (name) { body[name] = C.byId("product-" + name).value; });
    body.stock = parseInt(body.stock, 10);
    C.api("POST", "/knowledge/products", body).then(function (saved) {
      C.showStatus(saved.changed ? "Product “" + saved.name + "” saved." : "Nothing changed.");
      return load();
    }, C.showError);
  });

  C.start().then(load, C.showError);
})();
