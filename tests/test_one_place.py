"""Rules that live in one place (docs/architecture.md, "One place for each rule"): what a run
ARN is, runlog's timestamp format, the ledger's named queries; each seen from where a user
meets it."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from helpers import ROLE
from runlog import record as rec
from runlog.arn import RunArn, parse_run_arn
from runlog.importer import import_run
from runlog.ledger import Ledger


@pytest.mark.parametrize("text, parts", [
    ("arn:aws:omics:us-west-2:123456789012:run/1234567", RunArn("us-west-2", "123456789012", "1234567")),
    ("arn:aws-cn:omics:cn-north-1:123456789012:run/42", RunArn("cn-north-1", "123456789012", "42")),
    ("arn:aws-us-gov:omics:us-gov-west-1:123456789012:run/9", RunArn("us-gov-west-1", "123456789012", "9")),
])
def test_a_run_arn_and_its_parts(text, parts):
    assert parse_run_arn(text) == parts


@pytest.mark.parametrize("text", [
    "arn:aws:omics::123456789012:run/1234567",  # no region
    "arn:aws:omics:us-west-2:123456789012:run/1234567\n",  # something after the id
    "arn:aws:omics:us-west-2:12345678901:run/1234567",  # an 11-digit account
    "arn:aws:omics:us-west-2:123456789012:workflow/1234567",  # not a run
    "arn:aws:s3:us-west-2:123456789012:run/1234567",
    "arn:aws:omics:us-west-2:123456789012:run/12a",
    "", None, 1234567,
])
def test_what_is_not_a_run_arn(text):
    assert parse_run_arn(text) is None


def test_replay_does_not_take_an_arn_without_a_region_for_a_run(aws_env, ledger_path, git_repo, run_cli):
    """The pattern replay uses to decide a REF names a run it may fetch is the one pattern:
    an ARN without a region is a REF that matches nothing, and nothing is asked of the service."""
    Ledger.open(ledger_path).close()
    before = len(aws_env.requests)
    result = run_cli("replay", "arn:aws:omics::123456789012:run/1234567")
    assert result.exit_code == 2
    assert result.stderr.startswith("runlog: error: ") and result.stderr.count("\n") == 1
    assert "no record matches" in result.stderr
    assert [r["operation"] for r in aws_env.requests[before:]] == []


def test_replay_fetches_a_run_named_by_its_arn(aws_env, ledger_path, git_repo, run_cli):
    """The same pattern accepts a real run ARN: replay asks GetRun for a run the ledger lacks."""
    from helpers import SEED_2

    started = json.loads(run_cli(*SEED_2).stdout)
    other = ledger_path.parent / "other.db"
    result = run_cli("--ledger", other, "replay", started["arn"], "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert any(r["operation"] == "GetRun" and r["params"].get("id") == started["id"] for r in aws_env.requests)


def test_one_timestamp_format():
    moment = datetime(2026, 1, 15, 11, 0, 0, 500_000, tzinfo=timezone(timedelta(hours=2)))
    assert rec.timestamp(moment) == "2026-01-15T09:00:00.500Z"
    assert rec.parse_timestamp("2026-01-15T09:00:00.500Z") == moment
    assert rec.parse_timestamp("2026-01-15") == datetime(2026, 1, 15, tzinfo=UTC)  # no zone: UTC
    assert rec.parse_timestamp(rec.utc_now()) <= datetime.now(UTC)
    with pytest.raises(ValueError):
        rec.parse_timestamp("yesterday")


def test_an_imported_run_is_dated_in_runlogs_format(tmp_path):
    """GetRun's creationTime, in any zone, becomes the record's `created` in the one format,
    so imported and submitted records sort together."""
    run = {"id": "1234567", "uuid": "0f1c2b3a-0000-4000-8000-000000000001",
           "arn": "arn:aws:omics:eu-west-1:123456789012:run/1234567", "workflowId": "7654321",
           "roleArn": ROLE, "outputUri": "s3://bucket/out/", "status": "RUNNING",
           "creationTime": "2026-01-15T11:00:00.5+02:00"}
    with Ledger.open(tmp_path / "ledger.db") as ledger:
        entry, added = import_run(ledger, run)
        assert added and entry.created == "2026-01-15T09:00:00.500Z"
        assert entry.record["aws"]["region"] == "eu-west-1"  # read through the one ARN pattern
        assert ledger.by_run_uuid(run["uuid"]).address == entry.address
        assert import_run(ledger, run) == (ledger.by_run_uuid(run["uuid"]), False)  # imported once


@pytest.mark.parametrize("text, words", [
    ('{"a": NaN}', "NaN is not a JSON number"),
    ('{"a": [-Infinity]}', "Infinity is not a JSON number"),
    ('{"a": 1e999}', "does not fit the range of JSON numbers"),
    ('{"a": "\\ud800"}', "lone surrogate"),
    ('{"a\\udfff": 1}', "lone surrogate"),
    ("[" * 120 + "]" * 120, "nested deeper than"),
])
def test_arguments_and_pulled_objects_are_read_by_one_strict_reader(text, words):
    """--parameters and an object pulled from a team ledger refuse the same values, for the
    same reason in the same words (each with its own limits and its own prefix)."""
    from runlog.errors import UsageError
    from runlog.params import parse_json_text
    from runlog.safejson import UntrustedJSONError, loads_untrusted

    with pytest.raises(UsageError) as as_argument:
        parse_json_text(text, "--parameters")
    with pytest.raises(UntrustedJSONError) as as_object:
        loads_untrusted(text.encode())
    assert words in str(as_argument.value) and words in str(as_object.value)


def test_each_reader_keeps_its_own_limits():
    from runlog.params import parse_json_text
    from runlog.safejson import UntrustedJSONError, loads_untrusted

    # a key twice: the aws CLI keeps the last, so an argument does; a pulled object may not
    assert parse_json_text('{"a": 1, "a": 2}', "--tags") == {"a": 2}
    with pytest.raises(UntrustedJSONError, match="appears twice"):
        loads_untrusted(b'{"a": 1, "a": 2}')
    # 40 levels: beyond an argument's 32, within an object's 100
    deep = "[" * 40 + "]" * 40
    value = loads_untrusted(deep.encode())
    for _ in range(39):
        (value,) = value
    assert value == []
    with pytest.raises(Exception, match="nested deeper than 32 levels"):
        parse_json_text(deep, "--parameters")
    # an integer beyond a float's range: refused as an argument (HealthOmics reads JSON numbers
    # as floats), carried unchanged in an object (it was recorded that way)
    assert loads_untrusted(("1" * 400).encode()) == int("1" * 400)
    with pytest.raises(Exception, match="400 digits"):
        parse_json_text("1" * 400, "--parameters")
