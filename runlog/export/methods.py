"""A methods bundle for a paper: methods.md, parameters.csv, software.csv, data.csv, CITATION.cff."""

from __future__ import annotations

import csv
import io

from runlog.export.escape import csv_cell, markdown, yaml_string
from runlog.export.terms import RunFacts, published, value_text


def _csv(header: list[str], rows: list[list]) -> str:
    """CSV with every cell from a record neutralised (runlog.export.escape.csv_cell)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([csv_cell(cell) for cell in row] for row in rows)
    return out.getvalue()


def files(runs: list[RunFacts], *, title: str | None = None) -> dict[str, str]:
    """File name -> content."""
    return {
        "methods.md": _methods(runs),
        "parameters.csv": _csv(["run_uuid", "run_id", "parameter", "value"],
                               [[r.run_uuid or "", r.run_id or "", path, value_text(value)]
                                for r in runs for path, value in r.leaves]),
        "software.csv": _csv(["kind", "name", "version", "digest"], _software_rows(runs)),
        "data.csv": _csv(["run_uuid", "role", "parameter", "uri", "checksum", "version_id", "size"],
                         [[r.run_uuid or "", "input", i.path, i.uri, i.checksum or "",
                           i.identity.get("version_id") or "", i.identity.get("size") or ""]
                          for r in runs for i in r.inputs]
                         + [[r.run_uuid or "", "output", "runOutputUri", r.output_uri, "", "", ""]
                            for r in runs if r.ran and r.output_uri]),
        "CITATION.cff": _citation(runs, title),
    }


def _software_rows(runs: list[RunFacts]) -> list[list]:
    rows = {}
    for run in runs:
        wf = run.workflow
        rows[("workflow", wf["name"])] = ["workflow", wf["name"], wf.get("version") or "", wf.get("digest") or ""]
        if wf.get("language"):
            rows[("engine", wf["language"])] = ["engine", wf["language"], wf.get("engine_version") or "", ""]
        for image, digest in run.containers.items():
            rows[("container", image)] = ["container", image, "", digest]
        rows[("tool", "runlog")] = ["tool", "runlog", run.runlog_version, ""]
    return [rows[key] for key in sorted(rows)]


def _methods(runs: list[RunFacts]) -> str:
    """methods.md. Everything taken from a record goes through `md` (text) or `code` (an inline
    code span), so a name or value cannot add headings, HTML, links or paragraphs."""
    def md(value) -> str:
        return markdown(str(value))

    def code(value) -> str:
        return markdown(str(value), code=True)

    lines = ["# Methods", ""]
    for run in runs:
        wf = run.workflow
        engine = md(wf.get("language")) if wf.get("language") else "its workflow engine"
        if wf.get("engine_version"):
            engine += f" {md(wf['engine_version'])}"
        when = (f"between {md(run.start)} and {md(run.end)}" if run.start and run.end
                else f"on {md(run.created[:10])}")
        subject = f"The {md(wf['name'])} workflow" if not wf["name"].startswith("workflow") else "The workflow"
        text = (f"{subject} (AWS HealthOmics workflow {md(wf.get('id') or 'not recorded')}"
                + (f", version {md(wf['version'])}" if wf.get("version") else "")
                + (f", definition digest {md(wf['digest'])}" if wf.get("digest") else "")
                + f") was run with {engine} on AWS HealthOmics {when} "
                + (f"as run {md(run.run_id)} (uuid {md(run.run_uuid)}; final status {md(run.status)})."
                   if run.ran else "but the service rejected the request; it never ran."))
        lines += [f"## {md(run.label)}", "", text, ""]
        if run.failure_reason:
            lines += [f"The run failed: {md(run.failure_reason)}.", ""]
        if run.leaves:
            lines += ["All parameters as submitted (the workflow's defaults are not known to runlog, so every "
                      "value given is listed):", ""]
            lines += [f"- {code(path)} = {code(value_text(value))}" for path, value in run.leaves]
            lines.append("")
        if run.inputs:
            lines += ["Inputs and their identities at submission:", ""]
            for inp in run.inputs:
                extra = ", ".join(f"{k} {md(v)}" for k, v in (("checksum", inp.checksum),
                                                              ("version", inp.identity.get("version_id"))) if v)
                lines.append(f"- {code(inp.uri)} ({md(inp.path)}{'; ' + extra if extra else ''})")
            lines.append("")
        git = run.git
        if git.get("commit"):
            lines += [f"The analysis code was at commit {md(git['commit'])}"
                      + (f" of {md(git['remote'])}" if git.get("remote") else "")
                      + (" with uncommitted changes (their SHA-256 digest is in the record)"
                         if git.get("state") == "dirty" else "") + ".", ""]
        lines += [f"Provenance was recorded with runlog {md(run.runlog_version)} (record {md(run.address)}). "
                  f"The run can be repeated with {code('runlog replay ' + (run.run_id or run.address[:12]))}.", ""]
    lines += ["Files: `parameters.csv` (every parameter), `software.csv` (workflow, engine, containers), "
              "`data.csv` (inputs and outputs with checksums), `CITATION.cff`.", ""]
    return "\n".join(lines)


def _citation(runs: list[RunFacts], title: str | None) -> str:
    names = sorted({r.workflow["name"] for r in runs})
    lines = [
        "cff-version: 1.2.0",
        "message: If you use these results, please cite them using these metadata.",
        f"title: {yaml_string(title or 'AWS HealthOmics runs of ' + ', '.join(names))}",
        "type: dataset",
        "authors:",
        "  - name: \"Fill in the authors\"",
        f"date-released: {published(runs)}",
        "keywords:",
        "  - AWS HealthOmics",
        "  - provenance",
        "identifiers:",
    ]
    for run in runs:
        if run.run_uuid:
            lines += ["  - type: other", f"    value: {yaml_string('urn:uuid:' + run.run_uuid)}",
                      f"    description: {yaml_string('HealthOmics run ' + (run.run_id or ''))}"]
    if not any(r.run_uuid for r in runs):
        lines += ["  - type: other", f"    value: {yaml_string('runlog:' + runs[0].address)}"]
    return "\n".join(lines) + "\n"


CFF_REQUIRED = ("cff-version", "message", "title", "authors")


def check_citation(text: str) -> list[str]:
    """What a CITATION.cff lacks of CFF 1.2.0's required keys (a schema check needs cffconvert)."""
    keys = {line.split(":", 1)[0] for line in text.splitlines() if line and not line.startswith((" ", "-", "#"))}
    problems = [f"missing {key}" for key in CFF_REQUIRED if key not in keys]
    if "cff-version: 1.2.0" not in text.splitlines():
        problems.append("cff-version is not 1.2.0")
    return problems
