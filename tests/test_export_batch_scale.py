"""The fast JSON writer of exports (runlog.export.jsontext) writes the json module's text."""

from __future__ import annotations

import json

import pytest

from runlog.export.jsontext import pretty

HOSTILE = [
    {"a": [1, 2, {"b": []}], "c": {}, "é": "\u2028\x7f\x00\x1f\"\\/ü😀", "z": None, "t": True, "f": 1.5},
    {"small": 1e-7, "large": 1e16, "negative": -0.0, "big": 10**30, "exact": 0.1, "ints": [0, -1, 2**63 - 1]},
    [], {}, "x", [[]], {"": ""},
    {"\ud800": "lone surrogate key"}, ["lone \udfff surrogate"],
    {"b": 1, "a": 2, "B": 3, "ä": 4, "😀": 5, "\uffff": 6},  # key order by code point
]


# What pretty writes otherwise than the json module (runlog/export/jsontext.py): DEL, the C1
# controls and U+2028/U+2029 as escapes, which the json module writes so only with ensure_ascii.
ESCAPED = {point: f"\\u{point:04x}" for point in [*range(0x7F, 0xA0), 0x2028, 0x2029]}


@pytest.mark.parametrize("ensure_ascii", [False, True])
@pytest.mark.parametrize("value", HOSTILE, ids=range(len(HOSTILE)))
def test_pretty_is_the_json_modules_text(value, ensure_ascii):
    assert pretty(value, ensure_ascii=ensure_ascii) == json.dumps(value, indent=2, sort_keys=True,
                                                                   ensure_ascii=ensure_ascii).translate(ESCAPED)


@pytest.mark.parametrize("ensure_ascii", [False, True])
def test_pretty_writes_every_character_as_the_json_module_does(ensure_ascii):
    points = list(range(0x800)) + list(range(0xD7F0, 0xE010)) + [0xFEFF, 0xFFFD, 0xFFFF, 0x10000, 0x1F600, 0x10FFFF]
    value = {chr(p): [chr(p), "a" + chr(p) + "b"] for p in points}
    assert pretty(value, ensure_ascii=ensure_ascii) == json.dumps(value, indent=2, sort_keys=True,
                                                                   ensure_ascii=ensure_ascii).translate(ESCAPED)


def test_pretty_refuses_what_the_json_module_refuses():
    with pytest.raises(TypeError):
        pretty({1: "a", "b": 2})  # mixed key types cannot be sorted
    with pytest.raises(TypeError):
        pretty({"when": object()})
    import dataclasses
    import datetime

    @dataclasses.dataclass
    class Point:
        x: int

    for value in (datetime.datetime(2026, 1, 1), datetime.date(2026, 1, 1), Point(1)):
        with pytest.raises(TypeError):
            json.dumps(value)
        with pytest.raises(TypeError):
            pretty({"value": value})


def test_prov_records_write_what_the_prov_package_writes_for_single_runs(tmp_path):
    """Every export's PROV is now written from runlog's plain records: for runs (replays of
    replays, a rejected attempt, an import, a FAILED run with hostile text, a run with its
    tasks and container digests) the text is the prov package's own for the same statements."""
    import json as jsonlib

    from reportledger import build as build_ledger
    from runlog.export.prov import build
    from runlog.export.provtext import prov_json_text, provn_text
    from runlog.export.terms import collect
    from runlog.ledger import Ledger

    path = tmp_path / "ledger.db"
    made = build_ledger(path)
    with Ledger.open(path, create=False) as ledger:
        original = ledger.get(made["addresses"]["original"])
        uuid = original.record["outcome"]["response"]["uuid"]
        ledger.observe(original.address, "GetRun", {
            "status": "COMPLETED", "uuid": uuid, "id": original.record["outcome"]["response"]["id"],
            "startTime": "2026-11-25T22:15:54.123Z", "stopTime": "2026-11-25T23:15:54Z",
            "runOutputUri": "s3://lab/out/1000001/", "engineVersion": "23.10.1",
            "resourceDigests": {"s3://lab/NA12878.cram": "etag:0123abcd-3",
                                "123.dkr.ecr.us-west-2.amazonaws.com/gatk:4.5": "sha256:" + "ab" * 32}},
            run_uuid=uuid, status="COMPLETED")
        ledger.observe(original.address, "ListRunTasks", {"tasks": [
            {"taskId": "11", "name": "align (x=1)", "status": "COMPLETED", "cpus": 4, "memory": 16, "cacheHit": True,
             "startTime": "2026-11-25T22:16:00Z", "stopTime": "2026-11-25T22:20:00Z",
             "imageDetails": {"image": "123.dkr.ecr.us-west-2.amazonaws.com/gatk:4.5",
                              "imageDigest": "sha256:" + "ab" * 32}},
            {"taskId": "12", "name": "call; 'quoted'", "status": "FAILED", "failureReason": "OUT_OF_MEMORY",
             "gpus": 0, "instanceType": "omics.c.large"}]}, run_uuid=uuid)
        runs = collect(ledger, list(made["addresses"].values()))
    authors = [{"name": "Ada Lovelace", "id": "https://orcid.org/0000-0002-1825-0097"}, {"name": "Grace Hopper",
                                                                                        "id": None}]
    doc = build(runs, authors=authors)
    fast = build(runs, authors=authors, fast=True)
    expected = doc.get_provn()
    assert "runlog:HealthOmicsTask" in expected and "RejectedStartRun" in expected and "wasInformedBy(" in expected
    assert provn_text(fast) == expected
    assert prov_json_text(fast) == jsonlib.dumps(jsonlib.loads(doc.serialize(format="json")), indent=2,
                                                 sort_keys=True) + "\n"
