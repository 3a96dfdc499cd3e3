"""submit-batch at scale: the faster ways it reads a cohort and writes its record give the
same answers as the strict, slower ones (the settings file's value or its refusal, the
record's canonical bytes, the template check's verdict), seen from the CLI and the ledger."""

from __future__ import annotations

import gc
import json
import random
import subprocess
import sys

import pytest

from helpers import COHORT_DEFAULT, COHORT_ROLE
from runlog import blobs, fastjson, safejson
from runlog import record as rec
from runlog.ledger import INTENT_COLUMNS, Ledger, attempt_intent

ROLE = COHORT_ROLE
WORKFLOW = COHORT_DEFAULT["workflowId"]  # cram-to-bam: sample_name, input_cram, ref_dict, ref_fasta, ref_fasta_index
BUCKET = "cohort-bucket"
URI = f"s3://{BUCKET}/cohort/settings.json"
DEFAULT = COHORT_DEFAULT


def setting(sample: str, **parameters) -> dict:
    return {"runSettingId": sample, "name": f"align-{sample}",
            "parameters": {"sample_name": sample, "input_cram": f"s3://{BUCKET}/crams/{sample}.cram", **parameters}}


def submit_file(run_cli, s3_server, body: bytes, *more: str):
    s3_server.create_bucket(Bucket=BUCKET)
    s3_server.put_object(Bucket=BUCKET, Key="cohort/settings.json", Body=body)
    return run_cli("submit-batch", "--default-run-setting", json.dumps(DEFAULT),
                   "--batch-run-settings", json.dumps({"s3UriSettings": URI}), "--resolve-timeout", "30", *more)


def batch_records(ledger_path) -> list[dict]:
    with Ledger.open(ledger_path, create=False) as ledger:
        return [e.record for e in ledger.entries() if e.kind == "batch"]


def started(emulator) -> int:
    return sum(1 for r in emulator.requests if r["operation"] == "StartRunBatch")


# -- reading untrusted JSON: the same value or the same refusal as the strict reader ----------------

def strict(raw: bytes, max_depth: int):
    """What the strict reader alone makes of raw: ("value", value) or ("refused", reason)."""
    try:
        return "value", safejson.loads_strict(raw.decode("utf-8"), max_depth=max_depth)
    except safejson.StrictJSONError as exc:
        return "refused", exc.reason
    except UnicodeDecodeError:
        return "refused", "not UTF-8"


def untrusted(raw: bytes, max_depth: int):
    try:
        return "value", safejson.loads_untrusted(raw, max_depth=max_depth)
    except safejson.UntrustedJSONError as exc:
        return "refused", exc.reason


def typed(value):
    """value with the type of every number kept (1 == 1.0 == True in Python)."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    return (type(value).__name__, value)


def why(reason: str) -> str:
    for words in ("not UTF-8", "not JSON", "appears twice", "nested deeper", "lone surrogate",
                  "range of JSON numbers", "not a JSON number"):
        if words in reason:
            return words
    return "?"


HOSTILE = [
    b'{"a": 1, "a": 2}', b'[{"x": {"k": "v:w", "k": "z"}}]', b'{"a": "x:y", "b": 1, "a": "q"}',
    b'{"a\\u003a": 1, "a\\u003a": 2}', b'{"a": "\\u003a", "a": 1}', b'{"\\u003A": 1}',
    b'[1e999]', b'[-1e999]', b'[NaN]', b'{"a": Infinity}', b'["\\ud800"]', b'{"\\udc00": 1}',
    b'["\\ud83d\\ude00"]', b'[12345678901234567890123]', b'[-9223372036854775809]', b'[18446744073709551615]',
    b'[9223372036854775807, -9223372036854775808]', b'[1234567890123456789]', b'[123456789012345678]',
    b'[1.5e300, 2.5E-300, 1e16, 0.1e-400]', b'[0.30000000000000004, -0.0, 5e-324]', b'[1] x', b'[1,]',
    b'"\xed\xa0\x80"', b'"\xc0\xaf"', b"\xff", b'{"a": 1}\x00', b" [ ] ", b"", b"[" * 5 + b"]" * 5,
    b'{"k": "' + "é:ü".encode() + b'", "k": 0}', b'[true, false, null, {}, [], ""]',
]


@pytest.mark.parametrize("raw", HOSTILE, ids=range(len(HOSTILE)))
def test_untrusted_json_reads_as_the_strict_reader_reads_it(raw):
    kind, answer = strict(raw, 64)
    got_kind, got = untrusted(raw, 64)
    assert got_kind == kind, (raw, got)
    if kind == "value":
        assert typed(got) == typed(answer)
    else:  # refused either way, for the same reason (the strict reader's words reach the user)
        assert why(got) == why(answer) != "?", (got, answer)


@pytest.mark.parametrize("depth", [1, 2, 3, 7, 8, 9])
@pytest.mark.parametrize("empty", [True, False])
def test_nesting_at_and_beyond_the_limit_is_judged_as_the_strict_reader_does(depth, empty):
    inner = b"[]" if empty else b'[{"a": 1}]'
    raw = b'[{"x": ' * depth + inner + b"}]" * depth
    limit = 2 * depth + 1  # the innermost array or object sits at 2*depth (+1 when not empty)
    for max_depth in (limit - 1, limit, limit + 1, limit + 2):
        kind, answer = strict(raw, max_depth)
        got_kind, got = untrusted(raw, max_depth)
        assert (got_kind, typed(got) if got_kind == "value" else "nested" in got) == (
            kind, typed(answer) if kind == "value" else "nested" in answer), (raw, max_depth)


def test_floats_and_integers_in_any_spelling_read_as_the_json_module_reads_them():
    rnd = random.Random(14)
    numbers = []
    for _ in range(3000):
        digits = str(rnd.randint(0, 10 ** rnd.randint(1, 25)))
        fraction = "".join(rnd.choice("0123456789") for _ in range(rnd.randint(1, 22)))
        number = rnd.choice(["", "-"]) + digits
        if rnd.random() < 0.6:
            number += "." + fraction
        if rnd.random() < 0.3:
            number += rnd.choice("eE") + rnd.choice(["", "+", "-"]) + str(rnd.randint(0, 280))
        numbers.append(number)
    raw = ("[" + ", ".join(numbers) + "]").encode()
    assert typed(safejson.loads_untrusted(raw)) == typed(json.loads(raw))


def test_a_plain_cohort_takes_the_fast_reader_and_a_hostile_one_does_not():
    """The fast reader is what makes 100 000 settings cheap: it must take a plain cohort
    (else the benchmark measures the strict path), and never the hostile bytes above."""
    cohort = json.dumps([setting(f"S{i:06d}", depth=i % 7, ratio=i / 7, tag="a:b") for i in range(2000)]).encode()
    assert safejson._plain_value(cohort, 64) == json.loads(cohort)
    for raw in HOSTILE:
        if strict(raw, 64)[0] == "refused":
            assert safejson._plain_value(raw, 64) is safejson._SLOW, raw


# -- canonical JSON of what is written -----------------------------------------------------------

@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_a_value_with_nulls_and_a_non_finite_float_anywhere_is_refused_as_canonical_json_refuses_it(bad):
    rnd = random.Random(2)
    value = {"cohort": [setting(f"S{i}", missing=None, ratio=rnd.random()) for i in range(500)], "none": None}
    assert fastjson.dumps(value) == rec.canonical_json(value)
    value["cohort"][rnd.randrange(500)]["parameters"]["deep"] = [1, {"x": bad}]
    with pytest.raises(ValueError):
        rec.canonical_json(value)
    with pytest.raises(ValueError):
        fastjson.dumps(value)


def test_values_whose_bytes_look_like_a_non_finite_float_are_written_canonically():
    """Text that marshal writes like an infinity costs the exact check, not a wrong answer."""
    tricky = {"a": None, "s": "g\x00\x00\x00\x00\x00\x00\u00f0\x7f", "t": "\x7f\U0001f600", "n": [1.5, -2.0, 1e308]}
    assert fastjson.dumps(tricky) == rec.canonical_json(tricky)


@pytest.mark.parametrize("keys", [
    ["aws", "batch", "kind", "parameters", "request", "warnings"], ["zeta", "\u00e9t\u00e9", "p"], ["a", "b"],
    ["parameters", "z"], [], ["outcome\u00e9", "outcomd", "outcom"],
])
def test_an_object_and_the_object_with_a_member_added_are_joined_from_one_encoding(keys):
    obj = {key: {"n": index, "list": [None, "x", index / 3]} for index, key in enumerate(keys)}
    outcome = {"status": "submitted", "response": {"id": "8100001"}}
    before, after = fastjson.members(obj, "outcome")
    assert fastjson.joined(before, after) == rec.canonical_json(obj)
    assert fastjson.joined(before, fastjson.member("outcome", outcome), after) == rec.canonical_json(
        {**obj, "outcome": outcome})


# -- the CLI: what the ledger holds, what is refused -----------------------------------------------

def test_a_cohort_record_is_canonical_json_and_verify_passes(s3_server, s3_emulator, ledger_path, git_repo,
                                                             run_cli):
    settings = [setting(f"S{i:05d}", coverage=30 + i % 5, ratio=i / 3, note="lane:1") for i in range(3000)]
    body = json.dumps(settings).encode()
    result = submit_file(run_cli, s3_server, body, "--no-check")  # numbers the workflow does not take
    assert result.exit_code == 0, result.output
    assert gc.isenabled()  # the collector, paused while the cohort was submitted, is back
    with Ledger.open(ledger_path, create=False) as ledger:
        (text, address), = ledger.conn.execute("SELECT body, address FROM records").fetchall()
        intent, = [attempt_intent(*row).decode() for row in
                         ledger.conn.execute(f"SELECT {INTENT_COLUMNS} FROM attempts").fetchall()]
        data = text.encode() if isinstance(text, str) else bytes(text)
        record = json.loads(data)
        # the cohort is held by reference: each blob is the canonical JSON its reference names
        held = {ref_key: ledger.blob(ref["sha256"]) for _, ref_key, ref in blobs.refs(record)}
        whole = ledger.get(address).record
    assert data == rec.canonical_json(record) and rec.sha256_hex(data) == address
    assert intent.encode() == rec.canonical_json(json.loads(intent))
    assert json.loads(intent) == {k: v for k, v in record.items() if k != "outcome"}
    assert sorted(held) == ["content_blob", "inputs_blob"]
    for blob in held.values():
        assert blob == rec.canonical_json(json.loads(blob))
    assert json.loads(held["content_blob"]) == settings and record["batch"]["runs"] == 3000
    assert len(json.loads(held["inputs_blob"])) == 3003
    assert whole["batch"]["settings_file"]["content"] == settings and len(whole["resolution"]["inputs"]) == 3003
    verified = run_cli("verify")
    assert verified.exit_code == 0, verified.output
    assert "OK" in verified.stdout


@pytest.fixture
def s3(s3_server):
    return s3_server


@pytest.mark.parametrize("body,words", [
    (b'[{"runSettingId": "a", "parameters": {"x": "1:2", "x": "3"}}]', ["the key 'x' appears twice"]),
    (b'[{"runSettingId": "a\\u003a", "runSettingId": "b"}]', ["runSettingId", "appears twice"]),
    (b'[{"runSettingId": "a", "parameters": {"n": 1e999}}]', ["does not fit the range of JSON numbers"]),
    (b'[{"runSettingId": "a", "name": "\\ud800"}]', ["lone surrogate"]),
    (b'[{"runSettingId": "a", "parameters": ' + b'{"d":' * 70 + b"1" + b"}" * 70 + b"}]", ["nested deeper than 64"]),
], ids=["duplicate-parameter", "escaped-colon-duplicate", "infinity", "surrogate", "deep"])
def test_hostile_settings_files_are_refused_and_nothing_is_sent(body, words, s3, s3_emulator, ledger_path, git_repo,
                                                                run_cli):
    result = submit_file(run_cli, s3, body)
    assert result.exit_code == 2, result.output
    line = result.stderr.strip()
    assert line.count("\n") == 0 and line.startswith("runlog: error: settings file " + URI), line
    for word in words:
        assert word in line, (word, line)
    assert started(s3_emulator) == 0
    assert not ledger_path.exists() or batch_records(ledger_path) == []


def test_a_big_integer_in_a_settings_file_is_kept_as_the_integer_it_is(s3, s3_emulator, ledger_path, git_repo,
                                                                       run_cli):
    """orjson reads an integer beyond 64 bits as a float: such a file goes the strict way."""
    big = 123456789012345678901234567890
    body = json.dumps([setting("a", seed=big, small=-(2 ** 63))]).encode()
    result = submit_file(run_cli, s3, body)
    assert result.exit_code == 2, result.output  # seed and small are not the workflow's parameters
    assert "unknown parameter(s) seed, small" in result.stderr
    assert safejson.loads_untrusted(body)[0]["parameters"]["seed"] == big
    assert type(safejson.loads_untrusted(body)[0]["parameters"]["seed"]) is int


def test_the_first_run_that_does_not_fit_the_template_is_named_among_many_that_do(s3, s3_emulator, ledger_path,
                                                                                  git_repo, run_cli):
    settings = [setting(f"S{i:04d}") for i in range(1500)]
    settings[300]["parameters"] = dict(reversed(list(settings[300]["parameters"].items())))  # same names, reordered
    del settings[700]["parameters"]["input_cram"]
    settings[900]["parameters"]["bogus"] = 1
    result = submit_file(run_cli, s3, json.dumps(settings).encode())
    assert result.exit_code == 2, result.output
    assert "run setting 'S0700' (item 700)" in result.stderr
    assert "missing required parameter(s) input_cram" in result.stderr
    assert started(s3_emulator) == 0
    del settings[900]["parameters"]["bogus"]
    settings[700]["parameters"]["input_cram"] = f"s3://{BUCKET}/crams/S0700.cram"
    result = submit_file(run_cli, s3, json.dumps(settings).encode())
    assert result.exit_code == 0, result.output
    assert started(s3_emulator) == 1


def test_read_only_commands_still_do_not_import_orjson_for_a_batch_record():
    """batch.py imports fastjson (orjson) only inside the submit path."""
    code = "import sys, runlog.batch; print('orjson' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_listed_identities_are_those_one_head_object_each_would_give(s3_server):
    import time

    from runlog.batch import bulk_s3_identities
    from runlog.resolve import s3_identity

    s3_server.create_bucket(Bucket=BUCKET)
    for i in range(30):
        s3_server.put_object(Bucket=BUCKET, Key=f"crams/S{i:02d}.cram", Body=b"x" * i)
    wanted = [f"s3://{BUCKET}/crams/S{i:02d}.cram" for i in range(0, 30, 3)] + [f"s3://{BUCKET}/crams/gone.cram"]
    found = bulk_s3_identities(s3_server, wanted, deadline=time.monotonic() + 60)
    assert list(found) == wanted
    for uri in wanted[:-1]:
        one = s3_identity(s3_server, uri)
        assert found[uri] == {k: one[k] for k in ("kind", "etag", "size", "last_modified")}, uri
    assert found[wanted[-1]]["error"]["code"] == "NotFound"
