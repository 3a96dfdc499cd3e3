"""The report page: plain string building, every value from a record through `esc`
(html.escape after control and formatting characters are made visible).

Deterministic: nothing depends on the clock, the machine or the ledger's path; the same
selection of the same ledger gives the same bytes."""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from typing import Any

from runlog import __version__
from runlog.batchread import same_runs
from runlog.ledger import FINAL_STATUSES
from runlog.report import charts
from runlog.report.assets import CSS, JS
from runlog.report.graph import Edge, Node, esc, svg
from runlog.report.select import (
    Comparison,
    Run,
    Selection,
    batch_of,
    is_batch,
)

PAGE_SIZE = 100
NOT_RUN = ("REJECTED", "ABANDONED")


def _hash(text: str) -> str:
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii") + "'"


# Nothing may load from anywhere; only this page's own style sheet and script may apply.
CSP = (f"default-src 'none'; script-src {_hash(JS)}; style-src {_hash(CSS)}; img-src 'none'; "
       "base-uri 'none'; form-action 'none'")


def json_text(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)


def short(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _status(status: str) -> str:
    return f'<span class="status {charts.css_status(status)}">{esc(status)}</span>'


def _facts(pairs: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{v}</dd>" for k, v in pairs if v not in (None, ""))
    return f'<dl class="facts">{rows}</dl>'


def _workflow(entry_record: dict, workflow_id: str | None) -> str:
    request = entry_record.get("request") or {}
    version = request.get("workflowVersionName")
    return (workflow_id or "-") + (f" v{version}" if version else "")


def _label(run: Run) -> str:
    name = run.entry.name or (run.record.get("request") or {}).get("name")
    return name or (f"run {run.entry.run_id}" if run.entry.run_id else f"record {run.address[:12]}")


def render(selection: Selection) -> str:
    detailed = {run.address for run in selection.detailed}
    anchors = {run.address: (f"#{run.anchor}" if run.address in detailed else f"#row-{run.address[:16]}")
               for run in selection.runs}
    parts = [_head(selection), _header(selection, anchors), _charts(selection), _lineage(selection, anchors),
             _table(selection, anchors), _details(selection, anchors), _footer(selection)]
    return "".join(parts)


def _head(selection: Selection) -> str:
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<meta http-equiv=\"Content-Security-Policy\" content=\"{CSP}\">\n"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
        "<meta name=\"referrer\" content=\"no-referrer\">\n"
        f"<meta name=\"generator\" content=\"runlog {esc(__version__)}\">\n"
        f"<title>runlog report: ledger {esc(selection.ledger_id)}</title>\n"
        f"<style>{CSS}</style>\n</head>\n<body>\n"
    )


def _header(selection: Selection, anchors: dict[str, str]) -> str:
    report = selection.verify
    period = selection.period
    verdict = ('<span class="verdict-ok">intact</span>' if report.ok else
               f'<span class="verdict-bad">{len(report.problems)} problem(s)</span>')
    shown = len(selection.runs)
    counts = f"{shown} selected of {selection.ledger_records} in the ledger"
    facts = _facts([
        ("ledger id", f'<span class="mono">{esc(selection.ledger_id)}</span>'),
        ("selection", esc("; ".join(selection.asked))),
        ("records", esc(counts)),
        ("period", esc(f"{period[0]} to {period[1]}") if period else "no records"),
        ("verify", f"{verdict}: {report.records} records, {report.observations} observations, "
                   f"{report.attempts} attempts ({report.pending} pending) checked"),
        ("chain head", f'<span class="mono">{esc(report.head_text)}</span>'),
        ("runlog", esc(__version__)),
    ])
    problems = ""
    if report.problems:
        items = "".join(f"<li>{esc(p.message)}</li>" for p in report.problems[:200])
        more = (f"<li>… and {len(report.problems) - 200} more (`runlog verify` lists them all)</li>"
                if len(report.problems) > 200 else "")
        problems = f'<ul class="problems">{items}{more}</ul>'
    return (
        '<header class="top">\n<h1>runlog report</h1>\n' + facts + problems +
        '<p class="note">Verify checked the whole ledger as this report was written: every content address, seal, '
        'schema, intent and chain link. Keep the chain head: <code>runlog verify --expect HEAD</code> later proves '
        'the ledger still holds these records.</p>\n'
        '<nav class="toc"><a href="#charts">charts</a><a href="#lineage">lineage</a><a href="#runs">runs</a>'
        '<a href="#details">runs in detail</a></nav>\n</header>\n'
    )


def _charts(selection: Selection) -> str:
    runs = selection.distinct_runs  # each run once: no batch record, no second record of one run
    points = [(run.entry.created, run.status) for run in runs]
    out = ['<section id="charts">\n<h2>Runs per status over time</h2>\n', charts.runs_over_time(points)]
    members: dict[str, list[Run]] = {}
    for run in selection.runs:
        parent = batch_of(run.record)
        if parent:
            members.setdefault(parent, []).append(run)
    if members:
        out.append("<h2>Batch members by status</h2>\n")
        for parent in sorted(members):
            first = same_runs([(run.entry.run_id, run.entry.run_uuid) for run in members[parent]])
            each = [run for index, run in enumerate(members[parent]) if first[index] == index]
            shared = sum(1 for count in Counter(first).values() if count > 1)
            note = (f" ({len(members[parent])} member records: ListRunsInBatch gave {shared} run(s) to more than one "
                    "run setting)") if shared else ""
            batch_id = (members[parent][0].record.get("batch") or {}).get("batch_id")
            label = f"batch {batch_id} (record {parent[:12]})" if isinstance(batch_id, str) else f"batch {parent[:12]}"
            out.append(charts.by_status(label, [run.status for run in each], note))
    out.append("</section>\n")
    return "".join(out)


def _origin(record: dict) -> str | None:
    """The address of the record `record` replays, or None."""
    return ((record.get("lineage") or {}).get("replay_of") or {}).get("record")


def graph_parts(selection: Selection, anchors: dict[str, str]) -> tuple[list[Node], list[Edge]]:
    """The graph's nodes (the newest GRAPH_LIMIT selected runs, placed oldest first) and its
    edges (replay -> original, batch -> member) between them."""
    runs = list(reversed(selection.graphed))
    nodes, edges = [], []
    present = {run.address for run in runs}
    for run in runs:
        record = run.record
        classes = [charts.css_status(run.status), f"kind-{esc(record.get('kind', 'submit'))}"]
        if run.status in NOT_RUN:
            classes.append("not-run")
        origin = _origin(record)
        title = (f"{_label(run)} · {run.status} · {record.get('kind')} · {run.entry.created} · "
                 f"run {run.entry.run_id or '-'} · record {run.address[:12]}")
        if origin and origin not in present:  # in the report's table but not drawn, or not selected at all
            title += f" · replay of {origin[:12]} " + ("(not drawn: see its row)" if origin in anchors
                                                       else "(not in this report)")
        nodes.append(Node(run.address, _label(run), anchors[run.address], title, classes,
                          "square" if is_batch(record) else "circle"))
        if origin in present:
            edges.append(Edge(run.address, origin, "replay"))
        parent = batch_of(record)
        if parent in present:
            edges.append(Edge(parent, run.address, "member"))
    return nodes, edges


def _lineage(selection: Selection, anchors: dict[str, str]) -> str:
    nodes, edges = graph_parts(selection, anchors)
    if not nodes:
        return '<section id="lineage">\n<h2>Lineage</h2>\n<p class="empty">No runs selected.</p>\n</section>\n'
    limited = ""
    if len(selection.runs) > len(selection.graphed):
        limited = (f'<p class="note">The graph shows the newest {len(selection.graphed)} of the {len(selection.runs)} selected '
                   "runs; narrow the selection (REFs, --since, --batch) to draw the others.</p>\n")
    replays = sum(1 for run in selection.graphed if _origin(run.record))  # drawn, whether or not their original is
    legend = ('<p class="legend"><span><i class="st-completed"></i>completed</span>'
              '<span><i class="st-running"></i>pending or running</span><span><i class="st-failed"></i>failed or '
              'cancelled</span><span><i class="not-run"></i>rejected or abandoned (never ran)</span>'
              '<span><i class="kind-import"></i>imported</span><span><i class="kind-batch"></i>batch</span>'
              '<span>arrow: replay &#8594; the run it replays; batch &#8594; its members</span></p>\n')
    caption = f"lineage of {len(nodes)} records, {replays} replays"
    return ('<section id="lineage">\n<h2>Lineage</h2>\n'
            f'<p class="note">{len(nodes)} record(s), {replays} replay(s). Click one to open it.</p>\n'
            + limited + legend + '<div class="graph-box">' + svg(nodes, edges, caption=caption) + "</div>\n</section>\n")


def _table(selection: Selection, anchors: dict[str, str]) -> str:
    statuses = sorted({run.status for run in selection.runs}, key=charts.status_key)
    options = "".join(f'<option value="{esc(s)}">{esc(s)}</option>' for s in statuses)
    head = ("<thead><tr>" + "".join(
        f'<th{" data-numeric" if numeric else ""}><button type="button">{label}</button></th>'
        for label, numeric in (("status", False), ("workflow", False), ("name", False), ("git commit", False),
                               ("created (UTC)", False), ("run id", False), ("warnings", True),
                               ("record", False))) + "</tr></thead>\n")
    rows = []
    for run in selection.runs:
        entry, record = run.entry, run.record
        git = record.get("git") or {}
        commit = (entry.git_commit or "")[:10]
        dirty = ' <span class="dirty" title="uncommitted changes">dirty</span>' if git.get("state") == "dirty" else ""
        as_of = "" if run.status in FINAL_STATUSES else f' title="as of {esc(entry.status_as_of or "")}"'
        kind = record.get("kind", "submit")
        marks = "" if kind == "submit" else f' <span class="note">({esc(kind)})</span>'
        warnings = len(record.get("warnings") or [])
        link = anchors[run.address]
        rows.append(
            f'<tr id="row-{run.address[:16]}" data-status="{esc(run.status)}">'
            f'<td data-sort="{esc(run.status)}"{as_of}>{_status(run.status)}</td>'
            f"<td>{esc(_workflow(record, entry.workflow_id))}</td>"
            f'<td data-sort="{esc(entry.name or "")}">{esc(entry.name or "-")}{marks}</td>'
            f'<td class="mono" data-sort="{esc(commit)}">{esc(commit or "-")}{dirty}</td>'
            f'<td class="mono">{esc(entry.created)}</td>'
            f'<td class="mono"><a href="{esc(link)}">{esc(entry.run_id or "-")}</a></td>'
            f'<td class="num">{warnings or ""}</td>'
            f'<td class="mono"><a href="{esc(link)}">{run.address[:12]}</a></td></tr>'
        )
    return ('<section id="runs">\n<h2>Runs</h2>\n'
            '<div class="controls" id="controls" hidden><input id="filter" type="search" '
            'placeholder="filter: any text in a row (name, run id, commit, …)" aria-label="filter runs">'
            f'<select id="status-filter" aria-label="status"><option value="">every status</option>{options}</select>'
            '<button type="button" id="prev">&#8592; previous</button><button type="button" id="next">next &#8594;'
            '</button><span id="count" class="note"></span></div>\n'
            f'<table id="runs-table" data-page-size="{PAGE_SIZE}">\n{head}<tbody>\n' + "\n".join(rows) +
            "\n</tbody></table>\n</section>\n")


def _details(selection: Selection, anchors: dict[str, str]) -> str:
    from runlog.export.terms import run_facts

    out = ['<section id="details">\n<h2>Runs in detail</h2>\n'
           '<p class="note">Click a run in the graph or the table to open its section here (printing shows them '
           'all).</p>\n']
    if len(selection.runs) > len(selection.detailed):
        out.append(f'<p class="note">Sections for the newest {len(selection.detailed)} of the {len(selection.runs)} selected '
                   "runs; narrow the selection (REFs, --since, --batch) for the others.</p>\n")
    for run in selection.detailed:
        out.append(_section(run, run_facts(run.entry, run.observations), selection.comparisons.get(run.address),
                            anchors))
    out.append("</section>\n")
    return "".join(out)


def _section(run: Run, facts, comparison: Comparison | None, anchors: dict[str, str]) -> str:
    record, entry = run.record, run.entry
    response = record["outcome"].get("response") or {}
    lineage = record.get("lineage") or {}
    origin = _origin(record)
    origin_html = None
    if origin:
        target = anchors.get(origin)
        origin_html = (f'<a href="{esc(target)}">{esc(origin[:12])}</a>' if target else esc(origin[:12]) +
                       " (not in this report)") + esc(f" (run {(lineage['replay_of'] or {}).get('run_id') or '-'})")
    parent = batch_of(record)
    workflow = facts.workflow
    summary = _facts([
        ("record", f'<span class="mono">{esc(entry.address)}</span>'),
        ("kind", esc(f"{record.get('kind')} (#{entry.seq} in the ledger)")),
        ("status", _status(run.status) + (esc(f" as of {entry.status_as_of}") if run.status not in FINAL_STATUSES
                                          and entry.status_as_of else "")),
        ("created", esc(entry.created)),
        ("run", esc(f"{response.get('id')}  uuid {response.get('uuid')}") if response else None),
        ("ARN", esc(response.get("arn")) if response else None),
        ("outcome", esc(facts.error) if facts.error else None),
        ("failure", esc(facts.failure_reason) if facts.failure_reason else None),
        ("workflow", esc(f"{workflow.get('name')} ({workflow.get('id')}"
                         + (f", version {workflow['version']}" if workflow.get("version") else "")
                         + (f", {workflow['language']}" if workflow.get("language") else "") + ")")),
        ("workflow digest", esc(workflow.get("digest")) if workflow.get("digest") else None),
        ("replay of", origin_html),
        ("batch", esc(parent[:12]) if parent else None),
        ("output", esc(facts.output_uri) if facts.output_uri else None),
        ("caller", esc(facts.caller_arn) if facts.caller_arn else None),
        ("fingerprint", f'<span class="mono">{esc(record.get("fingerprint"))}</span>'),
    ])
    out = [f'<section class="run" id="{run.anchor}">\n<h3>{esc(_label(run))} {_status(run.status)}</h3>\n', summary]
    warnings = record.get("warnings") or []
    if warnings:
        out.append('<h4>Warnings</h4><ul>' + "".join(f"<li>{esc(w)}</li>" for w in warnings) + "</ul>\n")
    out.append(f"<h4>Request</h4>\n<pre>{esc_block(json_text(record.get('request')))}</pre>\n")
    out.append(_inputs(facts))
    out.append(_git(record.get("git") or {}))
    out.append(_timeline(run))
    out.append(_tasks(facts))
    out.append(_diff(run, comparison, anchors))
    out.append("</section>\n")
    return "".join(out)


def esc_block(text: str) -> str:
    """A multi-line block (JSON) for <pre>: each line escaped, line breaks kept."""
    return "\n".join(esc(line) for line in text.split("\n"))


def _inputs(facts) -> str:
    if not facts.inputs:
        return "<h4>Inputs</h4>\n<p class=\"note\">No S3 or omics:// inputs among the parameters.</p>\n"
    rows = "".join(f'<tr><td class="mono">{esc(i.path)}</td><td class="mono">{esc(i.uri)}</td>'
                   f"<td>{esc(i.identity_text)}</td></tr>" for i in facts.inputs)
    return ("<h4>Inputs and their identities</h4>\n<table><thead><tr><th>parameter</th><th>URI</th>"
            f"<th>identity at submission</th></tr></thead><tbody>{rows}</tbody></table>\n")


def _git(git: dict) -> str:
    state = git.get("state")
    return "<h4>Git</h4>\n" + _facts([
        ("state", (f'<span class="dirty">{esc(state)}</span>' if state == "dirty" else esc(state))),
        ("commit", f'<span class="mono">{esc(git["commit"])}</span>' if git.get("commit") else None),
        ("branch", esc(git.get("branch")) if git.get("branch") else None),
        ("remote", esc(git.get("remote")) if git.get("remote") else None),
        ("directory", esc(git.get("workdir")) if git.get("workdir") else None),
        ("diff digest", esc(git.get("diff_sha256")) if git.get("diff_sha256") else None),
        ("untracked", esc(", ".join(git.get("untracked") or [])) if git.get("untracked") else None),
        ("reason", esc(git.get("reason")) if git.get("reason") else None),
    ]) + "\n"


def _timeline(run: Run) -> str:
    entry = run.entry
    items = [f"<li><span class=\"mono\">{esc(entry.created)}</span> recorded ({esc(run.record.get('kind'))}, "
             f"outcome {esc(entry.outcome)})</li>"]
    for observation in sorted(run.observations, key=lambda o: (o["observed_at"], o["seq"])):
        body = observation["body"] if isinstance(observation["body"], dict) else {}
        detail = []
        if observation.get("status"):
            detail.append(_status(observation["status"]))
        for key in ("startTime", "stopTime", "failureReason", "statusMessage", "reason"):
            if body.get(key):
                detail.append(esc(f"{key} {short(body[key])}"))
        if "tasks" in body:
            detail.append(esc(f"{len(body.get('tasks') or [])} task(s)"))
        items.append(f"<li><span class=\"mono\">{esc(observation['observed_at'])}</span> "
                     f"{esc(observation['source'])} {' · '.join(detail)}</li>")
    return "<h4>Observations</h4>\n<ol class=\"timeline\">" + "".join(items) + "</ol>\n"


def _tasks(facts) -> str:
    out = []
    if facts.tasks:
        rows = []
        for task in facts.tasks:
            image = task.get("imageDetails") or {}
            rows.append("<tr>" + "".join(f"<td>{esc(v)}</td>" for v in (
                task.get("name") or task.get("taskId"), task.get("status") or "-", task.get("cpus") or "-",
                task.get("memory") or "-", task.get("startTime") or "-", task.get("stopTime") or "-",
                image.get("image") or "-", image.get("imageDigest") or "-")) + "</tr>")
        out.append("<h4>Tasks</h4>\n<table><thead><tr><th>task</th><th>status</th><th>cpus</th><th>memory (GiB)</th>"
                   "<th>started</th><th>stopped</th><th>image</th><th>image digest</th></tr></thead><tbody>"
                   + "".join(rows) + "</tbody></table>\n")
    if facts.containers:
        images = "".join(f'<tr><td class="mono">{esc(k)}</td><td class="mono">{esc(v)}</td></tr>'
                         for k, v in facts.containers.items())
        out.append("<h4>Containers</h4>\n<table><thead><tr><th>image</th><th>digest</th></tr></thead><tbody>"
                   + images + "</tbody></table>\n")
    return "".join(out)


MARK = {"changed": "~", "type_changed": "~", "added": "+", "removed": "-"}


def _diff(run: Run, comparison: Comparison | None, anchors: dict[str, str]) -> str:
    from runlog.diff import compare, header, no_differences
    from runlog.export.terms import latest_run_facts_from

    if comparison is None:
        return ("<h4>Changes</h4>\n<p class=\"note\">Nothing to compare with: not a replay, and no earlier run of "
                "its workflow.</p>\n")
    other = comparison.other
    changes = compare(other.record, run.record, latest_run_facts_from(comparison.other_observations),
                      latest_run_facts_from(run.observations))
    head = header(other.record, other.address)
    target = anchors.get(other.address)
    name = esc(other.address[:12])
    link = f'<a href="{esc(target)}">{name}</a>' if target else name
    out = [f"<h4>Changes since {esc(comparison.reason)}</h4>\n<p>A: record {link} (run {esc(head['run_id'] or '-')}, "
           f"{esc(head['created'] or '')}{', ' + esc(head['name']) if head.get('name') else ''}) → B: this run. "
           '<span class="note">Run identity is not compared, as in <code>runlog diff</code>.</span></p>\n']
    if not changes:  # worded as `runlog diff` words it
        out.append(f"<p>{esc(no_differences(head['fingerprint'], header(run.record, run.address)['fingerprint'])[1])}"
                   "</p>\n")
        return "".join(out)
    section = None
    for change in changes:
        if change.section != section:
            if section is not None:
                out.append("</ul>\n")
            section = change.section
            out.append(f'<h5>{esc(section)}</h5>\n<ul class="changes">')
        path = change.path or "(whole section)"
        if change.kind == "added":
            text = f"{MARK['added']} {path}  {short(change.new)}"
        elif change.kind == "removed":
            text = f"{MARK['removed']} {path}  {short(change.old)}"
        else:
            suffix = " (type changed)" if change.kind == "type_changed" else ""
            text = f"{MARK['changed']} {path}  {short(change.old)} → {short(change.new)}{suffix}"
        out.append(f'<li class="k-{esc(change.kind)}">{esc(text)}</li>')
    out.append("</ul>\n")
    sections = list(dict.fromkeys(c.section for c in changes))
    out.append(f"<p>{len(changes)} difference(s) in {esc(', '.join(sections))}.</p>\n")
    return "".join(out)


def _footer(selection: Selection) -> str:
    return (f'<footer>Written by runlog {esc(__version__)} from ledger {esc(selection.ledger_id)} '
            f"(head {esc(selection.verify.head_text)}). The same ledger and selection give the same file, byte for "
            f"byte.</footer>\n<script>{JS}</script>\n</body>\n</html>\n")
