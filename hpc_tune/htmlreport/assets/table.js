// The trial table: sort by a column (click its header), filter by terms such as
// "state=stopped", "value<0.1", "param.lr>1e-3" or plain text found in any cell.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("trials-data").textContent);
  var columns = data.columns, rows = data.rows, maxRows = data.max_rows;
  var table = document.getElementById("trials-table");
  var input = document.getElementById("trials-filter");
  var count = document.getElementById("trials-count");
  var sortCol = 0, sortDir = 1;

  function fmt(v) {
    if (v === null || v === undefined) return "";
    if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(6).replace(/\.?0+(e|$)/, "$1");
    return String(v);
  }

  function parseTerms(text) {
    return text.trim().split(/\s+/).filter(Boolean).map(function (term) {
      var m = /^([^<>=!~]+)(<=|>=|!=|=|<|>)(.*)$/.exec(term);
      if (m && columns.indexOf(m[1]) >= 0) return {col: columns.indexOf(m[1]), op: m[2], arg: m[3]};
      return {text: term.toLowerCase()};
    });
  }

  function matches(row, terms) {
    for (var i = 0; i < terms.length; i++) {
      var t = terms[i];
      if (t.text !== undefined) {
        var hit = false;
        for (var c = 0; c < row.length && !hit; c++) hit = fmt(row[c]).toLowerCase().indexOf(t.text) >= 0;
        if (!hit) return false;
        continue;
      }
      var v = row[t.col], num = parseFloat(t.arg);
      if (t.op === "=" && fmt(v) !== t.arg && !(typeof v === "number" && v === num)) return false;
      if (t.op === "!=" && (fmt(v) === t.arg || (typeof v === "number" && v === num))) return false;
      if (t.op.length && "<>".indexOf(t.op[0]) >= 0) {
        if (typeof v !== "number" || isNaN(num)) return false;
        if (t.op === "<" && !(v < num)) return false;
        if (t.op === "<=" && !(v <= num)) return false;
        if (t.op === ">" && !(v > num)) return false;
        if (t.op === ">=" && !(v >= num)) return false;
      }
    }
    return true;
  }

  function compare(a, b) {
    var x = a[sortCol], y = b[sortCol];
    if (x === y) return 0;
    if (x === null || x === undefined) return 1;  // empty cells last, whatever the direction
    if (y === null || y === undefined) return -1;
    if (typeof x === "number" && typeof y === "number") return sortDir * (x - y);
    return sortDir * String(x).localeCompare(String(y), undefined, {numeric: true});
  }

  function render() {
    var terms = parseTerms(input.value);
    var shown = rows.filter(function (r) { return matches(r, terms); });
    shown.sort(compare);
    var head = "<thead><tr>" + columns.map(function (c, i) {
      var cls = i === sortCol ? (sortDir > 0 ? "sorted-asc" : "sorted-desc") : "";
      return '<th data-col="' + i + '" class="' + cls + '">' + escape(c) + "</th>";
    }).join("") + "</tr></thead>";
    var stateCol = columns.indexOf("state");
    var body = shown.slice(0, maxRows).map(function (r) {
      return "<tr>" + r.map(function (v, i) {
        var cls = typeof v === "number" ? "num" : (i === stateCol ? "state-" + v : "");
        return '<td class="' + cls + '">' + escape(fmt(v)) + "</td>";
      }).join("") + "</tr>";
    }).join("");
    table.innerHTML = head + "<tbody>" + body + "</tbody>";
    count.textContent = shown.length + " of " + rows.length + " trials" +
      (shown.length > maxRows ? " (the first " + maxRows + " shown: sort or filter to see others)" : "");
  }

  function escape(s) {
    return s.replace(/[&<>"]/g, function (ch) { return {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}[ch]; });
  }

  table.addEventListener("click", function (ev) {
    var th = ev.target.closest("th");
    if (!th) return;
    var col = Number(th.getAttribute("data-col"));
    sortDir = col === sortCol ? -sortDir : 1;
    sortCol = col;
    render();
  });
  input.addEventListener("input", render);
  render();
})();
