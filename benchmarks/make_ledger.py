"""Build a realistic ledger of N records through runlog's own record and ledger code.

    python benchmarks/make_ledger.py --records 100000 /tmp/bench/ledger.db
    python benchmarks/make_ledger.py --records 2000 --batch-members 100000 /tmp/bench/cohorts.db

Records vary the way a lab's do: several workflows, parameter sets that drift over time,
a few hundred git commits (some dirty), replays pointing at earlier records, rejected
attempts, GetRun observations for most runs, and the attempt (intent) of every record, as
`runlog submit` leaves them. The same --seed gives the same ledger
content (addresses differ only by the `created` times).

--batch-members N adds two cohorts (`build_batches`): two s3UriSettings batch records of N
runs each, written as `runlog submit-batch` writes them (intent, then record), the second a
re-run of the first with a few runs removed and added, a few runs' own settings and one
default parameter changed; each batch's N member records and their status observations as
`runlog refresh` writes them (Ledger.add_records / add_observations, a page at a time),
with a few failed submissions and failed runs, and GetBatch observations with the
service's counts; and a third batch record, cohort 0's settings file again with one default
parameter changed (`add_rerun`: no members)."""

from __future__ import annotations

import argparse
import random
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from runlog import __version__
from runlog import record as rec
from runlog.ledger import Ledger, chain_next, index_columns, seal_rows

WORKFLOWS = [
    ("1234567", "PRIVATE", {"sample_name": "NA12878", "input_cram": "s3://lab-data/{s}.cram",
                            "ref_fasta": "s3://lab-refs/Homo_sapiens_assembly38.fasta"}),
    ("7206765", "PRIVATE", {"input": "s3://lab-data/{s}/samplesheet.csv", "protocol": "10XV3", "aligner": "star"}),
    ("9500764", "READY2RUN", {"input_fastq_1": "s3://lab-data/{s}_R1.fastq.gz",
                              "input_fastq_2": "s3://lab-data/{s}_R2.fastq.gz"}),
    ("3141592", "PRIVATE", {"samples": [{"id": "{s}", "bam": "s3://lab-data/{s}.bam"}],
                            "options": {"min_qual": 20, "call_indels": True}}),
]


def make(rng: random.Random, n: int, previous: list[tuple[str, str, str]]) -> dict:
    workflow_id, wtype, template = rng.choice(WORKFLOWS)
    sample = f"S{rng.randrange(10_000):05d}"
    params = rec.jsonable(template)
    text = rec.canonical_json(params).decode().replace("{s}", sample)
    params = __import__("json").loads(text)
    if rng.random() < 0.3:
        params["threads"] = rng.choice([4, 8, 16, "16"])
    commit = rec.sha256_hex(str(rng.randrange(400)).encode())[:40]
    dirty = rng.random() < 0.1
    run_id = f"{rng.randrange(1_000_000, 9_999_999)}"
    request = {"workflowId": workflow_id, "workflowType": wtype,
               "roleArn": "arn:aws:iam::123456789012:role/OmicsRole", "outputUri": "s3://lab-out/runs/",
               "name": f"{sample}-{n}", "parameters": params, "requestId": str(uuid.UUID(int=rng.getrandbits(128))),
               "priority": rng.randrange(0, 100), "logLevel": rng.choice(["ALL", "ERROR", "OFF"])}
    record = {
        "format": rec.FORMAT, "kind": "submit", "created": rec.utc_now(), "runlog_version": __version__,
        "request": request, "parameters": {"source": "inline", "argument": None},
        "git": {"state": "dirty" if dirty else "clean", "commit": commit, "branch": "main",
                "remote": "https://github.com/lab/analysis.git", "workdir": ".",
                "diff_sha256": rec.sha256_hex(commit.encode()) if dirty else None, "untracked": [],
                "untracked_sha256": None},
        "caller": {"arn": "arn:aws:iam::123456789012:user/scientist", "account": "123456789012", "user_id": None},
        "aws": {"region": "us-west-2", "endpoint_url": None, "profile": None}, "warnings": [],
    }
    if previous and rng.random() < 0.05:
        address, original_uuid, original_id = rng.choice(previous)
        record["kind"] = "replay"
        record["lineage"] = {"replay_of": {"record": address, "run_uuid": original_uuid, "run_id": original_id,
                                           "run_arn": f"arn:aws:omics:us-west-2:123456789012:run/{original_id}"},
                             "mode": "request", "overrides": {}, "drift": []}
    if rng.random() < 0.03:
        record["outcome"] = {"status": "rejected", "error": {"code": "ValidationException",
                                                             "message": "missing parameter", "http_status": 400}}
    else:
        run_uuid = str(uuid.UUID(int=rng.getrandbits(128)))
        record["outcome"] = {"status": "submitted", "response": {
            "id": run_id, "uuid": run_uuid, "arn": f"arn:aws:omics:us-west-2:123456789012:run/{run_id}",
            "status": "PENDING", "runOutputUri": f"s3://lab-out/runs/{run_id}", "tags": {}}}
    record["fingerprint"] = rec.fingerprint(record)
    return record


def build(path: Path, count: int, seed: int = 1, batch: int = 5000) -> None:
    """Append `count` records (validated, chained, indexed) in batches of one transaction each."""
    rng = random.Random(seed)
    previous: list[tuple[str, str, str]] = []
    with Ledger.open(path) as ledger:
        last = ledger.conn.execute("SELECT chain FROM records ORDER BY seq DESC LIMIT 1").fetchone()
        chain = last[0] if last else None
        made = 0
        while made < count:
            rows, observations, attempts = [], [], []
            for _ in range(min(batch, count - made)):
                record = make(rng, made, previous)
                assert rec.is_valid(record)
                body = rec.canonical_json(record)
                address = rec.sha256_hex(body)
                chain = chain_next(chain, address)
                intent = rec.canonical_json({k: v for k, v in record.items() if k != "outcome"}).decode()
                attempts.append({"request_id": record["request"]["requestId"], "created": record["created"],
                                 "intent": intent, "intent_sha256": rec.sha256_hex(intent.encode())})
                rows.append({"address": address, "body": body.decode(), "chain": chain,
                             "inserted_at": record["created"], **index_columns(record)})
                response = record["outcome"].get("response")
                if response:
                    if len(previous) < 1000:
                        previous.append((address, response["uuid"], response["id"]))
                    status = rng.choice(["COMPLETED"] * 8 + ["FAILED", "RUNNING"])
                    text = rec.canonical_json({"status": status, "uuid": response["uuid"]}).decode()
                    observations.append({"record": address, "run_uuid": response["uuid"],
                                         "observed_at": record["created"], "source": "GetRun",
                                         "status": status, "body": text, "sha256": rec.sha256_hex(text.encode())})
                made += 1
            with ledger.write():
                first = ledger.conn.execute("SELECT coalesce(max(seq), 0) FROM records").fetchone()[0]
                seen = ledger.conn.execute("SELECT coalesce(max(seq), 0) FROM observations").fetchone()[0]
                tried = ledger.conn.execute("SELECT coalesce(max(seq), 0) FROM attempts").fetchone()[0]
                ledger.db["attempts"].insert_all(attempts, batch_size=1000)  # each intent before its record
                ledger.db["records"].insert_all(rows, batch_size=1000)
                ledger.db["observations"].insert_all(observations, batch_size=1000)
                seal_rows(ledger.conn, "attempts", "seq > ?", (tried,))
                seal_rows(ledger.conn, "records", "seq > ?", (first,))  # as Ledger._insert seals each row
                seal_rows(ledger.conn, "observations", "seq > ?", (seen,))


BATCH_WORKFLOW = "1234567"


def cohort_settings(count: int, variant: int) -> list[dict]:
    """A settings file's run settings. Variant 1 is variant 0 re-run: its first three runs
    left out, three new runs at the end, and every 10 000th shared run's input changed."""
    settings = []
    for i in range(count + (3 if variant else 0)):
        if variant and i < 3:
            continue
        sample = f"S{i:06d}"
        cram = f"s3://lab-cohort/crams/{sample}.cram"
        if variant and i % 10_000 == 5:
            cram = f"s3://lab-cohort/crams-v2/{sample}.cram"
        settings.append({"runSettingId": sample, "name": f"align-{sample}",
                         "parameters": {"sample_name": sample, "input_cram": cram}})
    return settings


def batch_intent(settings: list[dict], variant: int, rng: random.Random) -> dict:
    """A submit-batch intent (no resolution: as with --no-resolve) holding the whole cohort."""
    from runlog.aws import AwsSettings
    from runlog.batch import PARAMETERS
    from runlog.startrun import StartRunRequest
    from runlog.submit import make_intent

    uri = f"s3://lab-cohort/cohort-{variant}/settings.json"
    content = rec.canonical_json(settings)
    request = {"batchName": f"cohort-{variant}", "requestId": str(uuid.UUID(int=rng.getrandbits(128))),
               "defaultRunSetting": {"workflowId": BATCH_WORKFLOW, "roleArn": "arn:aws:iam::123456789012:role/OmicsRole",
                                     "outputUri": "s3://lab-out/cohorts/",
                                     "parameters": {"ref_fasta": "s3://lab-refs/Homo_sapiens_assembly38.fasta",
                                                    "min_qual": 20 if variant == 0 else 30}},
               "batchRunSettings": {"s3UriSettings": uri}}
    section = {"settings_file": {"uri": uri, "etag": rec.sha256_hex(content)[:32], "version_id": None,
                                 "size": len(content), "sha256": rec.sha256_hex(content), "content": settings},
               "runs": len(settings),
               "run_setting_ids_sha256": rec.sha256_hex(rec.canonical_json([s["runSettingId"] for s in settings]))}
    git: dict = {"state": "clean", "commit": rec.sha256_hex(b"cohort")[:40], "branch": "main",
           "remote": "https://github.com/lab/analysis.git", "workdir": ".", "diff_sha256": None, "untracked": [],
           "untracked_sha256": None}
    caller = {"arn": "arn:aws:iam::123456789012:user/scientist", "account": "123456789012", "user_id": None}
    return make_intent(StartRunRequest(request=request, parameters=dict(PARAMETERS)), kind="batch",
                       settings=AwsSettings(None, "us-west-2", None), git=git, caller=caller, warnings=[],
                       extra={"batch": section})


def build_batches(path: Path, members: int, seed: int = 1, page: int = 1000) -> list[str]:
    """Two cohorts of `members` runs each (see the module's docstring); returns the batch ids."""
    from runlog import fastjson
    from runlog.batch import SOURCE_BATCH, SOURCE_RUNS, _member

    rng = random.Random(seed + 7)
    ids = []
    with Ledger.open(path) as ledger:
        for variant in (0, 1):
            settings = cohort_settings(members, variant)
            intent = batch_intent(settings, variant, rng)
            ledger.add_attempt(intent)
            batch_id = str(rng.randrange(1_000_000, 9_999_999))
            arn = f"arn:aws:omics:us-west-2:123456789012:runBatch/{batch_id}"
            entry = ledger.complete(intent, {"status": "submitted", "response": {
                "id": batch_id, "arn": arn, "uuid": str(uuid.UUID(int=rng.getrandbits(128))), "status": "PENDING",
                "tags": {}}})
            record = entry.record
            counts: dict[str, int] = {}
            for start in range(0, len(settings), page):
                chunk, items = settings[start:start + page], []
                seen: list[tuple[str, str | None, str, str, str | None, dict]] = []
                for own in chunk:
                    if rng.random() < 0.001:
                        items.append({"runSettingId": own["runSettingId"], "submissionStatus": "FAILED",
                                      "submissionFailureReason": "ValidationException",
                                      "submissionFailureMessage": "input_cram: object not found"})
                        continue
                    run_id = str(rng.randrange(1_000_000, 9_999_999))
                    items.append({"runSettingId": own["runSettingId"], "runId": run_id,
                                  "runInternalUuid": str(uuid.UUID(int=rng.getrandbits(128))),
                                  "runArn": f"arn:aws:omics:us-west-2:123456789012:run/{run_id}"})
                made = [_member(record, entry.address, item, own) for item, own in zip(items, chunk, strict=True)]
                ledger.add_records(made)
                for member in made:
                    response = member["outcome"].get("response")
                    if not response:
                        continue
                    address = rec.sha256_hex(fastjson.dumps(member))
                    status = "FAILED" if rng.random() < 0.002 else "COMPLETED"
                    counts[status] = counts.get(status, 0) + 1
                    body: dict = {"id": response["id"], "status": status, "batchId": batch_id}
                    source = SOURCE_RUNS
                    if status == "FAILED":
                        source = "GetRun"
                        body.update(uuid=response["uuid"], failureReason="OUT_OF_MEMORY",
                                    statusMessage="Task align ran out of memory")
                    seen.append((address, response["uuid"], record["created"], source, status, body))
                ledger.add_observations(seen)
            started = sum(counts.values())
            ledger.observe(entry.address, SOURCE_BATCH, {
                "id": batch_id, "arn": arn, "status": "PROCESSED",
                "submissionSummary": {"successfulStartSubmissionCount": started,
                                      "failedStartSubmissionCount": len(settings) - started},
                "runSummary": {"completedRunCount": counts.get("COMPLETED", 0),
                               "failedRunCount": counts.get("FAILED", 0)}}, status="PROCESSED")
            ids.append(batch_id)
        ids.append(add_rerun(ledger, members, rng))
    return ids


def add_rerun(ledger: Ledger, members: int, rng: random.Random) -> str:
    """A third batch record: cohort 0's settings file again (the same bytes) with one default
    parameter changed, as `runlog replay B --set` starts it; not refreshed (no members)."""
    intent = batch_intent(cohort_settings(members, 0), 0, rng)
    intent["request"]["defaultRunSetting"]["parameters"]["min_qual"] = 25
    intent["request"]["batchName"] = "cohort-0-rerun"
    intent["fingerprint"] = rec.fingerprint(intent)
    ledger.add_attempt(intent)
    batch_id = str(rng.randrange(1_000_000, 9_999_999))
    ledger.complete(intent, {"status": "submitted", "response": {
        "id": batch_id, "arn": f"arn:aws:omics:us-west-2:123456789012:runBatch/{batch_id}",
        "uuid": str(uuid.UUID(int=rng.getrandbits(128))), "status": "PENDING", "tags": {}}})
    return batch_id


def build_once(path: Path, *steps: Callable[[Path], object], what: str = "") -> Path:
    """`path`, built by `steps` (each given the ledger's path) the first time it is asked for:
    into `PATH.partial`, renamed when every step is done, so that a build stopped half way is
    started again rather than reused; a later run reuses the ledger."""
    if not path.exists():
        print(f"building {what or 'a ledger'} in {path} ...", file=sys.stderr)
        partial = path.with_suffix(".partial")
        for leftover in path.parent.glob(partial.name + "*"):
            leftover.unlink()
        for step in steps:
            step(partial)
        partial.rename(path)
        for suffix in ("-wal", "-shm"):
            Path(str(partial) + suffix).unlink(missing_ok=True)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="ledger file to create or extend")
    parser.add_argument("--records", type=int, required=True, help="how many records to add")
    parser.add_argument("--batch-members", type=int, default=0,
                        help="then two batches of this many member runs each (0: none)")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    started = time.perf_counter()
    build(args.path, args.records, args.seed)
    if args.batch_members:
        ids = build_batches(args.path, args.batch_members, args.seed)
        print(f"batches {', '.join(ids)} of {args.batch_members} members each", file=sys.stderr)
    print(f"{args.records} records in {args.path} ({time.perf_counter() - started:.1f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
