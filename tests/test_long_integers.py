"""A settings file holding an integer beyond 64 bits (a seed of 23 digits, say): orjson reads such
an integer as a float, so a cohort held by reference was shown and exported with
1.2345678901234568e+22 in its place, and `verify` reported the per-run digests submit-batch had
written as changed outside runlog (it read the blob with orjson, found no run of it in the blob,
and expected no rows). Every read of JSON runlog wrote now keeps such an integer
(fastjson.loads)."""

from __future__ import annotations

import json

from helpers import COHORT_DEFAULT, REMOTE, cohort_setting, omics_client, push_json
from runlog import fastjson

SEED = 12345678901234567890123
URI = "s3://cohort-bucket/cohort/settings.json"


def _submitted(settings: list[dict], s3_emulator, s3_server, run_cli) -> str:
    """The id of a batch of `settings` submitted from an s3UriSettings file (its runs start at once)."""
    s3_server.create_bucket(Bucket="cohort-bucket")
    s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json", Body=json.dumps(settings).encode())
    s3_emulator.batch_rate = 100
    sent = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
                   json.dumps({"s3UriSettings": URI}))
    assert sent.exit_code == 0, sent.output
    return json.loads(sent.stdout)["id"]


def test_a_cohort_with_an_integer_beyond_64_bits_reads_back_exactly(s3_emulator, s3_server, bucket, ledger_path,
                                                                   git_repo, run_cli, tmp_path):
    settings = [cohort_setting(f"S{i}") for i in range(4)]
    settings[1]["parameters"]["sample_name"] = SEED
    settings[2]["parameters"]["sample_name"] = 1e16  # and floats orjson writes otherwise (fastjson's checks)
    settings[3]["parameters"]["sample_name"] = -2.5e-07
    batch_id = _submitted(settings, s3_emulator, s3_server, run_cli)
    s3_emulator.advance(200)
    assert run_cli("refresh", batch_id).exit_code == 0

    verified = run_cli("verify")
    assert verified.exit_code == 0, verified.output
    shown = json.loads(run_cli("show", batch_id, "--json").stdout)
    assert shown["record"]["batch"]["settings_file"]["content"] == settings
    out = tmp_path / "export"
    assert run_cli("export", batch_id, "-f", "all", "-o", out).exit_code == 0
    written = "".join(path.read_text() for path in out.rglob("*") if path.is_file())
    assert str(SEED) in written and "1.2345678901234568e+22" not in written

    push_json(run_cli, ledger_path)  # and a team ledger takes the members made from it
    other = tmp_path / "other.db"
    pulled = run_cli("--ledger", other, "pull", REMOTE)
    assert pulled.exit_code == 0 and "refused 0" in pulled.stdout, pulled.output
    assert run_cli("--ledger", other, "verify").exit_code == 0


def test_fastjson_loads_reads_what_the_json_module_reads():
    for text in (b'[12345678901234567890123, -9223372036854775809, 18446744073709551616, 1.5, "x"]',
                 '{"a": 123456789012345678901}', b'{"s": "0000000000000000000000 in a string"}'):
        assert fastjson.loads(text) == json.loads(text)
        assert [type(v) for v in json.loads(text)] == [type(v) for v in fastjson.loads(text)]


def test_diff_of_two_cohorts_tells_seeds_beyond_64_bits_apart(s3_emulator, s3_server, ledger_path, git_repo,
                                                              run_cli):
    """Two batches whose settings files differ only in one run's 23-digit seed: read as floats,
    the two seeds were equal and `diff` said the runs' settings were the same."""
    s3_server.create_bucket(Bucket="cohort-bucket")
    sent = []
    for seed in (SEED, SEED + 1):
        settings = [cohort_setting(f"S{i}") for i in range(3)]
        settings[1]["parameters"]["sample_name"] = seed
        s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json", Body=json.dumps(settings).encode())
        done = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
                       json.dumps({"s3UriSettings": URI}))
        assert done.exit_code == 0, done.output
        sent.append(json.loads(done.stdout)["id"])
    diffed = run_cli("diff", *sent, "--json")
    assert diffed.exit_code == 0, diffed.output
    found = json.loads(diffed.stdout)
    assert found["same"] is False
    assert str(SEED) in diffed.stdout and str(SEED + 1) in diffed.stdout, diffed.stdout


def test_an_inline_cohort_with_an_integer_beyond_64_bits_verifies(s3_emulator, s3_server, ledger_path, git_repo,
                                                                   run_cli):
    settings = [cohort_setting(f"S{i}") for i in range(3)]
    settings[0]["parameters"]["sample_name"] = SEED
    s3_emulator.batch_rate = 100
    sent = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
                   json.dumps({"inlineSettings": settings}))
    assert sent.exit_code == 0, sent.output
    s3_emulator.advance(200)
    assert run_cli("refresh", json.loads(sent.stdout)["id"]).exit_code == 0
    verified = run_cli("verify")
    assert verified.exit_code == 0, verified.output
    shown = json.loads(run_cli("show", json.loads(sent.stdout)["id"], "--json").stdout)
    assert shown["record"]["request"]["batchRunSettings"]["inlineSettings"] == settings


def test_replaying_one_run_of_such_a_cohort_sends_its_seed_exactly(s3_emulator, s3_server, ledger_path, git_repo,
                                                                   run_cli):
    """`replay B --only S1` sends S1's settings inline, as the record holds them: read as a float,
    the replayed run would have been given another seed."""
    settings = [cohort_setting(f"S{i}") for i in range(3)]
    settings[1]["parameters"]["sample_name"] = SEED
    s3_server.create_bucket(Bucket="cohort-bucket")
    s3_server.put_object(Bucket="cohort-bucket", Key="cohort/settings.json", Body=json.dumps(settings).encode())
    sent = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
                   json.dumps({"s3UriSettings": URI}))
    assert sent.exit_code == 0, sent.output
    replayed = run_cli("replay", json.loads(sent.stdout)["id"], "--only", "S1")
    assert replayed.exit_code == 0, replayed.output
    shown = json.loads(run_cli("show", json.loads(replayed.stdout)["id"], "--json").stdout)
    assert shown["record"]["request"]["batchRunSettings"]["inlineSettings"] == [settings[1]]
    s3_emulator.batch_rate = 100
    s3_emulator.advance(200)  # the run started: the service holds the parameters it was given
    omics = omics_client(s3_emulator)
    [item] = omics.list_runs_in_batch(batchId=json.loads(replayed.stdout)["id"])["runs"]
    assert omics.get_run(id=item["runId"])["parameters"]["sample_name"] == SEED


def test_refresh_makes_members_exactly_when_the_blob_has_no_digest_rows(s3_emulator, s3_server, ledger_path,
                                                                        git_repo, run_cli):
    """A ledger without the per-run digest rows of a settings file's blob (one that pulled such
    a cohort with a runlog that read the blob with orjson: it found no run of it there and kept
    no rows) gets its members' settings from the blob decoded whole (Ledger._copy_held_settings).
    The setting holding the 23-digit seed was then written back with orjson, which refuses an
    integer beyond 64 bits (read as a float before, it was a member with another seed)."""
    import sqlite3

    settings = [cohort_setting(f"S{i}") for i in range(3)]
    settings[1]["parameters"]["sample_name"] = SEED
    batch_id = _submitted(settings, s3_emulator, s3_server, run_cli)
    with sqlite3.connect(ledger_path) as conn:
        assert conn.execute("DELETE FROM blob_settings").rowcount > 0
    conn.close()
    s3_emulator.advance(200)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0, refreshed.output
    with sqlite3.connect(ledger_path) as conn:
        members = [json.loads(body) for body, in conn.execute("SELECT body FROM records WHERE kind = 'member'")]
    conn.close()
    seeds = {m["batch"]["run_setting_id"]: m["request"]["parameters"]["sample_name"] for m in members}
    assert seeds == {"S0": "S0", "S1": SEED, "S2": "S2"}
    assert type(seeds["S1"]) is int


def test_verify_names_a_planted_blob_nested_too_deep_instead_of_failing(s3_emulator, s3_server, ledger_path,
                                                                          git_repo, run_cli):
    """A blob planted with rows under its name, nested deeper than the json module reads:
    reading it exactly (orjson refuses such depth, the json module raises RecursionError) must
    not stop verify (exit 70); it names the rows as strays, exit 1, as for any planted blob."""
    import hashlib
    import zlib

    from helpers import tamper

    _submitted([cohort_setting("S0")], s3_emulator, s3_server, run_cli)
    deep = b"[" * 100_000 + b"]" * 100_000
    sha = hashlib.sha256(deep).hexdigest()
    tamper(ledger_path, "INSERT INTO blobs (sha256, bytes, data) VALUES (?, ?, ?)",
           params=(sha, len(deep), zlib.compress(deep)))
    tamper(ledger_path, "INSERT INTO blob_settings (blob, bucket, digest, runs) VALUES (?, 0, x'00', '[]')",
           params=(sha,))
    verified = run_cli("verify")
    assert verified.exit_code == 1, verified.output
    assert "internal error" not in verified.output and "FAIL" in verified.output
