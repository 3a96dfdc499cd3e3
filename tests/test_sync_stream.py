"""A pull appends what it received while later packs are still coming (runlog/syncinsert.py):
push sends records oldest first and each pack's index object claims, as S3 metadata, the
oldest record and observation its pack holds; a pull fetches packs in the order of those
claims and appends a record once no pack still to come claims an older one. Through moto's
S3 server: the appends happen while packs arrive; claims that lie, or that an older push
never wrote, change nothing a user sees (the order, what is taken, what is refused); a pack
refused after pages were appended leaves the pull as it would have been; a cohort, whose
member records share their batch record's time and so come partly before it, streams too."""

from __future__ import annotations

import json

import pytest

from helpers import BUCKET, refreshed_cohort
from recordfactory import make_record
from runlog import sync, syncinsert, syncpack
from runlog.ledger import Ledger
from runlog.verify import verify

REMOTE = sync.Remote.parse(f"s3://{BUCKET}/runlog")


def created(i: int) -> str:
    """When record i of many() was made: in blocks of 60 records, the blocks out of order and
    the last block's records in reverse (a ledger that pulled older records after its own), so
    that push reads both stretches of consecutive records and scattered ones."""
    block, at = divmod(i, 60)
    minute = [3, 7, 1, 9, 0, 5, 2, 8, 6, 4][block % 10]
    return f"2026-11-{1 + block // 10:02d}T00:{minute:02d}:{59 - at if block == 9 else at:02d}.000Z"


def many(path, count=600, pad=4000):
    """A ledger of `count` records of about `pad` bytes (about 250 to a 1 MiB pack) and an
    observation of every tenth; their addresses."""
    with Ledger.open(path) as ledger:
        ledger.add_records([make_record(run_id=str(7000000 + i), name=f"r{i}", parameters={"pad": "x" * pad},
                                        created=created(i)) for i in range(count)])
        entries = ledger.entries()
        for entry in entries[::10]:
            ledger.observe(entry.address, "GetRun", {"status": "COMPLETED", "id": entry.run_id},
                           run_uuid=entry.run_uuid, status="COMPLETED")
        return [entry.address for entry in entries]


def order(path) -> list[tuple[str, str]]:
    with Ledger.open(path, create=False) as ledger:
        return ledger.conn.execute("SELECT address, created FROM records ORDER BY seq").fetchall()


def observation_order(path) -> list[str]:
    with Ledger.open(path, create=False) as ledger:
        return [row[0] for row in ledger.conn.execute(
            "SELECT a.address FROM observations o JOIN observation_addresses a ON a.observation = o.seq "
            "ORDER BY o.seq")]


def pulled_while_watching(path, s3, *, jobs=1, also=None):
    """Pull into a new ledger; returns (result, how many records the ledger held each time a
    pack had been taken) as seen from the pull's own connection; `also()` is called then too."""
    seen: list[int] = []
    with Ledger.open(path) as ledger:
        def progress(items, total, label):
            for item in items:
                yield item
                if label == "pulling packs":
                    seen.append(ledger.count())
                    if also is not None:
                        also()

        result = sync.pull(ledger, s3, REMOTE, jobs=jobs, progress=progress)
        assert not verify(ledger).problems
    return result, seen


def index_keys(s3) -> list[str]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="runlog/packs/")
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []) if item["Key"].endswith(".json"))


def set_metadata(s3, key: str, metadata: dict[str, str]) -> None:
    s3.copy_object(Bucket=BUCKET, Key=key, CopySource={"Bucket": BUCKET, "Key": key}, Metadata=metadata,
                   MetadataDirective="REPLACE", ContentType="application/json")


def test_push_sends_records_oldest_first_and_each_index_claims_its_packs_oldest_items(bucket, tmp_path):
    many(tmp_path / "alice.db")
    with Ledger.open(tmp_path / "alice.db") as ledger:
        sync.push(ledger, bucket, REMOTE, jobs=4)
        created = dict(ledger.conn.execute("SELECT address, created FROM records"))
    keys = index_keys(bucket)
    assert len(keys) >= 3
    claims, packed = [], []
    for key in keys:
        answer = bucket.get_object(Bucket=BUCKET, Key=key)
        index = json.loads(answer["Body"].read())
        held = [(created[address], address) for address in index["records"]]
        assert held == sorted(held)  # within a pack, oldest first
        if held:
            claim = answer["Metadata"][syncpack.HINT_RECORD]
            assert claim == " ".join(held[0])  # the claim names the pack's oldest record
            claims.append(held[0])
            packed.append(held)
        if index["observations"]:
            assert syncpack.HINT_OBSERVATION in answer["Metadata"]
    packed.sort()
    flat = [item for held in packed for item in held]
    assert flat == sorted(flat)  # the packs hold stretches of the one order: none overlaps another


def test_a_pull_appends_packs_while_later_ones_are_still_coming(bucket, tmp_path, monkeypatch):
    monkeypatch.setattr(syncinsert, "INSERT_PAGE", 50)
    sent = many(tmp_path / "alice.db")
    with Ledger.open(tmp_path / "alice.db") as ledger:
        sync.push(ledger, bucket, REMOTE, jobs=4)
    result, seen = pulled_while_watching(tmp_path / "bob.db", bucket)
    assert (result.records_received, result.observations_received, result.refused) == (600, 60, [])
    assert len(seen) >= 3
    assert any(0 < count < 600 for count in seen[:-1]), seen  # appended while packs were still to come
    rows = order(tmp_path / "bob.db")
    assert rows == sorted(rows, key=lambda row: (row[1], row[0])) and {a for a, _ in rows} == set(sent)


@pytest.mark.parametrize("claims", ["none", "reversed", "future", "garbled"])
def test_claims_that_lie_or_are_missing_change_nothing_a_pull_does(claims, bucket, tmp_path, monkeypatch):
    """The claims are S3 metadata anyone who may write the bucket can change: a pull that
    trusts them only for speed appends the same records in the same order, refusing nothing."""
    monkeypatch.setattr(syncinsert, "INSERT_PAGE", 50)
    many(tmp_path / "alice.db")
    with Ledger.open(tmp_path / "alice.db") as ledger:
        sync.push(ledger, bucket, REMOTE, jobs=4)
    _, _ = pulled_while_watching(tmp_path / "honest.db", bucket)
    keys = index_keys(bucket)
    told = [bucket.head_object(Bucket=BUCKET, Key=key)["Metadata"] for key in keys]
    for key, metadata, other in zip(keys, told, reversed(told), strict=True):
        kept = {"runlog-pack": metadata["runlog-pack"]}
        if claims == "reversed":  # each index claims another pack's oldest items
            kept.update({name: value for name, value in other.items() if name != "runlog-pack"})
        elif claims == "future":
            kept[syncpack.HINT_RECORD] = "2999-01-01T00:00:00.000Z " + "f" * 64
        elif claims == "garbled":
            kept[syncpack.HINT_RECORD] = "not a claim"
            kept[syncpack.HINT_OBSERVATION] = "2026-01-01T00:00:00Z not-an-address"
        set_metadata(bucket, key, kept)
    result, _ = pulled_while_watching(tmp_path / "bob.db", bucket, jobs=4)
    assert (result.records_received, result.observations_received, result.refused) == (600, 60, [])
    assert order(tmp_path / "bob.db") == order(tmp_path / "honest.db")
    assert observation_order(tmp_path / "bob.db") == observation_order(tmp_path / "honest.db")


def test_a_pack_refused_after_pages_were_appended_leaves_the_pull_as_it_would_have_been(bucket, tmp_path,
                                                                                         monkeypatch):
    monkeypatch.setattr(syncinsert, "INSERT_PAGE", 50)
    many(tmp_path / "alice.db")
    with Ledger.open(tmp_path / "alice.db") as ledger:
        sync.push(ledger, bucket, REMOTE, jobs=4)
    claimed = sorted((bucket.head_object(Bucket=BUCKET, Key=key)["Metadata"].get(syncpack.HINT_RECORD, ""), key)
                     for key in index_keys(bucket))
    last = claimed[-1][1].replace(".index.json", ".pack")  # fetched last: pages are appended before it
    data = bucket.get_object(Bucket=BUCKET, Key=last)["Body"].read()
    lost = [line for line in data.split(b"\n")[1:-1] if line.startswith(b"r ")]
    bucket.put_object(Bucket=BUCKET, Key=last, Body=data.replace(b'"r', b'"R', 1))  # tampered
    result, seen = pulled_while_watching(tmp_path / "bob.db", bucket)
    assert any(0 < count for count in seen[:-1]), seen
    assert result.refused == [(last, "content does not match its address (tampered or truncated)")]
    rows = order(tmp_path / "bob.db")
    assert len(rows) == result.records_received == 600 - len(lost)
    assert rows == sorted(rows, key=lambda row: (row[1], row[0]))


def test_a_cohort_streams_its_members_around_their_batch_record(s3_emulator, bucket, ledger_path, git_repo, run_cli,
                                                               tmp_path, monkeypatch):
    """Member records are created with their batch record's time, so in pull's order (time,
    then address) about half come before it: they wait for the batch record's pack, which
    they are checked against, and the pull still appends while packs are coming."""
    samples = [f"S{i:03d}" for i in range(30)]
    batch_id = refreshed_cohort(run_cli, s3_emulator, bucket, samples)
    monkeypatch.setattr(syncpack, "PACK_ITEMS", 4)
    monkeypatch.setattr(syncinsert, "INSERT_PAGE", 3)
    with Ledger.open(ledger_path) as ledger:
        sync.push(ledger, bucket, REMOTE, jobs=4)
        batch = next(entry for entry in ledger.entries(where="kind = 'batch'"))
    result, seen = pulled_while_watching(tmp_path / "bob.db", bucket)
    assert (result.records_received, result.refused) == (31, [])
    # appended before the last pack was taken (the observations' packs come last; where the batch
    # record stands among its members, and so how many wait for it, changes from run to run)
    assert any(count > 0 for count in seen[:-1]), seen
    rows = order(tmp_path / "bob.db")
    assert rows == sorted(rows, key=lambda row: (row[1], row[0]))
    assert {created for _, created in rows} == {batch.created}
    shown = json.loads(run_cli("--ledger", tmp_path / "bob.db", "show", batch_id, "--json").stdout)["batch"]
    assert sum(shown["run_status"].values()) == 30


@pytest.mark.parametrize("ahead", [0.0, 1e9])
def test_the_ledger_is_held_only_from_the_first_append_while_the_rest_of_the_transfer_is_short(ahead, bucket,
                                                                                              tmp_path, monkeypatch):
    """A pull appends, and so holds the ledger's write lock, only once the rest of its transfer
    is expected to take at most APPEND_AHEAD_SECONDS: until then another writer (`runlog
    submit`) writes at once. Here 0 s (append after the last pack) and for ever (from the start)."""
    import sqlite3

    monkeypatch.setattr(syncinsert, "INSERT_PAGE", 50)
    monkeypatch.setattr(syncinsert, "APPEND_AHEAD_SECONDS", ahead)
    many(tmp_path / "alice.db")
    with Ledger.open(tmp_path / "alice.db") as ledger:
        sync.push(ledger, bucket, REMOTE, jobs=4)
    bob = tmp_path / "bob.db"
    Ledger.open(bob).close()
    other = sqlite3.connect(bob, timeout=0, isolation_level=None)
    writable: list[bool] = []

    def try_writing():
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
            writable.append(True)
        except sqlite3.OperationalError as exc:
            assert "locked" in str(exc)
            writable.append(False)

    result, seen = pulled_while_watching(bob, bucket, also=try_writing)
    other.close()
    assert (result.records_received, result.refused) == (600, [])
    if ahead == 0.0:
        assert not any(seen[:-1]) and all(writable[:-1]), (seen, writable)
    else:
        assert any(seen[:-1]) and not all(writable[:-1]), (seen, writable)
    assert order(bob) == sorted(order(bob), key=lambda row: (row[1], row[0]))
