"""Session 23's changes, each as a user sees it through the CLI against the emulator."""

from __future__ import annotations

import json
import re

from helpers import BUCKET, REMOTE, SEED_1, push_json, submit_cohort
from runlog.ledger import Ledger


def _imported_then_pulled(aws_env, run_cli, ledger_path, other):
    """Ledger A submits one run and a two-run batch through runlog and pushes; ledger `other`
    imports them from the service, then pulls A: it holds each run and the batch twice, each
    record true. Returns A's run id and batch id."""
    single = run_cli(*SEED_1, "--endpoint-url", aws_env.endpoint_url)
    assert single.exit_code == 0, single.output
    run_id = json.loads(single.stdout)["id"]
    batch_id = submit_cohort(run_cli, "S1", "S2")
    aws_env.batch_rate = 100
    aws_env.advance(300)
    assert run_cli("refresh").exit_code == 0
    push_json(run_cli, ledger_path)
    imported = run_cli("--ledger", other, "import")
    assert imported.exit_code == 0, imported.output
    pulled = run_cli("--ledger", other, "pull", REMOTE)
    assert pulled.exit_code == 0, pulled.output
    return run_id, batch_id


def test_log_and_report_list_each_run_once_after_import_then_pull(aws_env, bucket, ledger_path, git_repo, run_cli,
                                                                  tmp_path):
    """`log` listed the imported and the submitted record of the same run (and of the same
    batch) one above the other, and `report` counted every run twice. Each is now listed and
    counted once, as the record runlog made when it started it; `log` says on stderr which
    imported records it left out, and the report's selection says how many."""
    other = tmp_path / "other.db"
    run_id, batch_id = _imported_then_pulled(aws_env, run_cli, ledger_path, other)
    mine = {row["address"]: row for row in json.loads(run_cli("log", "--json", "-n", "0").stdout)}

    listed = run_cli("--ledger", other, "log", "--json", "-n", "0")
    assert listed.exit_code == 0, listed.output
    rows = json.loads(listed.stdout)
    assert [row["kind"] for row in rows if row.get("run_id") == run_id] == ["submit"], rows
    assert [row["kind"] for row in rows if row.get("batch_id") == batch_id] == ["batch"], rows
    assert set(mine) <= {row["address"] for row in rows}, (rows, mine)
    uuids = [row["run_uuid"] for row in rows if row.get("run_uuid")]
    assert len(uuids) == len(set(uuids)), rows  # (the emulator's own run is imported too: it has no twin)
    assert "2 imported record(s) not listed" in listed.stderr, listed.stderr

    text = run_cli("--ledger", other, "log")
    assert text.stdout.count(run_id) == 1 and text.stdout.count(f"batch {batch_id}") == 1, text.stdout
    # -n 1 still lists one record, whichever way the twins sort
    (newest,) = json.loads(run_cli("--ledger", other, "log", "--json", "-n", "1").stdout)
    assert newest["address"] in mine

    report = run_cli("--ledger", other, "report", "-o", tmp_path / "report.html")
    assert report.exit_code == 0, report.output
    counted = re.search(r"(\d+) run\(s\) in (\d+) record\(s\)", report.output)
    assert counted is not None, report.output  # records: what log lists, and the batch's two members
    assert (int(counted.group(1)), int(counted.group(2))) == (len(rows) + 1, len(rows) + 2), report.output  # a batch is no run
    page = (tmp_path / "report.html").read_text()
    assert "less 4 imported record(s)" in page


def test_log_lists_an_imported_run_that_has_no_submitted_twin(aws_env, ledger_path, git_repo, run_cli, tmp_path):
    """The twin rule leaves out only an imported record whose run the ledger also holds as
    submitted: a run imported alone is listed as before, and no note is printed."""
    single = run_cli(*SEED_1, "--endpoint-url", aws_env.endpoint_url)
    run_id = json.loads(single.stdout)["id"]
    other = tmp_path / "other.db"
    assert run_cli("--ledger", other, "import").exit_code == 0
    listed = run_cli("--ledger", other, "log", "--json")
    assert [row["kind"] for row in json.loads(listed.stdout) if row.get("run_id") == run_id] == ["import"]
    assert "not listed" not in listed.stderr


def test_refresh_of_a_record_that_started_nothing_is_refused_like_watch(aws_env, ledger_path, git_repo, run_cli):
    """`refresh MEMBER` of a member whose submission failed printed "no run" and exited 1,
    where `watch` of it exits 2; given with a good REF, the good one was asked first. Both now
    refuse it in one line, exit 2, before anything is asked."""
    aws_env.batch_fault("start", run_setting_ids=["S2"])  # S2's submission fails
    batch_id = submit_cohort(run_cli, "S1", "S2")
    aws_env.batch_rate = 100
    aws_env.advance(300)
    assert run_cli("refresh").exit_code == 0
    rows = json.loads(run_cli("log", "--batch", batch_id, "--json").stdout)
    (failed,) = [row for row in rows if not row.get("run_id")]
    (started,) = [row for row in rows if row.get("run_id")]
    asked = len(aws_env.requests)
    for args in ([failed["address"][:12]], [started["run_id"], failed["address"][:12]]):
        result = run_cli("refresh", *args)
        assert result.exit_code == 2 and result.stdout == "", result.output
        assert result.stderr.count("\n") == 1 and f"record {failed['address'][:12]} has no run to refresh " \
            "(it was rejected)" in result.stderr, result.stderr
        assert f"`runlog show {failed['address'][:12]}` says why" in result.stderr
    assert run_cli("watch", failed["address"][:12]).exit_code == 2
    assert len(aws_env.requests) == asked  # nothing was asked
    assert run_cli("refresh", started["run_id"]).exit_code == 0


def _numbered_cohort(run_cli, s3, key: str, value) -> str:
    """A two-run batch whose S2 has sample_name `value`, inline (s3 None) or from a settings
    file in moto (at KEY); returns its batch id."""
    from helpers import COHORT_DEFAULT, cohort_setting

    settings = [cohort_setting("S1"), {**cohort_setting("S2"), "parameters": {
        **cohort_setting("S2")["parameters"], "sample_name": value}}]
    if s3 is None:
        runs = {"inlineSettings": settings}
    else:
        if "cohort-bucket" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
            s3.create_bucket(Bucket="cohort-bucket")
        s3.put_object(Bucket="cohort-bucket", Key=key, Body=json.dumps(settings).encode())
        runs = {"s3UriSettings": f"s3://cohort-bucket/{key}"}
    result = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT),
                     "--batch-run-settings", json.dumps(runs))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["id"]


def test_diff_of_two_batches_tells_an_integer_from_a_float(s3_server, s3_emulator, ledger_path, git_repo, run_cli):
    """Two cohorts whose run S2 has sample_name 1 in one and 1.0 in the other (different
    requests, different fingerprints: a workflow's Int input may refuse 1.0) were reported by
    `diff B1 B2` as "No differences: identical configurations", with A's fingerprint, for
    inline settings and for settings files alike (Python's 1 == 1.0). The run's setting is now
    reported as a type change, as `diff` of two runs does."""
    for s3 in (None, s3_server):
        first = _numbered_cohort(run_cli, s3, "cohort/int.json", 1)
        second = _numbered_cohort(run_cli, s3, "cohort/float.json", 1.0)
        shown = run_cli("diff", first, second)
        assert shown.exit_code == 0, shown.output
        assert "identical configurations" not in shown.stdout, shown.stdout
        assert "S2.parameters.sample_name   1 -> 1.0 (type changed)" in shown.stdout, shown.stdout
        changes = json.loads(run_cli("diff", first, second, "--json").stdout)["changes"]
        assert [(c["section"], c["path"], c["kind"]) for c in changes if c["section"] == "run settings"] == [
            ("run settings", "S2.parameters.sample_name", "type_changed")], changes
        again = _numbered_cohort(run_cli, s3, "cohort/int.json", 1)  # the same request again
        assert "No differences: identical configurations" in run_cli("diff", first, again).stdout


def test_no_differences_is_called_identical_only_when_the_fingerprints_are(capsys):
    """`diff` said "identical configurations (fingerprint A's)" whenever it found nothing to
    report, even for two records whose configuration fingerprints differ (the fingerprint
    covers what the comparison may not). It now says so only when they are equal."""
    from runlog.cli.diff import _print_report

    head = {"record": "a" * 64, "kind": "submit", "run_id": "4207391", "run_uuid": "u", "outcome": "submitted",
            "created": "2026-11-28T00:00:00.000Z", "fingerprint": "f" * 64}
    _print_report(head, {**head, "record": "b" * 64}, [], [], False)
    assert f"No differences: identical configurations (fingerprint {'f' * 12})." in capsys.readouterr().out
    _print_report(head, {**head, "record": "b" * 64, "fingerprint": "e" * 64}, [], [], False)
    shown = capsys.readouterr().out
    assert "identical" not in shown and f"fingerprints differ (A {'f' * 12}, B {'e' * 12})" in shown, shown


def _refreshed_and_pushed(run_cli, aws_env, ledger_path):
    """A three-run cohort whose S2 fails while it runs, refreshed and pushed as one object per
    item: (its batch id, {runSettingId: member Entry}, {runSettingId: its newest GetRun observation})."""
    from helpers import pushed_cohort

    aws_env.batch_fault("run", reason="OUT_OF_MEMORY", run_setting_ids=["S2"])
    batch_id = pushed_cohort(run_cli, aws_env, ledger_path, "S1", "S2", "S3")[0].batch_id
    with Ledger.open(ledger_path, create=False) as ledger:
        members = {e.record["batch"]["run_setting_id"]: e for e in ledger.entries(where="kind = 'member'")}
        getrun = {setting: found[-1] for setting, member in members.items()
                  if (found := [o for o in ledger.observations(member.address) if o["source"] == "GetRun"])}
    return batch_id, members, getrun


def _forged_observation(bucket, record, run_uuid, source, status, body) -> str:
    """An observation object put in the team bucket beside the pushed ones: its key."""
    from runlog import record as rec
    from runlog.ledger import observation_object

    data = observation_object(record, run_uuid, rec.utc_now(), source, status, body)
    key = f"runlog/observations/{record}/{rec.sha256_hex(data)}.json"
    bucket.put_object(Bucket=BUCKET, Key=key, Body=data)
    return key


def test_pull_and_verify_refuse_an_observation_runlog_cannot_have_written(aws_env, bucket, ledger_path, git_repo,
                                                                          run_cli, tmp_path):
    """Someone with write access to the team bucket added observations: S2's FAILED GetRun
    answer with status COMPLETED (runlog takes the status from the answer), and S2's answer
    filed under S1's member (another run's uuid and id). `pull` took both, `verify` said OK,
    `show B` counted 3 COMPLETED (or 2 FAILED) and `replay B --only failed` said no run had
    failed. Both are now refused by name, the ledger keeps what runlog recorded, and verify
    names such a row in a ledger file edited by hand."""
    import sqlite3

    batch_id, members, getrun = _refreshed_and_pushed(run_cli, aws_env, ledger_path)
    failed = getrun["S2"]["body"]
    assert failed["status"] == "FAILED"
    lying = _forged_observation(bucket, members["S2"].address, members["S2"].run_uuid, "GetRun", "COMPLETED",
                                {**failed, "stopTime": "2030-01-01T00:00:00Z"})
    misfiled = _forged_observation(bucket, members["S1"].address, members["S2"].run_uuid, "GetRun", "FAILED", failed)
    other = tmp_path / "other.db"
    pulled = run_cli("--ledger", other, "pull", REMOTE)
    assert pulled.exit_code == 1, pulled.output
    assert lying in pulled.stderr and "its status 'COMPLETED' is not its GetRun answer's ('FAILED')" in pulled.stderr
    address = misfiled.rsplit("/", 1)[1][:-5]  # named by its address: it may have come in a pack
    assert f"refused observation {address} (of record {members['S1'].address}): not an observation runlog makes: " \
        f"it is of run uuid {members['S2'].run_uuid!r}, its record's run is {members['S1'].run_uuid!r}" \
        in pulled.stderr, pulled.stderr
    shown = json.loads(run_cli("--ledger", other, "show", batch_id, "--json").stdout)["batch"]
    mine = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]
    assert shown["run_status"] == mine["run_status"] == {"COMPLETED": 2, "FAILED": 1}, (shown, mine)
    assert run_cli("--ledger", other, "verify", "--no-remote").exit_code == 0

    conn = sqlite3.connect(other)  # the same lie written into the file by hand: verify names it
    conn.execute("DROP TRIGGER observations_no_update")
    conn.execute("UPDATE observations SET status = 'COMPLETED' WHERE status = 'FAILED'")
    conn.commit()
    conn.close()
    verified = run_cli("--ledger", other, "verify", "--no-remote")
    assert verified.exit_code == 1 and "is not one runlog makes: its status 'COMPLETED' is not its GetRun answer's " \
        "('FAILED')" in verified.stdout, verified.output


def test_replay_refuses_a_settings_file_rewritten_after_it_was_checked(s3_server, s3_emulator, ledger_path, git_repo,
                                                                       run_cli, monkeypatch):
    """`replay B` of a batch from a settings file checks the file's bytes against the pinned
    SHA-256, then submit-batch read it again to send it. A file rewritten in between (a script
    regenerating it while the replay resolved its inputs) was sent and recorded as the replay
    of B with no drift, though it held another cohort. The send now refuses other bytes than
    the check read: exit 3, nothing sent, nothing recorded."""
    from helpers import submitted_cohort
    from runlog import batchreplay

    batch_id = submitted_cohort(run_cli, s3_emulator, s3_server, ["S1", "S2"])
    checked_then_sent = batchreplay.send

    def rewritten_meanwhile(plan, *args, **kwargs):  # another writer, between the check and the send
        s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json", Body=json.dumps([{
            "runSettingId": "S1", "parameters": {"sample_name": "other", "input_cram": "s3://cohort-bucket/x.cram"}}]))
        return checked_then_sent(plan, *args, **kwargs)

    monkeypatch.setattr(batchreplay, "send", rewritten_meanwhile)
    with Ledger.open(ledger_path, create=False) as ledger:
        before = ledger.count()
    asked = [r["operation"] for r in s3_emulator.requests].count("StartRunBatch")
    result = run_cli("replay", batch_id, "--no-resolve")
    assert result.exit_code == 3, result.output
    assert "settings file s3://cohort-bucket/cohort/settings.json changed after the replay checked it" in result.stderr
    assert "nothing was sent" in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert [r["operation"] for r in s3_emulator.requests].count("StartRunBatch") == asked
    with Ledger.open(ledger_path, create=False) as ledger:
        assert ledger.count() == before and not ledger.pending_request_ids()


def test_only_failed_is_refused_for_a_batch_with_a_run_setting_named_failed(aws_env, ledger_path, git_repo, run_cli):
    """A run setting named `failed` could never be selected: `--only failed` took the word for
    the batch's failed runs and said "no failed runs recorded (`runlog refresh` first?)", or,
    had some failed, started those instead. Which is meant is now refused in one line, exit 2,
    naming the way to start that run setting alone."""
    batch_id = submit_cohort(run_cli, "failed", "ok")
    asked = [r["operation"] for r in aws_env.requests].count("StartRunBatch")
    result = run_cli("replay", batch_id, "--only", "failed")
    assert result.exit_code == 2 and result.stderr.count("\n") == 1, result.output
    assert "has a run setting whose runSettingId is 'failed'" in result.stderr and "runlog replay MEMBER" \
        in result.stderr, result.stderr
    assert [r["operation"] for r in aws_env.requests].count("StartRunBatch") == asked
    assert run_cli("replay", batch_id, "--only", "ok", "--no-resolve").exit_code == 0


def test_replay_refuses_a_settings_file_gone_after_it_was_checked(s3_server, s3_emulator, ledger_path, git_repo,
                                                                  run_cli, monkeypatch):
    """The same race with the file deleted between the check and the send: what the service
    would read cannot be confirmed as the checked cohort, so nothing is sent (exit 3), and the
    line says it could not be read again rather than that it changed."""
    from helpers import submitted_cohort
    from runlog import batchreplay

    batch_id = submitted_cohort(run_cli, s3_emulator, s3_server, ["S1", "S2"])
    checked_then_sent = batchreplay.send

    def deleted_meanwhile(plan, *args, **kwargs):
        s3_server.delete_object(Bucket="cohort-bucket", Key="cohort/settings.json")
        return checked_then_sent(plan, *args, **kwargs)

    monkeypatch.setattr(batchreplay, "send", deleted_meanwhile)
    asked = [r["operation"] for r in s3_emulator.requests].count("StartRunBatch")
    result = run_cli("replay", batch_id, "--no-resolve")
    assert result.exit_code == 3, result.output
    assert "settings file s3://cohort-bucket/cohort/settings.json could not be read again after the replay " \
           "checked it (NotFound)" in result.stderr, result.stderr
    assert [r["operation"] for r in s3_emulator.requests].count("StartRunBatch") == asked
