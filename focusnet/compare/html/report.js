(function () {
  function text(cell) {
    if (!cell) return "";
    var v = cell.getAttribute("data-value");
    return (v === null ? cell.textContent : v).trim();
  }
  function num(s) {
    var x = parseFloat(s.replace(/\u2212/g, "-").replace(/^[^0-9+\-.]+/, ""));
    return isNaN(x) ? null : x;
  }
  function sortBy(th) {
    var table = th.closest("table"), body = table.tBodies[0];
    if (!body) return;
    var idx = th.cellIndex, numeric = th.getAttribute("data-sort") === "num";
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    Array.prototype.forEach.call(th.parentNode.cells, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = text(a.cells[idx]), y = text(b.cells[idx]);
      if (numeric) {
        var nx = num(x), ny = num(y);
        if (nx === null || ny === null) return (nx === null) - (ny === null);
        return dir * (nx - ny);
      }
      if (x === "" || y === "") return (x === "") - (y === "");
      return dir * x.localeCompare(y, undefined, {numeric: true});
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }
  document.querySelectorAll("img.thumb").forEach(function (img) {
    img.title = "click to enlarge (again to shrink)";
    img.addEventListener("click", function () {
      var zoomed = img.classList.toggle("zoomed");
      img.style.width = zoomed ? (img.naturalWidth * ZOOM) + "px" : "";
    });
  });
  document.querySelectorAll("table.sortable th[data-sort]").forEach(function (th) {
    th.tabIndex = 0;
    th.title = "sort by this column";
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (e) {
      if (e.key === "Enter" || e.key === " ") { e.preventDefault(); sortBy(th); }
    });
  });
})();
