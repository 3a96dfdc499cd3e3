"""Session 20's changes, each as a user sees it through the CLI against the emulator."""

from __future__ import annotations

import json

from helpers import COHORT_DEFAULT, ROLE, cohort_setting, json_leaves, records

MISSING = "s3://lab-data/pbmc/missing.csv"


def test_a_dry_run_says_its_warnings_are_what_the_record_would_hold(aws_env, bucket, ledger_path, git_repo,
                                                                    run_cli):
    """A warning is the record's own words ("…; recorded as such"). Before, `--dry-run`
    printed it as a real submission does, "recorded as such", just above "nothing was
    written". Now a dry run's line says it is what the record would hold; a real submission's
    line is unchanged, and the record keeps the same words either way."""
    params = {"input": MISSING, "protocol": "10XV3", "genome": "s3://lab-data/refs/"}
    args = ("submit", "--workflow-id", "7206765", "--role-arn", ROLE, "--output-uri", "s3://out/x/",
            "--parameters", json.dumps(params), "--endpoint-url", aws_env.endpoint_url)
    dry = run_cli(*args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    (line,) = [line for line in dry.stderr.splitlines() if "not resolved" in line]
    assert line.startswith("runlog: warning the record would hold (dry run, not written): "), line
    assert MISSING in line
    planned = json.loads(dry.stdout)["record"]["warnings"]
    assert not ledger_path.exists()
    sent = run_cli(*args)
    assert sent.exit_code == 0, sent.output
    (line,) = [line for line in sent.stderr.splitlines() if "not resolved" in line]
    assert line.startswith("runlog: warning: ") and line.endswith("recorded as such"), line
    assert records(ledger_path)[0]["warnings"] == planned


def test_a_batch_dry_run_says_its_warnings_are_what_the_record_would_hold(aws_env, s3_server, ledger_path,
                                                                          git_repo, run_cli):
    """The same for `submit-batch --dry-run`: its inputs (absent from S3) are warned of as
    what the batch record would hold."""
    s3_server.create_bucket(Bucket="cohort-bucket")
    args = ("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
            json.dumps({"inlineSettings": [cohort_setting("S1"), cohort_setting("S2")]}))
    dry = run_cli(*args, "--dry-run")
    assert dry.exit_code == 0, dry.output
    (line,) = [line for line in dry.stderr.splitlines() if "not resolved" in line]
    assert line.startswith("runlog: warning the record would hold (dry run, not written): 5 input(s)"), line
    assert "nothing was written" in dry.stderr and not ledger_path.exists()
    sent = run_cli(*args)
    assert sent.exit_code == 0, sent.output
    assert any(line.startswith("runlog: warning: 5 input(s)") for line in sent.stderr.splitlines()), sent.stderr


def _value(shape, rnd, depth=0):
    """A random value of an output shape (with members left out or None, a member the model
    does not have, timestamps as datetimes in any zone or as ISO text)."""
    from datetime import UTC, datetime, timedelta, timezone

    kind = shape.type_name
    if kind == "structure":
        if shape.metadata.get("document") or depth > 5:
            return {"any": ["json", 1]}
        if shape.metadata.get("union"):  # exactly one member
            name = rnd.choice(sorted(shape.members))
            return {name: _value(shape.members[name], rnd, depth + 1)}
        value = {name: (_value(member, rnd, depth + 1) if rnd.random() < 0.9 else None)
                 for name, member in shape.members.items() if rnd.random() < 0.7}
        if rnd.random() < 0.2:
            value["notInTheModel"] = "left out"
        return value
    if kind == "list":
        return [_value(shape.member, rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    if kind == "map":
        return {f"k{i}": _value(shape.value, rnd, depth + 1) for i in range(rnd.randint(0, 3))}
    if kind == "timestamp":
        moment = datetime(2020, 1, 1, tzinfo=UTC) + timedelta(seconds=rnd.randint(0, 10 ** 9),
                                                              microseconds=rnd.randint(0, 999_999))
        moment = moment.astimezone(timezone(timedelta(minutes=rnd.randint(-720, 720))))
        return moment if rnd.random() < 0.5 else moment.isoformat()
    if kind in ("integer", "long"):
        return rnd.randint(0, 10 ** 6)
    if kind == "boolean":
        return rnd.random() < 0.5
    if kind in ("float", "double"):
        return rnd.random()
    return f"text-{rnd.randint(0, 99)}"


def _expected(shape, value):
    """What a client should read back: members the model has and that are not None, instants
    to the millisecond."""
    from datetime import UTC, datetime

    kind = shape.type_name
    if kind == "structure" and not shape.metadata.get("document"):
        return {k: _expected(shape.members[k], v) for k, v in value.items() if k in shape.members and v is not None}
    if kind == "list":
        return [_expected(shape.member, v) for v in value]
    if kind == "map":
        return {k: _expected(shape.value, v) for k, v in value.items()}
    if kind == "timestamp":
        moment = (value if isinstance(value, datetime) else datetime.fromisoformat(value)).astimezone(UTC)
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)
    return value


def test_every_output_the_emulator_writes_is_read_back_by_botocore_as_given():
    """The emulator writes each operation's answer from the output shape (worked out once a
    shape since session 20): botocore's own REST-JSON parser reads back, for random values of
    every output member of every operation, the members the model has, the values given and
    each instant to the millisecond."""
    import random
    from datetime import UTC

    from botocore.parsers import RestJSONParser

    from runlog.emulator.protocol import Protocol
    from runlog.emulator.server import _handlers
    from runlog.emulator.state import Clock, Service

    protocol, parser, rnd = Protocol(), RestJSONParser(), random.Random(20)
    answered = _handlers(Service(Clock()))  # the operations the emulator answers
    compared = 0
    for name in sorted(answered):
        operation = protocol.model.operation_model(name)
        if operation.output_shape is None:
            continue
        for _ in range(10):
            result = {member: _value(shape, rnd) for member, shape in operation.output_shape.members.items()
                      if shape.serialization.get("location") is None}
            status, headers, body = protocol.serialize(operation, result)
            parsed = parser.parse({"status_code": status, "headers": headers, "body": body}, operation.output_shape)
            parsed.pop("ResponseMetadata", None)
            expected = _expected(operation.output_shape, result)
            for instant in _instants(parsed):
                assert instant.tzinfo is not None and instant.utcoffset() == UTC.utcoffset(None)
            assert _naive(parsed) == _naive(expected), name
            compared += 1
    assert compared >= 200, compared  # 22 operations with an output


def _instants(value):
    from datetime import datetime

    return [leaf for leaf in json_leaves(value) if isinstance(leaf, datetime)]


def _naive(value):
    """Instants compared as UTC wall times (botocore gives tzutc(), the expectation UTC)."""
    from datetime import UTC, datetime

    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None)
    if isinstance(value, dict):
        return {k: _naive(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_naive(v) for v in value]
    return value


def test_a_batch_getbatch_found_again_after_a_not_found_gets_its_status_back(aws_env, ledger_path, git_repo,
                                                                            run_cli):
    """One ResourceNotFoundException from GetBatch (a fault here) for a batch last seen
    PROCESSED (DeleteBatch takes it then) is recorded as the service said it: status DELETED,
    the reason "not found" with no guess at why (it read "deleted with DeleteBatch"). GetBatch
    finding the batch again (`refresh B`) records its real status, which `show B` and (session
    22: it said DELETED, ranked above every status) `log` then give."""
    aws_env.batch_rate = 100
    submitted = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
                        json.dumps({"inlineSettings": [cohort_setting("S1"), cohort_setting("S2")]}))
    assert submitted.exit_code == 0, submitted.output
    batch_id = json.loads(submitted.stdout)["id"]
    aws_env.advance(300)
    assert f"batch {batch_id}: PROCESSED" in run_cli("refresh", batch_id).stdout
    aws_env.faults.add("error", "GetBatch", code="ResourceNotFoundException")
    gone = run_cli("refresh", batch_id)
    assert gone.exit_code == 0 and f"batch {batch_id}: DELETED" in gone.stdout, gone.output
    reason = json.loads(run_cli("show", batch_id, "--json").stdout)["observations"][-1]["body"]["reason"]
    assert reason == f"GetBatch: batch {batch_id} not found", reason
    assert "DELETED" in run_cli("log").stdout
    again = run_cli("refresh", batch_id)
    assert again.exit_code == 0 and f"batch {batch_id}: DELETED" not in again.stdout, again.output
    shown = json.loads(run_cli("show", batch_id, "--json").stdout)
    assert shown["batch"]["batch_status"] == "PROCESSED", shown["batch"]
    listed = run_cli("log").stdout
    assert "PROCESSED" in listed and "DELETED" not in listed, listed
    assert run_cli("verify", "--no-remote").exit_code == 0
