"""Session 19's walk through docs/batch.md as a new user: each test is a command the docs
show (or the mistake a new user makes next to it) whose output disagreed with the docs.
moto's S3 over HTTP, the emulator over HTTP, a real git repository and ledger file."""

from __future__ import annotations

import json

import runlog
from helpers import COHORT_DEFAULT, cohort_setting, refreshed_cohort

REFS = "lab-refs"  # a bucket the default's references are in: made only after submission below


def test_an_input_whose_bucket_did_not_exist_at_submission_and_does_now_is_drift(s3_emulator, s3_server,
                                                                                 ledger_path, git_repo, run_cli):
    """docs/batch.md: "An input that was not there at submission (NotFound) and is now is
    drift too: the original run cannot have read those bytes". The bulk listing records an
    input in a bucket that did not exist as S3's NoSuchBucket, which replay took for "not
    identified at submission" (a note, no drift): a replay started the references nobody
    pinned without --allow-drift."""
    s3_server.create_bucket(Bucket="cohort-bucket")
    for sample in ("S1", "S2"):
        s3_server.put_object(Bucket="cohort-bucket", Key=f"crams/{sample}.cram", Body=sample.encode())
    default = {**COHORT_DEFAULT, "parameters": {"ref_dict": f"s3://{REFS}/hg38.dict",
                                                "ref_fasta": f"s3://{REFS}/hg38.fa",
                                                "ref_fasta_index": f"s3://{REFS}/hg38.fa.fai"}}
    s3_emulator.batch_rate = 100
    sent = run_cli("submit-batch", "--batch-name", "cohort", "--default-run-setting", json.dumps(default),
                   "--batch-run-settings", json.dumps({"inlineSettings": [cohort_setting(s) for s in ("S1", "S2")]}))
    assert sent.exit_code == 0, sent.output
    assert "NoSuchBucket" in sent.stderr  # warned, and recorded as such
    batch_id = json.loads(sent.stdout)["id"]
    s3_server.create_bucket(Bucket=REFS)
    for key in ("hg38.dict", "hg38.fa", "hg38.fa.fai"):
        s3_server.put_object(Bucket=REFS, Key=key, Body=b"bytes nobody pinned")
    plan = run_cli("replay", batch_id, "--dry-run")
    assert plan.exit_code == 0, plan.output
    drift = json.loads(plan.stdout)["drift"]
    assert {d["what"] for d in drift} == {f"s3://{REFS}/hg38.dict", f"s3://{REFS}/hg38.fa",
                                         f"s3://{REFS}/hg38.fa.fai"}, (drift, plan.stderr)
    assert all(d["recorded"] == "NoSuchBucket" and d["current"] == "present" for d in drift)
    assert "not compared" not in plan.stderr
    started = sum(1 for r in s3_emulator.requests if r["operation"] == "StartRunBatch")
    refused = run_cli("replay", batch_id)
    assert refused.exit_code == 3, refused.output
    assert sum(1 for r in s3_emulator.requests if r["operation"] == "StartRunBatch") == started


def test_a_dry_run_does_not_call_an_existing_settings_uri_a_new_object(s3_emulator, s3_server, ledger_path,
                                                                       git_repo, run_cli):
    """`replay B --only … --settings-uri URI --dry-run` said runlog "would write … to URI (a
    new object)" of a URI an object is already at, which the same replay without --dry-run
    refuses (exit 2: runlog never overwrites one). The dry run says so instead."""
    batch_id = refreshed_cohort(run_cli, s3_emulator, s3_server, ["S1", "S2", "S3"])
    taken = "s3://cohort-bucket/cohort/settings.json"  # the batch's own settings file
    plan = run_cli("replay", batch_id, "--only", "S2", "--settings-uri", taken, "--dry-run")
    assert plan.exit_code == 0, plan.output
    assert "(a new object)" not in plan.stderr
    assert (f"without --dry-run this replay would be refused (exit 2): --settings-uri {taken}: an object is "
            "already there and runlog never overwrites one; name a new key") in plan.stderr
    refused = run_cli("replay", batch_id, "--only", "S2", "--settings-uri", taken)
    assert refused.exit_code == 2, refused.output
    free = run_cli("replay", batch_id, "--only", "S2", "--settings-uri", "s3://cohort-bucket/cohort/s2.json",
                   "--dry-run")
    assert free.exit_code == 0, free.output
    assert "to s3://cohort-bucket/cohort/s2.json (a new object)" in free.stderr


def test_the_librarys_dry_run_says_too_that_a_settings_uri_is_taken(s3_emulator, s3_server, ledger_path, git_repo,
                                                                     run_cli):
    """The Python API's dry run makes the same HeadObject as `runlog replay --dry-run`: its plan
    says why the replay would be refused when an object is at the settings URI, and nothing
    when the URI is free. Nothing is written to S3 or sent either way."""
    batch_id = refreshed_cohort(run_cli, s3_emulator, s3_server, ["S1", "S2", "S3"])
    taken = "s3://cohort-bucket/cohort/settings.json"
    free = "s3://cohort-bucket/cohort/s2-lib.json"
    with runlog.Runlog(ledger_path) as rl:
        refused = rl.replay(batch_id, only=["S2"], settings_uri=taken, dry_run=True)
        fine = rl.replay(batch_id, only=["S2"], settings_uri=free, dry_run=True)
    assert refused.plan.settings_uri_problem == (f"`settings_uri` {taken}: an object is already there and runlog "
                                                 "never overwrites one; name a new key")
    assert fine.plan.settings_uri_problem is None and refused.submission is None and fine.submission is None
    assert "Contents" not in s3_server.list_objects_v2(Bucket="cohort-bucket", Prefix="cohort/s2-lib")
    assert sum(1 for r in s3_emulator.requests if r["operation"] == "StartRunBatch") == 1


def test_only_an_id_not_in_the_batch_names_it_and_what_is(s3_emulator, s3_server, ledger_path, git_repo, run_cli):
    """`replay B --only ID` of an id the batch does not have: one line, exit 2, naming the id
    and how to find the right one (a near id when there is one, else the batch's first ids)."""
    batch_id = refreshed_cohort(run_cli, s3_emulator, s3_server, ["NA12878", "NA12891", "HG002"])
    case = run_cli("replay", batch_id, "--only", "na12891", "--dry-run")
    assert case.exit_code == 2, case.output
    assert case.stderr.count("\n") == 1
    assert "runSettingId 'na12891' is not in batch" in case.stderr
    assert "did you mean 'NA12891'?" in case.stderr
    other = run_cli("replay", batch_id, "--only", "HG005x", "--dry-run")
    assert other.exit_code == 2, other.output
    assert "its run settings: 'NA12878', 'NA12891', 'HG002'" in other.stderr


def test_a_settings_file_with_a_run_setting_id_twice_names_both_items(s3_emulator, s3_server, ledger_path,
                                                                      git_repo, run_cli):
    """The message named the file's items as "item: runSettingId 'A' appears twice (item 1)"."""
    s3_server.create_bucket(Bucket="cohort-bucket")
    twice = [cohort_setting("S1"), cohort_setting("S2"), cohort_setting("S1")]
    s3_server.put_object(Bucket="cohort-bucket", Key="cohort/twice.json", Body=json.dumps(twice).encode())
    uri = "s3://cohort-bucket/cohort/twice.json"
    refused = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT),
                      "--batch-run-settings", json.dumps({"s3UriSettings": uri}))
    assert refused.exit_code == 2, refused.output
    assert refused.stderr == (f"runlog: error: settings file {uri} item[2]: runSettingId 'S1' appears twice "
                              "(items 0 and 2); each run needs its own\n")
    inline = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT),
                     "--batch-run-settings", json.dumps({"inlineSettings": twice}))
    assert inline.exit_code == 2, inline.output
    assert "--batch-run-settings inlineSettings[2]: runSettingId 'S1' appears twice (items 0 and 2)" in inline.stderr


def test_a_batch_id_with_a_typo_is_refused_naming_the_batch_forms_of_a_ref(s3_emulator, s3_server, ledger_path,
                                                                           git_repo, run_cli):
    """`runlog show 7654321` of a batch id mistyped: the line told the user to "give a run id,
    run uuid, run ARN, …", though a batch's id, uuid and ARN are REFs too (README.md)."""
    batch_id = refreshed_cohort(run_cli, s3_emulator, s3_server, ["S1"])
    typo = str(int(batch_id) + 9)
    for command in (["show", typo], ["log", "--batch", typo], ["diff", batch_id, typo], ["cancel", typo],
                    ["export", typo, "-o", "out"], ["refresh", typo]):
        refused = run_cli(*command)
        assert refused.exit_code == 2, (command, refused.output)
        assert refused.stderr == (f"runlog: error: no record matches '{typo}' (give a run's or a batch's id, uuid "
                                  "or ARN, @N for the N-th newest, or at least 6 hex characters of a record "
                                  "address; `runlog log` lists them)\n"), command


def imported_batch(emulator, run_cli) -> str:
    """A two-run batch started with boto3 (runlog not involved), run to the end and recorded by
    `runlog import`; returns its id."""
    from helpers import omics_client

    emulator.batch_rate = 100
    started = omics_client(emulator).start_run_batch(
        batchName="elsewhere", defaultRunSetting=COHORT_DEFAULT,
        batchRunSettings={"inlineSettings": [cohort_setting("S1"), cohort_setting("S2")]})
    emulator.advance(400)
    assert run_cli("import").exit_code == 0
    return started["id"]


def test_show_of_an_imported_batch_names_the_refresh_to_run(aws_env, ledger_path, git_repo, run_cli):
    """The `run settings` line of an imported batch said "(`runlog refresh B` asks; …)": the
    placeholder of the docs, where the command to copy has the batch's id."""
    batch_id = imported_batch(aws_env, run_cli)
    shown = run_cli("show", batch_id)
    assert shown.exit_code == 0, shown.output
    line = next(line for line in shown.stdout.splitlines() if line.startswith("run settings"))
    assert line.endswith(f"(`runlog refresh {batch_id}` asks; `runlog show RUN_ID` says why)"), line


def test_diff_lists_untracked_files_added_and_removed_by_name(s3_emulator, s3_server, ledger_path, git_repo,
                                                              run_cli):
    """`runlog diff B1 B2` after a dozen files were written beside a file already untracked
    (an export, say): the untracked list was compared place by place, so each name read as
    "changed" into another (`~ untracked[0] "default.json" -> ".runlog.toml"`), and its
    places were sorted as text (untracked[10] before untracked[1]). Untracked files are a
    set: each name one side has is added or removed, and nothing else is listed."""
    (git_repo / "default.json").write_text("{}")
    first = refreshed_cohort(run_cli, s3_emulator, s3_server, ["S1"])
    for index in range(12):
        (git_repo / f"export-{index:02d}.json").write_text("{}")
    (git_repo / "default.json").unlink()
    (git_repo / ".a-first-name").write_text("")
    second = refreshed_cohort(run_cli, s3_emulator, s3_server, ["S1"])
    found = run_cli("diff", first, second, "--json")
    assert found.exit_code == 0, found.output
    untracked = [c for c in json.loads(found.stdout)["changes"] if c["path"].startswith("untracked")
                 and c["path"] != "untracked digest"]
    assert untracked == (
        [{"section": "git", "path": "untracked", "old": "default.json", "new": None, "kind": "removed"}]
        + [{"section": "git", "path": "untracked", "old": None, "new": name, "kind": "added"}
           for name in [".a-first-name", *(f"export-{index:02d}.json" for index in range(12))]])
    text = run_cli("diff", first, second).stdout
    assert "untracked[" not in text
    assert '- untracked          "default.json"' in text and '+ untracked          "export-11.json"' in text


def test_a_batch_left_pending_is_told_recover_never_starts_a_second_batch(aws_env, ledger_path, git_repo, run_cli):
    """submit-batch whose StartRunBatch ends in 5xx after the retries: the line said recover
    "never starts a second run", of a batch."""
    aws_env.inject("error", operation="StartRunBatch", count=10)
    pending = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT),
                      "--batch-run-settings", json.dumps({"inlineSettings": [cohort_setting("S1")]}))
    assert pending.exit_code == 1, pending.output
    assert "the batch may have started" in pending.stderr
    assert "(it re-sends the same requestId, so it never starts a second batch)" in pending.stderr
    aws_env.inject("error", operation="StartRunBatch", count=10)
    again = run_cli("recover")
    assert again.exit_code == 1, again.output
    assert "the same requestId never starts a second batch" in again.output, again.output
    aws_env.faults.clear()
    recovered = run_cli("recover")
    assert recovered.exit_code == 0, recovered.output


def test_the_methods_of_an_imported_batch_do_not_say_the_workflow_id_workflow(aws_env, ledger_path, git_repo,
                                                                               run_cli, tmp_path):
    """An imported batch's workflow was never resolved: its name is not known, and export's
    methods paragraph read "each run setting gave one run of the workflow 1234567 workflow"
    and "The workflow 1234567 workflow, AWS HealthOmics workflow 1234567, was run …"."""
    exported = run_cli("export", imported_batch(aws_env, run_cli), "-f", "methods", "-o", tmp_path / "out")
    assert exported.exit_code == 0, exported.output
    text = next((tmp_path / "out").rglob("methods.md")).read_text()
    workflow = COHORT_DEFAULT["workflowId"]
    assert f"workflow {workflow} workflow" not in text, text
    assert f"each run setting gave one run of workflow {workflow} with the batch's default setting" in text
    assert f"The workflow, AWS HealthOmics workflow {workflow}, was run" in text


def test_a_watch_that_times_out_names_the_watch_to_run_again(aws_env, ledger_path, git_repo, run_cli):
    """`runlog watch B --timeout 1` of a batch still going said "`runlog watch` again", without
    the batch it means."""
    aws_env.batch_rate = 100
    sent = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT),
                   "--batch-run-settings", json.dumps({"inlineSettings": [cohort_setting("S1")]}))
    assert sent.exit_code == 0, sent.output
    batch_id = json.loads(sent.stdout)["id"]
    waited = run_cli("watch", batch_id, "--interval", "0.1", "--timeout", "0.1")
    assert waited.exit_code == 1, waited.output
    assert waited.stderr.endswith(f"`runlog watch {batch_id}` again to keep following it\n"), waited.stderr
