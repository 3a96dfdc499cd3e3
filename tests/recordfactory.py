"""Valid records for tests that exercise the ledger without the emulator."""

from __future__ import annotations

import copy
import uuid

from runlog import record as rec


def make_record(*, run_id: str = "1234567", name: str = "cram-to-bam", parameters: dict | None = None,
                commit: str = "a" * 40, rejected: bool = False, **extra) -> dict:
    request = {
        "workflowId": "1234567",
        "roleArn": "arn:aws:iam::123456789012:role/OmicsRole",
        "outputUri": "s3://bucket/out/",
        "name": name,
        "parameters": copy.deepcopy(parameters if parameters is not None else {"sample_name": "NA12878"}),
        "requestId": str(uuid.uuid4()),
    }
    run_uuid = str(uuid.uuid4())
    record = {
        "format": rec.FORMAT,
        "kind": "submit",
        "created": rec.utc_now(),
        "runlog_version": "0.1.0",
        "request": request,
        "parameters": {"source": "inline", "argument": "{}"},
        "git": {"state": "clean", "commit": commit, "branch": "main", "remote": None, "workdir": ".",
                "diff_sha256": None, "untracked": [], "untracked_sha256": None},
        "caller": None,
        "aws": {"region": "us-west-2", "endpoint_url": None, "profile": None},
        "warnings": [],
        **extra,
    }
    if rejected:
        record["outcome"] = {"status": "rejected", "error": {"code": "ValidationException", "message": "no",
                                                               "http_status": 400}}
    else:
        record["outcome"] = {"status": "submitted", "response": {
            "id": run_id, "uuid": run_uuid, "arn": f"arn:aws:omics:us-west-2:123456789012:run/{run_id}",
            "status": "PENDING"}}
    record["fingerprint"] = rec.fingerprint(record)
    return record
