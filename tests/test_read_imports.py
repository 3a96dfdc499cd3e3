"""The read commands import only what they use (docs/performance.md, read commands): checked
on a ledger with records, observations and a pending attempt, in a fresh interpreter each."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from recordfactory import make_record
from runlog.ledger import Entry, Ledger

# Modules a read command has no use for, each costly to import: the AWS SDK, the schema
# validators, DeepDiff, sqlite-utils (migrations), OpenSSL's hashlib (nothing is hashed),
# tomllib (no configuration file here), traceback (no --debug), input resolution, batches.
NOT_FOR_READING = ("boto3", "botocore", "jsonschema", "jsonschema_rs", "deepdiff", "sqlite_utils", "hashlib",
                   "tomllib", "traceback", "runlog.resolve", "runlog.batch", "runlog.aws")


@pytest.fixture
def ledger_with_history(tmp_path):
    path = tmp_path / "l.db"
    with Ledger.open(path) as ledger:
        first, _ = ledger.add_record(make_record(run_id="1000001", parameters={"sample": "NA12878"}))
        ledger.add_record(make_record(run_id="1000002", parameters={"sample": "NA12879"}))
        ledger.observe(first.address, "GetRun", {"status": "COMPLETED", "uuid": first.run_uuid},
                       run_uuid=first.run_uuid, status="COMPLETED")
        waiting = make_record(run_id="1000003", name="waiting")
        ledger.add_attempt({k: v for k, v in waiting.items() if k != "outcome"})
    return path, waiting["request"]["requestId"]


def _run(path, args: list[str], cwd) -> tuple[int, str, str, list[str]]:
    code = (
        "import sys, runpy, io, contextlib, json\n"
        f"sys.argv = ['runlog', '--ledger', {str(path)!r}, *{args!r}]\n"
        "out, err, status = io.StringIO(), io.StringIO(), 0\n"
        "with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):\n"
        "    try:\n        runpy.run_module('runlog', run_name='__main__')\n"
        "    except SystemExit as exc:\n        status = exc.code or 0\n"
        f"bad = sorted(m for m in {NOT_FOR_READING!r} if m in sys.modules)\n"
        "print(json.dumps([status, out.getvalue(), err.getvalue(), bad]))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd)
    status, out, err, bad = json.loads(done.stdout.splitlines()[-1])
    return status, out, err, bad


@pytest.mark.parametrize(("args", "shown"), [
    (["log", "-n", "20"], ["1000001", "1000002", "COMPLETED"]), (["log", "--json"], ["1000001", "1000002"]),
    (["show", "@1"], ["1000002"]), (["show", "1000001"], ["1000001", "GetRun"]),
    (["diff", "@1", "@2"], ["NA12878", "NA12879"]), (["diff", "@2", "@1", "--json"], ["NA12878", "NA12879"]),
], ids=lambda value: " ".join(value) if value and value[0] in ("log", "show", "diff") else "")
def test_read_commands_import_nothing_they_do_not_use(ledger_with_history, tmp_path, args, shown):
    path, pending_id = ledger_with_history
    status, out, err, bad = _run(path, args, tmp_path)
    assert status == 0, err
    assert bad == []
    assert f"1 pending attempt(s) ({pending_id})" in err  # the warning is still given
    assert all(text in out for text in shown), out


def test_a_run_id_and_a_record_prefix_still_resolve_without_those_modules(ledger_with_history, tmp_path):
    path, _ = ledger_with_history
    with Ledger.open(path) as ledger:
        entry = ledger.resolve("1000002")
    status, out, _, bad = _run(path, ["show", entry.address[:10], "--json"], tmp_path)
    assert status == 0 and bad == []
    assert json.loads(out)["address"] == entry.address


def test_an_entry_compares_by_its_fields_not_by_whether_its_body_was_parsed(tmp_path):
    with Ledger.open(tmp_path / "l.db") as ledger:
        ledger.add_record(make_record(run_id="1000001"))
        one, again = ledger.resolve("@1"), ledger.resolve("1000001")
    assert one.record["outcome"]["response"]["id"] == "1000001"  # parsed and cached on one only
    assert one == again and one is not again
    again.status = "FAILED"
    assert one != again
    assert repr(one).startswith(f"Entry(seq=1, address={one.address!r}, ") and "_record" not in repr(one)
    row = [getattr(one, name) for name in Entry.FIELDS]
    assert Entry(*row) == one
