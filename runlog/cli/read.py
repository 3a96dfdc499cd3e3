"""Read-only commands: `runlog log`, `runlog show`, `runlog verify`. None of them imports boto3."""

from __future__ import annotations

import json

import click

from runlog.cli.common import (
    echo_json,
    load_config,
    no_ledger,
    note,
    open_ledger,
    reading,
    require_ledger,
    said_lost,
    short_time,
    warn,
)
from runlog.errors import UsageError
from runlog.ledger import FINAL_STATUSES
from runlog.textsafe import terminal_json, terminal_safe

MAX_COUNT = 2**62  # `log -n`: more than any ledger holds, less than SQLite's largest LIMIT


@click.command()
@click.option("-n", "--max-count", "limit", type=click.IntRange(min=0), default=20, show_default=True,
              help="How many records to list; 0 lists all.")
@click.option("--same-as", "same_as", metavar="REF",
              help="Only runs whose configuration fingerprint equals REF's (identical configurations).")
@click.option("--refresh", is_flag=True,
              help="Ask HealthOmics (GetRun) about the listed runs that have not finished first, and record "
                   "what it says (the one form of log that writes to the ledger and reaches AWS).")
@click.option("--batch", "batch", metavar="REF",
              help="List the member runs of this batch (a batch's id, REF or one of its members' REFs); "
                   "without it, member runs are left out of the list.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of records' summaries.")
@click.pass_context
def log(ctx, limit, same_as, refresh, batch, as_json):
    """List recorded submissions, newest first (by when each run was asked for).

    Shows each record's address, time, run id, latest known status, workflow, name,
    git commit and run uuid. Failed attempts show status REJECTED, given-up ones ABANDONED;
    replays are marked. A status that can still change is shown with the time it was last
    seen, e.g. "RUNNING (as of 2026-11-25 10:32)": `runlog log --refresh` (or `runlog
    refresh`) asks the service again. A run or batch held twice (imported, then pulled from
    the ledger that submitted it) is listed once, as submitted; stderr names the other.

    \b
    Examples:
      runlog log
      runlog log --refresh -n 5
      runlog log -n 0 --json | jq '.[] | select(.status == "FAILED")'
      runlog log --same-as @1        # every run of the same configuration as the latest
      runlog log --batch 7654321 -n 0   # every run of a batch (`runlog refresh 7654321` records them)
    """
    if limit > MAX_COUNT:  # SQLite's LIMIT stops at 2**63 - 1
        raise UsageError(f"-n {limit}: too large (at most {MAX_COUNT}; -n 0 lists all records)")
    config = load_config(ctx)
    ledger = open_ledger(config, create=False, readonly=True)
    if ledger is None:
        if as_json:
            echo_json([])
        else:
            note(no_ledger(config))
        return
    with ledger, reading(ledger):
        found = None
        if batch:
            from runlog.batchread import batch_entry

            found = batch_entry(ledger, batch, whole=False)  # its view: the cohort is not read
        from runlog.batchread import configuration_fingerprint

        twins: list = []  # imported records of runs and batches also held as submitted: listed once
        entries = ledger.listing(limit + 1 if limit else None, batch=found, left_out=twins,
                                 fingerprint=configuration_fingerprint(ledger, same_as) if same_as else None)
        # a member run without a name is told by its runSettingId (--json: `run_setting_id` of
        # every member; its `name` stays the run's name); asked before --refresh, which closes
        # this connection
        setting_ids = ledger.run_setting_ids(
            [e.address for e in entries[:limit or None] if e.kind == "member" and (as_json or not e.name)])
        if refresh:
            entries = _refreshed(ledger, entries, config)
    more = bool(limit) and len(entries) > limit
    entries = entries[:limit] if limit else entries
    if twins:
        note(f"{len(twins)} imported record(s) not listed, each of a run or batch listed as runlog started it "
             f"(`runlog show ADDRESS` shows one): {', '.join(e.address[:12] for e in twins[:5])}"
             + (f" and {len(twins) - 5} more" if len(twins) > 5 else ""))
    if as_json:
        echo_json([{**e.summary(), **({"run_setting_id": setting_ids.get(e.address)} if e.kind == "member" else {}),
                    **({"ran_in_batch": b} if (b := _import_batch(e)) else {})} for e in entries])
        return
    if not entries:
        note("no records")
        return
    rows: list[tuple[str, ...]] = [("RECORD", "CREATED (UTC)", "RUN ID", "STATUS", "WORKFLOW", "NAME", "COMMIT", "RUN UUID")]
    for e in entries:
        name = e.name or (f"(runSettingId {setting_ids[e.address]})" if e.address in setting_ids else "-")
        name += f" (replay of {e.replay_of[:8]})" if e.replay_of else ""
        if ran_in := _import_batch(e):  # an imported run of a batch the ledger does not hold
            name += f" (ran in batch {ran_in})"
        status = e.status or "-"
        if e.status and e.status not in FINAL_STATUSES:  # may have moved on since: say when it was seen
            status += f" (as of {short_time(e.status_as_of)[:16]})"
        run = e.run_id or (f"batch {e.batch_id}" if e.kind == "batch" and e.batch_id else "-")
        row = (e.address[:12], short_time(e.created), run, status,
               e.workflow_id or "-", name, (e.git_commit or "-")[:8], e.run_uuid or "-")
        rows.append(tuple(terminal_safe(cell) for cell in row))  # names come from records, maybe pulled
    widths = [max(len(str(r[i])) for r in rows) for i in range(len(rows[0]) - 1)]
    for r in rows:
        click.echo("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=False)) + "  " + r[-1])
    if more:
        note(f"showing the newest {len(entries)} (-n N for more, -n 0 for all)")


def _import_batch(entry) -> str | None:
    """The batch an imported single run ran in, as GetRun told (its batch deleted before the
    import); None for every other record. Only a body that names a batchId is parsed."""
    if entry.kind != "import" or '"batchId"' not in entry.body:
        return None
    found = (entry.record.get("source_run") or {}).get("batchId")
    return found if isinstance(found, str) and found else None


def _refreshed(ledger, entries, config):
    """`log --refresh`: GetRun for the listed runs that can still change, then the same list
    again with what was recorded. Runs that could not be asked keep their status (and say so)."""
    from runlog.cli.sync import refresh_runs

    moving = [e for e in entries if e.run_id and e.status not in FINAL_STATUSES]
    if not moving:
        return entries
    ledger.close()
    writable = require_ledger(config, notice=False)
    with writable:
        for change in refresh_runs(writable, moving, config):
            if "error" in change:
                warn(f"run {change['run_id']}: not refreshed: {change['error']}")
        fresh = {e.address: e for e in writable.by_addresses([e.address for e in entries])}
    return [fresh.get(e.address, e) for e in entries]


@click.command()
@click.argument("ref")
@click.option("--json", "as_json", is_flag=True, help="Print the record, observations and lineage as JSON.")
@click.pass_context
def show(ctx, ref, as_json):
    """Print one whole record, its observations and its lineage.

    REF is a run id, run uuid, run ARN, @N (the N-th newest run by creation time: @1 is the latest),
    or a unique prefix (6 or more hex characters) of a record address.

    \b
    Examples:
      runlog show @1
      runlog show 1234567
      runlog show 3f2a9c01 --json | jq .record.request
      runlog show 7654321            # a batch: its runs by status, failures with reasons
    """
    config = load_config(ctx)
    ledger = require_ledger(config, readonly=True)
    ledger.partial = True  # a cohort whose blob is lost: shown as its reference, the blob named (exit 1)
    with ledger, reading(ledger):
        # also a batch's id, uuid or ARN (runlog.batch is not imported for it); a batch as its view
        entry = ledger.resolve(ref, whole=False)
        if entry.kind == "batch":  # counts by status and failures, not 100 000 settings (runlog/cli/batch.py)
            from runlog.cli.batch_show import show_batch

            return show_batch(ledger, entry, as_json)
        observations = ledger.observations(entry.address)
        replays = ledger.replays_of(entry.address)
        ran_in = _ran_in_batch(ledger, entry.record)
    record = entry.record
    known = _member_settings(record, observations)
    failure = _failure_reason(entry.status, observations)
    if as_json:
        echo_json({
            "address": entry.address,
            "seq": entry.seq,
            "status": entry.status,
            "record": record,
            "observations": observations,
            "replays": [r.address for r in replays],
            **({"member_settings": known.as_dict()} if known is not None else {}),
            **({"ran_in_batch": ran_in[0]} if ran_in else {}),
            **({"failure_reason": failure} if entry.status == "FAILED" else {}),
        })
        return
    response = record["outcome"].get("response") or {}
    git = record["git"]
    lines = [
        ("record", entry.address),
        ("kind", f"{record['kind']} (#{entry.seq} in this ledger)"),
        ("created", record["created"]),
        ("status", entry.status or "-"),
    ]
    if failure is not None:
        lines.append(("failed", failure))
    if response:
        lines += [("run", f"{response.get('id')}  uuid {response.get('uuid')}"), ("arn", response.get("arn"))]
    elif record["outcome"]["status"] == "abandoned":
        lines.append(("abandoned", record["outcome"].get("reason")))
    else:
        error = record["outcome"].get("error") or {}
        lines.append(("rejected", f"{error.get('code')}: {error.get('message')}"))
    if git.get("commit"):
        flags = ", ".join(filter(None, [git.get("branch"), "dirty" if git["state"] == "dirty" else "clean"]))
        lines.append(("git", f"{git['commit']} ({flags})"))
    else:
        lines.append(("git", f"{git['state']}: {git.get('reason', 'no commit')}"))
    lines.append(("fingerprint", record["fingerprint"]))
    if record["kind"] == "member":  # the batch it ran in, and the run setting it ran
        of = record.get("batch") or {}
        lines.append(("batch", f"{of.get('batch_id')} (runSettingId {of.get('run_setting_id')}), batch record "
                               f"{str(of.get('record'))[:12]}"))
    if ran_in:
        lines.append(("batch", ran_in[1]))
    if known is not None:
        lines.append(("settings", known.note))
    if (reported := _reported(record, observations)) is not None:
        lines.append(("warning", reported))
    lines += _lineage_lines(record.get("lineage"))
    for r in replays:
        lines.append(("replayed by", f"{r.address} (run {r.run_id or '-'})"))
    for warning in record.get("warnings", []):
        lines.append(("warning", warning))
    for key, value in lines:
        click.echo(f"{key:<12} {terminal_safe(value)}")
    click.echo("\n" + terminal_json(record, sort_keys=True))
    if known is not None and known.state == "observed":
        click.echo(f"\nsettings it ran with, observed from GetRun at {known.observed_at} (not a submitted request):")
        click.echo(terminal_json(known.settings, sort_keys=True))  # from the service: untrusted text
    if observations:
        click.echo("\nobservations:")
        for o in observations:
            click.echo(terminal_safe(f"  {o['observed_at']}  {o['source']:<10} {o['status'] or ''}"))
    said_lost(ledger)


def _failure_reason(status: str | None, observations: list[dict]) -> str | None:
    """Why a run that FAILED failed: the latest observation saying FAILED, its failureReason
    or else its statusMessage (as `runlog show B` gives a member's: Ledger.member_failures);
    None when the status is another or no observation gives a reason."""
    if status != "FAILED":
        return None
    for seen in reversed(observations):
        if seen["status"] == "FAILED" and isinstance(seen["body"], dict):
            reason = seen["body"].get("failureReason") or seen["body"].get("statusMessage")
            return reason if isinstance(reason, str) and reason else None
    return None


def _reported(record: dict, observations: list[dict]) -> str | None:
    """A member whose GetRun reported parameters other than its record holds: the warning."""
    from runlog.membersettings import reported_note, reported_parameters

    found = reported_parameters(record, observations)
    return None if found is None else reported_note(found[0])


def _member_settings(record: dict, observations: list[dict]):
    """For a member whose record holds the default setting alone (a batch started without
    runlog): what is known of its own settings (runlog.membersettings.Known); else None."""
    from runlog.membersettings import known_settings, needs_settings

    return known_settings(record, observations) if needs_settings(record) else None


def _ran_in_batch(ledger, record: dict) -> tuple[str, str] | None:
    """An imported single run that GetRun says ran in a batch (one deleted before the import,
    so ListBatch never listed it): (batch id, a line saying so). None otherwise."""
    batch_id = (record.get("source_run") or {}).get("batchId") if record.get("kind") == "import" else None
    if not isinstance(batch_id, str) or not batch_id:
        return None
    held = batch_id in ledger.batch_ids()
    return batch_id, (f"ran in batch {batch_id} (GetRun's batchId); " + (
        "that batch is in this ledger, this run was imported on its own" if held else
        "that batch is not in this ledger (deleted before it was imported): this run was imported on its own"))


def _lineage_lines(lineage: dict | None) -> list[tuple[str, str]]:
    """What a replay replays, how, what it changed on purpose and what drift it accepted."""
    if not lineage:
        return []
    from runlog.replay import describe
    from runlog.startrun import flag_for

    of = lineage["replay_of"]
    source = lineage.get("settings") or {}
    how = ("StartRun --run-id: the service's copy of the run" if lineage.get("mode") == "native"
           else f"the settings observed from GetRun at {source.get('observed_at')}" if source.get("from") == "GetRun"
           else "its batch's default setting alone (--default-only)" if source.get("from") == "default"
           else "the recorded request")
    lines = [("replay of", f"{of['record']} (run {of.get('run_id') or '-'}, {how})")]
    overrides = lineage.get("overrides") or {}
    for path, value in (overrides.get("parameters") or {}).items():
        lines.append(("override", f"--set {path}={json.dumps(value, ensure_ascii=False)}"))
    for member, value in (overrides.get("members") or {}).items():
        flag = flag_for(member)
        lines.append(("override", f"{flag} {json.dumps(value, ensure_ascii=False)}"))
    for drift in lineage.get("drift") or []:
        lines.append(("drift", describe(drift) + " (allowed)"))
    return lines


@click.command()
@click.argument("refs", nargs=-1, metavar="[REF]...")
@click.option("--expect", metavar="N:CHAIN",
              help="A head printed by an earlier verify (or kept elsewhere): fail unless the ledger still "
                   "holds it, i.e. its N-th record has that chain value.")
@click.option("--no-remote", is_flag=True,
              help="Do not check the head against the one `push` left on the configured remote.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@click.pass_context
def verify(ctx, refs, expect, no_remote, as_json):
    """Check every record, attempt and observation against its content address, seal, schema,
    fingerprint, intent and chain.

    Exits 1 naming each record that no longer matches (edited behind runlog's back), each
    changed column, each gap in the ledger's sequence (a deleted record), each trigger that was
    removed or altered, and each record that differs from the intent committed before StartRun;
    0 when all is intact. Prints the ledger's head (N:CHAIN, the record count and the newest
    chain value): keep it, and `--expect` it later to detect records removed from the end. When
    a remote is configured, the head `push` left there is checked too (--no-remote skips it).
    With REFs, checks only those records (and their link in the chain).

    \b
    Examples:
      runlog verify
      runlog verify --json
      runlog verify --expect 42:9f3c0a1be27d
      runlog verify @1 1234567
    """
    import runlog.verify
    from runlog.verify import parse_head, verify_entries

    if expect:
        parse_head(expect)  # bad input before anything is read
    config = load_config(ctx)
    ledger = require_ledger(config, readonly=True)
    with ledger, reading(ledger):
        if refs:
            report = verify_entries(ledger, [ledger.resolve(r, whole=False) for r in refs])  # it reads the rows itself
        else:
            report = runlog.verify.verify(ledger, expect=expect)
            remote = None if no_remote else config.get("remote")
            if remote:
                _check_remote_head(ledger, report, config, remote)
    if as_json:
        echo_json({"ledger": str(ledger.path), **report.as_dict()})
    else:
        for problem in report.problems:
            click.echo(f"FAIL {problem.message}")
        verdict = "OK" if report.ok else f"{len(report.problems)} problem(s)"
        counts = ", ".join(f"{n} {word}{'' if n == 1 else 's'}" for n, word in (
            (report.records, "record"), (report.observations, "observation"), (report.attempts, "attempt")))
        click.echo(f"verified {counts} ({report.pending} pending): {verdict}")
        checked = f" (checked against {', '.join(report.witnesses)})" if report.witnesses else ""
        click.echo(f"head {report.head_text}{checked}")
    if not report.ok:
        ctx.exit(1)


def _check_remote_head(ledger, report, config, remote_text) -> None:
    """The newest head this ledger left on its team ledger must still be in it (boto3 is
    imported only here, when a remote is configured)."""
    from runlog import sync
    from runlog.cli.sync import _s3
    from runlog.errors import RunlogError
    from runlog.verify import Problem

    remote = sync.Remote.parse(remote_text)
    try:
        s3 = _s3(config, None, None, 4)
    except RunlogError as exc:
        report.witnesses.append(str(remote))
        report.problems.append(Problem("head", str(remote), f"cannot read the head pushed to {remote}: "
                                       f"{exc.message} (--no-remote skips this check)"))
        return
    found = len(report.problems)
    sync.check_remote_head(ledger, report, s3, remote)
    for problem in report.problems[found:]:
        if problem.message.startswith("cannot read the head"):
            problem.message += " (--no-remote skips this check)"
