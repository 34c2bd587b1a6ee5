(function () {
  "use strict";
  // tgs dashboard: pages the open thoughts (PAGE rows at a time) and filters
  // every backlog row by the text typed. Without this script every row shows.
  var PAGE = 100;
  var tools = document.getElementById("backlog-tools");
  if (!tools) { return; }
  var filter = document.getElementById("backlog-filter");
  var label = document.getElementById("backlog-page");
  var prev = document.getElementById("backlog-prev");
  var next = document.getElementById("backlog-next");
  var table = document.getElementById("backlog-open");
  var rowsOf = function (root) {
    return root ? Array.prototype.slice.call(root.querySelectorAll("tbody tr")) : [];
  };
  var textOf = function (r) { return r.textContent.toLowerCase(); };
  var open = rowsOf(table);
  var openText = open.map(textOf);
  var months = Array.prototype.slice.call(document.querySelectorAll("#backlog details.month"))
    .map(function (d) {
      var rows = rowsOf(d);
      return { box: d, rows: rows, text: rows.map(textOf), note: d.querySelector(".match") };
    });
  var page = 0;
  function render() {
    var q = filter.value.trim().toLowerCase();
    var shown = [];
    open.forEach(function (r, i) {
      if (!q || openText[i].indexOf(q) >= 0) { shown.push(r); } else { r.hidden = true; }
    });
    var pages = Math.max(1, Math.ceil(shown.length / PAGE));
    page = Math.max(0, Math.min(page, pages - 1));
    shown.forEach(function (r, i) { r.hidden = Math.floor(i / PAGE) !== page; });
    label.textContent = "page " + (page + 1) + " of " + pages + " · " + shown.length +
      (q ? " open matching" : " open");
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
    months.forEach(function (m) {
      var n = 0;
      m.rows.forEach(function (r, i) {
        var ok = !q || m.text[i].indexOf(q) >= 0;
        r.hidden = !ok;
        n += ok ? 1 : 0;
      });
      m.box.hidden = n === 0;
      if (m.note) { m.note.textContent = q ? " · " + n + " matching" : ""; }
    });
  }
  filter.addEventListener("input", function () { page = 0; render(); });
  prev.addEventListener("click", function () { page -= 1; render(); });
  next.addEventListener("click", function () { page += 1; render(); });
  tools.hidden = false;
  render();
  document.documentElement.setAttribute("data-tgs-paged", "ok");
}());
