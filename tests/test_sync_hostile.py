"""The team ledger under hostile objects (docs/reliability.md, "The team ledger under hostile
objects"): objects in moto's S3, each named by its own SHA-256 so that the name check passes,
that are too deep, not strict JSON, too large, a second record for one requestId, denied;
a listing that is not S3; status that must not move backwards; names that must not reach a
terminal raw. A pull imports every good object and refuses each bad one by its key."""

from __future__ import annotations

import json

import pytest

from helpers import BUCKET, REMOTE, S3Proxy, addresses, fill, pack_of, proxy_in_front, pull_json, push_json, record_key
from recordfactory import make_record
from runlog import record as rec
from runlog.ledger import Ledger, observation_object
from runlog.safejson import UntrustedJSONError, loads_untrusted
from runlog.textsafe import terminal_safe
from runlog.verify import verify

MARKER_KEY = "runlog/runlog-remote.json"


class HostileProxy(S3Proxy):
    """S3Proxy plus: `deny_get` (403 AccessDenied to GetObject of keys containing it) and
    `html_listing` (every listing answered 200 with an HTML page, as a proxy's login page)."""

    def __init__(self, upstream: str):
        super().__init__(upstream)
        self.deny_get: str | None = None
        self.html_listing = False

    def forward(self, handler) -> None:
        if self.html_listing and "list-type=" in handler.path:
            page = b"<!DOCTYPE html><html><body><h1>Sign in to the proxy</h1></body></html>"
            handler.send_response_only(200)
            handler.send_header("Content-Type", "text/html; charset=utf-8")
            handler.send_header("Content-Length", str(len(page)))
            handler.end_headers()
            handler.wfile.write(page)
            return
        if self.deny_get and handler.command == "GET" and self.deny_get in handler.path:
            return self._error(handler, 403, "AccessDenied", "Access Denied")
        super().forward(handler)


@pytest.fixture
def proxy(bucket, monkeypatch):
    with proxy_in_front(HostileProxy, bucket, monkeypatch) as front:
        yield front


def put_record_bytes(bucket, data: bytes) -> str:
    """Store bytes as a record named by their own SHA-256 (so the name check passes); the key."""
    key = record_key(rec.sha256_hex(data))
    bucket.put_object(Bucket=BUCKET, Key=key, Body=data)
    return key


def put_observation_bytes(bucket, record: str, data: bytes) -> str:
    key = f"runlog/observations/{record}/{rec.sha256_hex(data)}.json"
    bucket.put_object(Bucket=BUCKET, Key=key, Body=data)
    return key


def refused_lines(stderr: str) -> dict[str, str]:
    """s3://key -> the whole `runlog: refused KEY: why` line."""
    return {line.split()[2].rstrip(":"): line for line in stderr.splitlines() if line.startswith("runlog: refused")}


def with_value(record: dict, raw: bytes) -> bytes:
    """The record's canonical JSON with its one parameter's value replaced by raw JSON text."""
    record = json.loads(json.dumps(record))
    record["request"]["parameters"] = {"sample_name": "@@RAW@@"}
    data = rec.canonical_json(record)
    assert data.count(b'"@@RAW@@"') == 1
    return data.replace(b'"@@RAW@@"', raw)


def a_team_ledger(bucket, tmp_path, run_cli, count=3):
    """A remote holding `count` good records (and one observation) pushed from alice."""
    made = fill(tmp_path / "alice.db", count)
    push_json(run_cli, tmp_path / "alice.db")
    return made


# -- hostile objects ---------------------------------------------------------------------------------

HOSTILE_RECORDS = {
    "1500 nested [": (lambda: b"[" * 1500, "nested deeper than 100 levels"),
    "a record nested 5000 levels": (lambda: with_value(make_record(), b"[" * 5000 + b"]" * 5000),
                                    "nested deeper than 100 levels"),
    "a lone surrogate in a record": (lambda: with_value(make_record(), b'"\\ud800"'), "lone surrogate"),
    "NaN in a record": (lambda: with_value(make_record(), b"NaN"), "NaN is not a JSON number"),
    "an overflowing number in a record": (lambda: with_value(make_record(), b"1e999"), "does not fit"),
    "invalid UTF-8 in a record": (lambda: with_value(make_record(), b'"\xed\xa0\x80"'), "not UTF-8"),
    "a duplicate key in a record": (lambda: with_value(make_record(), b'{"a":1,"a":2}'), "appears twice"),
}


@pytest.mark.parametrize("case", list(HOSTILE_RECORDS))
def test_a_hostile_record_is_refused_by_key_and_the_good_ones_import(case, bucket, tmp_path, run_cli):
    made = a_team_ledger(bucket, tmp_path, run_cli)
    build, reason = HOSTILE_RECORDS[case]
    key = put_record_bytes(bucket, build())
    carol = tmp_path / "carol.db"

    result = run_cli("--ledger", carol, "pull", REMOTE)
    assert result.exit_code == 1, result.output
    refused = refused_lines(result.stderr)
    assert list(refused) == [f"s3://{BUCKET}/{key}"]
    assert reason in refused[f"s3://{BUCKET}/{key}"]
    assert "received 3 record(s) and 1 observation(s)" in result.stdout
    assert addresses(carol) == set(made)
    with Ledger.open(carol) as ledger:
        assert verify(ledger).ok
    # the same on every retry: nothing more to import, the same one refused, and --json says so
    code, again = pull_json(run_cli, carol)
    assert code == 1 and again["records_received"] == 0
    assert [item["key"] for item in again["refused"]] == [key] and reason in again["refused"][0]["why"]


def test_objects_within_the_limits_still_travel(bucket, tmp_path, run_cli):
    deep: object = "leaf"
    for _ in range(95):  # with request.parameters.value: 98 levels, under the limit of 100
        deep = [deep]
    alice = tmp_path / "alice.db"
    with Ledger.open(alice) as ledger:
        entry, _ = ledger.add_record(make_record(name="naïve 🧬 \\ud800 [[", parameters={"value": deep}))
    push_json(run_cli, alice)
    code, pulled = pull_json(run_cli, tmp_path / "bob.db")
    assert (code, pulled["records_received"], pulled["refused"]) == (0, 1, [])
    assert addresses(tmp_path / "bob.db") == {entry.address}


def test_an_observation_with_a_lone_surrogate_is_refused(bucket, tmp_path, run_cli):
    made = a_team_ledger(bucket, tmp_path, run_cli)
    data = observation_object(made[1], None, "2026-11-24T10:00:00.000Z", "GetRun", "RUNNING",
                              {"status": "RUNNING", "statusMessage": "@@RAW@@"}).replace(b'"@@RAW@@"', b'"\\ud800"')
    key = put_observation_bytes(bucket, made[1], data)
    carol = tmp_path / "carol.db"

    code, pulled = pull_json(run_cli, carol)
    assert code == 1
    assert [(item["key"], "lone surrogate" in item["why"]) for item in pulled["refused"]] == [(key, True)]
    assert (pulled["records_received"], pulled["observations_received"]) == (3, 1)
    with Ledger.open(carol) as ledger:
        assert ledger.observations(made[1]) == []


def test_an_observation_from_the_future_is_refused(bucket, tmp_path, run_cli):
    made = a_team_ledger(bucket, tmp_path, run_cli)
    data = observation_object(made[1], None, "2999-01-01T00:00:00.000Z", "GetRun", "RUNNING", {"status": "RUNNING"})
    key = put_observation_bytes(bucket, made[1], data)
    code, pulled = pull_json(run_cli, tmp_path / "carol.db")
    assert code == 1 and [item["key"] for item in pulled["refused"]] == [key]
    assert "in the future" in pulled["refused"][0]["why"]


def test_a_deeply_nested_format_marker_is_refused_and_the_records_still_import(bucket, tmp_path, run_cli):
    made = a_team_ledger(bucket, tmp_path, run_cli)
    bucket.put_object(Bucket=BUCKET, Key=MARKER_KEY,
                      Body=b'{"format":"runlog.remote/1","x":' + b"[" * 100_000 + b"]" * 100_000 + b"}")
    carol = tmp_path / "carol.db"

    result = run_cli("--ledger", carol, "pull", REMOTE)
    assert result.exit_code == 1, result.output
    refused = refused_lines(result.stderr)
    assert list(refused) == [f"s3://{BUCKET}/{MARKER_KEY}"]
    assert "format marker unreadable: nested deeper than 100 levels" in refused[f"s3://{BUCKET}/{MARKER_KEY}"]
    assert addresses(carol) == set(made)
    # push still works (it writes nothing over the marker) and pull keeps saying so
    assert push_json(run_cli, tmp_path / "alice.db")["records_sent"] == 0


def test_objects_over_the_size_limit_are_refused_without_being_downloaded(proxy, bucket, tmp_path, run_cli,
                                                                          monkeypatch):
    made = a_team_ledger(bucket, tmp_path, run_cli)
    with Ledger.open(tmp_path / "big.db") as ledger:
        big, _ = ledger.add_record(make_record(parameters={"notes": "x" * 300_000}))
    push_json(run_cli, tmp_path / "big.db")
    pack = pack_of(bucket, big.address)
    proxy.reset()

    code, pulled = pull_json(run_cli, tmp_path / "carol.db", "--max-object-mib", "0.25")
    assert code == 1 and pulled["records_received"] == 3
    assert [item["key"] for item in pulled["refused"]] == [pack]
    assert pulled["refused"][0]["why"].startswith("too large: ")
    assert proxy.count("GET", pack) == 0  # refused from the listing's size
    assert addresses(tmp_path / "carol.db") == set(made)

    monkeypatch.setenv("RUNLOG_MAX_OBJECT_MIB", "0.25")  # the configuration key
    code, pulled = pull_json(run_cli, tmp_path / "dave.db")
    assert code == 1 and [item["key"] for item in pulled["refused"]] == [pack]
    monkeypatch.delenv("RUNLOG_MAX_OBJECT_MIB")
    code, pulled = pull_json(run_cli, tmp_path / "dave.db")  # the default, 256 MiB, takes it
    assert (code, pulled["records_received"], pulled["refused"]) == (0, 1, [])

    bad = run_cli("--ledger", tmp_path / "x.db", "pull", REMOTE, "--max-object-mib", "0")
    assert bad.exit_code == 2 and "--max-object-mib must be more than 0" in bad.stderr


def test_size_limit_of_loads_untrusted_is_checked_before_decoding():
    with pytest.raises(UntrustedJSONError, match="too large: 11 bytes"):
        loads_untrusted(b'"\xff\xff\xff\xff\xff\xff\xff\xff\xff"', max_bytes=10)
    assert loads_untrusted(b'{"a":[1,2.5,"\\ud83d\\ude00"]}') == {"a": [1, 2.5, "\U0001F600"]}


# -- two records, one requestId ------------------------------------------------------------------------

def twins():
    """Two valid records with the same requestId, the first one older."""
    first = make_record(run_id="5200001", name="first")
    second = make_record(run_id="5200002", name="second")
    second["request"]["requestId"] = first["request"]["requestId"]
    first["created"], second["created"] = "2026-11-01T09:00:00.000Z", "2026-11-02T09:00:00.000Z"
    return first, second


def test_two_remote_records_with_one_request_id_keep_the_older_and_name_both(bucket, tmp_path, run_cli):
    made = a_team_ledger(bucket, tmp_path, run_cli)
    first, second = twins()
    first_key = put_record_bytes(bucket, rec.canonical_json(first))
    second_key = put_record_bytes(bucket, rec.canonical_json(second))
    carol = tmp_path / "carol.db"

    result = run_cli("--ledger", carol, "pull", REMOTE)
    assert result.exit_code == 1, result.output  # was 70: IntegrityError
    refused = refused_lines(result.stderr)
    line = refused[f"s3://{BUCKET}/{second_key}"]
    assert list(refused) == [f"s3://{BUCKET}/{second_key}"]
    assert rec.address(first) in line and f"s3://{BUCKET}/{first_key}" in line and rec.address(second) in line
    assert first["request"]["requestId"] in line
    assert addresses(carol) == set(made) | {rec.address(first)}
    with Ledger.open(carol) as ledger:
        assert verify(ledger).ok


def test_a_remote_record_reusing_a_local_request_id_is_refused(bucket, tmp_path, run_cli):
    a_team_ledger(bucket, tmp_path, run_cli)
    first, second = twins()
    carol = tmp_path / "carol.db"
    with Ledger.open(carol) as ledger:
        ledger.add_record(second)  # the local ledger holds the younger one already
    key = put_record_bytes(bucket, rec.canonical_json(first))

    code, pulled = pull_json(run_cli, carol)
    assert code == 1 and pulled["records_received"] == 3
    [item] = pulled["refused"]
    assert item["key"] == key and rec.address(second) in item["why"] and "local ledger" in item["why"]
    assert rec.address(first) not in addresses(carol)


# -- S3 answers -----------------------------------------------------------------------------------------

def test_access_denied_to_one_object_refuses_that_key_and_imports_the_rest(proxy, bucket, tmp_path, run_cli):
    made = a_team_ledger(bucket, tmp_path, run_cli, count=5)
    denied = pack_of(bucket, made[2])  # alice's five records are in one pack
    others = fill(tmp_path / "bob.db", 2, start=50)
    push_json(run_cli, tmp_path / "bob.db")  # bob's two in another
    proxy.deny_get = denied.split("/")[-1]
    carol = tmp_path / "carol.db"

    result = run_cli("--ledger", carol, "pull", REMOTE)
    assert result.exit_code == 1, result.output
    refused = refused_lines(result.stderr)
    assert list(refused) == [f"s3://{BUCKET}/{denied}"]
    assert "access denied (GetObject)" in refused[f"s3://{BUCKET}/{denied}"]
    assert addresses(carol) == set(others)

    proxy.deny_get = None  # once allowed, a rerun fetches the rest
    code, pulled = pull_json(run_cli, carol)
    assert (code, pulled["records_received"], pulled["refused"]) == (0, 5, [])


def test_an_html_answer_to_the_listing_is_an_error_not_an_empty_remote(proxy, bucket, tmp_path, run_cli):
    a_team_ledger(bucket, tmp_path, run_cli)
    proxy.html_listing = True
    carol = tmp_path / "carol.db"

    result = run_cli("--ledger", carol, "pull", REMOTE)
    assert result.exit_code == 1
    assert "received 0 record" not in result.stdout
    [line] = result.stderr.splitlines()
    assert line.startswith(f"runlog: error: {REMOTE}/ did not answer as S3: ListObjectsV2 returned HTTP 200 "
                           "with text/html")
    assert "AWS_ENDPOINT_URL_S3" in line
    assert not carol.exists()
    pushed = run_cli("--ledger", tmp_path / "alice.db", "push", REMOTE)  # push neither
    assert pushed.exit_code == 1 and "did not answer as S3" in pushed.stderr


# -- status never moves backwards ------------------------------------------------------------------------

def getrun(status, created="2026-11-24T09:00:00Z", started=None, stopped=None):
    body = {"status": status, "creationTime": created}
    if started:
        body["startTime"] = started
    if stopped:
        body["stopTime"] = stopped
    return body


def test_pulling_older_observations_after_newer_ones_does_not_move_status_backwards(bucket, tmp_path, run_cli):
    alice, bob = tmp_path / "alice.db", tmp_path / "bob.db"
    [record, other] = fill(alice, 2, observe=False)
    push_json(run_cli, alice)
    pull_json(run_cli, bob)

    def status_in(path):
        listed = {e["address"]: e["status"] for e in json.loads(run_cli("--ledger", path, "log", "--json").stdout)}
        shown = json.loads(run_cli("--ledger", path, "show", record[:12], "--json").stdout)["status"]
        assert shown == listed[record]
        return listed[record], listed[other]

    with Ledger.open(bob) as ledger:  # bob sees the run finish
        ledger.add_observation(record, "GetRun", getrun("COMPLETED", started="2026-11-24T09:05:00Z",
                                                         stopped="2026-11-24T10:00:00Z"),
                               observed_at="2026-11-24T10:01:00.000Z", status="COMPLETED")
        ledger.add_observation(other, "GetRun", getrun("RUNNING", started="2026-11-24T09:05:00Z"),
                               observed_at="2026-11-24T09:30:00.000Z", status="RUNNING")
    with Ledger.open(alice) as ledger:  # alice saw it running earlier (her clock is two hours fast)
        ledger.add_observation(record, "GetRun", getrun("RUNNING", started="2026-11-24T09:05:00Z"),
                               observed_at="2026-11-24T11:30:00.000Z", status="RUNNING")
        ledger.add_observation(other, "GetRun", getrun("STARTING"),
                               observed_at="2026-11-24T11:00:00.000Z", status="STARTING")
    push_json(run_cli, alice)
    assert status_in(bob) == ("COMPLETED", "RUNNING")
    code, pulled = pull_json(run_cli, bob)
    assert (code, pulled["observations_received"]) == (0, 2)
    assert status_in(bob) == ("COMPLETED", "RUNNING")  # was RUNNING, STARTING: the newest rows won
    push_json(run_cli, bob)
    pull_json(run_cli, alice)
    assert status_in(alice) == ("COMPLETED", "RUNNING")  # both ledgers agree, whatever the order


def test_status_follows_the_service_times_among_unfinished_states(tmp_path, run_cli):
    path = tmp_path / "l.db"
    [record] = fill(path, 1, observe=False)
    with Ledger.open(path) as ledger:
        ledger.add_observation(record, "GetRun", getrun("STOPPING", started="2026-11-24T09:05:00Z"),
                               observed_at="2026-11-24T09:50:00.000Z", status="STOPPING")
        ledger.add_observation(record, "GetRun", getrun("RUNNING", started="2026-11-24T09:05:00Z"),
                               observed_at="2026-11-24T09:10:00.000Z", status="RUNNING")  # inserted later
        ledger.add_observation(record, "GetRun", getrun("PENDING"),
                               observed_at="2026-11-24T09:20:00.000Z", status="PENDING")  # a skewed clock
    [entry] = json.loads(run_cli("--ledger", path, "log", "--json").stdout)
    assert entry["status"] == "STOPPING"
    with Ledger.open(path) as ledger:
        ledger.add_observation(record, "GetRun", {"status": "DELETED", "reason": "GetRun: run not found"},
                               observed_at="2026-11-24T08:00:00.000Z", status="DELETED")
    assert json.loads(run_cli("--ledger", path, "log", "--json").stdout)[0]["status"] == "DELETED"


# -- names that must not reach a terminal raw -------------------------------------------------------------

def test_remote_names_are_printed_with_control_characters_escaped(bucket, tmp_path, run_cli):
    alice = tmp_path / "alice.db"
    fill(alice, 1)
    with Ledger.open(alice) as ledger:
        evil, _ = ledger.add_record(make_record(run_id="5300000", name="evil\x1b[2J\nrunlog: forged line"))
    push_json(run_cli, alice)
    sha = "0" * 64
    bucket.put_object(Bucket=BUCKET, Key="runlog/records/ab/\x1b[2J%0Arunlog: forged.json", Body=b"{}")
    bucket.put_object(Bucket=BUCKET, Key=f"runlog/attempts/req%0Arunlog: forged%1B%5B2J/{sha}.json", Body=b"{}")
    carol = tmp_path / "carol.db"

    result = run_cli("--ledger", carol, "pull", REMOTE)
    assert result.exit_code == 1
    output = result.stdout + result.stderr
    assert "\x1b" not in output and "\r" not in output
    assert not any(line.startswith("runlog: forged") for line in output.splitlines())
    assert f"refused s3://{BUCKET}/runlog/records/ab/\\x1b[2J%0Arunlog: forged.json: not named" in result.stderr
    assert "(req\\nrunlog: forged\\x1b[2J)" in result.stderr  # the pending attempt's request id

    listed = run_cli("--ledger", carol, "log")
    assert listed.exit_code == 0 and "evil\\x1b[2J\\nrunlog: forged line" in listed.stdout
    shown = run_cli("--ledger", carol, "show", evil.address[:12])
    assert shown.exit_code == 0
    for out in (listed.stdout, shown.stdout):
        assert "\x1b" not in out
        assert not any(line.startswith("runlog: forged") for line in out.splitlines())


def test_terminal_safe_escapes_controls_and_keeps_text():
    assert terminal_safe("naïve run 🧬 (a/b)") == "naïve run 🧬 (a/b)"
    assert terminal_safe("a\x1b[2J\r\n\t\x00\x7f\x9b\u202eb") == "a\\x1b[2J\\r\\n\\t\\x00\\x7f\\x9b\\u202eb"
