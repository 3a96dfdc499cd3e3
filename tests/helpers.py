"""Helpers shared by several test modules (imported as `from helpers import ...`; pytest puts
tests/ on sys.path). Fixtures live in conftest.py; record builders in recordfactory.py."""

from __future__ import annotations

import http.client
import json
import os
import random
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from conftest import TEAM_BUCKET as BUCKET
from recordfactory import make_record
from runlog.emulator.seed import EXAMPLES, example_args
from runlog.ledger import Ledger

REMOTE = f"s3://{BUCKET}/runlog"

# -- submissions: the seed examples as runlog arguments ------------------------------------------

ROLE = "arn:aws:iam::123456789012:role/omics-service-role-serviceRole-W8O1XMPL7QZ"
# A cohort's defaultRunSetting, shared by the batch tests: the reference files every run reads.
COHORT_ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
COHORT_DEFAULT = {"workflowId": "1234567", "roleArn": COHORT_ROLE, "outputUri": "s3://cohort-bucket/out/",
                  "parameters": {"ref_dict": "s3://cohort-bucket/ref/genome.dict",
                                 "ref_fasta": "s3://cohort-bucket/ref/genome.fasta",
                                 "ref_fasta_index": "s3://cohort-bucket/ref/genome.fasta.fai"}}
SEED_1 = ["submit", "--workflow-id", "1234567", "--role-arn", ROLE, "--name", "cram-to-bam",
          "--output-uri", "s3://omics-artifacts-01d6xmpl4e72dd32/workflow-output/", "--run-group-id", "1234567",
          "--priority", "1", "--storage-capacity", "10", "--log-level", "ALL",
          "--parameters", "file://workflow-inputs.json"]
SEED_2 = ["submit", "--workflow-id", "1234567", "--workflow-owner-id", "123456789012", "--role-arn",
          "arn:aws:iam::123456789012:role/HealthOmicsServiceRole", "--output-uri", "s3://your-bucket/results/",
          "--parameters", '{"param1": "value1", "param2": "value2"}']
SEED_3 = ["submit", *example_args(EXAMPLES[2][1])]  # call caching: the documentation's parameters verbatim
SEED_4 = ["submit", "--role-arn", "arn:aws:iam::713632817814:role/HealthOmicsServiceRole",
          "--output-uri", "s3://healthomics-output-bucket-demo/results/", "--run-id", "3282892"]


def aws_cli(emulator, *args, cwd=None):
    """The real `aws` CLI against the emulator."""
    aws = shutil.which("aws")
    assert aws, "the aws CLI (awscli) is a test dependency"
    env = {**os.environ, "AWS_DISABLE_HOST_PREFIX_INJECTION": "true"}
    return subprocess.run([aws, *args, "--endpoint-url", emulator.endpoint_url], capture_output=True, text=True,
                          env=env, cwd=cwd, timeout=120)


def records(path):
    with Ledger.open(path, create=False) as ledger:
        return [e.record for e in ledger.entries()]



# -- a proxy that counts and breaks things --------------------------------------------------------

class S3Proxy:
    """Forwards HTTP requests to moto. Knobs: `latency` (seconds added to each request),
    `cut_puts_after` (let N PUTs through, then drop the connection of every further PUT
    without an answer, as a dying network does), `deny` (403 AccessDenied to everything),
    `no_conditional` (501 NotImplemented to a PUT with If-None-Match, as some S3-compatible
    stores answer). Records (method, path) of every request, and the most object requests
    (not listings) seen in flight at once."""

    def __init__(self, upstream: str):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname, parts.port)
        self.lock = threading.Lock()
        self.requests: list[tuple[str, str]] = []
        self.in_flight = self.max_in_flight = self.puts = 0  # object requests only
        self.latency = 0.0
        self.cut_puts_after: int | None = None
        self.deny = False
        self.no_conditional = False
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def _handle(self):
                proxy.forward(self)

            do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _handle

        class Server(ThreadingHTTPServer):
            request_queue_size = 128  # dozens of connections open at once (the default 5 drops SYNs)
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def count(self, method: str, containing: str = "") -> int:
        with self.lock:
            return sum(1 for m, path in self.requests if m == method and containing in path)

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.max_in_flight = self.puts = 0

    def forward(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        is_object = "list-type=" not in handler.path
        with self.lock:
            self.requests.append((handler.command, handler.path))
            self.in_flight += is_object
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            if handler.command == "PUT":
                self.puts += 1
            cut = handler.command == "PUT" and self.cut_puts_after is not None and self.puts > self.cut_puts_after
        try:
            time.sleep(self.latency)
            if cut:
                handler.close_connection = True  # no answer at all
                return
            if self.deny:
                return self._error(handler, 403, "AccessDenied", "Access Denied")
            if self.no_conditional and handler.command == "PUT" and handler.headers.get("If-None-Match"):
                return self._error(handler, 501, "NotImplemented", "A header you provided implies "
                                   "functionality that is not implemented")
            headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("expect", "connection")}
            upstream = http.client.HTTPConnection(*self.upstream, timeout=30)
            upstream.request(handler.command, handler.path, body=body, headers=headers)
            answer = upstream.getresponse()
            data = answer.read()
            handler.send_response_only(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in ("connection", "transfer-encoding", "content-length"):
                    handler.send_header(name, value)
            head = handler.command == "HEAD"
            handler.send_header("Content-Length", answer.getheader("Content-Length", "0") if head else str(len(data)))
            handler.end_headers()
            if not head:
                handler.wfile.write(data)
            upstream.close()
        finally:
            with self.lock:
                self.in_flight -= is_object

    @staticmethod
    def _error(handler, status: int, code: str, message: str) -> None:
        data = (f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
                f"<Message>{message}</Message></Error>").encode()
        handler.send_response_only(status)
        handler.send_header("Content-Type", "application/xml")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()



class HoldRequests(S3Proxy):
    """Holds every request `holds(handler)` picks until `release` is set (counting them in `held`)."""

    def __init__(self, upstream: str):
        super().__init__(upstream)
        self.release = threading.Event()
        self.held = 0

    def holds(self, handler) -> bool:
        raise NotImplementedError

    def forward(self, handler) -> None:
        if self.holds(handler):
            with self.lock:
                self.held += 1
            self.release.wait(60)
        super().forward(handler)


def process_gone(pid: int) -> bool:
    """Whether the process `pid` has ended (gone, or a zombie waiting to be reaped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"


def interrupt_held(proc, front: HoldRequests, workers: list[int]) -> None:
    """Ctrl-C to `proc` (a runlog command held by `front` with its worker processes started),
    then its held requests let through: it ends with exit 130 in one line, and no worker is
    left behind."""
    import signal

    proc.send_signal(signal.SIGINT)
    time.sleep(0.2)
    front.release.set()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert err.strip().splitlines() == ["runlog: error: interrupted"]
    deadline = time.monotonic() + 10
    while not all(process_gone(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(process_gone(pid) for pid in workers)


def kill_held(proc, front: HoldRequests, workers: list[int]) -> list[str]:
    """SIGKILL to the worker processes `workers` of `proc` (a runlog command held by `front`),
    then its held requests let through: it ends with exit 1; its stderr's lines."""
    import signal

    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    front.release.set()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    return err.strip().splitlines()


def workers_of(pid: int, module: str) -> list[int]:
    """The pids of the child processes of `pid` running the runlog module `module` (Linux's /proc)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            command = (stat.parent / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid and module.encode() in command:
            found.append(int(stat.parent.name))
    return found


@contextmanager
def proxy_in_front(kind: type[S3Proxy], bucket, monkeypatch) -> Iterator[S3Proxy]:
    """A proxy of `kind` in front of moto's bucket, with runlog's S3 client pointed at it."""
    front = kind(bucket.endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", front.endpoint)
    try:
        yield front
    finally:
        front.close()


# -- a team ledger on S3 ------------------------------------------------------------------------

def fill(path, count, start=0, observe=True):
    """A ledger with `count` records (runs 5000000+start...) and one observation of the first."""
    with Ledger.open(path) as ledger:
        entries = [ledger.add_record(make_record(run_id=str(5000000 + start + i), name=f"run-{start + i}"))[0]
                   for i in range(count)]
        if observe:
            ledger.observe(entries[0].address, "GetRun", {"status": "COMPLETED", "id": entries[0].run_id},
                           run_uuid=entries[0].run_uuid, status="COMPLETED")
        return [e.address for e in entries]


def addresses(path):
    with Ledger.open(path) as ledger:
        return ledger.addresses()


def record_key(address):
    return f"runlog/records/{address[:2]}/{address}.json"


def pack_of(s3, address: str) -> str:
    """The key of the pack (runlog.remote/2) whose index names the record or observation `address`."""
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="runlog/packs/")
    for key in [item["Key"] for page in pages for item in page.get("Contents", [])]:
        if key.endswith(".index.json"):
            index = json.loads(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
            if address in index["records"] or address in [a for a, _ in index["observations"]]:
                return key.replace(".index.json", ".pack")
    raise AssertionError(f"no pack holds {address}")


def push_json(run_cli, ledger, *args):
    result = run_cli("--ledger", ledger, "push", REMOTE, "--json", *args)
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout)


def pull_json(run_cli, ledger, *args):
    result = run_cli("--ledger", ledger, "pull", REMOTE, "--json", *args)
    return result.exit_code, json.loads(result.stdout)


# -- diff: a small Nextflow submission whose parameters tests change ----------------------------

NF = ["submit", "--workflow-id", "7206765", "--role-arn", ROLE, "--output-uri", "s3://b/out/"]


def submit(run_cli, emulator, params: dict, *extra) -> str:
    result = run_cli(*NF, "--parameters", json.dumps(params), *extra, "--endpoint-url", emulator.endpoint_url)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["id"]


BASE = {"input": "s3://b/in.csv", "protocol": "10XV3", "aligner": "star", "genome": {"name": "GRCh38", "build": 38}}


# -- files the user cannot write ---------------------------------------------------------------

@contextmanager
def read_only(path) -> Iterator[None]:
    """Make a file unwritable, even for root (the immutable attribute), for the duration."""
    os.chmod(path, 0o400)
    immutable = False
    if os.access(path, os.W_OK):  # root ignores permissions
        immutable = subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode == 0
        if not immutable:
            os.chmod(path, 0o600)
            pytest.skip("cannot make a file read-only for this user")
    try:
        yield
    finally:
        if immutable:
            subprocess.run(["chattr", "-i", str(path)], check=True)
        os.chmod(path, 0o600)


# -- independent checkers ----------------------------------------------------------------------------

def checker(name: str) -> str:
    """An independent checker's executable. runcrate pins prov 1.5 and cffconvert jsonschema 3,
    both older than runlog needs, so they live in their own environment (see pyproject.toml):
    RUNLOG_CHECKERS_BIN, else .checkers/bin in the project, else PATH."""
    import os
    import shutil
    from pathlib import Path

    project = Path(__file__).resolve().parent.parent
    for directory in (os.environ.get("RUNLOG_CHECKERS_BIN"), str(project / ".checkers" / "bin")):
        if directory and (Path(directory) / name).is_file():
            return str(Path(directory) / name)
    found = shutil.which(name)
    if not found:
        import pytest

        pytest.skip(f"{name} is not installed (see pyproject.toml: a .checkers environment)")
    return found


# -- cohorts ------------------------------------------------------------------------------------------

def cohort_setting(sample: str) -> dict:
    """One run setting of the test cohort: its sample's CRAM in the cohort bucket."""
    return {"runSettingId": sample, "name": f"align-{sample}",
            "parameters": {"sample_name": sample, "input_cram": f"s3://cohort-bucket/crams/{sample}.cram"}}


def submitted_cohort(run_cli, emulator, s3, samples: list[str]) -> str:
    """A batch of `samples` (`cohort_setting` each, COHORT_DEFAULT) from an s3UriSettings file
    in moto's cohort-bucket (made if it is not there), submitted and finished, not refreshed;
    returns the batch id."""
    if "cohort-bucket" not in [b["Name"] for b in s3.list_buckets()["Buckets"]]:
        s3.create_bucket(Bucket="cohort-bucket")
    s3.put_object(Bucket="cohort-bucket", Key="cohort/settings.json",
                  Body=json.dumps([cohort_setting(s) for s in samples]).encode())
    emulator.batch_rate = 100
    submitted = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT), "--batch-run-settings",
                        json.dumps({"s3UriSettings": "s3://cohort-bucket/cohort/settings.json"}),
                        "--endpoint-url", emulator.endpoint_url)
    assert submitted.exit_code == 0, submitted.output
    emulator.advance(200)
    return json.loads(submitted.stdout)["id"]


def refreshed_cohort(run_cli, emulator, s3, samples: list[str]) -> str:
    """submitted_cohort's batch, refreshed (every member recorded with its status); returns
    the batch id."""
    batch_id = submitted_cohort(run_cli, emulator, s3, samples)
    refreshed = run_cli("refresh", batch_id)
    assert refreshed.exit_code == 0 and f"{len(samples)} new member record(s)" in refreshed.stdout, refreshed.output
    return batch_id


def omics_client(emulator):
    """boto3's omics client at the emulator (host-prefix injection off, as on loopback it must be)."""
    import boto3
    from botocore.config import Config

    return boto3.client("omics", endpoint_url=emulator.endpoint_url, region_name="us-west-2",
                        config=Config(inject_host_prefix=False))


# -- a ledger changed behind runlog's back ------------------------------------------------------------

TRIGGERS = [f"{t}_no_{op}" for t in ("records", "attempts", "observations", "observation_addresses", "row_seals")
            for op in ("update", "delete")]


def tamper(path, *statements, params=()):
    """What someone with write access to the file does: drop the triggers, change rows."""
    import sqlite3

    conn = sqlite3.connect(path)
    for name in TRIGGERS:
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    for statement in statements:
        conn.execute(statement, params) if params else conn.execute(statement)
    conn.commit()
    conn.close()


# -- a finished cohort: the refresh tests' batch ---------------------------------------------------

COHORT_ROLE = "arn:aws:iam::123456789012:role/HealthOmicsServiceRole"
COHORT_BUCKET = "cohort-bucket"
COHORT_RUNS = 250  # three pages of ListRunsInBatch, and of ListRuns
COHORT_DEFAULT = {"workflowId": "1234567", "roleArn": COHORT_ROLE, "outputUri": f"s3://{COHORT_BUCKET}/out/",
                  "parameters": {"ref_dict": f"s3://{COHORT_BUCKET}/ref/genome.dict",
                                 "ref_fasta": f"s3://{COHORT_BUCKET}/ref/genome.fasta",
                                 "ref_fasta_index": f"s3://{COHORT_BUCKET}/ref/genome.fasta.fai"}}
COHORT_NOT_STARTED = ["S0007", "S0150"]  # submissions the service refuses
COHORT_FAILING = ["S0003", "S0120", "S0249"]  # runs that fail (a GetRun each, for the reason)


@contextmanager
def finished_cohort(s3_server, monkeypatch, run_cli) -> Iterator[tuple]:
    """A batch of COHORT_RUNS runs from an s3UriSettings file, submitted with runlog and
    finished in an emulator of its own (which reads the file from moto's S3): COHORT_NOT_STARTED
    refused, COHORT_FAILING failed. Yields (emulator, batch id)."""
    from runlog.emulator import Emulator

    emulator = Emulator(port=0, s3_endpoint_url=s3_server.endpoint, batch_rate=COHORT_RUNS)
    emulator.start()
    monkeypatch.setenv("AWS_ENDPOINT_URL", emulator.endpoint_url)
    try:
        s3_server.create_bucket(Bucket=COHORT_BUCKET)
        settings = [{"runSettingId": f"S{i:04d}", "name": f"align-S{i:04d}",
                     "parameters": {"sample_name": f"S{i:04d}",
                                    "input_cram": f"s3://{COHORT_BUCKET}/crams/S{i:04d}.cram"}}
                    for i in range(COHORT_RUNS)]
        s3_server.put_object(Bucket=COHORT_BUCKET, Key="cohort/settings.json", Body=json.dumps(settings).encode())
        emulator.batch_fault("start", reason="ServiceQuotaExceeded", message="too many runs",
                             run_setting_ids=COHORT_NOT_STARTED)
        emulator.batch_fault("run", reason="OUT_OF_MEMORY", run_setting_ids=COHORT_FAILING)
        submitted = run_cli("submit-batch", "--default-run-setting", json.dumps(COHORT_DEFAULT),
                            "--batch-run-settings",
                            json.dumps({"s3UriSettings": f"s3://{COHORT_BUCKET}/cohort/settings.json"}),
                            "--no-resolve")
        assert submitted.exit_code == 0, submitted.output
        emulator.advance(3600)  # every run submitted and ended
        yield emulator, json.loads(submitted.stdout)["id"]
    finally:
        emulator.stop()



def submit_cohort(run_cli, *samples) -> str:
    """`runlog submit-batch` of an inline cohort of `samples` (COHORT_DEFAULT): its batch id."""
    return submit_settings(run_cli, [cohort_setting(s) for s in samples])


def submit_settings(run_cli, settings: list[dict], default: dict | None = None, name: str = "cohort") -> str:
    """`runlog submit-batch` of these inline run settings over `default` (COHORT_DEFAULT): its batch id."""
    result = run_cli("submit-batch", "--batch-name", name, "--default-run-setting",
                     json.dumps(COHORT_DEFAULT if default is None else default),
                     "--batch-run-settings", json.dumps({"inlineSettings": settings}))
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)["id"]


def pushed_cohort(run_cli, emulator, ledger_path, *samples):
    """A cohort submitted, its runs started, refreshed (members recorded) and pushed as one
    object per item: (batch record, first member record) as Entries."""
    from runlog.ledger import Ledger

    batch_id = submit_cohort(run_cli, *samples)
    emulator.batch_rate = 100
    emulator.advance(300)
    assert run_cli("refresh", batch_id).exit_code == 0
    push_json(run_cli, ledger_path, "--objects")
    with Ledger.open(ledger_path, create=False) as ledger:
        return ledger.entries(where="kind = 'batch'")[0], ledger.entries(where="kind = 'member'")[0]


def forged_member(body: str) -> dict:
    """A member record as someone else might write it: another input and run id for the same
    run setting, its fingerprint recomputed (schema-valid, canonical once encoded)."""
    from runlog import record as rec

    forged = json.loads(body)
    forged["request"]["parameters"]["input_cram"] = "s3://cohort-bucket/crams/FORGED.cram"
    forged["outcome"]["response"]["id"] = "4209999"
    forged["fingerprint"] = rec.fingerprint(forged)
    return forged


def another_answer(record: dict, run_id: str = "9999999") -> dict:
    """`record`, a copy of a submitted run's or batch's record, made the record of another run
    or batch: its answer gets a new uuid, id and ARN (one run or batch is started by one
    record: runlog/startrules.py). Returns it."""
    import uuid

    answer = record["outcome"]["response"]
    answer["uuid"] = str(uuid.uuid4())
    answer["arn"] = answer["arn"].replace(answer["id"], run_id)
    answer["id"] = run_id
    return record


def put_forged_member(bucket, member_body: str) -> str:
    """forged_member of a member record, written to the team bucket as a `runlog.remote/1`
    object under its own address, as someone who may write there could: its address."""
    from runlog import record as rec

    body = rec.canonical_json(forged_member(member_body))
    address = rec.sha256_hex(body)
    bucket.put_object(Bucket="lab-provenance", Key=record_key(address), Body=body)
    return address


# -- --parameters-uri: a submission whose parameters are an S3 object ------------------------------

PARAMS_BUCKET = "lab-params"
PARAMS_URI_SUBMIT = ["submit", "--workflow-id", "1234567", "--workflow-owner-id", "123456789012", "--role-arn",
                     "arn:aws:iam::123456789012:role/HealthOmicsServiceRole", "--output-uri",
                     "s3://your-bucket/results/", "--parameters-uri", f"s3://{PARAMS_BUCKET}/run/params.json"]


def put_parameters(s3, value):
    """Write the parameters file PARAMS_URI_SUBMIT names."""
    s3.put_object(Bucket=PARAMS_BUCKET, Key="run/params.json", Body=json.dumps(value).encode())


# -- batch_members: a member's status against the full recomputation (migrations m008, m014) ----

LATEST_SQL = ("SELECT seq FROM observations WHERE record = ? AND status IS NOT NULL ORDER BY {order} LIMIT 1")


def member_rows(ledger: Ledger) -> dict[str, tuple]:
    """{member address: (status, seq of the observation it comes from)} as batch_members holds them."""
    return {address: (status, obs) for address, status, obs in ledger.conn.execute(
        "SELECT r.address, m.status, m.status_obs FROM batch_members m JOIN records r ON r.seq = m.seq")}


def recomputed(ledger: Ledger) -> dict[str, tuple]:
    """The same, recomputed from all of each member's observations (Ledger's STATUS_ORDER)."""
    from runlog.ledger import STATUS_ORDER

    found = {}
    for (address,) in ledger.conn.execute("SELECT address FROM records WHERE kind = 'member'").fetchall():
        row = ledger.conn.execute(LATEST_SQL.format(order=STATUS_ORDER), (address,)).fetchone()
        status = ledger.conn.execute("SELECT status FROM observations WHERE seq = ?", row).fetchone()[0] \
            if row else None
        found[address] = (status, row[0] if row else None)
    return found


STATUSES = ["PENDING", "STARTING", "RUNNING", "STOPPING", "COMPLETED", "FAILED", "CANCELLED", "DELETED"]
TIMES = [None, "2026-11-01T10:00:00Z", "2026-11-01T10:00:00.000Z", "2026-11-01T11:00:00Z", "2026-11-02T09:30:00Z",
         "not a time", "2026-11-01T12:00:00+02:00"]


def random_observation(chance: random.Random) -> tuple[str, str, dict]:
    """(observed_at, status, body) with times that tie, are missing or cannot be read."""
    status = chance.choice(STATUSES)
    body: dict = {"status": status}
    for field in ("creationTime", "startTime", "stopTime"):
        value = chance.choice(TIMES)
        if value is not None:
            body[field] = value
    observed_at = chance.choice(["2026-11-03T08:00:00Z", "2026-11-03T08:00:00Z", "2026-11-04T08:00:00Z",
                                 "2026-11-02T08:00:00Z"])
    return observed_at, status, body


def json_leaves(value):
    """Every value in a JSON-like value that is neither an object nor an array, in order."""
    if isinstance(value, dict):
        for item in value.values():
            yield from json_leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from json_leaves(item)
    else:
        yield value


def answer_through(emulator, operation: str, change) -> None:
    """The emulator's `operation` answered through `change(handler, params, region)`: a
    service whose answers lie."""
    handler = emulator.handlers[operation]
    emulator.handlers[operation] = lambda params, region: change(handler, params, region)


def ended_batch(emulator, run_cli, *samples) -> str:
    """submit_cohort of `samples`, its runs started and ended on the emulator's clock: the batch id."""
    emulator.batch_rate = 100
    batch_id = submit_cohort(run_cli, *samples)
    emulator.advance(200)
    return batch_id


def shared_run_cohort(emulator, run_cli, fail: bool = True):
    """A cohort S1, S2, S3 whose S1 run fails (OUT_OF_MEMORY) with `fail`, refreshed through a
    ListRunsInBatch that gives S1's run to S2 as well (a faulty or hostile answer): (batch id,
    the refresh's result)."""
    if fail:
        emulator.batch_fault("run", run_setting_ids=["S1"], reason="OUT_OF_MEMORY")
    batch_id = ended_batch(emulator, run_cli, "S1", "S2", "S3")

    def shared(page):
        first = page["runs"][0]
        page["runs"][1].update({k: first[k] for k in ("runId", "runInternalUuid", "runArn")})

    pages_changed(emulator, "ListRunsInBatch", shared)
    return batch_id, run_cli("refresh", batch_id)


def pages_changed(emulator, operation: str, change) -> None:
    """answer_through for a lie made of the true answer: each answer of `operation` is changed
    in place by `change(page)` before it goes out."""
    def changed(handler, params, region):
        page = handler(params, region)
        change(page)
        return page

    answer_through(emulator, operation, changed)
