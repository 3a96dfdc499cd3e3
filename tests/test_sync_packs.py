"""runlog.remote/2: records and observations travel in packs (many to an object, named by the
SHA-256 of their content, each with a small index object). Through moto's S3 server with the
CLI: a cohort's round trip, a second push that sends nothing, tampered and lying packs refused
while the rest arrives, concurrent pushers of overlapping sets, remotes written in
runlog.remote/1 and mixed ones, the size limit, and the bulk insert of pulled observations."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import threading

from helpers import (
    BUCKET,
    REMOTE,
    S3Proxy,
    fill,
    proxy_in_front,
    pull_json,
    push_json,
    refreshed_cohort,
)
from recordfactory import make_record
from runlog import record as rec
from runlog.ledger import Ledger, observation_object
from runlog.verify import verify


def keys(s3, under=""):
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="runlog/" + under)
    return sorted(item["Key"] for page in pages for item in page.get("Contents", []))


def packs(s3):
    return [key for key in keys(s3, "packs/") if key.endswith(".pack")]


def contents(path):
    """Every record address and every observation (as its object) of a ledger."""
    with Ledger.open(path, create=False) as ledger:
        observations = sorted(ledger.observation_addresses())
        return ledger.addresses(), observations


def verified(path) -> bool:
    with Ledger.open(path, create=False) as ledger:
        return verify(ledger).ok


def refused(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("runlog: refused ")]


def put_pack(s3, lines: list[bytes], index_records=None, index_observations=None) -> str:
    """Write a pack of raw `r JSON` / `o JSON` lines and an index (what it holds, unless told
    otherwise) straight into moto, as a hostile or buggy writer could; returns its digest."""
    body = b"runlog.pack/1\n" + b"".join(line + b"\n" for line in lines)
    digest = hashlib.sha256(body).hexdigest()
    held = [(line[:1], hashlib.sha256(line[2:]).hexdigest(), line[2:]) for line in lines]
    records = [a for kind, a, _ in held if kind == b"r"] if index_records is None else index_records
    observations = ([[a, json.loads(data)["record"]] for kind, a, data in held if kind == b"o"]
                    if index_observations is None else index_observations)
    index = rec.canonical_json({"format": "runlog.pack-index/1", "pack": digest, "size": len(body),
                                "records": records, "observations": observations})
    s3.put_object(Bucket=BUCKET, Key=f"runlog/packs/{digest}.pack", Body=body)
    s3.put_object(Bucket=BUCKET, Key=f"runlog/packs/{digest}.index.json", Body=index)
    return digest


# -- a cohort, round trip --------------------------------------------------------------------------

def test_a_cohort_round_trips_in_packs_and_a_second_push_sends_nothing(s3_emulator, bucket, ledger_path, git_repo,
                                                                      run_cli, tmp_path, monkeypatch):
    samples = [f"S{i:03d}" for i in range(12)]
    batch_id = refreshed_cohort(run_cli, s3_emulator, bucket, samples)
    with proxy_in_front(S3Proxy, bucket, monkeypatch) as proxy:
        pushed = push_json(run_cli, ledger_path)
        assert (pushed["records_sent"], pushed["observations_sent"]) == (13, 13)
        assert pushed["packs_sent"] == 1  # 13 records and 13 observations are far below a pack's 1 MiB
        # the marker, the batch record's two blobs, one pack, its index, the head: 6 objects instead of 2 + 26 + 1 + 2
        assert proxy.count("PUT") == 6 and proxy.count("PUT", "/packs/") == 2 and proxy.count("PUT", "/blobs/") == 2
        assert keys(bucket, "records/") == [] and keys(bucket, "observations/") == []
        marker = json.loads(bucket.get_object(Bucket=BUCKET, Key="runlog/runlog-remote.json")["Body"].read())
        assert marker == {"format": "runlog.remote/2"}

        proxy.reset()
        again = push_json(run_cli, ledger_path)
        assert (again["records_sent"], again["observations_sent"], again["packs_sent"]) == (0, 0, 0)
        assert again["records_present"] == 13
        assert proxy.count("PUT") == 0 and proxy.count("GET", ".pack") == 0  # listed, the index read, no more

        copy = tmp_path / "copy.db"
        proxy.reset()
        code, pulled = pull_json(run_cli, copy)
        assert code == 0 and pulled["refused"] == []
        assert (pulled["records_received"], pulled["observations_received"]) == (13, 13)
        assert proxy.count("GET", ".pack") == 1
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", bucket.endpoint)  # moto itself again
    assert contents(copy) == contents(ledger_path)
    assert verified(copy)
    shown = run_cli("--ledger", copy, "show", batch_id)
    assert shown.exit_code == 0 and "12" in shown.stdout
    code, again = pull_json(run_cli, copy)
    assert (code, again["records_received"], again["observations_received"], again["records_present"]) == (0, 0, 0, 13)


def test_many_records_go_in_several_packs_of_at_most_1_mib_sent_concurrently(proxy, bucket, tmp_path, run_cli):
    alice = tmp_path / "alice.db"
    with Ledger.open(alice) as ledger:  # ~4 KiB each: 1 500 of them make 6 MiB, so six or seven packs
        ledger.add_records([make_record(run_id=str(7000000 + i), name=f"r{i}", parameters={"pad": "x" * 4000})
                            for i in range(1500)])
    pushed = push_json(run_cli, alice, "--jobs", "8")
    assert pushed["records_sent"] == 1500 and pushed["packs_sent"] >= 6
    sizes = [bucket.head_object(Bucket=BUCKET, Key=key)["ContentLength"] for key in packs(bucket)]
    assert len(sizes) == pushed["packs_sent"] and max(sizes) <= 1024 * 1024
    assert proxy.max_in_flight > 1
    code, pulled = pull_json(run_cli, tmp_path / "bob.db", "--jobs", "8")
    assert (code, pulled["records_received"]) == (0, 1500)
    assert contents(tmp_path / "bob.db")[0] == contents(alice)[0]


def test_a_push_sends_the_packs_checked_before_an_edited_record_and_never_one_holding_it(bucket, tmp_path,
                                                                                        run_cli):
    """push checks each record as it goes into a pack, while the packs before it are sent: an
    edited record is refused, the packs made of what came before it are written with their
    index and said to be, and no pack holding it, or anything after it, is written."""
    from helpers import tamper

    alice = tmp_path / "alice.db"
    with Ledger.open(alice) as ledger:  # ~4 KiB each: about 250 to a pack
        ledger.add_records([make_record(run_id=str(7000000 + i), name=f"r{i}", parameters={"pad": "x" * 4000})
                            for i in range(1500)])
        after = {address for (address,) in ledger.conn.execute("SELECT address FROM records WHERE seq >= 1200")}
    tamper(alice, "UPDATE records SET body = replace(body, '\"r1199\"', '\"r1199-edited\"') WHERE seq = 1200",
           "UPDATE records SET body = replace(body, '\"r1399\"', '\"r1399-edited\"') WHERE seq = 1400")
    with Ledger.open(alice) as ledger:
        assert not verify(ledger).ok
    result = run_cli("--ledger", alice, "push", REMOTE, "--jobs", "1")  # packs one at a time: some go first
    assert result.exit_code == 2, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("runlog: error: refusing to push: record #1200 ") and "edited outside runlog" in line
    sent = int(line.split("; ")[1].split(" record(s)")[0])
    assert "edited outside runlog) (and 1 more); " in line  # the one at #1400: checked, not sent
    assert line.endswith(f"; {sent} record(s) checked before it were sent, nothing after "
                         "(run `runlog verify` to see every problem)")
    held = [(pack, bucket.get_object(Bucket=BUCKET, Key=pack)["Body"].read()) for pack in packs(bucket)]
    assert held and sorted(keys(bucket, "packs/")) == sorted(
        [pack for pack, _ in held] + [pack.replace(".pack", ".index.json") for pack, _ in held])
    lines = [line for _, body in held for line in body.split(b"\n")[1:-1]]
    assert len(lines) == sent < 1199
    assert not any(b"r1199" in line or b"r1399" in line for line in lines)  # the edited ones: never sent
    assert not after & {hashlib.sha256(line[2:]).hexdigest() for line in lines}
    code, pulled = pull_json(run_cli, tmp_path / "bob.db")
    assert (code, pulled["records_received"], pulled["refused"]) == (0, sent, [])
    assert verified(tmp_path / "bob.db")


# -- what a pull refuses ---------------------------------------------------------------------------

def test_a_tampered_pack_is_refused_and_the_other_packs_arrive(bucket, tmp_path, run_cli):
    alice, bob, carol = tmp_path / "alice.db", tmp_path / "bob.db", tmp_path / "carol.db"
    alice_records = fill(alice, 3)
    push_json(run_cli, alice)
    [alice_pack] = packs(bucket)
    bob_records = fill(bob, 2, start=100)
    push_json(run_cli, bob)
    [bob_pack] = [key for key in packs(bucket) if key != alice_pack]
    data = bucket.get_object(Bucket=BUCKET, Key=bob_pack)["Body"].read()
    bucket.put_object(Bucket=BUCKET, Key=bob_pack, Body=data.replace(b'"run-100"', b'"run-666"'))

    result = run_cli("--ledger", carol, "pull", REMOTE)
    assert result.exit_code == 1
    assert refused(result.stderr) == [f"runlog: refused s3://{BUCKET}/{bob_pack}: content does not match its "
                                      "address (tampered or truncated)"]
    held = contents(carol)[0]
    assert held == set(alice_records) and not held & set(bob_records)


def test_a_pack_that_does_not_hold_what_its_index_names_is_refused(bucket, tmp_path, run_cli):
    alice, carol = tmp_path / "alice.db", tmp_path / "carol.db"
    [good] = fill(alice, 1, observe=False)
    push_json(run_cli, alice)
    other = rec.canonical_json(make_record(run_id="8000001", name="other"))
    claimed = hashlib.sha256(b"not in the pack").hexdigest()
    lying = put_pack(bucket, [b"r " + other], index_records=[hashlib.sha256(other).hexdigest(), claimed])

    result = run_cli("--ledger", carol, "pull", REMOTE)
    assert result.exit_code == 1
    assert refused(result.stderr) == [f"runlog: refused s3://{BUCKET}/runlog/packs/{lying}.pack: its index names "
                                      f"record {claimed} that the pack does not hold"]
    assert contents(carol)[0] == {good}


def test_an_index_that_is_not_its_packs_index_is_refused_and_the_pack_not_used(bucket, tmp_path, run_cli):
    alice, carol = tmp_path / "alice.db", tmp_path / "carol.db"
    [good] = fill(alice, 1, observe=False)
    push_json(run_cli, alice)
    [pack] = packs(bucket)
    other = rec.canonical_json(make_record(run_id="8000004", name="other"))
    digest = put_pack(bucket, [b"r " + other])
    index_key = f"runlog/packs/{digest}.index.json"
    index = json.loads(bucket.get_object(Bucket=BUCKET, Key=index_key)["Body"].read())
    index["pack"] = pack.split("/")[-1].removesuffix(".pack")  # claims to be alice's pack's index
    bucket.put_object(Bucket=BUCKET, Key=index_key, Body=rec.canonical_json(index))

    result = run_cli("--ledger", carol, "pull", REMOTE)
    assert result.exit_code == 1
    assert refused(result.stderr) == [f"runlog: refused s3://{BUCKET}/{index_key}: pack index names pack "
                                      f"{index['pack'][:12]} but is stored as the index of {digest[:12]}"]
    assert contents(carol)[0] == {good}
    assert push_json(run_cli, alice)["records_sent"] == 0


def test_a_bad_item_in_a_well_named_pack_is_refused_and_its_good_items_arrive(bucket, tmp_path, run_cli):
    bob = tmp_path / "bob.db"
    bob_record = make_record(run_id="8000002", name="fine")
    good = rec.canonical_json(bob_record)
    spaced = json.dumps(make_record(run_id="8000003", name="spaced")).encode()  # not canonical JSON
    address = hashlib.sha256(good).hexdigest()
    seen = observation_object(address, None, "2026-11-24T09:00:00Z", "GetRun", "COMPLETED", {"status": "COMPLETED"})
    misfiled = observation_object("f" * 64, None, "2026-11-24T09:00:00Z", "GetRun", "FAILED", {"status": "FAILED"})
    digest = put_pack(bucket, [b"r " + good, b"r " + spaced, b"o " + seen, b"o " + misfiled],
                      index_observations=[[hashlib.sha256(seen).hexdigest(), address],
                                          [hashlib.sha256(misfiled).hexdigest(), address]])
    bucket.put_object(Bucket=BUCKET, Key="runlog/runlog-remote.json", Body=b'{"format":"runlog.remote/2"}')

    result = run_cli("--ledger", bob, "pull", REMOTE)
    assert result.exit_code == 1
    lines = refused(result.stderr)
    key = f"s3://{BUCKET}/runlog/packs/{digest}.pack"
    assert lines == sorted([
        f"runlog: refused {key}: record {hashlib.sha256(spaced).hexdigest()}: not a record in canonical JSON",
        f"runlog: refused {key}: observation {hashlib.sha256(misfiled).hexdigest()}: names record ffffffffffff "
        f"but is stored under record {address[:12]}"])
    records, observations = contents(bob)
    assert records == {address} and observations == [hashlib.sha256(seen).hexdigest()]


def test_a_pack_over_the_size_limit_is_refused_without_being_downloaded(proxy, bucket, tmp_path, run_cli):
    alice = tmp_path / "alice.db"
    with Ledger.open(alice) as ledger:
        ledger.add_records([make_record(run_id=str(7100000 + i), name=f"r{i}", parameters={"pad": "y" * 3000})
                            for i in range(20)])  # one pack of about 70 KiB
    push_json(run_cli, alice)
    [pack] = packs(bucket)
    size = bucket.head_object(Bucket=BUCKET, Key=pack)["ContentLength"]
    proxy.reset()
    result = run_cli("--ledger", tmp_path / "bob.db", "pull", REMOTE, "--max-object-mib", "0.05")
    assert result.exit_code == 1
    assert refused(result.stderr) == [f"runlog: refused s3://{BUCKET}/{pack}: too large: {size} bytes, more than "
                                      f"the limit of {int(0.05 * 1024 * 1024)} (--max-object-mib, or max_object_mib in "
                                      "the configuration)"]
    assert proxy.count("GET", ".pack") == 0 and proxy.count("GET", ".index.json") == 1
    assert contents(tmp_path / "bob.db")[0] == set()


# -- concurrent pushers, interrupted pushes --------------------------------------------------------

class HoldPackListings(S3Proxy):
    """Holds every listing of packs/ until `expected` of them have arrived: two pushers both
    see a remote without each other's packs, as two machines pushing at the same moment do."""

    expected = 32  # 16 listings (packs/0 ... packs/f) by each of two pushes

    def __init__(self, upstream: str):
        super().__init__(upstream)
        self.listings = 0
        self.all_listed = threading.Event()

    def forward(self, handler) -> None:
        if "list-type=" in handler.path and "packs%2F" in handler.path:
            with self.lock:
                self.listings += 1
                if self.listings >= self.expected:
                    self.all_listed.set()
            self.all_listed.wait(timeout=60)
        super().forward(handler)


def add(path, *names):
    with Ledger.open(path) as ledger:
        return [ledger.add_record(make_record(run_id=str(9000000 + i), name=n))[0].address
                for i, n in enumerate(names)]


def test_concurrent_pushes_of_overlapping_sets_lose_nothing_and_pull_no_doubles(bucket, tmp_path, run_cli,
                                                                               monkeypatch):
    alice, bob, carol = tmp_path / "alice.db", tmp_path / "bob.db", tmp_path / "carol.db"
    shared = fill(alice, 4)
    shutil.copy(alice, bob)  # both hold the same four records and observation
    only_alice = add(alice, "a1", "a2")
    only_bob = add(bob, "b1")
    with proxy_in_front(HoldPackListings, bucket, monkeypatch) as proxy:
        pushes = [subprocess.Popen([sys.executable, "-m", "runlog", "--ledger", str(path), "push", REMOTE, "--json"],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ))
                  for path in (alice, bob)]
        answers = [push.communicate(timeout=120) for push in pushes]
        assert proxy.all_listed.is_set()
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", bucket.endpoint)  # moto itself again
    assert [push.returncode for push in pushes] == [0, 0], answers
    sent = [json.loads(out) for out, _ in answers]
    assert [s["records_sent"] for s in sent] == [6, 5]  # each sent the shared four: neither saw the other's pack
    assert len(packs(bucket)) == 2

    code, pulled = pull_json(run_cli, carol)
    assert code == 0 and pulled["refused"] == []
    assert pulled["records_received"] == 7 and pulled["observations_received"] == 1  # each once
    assert contents(carol)[0] == set(shared + only_alice + only_bob)
    with Ledger.open(carol) as ledger:
        assert ledger.conn.execute("SELECT count(*) FROM observations").fetchone()[0] == 1
    assert verified(carol)
    again = push_json(run_cli, alice)  # alice now sees both packs: nothing more to send
    assert (again["records_sent"], again["packs_sent"], again["records_present"]) == (0, 0, 6)


def test_a_pack_left_without_its_index_is_not_used_and_the_next_push_completes_it(bucket, tmp_path, run_cli):
    alice = tmp_path / "alice.db"
    records = fill(alice, 3)
    push_json(run_cli, alice)
    [pack] = packs(bucket)
    bucket.delete_object(Bucket=BUCKET, Key=pack.replace(".pack", ".index.json"))  # as if the push stopped there

    code, pulled = pull_json(run_cli, tmp_path / "early.db")
    assert (code, pulled["records_received"], pulled["refused"]) == (0, 0, [])

    again = push_json(run_cli, alice)
    assert (again["packs_sent"], again["records_sent"], again["records_present"]) == (0, 0, 3)  # same pack: 412
    assert packs(bucket) == [pack] and pack.replace(".pack", ".index.json") in keys(bucket, "packs/")
    code, pulled = pull_json(run_cli, tmp_path / "late.db")
    assert (code, pulled["records_received"]) == (0, 3)
    assert contents(tmp_path / "late.db")[0] == set(records)


# -- runlog.remote/1 and mixed remotes -------------------------------------------------------------

def test_a_remote_written_in_runlog_remote_1_is_still_pulled(proxy, bucket, tmp_path, run_cli):
    alice, bob = tmp_path / "alice.db", tmp_path / "bob.db"
    records = fill(alice, 3)
    pushed = push_json(run_cli, alice, "--objects")
    assert (pushed["records_sent"], pushed["packs_sent"]) == (3, 0)
    marker = json.loads(bucket.get_object(Bucket=BUCKET, Key="runlog/runlog-remote.json")["Body"].read())
    assert marker == {"format": "runlog.remote/1"}
    assert len(keys(bucket, "records/")) == 3 and keys(bucket, "packs/") == []
    code, pulled = pull_json(run_cli, bob)
    assert (code, pulled["records_received"], pulled["observations_received"]) == (0, 3, 1)
    assert contents(bob) == contents(alice) and set(records) == contents(bob)[0]


def test_a_mixed_remote_is_read_whole_and_warns_runlog_versions_before_packs(bucket, tmp_path, run_cli):
    alice, bob, carol = tmp_path / "alice.db", tmp_path / "bob.db", tmp_path / "carol.db"
    old = fill(alice, 3)
    push_json(run_cli, alice, "--objects")  # a team ledger started by runlog.remote/1
    code, _ = pull_json(run_cli, bob)
    assert code == 0
    new = add(bob, "n1", "n2")
    pushed = push_json(run_cli, bob)  # packs into the runlog.remote/1 remote: only what it lacks
    assert (pushed["records_sent"], pushed["records_present"], pushed["packs_sent"]) == (2, 3, 1)
    marker = json.loads(bucket.get_object(Bucket=BUCKET, Key="runlog/runlog-remote.json")["Body"].read())
    assert marker == {"format": "runlog.remote/1"}  # written once, never overwritten
    # the notice: a key under records/0 that no content address has, which a runlog before
    # packs lists with the records and refuses by name (exit 1) instead of missing the packs
    notice = "runlog/records/0-packs-here-upgrade-runlog.json"
    assert notice in keys(bucket, "records/0")

    result = run_cli("--ledger", carol, "pull", REMOTE, "--json")
    assert result.exit_code == 0, result.stderr
    pulled = json.loads(result.stdout)
    assert (pulled["records_received"], pulled["observations_received"], pulled["refused"]) == (5, 1, [])
    assert contents(carol)[0] == set(old + new)
    assert push_json(run_cli, carol)["records_sent"] == 0
    more = add(alice, "o1")
    assert push_json(run_cli, alice, "--objects")["records_sent"] == 1  # an old-style push still adds objects
    code, pulled = pull_json(run_cli, carol)
    assert (code, pulled["records_received"]) == (0, 1) and contents(carol)[0] == set(old + new + more)


def test_in_a_mixed_remote_a_refused_object_is_taken_from_a_pack_that_holds_it(bucket, tmp_path, run_cli):
    alice, carol = tmp_path / "alice.db", tmp_path / "carol.db"
    made = fill(alice, 3)
    push_json(run_cli, alice)  # packs
    key = f"runlog/records/{made[1][:2]}/{made[1]}.json"  # and a runlog.remote/1 copy of one record, tampered
    bucket.put_object(Bucket=BUCKET, Key=key, Body=b'{"not": "that record"}')

    result = run_cli("--ledger", carol, "pull", REMOTE)
    assert result.exit_code == 1
    assert refused(result.stderr) == [f"runlog: refused s3://{BUCKET}/{key}: content does not match its address "
                                      "(tampered or truncated)"]
    assert contents(carol) == contents(alice)  # the record came from the pack


# -- the ledger side -------------------------------------------------------------------------------

def test_received_observations_are_inserted_in_bulk_once_each_and_only_for_held_records(tmp_path):
    path = tmp_path / "ledger.db"
    [address] = fill(path, 1, observe=False)
    items = [{"record": address, "run_uuid": None, "observed_at": f"2026-11-24T09:00:0{i}Z", "source": "GetRun",
              "status": "RUNNING", "body": {"status": "RUNNING", "n": i}} for i in range(3)]
    stranger = {**items[0], "record": "e" * 64}
    with Ledger.open(path) as ledger:
        assert ledger.add_received_observations(items + [items[1], stranger]) == 3
        assert ledger.add_received_observations(items) == 0
        assert len(ledger.observations(address)) == 3
    assert verified(path)
