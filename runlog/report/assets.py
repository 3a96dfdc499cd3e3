"""The report's inline style sheet and script. Both are constants, so the page's Content
Security Policy can name them by hash and allow nothing else: no remote loads, no other
script (an injected `onerror=` or `<script>` would not run even if it escaped escaping)."""

CSS = """
:root { --fg: #1d2330; --muted: #5b6475; --line: #d8dce4; --bg: #ffffff; --soft: #f4f6f9; --accent: #2456a6; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: var(--fg);
  background: var(--bg); margin: 0; padding: 0 24px 48px; max-width: 1280px; }
header.top { border-bottom: 2px solid var(--fg); padding: 18px 0 10px; margin-bottom: 8px; }
h1 { font-size: 22px; margin: 0 0 8px; }
h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
h3 { font-size: 16px; margin: 0 0 8px; }
h4 { font-size: 14px; margin: 16px 0 6px; color: var(--muted); text-transform: uppercase; letter-spacing: .04em; }
h5 { font-size: 13px; margin: 10px 0 4px; }
a { color: var(--accent); }
code, pre, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
pre { background: var(--soft); border: 1px solid var(--line); padding: 8px 10px; overflow: auto; max-height: 420px;
  white-space: pre-wrap; word-break: break-all; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; word-break: break-all; }
nav.toc a { margin-right: 14px; }
.verdict-ok { color: #176d2c; font-weight: 600; }
.verdict-bad { color: #b3261e; font-weight: 600; }
ul.problems { color: #b3261e; }
.note { color: var(--muted); }
table { border-collapse: collapse; width: 100%; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: var(--soft); white-space: nowrap; }
th button { font: inherit; font-weight: 600; background: none; border: 0; padding: 0; cursor: pointer; color: inherit; }
th[aria-sort="ascending"] button::after { content: " \\25B2"; }
th[aria-sort="descending"] button::after { content: " \\25BC"; }
tr[hidden] { display: none; }
tr:target { background: #fff4c2; }
td.num { text-align: right; }
section.run td { overflow-wrap: anywhere; }
[hidden] { display: none !important; }
.controls { display: flex; gap: 10px; align-items: center; margin: 8px 0; flex-wrap: wrap; }
.controls input { padding: 4px 8px; min-width: 260px; }
.status { display: inline-block; padding: 0 6px; border-radius: 3px; font-size: 12px; font-weight: 600;
  background: #e6e8ee; }
.status.st-completed { background: #d7f0dc; color: #135c25; }
.status.st-failed, .status.st-cancelled { background: #f8d8d6; color: #8c1d16; }
.status.st-rejected, .status.st-abandoned { background: #ece3f7; color: #4d2a7a; }
.status.st-running, .status.st-starting, .status.st-pending, .status.st-stopping { background: #dbe7fb; color: #1c4587; }
.dirty { color: #a15c00; font-weight: 600; }
svg { font-family: inherit; }
svg.lineage { border: 1px solid var(--line); background: #fcfcfd; max-width: 100%; height: auto; }
.graph-box { overflow: auto; max-height: 640px; }
svg .edge { fill: none; stroke: #7a8294; stroke-width: 1.4; }
svg .edge-member { stroke-dasharray: 4 3; }
svg .arrowhead { fill: #7a8294; }
svg .node .mark { fill: #9aa3b5; stroke: #4a5160; stroke-width: 1.2; }
svg .node.st-completed .mark { fill: #3aa55a; }
svg .node.st-failed .mark, svg .node.st-cancelled .mark { fill: #d9463b; }
svg .node.st-running .mark, svg .node.st-pending .mark, svg .node.st-starting .mark { fill: #4f83d9; }
svg .node.not-run .mark { fill: #ffffff; stroke: #8e5cc7; stroke-width: 1.6; }
svg .node.kind-import .mark { stroke-dasharray: 3 2; stroke-width: 2; }
svg .node.kind-batch .mark { fill: #f0c43c; }
svg .node .cross { stroke: #8e5cc7; stroke-width: 1.6; }
svg .node .label { font-size: 12px; fill: var(--fg); }
svg .node:hover .mark, svg .node:focus .mark { stroke: #000; stroke-width: 2.4; }
.legend span { margin-right: 14px; }
.legend i { display: inline-block; width: 11px; height: 11px; border-radius: 50%; vertical-align: -1px;
  margin-right: 4px; border: 1px solid #4a5160; background: #9aa3b5; }
.legend i.st-completed { background: #3aa55a; }
.legend i.st-failed { background: #d9463b; }
.legend i.st-running { background: #4f83d9; }
.legend i.not-run { background: #fff; border-color: #8e5cc7; }
.legend i.kind-import { border-style: dashed; border-width: 2px; }
.legend i.kind-batch { background: #f0c43c; border-radius: 0; }
svg.chart .axis { stroke: #4a5160; }
svg.chart .tick { font-size: 11px; fill: var(--muted); }
svg.chart .bar { fill: #9aa3b5; }
svg.chart .bar.st-completed { fill: #3aa55a; }
svg.chart .bar.st-failed, svg.chart .bar.st-cancelled { fill: #d9463b; }
svg.chart .bar.st-running, svg.chart .bar.st-pending, svg.chart .bar.st-starting { fill: #4f83d9; }
svg.chart .bar.st-rejected, svg.chart .bar.st-abandoned { fill: #b995e3; }
section.run { display: none; border: 1px solid var(--line); border-left: 4px solid var(--accent); padding: 12px 16px;
  margin: 12px 0; }
section.run:target { display: block; }
ol.timeline { list-style: none; padding-left: 0; border-left: 2px solid var(--line); margin-left: 6px; }
ol.timeline li { position: relative; padding: 2px 0 6px 16px; }
ol.timeline li::before { content: ""; position: absolute; left: -6px; top: 8px; width: 10px; height: 10px;
  border-radius: 50%; background: var(--accent); }
ul.changes { list-style: none; padding-left: 0; margin: 0; }
ul.changes li { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.k-added { color: #176d2c; } .k-removed { color: #b3261e; } .k-changed { color: #8a5a00; }
.k-type_changed { color: #7a2d8c; }
footer { margin-top: 32px; color: var(--muted); font-size: 12px; }
@media print {
  body { max-width: none; padding: 0; font-size: 11px; }
  .controls, nav.toc, .noprint { display: none !important; }
  tr[hidden] { display: table-row !important; }
  section.run { display: block; break-inside: avoid-page; }
  pre { max-height: none; overflow: visible; }
  .graph-box { max-height: none; overflow: visible; }
  a { color: inherit; text-decoration: none; }
}
"""

# Plain ES2015, no libraries. Progressive: without it every row is shown, in ledger order,
# and sections open through their #anchors (CSS :target).
JS = """
(function () {
  'use strict';
  var table = document.getElementById('runs-table');
  if (!table) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var texts = rows.map(function (row) { return row.textContent.toLowerCase(); });
  var controls = document.getElementById('controls');
  var filter = document.getElementById('filter');
  var status = document.getElementById('status-filter');
  var count = document.getElementById('count');
  var prev = document.getElementById('prev');
  var next = document.getElementById('next');
  var size = parseInt(table.getAttribute('data-page-size'), 10) || 100;
  var page = 0;
  var matching = rows;
  controls.hidden = false;

  function show() {
    var pages = Math.max(1, Math.ceil(matching.length / size));
    if (page >= pages) { page = pages - 1; }
    var first = page * size;
    var visible = new Set(matching.slice(first, first + size));
    rows.forEach(function (row) { row.hidden = !visible.has(row); });
    count.textContent = matching.length + ' of ' + rows.length + ' runs' +
      (pages > 1 ? ' \\u2014 page ' + (page + 1) + ' of ' + pages : '');
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  }

  function apply() {
    var words = filter.value.toLowerCase().split(/\\s+/).filter(Boolean);
    var wanted = status.value;
    var index = new Map(rows.map(function (row, i) { return [row, i]; }));
    matching = Array.prototype.slice.call(body.rows).filter(function (row) {
      var text = texts[index.get(row)];
      return (!wanted || row.getAttribute('data-status') === wanted) &&
        words.every(function (word) { return text.indexOf(word) !== -1; });
    });
    page = 0;
    show();
  }

  filter.addEventListener('input', apply);
  status.addEventListener('change', apply);
  prev.addEventListener('click', function () { page -= 1; show(); });
  next.addEventListener('click', function () { page += 1; show(); });

  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (cell, column) {
    var button = cell.querySelector('button');
    if (!button) { return; }
    button.addEventListener('click', function () {
      var ascending = cell.getAttribute('aria-sort') !== 'ascending';
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (other) { other.removeAttribute('aria-sort'); });
      cell.setAttribute('aria-sort', ascending ? 'ascending' : 'descending');
      var numeric = cell.hasAttribute('data-numeric');
      var keyed = Array.prototype.slice.call(body.rows).map(function (row, i) {
        var target = row.cells[column];
        var key = target.getAttribute('data-sort');
        if (key === null) { key = target.textContent; }
        return { row: row, key: numeric ? parseFloat(key) || 0 : key, i: i };
      });
      keyed.sort(function (a, b) {
        var order = a.key < b.key ? -1 : a.key > b.key ? 1 : a.i - b.i;
        return ascending ? order : -order;
      });
      var fragment = document.createDocumentFragment();
      keyed.forEach(function (item) { fragment.appendChild(item.row); });
      body.appendChild(fragment);
      apply();
    });
  });

  function reveal() {
    var id = decodeURIComponent(location.hash.slice(1));
    var target = id ? document.getElementById(id) : null;
    if (target && target.tagName === 'TR') {
      if (matching.indexOf(target) === -1) { filter.value = ''; status.value = ''; apply(); }
      page = Math.floor(matching.indexOf(target) / size);
      show();
      target.scrollIntoView();
    }
  }
  window.addEventListener('hashchange', reveal);
  apply();
  reveal();
})();
"""
