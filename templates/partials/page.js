(function () {
  "use strict";

  function drawCharts() {
    var specs = document.querySelectorAll('script[type="application/json"][data-chart-for]');
    for (var i = 0; i < specs.length; i++) {
      var div = document.getElementById(specs[i].getAttribute("data-chart-for"));
      if (!div) { continue; }
      if (typeof Plotly === "undefined") {
        div.textContent = "chart unavailable: plotly.js is missing from this file";
        continue;
      }
      var spec = JSON.parse(specs[i].textContent);
      Plotly.newPlot(div, spec.data, spec.layout, spec.config);
    }
  }

  function cellValue(row, index) {
    var cell = row.cells[index];
    if (!cell) { return ""; }
    var value = cell.getAttribute("data-sort");
    return value !== null ? value : cell.textContent.trim();
  }

  function isNumber(text) {
    return text === "" || (!isNaN(parseFloat(text)) && isFinite(text));
  }

  function sortBy(table, header, index) {
    var body = table.tBodies[0];
    if (!body) { return; }
    var rows = Array.prototype.slice.call(body.rows);
    var ascending = header.getAttribute("aria-sort") !== "ascending";
    var numeric = rows.every(function (r) { return isNumber(cellValue(r, index)); });
    rows.sort(function (a, b) {
      var x = cellValue(a, index), y = cellValue(b, index), c;
      if (numeric) {
        c = (x === "" ? -Infinity : parseFloat(x)) - (y === "" ? -Infinity : parseFloat(y));
        if (isNaN(c)) { c = 0; }
      } else {
        c = x.localeCompare(y);
      }
      return ascending ? c : -c;
    });
    var headers = header.parentNode.cells;
    for (var h = 0; h < headers.length; h++) { headers[h].removeAttribute("aria-sort"); }
    header.setAttribute("aria-sort", ascending ? "ascending" : "descending");
    rows.forEach(function (r) { body.appendChild(r); });
  }

  function makeSortable(table) {
    if (!table.tHead || !table.tHead.rows.length) { return; }
    var headers = table.tHead.rows[table.tHead.rows.length - 1].cells;
    Array.prototype.forEach.call(headers, function (header, index) {
      header.tabIndex = 0;
      header.title = "sort by this column";
      header.addEventListener("click", function () { sortBy(table, header, index); });
      header.addEventListener("keydown", function (e) {
        if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(table, header, index); }
      });
    });
  }

  document.querySelectorAll("table.sortable").forEach(makeSortable);
  window.addEventListener("beforeprint", function () {
    document.querySelectorAll("details").forEach(function (d) { d.open = true; });
    if (typeof Plotly !== "undefined") {
      document.querySelectorAll(".js-plotly-plot").forEach(function (p) { Plotly.Plots.resize(p); });
    }
  });
  drawCharts();
})();
