"""A small ledger for the report tests, written through runlog's own ledger code: runs with
observations, replays (one of a replay), a rejected attempt, an import, and a run whose name
and parameters try to inject HTML and script."""

from __future__ import annotations

import copy
from pathlib import Path

from recordfactory import make_record
from runlog import record as rec
from runlog.ledger import Ledger

HOSTILE_NAME = '<img src=x onerror="window.__pwned=1">'
HOSTILE_PARAMETER = "</script><script>window.__pwned=2</script>"


def replay_of(original: dict, address: str, *, run_id: str, name: str, parameters: dict | None = None) -> dict:
    response = original["outcome"]["response"]
    record = make_record(run_id=run_id, name=name, parameters=parameters)
    record["kind"] = "replay"
    record["lineage"] = {"replay_of": {"record": address, "run_uuid": response["uuid"], "run_id": response["id"],
                                       "run_arn": response["arn"]},
                         "mode": "request", "overrides": {}, "drift": []}
    record["fingerprint"] = rec.fingerprint(record)
    return record


def build(path: Path) -> dict:
    """Write the ledger; returns what the tests count: addresses by role, runs, replays."""
    addresses: dict[str, str] = {}
    with Ledger.open(path) as ledger:
        def add(role: str, record: dict, status: str | None = None) -> dict:
            entry, _ = ledger.add_record(record)
            addresses[role] = entry.address
            response = record["outcome"].get("response")
            if status and response:
                ledger.observe(entry.address, "GetRun", {"status": status, "uuid": response["uuid"],
                                                         "id": response["id"], "startTime": record["created"]},
                               run_uuid=response["uuid"], status=status)
            return record

        original = add("original", make_record(run_id="1000001", name="original-run",
                                               parameters={"sample_name": "NA12878", "reads": "s3://lab/NA12878.cram"}),
                       "COMPLETED")
        add("hostile", make_record(run_id="1000002", name=HOSTILE_NAME,
                                   parameters={"sample_name": HOSTILE_PARAMETER, "note": "<b>bold</b> & \u2028"}),
            "FAILED")
        first = add("replay", replay_of(original, addresses["original"], run_id="1000003", name="replay-one",
                                        parameters={"sample_name": "NA12879", "reads": "s3://lab/NA12878.cram"}),
                    "RUNNING")
        add("replay2", replay_of(first, addresses["replay"], run_id="1000004", name="replay-two"))
        add("rejected", make_record(name="refused-run", rejected=True))
        imported = make_record(run_id="1000006", name="imported-run")
        imported["kind"] = "import"
        imported["git"] = {"state": "unknown"}
        imported["source_run"] = copy.deepcopy({"id": "1000006", "workflowId": "1234567", "status": "COMPLETED"})
        imported["fingerprint"] = rec.fingerprint(imported)
        add("import", imported, "COMPLETED")
    return {"addresses": addresses, "runs": len(addresses), "replays": 2}
