"""`runlog show B`: a batch's counts and failures from the ledger's derived tables, without
decoding its cohort. A module of its own so that `show` imports neither runlog.batch's
submission code nor the submit command's options (runlog/cli/batch.py)."""

from __future__ import annotations

import click

from runlog import blobs
from runlog.cli.common import echo_json, said_lost
from runlog.textsafe import terminal_json, terminal_safe

SHOWN = 20  # failures listed; --json lists all


def show_batch(ledger, entry, as_json: bool) -> None:
    """`runlog show B`: the batch, its counts by submission and by run status, its failures
    with their reasons; the record without the settings file's content (in --json: whole)."""
    from runlog.batchread import (
        batch_record_view,
        member_settings_counts,
        not_found_words,
        repeated_warning,
        settings_file_warning,
        shared_warning,
        summary,
    )
    from runlog.cli.wording import command_line

    facts = summary(ledger, entry, failures=None if as_json else SHOWN)
    learned = member_settings_counts(ledger, entry)  # members whose own settings only GetRun tells
    replays = ledger.replays_of(entry.address)  # batches started again from it (replay B, --only)
    if as_json:
        whole = ledger.get(entry.address) or entry  # `entry` may hold the batch's view (Ledger.resolve)
        echo_json({"address": entry.address, "seq": entry.seq, "status": facts["batch_status"],
                   "record": whole.record, "batch": facts, "observations": ledger.observations(entry.address),
                   "replays": [r.address for r in replays],
                   **({"member_settings": learned} if learned is not None else {})})
        return said_lost(ledger)  # a part whose blob is lost: left as its reference, named (exit 1)
    record, settings_count = batch_record_view(ledger, entry)  # the cohort itself is not decoded
    response = record["outcome"].get("response") or {}
    request = record["request"]
    pinned = record["batch"].get("settings_file")
    lines = [("record", entry.address), ("kind", f"batch (#{entry.seq} in this ledger)"),
             ("created", record["created"]), ("status", facts["batch_status"] or "-")]
    if response:
        lines += [("batch", f"{response.get('id')}  uuid {response.get('uuid')}"), ("arn", response.get("arn"))]
    else:
        error = record["outcome"].get("error") or {}
        lines.append((record["outcome"]["status"], f"{error.get('code')}: {error.get('message')}"
                      if error else record["outcome"].get("reason")))
    if request.get("batchName"):
        lines.append(("name", request["batchName"]))
    lines.append(("workflow", request["defaultRunSetting"].get("workflowId")))
    if pinned:
        where = ", ".join(f"{k} {pinned[k]}" for k in ("etag", "version_id", "sha256") if pinned.get(k))
        lines.append(("settings", f"{pinned['uri']} ({where or pinned.get('error', {}).get('code')})"))
    lines.append(("runs", f"{facts['runs']} asked, {facts['members_recorded']} member record(s)"))
    if facts["submission"]:
        lines.append(("submission", ", ".join(f"{k} {v}" for k, v in sorted(facts["submission"].items()))))
    if facts["run_status"]:
        lines.append(("run status", ", ".join(f"{k} {v}" for k, v in sorted(facts["run_status"].items()))))
    if learned is not None:
        lines.append(("run settings", f"{learned['observed']} of {learned['runs']} observed from GetRun, "
                                      f"{learned['unknown']} unknown, {learned['not_asked']} not asked yet "
                                      f"(`runlog refresh {entry.batch_id or 'B'}` asks; `runlog show RUN_ID` says why)"))
    service = facts["get_batch"] or {}
    if service.get("submissionSummary") or service.get("runSummary"):  # the service's own counts, last seen
        counted = {**(service.get("submissionSummary") or {}), **(service.get("runSummary") or {})}
        lines.append(("GetBatch", ", ".join(f"{k} {v}" for k, v in counted.items() if v) or "all counts 0"))
    if facts["not_found"]:
        lines.append(("GetBatch", not_found_words(facts["not_found"]["last_seen"], facts["not_found"]["observed_at"])))
    if facts["batch_failure"]:  # the batch itself FAILED (its runs' failures are the `failed` lines below)
        failure = facts["batch_failure"]
        lines.append(("batch failed", f"{failure['reason'] or 'no failureReason given'} "
                                      f"(GetBatch at {failure['observed_at']})"))
    git = record["git"]
    lines.append(("git", f"{git['commit']} ({git['state']})" if git.get("commit") else git["state"]))
    lines.append(("fingerprint", record["fingerprint"]))
    for failure in facts["failures"][:SHOWN]:
        run = f"run {failure['run_id']}, " if failure.get("run_id") else ""
        lines.append(("failed", f"{failure['run_setting_id']} ({run}{failure['stage']}): {failure['reason']}"))
    if facts["failures_count"] > len(facts["failures"][:SHOWN]):
        lines.append(("failed", f"… and {facts['failures_count'] - len(facts['failures'][:20])} more "
                                "(--json lists all)"))
    for replay in replays:
        lines.append(("replayed by", f"{replay.address} (batch {replay.batch_id or '-'}, {replay.outcome})"))
    for warning in record.get("warnings", []):
        lines.append(("warning", warning))
    if facts["repeated_run_settings"]["count"]:  # found by refresh (batch.check_repeated)
        lines.append(("warning", repeated_warning(facts["repeated_run_settings"])))
    if facts["shared_runs"]["count"]:  # found by refresh (batch.check_shared)
        lines.append(("warning", shared_warning(facts["shared_runs"])))
    for found in facts["settings_file_changed"]:  # seen by refresh since: the record may not hold what the runs got
        lines.append(("warning", command_line(settings_file_warning(found, entry.batch_id))))
    for key, value in lines:
        click.echo(f"{key:<12} {terminal_safe(str(value))}")
    shown = dict(record)  # what is left out is replaced in copies
    if pinned and settings_count is not None:
        shown["batch"] = {**record["batch"], "settings_file": {
            **pinned, "content": f"({settings_count} run settings: see --json)"}}
    held = blobs.ref_of(shown, blobs.INPUTS)  # the inputs' identities held by reference: counted, not decoded
    if held is not None and isinstance(held.get("items"), int) and held["items"] > 20:
        shown = blobs.without_ref(shown, blobs.INPUTS)
        shown["resolution"]["inputs"] = f"({held['items']} inputs: see --json)"
    elif held is not None:
        shown = blobs.inflate(shown, ledger.blob, [])  # a lost blob: its reference shown, named below
    inputs = (shown.get("resolution") or {}).get("inputs") or {}
    if isinstance(inputs, dict) and len(inputs) > 20:
        shown["resolution"] = {**shown["resolution"], "inputs": f"({len(inputs)} inputs: see --json)"}
    click.echo("\n" + terminal_json(shown, sort_keys=True))
    said_lost(ledger)
