"""`runlog diff B1 B2` from per-run digests (issue 14, migration m009: `batch_settings`):
written with each batch record, backfilled by the migration, checked by verify. The diff
finds the runs that differ from the digests and decodes only those; what it prints must be
exactly what decoding both cohorts prints (the path taken when a batch has no digests), so
each test here compares the two on the same ledger. The speed is measured by
`benchmarks/run.py --batch-members N`."""

from __future__ import annotations

import json
import sqlite3
import uuid

import pytest

from helpers import tamper
from runlog import cohortindex
from runlog.batchread import indexed_differences, run_differences
from runlog.ledger import Ledger
from runlog.migrations import MIGRATIONS, m009_batch_settings

ROLE = "arn:aws:iam::123456789012:role/OmicsRole"
BUCKET = "lab-cohort"
DEFAULT = {"workflowId": "1234567", "roleArn": ROLE, "outputUri": f"s3://{BUCKET}/out/",
           "parameters": {"ref_fasta": f"s3://{BUCKET}/ref/genome.fasta", "min_qual": 20}}


def setting(sample: str, cram: str = "crams", **more) -> dict:
    return {"runSettingId": sample, "name": f"align-{sample}",
            "parameters": {"sample_name": sample, "input_cram": f"s3://{BUCKET}/{cram}/{sample}.cram", **more}}


def cohort(count: int) -> list[dict]:
    return [setting(f"S{i:04d}") for i in range(count)]


def add_batch(ledger: Ledger, settings: list[dict], *, default: dict | None = None, inputs: dict | None = None,
              inline: bool = False, name: str = "cohort") -> str:
    """A submitted batch record written as submit-batch writes it (intent, then record):
    its run settings in a settings file's pinned content, or inline. Returns its batch id."""
    from runlog import record as rec
    from runlog.aws import AwsSettings
    from runlog.batch import PARAMETERS
    from runlog.startrun import StartRunRequest
    from runlog.submit import make_intent

    uri = f"s3://{BUCKET}/{name}/settings.json"
    content = rec.canonical_json(settings)
    request = {"batchName": name, "requestId": str(uuid.uuid4()), "defaultRunSetting": default or DEFAULT,
               "batchRunSettings": {"inlineSettings": settings} if inline else {"s3UriSettings": uri}}
    section: dict = {"runs": len(settings),
                     "run_setting_ids_sha256": rec.sha256_hex(rec.canonical_json([s["runSettingId"] for s in settings]))}
    if not inline:
        section["settings_file"] = {"uri": uri, "etag": rec.sha256_hex(content)[:32], "version_id": None,
                                    "size": len(content), "sha256": rec.sha256_hex(content), "content": settings}
    extra: dict = {"batch": section}
    if inputs is not None:
        extra["resolution"] = {"workflow": {"id": "1234567"}, "inputs": inputs}
    git = {"state": "clean", "commit": "a" * 40, "branch": "main", "remote": None, "workdir": ".",
           "diff_sha256": None, "untracked": [], "untracked_sha256": None}
    intent = make_intent(StartRunRequest(request=request, parameters=dict(PARAMETERS)), kind="batch",
                         settings=AwsSettings(None, "us-west-2", None), git=git, caller={"unknown": "test"},
                         warnings=[], extra=extra)
    ledger.add_attempt(intent)
    batch_id = str(uuid.uuid4().int % 9_000_000 + 1_000_000)
    ledger.complete(intent, {"status": "submitted", "response": {
        "id": batch_id, "arn": f"arn:aws:omics:us-west-2:123456789012:runBatch/{batch_id}",
        "uuid": str(uuid.uuid4()), "status": "PENDING", "tags": {}}})
    return batch_id


def seq_of(path, batch_id: str) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT seq FROM records WHERE kind = 'batch' AND batch_id = ?", (batch_id,)).fetchone()[0]
    finally:
        conn.close()


def rows_of(path, batch_id: str) -> list[tuple]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT bucket, digest, runs FROM batch_settings WHERE batch = (SELECT seq FROM records "
                            "WHERE batch_id = ? AND kind = 'batch') ORDER BY bucket", (batch_id,)).fetchall()
    finally:
        conn.close()


def both_ways(run_cli, path, pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """For each pair, `diff A B` and `diff A B --json` as printed from the digests, then the
    same once the digests are gone (the diff decodes both cohorts, as it did before m009):
    asserts they are the same and returns the outputs (text, json) from the digests."""
    def outputs() -> list[tuple[str, str]]:
        found = []
        for a, b in pairs:
            text, as_json = run_cli("diff", a, b), run_cli("diff", a, b, "--json")
            assert text.exit_code == 0 and as_json.exit_code == 0, text.output + as_json.output
            found.append((text.stdout, as_json.stdout))
        return found

    with Ledger.open(path, readonly=True) as ledger:
        for a, b in pairs:  # the digests are there and answer: the records are not decoded
            seq_a, seq_b = seq_of(path, a), seq_of(path, b)
            assert indexed_differences(ledger, seq_a, seq_b) is not None
    from_digests = outputs()
    tamper(path, "DELETE FROM batch_settings")
    decoded = outputs()
    assert from_digests == decoded
    return from_digests


def test_diff_from_digests_prints_what_decoding_both_cohorts_prints(ledger_path, run_cli):
    before = cohort(300)
    before[7]["parameters"]["depth"] = 1  # 1.0 below: another request (and fingerprint), a type change as for runs
    before.append(setting("é"))  # composed; its look-alike (e + combining accent) is added below
    before.append(setting("S0005 "))  # trailing space: not S0005
    after = [dict(s, parameters=dict(s["parameters"])) for s in before[3:]]  # three runs removed
    after += [setting("N0001"), setting("e\u0301"), setting("δείγμα-1")]  # three added, one a look-alike
    after[10]["parameters"]["input_cram"] = f"s3://{BUCKET}/crams-v2/S0013.cram"  # changed
    after[20]["parameters"]["min_qual"] = "30"  # added, a string
    after[4]["parameters"]["depth"] = 1.0
    after[30]["name"] = None  # type changed
    del after[40]["name"]  # removed
    after[50]["parameters"]["nested"] = {"a": [1, 2, {"b": "ü"}]}
    after.reverse()  # order alone changes nothing
    default = {**DEFAULT, "parameters": {**DEFAULT["parameters"], "min_qual": 30}}
    inputs_a = {f"s3://{BUCKET}/ref/genome.fasta": {"kind": "s3-object", "etag": "e1", "size": 10}}
    inputs_b = {f"s3://{BUCKET}/ref/genome.fasta": {"kind": "s3-object", "etag": "e2", "size": 10}}
    with Ledger.open(ledger_path) as ledger:
        first = add_batch(ledger, before, inputs=inputs_a, name="first")
        second = add_batch(ledger, after, default=default, inputs=inputs_b, name="second")
        same = add_batch(ledger, before, default=default, name="first")  # the same settings file's bytes
    assert len(rows_of(ledger_path, first)) > 200 and len(rows_of(ledger_path, second)) > 200
    (text, as_json), (back, _), (_, same_json) = both_ways(
        run_cli, ledger_path, [(first, second), (second, first), (first, same)])
    lines = text.splitlines()
    for expected in ("- S0000", "- S0001", "- S0002", "+ N0001", "+ e\u0301", "+ δείγμα-1",
                     "~ parameters.min_qual", "~ S0013.parameters.input_cram", "+ S0023.parameters.min_qual",
                     "~ S0033.name", "- S0043.name", "+ S0053.parameters.nested.a[0]",
                     "~ s3://lab-cohort/ref/genome.fasta.etag", "~ S0007.parameters.depth"):
        assert any(line.startswith(expected) for line in lines), (expected, text)
    assert "- S0005 " not in text and "+ é " not in text
    assert any(line.startswith("~ S0007.parameters.depth") and line.endswith("1 -> 1.0 (type changed)") for line in lines)
    changes = json.loads(as_json)["changes"]
    assert sum(c["section"] == "runs" for c in changes) == 6
    assert [c["path"] for c in changes if c["section"] == "runs"][:3] == ["S0000", "S0001", "S0002"]
    assert next(c for c in changes if c["path"] == "S0033.name")["kind"] == "type_changed"
    assert "+ S0000" in back and "- N0001" in back
    assert not any(c["section"] in ("runs", "run settings") for c in json.loads(same_json)["changes"])


def test_a_runsettingid_given_twice_keeps_its_first_place_and_last_setting(ledger_path, run_cli):
    twice = cohort(50)
    twice.insert(10, setting("S0040", cram="early"))  # S0040 first here, then its own place, last value
    twice.append(setting("S0003", cram="late"))
    other = cohort(52)
    with Ledger.open(ledger_path) as ledger:
        a = add_batch(ledger, twice, name="twice")
        b = add_batch(ledger, other, name="other")
    runs = {json.loads(r[2])[0][0]: json.loads(r[2]) for r in rows_of(ledger_path, a)}
    assert sum(len(v) for v in runs.values()) == 50  # one row per runSettingId
    [(text, as_json), (back, _)] = both_ways(run_cli, ledger_path, [(a, b), (b, a)])
    assert "~ S0003.parameters.input_cram" in text and "S0040" not in text
    assert [c["path"] for c in json.loads(as_json)["changes"] if c["section"] == "runs"] == ["S0050", "S0051"]


def test_inline_settings_and_settings_with_separators_inside_values(ledger_path, run_cli):
    odd = cohort(20)
    odd[3]["parameters"]["note"] = 'a "},{" inside a value'
    odd[4]["parameters"]["note"] = "},{"
    changed = [dict(s, parameters=dict(s["parameters"])) for s in odd]
    changed[4]["parameters"]["note"] = "}, {"
    with Ledger.open(ledger_path) as ledger:
        a = add_batch(ledger, odd, name="odd")
        b = add_batch(ledger, changed, name="changed")
        c = add_batch(ledger, odd[:5], inline=True, name="inline")
        d = add_batch(ledger, changed[2:6], inline=True, name="inline")
    assert rows_of(ledger_path, a) and rows_of(ledger_path, c)
    [(text, _), (inline_text, _), (mixed, _)] = both_ways(run_cli, ledger_path, [(a, b), (c, d), (a, d)])
    assert '~ S0004.parameters.note' in text and "S0003" not in text
    assert "- S0000" in inline_text and "+ S0005" in inline_text and "~ S0004.parameters.note" in inline_text
    assert "- S0019" in mixed


def test_cohorts_that_differ_everywhere_are_decoded_whole(ledger_path, run_cli):
    with Ledger.open(ledger_path) as ledger:
        a = add_batch(ledger, cohort(600), name="a")
        b = add_batch(ledger, [setting(f"T{i:04d}") for i in range(600)], name="b")
        assert ledger.setting_differences(seq_of(ledger_path, a), seq_of(ledger_path, b), most=100) is None
    result = run_cli("diff", a, b, "--json")
    assert result.exit_code == 0
    runs = [c for c in json.loads(result.stdout)["changes"] if c["section"] == "runs"]
    assert len(runs) == 1200 and runs[0] == {"section": "runs", "path": "S0000", "kind": "removed",
                                             "old": setting("S0000"), "new": None}


def test_indexed_differences_agree_with_the_decoded_lists(ledger_path):
    a_list = cohort(400)
    b_list = [dict(s, parameters={**s["parameters"], "x": i % 7}) if i % 50 == 0 else s
              for i, s in enumerate(a_list[5:] + [setting("Z1")])]
    with Ledger.open(ledger_path) as ledger:
        a, b = add_batch(ledger, a_list, name="a"), add_batch(ledger, b_list, name="b")
        found = indexed_differences(ledger, seq_of(ledger_path, a), seq_of(ledger_path, b))
    assert found == run_differences(a_list, b_list)
    assert [i for i, *_ in found[2]] == [f"S{i + 5:04d}" for i in range(0, 400, 50)]


def test_verify_recomputes_the_digests_and_finds_a_changed_row(ledger_path, run_cli):
    with Ledger.open(ledger_path) as ledger:
        a = add_batch(ledger, cohort(100), name="a")
        b = add_batch(ledger, cohort(90)[:5] + [setting("S0005", cram="v2")] + cohort(90)[6:], name="b")
    assert run_cli("verify", "--no-remote").exit_code == 0
    assert run_cli("verify", a).exit_code == 0
    assert "~ S0005.parameters.input_cram" in run_cli("diff", a, b).stdout
    seq = seq_of(ledger_path, b)
    # b's buckets made to look like a's: the diff no longer sees S0005 changed
    tamper(ledger_path, f"UPDATE batch_settings SET digest = (SELECT x.digest FROM batch_settings x WHERE x.batch = "
                        f"{seq_of(ledger_path, a)} AND x.bucket = batch_settings.bucket) WHERE batch = {seq}")
    assert "S0005" not in run_cli("diff", a, b).stdout
    result = run_cli("verify", "--no-remote")
    assert result.exit_code == 1
    assert f"FAIL the digests of batch records' run settings were changed outside runlog: 1 batch record(s) or blob(s) (#{seq};" \
        in result.stdout


@pytest.mark.parametrize("statement", [
    "DELETE FROM batch_settings WHERE bucket = (SELECT min(bucket) FROM batch_settings)",
    "UPDATE batch_settings SET runs = replace(runs, 'S0001', 'S000l')",
    "INSERT INTO batch_settings (batch, bucket, digest, runs) VALUES (999, 5, x'00', '[]')",
])
def test_verify_finds_rows_removed_edited_or_added(statement, ledger_path, run_cli):
    with Ledger.open(ledger_path) as ledger:
        add_batch(ledger, cohort(30), name="a")
    tamper(ledger_path, statement)
    result = run_cli("verify", "--no-remote")
    assert result.exit_code == 1 and "the digests of batch records' run settings were changed" in result.stdout


def test_edited_offsets_make_the_diff_decode_the_records(ledger_path, run_cli):
    with Ledger.open(ledger_path) as ledger:
        a = add_batch(ledger, cohort(40), name="a")
        b = add_batch(ledger, cohort(42)[1:], name="b")
    before = run_cli("diff", a, b).stdout
    written = rows_of(ledger_path, a)
    # each bucket's first run of a read one byte further on: not the setting its digest is of
    tamper(ledger_path, "UPDATE batch_settings SET runs = json_replace(runs, '$[0][3]', json_extract(runs, '$[0][3]') "
                        f"+ 1) WHERE batch = {seq_of(ledger_path, a)}")
    assert rows_of(ledger_path, a) != written
    after = run_cli("diff", a, b)
    assert after.exit_code == 0 and after.stdout == before
    assert "- S0000" in before and "+ S0041" in before


def test_the_migration_fills_the_digests_of_batches_already_recorded(ledger_path, run_cli):
    with Ledger.open(ledger_path) as ledger:
        a = add_batch(ledger, cohort(80), name="a")
        b = add_batch(ledger, cohort(81)[1:], name="b")
    written = rows_of(ledger_path, a), rows_of(ledger_path, b)
    expected = run_cli("diff", a, b).stdout
    conn = sqlite3.connect(ledger_path)  # as a runlog before migration m009 left it
    conn.execute("DROP TABLE batch_settings")
    conn.execute(f"PRAGMA user_version = {MIGRATIONS.index(m009_batch_settings)}")
    conn.commit()
    conn.close()
    assert run_cli("diff", a, b).stdout == expected  # read-only: migrated in a copy
    with Ledger.open(ledger_path):  # a write migrates the file
        pass
    assert (rows_of(ledger_path, a), rows_of(ledger_path, b)) == written
    assert run_cli("verify", "--no-remote").exit_code == 0


def test_submit_batch_writes_the_digests_with_the_record(aws_env, ledger_path, git_repo, run_cli):
    samples = ["NA12878", "NA12891", "ñandú"]
    settings = {"inlineSettings": [setting(s) for s in samples]}
    result = run_cli("submit-batch", "--default-run-setting", json.dumps(DEFAULT), "--batch-run-settings",
                     json.dumps(settings), "--no-resolve", "--endpoint-url", aws_env.endpoint_url)
    assert result.exit_code == 0, result.output
    batch_id = json.loads(result.stdout)["id"]
    rows = rows_of(ledger_path, batch_id)
    assert sorted(run[0] for _, _, runs in rows for run in json.loads(runs)) == sorted(samples)
    with Ledger.open(ledger_path, readonly=True) as ledger:
        entry = ledger.resolve(batch_id)
        data = entry.body.encode("utf-8")
        for _, _, runs in rows:
            for setting_id, position, digest, start, length in json.loads(runs):
                assert settings["inlineSettings"][position]["runSettingId"] == setting_id
                piece = data[start:start + length]
                assert json.loads(piece) == settings["inlineSettings"][position]
                assert cohortindex.digest(piece) == digest
    assert run_cli("verify", "--no-remote").exit_code == 0


def test_a_pulled_batch_record_gets_the_same_digests(ledger_path, tmp_path, run_cli):
    with Ledger.open(ledger_path) as ledger:
        a = add_batch(ledger, cohort(70), name="a")
        b = add_batch(ledger, cohort(71)[1:], name="b")
        bodies = [entry.body for entry in ledger.entries() if entry.kind == "batch"]
    other = tmp_path / "other.db"
    with Ledger.open(other) as copy:  # the path pull takes: records added a page at a time
        assert copy.add_records([json.loads(body) for body in reversed(bodies)]) == 2
    assert rows_of(other, a) == rows_of(ledger_path, a) and rows_of(other, b) == rows_of(ledger_path, b)
    assert seq_of(other, a) == 1 and rows_of(other, a)
    expected = run_cli("diff", a, b).stdout
    assert run_cli("diff", a, b, env={"RUNLOG_LEDGER": str(other)}).stdout == expected
    assert run_cli("verify", "--no-remote", env={"RUNLOG_LEDGER": str(other)}).exit_code == 0


def test_the_migration_passes_over_a_batch_record_edited_outside_runlog(ledger_path, run_cli):
    with Ledger.open(ledger_path) as ledger:
        a = add_batch(ledger, cohort(30), name="a")
        b = add_batch(ledger, cohort(31)[1:], name="b")
    seq = seq_of(ledger_path, a)
    # JSON, but not the record (a body that is not JSON at all stops verify's m007 check: exit 2)
    tamper(ledger_path, "DROP TABLE batch_settings", f"UPDATE records SET body = '{{\"edited\": 1}}' WHERE seq = {seq}",
           f"PRAGMA user_version = {MIGRATIONS.index(m009_batch_settings)}")
    with Ledger.open(ledger_path):  # migrated: the edited record gets no rows, the other its own
        pass
    assert rows_of(ledger_path, a) == [] and rows_of(ledger_path, b)
    result = run_cli("verify", "--no-remote")
    assert result.exit_code == 1 and f"record #{seq} " in result.stdout
    assert "run settings were changed outside runlog" not in result.stdout


def test_integers_beyond_64_bits_compare_as_decoding_both_cohorts_compares_them(ledger_path, run_cli):
    before, after = cohort(12), cohort(12)
    before[1]["parameters"]["seed"] = 2 ** 70  # read exactly either way (orjson would read both as one float)
    after[1]["parameters"]["seed"] = 2 ** 70 + 1
    before[2]["parameters"]["seed"] = 2 ** 64 - 1  # the largest orjson reads as an integer
    after[2]["parameters"]["seed"] = 2 ** 64 - 2
    before[3]["parameters"]["seed"] = 2 ** 70
    after[3]["parameters"]["seed"] = 2 ** 71
    with Ledger.open(ledger_path) as ledger:
        a, b = add_batch(ledger, before, name="a"), add_batch(ledger, after, name="b")
    [(text, _)] = both_ways(run_cli, ledger_path, [(a, b)])
    assert "~ S0001.parameters.seed" in text and "~ S0002.parameters.seed" in text \
        and "~ S0003.parameters.seed" in text
