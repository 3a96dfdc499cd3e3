"""Session 17's review of cohorts (issue 14), walked as a user through the CLI against the
emulator: what a user saw that was not true or not said, each as a failing test first."""

from __future__ import annotations

import json

import pytest

from helpers import COHORT_DEFAULT, aws_cli, cohort_setting, omics_client, submit_cohort, submit_settings


def dry_run_selection(run_cli, *args) -> tuple[list[str], dict]:
    """The runSettingIds a `replay --dry-run` would start, and its whole answer."""
    replayed = run_cli("replay", *args, "--dry-run", "--allow-drift")
    assert replayed.exit_code == 0, replayed.output
    plan = json.loads(replayed.stdout)
    return [s["runSettingId"] for s in plan["request"]["batchRunSettings"]["inlineSettings"]], plan


def test_replay_only_failed_still_selects_runs_that_failed_before_their_runs_were_deleted(
        aws_env, ledger_path, git_repo, run_cli):
    """A lab cleans up a finished batch with `runlog cancel B --delete-runs` (DeleteRunBatch),
    then starts its failures again with `runlog replay B --only failed`. Before: the runs that
    had FAILED (or were CANCELLED) now had DELETED as their latest status, so only the failed
    submissions were selected and the failed runs silently left out. Now they are selected, as
    `export` already calls them FAILED."""
    aws_env.batch_rate = 100
    aws_env.batch_fault("run", run_setting_ids=["S2"], reason="OUT_OF_MEMORY")
    aws_env.batch_fault("start", run_setting_ids=["S3"], reason="ServiceQuotaExceededException")
    batch_id = submit_cohort(run_cli, "S1", "S2", "S3")
    aws_env.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    assert dry_run_selection(run_cli, batch_id, "--only", "failed")[0] == ["S2", "S3"]
    deleted = run_cli("cancel", batch_id, "--delete-runs")
    assert deleted.exit_code == 0, deleted.output
    aws_env.advance(30)
    assert run_cli("refresh", batch_id).exit_code == 0
    facts = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]
    assert facts["run_status"] == {"DELETED": 2}
    selected, _ = dry_run_selection(run_cli, batch_id, "--only", "failed")
    assert sorted(selected) == ["S2", "S3"]
    # show B still lists the run that FAILED before it was deleted, as replay --only failed selects it
    assert facts["failures_count"] == 2, facts
    assert [(f["run_setting_id"], f["stage"]) for f in facts["failures"]] == [("S3", "submission"), ("S2", "run")]
    assert facts["failures"][1]["reason"].endswith("(FAILED, then deleted)")
    shown = run_cli("show", batch_id).stdout
    assert "failed       S2 (run " in shown and "(FAILED, then deleted)" in shown


def test_replay_of_a_batch_refuses_a_set_every_replayed_run_overrides_and_notes_a_partial_one(
        aws_env, ledger_path, git_repo, run_cli):
    """`--set` changes the batch's default setting, and each run's own parameters win over
    the default's. Before: `runlog replay B --set sample_name=X` (a parameter every run sets
    itself) started the batch again unchanged, exit 0, and its lineage said sample_name was
    overridden. Now it is refused (exit 2, one line naming the parameter and the fix); a
    `--set` only some of the runs override is sent, with a note naming how many keep their own."""
    aws_env.batch_rate = 100
    batch_id = submit_cohort(run_cli, "S1", "S2")
    aws_env.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    refused = run_cli("replay", batch_id, "--set", "sample_name=X", "--allow-drift")
    assert refused.exit_code == 2, refused.output
    (line,) = refused.stderr.strip().splitlines()
    assert "--set sample_name" in line and "2 of 2" in line and "'S1'" in line, line
    assert "runlog replay RUN_ID" in line, line
    with_only = run_cli("replay", batch_id, "--only", "S2", "--set", "sample_name=X", "--dry-run")
    assert with_only.exit_code == 2 and "1 of 1" in with_only.stderr, with_only.output
    # a parameter no run sets itself reaches them all: no note
    _, plan = dry_run_selection(run_cli, batch_id, "--set", "ref_fasta=s3://cohort-bucket/ref/other.fasta")
    assert not any("--set" in note for note in plan["notes"]), plan["notes"]
    # one that some of the runs set themselves: sent, and said (on stderr and in --dry-run's notes)
    own = [cohort_setting("S1"), cohort_setting("S2")]
    own[0]["parameters"]["ref_fasta"] = "s3://cohort-bucket/ref/S1.fasta"
    submitted = run_cli("submit-batch", "--batch-name", "own-ref", "--default-run-setting", json.dumps(COHORT_DEFAULT),
                        "--batch-run-settings", json.dumps({"inlineSettings": own}))
    assert submitted.exit_code == 0, submitted.output
    partial = json.loads(submitted.stdout)["id"]
    replayed = run_cli("replay", partial, "--set", "ref_fasta=s3://cohort-bucket/ref/other.fasta", "--dry-run",
                       "--allow-drift")
    assert replayed.exit_code == 0, replayed.output
    notes = [n for n in json.loads(replayed.stdout)["notes"] if "--set" in n or "`set`" in n]
    assert len(notes) == 1 and "1 of 2" in notes[0] and "'S1'" in notes[0], notes
    assert "1 of 2" in replayed.stderr


def _submit_file_batch(run_cli, s3_emulator) -> str:
    """submit-batch of s3://cohort-bucket/cohort/settings.json (COHORT_DEFAULT), its runs
    started (the emulator's clock moved on): the batch id."""
    s3_emulator.batch_rate = 100
    submitted = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
                        json.dumps({"s3UriSettings": "s3://cohort-bucket/cohort/settings.json"}))
    assert submitted.exit_code == 0, submitted.output
    s3_emulator.advance(200)
    return json.loads(submitted.stdout)["id"]


def test_a_settings_file_changed_between_the_pin_and_the_services_read_is_said(
        s3_server, s3_emulator, ledger_path, git_repo, run_cli, tmp_path):
    """The service reads an s3UriSettings file when it starts the batch, after runlog has read
    and pinned it. A file rewritten in between (a colleague's script regenerating it) gives
    runs whose settings differ from the record's: `runlog show MEMBER` claims sample_name S1
    for a run GetRun says ran with S1-REWRITTEN, and nothing (submit-batch, refresh, show,
    verify) says the record may not hold what the service read."""
    s3_server.create_bucket(Bucket="cohort-bucket")
    pinned = [cohort_setting("S1")]
    rewritten = [dict(cohort_setting("S1"), parameters={"sample_name": "S1-REWRITTEN",
                                                         "input_cram": "s3://cohort-bucket/crams/S1.cram"})]
    s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json", Body=json.dumps(pinned).encode())
    service = s3_emulator.service
    read = service.read_object

    def rewritten_first(uri: str) -> bytes:  # the file changes just before the service reads it
        s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json", Body=json.dumps(rewritten).encode())
        return read(uri)

    service.read_object = rewritten_first
    batch_id = _submit_file_batch(run_cli, s3_emulator)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output
    (member,) = json.loads(run_cli("log", "--batch", batch_id, "--json").stdout)
    ran_with = omics_client(s3_emulator).get_run(id=member["run_id"])["parameters"]["sample_name"]
    assert ran_with == "S1-REWRITTEN"
    recorded = json.loads(run_cli("show", member["run_id"], "--json").stdout)["record"]["request"]["parameters"]
    assert recorded["sample_name"] == "S1"  # the pinned settings: the record keeps what runlog read
    # refresh says the file is no longer the one pinned, and `show B` says so from then on
    assert f"runlog: warning: batch {batch_id}: settings file s3://cohort-bucket/cohort/settings.json changed " \
           "since submit-batch pinned it" in refreshed.stderr, refreshed.output
    assert f"`runlog refresh {batch_id} --outputs` records each run's parameters" in refreshed.stderr
    shown = run_cli("show", batch_id).stdout
    assert "warning      batch " in shown and "changed since submit-batch pinned it" in shown
    again = run_cli("refresh", batch_id, "--json")  # seen again: said again, observed once
    assert "changed since submit-batch pinned it" in again.stderr
    observed = json.loads(run_cli("show", batch_id, "--json").stdout)["observations"]
    assert [o["source"] for o in observed].count("HeadObject:settings-file") == 1
    # an export of the cohort says it too: the methods paragraph, and a warning as it is written
    exported = run_cli("export", batch_id, "-f", "methods", "-o", str(tmp_path / "methods.md"))
    assert exported.exit_code == 0, exported.output
    assert f"batch {batch_id}: its settings file was found changed after it was pinned" in exported.stderr
    methods = "".join(p.read_text() for p in (tmp_path / "methods.md").rglob("*.md"))
    assert "The run-settings file was found changed after it was pinned" in methods
    assert "which the runs may not have received" in methods


def test_the_methods_paragraph_does_not_call_shared_a_default_every_run_replaces(
        aws_env, ledger_path, git_repo, run_cli, tmp_path):
    """A default setting may hold a parameter (and an outputUri) that every run setting gives
    itself: its value reached none of the runs. Before: the cohort's methods paragraph listed
    it among the "shared parameters" of the default setting (and the outputUri as the batch's),
    a sentence for a paper that no run bears out. Now it lists only what some run got from
    the default."""
    default = json.loads(json.dumps(COHORT_DEFAULT))
    default["parameters"]["sample_name"] = "PLACEHOLDER"
    settings = [dict(cohort_setting(s), outputUri=f"s3://cohort-bucket/out/{s}/") for s in ("S1", "S2")]
    batch_id = submit_settings(run_cli, settings, default, name="own")
    aws_env.batch_rate = 100
    aws_env.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    exported = run_cli("export", batch_id, "-f", "methods", "-o", tmp_path / "methods", "--license", "CC-BY-4.0")
    assert exported.exit_code == 0, exported.output
    text = (tmp_path / "methods" / "methods.md").read_text()
    shared = text.split("(shared parameters ", 1)[1].split(")", 1)[0]
    assert "ref\\_fasta" in shared and "sample\\_name" not in shared and "PLACEHOLDER" not in text, shared
    assert "s3://cohort-bucket/out/`" not in text, text


@pytest.mark.parametrize("bad, told", [
    ({"runSettingId": "S1\x1b[2J"}, "runSettingId"),
    ({"name": "align\x1b]8;;http://evil\x07"}, "name"),
    ({"name": "x" * 129}, "129 characters"),
    ({"priority": 100001}, "priority"),
    ({"runTags": {"k" * 129: "v"}}, "runTags key"),
    ({"outputBucketOwnerId": "12345"}, "outputBucketOwnerId"),
])
def test_a_settings_file_value_the_model_refuses_is_refused_before_sending(
        bad, told, s3_server, s3_emulator, ledger_path, git_repo, run_cli):
    """Inline settings get the model's lengths, patterns and ranges checked before sending
    (exit 2, nothing sent); a settings file's content is never seen by botocore. Before: a
    file whose run setting broke them (a runSettingId or run name with a terminal escape, a
    name of 129 characters, a priority over 100 000) passed `--dry-run` ("every check passed")
    and was sent, to be refused by the service and kept as a failed attempt (exit 1). Now it is
    refused as an inline one is: one line naming the file, the item and the member; nothing
    sent or written."""
    s3_server.create_bucket(Bucket="cohort-bucket")
    settings = [cohort_setting("S0"), {**cohort_setting("S1"), **bad}]
    s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json", Body=json.dumps(settings).encode())
    args = ("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
            json.dumps({"s3UriSettings": "s3://cohort-bucket/cohort/settings.json"}))
    for extra in (("--dry-run",), ()):
        refused = run_cli(*args, *extra)
        assert refused.exit_code == 2, refused.output
        (line,) = refused.stderr.strip().splitlines()
        assert "s3://cohort-bucket/cohort/settings.json item[1]" in line and told in line, line
        assert "\x1b" not in line and "\x07" not in line
    assert not ledger_path.exists() or run_cli("log", "--json").stdout.strip() in ("", "[]")
    assert not [r for r in s3_emulator.requests if r["operation"] == "StartRunBatch"]


def _masked(text: str) -> str:
    """Output with the ids and uuids that differ between two submissions replaced."""
    import re

    text = re.sub(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", "UUID", text)
    return re.sub(r"\b\d{7}\b", "ID", text)


def test_output_text_prints_the_tags_line_as_the_aws_cli_does(aws_env, ledger_path, git_repo, run_cli):
    """`--output text` is the aws CLI's text format: the response's scalars on one line, then
    a line per nested object, its name in capitals. Before: runlog left out the nested objects,
    so `runlog submit-batch ... --tags team=genomics --output text` printed no `TAGS` line
    where `aws omics start-run-batch` prints `TAGS	genomics` (and `runlog submit` the same)."""
    settings = json.dumps({"inlineSettings": [cohort_setting("S1")]})
    common = ["--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings", settings,
              "--tags", "team=genomics,lab=b", "--output", "text"]
    theirs = aws_cli(aws_env, "omics", "start-run-batch", *common)
    ours = run_cli("submit-batch", *common)
    assert theirs.returncode == 0, theirs.stderr
    assert ours.exit_code == 0, ours.output
    assert "TAGS\tb\tgenomics" in theirs.stdout
    assert _masked(ours.stdout) == _masked(theirs.stdout)
    run = ["--workflow-id", "1234567", "--role-arn", COHORT_DEFAULT["roleArn"], "--output-uri", "s3://b/out/",
           "--parameters", json.dumps({**COHORT_DEFAULT["parameters"], **cohort_setting("S1")["parameters"]}),
           "--tags", "team=genomics", "--output", "text"]
    theirs = aws_cli(aws_env, "omics", "start-run", *run)
    ours = run_cli("submit", *run)
    assert theirs.returncode == 0 and ours.exit_code == 0, (theirs.stderr, ours.output)
    assert _masked(ours.stdout) == _masked(theirs.stdout)


def test_diff_of_two_members_shows_their_runs_tags(aws_env, ledger_path, git_repo, run_cli):
    """A member's run is tagged with its effective runTags (the default's with its own). Before:
    `runlog diff M1 M2` compared the StartRun member `tags`, which a member record does not
    have, so two runs of a cohort tagged differently (sample group, consent) were "the same
    configuration" (`--exit-code` 0). Now the tags are compared as they are for single runs."""
    default = {**COHORT_DEFAULT, "runTags": {"project": "cohort"}}
    settings = [dict(cohort_setting("S1"), runTags={"group": "case"}),
                dict(cohort_setting("S2"), runTags={"group": "control"})]
    settings[1]["parameters"] = dict(settings[0]["parameters"])  # the same parameters: only the tags differ
    submitted = run_cli("submit-batch", "--default-run-setting", json.dumps(default), "--batch-run-settings",
                        json.dumps({"inlineSettings": settings}))
    assert submitted.exit_code == 0, submitted.output
    batch_id = json.loads(submitted.stdout)["id"]
    aws_env.batch_rate = 100
    aws_env.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    runs = {m["run_id"] for m in json.loads(run_cli("log", "--batch", batch_id, "--json").stdout)}
    first, second = sorted(runs)
    assert omics_client(aws_env).get_run(id=first)["tags"] == {"project": "cohort", "group": "case"}
    compared = run_cli("diff", first, second, "--json", "--exit-code")
    assert compared.exit_code == 1, compared.output
    changes = [(c["section"], c["path"], c["old"], c["new"]) for c in json.loads(compared.stdout)["changes"]]
    assert ("run settings", "tags.group", "case", "control") in changes, changes


def test_recover_of_a_batch_names_it_a_batch(aws_env, ledger_path, git_repo, run_cli):
    """Before: `runlog recover` of a submit-batch whose answer was lost printed
    `recovered REQUEST_ID: run 8100001 (record …)`, a batch id called a run id (a user then
    ran `runlog show` or `aws omics get-run --id 8100001`). Now it says batch."""
    aws_env.inject("drop", operation="StartRunBatch", phase="after", count=4)
    lost = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
                   json.dumps({"inlineSettings": [cohort_setting("S1")]}))
    assert lost.exit_code == 1, lost.output
    recovered = run_cli("recover")
    assert recovered.exit_code == 0, recovered.output
    (line,) = recovered.stdout.strip().splitlines()
    assert ": batch 8100001 (record " in line, line


def test_an_ambiguous_batch_id_lists_batches_as_batches(aws_env, ledger_path, git_repo, run_cli):
    """Two batch records with one id (an emulator restarted, or two accounts): `runlog show
    8100001` is refused as ambiguous. Before: each candidate was listed as `(run -, …)`. Now as
    `(batch 8100001, …)`."""
    submit_cohort(run_cli, "S1")
    aws_env.reset()  # the emulator starts its batch ids again
    assert submit_cohort(run_cli, "S1") == "8100001"
    shown = run_cli("show", "8100001")
    assert shown.exit_code == 2
    assert shown.stderr.count("(batch 8100001, ") == 2 and "run -" not in shown.stderr, shown.stderr


@pytest.mark.parametrize("then", ["unchanged", "deleted"])
def test_a_settings_file_unchanged_or_gone_since_the_pin_is_not_said_to_have_changed(
        then, s3_server, s3_emulator, ledger_path, git_repo, run_cli):
    """Only a file that is now another (ETag, VersionId) is reported: one still the same, or
    deleted since (a cleanup after the batch started: that says nothing of what the service
    read), gives no warning and no observation."""
    s3_server.create_bucket(Bucket="cohort-bucket")
    s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json",
                         Body=json.dumps([cohort_setting("S1")]).encode())
    batch_id = _submit_file_batch(run_cli, s3_emulator)
    if then == "deleted":
        s3_server.delete_object(Bucket="cohort-bucket", Key="cohort/settings.json")
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0 and "warning" not in refreshed.stderr, refreshed.output
    observed = json.loads(run_cli("show", batch_id, "--json").stdout)["observations"]
    assert "HeadObject:settings-file" not in [o["source"] for o in observed]


def test_a_run_setting_the_service_lists_twice_is_said_by_show(s3_emulator, ledger_path, git_repo, run_cli):
    """ListRunsInBatch naming one runSettingId for two runs (as a faulty or hostile service
    could): both runs are recorded as members (each is a run the service reported), and
    `runlog show B` no longer reads as if nothing were odd: it says which run setting has more
    than one member record, and with which runs."""
    book = s3_emulator.service.batchbook
    item_of = book._member_item

    def twice(batch, position):  # the second run setting's run reported under the first's id
        item = item_of(batch, position)
        if position == 1:
            item["runSettingId"] = batch.settings[0]["runSettingId"]
        return item

    book._member_item = twice
    s3_emulator.batch_rate = 100
    batch_id = submit_cohort(run_cli, "S1", "S2", "S3")
    s3_emulator.advance(200)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output
    assert f"runlog: warning: batch {batch_id}: 1 run setting(s) have more than one member record (S1: runs " \
        in refreshed.stderr
    assert run_cli("refresh", batch_id).exit_code == 0  # nothing new: not observed again
    shown = run_cli("show", batch_id).stdout
    assert "3 asked, 3 member record(s)" in shown  # S1 twice, S2 never: the counts alone hide it
    facts = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]
    assert facts["repeated_run_settings"]["count"] == 1, facts
    [repeated] = facts["repeated_run_settings"]["first"]
    assert repeated["run_setting_id"] == "S1" and len(repeated["run_ids"]) == 2
    assert f"1 run setting(s) have more than one member record (S1: runs {', '.join(repeated['run_ids'])})" in shown
    observed = json.loads(run_cli("show", batch_id, "--json").stdout)["observations"]
    assert [o["source"] for o in observed].count("ListRunsInBatch:repeated") == 1


@pytest.mark.parametrize("body", [{}, [], {"count": "many", "first": "x"}, {"uri": 1, "pinned": [], "now": None},
                                  {"count": 1, "first": [{"run_setting_id": "S1", "run_ids": [1, None]}]}])
def test_a_batch_observation_of_another_shape_is_left_out_not_a_crash(body, s3_emulator, ledger_path, git_repo,
                                                                      run_cli, tmp_path):
    """The observations `show B`, `export B` and refresh read warnings from (a settings file
    changed, run settings listed twice) are anyone's JSON once pulled from a team ledger: one
    of another shape is left out, and each command still answers."""
    from runlog.ledger import Ledger

    s3_emulator.batch_rate = 100
    batch_id = submit_cohort(run_cli, "S1", "S2")
    s3_emulator.advance(200)
    with Ledger.open(ledger_path, create=False) as ledger:
        (batch,) = ledger.entries(where="kind = 'batch'")
        for source in ("HeadObject:settings-file", "ListRunsInBatch:repeated"):
            ledger.observe(batch.address, source, body, run_uuid=None, status=None)
    assert run_cli("refresh", batch_id).exit_code == 0
    shown = run_cli("show", batch_id)
    assert shown.exit_code == 0, shown.output
    assert "pinned it" not in shown.stdout and "more than one member record" not in shown.stdout
    facts = json.loads(run_cli("show", batch_id, "--json").stdout)["batch"]
    assert facts["settings_file_changed"] == [] and facts["repeated_run_settings"]["count"] == 0
    exported = run_cli("export", batch_id, "-f", "methods", "-o", str(tmp_path / "m"))
    assert exported.exit_code == 0 and "settings file was found changed" not in exported.stderr, exported.output


def test_the_same_repeated_run_settings_listed_in_another_order_are_observed_once(s3_emulator, ledger_path, git_repo,
                                                                                   run_cli):
    """Two run settings each listed for two runs, and the service's listing order reversed on
    the next refresh: what refresh found is the same, so it is observed once, not once per
    order (the first run settings named are taken by id, their runs by id)."""
    book = s3_emulator.service.batchbook
    item_of = book._member_item
    order = {"reversed": False}

    def twice(batch, position):  # S2's run listed under S1, S5's under S4; the order flipped at will
        if order["reversed"]:
            position = len(batch.settings) - 1 - position
        item = item_of(batch, position)
        if position in (1, 4):
            item["runSettingId"] = batch.settings[position - 1]["runSettingId"]
        return item

    book._member_item = twice
    s3_emulator.batch_rate = 100
    batch_id = submit_cohort(run_cli, "S1", "S2", "S3", "S4", "S5", "S6")
    s3_emulator.advance(200)
    assert run_cli("refresh", batch_id).exit_code == 0
    order["reversed"] = True
    again = run_cli("refresh", batch_id)
    assert again.exit_code == 0, again.output
    facts = json.loads(run_cli("show", batch_id, "--json").stdout)
    assert [r["run_setting_id"] for r in facts["batch"]["repeated_run_settings"]["first"]] == ["S1", "S4"]
    assert [o["source"] for o in facts["observations"]].count("ListRunsInBatch:repeated") == 1
