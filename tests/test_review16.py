"""Review of the streamed pull (runlog/syncinsert.py, commit "pull appends what it received
while later packs are still coming"): a pull adds the same records in the same order and
refuses the same items with the same lines whether or not it streams, and the claims of the
index objects (S3 metadata anyone who may write the bucket can change) only change its speed.
moto's S3 server, the emulator, real ledger files."""

from __future__ import annotations

import copy

import pytest

from helpers import BUCKET, another_answer, refreshed_cohort
from recordfactory import make_record
from runlog import record as rec
from runlog import sync, syncpack
from runlog.ledger import Ledger
from runlog.verify import verify

REMOTE = sync.Remote.parse(f"s3://{BUCKET}/runlog")


def put_pack(s3, items: list[tuple[str, str, bytes, str | None]], metadata: dict[str, str]) -> str:
    """A pack of `items` (kind, address, JSON, record) and its index written straight to the
    bucket (as someone who may write it, not through push), the index carrying `metadata`
    (and no claims of its own); the pack's digest."""
    (pack,) = list(syncpack.build_packs([(*item, None) for item in items]))
    s3.put_object(Bucket=BUCKET, Key=REMOTE.key(syncpack.pack_key(pack.digest)), Body=pack.body)
    s3.put_object(Bucket=BUCKET, Key=REMOTE.key(syncpack.index_key(pack.digest)), Body=pack.index,
                  Metadata={"runlog-pack": pack.digest, **metadata})
    return pack.digest


def pushed_cohort_and_forgery(run_cli, s3_emulator, bucket, ledger_path) -> dict:
    """A cohort (its batch record holding its settings file's content by reference) pushed; a
    copy of its batch record with its own requestId and a reference to the same blob that says
    one byte more than the blob holds, not pushed."""
    refreshed_cohort(run_cli, s3_emulator, bucket, ["S1", "S2"])
    with Ledger.open(ledger_path) as ledger:
        sync.push(ledger, bucket, REMOTE, jobs=1)
        (batch,) = ledger.entries(where="kind = 'batch'")
        forged = copy.deepcopy(batch.stored)
    forged["request"]["requestId"] = "0b0b0b0b-2db5-421f-b72e-abb0130bef19"
    another_answer(forged)
    forged["batch"]["settings_file"]["content_blob"]["bytes"] += 1
    return forged


def put_record(s3, record: dict, metadata: dict[str, str]) -> str:
    """A pack of that one record written straight to the bucket (put_pack); its address."""
    data = rec.canonical_json(record)
    address = rec.sha256_hex(data)
    put_pack(s3, [("record", address, data, None)], metadata)
    return address


def pulled_without(s3, path, address: str) -> sync.PullResult:
    """Pull into the ledger at `path`: it must not take the record at `address`, and verify
    must find nothing wrong with it after."""
    with Ledger.open(path) as ledger:
        result = sync.pull(ledger, s3, REMOTE, jobs=1)
        assert ledger.get(address) is None
        assert not verify(ledger).problems
    return result


def test_a_batch_record_whose_blob_reference_is_wrong_is_refused_though_another_brought_the_blob(
        s3_emulator, bucket, ledger_path, git_repo, run_cli, tmp_path):
    """Two batch records of one pull name the same blob; the second's reference says the wrong
    size. Checked together after the last pack (insert_all) the second is refused; streamed, the
    first one's blob was stored already when the second arrived, and the second was taken
    unchecked against it: a record the pull would have refused, and that verify then names."""
    forged = pushed_cohort_and_forgery(run_cli, s3_emulator, bucket, ledger_path)
    forged["created"] = "2099-01-01T00:00:00.000Z"  # after every other record: its pack comes last
    sha = forged["batch"]["settings_file"]["content_blob"]["sha256"]
    size = forged["batch"]["settings_file"]["content_blob"]["bytes"]
    address = put_record(bucket, forged, {syncpack.HINT_RECORD: f"{forged['created']} " + "0" * 64})

    result = pulled_without(bucket, tmp_path / "bob.db", address)
    assert [why for _, why in result.refused] == [
        f"record {address} is left out: its batch.settings_file.content is held by reference, and "
        f"s3://{BUCKET}/runlog/blobs/{sha}.json.zlib was refused: blob {sha} holds {size - 1} bytes, the record says "
        f"{size}"]
    assert (result.records_received, result.blobs_received) == (3, 2)


def _small(path, count=40):
    """A ledger of `count` records (a few packs of 4 at PACK_ITEMS 4); their addresses, oldest first."""
    with Ledger.open(path) as ledger:
        ledger.add_records([make_record(run_id=str(7100000 + i), name=f"r{i}") for i in range(count)])
        return [address for address, in ledger.conn.execute("SELECT address FROM records ORDER BY created, address")]


@pytest.mark.parametrize("claim", ["older", "newer"])
def test_a_claim_does_not_change_which_packs_a_pull_takes_nor_what_it_refuses(claim, bucket, tmp_path, monkeypatch):
    """Someone who may write the bucket adds a damaged pack whose index lists a record another
    pack holds (its name sorts after every other pack's). Chosen in order of name, as pulls
    always chose packs, it is never fetched: nothing it would bring is missing. Its claim, an
    S3 metadata value nothing checks, must not change that: a claim older than every other
    pack's made the pull fetch it first, refuse it, and report the refusal (and exit 1)."""
    monkeypatch.setattr(syncpack, "PACK_ITEMS", 4)
    sent = _small(tmp_path / "alice.db")
    with Ledger.open(tmp_path / "alice.db") as ledger:
        sync.push(ledger, bucket, REMOTE, jobs=4)
        oldest = ledger.get(sent[0])
    data = oldest.body.encode("utf-8")
    fake = "f" * 64
    body = syncpack.HEADER + b"r " + data.replace(b'"r', b'"R', 1) + b"\n"  # does not hash to its name
    index = rec.canonical_json({"format": syncpack.INDEX_FORMAT, "pack": fake, "size": len(body),
                                "records": [oldest.address], "observations": []})
    told = "2000-01-01T00:00:00.000Z " + "0" * 64 if claim == "older" else "2999-01-01T00:00:00.000Z " + "f" * 64
    bucket.put_object(Bucket=BUCKET, Key=REMOTE.key(syncpack.pack_key(fake)), Body=body)
    bucket.put_object(Bucket=BUCKET, Key=REMOTE.key(syncpack.index_key(fake)), Body=index,
                      Metadata={"runlog-pack": fake, syncpack.HINT_RECORD: told})
    with Ledger.open(tmp_path / "bob.db") as ledger:
        result = sync.pull(ledger, bucket, REMOTE, jobs=1)
        rows = [address for address, in ledger.conn.execute("SELECT address FROM records ORDER BY seq")]
    assert (result.records_received, result.refused) == (len(sent), [])
    assert rows == sent


def _instructions_of_pull(s3, path) -> tuple[sync.PullResult, int]:
    """Pull into the ledger at `path`; how many SQLite VM instructions (in thousands) its
    connection ran meanwhile: the CPU the inserts cost, counted the same on any machine."""
    counted = [0]

    def count() -> int:
        counted[0] += 1
        return 0

    with Ledger.open(path) as ledger:
        ledger.conn.set_progress_handler(count, 1000)
        result = sync.pull(ledger, s3, REMOTE, jobs=4)
        ledger.conn.set_progress_handler(None, 0)
        assert not verify(ledger).problems
    return result, counted[0]


def test_a_streamed_pull_keeps_the_observations_index_while_member_records_are_appended(bucket, tmp_path):
    """Each page of member records looks each member's latest status up among the observations
    (PAGE_MEMBERS, by observations_record). insert_all drops the observations' indexes only once
    the records are in; the streamed inserts dropped them with the records' at the first append,
    so every member of a pull into a ledger holding observations (no more than the pull brings)
    scanned all of them: 6 000 members into a ledger of 4 800 observations took 4.7-5.2 s
    instead of 1.2-1.3 s."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from make_ledger import build, build_batches

    build_batches(tmp_path / "alice.db", 600)  # two cohorts of 600 members and their statuses, a rerun
    with Ledger.open(tmp_path / "alice.db") as ledger:
        sync.push(ledger, bucket, REMOTE, jobs=4)
    build(tmp_path / "bob.db", 1000)  # a ledger of its own runs, most of them observed
    with Ledger.open(tmp_path / "bob.db") as ledger:
        held = ledger.conn.execute("SELECT count(*) FROM observations").fetchone()[0]
    empty, into_empty = _instructions_of_pull(bucket, tmp_path / "empty.db")
    used, into_used = _instructions_of_pull(bucket, tmp_path / "bob.db")
    assert (used.records_received, used.observations_received) == (empty.records_received,
                                                                   empty.observations_received)
    assert 500 < held <= used.observations_received
    assert into_used < 2 * into_empty, (into_used, into_empty)


def test_what_a_pack_is_checked_for_does_not_depend_on_when_the_packs_before_it_arrived(bucket, tmp_path):
    """A pack chosen in a round is checked for every needed item it holds, as when the packs of
    a round were all fetched before any was taken: that another pack of the round brought one
    already must not spare it the check, or whether its damaged entry is refused depends on
    which download finished first. Pack B files an observation another pack brings under the
    wrong record; a large pack is fetched between the two (--jobs 1), so that the first has
    been taken before B's download starts."""
    sent = _small(tmp_path / "alice.db", 8)
    with Ledger.open(tmp_path / "alice.db") as ledger:
        for address in sent[:2]:
            ledger.observe(address, "GetRun", {"status": "RUNNING"}, status="RUNNING")
        sync.push(ledger, bucket, REMOTE, jobs=1)
        ledger.observe(sent[2], "GetRun", {"status": "COMPLETED"}, status="COMPLETED")
        ledger.observe(sent[3], "GetRun", {"status": "COMPLETED", "log": "x" * 900_000}, status="COMPLETED")
        by_record = {record: (address, data) for _, address, record, data, _ in ledger._observation_rows()}
    first, first_data = by_record[sent[0]]  # pushed
    third, third_data = by_record[sent[2]]  # not pushed
    large, large_data = by_record[sent[3]]  # not pushed: about 900 kB
    put_pack(bucket, [("observation", large, large_data, sent[3])],
             {syncpack.HINT_OBSERVATION: "2998-01-01T00:00:00.000Z " + "0" * 64})
    damaged = put_pack(bucket, [("observation", first, first_data, sent[5]),  # filed under the wrong record
                                ("observation", third, third_data, sent[2])],
                       {syncpack.HINT_OBSERVATION: "2999-01-01T00:00:00.000Z " + "0" * 64})
    with Ledger.open(tmp_path / "bob.db") as ledger:
        result = sync.pull(ledger, bucket, REMOTE, jobs=1)
    assert [key for key, _ in result.refused] == [REMOTE.key(syncpack.pack_key(damaged))], result.refused
    assert (result.records_received, result.observations_received) == (8, 4)


def test_push_names_a_created_column_changed_to_bytes_and_sends_nothing(bucket, tmp_path, run_cli):
    """Push sorts the records it sends by their `created` column: one changed behind runlog's
    back to a blob (SQLite keeps it as one in a TEXT column) is refused as verify names it, not
    an internal error (exit 70) from comparing bytes with a date."""
    from helpers import REMOTE as REMOTE_URL
    from helpers import fill, tamper

    sent = fill(tmp_path / "alice.db", 3)
    tamper(tmp_path / "alice.db", "UPDATE records SET created = CAST(created AS BLOB) WHERE address = ?",
           params=(sent[1],))
    pushed = run_cli("--ledger", tmp_path / "alice.db", "push", REMOTE_URL)
    assert pushed.exit_code == 2, pushed.output
    assert pushed.stderr.startswith("runlog: error: refusing to push: record #2: column created"), pushed.stderr


def test_a_batch_record_whose_reference_does_not_fit_a_blob_the_ledger_holds_is_refused(
        s3_emulator, bucket, ledger_path, git_repo, run_cli, tmp_path):
    """A pull fetches and checks only the blobs the ledger lacks; a batch record naming one the
    ledger holds (from an earlier pull) with a reference that does not fit it (its size) was
    taken unchecked, and verify then called the ledger altered. It is refused, named."""
    forged = pushed_cohort_and_forgery(run_cli, s3_emulator, bucket, ledger_path)
    with Ledger.open(tmp_path / "bob.db") as ledger:
        assert sync.pull(ledger, bucket, REMOTE, jobs=1).refused == []
    sha = forged["batch"]["settings_file"]["content_blob"]["sha256"]
    size = forged["batch"]["settings_file"]["content_blob"]["bytes"] - 1
    address = put_record(bucket, forged, {})
    result = pulled_without(bucket, tmp_path / "bob.db", address)
    assert [why for _, why in result.refused] == [
        f"record {address} is left out: its batch.settings_file.content is held by reference, and the ledger's copy "
        f"of the blob does not fit that reference: blob {sha} holds {size} bytes, the record says {size + 1}"]
