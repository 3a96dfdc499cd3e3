"""A cohort on the team ledger: a batch record (which holds its whole cohort, so it can be
larger than any single run's record) and its member records and statuses, pushed and pulled
through moto's S3 server with the CLI; pulled records inserted page by page; a tampered
member refused while the rest of the cohort arrives."""

from __future__ import annotations

import json
import uuid

from helpers import (
    REMOTE,
    S3Proxy,
    another_answer,
    cohort_setting,
    pack_of,
    proxy_in_front,
    pull_json,
    push_json,
    record_key,
    refreshed_cohort,
)
from runlog import record as rec
from runlog import syncinsert
from runlog.ledger import Ledger


def kinds(path) -> list[str]:
    with Ledger.open(path, create=False) as ledger:
        return sorted(e.kind for e in ledger.entries())


def test_a_cohort_is_pushed_and_pulled_page_by_page_in_order(s3_emulator, bucket, ledger_path, git_repo, run_cli,
                                                              tmp_path, monkeypatch):
    samples = [f"S{i:03d}" for i in range(7)]
    batch_id = refreshed_cohort(run_cli, s3_emulator, bucket, samples)
    pushed = push_json(run_cli, ledger_path)
    assert (pushed["records_sent"], pushed["observations_sent"]) == (8, 8)  # batch + 7 members; GetBatch + 7 statuses
    again = push_json(run_cli, ledger_path)
    assert (again["records_sent"], again["observations_sent"], again["records_present"]) == (0, 0, 8)

    monkeypatch.setattr(syncinsert, "INSERT_PAGE", 3)  # 8 records: pages of 3, 3 and 2
    other = tmp_path / "other.db"
    code, pulled = pull_json(run_cli, other)
    assert (code, pulled["records_received"], pulled["observations_received"], pulled["refused"]) == (0, 8, 8, [])
    assert kinds(other) == ["batch"] + ["member"] * 7
    with Ledger.open(other, create=False) as ledger:  # oldest first, then by address: the same in every ledger
        rows = ledger.conn.execute("SELECT address, created FROM records ORDER BY seq").fetchall()
    assert rows == sorted(rows, key=lambda row: (row[1], row[0]))
    with Ledger.open(ledger_path, create=False) as ledger:
        assert {row[0] for row in rows} == ledger.addresses()
    shown = json.loads(run_cli("--ledger", other, "show", batch_id, "--json").stdout)["batch"]
    assert shown["run_status"] == {"COMPLETED": 7}
    assert run_cli("--ledger", other, "verify", "--no-remote").exit_code == 0
    code, pulled = pull_json(run_cli, other)  # nothing new
    assert (code, pulled["records_received"], pulled["records_present"]) == (0, 0, 8)


def test_a_tampered_member_is_refused_and_the_rest_of_the_cohort_arrives(s3_emulator, bucket, ledger_path, git_repo,
                                                                         run_cli, tmp_path):
    refreshed_cohort(run_cli, s3_emulator, bucket, ["S1", "S2", "S3"])
    push_json(run_cli, ledger_path, "--objects")  # one object each (a tampered pack: test_sync_packs)
    with Ledger.open(ledger_path, create=False) as ledger:
        member = ledger.entries(where="kind = 'member'")[0]
    edited = member.body.replace(member.run_id, "9999999").encode()  # another run id: not its address
    bucket.put_object(Bucket="lab-provenance", Key=record_key(member.address), Body=edited)

    other = tmp_path / "other.db"
    result = run_cli("--ledger", other, "pull", REMOTE)
    assert result.exit_code == 1
    line = f"runlog: refused s3://lab-provenance/{record_key(member.address)}: content does not match its address"
    assert line in result.stderr
    assert kinds(other) == ["batch", "member", "member"]
    with Ledger.open(other, create=False) as ledger:
        assert member.address not in ledger.addresses()
        assert ledger.conn.execute("SELECT count(*) FROM observations WHERE record = ?",
                                   (member.address,)).fetchone()[0] == 0  # its status waits for its record
    assert run_cli("--ledger", other, "verify", "--no-remote").exit_code == 0


def big_batch(ledger_path, runs: int) -> tuple[str, int]:
    """A batch record like the cohort's, holding `runs` run settings (an s3UriSettings cohort of
    that size), added to the ledger; (its address, its size in bytes)."""
    with Ledger.open(ledger_path) as ledger:
        record = ledger.entries(where="kind = 'batch'")[0].record
        settings = [cohort_setting(f"S{i:06d}") for i in range(runs)]
        record["batch"]["settings_file"]["content"] = settings
        record["batch"]["runs"] = runs
        record["batch"]["run_setting_ids_sha256"] = rec.sha256_hex(rec.canonical_json([s["runSettingId"]
                                                                                      for s in settings]))
        record["request"]["requestId"] = str(uuid.uuid4())
        another_answer(record)
        record["fingerprint"] = rec.fingerprint(record)
        entry, added = ledger.add_record(record)
        assert added
        return entry.address, len(entry.body.encode())


def test_a_batch_record_over_16_mib_is_pulled_with_the_default_limit(s3_emulator, bucket, ledger_path, git_repo,
                                                                     run_cli, tmp_path, proxy):
    refreshed_cohort(run_cli, s3_emulator, bucket, ["S1"])
    address, size = big_batch(ledger_path, 140_000)
    assert size > 16 * 2**20
    pushed = push_json(run_cli, ledger_path)
    assert pushed["records_sent"] == 3
    pack = pack_of(bucket, address)  # a record over a pack's 1 MiB has a pack of its own
    proxy.reset()

    limited = tmp_path / "limited.db"
    code, pulled = pull_json(run_cli, limited, "--max-object-mib", "16")
    assert code == 1 and [item["key"] for item in pulled["refused"]] == [pack]
    assert pulled["refused"][0]["why"].startswith(f"too large: {size + len(b'runlog.pack/1') + 4} bytes")
    assert proxy.count("GET", pack) == 0  # refused from the listing's size

    other = tmp_path / "other.db"
    code, pulled = pull_json(run_cli, other)  # the default: a cohort's batch record fits
    assert (code, pulled["records_received"], pulled["refused"]) == (0, 3, [])
    with Ledger.open(other, create=False) as ledger:
        entry = ledger.get(address)
        assert entry is not None and len(entry.record["batch"]["settings_file"]["content"]) == 140_000
    assert run_cli("--ledger", other, "verify", "--no-remote").exit_code == 0


class CountingBigGets(S3Proxy):
    """The proxy, also counting the most GETs of the objects named in `big` in flight at once."""

    def __init__(self, upstream: str):
        super().__init__(upstream)
        self.big: set[str] = set()
        self.big_in_flight = self.max_big_in_flight = 0

    def forward(self, handler) -> None:
        big = handler.command == "GET" and any(address in handler.path for address in self.big)
        with self.lock:
            self.big_in_flight += big
            self.max_big_in_flight = max(self.max_big_in_flight, self.big_in_flight)
        try:
            super().forward(handler)
        finally:
            with self.lock:
                self.big_in_flight -= big


def test_objects_over_16_mib_are_fetched_one_at_a_time(s3_emulator, bucket, ledger_path, git_repo, run_cli,
                                                        tmp_path, monkeypatch):
    refreshed_cohort(run_cli, s3_emulator, bucket, ["S1", "S2", "S3"])
    first, _ = big_batch(ledger_path, 140_000)
    second, _ = big_batch(ledger_path, 140_001)
    push_json(run_cli, ledger_path)
    with proxy_in_front(CountingBigGets, bucket, monkeypatch) as proxy:
        proxy.big = {pack_of(bucket, first).split("/")[-1], pack_of(bucket, second).split("/")[-1]}
        proxy.latency = 0.3  # two GETs started together would overlap
        code, pulled = pull_json(run_cli, tmp_path / "other.db", "--jobs", "8")
    assert (code, pulled["records_received"], pulled["refused"]) == (0, 6, [])
    assert [proxy.count("GET", big) for big in proxy.big] == [1, 1]
    assert proxy.max_big_in_flight == 1
    assert proxy.max_in_flight > 2  # the other objects were fetched side by side
