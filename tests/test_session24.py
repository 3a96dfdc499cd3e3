"""Session 24's changes, each as a user sees it through the CLI against the emulator."""

from __future__ import annotations

import json
import uuid

import pytest

from helpers import REMOTE, SEED_1, pull_json, push_json, pushed_cohort, record_key, submit_settings
from runlog import record as rec
from runlog.ledger import INDEX_COLUMNS, Ledger, index_columns


def _forged(body: str, change) -> tuple[str, bytes]:
    """A record as someone who may write the team bucket would rewrite it: the same run or
    batch (the service's answer kept), another requestId, `change` applied; schema-valid, its
    fingerprint recomputed. (address, canonical JSON)."""
    forged = json.loads(body)
    forged["request"]["requestId"] = str(uuid.uuid4())
    change(forged)
    forged["fingerprint"] = rec.fingerprint(forged)
    data = rec.canonical_json(forged)
    return rec.sha256_hex(data), data


def _other_input(record: dict) -> None:
    record["request"]["batchRunSettings"]["inlineSettings"][0]["parameters"]["input_cram"] = \
        "s3://cohort-bucket/crams/FORGED.cram"


def _cram_setting(n: int, uri: str) -> dict:
    """Run setting S<n>, whose input CRAM is `uri`."""
    return {"runSettingId": f"S{n}", "parameters": {"sample_name": f"s{n}", "input_cram": uri}}


def _addresses(path) -> set[str]:
    with Ledger.open(path, create=False) as ledger:
        return ledger.addresses()


def test_pull_refuses_a_second_record_of_one_batch(aws_env, bucket, ledger_path, git_repo, run_cli, tmp_path):
    """A forged "submitted" record of a batch another record started (same batch id, uuid and
    ARN, another requestId and cohort) was pulled and verified, and `refresh` then made the
    batch's runs members of it too. One StartRunBatch answer is one request: pull now refuses
    it, naming the record that started the batch."""
    batch, _ = pushed_cohort(run_cli, aws_env, ledger_path, "S1", "S2")
    address, body = _forged(batch.body, _other_input)
    bucket.put_object(Bucket="lab-provenance", Key=record_key(address), Body=body)

    # the ledger that started the batch keeps its record and refuses the forged one
    code, pulled = pull_json(run_cli, ledger_path)
    assert code == 1, pulled
    (why,) = [item["why"] for item in pulled["refused"] if item["key"] == record_key(address)]
    assert f"which record {batch.address} (in the local ledger) started" in why, why
    assert "StartRunBatch" in why
    assert address not in _addresses(ledger_path)

    # a new ledger receives both in one pull: it keeps one of them (the older, then the lower
    # address, as every ledger does), names the other, and `show B` is not ambiguous
    other = tmp_path / "other.db"
    code, pulled = pull_json(run_cli, other)
    assert code == 1, pulled
    kept, left = sorted([(batch.created, batch.address), (json.loads(body)["created"], address)])
    held = _addresses(other)
    assert kept[1] in held and left[1] not in held
    assert any(left[1] in item["why"] and "one of the two records was not written by runlog" in item["why"]
               for item in pulled["refused"]), pulled["refused"]
    shown = run_cli("--ledger", other, "show", batch.batch_id, "--json")
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.stdout)["address"] == kept[1]
    assert run_cli("--ledger", other, "verify", "--no-remote").exit_code == 0


def test_pull_refuses_a_second_record_of_one_run(aws_env, bucket, ledger_path, git_repo, run_cli, tmp_path):
    """The same for a single run: a second "submitted" record of a run (another requestId and
    parameters) is refused, and the ledger that pulls it keeps the one it holds."""
    submitted = run_cli(*SEED_1, "--endpoint-url", aws_env.endpoint_url)
    assert submitted.exit_code == 0, submitted.output
    run_id = json.loads(submitted.stdout)["id"]
    push_json(run_cli, ledger_path, "--objects")
    with Ledger.open(ledger_path, create=False) as ledger:
        (original,) = ledger.entries()

    def other_parameters(record: dict) -> None:
        record["request"]["parameters"] = {"forged": "s3://elsewhere/in.fastq"}

    address, body = _forged(original.body, other_parameters)
    bucket.put_object(Bucket="lab-provenance", Key=record_key(address), Body=body)
    code, pulled = pull_json(run_cli, ledger_path)
    assert code == 1, pulled
    (why,) = [item["why"] for item in pulled["refused"] if item["key"] == record_key(address)]
    assert f"run uuid {original.run_uuid}" in why and "StartRun answer" in why, why
    assert address not in _addresses(ledger_path)
    shown = run_cli("show", run_id, "--json")
    assert shown.exit_code == 0 and json.loads(shown.stdout)["address"] == original.address


def test_verify_names_a_second_record_of_one_run_in_the_file(aws_env, ledger_path, git_repo, run_cli):
    """A second starter written into the ledger file (through the library, so that its chain
    and seal are sound) is named by whole-ledger `verify` and by `verify REF`, exit 1."""
    submitted = run_cli(*SEED_1, "--endpoint-url", aws_env.endpoint_url)
    assert submitted.exit_code == 0, submitted.output
    with Ledger.open(ledger_path, create=False) as ledger:
        (original,) = ledger.entries()
    assert run_cli("verify").exit_code == 0

    def other_name(record: dict) -> None:
        record["request"]["name"] = "forged"

    address, body = _forged(original.body, other_name)
    _written_into_the_file(ledger_path, body)

    whole = run_cli("verify", "--json")
    assert whole.exit_code == 1, whole.output
    problems = json.loads(whole.stdout)["problems"]
    assert [problem["kind"] for problem in problems] == ["started"], problems
    assert f"record #2: it says it started run uuid {original.run_uuid}" in problems[0]["message"]
    assert f"which record {original.address} (#1) started" in problems[0]["message"]
    one = run_cli("verify", address[:12])
    assert one.exit_code == 1 and "it says it started run uuid" in one.output, one.output


@pytest.mark.parametrize("forge", ["run", "run and batch"])
def test_streamed_pull_refuses_second_records_from_a_pack(aws_env, bucket, ledger_path, git_repo, run_cli,
                                                           tmp_path, forge, monkeypatch):
    """Through packs (a pull that appends while they arrive): ledger A pushes a run and a
    batch it started; ledger B, a copy of A's file with a later second record of each written
    into it, pushes those in a pack of its own. A new ledger keeps A's records and refuses B's
    second ones; A refuses them too. (A refused batch record makes the streamed inserts start
    again from what pull kept: "run" alone is refused while the pack's records are streamed.)"""
    import sqlite3

    submitted = run_cli(*SEED_1, "--endpoint-url", aws_env.endpoint_url)
    assert submitted.exit_code == 0, submitted.output
    batch, _ = pushed_cohort(run_cli, aws_env, ledger_path, "S1", "S2")
    with Ledger.open(ledger_path, create=False) as ledger:
        (run,) = ledger.entries(where="kind = 'submit'")

    def later(change):
        def apply(record: dict) -> None:
            record["created"] = "2099-01-01T00:00:00.000000Z"
            change(record)
        return apply

    def other_name(record: dict) -> None:
        record["request"]["name"] = "forged"

    b = tmp_path / "b.db"
    with sqlite3.connect(ledger_path) as source, sqlite3.connect(b) as copy:  # with what its WAL holds
        source.backup(copy)
    forged = [_forged(run.body, later(other_name))]
    if forge == "run and batch":
        forged.append(_forged(batch.body, later(_other_input)))
    with Ledger.open(b, create=False) as ledger:
        rows = [(address, body, tuple(index_columns(json.loads(body))[name] for name in INDEX_COLUMNS))
                for address, body in forged]
        assert ledger.add_received_records(rows) == len(forged)
    import runlog.sync

    packed = f"{REMOTE}-packed"  # all of B in packs: a new ledger pulls it while the packs arrive
    with monkeypatch.context() as before_the_check:  # B pushes as a runlog without push's start check would
        before_the_check.setattr(runlog.sync, "_second_starts", lambda ledger, records: [])
        push_json(run_cli, b)
        assert run_cli("--ledger", b, "push", packed).exit_code == 0

    for path, remote in ((tmp_path / "c.db", REMOTE), (ledger_path, REMOTE), (tmp_path / "d.db", packed)):
        pulled_now = run_cli("--ledger", path, "pull", remote, "--json")
        code, pulled = pulled_now.exit_code, json.loads(pulled_now.stdout)
        assert code == 1, pulled
        held = _addresses(path)
        assert {run.address, batch.address} <= held and not {address for address, _ in forged} & held
        whys = " ".join(item["why"] for item in pulled["refused"])
        assert f"which record {run.address}" in whys, whys
        assert (f"which record {batch.address}" in whys) == (forge == "run and batch"), whys
        assert run_cli("--ledger", path, "verify", "--no-remote").exit_code == 0


@pytest.mark.parametrize("fail", [True, False], ids=["failed: GetRun reported it", "completed: no GetRun"])
def test_export_counts_a_run_given_to_two_run_settings_once(aws_env, ledger_path, git_repo, run_cli, tmp_path, fail):
    """A ListRunsInBatch that gave one run to two run settings (a service fault or a hostile
    answer; refresh warns about it): the exports counted the run twice ("2 FAILED",
    "OUT_OF_MEMORY (2)"), the crate's batch action listed it twice, and its one action held
    the parameters of whichever member came last. Each format now counts it once and says
    that it was listed for both settings. What it read is stated only as GetRun reported it
    (refresh asks GetRun of a failed run): else no format states inputs for it."""
    import csv
    import subprocess

    from helpers import checker, shared_run_cohort

    batch_id, refreshed = shared_run_cohort(aws_env, run_cli, fail=fail)
    assert refreshed.exit_code == 0
    out = tmp_path / "x"
    result = run_cli("export", batch_id, "-f", "all", "-o", out, "--license", "CC-BY-4.0")
    assert result.exit_code == 0, result.output

    rows = list(csv.DictReader((out / "methods" / "samples.csv").open()))
    by_setting = {row["run_setting_id"]: row for row in rows}
    run_id = by_setting["S1"]["run_id"]
    assert by_setting["S2"]["run_id"] == run_id and by_setting["S3"]["run_id"] != run_id
    said = "what it ran with is what GetRun reported for it" if fail else "which of their settings it ran with is not"
    for setting in ("S1", "S2"):
        assert "ListRunsInBatch gave this run to run settings S1, S2" in by_setting[setting]["settings_source"]
        assert said in by_setting[setting]["settings_source"], by_setting[setting]
    assert by_setting["S3"]["settings_source"] == "as submitted"

    methods = (out / "methods" / "methods.md").read_text()
    counted = "1 COMPLETED, 1 FAILED" if fail else "2 COMPLETED"
    assert f"3 run setting(s), 2 started as runs ({counted})" in methods, methods
    assert f": 2 run(s) ({counted}" in methods, methods  # the workflow's sentence
    assert ("OUT\\_OF\\_MEMORY (1)" in methods) == fail and f"run {run_id}: S1, S2" in methods, methods
    parameters = list(csv.DictReader((out / "methods" / "parameters.csv").open()))
    stated = [row["value"] for row in parameters if row["run_id"] == run_id and row["parameter"] == "input_cram"]
    assert stated == (["s3://cohort-bucket/crams/S1.cram"] if fail else []), stated  # once, as GetRun said

    crate = json.loads((out / "ro-crate-metadata.json").read_text())
    graph = {entity["@id"]: entity for entity in crate["@graph"]}
    assert len(graph) == len(crate["@graph"])
    batch_action = next(e for e in crate["@graph"] if "runBatch" in str(e.get("identifier")))
    results = [item["@id"] for item in batch_action["result"]]
    assert len(results) == len(set(results)) == 2, results
    counts = {graph[item["@id"]]["name"]: graph[item["@id"]]["value"] for item in batch_action["additionalProperty"]}
    assert counts["runs started"] == "2" and counts.get("runs FAILED") == ("1" if fail else None), counts
    (shared_action,) = [graph[i] for i in results if run_id in str(graph[i].get("identifier"))]
    assert "run settings S1, S2" in shared_action["description"]
    read = [graph[o["@id"]].get("name") and o["@id"] for o in shared_action.get("object", [])]
    assert ("s3://cohort-bucket/crams/S1.cram" in read) == fail and "s3://cohort-bucket/crams/S2.cram" not in read
    assert fail or "object" not in shared_action
    mentions = [item["@id"] for item in graph["./"]["mentions"]]
    assert len(mentions) == len(set(mentions))

    citation = (out / "methods" / "CITATION.cff").read_text()
    assert citation.count(f'"urn:uuid:{by_setting["S1"]["run_uuid"]}"') == 1, citation  # CFF: unique identifiers
    for command in ([checker("cffconvert"), "--validate", "-i", str(out / "methods" / "CITATION.cff")],
                    [checker("runcrate"), "report", str(out)]):
        checked = subprocess.run(command, capture_output=True, text=True)
        assert checked.returncode == 0, (command, checked.stdout[-2000:], checked.stderr[-2000:])

    prov = json.loads((out / "prov.json").read_text())
    activities = [a for a in prov["activity"].values()
                  for a in (a if isinstance(a, list) else [a]) if a.get("runlog:runId") == run_id]
    assert len(activities) == 1 and activities[0]["runlog:runSettingId"] == "S1, S2", activities
    used = [u for u in prov.get("used", {}).values() if u["prov:activity"] == f"urn_uuid:{by_setting['S1']['run_uuid']}"]
    assert any("input_cram" in str(u.get("prov:role", "")) for u in used) == fail, used
    (batch_activity,) = [a for a in prov["activity"].values() if isinstance(a, dict) and "runlog:runSettings" in a]
    started = batch_activity["runlog:runsStarted"]
    assert str(started["$"] if isinstance(started, dict) else started) == "2", batch_activity


def test_an_s3_key_that_reads_as_a_qualified_identifier_keeps_its_own(s3_emulator, s3_server, ledger_path, git_repo,
                                                                       run_cli, tmp_path):
    """S3 keys may hold `#` and `?`. An object whose key is `crams/1.cram#etag=<ETag>` got the
    very identifier runlog gives that ETag's version of `crams/1.cram` when two versions of it
    are exported: the crate described one object for both, with the other's ETag. Such a key
    is now percent-encoded in its identifier, as a URI needs it, and keeps its own entity."""
    bucket = "cohort-bucket"
    s3_server.create_bucket(Bucket=bucket)
    for key in ("ref/genome.dict", "ref/genome.fasta", "ref/genome.fasta.fai", "crams/1.cram"):
        s3_server.put_object(Bucket=bucket, Key=key, Body=b"v1 " + key.encode())

    def submit(*inputs: str) -> str:
        return submit_settings(run_cli, [_cram_setting(n, uri) for n, uri in enumerate(inputs, start=1)])

    first = submit(f"s3://{bucket}/crams/1.cram")
    etag = s3_server.head_object(Bucket=bucket, Key="crams/1.cram")["ETag"].strip('"')
    s3_server.put_object(Bucket=bucket, Key="crams/1.cram", Body=b"v2, other bytes")  # overwritten, unversioned
    odd_key = f"crams/1.cram#etag={etag}"
    s3_server.put_object(Bucket=bucket, Key=odd_key, Body=b"another object")
    odd_etag = s3_server.head_object(Bucket=bucket, Key=odd_key)["ETag"].strip('"')
    second = submit(f"s3://{bucket}/crams/1.cram", f"s3://{bucket}/{odd_key}")
    s3_emulator.batch_rate = 100
    s3_emulator.advance(300)
    for batch_id in (first, second):
        assert run_cli("refresh", batch_id).exit_code == 0
    out = tmp_path / "x"
    exported = run_cli("export", first, second, "-f", "all", "-o", out)
    assert exported.exit_code == 0, exported.output

    crate = json.loads((out / "ro-crate-metadata.json").read_text())
    graph = {entity["@id"]: entity for entity in crate["@graph"]}
    assert len(graph) == len(crate["@graph"])
    odd = graph[f"s3://{bucket}/crams/1.cram%23etag={etag}"]
    assert odd["etag"] == odd_etag and "sameAs" not in odd, odd  # one version of it: its URI identifies it
    assert graph[f"s3://{bucket}/crams/1.cram#etag={etag}"]["etag"] == etag
    s2 = next(e for e in crate["@graph"] if e.get("@type") == "CreateAction"
              and f"run setting S2 of batch {second}" in e.get("description", ""))
    assert [graph[o["@id"]].get("etag") for o in s2["object"] if graph[o["@id"]].get("name") == "input_cram"] \
        == [odd_etag]
    prov = json.loads((out / "prov.json").read_text())
    tagged = {name: entity.get("runlog:etag") for name, entity in prov["entity"].items() if "1.cram" in name}
    assert sorted(value for value in tagged.values() if value) == sorted([etag, odd_etag, *(
        [s3_server.head_object(Bucket=bucket, Key="crams/1.cram")["ETag"].strip('"')])]), tagged


def _written_into_the_file(ledger_path, body: bytes) -> None:
    """A record written into the ledger file through the library (its chain and seal sound)."""
    columns = index_columns(json.loads(body))
    with Ledger.open(ledger_path, create=False) as ledger:
        address = rec.sha256_hex(body)
        assert ledger.add_received_records([(address, body, tuple(columns[name] for name in INDEX_COLUMNS))]) == 1


@pytest.mark.parametrize("form", [str.upper, lambda uuid: uuid + " "], ids=["upper case", "trailing space"])
def test_a_second_start_in_another_form_of_the_uuid_is_refused(aws_env, bucket, ledger_path, git_repo, run_cli,
                                                               form):
    """The uuid written in capitals, or with a space, named the same batch to a reader and
    escaped the rule (compared as text). HealthOmics writes uuids in lower case without white
    space: pull refuses a start whose uuid is in another form, and verify names it."""
    batch, _ = pushed_cohort(run_cli, aws_env, ledger_path, "S1", "S2")

    def change(record: dict) -> None:
        _other_input(record)
        record["outcome"]["response"]["uuid"] = form(record["outcome"]["response"]["uuid"])

    address, body = _forged(batch.body, change)
    bucket.put_object(Bucket="lab-provenance", Key=record_key(address), Body=body)
    code, pulled = pull_json(run_cli, ledger_path)
    assert code == 1 and address not in _addresses(ledger_path), pulled
    (why,) = [item["why"] for item in pulled["refused"] if item["key"] == record_key(address)]
    assert "is not as HealthOmics writes one (lower case, no white space)" in why, why

    _written_into_the_file(ledger_path, body)
    for args in (["verify", "--no-remote", "--json"], ["verify", "--no-remote", "--json", address[:12]]):
        verified = run_cli(*args)
        assert verified.exit_code == 1, verified.output
        assert [p["kind"] for p in json.loads(verified.stdout)["problems"]] == ["started"], verified.stdout


def test_whole_ledger_verify_finds_a_batch_uuid_under_another_batch_id(aws_env, bucket, ledger_path, git_repo,
                                                                        run_cli):
    """A second start of one batch uuid written into the file under another batch id was
    named by `verify REF` but not by whole-ledger `verify`, which looked only at batch ids held
    twice. Both now go by the uuid, as pull does."""
    batch, _ = pushed_cohort(run_cli, aws_env, ledger_path, "S1", "S2")

    def change(record: dict) -> None:
        _other_input(record)
        response = record["outcome"]["response"]
        response["arn"] = response["arn"].replace(response["id"], "7777777")
        response["id"] = "7777777"

    address, body = _forged(batch.body, change)
    _written_into_the_file(ledger_path, body)
    for args in (["verify", "--no-remote"], ["verify", "--no-remote", address[:12]]):
        verified = run_cli(*args)
        assert verified.exit_code == 1 and f"which record {batch.address} (#" in verified.output, verified.output


@pytest.mark.parametrize("key", ["crams/my sample.cram", "crams/a|b.cram", "crams/ünï.cram"])
def test_an_s3_key_with_characters_a_uri_cannot_hold_gets_a_uri(s3_emulator, s3_server, ledger_path, git_repo,
                                                                 run_cli, tmp_path, key):
    """A key with a space, `|` or a letter outside ASCII was written as it is into the crate's
    `@id`, which is then no URI. Such characters are now percent-encoded in identifiers."""
    import re

    uri_chars = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:[A-Za-z0-9\-._~:/?#\[\]@!$&'()*+,;=%]*$")  # RFC 3986
    bucket = "cohort-bucket"
    s3_server.create_bucket(Bucket=bucket)
    for name in ("ref/genome.dict", "ref/genome.fasta", "ref/genome.fasta.fai", key):
        s3_server.put_object(Bucket=bucket, Key=name, Body=b"v1 " + name.encode())
    batch_id = submit_settings(run_cli, [_cram_setting(1, f"s3://{bucket}/{key}")])
    s3_emulator.batch_rate = 100
    s3_emulator.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    out = tmp_path / "x"
    exported = run_cli("export", batch_id, "-f", "all", "-o", out, "--license", "CC-BY-4.0")
    assert exported.exit_code == 0, exported.output
    crate = json.loads((out / "ro-crate-metadata.json").read_text())
    ids = [entity["@id"] for entity in crate["@graph"] if entity["@id"].startswith("s3://")]
    assert ids and not [i for i in ids if not uri_chars.match(i)], ids
    encoded = [i for i in ids if "crams/" in i]
    assert len(encoded) == 1 and encoded[0] != f"s3://{bucket}/{key}", ids
    data = (out / "methods" / "data.csv").read_text()
    assert f"s3://{bucket}/{key}" in data and encoded[0] in data  # the key as written, and its identifier


def test_push_does_not_send_a_second_start_written_into_the_file(aws_env, bucket, ledger_path, git_repo, run_cli):
    """A second start written into the ledger file is named by verify and refused by every
    pull; push now refuses to send it too (exit 2, named, nothing of it on the remote), as it
    refuses any record verify's checks fail."""
    submitted = run_cli(*SEED_1, "--endpoint-url", aws_env.endpoint_url)
    assert submitted.exit_code == 0, submitted.output
    push_json(run_cli, ledger_path)
    with Ledger.open(ledger_path, create=False) as ledger:
        (original,) = ledger.entries()

    def other_name(record: dict) -> None:
        record["request"]["name"] = "forged"

    address, body = _forged(original.body, other_name)
    _written_into_the_file(ledger_path, body)
    pushed = run_cli("push", REMOTE)
    assert pushed.exit_code == 2 and pushed.stderr.startswith("runlog: error: refusing to push: "), pushed.output
    assert f"it says it started run uuid {original.run_uuid}" in pushed.stderr and address in pushed.stderr, \
        pushed.stderr
    code, pulled = pull_json(run_cli, ledger_path.parent / "other.db")
    assert code == 0 and address not in _addresses(ledger_path.parent / "other.db"), pulled
