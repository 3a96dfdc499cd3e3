"""A methods bundle for a paper: methods.md, parameters.csv, software.csv, data.csv, CITATION.cff,
and for a cohort (a run batch) samples.csv, one row per run setting."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence

from runlog.arn import parse_run_arn
from runlog.export.cohort import BatchFacts
from runlog.export.escape import csv_cell, markdown, yaml_string
from runlog.export.terms import RunFacts, each_run_once, input_ids, licence_is_url, published, value_text


def _csv(header: list[str], rows: list[list]) -> str:
    """CSV with every cell from a record neutralised (runlog.export.escape.csv_cell)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([csv_cell(cell) for cell in row] for row in rows)
    return out.getvalue()


def files(runs: list[RunFacts], *, title: str | None = None, authors: Sequence[dict] = (),
          license: str | None = None, batches: Sequence[BatchFacts] = ()) -> dict[str, str]:
    """File name -> content."""
    ids = input_ids(runs)
    cohort = {"samples.csv": _csv(SAMPLE_COLUMNS, _sample_rows(batches, ids))} if batches else {}
    once = each_run_once(runs)  # the tables below are by run
    return {
        "methods.md": _methods(runs, batches),
        **cohort,
        "parameters.csv": _csv(["run_uuid", "run_id", "parameter", "value"],
                               [[r.run_uuid or "", r.run_id or "", path, value_text(value)]
                                for r in once for path, value in r.stated_leaves]),
        "settings.csv": _csv(["run_uuid", "run_id", "kind", "name", "value"], _setting_rows(once)),
        "software.csv": _csv(["kind", "name", "version", "digest"], _software_rows(runs)),
        "data.csv": _csv(["run_uuid", "role", "parameter", "uri", "identifier", "etag", "checksum", "version_id",
                          "size"],
                         [[r.run_uuid or "", "input", i.path, i.uri, ids[(r.address, i.path)], i.etag or "",
                           "; ".join(f"{a}:{v}" for a, v in i.checksums), i.identity.get("version_id") or "",
                           i.identity.get("size") if i.identity.get("size") is not None else ""]
                          for r in once if r.ran for i in r.stated_inputs]
                         + [[r.run_uuid or "", "output", "runOutputUri", r.output_uri, r.output_uri, "", "", "", ""]
                            for r in once if r.status == "COMPLETED" and r.output_uri]),
        "tasks.csv": _csv(["run_uuid", "run_id", "task_id", "name", "status", "image", "image_digest", "cpus",
                           "memory_gib", "gpus", "instance_type", "cache_hit", "start", "stop", "failure"],
                          [[r.run_uuid or "", r.run_id or "", t["taskId"], t.get("name") or "", t.get("status") or "",
                            (t.get("imageDetails") or {}).get("image") or "",
                            (t.get("imageDetails") or {}).get("imageDigest") or "", t.get("cpus", ""),
                            t.get("memory", ""), t.get("gpus", ""), t.get("instanceType") or "",
                            "" if t.get("cacheHit") is None else str(bool(t["cacheHit"])).lower(),
                            t.get("startTime") or "", t.get("stopTime") or "", t.get("failureReason") or ""]
                           for r in once for t in r.tasks]),
        "CITATION.cff": _citation(runs, title, authors=authors, license=license),
    }


SAMPLE_COLUMNS = ["batch_id", "run_setting_id", "run_name", "submission", "run_id", "run_uuid", "status",
                  "failure", "parameters", "input_identities", "run_output_uri", "settings_source"]


def _sample_rows(batches: Sequence[BatchFacts], ids: dict) -> list[list]:
    """One row per run setting of each batch: the run it became (or that it failed to start:
    then no run id, no status of a run and no input identities, which would be invented), its
    effective parameters (the default's with its own) as JSON, and each input's identity as
    that run read it."""
    import json

    rows = []
    for batch in batches:
        for m in batch.members:
            identities = ("; ".join(f"{i.path}={ids[(m.address, i.path)]} ({i.identity_text})" for i in m.inputs)
                          if m.ran else "")
            rows.append([batch.batch_id, m.run_setting_id or "", m.record["request"].get("name") or "",
                         "SUCCESS" if m.ran else "FAILED", m.run_id or "", m.run_uuid or "",
                         m.status if m.ran else "never started",
                         m.failure_reason or m.error or "",
                         json.dumps(m.parameters, sort_keys=True, ensure_ascii=False), identities,
                         m.output_uri if m.status == "COMPLETED" and m.output_uri else "",
                         m.settings_note or "as submitted"])
        if batch.unrecorded:
            rows.append([batch.batch_id, "", "", f"{batch.unrecorded} run setting(s) not yet recorded", "", "",
                         "", "", "", "", "", ""])
        if batch.never_submitted:
            rows.append([batch.batch_id, "", "", f"{batch.never_submitted} run setting(s) never submitted", "", "",
                         f"the batch ended {batch.status} before submitting them", "", "", "", "", ""])
    return rows


def _setting_rows(runs: list[RunFacts]) -> list[list]:
    rows = []
    for r in runs:
        rows += [[r.run_uuid or "", r.run_id or "", "setting", k, value_text(v)] for k, v in sorted(r.settings.items())]
        rows += [[r.run_uuid or "", r.run_id or "", "replay override", k, value_text(v)]
                 for group in ("members", "parameters") for k, v in sorted((r.overrides.get(group) or {}).items())]
        rows += [[r.run_uuid or "", r.run_id or "", "accepted drift", f"{d['kind']} {d['what']}",
                  f"recorded {value_text(d['recorded'])}, found {value_text(d['current'])}"] for d in r.drift]
    return rows


def _software_rows(runs: list[RunFacts]) -> list[list]:
    rows = {}
    for run in runs:
        wf = run.workflow
        rows[("workflow", wf["name"])] = ["workflow", wf["name"], wf.get("version") or "", wf.get("digest") or ""]
        if wf.get("language"):
            rows[("engine", wf["language"])] = ["engine", wf["language"], wf.get("engine_version") or "", ""]
        for image, digest in run.images():
            rows[("container", image)] = ["container", image, "", digest or ""]
        rows[("tool", "runlog")] = ["tool", "runlog", run.runlog_version, ""]
    return [rows[key] for key in sorted(rows)]


def _cohort(batch: BatchFacts, md, code) -> str:
    """The cohort in a few sentences: how it was defined (the settings file with its identity,
    or inline settings), the shared defaults, and true counts of what ran."""
    wf = batch.members[0].workflow if batch.members else {}
    pinned = batch.settings_file
    if pinned:
        identity = ", ".join(part for part in (
            f"SHA-256 {md(pinned['sha256'])}" if pinned.get("sha256") else "",
            f"S3 version {md(pinned['version_id'])}" if pinned.get("version_id") not in (None, "null") else "",
            f"ETag {md(pinned['etag'])}" if pinned.get("etag") else "") if part)
        defined = (f"defined by the run-settings file {code(pinned['uri'])}"
                   + (f" ({identity}; its content is kept in the provenance record)" if identity else ""))
    elif batch.record.get("source_batch") is not None:  # found by `runlog import`: its settings never seen
        observed = sum(1 for m in batch.started if m.settings_source == "observed")
        defined = ("started without runlog, so its run settings were not seen; each run's own settings are as "
                   f"AWS HealthOmics reported them (GetRun) for {observed} of its {len(batch.started)} run(s)"
                   + ("; for the others only the default setting is known" if observed < len(batch.started) else ""))
    else:
        defined = "defined by the run settings given inline in the request"
    # what the default gave some run: a member every run setting gives itself reached none
    shared = [name for name, _ in batch.default_items() if name.startswith("parameters.") and batch.reaches_runs(name)]
    settings = [f"{md(name)} {code(value)}" for name, value in batch.default_items() if batch.reaches_runs(name)
                and name in ("cacheId", "cacheBehavior", "workflowVersionName", "storageType", "storageCapacity",
                            "runGroupId", "retentionMode", "networkingMode", "outputUri")]
    text = ("The cohort was submitted as one AWS HealthOmics run batch (StartRunBatch), "
            + (f"{md(batch.name)} " if batch.name else "") + f"(batch {md(batch.batch_id)}), "
            + defined + ": " + ("each run setting gave one run of " + (f"the {md(wf['name'])} workflow"
                                                                        if wf["named"] else md(wf["name"]))
                                if wf else "each run setting gave one run"))
    parts = ([f"shared parameters {', '.join(md(p.split('.', 1)[1]) for p in shared)}"] if shared else []) \
        + ([", ".join(settings)] if settings else [])
    text = (text + " with the batch's default setting" + (f" ({'; '.join(parts)})" if parts else "")
            + " overlaid by its own settings (per sample in samples.csv). ")
    text += f"Of its {batch.declared} run setting(s), "
    if batch.unrecorded:
        text += (f"{batch.unrecorded} had not been recorded when this was written, ")
    if batch.never_submitted:
        text += f"{batch.never_submitted_text}, "  # its status is one of batchread.FINISHED: no escaping
    text += f"{len(batch.runs)} started as runs"
    counts = batch.status_counts()
    if counts:
        text += " (" + ", ".join(f"{n} {md(status)}" for status, n in counts.items()) + ")"
    failures = batch.run_failures()
    if failures:
        text += "; failed runs: " + ", ".join(f"{md(reason)} ({n})" for reason, n in failures.items())
    if batch.shared_runs:
        text += f"; {md(batch.shared_text)}"
    text += f", and {len(batch.not_started)} failed to start and never ran"
    reasons = batch.submission_failures()
    if reasons:
        text += " (" + ", ".join(f"{md(reason)}: {n}" for reason, n in reasons.items()) + ")"
    if batch.replay_of:
        text += f". This batch {md(batch.replay_text)}"
    for changed in batch.settings_changed:  # the record holds the file as pinned: said, not hidden
        text += (f". The run-settings file was found changed after it was pinned (ETag {md(changed['now']['etag'])}, "
                 f"modified {md(changed['now']['last_modified'] or 'at an unknown time')}); the per-run settings "
                 "given here are those of the pinned file, which the runs may not have received")
    text += "." + ("" if batch.finished else f" The batch was {md(batch.status)} when this was written; counts "
                   "and statuses are as at export time.")
    return text


def _summary(runs: list[RunFacts], md, code, batches: Sequence[BatchFacts] = ()) -> list[str]:
    """The one paragraph a journal's methods section can take: per workflow, its version and
    digest, the engine and region, the runs and how they ended, the containers, call caching
    with hit counts, and replays with what they changed; a cohort's batch first."""
    sentences = [_cohort(batch, md, code) for batch in batches]
    in_batch = {m.address for b in batches for m in b.members}
    by_workflow: dict[str, list[RunFacts]] = {}
    for run in each_run_once(runs):  # (a run may have two member records)
        if run.ran:
            by_workflow.setdefault(run.workflow["arn"] or run.workflow["name"], []).append(run)
    for group in by_workflow.values():
        wf = group[0].workflow
        engine = wf.get("language") or "its workflow engine"
        versions = sorted({str(r.workflow["engine_version"]) for r in group if r.workflow.get("engine_version")})
        regions = sorted({arn.region for arn in map(parse_run_arn, (r.run_arn for r in group)) if arn})
        statuses: dict[str, int] = {}
        for r in group:
            statuses[r.status] = statuses.get(r.status, 0) + 1
        times = sorted(t for r in group for t in (r.start, r.end) if t)
        sentence = ((f"The {md(wf['name'])} workflow" if wf["named"] else "The workflow")
                    + (f" (version {md(wf['version'])})" if wf.get("version") else "")
                    + f", AWS HealthOmics workflow {md(wf.get('id') or 'not recorded')}"
                    + (f" with definition digest {md(wf['digest'])}" if wf.get("digest") else "")
                    + f", was run with {md(engine)}" + (f" {md(', '.join(versions))}" if versions else "")
                    + " on AWS HealthOmics" + (f" in {md(', '.join(regions))}" if regions else "")
                    + f": {len(group)} run(s) ("
                    + ", ".join(f"{n} {md(status)}" for status, n in sorted(statuses.items()))
                    + (f"; {md(times[0])} to {md(times[-1])}" if times else "") + ").")
        images = {image for r in group for image, _ in r.images()}
        tasks = [t for r in group for t in r.tasks]
        if tasks:
            sentence += (f" Its {len(tasks)} task(s) ran in {len(images)} container image(s), listed with their "
                         "digests in software.csv and per task in tasks.csv.")
        cached = [r for r in group if r.settings.get("cacheId")]
        if cached:
            hits = sum(1 for r in cached for t in r.tasks if t.get("cacheHit"))
            total = sum(len(r.tasks) for r in cached)
            behaviours = sorted({str(r.settings.get("cacheBehavior") or "default behaviour") for r in cached})
            sentence += (f" Call caching was enabled for {len(cached)} run(s) (run cache "
                         f"{md(', '.join(sorted({str(r.settings['cacheId']) for r in cached})))}, "
                         f"{md(', '.join(behaviours))})"
                         + (f": {hits} of {total} task(s) reused cached results." if total else
                            "; which tasks reused cached results was not recorded."))
        sentences.append(sentence)
    for run in runs:
        if run.replay_of and run.ran:
            original = next((r for r in runs if r.address == run.replay_of), None)
            changes = [f"{md(k)} set to {code(value_text(v))}" for group in ("members", "parameters")
                       for k, v in sorted((run.overrides.get(group) or {}).items())]
            drift = [f"{md(d['kind'])} {md(d['what'])}" for d in run.drift]
            sentences.append(f"Run {md(run.run_id)} repeated run "
                             f"{md(original.run_id if original and original.run_id else run.replay_of[:12])}"
                             + (f" with {', '.join(changes)}" if changes else " unchanged")
                             + (f", accepting changes to {', '.join(drift)}" if drift else "") + ".")
    refused = [r for r in runs if r.outcome == "rejected" and r.address not in in_batch]
    abandoned = [r for r in runs if r.outcome == "abandoned"]
    if refused:
        sentences.append(f"{len(refused)} further request(s) were refused by the service and never ran.")
    unsent = [r for r in abandoned if not r.sent_unknown]
    if unsent:
        sentences.append(f"{len(unsent)} further request(s) were abandoned before they were sent and never ran.")
    if len(unsent) < len(abandoned):
        sentences.append(f"{len(abandoned) - len(unsent)} further request(s) were abandoned by the user with their "
                         "outcome unknown: runlog never learned whether HealthOmics received them.")
    unfinished = [r for r in runs if not r.finished and r.address not in in_batch]
    if unfinished:
        sentences.append(f"{len(unfinished)} run(s) had not finished when this was written; their status is as "
                         "at export time.")
    if any(k not in ("cacheId", "cacheBehavior", "workflowVersionName") for r in runs for k in r.settings):
        sentences.append("Run settings that affect results (storage, run group, retention, networking) are listed "
                         "per run in settings.csv.")
    unknown = sum(1 for r in runs if r.parameters_source == "unknown")
    sentences.append("Provenance was recorded with runlog; "
                     + ("every parameter is in parameters.csv" if not unknown else
                        f"the parameters runlog holds are in parameters.csv ({unknown} run(s) without them, said below)")
                     + " and every input, with the identity it had for its run, in data.csv.")
    return [" ".join(sentences), ""]


def _methods(runs: list[RunFacts], batches: Sequence[BatchFacts] = ()) -> str:
    """methods.md: one paragraph for a paper, then the detail of each run. Everything taken
    from a record goes through `md` (text) or `code` (an inline code span), so a name or
    value cannot add headings, HTML, links or paragraphs."""
    def md(value) -> str:
        return markdown(str(value))

    def code(value) -> str:
        return markdown(str(value), code=True)

    lines = ["# Methods", ""] + _summary(runs, md, code, batches)
    in_batch = {m.address for b in batches for m in b.members}
    for run in runs:
        if run.address in in_batch:
            continue  # a cohort's runs are one row each in samples.csv, not a section each
        wf = run.workflow
        engine = md(wf.get("language")) if wf.get("language") else "its workflow engine"
        if wf.get("engine_version"):
            engine += f" {md(wf['engine_version'])}"
        when = (f"between {md(run.start)} and {md(run.end)}" if run.start and run.end
                else f"on {md(run.created[:10])}")
        subject = f"The {md(wf['name'])} workflow" if wf["named"] else "The workflow"
        if run.ran:
            ending = (f"as run {md(run.run_id)} (uuid {md(run.run_uuid)}; "
                      + (f"{md(run.status_words)})." if run.ending_unknown
                         else f"final status {md(run.status)}"
                         + ("; deleted from HealthOmics afterwards)." if run.deleted else ").") if run.finished
                         else f"status {md(run.status)} at export time: it had not finished)."))
        elif run.outcome == "abandoned" and run.sent_unknown:
            ending = ("but the request was abandoned by the user with its outcome unknown: runlog never learned "
                      "whether HealthOmics received it.")
        elif run.outcome == "abandoned":
            ending = "but the request was abandoned before it was sent; it never ran."
        else:
            ending = f"but the service rejected the request ({md(run.error)}); it never ran."
        text = (f"{subject} (AWS HealthOmics workflow {md(wf.get('id') or 'not recorded')}"
                + (f", version {md(wf['version'])}" if wf.get("version") else "")
                + (f", definition digest {md(wf['digest'])}" if wf.get("digest") else "")
                + f") was run with {engine} on AWS HealthOmics {when} " + ending)
        lines += [f"## {md(run.label)}", "", text, ""]
        if wf.get("source_run"):
            lines += [f"The run duplicates run {md(wf['source_run'])} (StartRun {code('runId')}): HealthOmics took its "
                      "workflow and parameters from its own copy of that run.", ""]
        if run.parameters_source == "unknown":
            lines += ["Its parameters are not recorded yet: `runlog refresh` records those HealthOmics reports "
                      "(GetRun).", ""]
        if run.failure_reason:
            lines += [f"The run failed: {md(run.failure_reason)}.", ""]
        if run.settings:
            lines += ["Settings: " + ", ".join(f"{code(k)} = {code(value_text(v))}"
                                               for k, v in sorted(run.settings.items())) + ".", ""]
        if run.leaves:
            source = {"submitted": "as submitted", "reported": "as HealthOmics reported them for the run (GetRun)",
                      "file": f"as read from {code(run.record['request'].get('parametersUri') or '')} at submission",
                      }[run.parameters_source]
            lines += [f"All parameters {source} (the workflow's defaults are not known to runlog, so every "
                      "value given is listed):", ""]
            lines += [f"- {code(path)} = {code(value_text(value))}" for path, value in run.leaves]
            lines.append("")
        if run.inputs and run.ran:
            lines += ["Inputs and their identities for this run:", ""]
            for inp in run.inputs:
                lines.append(f"- {code(inp.uri)} ({md(inp.path)}; {md(inp.identity_text)})")
            lines.append("")
        if run.tasks:
            hits = sum(1 for t in run.tasks if t.get("cacheHit"))
            lines += [f"HealthOmics reported {len(run.tasks)} task(s)"
                      + (f", {hits} of them served from the run cache" if hits else "")
                      + " (tasks.csv).", ""]
        git = run.git
        if git.get("commit"):
            lines += [f"The analysis code was at commit {md(git['commit'])}"
                      + (f" of {md(git['remote'])}" if git.get("remote") else "")
                      + (" with uncommitted changes (their SHA-256 digest is in the record)"
                         if git.get("state") == "dirty" else "") + ".", ""]
        lines += [f"Provenance was recorded with runlog {md(run.runlog_version)} (record {md(run.address)}). "
                  f"The run can be repeated with {code('runlog replay ' + (run.run_id or run.address[:12]))}.", ""]
    lines += ["Files: " + ("`samples.csv` (one row per run setting of the cohort: its run, status, effective "
                           "parameters and input identities), " if batches else "")
              + "`parameters.csv` (every parameter), `settings.csv` (settings that change results, replay "
              "overrides, accepted drift), `software.csv` (workflows, engines, containers), `data.csv` (inputs "
              "and outputs with their identities), `tasks.csv` (every task), `CITATION.cff`.", ""]
    return "\n".join(lines)


def _cff_person(person: dict, indent: str) -> list[str]:
    """A CFF person: the last word of the name as family names, the rest as given names."""
    given, _, family = person["name"].rpartition(" ")
    lines = [f"{indent}- family-names: {yaml_string(family)}"]
    if given:
        lines.append(f"{indent}  given-names: {yaml_string(given)}")
    if (person.get("id") or "").startswith("https://orcid.org/"):
        lines.append(f"{indent}  orcid: {yaml_string(person['id'])}")
    return lines


def _citation(runs: list[RunFacts], title: str | None, *, authors: Sequence[dict] = (),
              license: str | None = None) -> str:
    """CITATION.cff (CFF 1.2.0) for the export: the authors given (else a placeholder the
    authors must replace), the licence, the runs as identifiers, and references to each
    workflow and to runlog."""
    names = sorted({r.workflow["name"] for r in runs})
    lines = [
        "cff-version: 1.2.0",
        "message: If you use these results, please cite them using these metadata.",
        f"title: {yaml_string(title or 'AWS HealthOmics runs of ' + ', '.join(names))}",
        "type: dataset",
        "authors:",
    ]
    for person in authors:
        lines += _cff_person(person, "  ")
    if not authors:
        lines += ["  - name: \"Fill in the authors (runlog export --author, or authors in .runlog.toml)\""]
    lines += [f"date-released: {published(runs)}", f"version: {yaml_string(published(runs))}"]
    if license and not licence_is_url(license):
        lines.append(f"license: {yaml_string(license)}")
    elif license:
        lines.append(f"license-url: {yaml_string(license)}")
    lines += ["keywords:", "  - AWS HealthOmics", "  - provenance", "identifiers:"]
    for run in each_run_once(runs):  # CFF's identifiers are unique, and a run may have two member records
        if run.run_uuid:
            lines += ["  - type: other", f"    value: {yaml_string('urn:uuid:' + run.run_uuid)}",
                      f"    description: {yaml_string('HealthOmics run ' + (run.run_id or ''))}"]
    if not any(r.run_uuid for r in runs):
        lines += ["  - type: other", f"    value: {yaml_string('runlog:' + runs[0].address)}",
                  "    description: \"runlog record of a request that never ran\""]
    lines.append("references:")
    seen = set()
    for run in runs:
        wf = run.workflow
        key = wf["arn"] or wf["name"]
        if key in seen:
            continue
        seen.add(key)
        lines += ["  - type: software", f"    title: {yaml_string(wf['name'])}",
                  "    authors:", "      - name: \"The workflow's authors\""]
        if wf.get("version"):
            lines.append(f"    version: {yaml_string(wf['version'])}")
        if wf.get("arn"):
            lines += ["    identifiers:", "      - type: other", f"        value: {yaml_string(wf['arn'])}",
                      "        description: \"AWS HealthOmics workflow ARN\""]
    version = max((r.runlog_version for r in runs), default="") or "unknown"
    lines += ["  - type: software", "    title: runlog", "    authors:", "      - name: \"The runlog authors\"",
              f"    version: {yaml_string(version)}"]
    return "\n".join(lines) + "\n"


CFF_REQUIRED = ("cff-version", "message", "title", "authors")


def check_citation(text: str) -> list[str]:
    """What a CITATION.cff lacks of CFF 1.2.0's required keys (a schema check needs cffconvert)."""
    keys = {line.split(":", 1)[0] for line in text.splitlines() if line and not line.startswith((" ", "-", "#"))}
    problems = [f"missing {key}" for key in CFF_REQUIRED if key not in keys]
    if "cff-version: 1.2.0" not in text.splitlines():
        problems.append("cff-version is not 1.2.0")
    return problems
