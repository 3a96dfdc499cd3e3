"""The emulator's HTTP server: the `Emulator` object tests and `runlog emulator` use, the
request handler that applies faults, and the admin API (`/_emulator/...`)."""

from __future__ import annotations

import functools
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from runlog.emulator import seed, sts
from runlog.emulator.faults import DEFAULT_CODES, Faults
from runlog.emulator.protocol import ApiError, Protocol
from runlog.emulator.state import Clock, Service, stand_in_etag

CREDENTIAL_RE = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[a-z0-9-]+)/")
DEFAULT_REGION = "us-east-1"
S3_ENDPOINT_ENV = "RUNLOG_EMULATOR_S3_ENDPOINT_URL"
BATCH_RATE_ENV = "RUNLOG_EMULATOR_BATCH_RATE"
Reply = tuple[int, dict[str, str], bytes]
_DROPPED = object()  # a fault closed the connection: nothing is sent
POLL_SECONDS = 0.05  # how often the serving loop looks for stop(); stop() waits up to this long


@dataclass
class Call:
    """One request, understood: the operation it calls (None if no operation matches), its
    parsed input, how to answer it, and how to answer it with an error in its protocol."""

    operation: str | None
    params: dict
    answer: Callable[[], Reply]
    error: Callable[[str, str], Reply]


def _no_body(method: Callable[..., None], *args: Any) -> dict:
    """Call a Service method that returns nothing; the operation answers an empty JSON body."""
    method(*args)
    return {}


def _handlers(service: Service) -> dict[str, Callable[[dict, str], dict]]:
    """Operation name -> function(params, region) returning the output members."""
    def workflow(params, region):
        found = service.workflow(params["id"], params.get("workflowOwnerId"), params.get("type"))
        return service.workflow_view(found, region)

    def workflow_version(params, region):
        found = service.workflow(params["workflowId"], params.get("workflowOwnerId"), params.get("type"),
                                 params["versionName"])
        return service.workflow_view(found, region, params["versionName"])

    return {
        "StartRun": lambda p, r: service.start_run(p, r, sts.CALLER_ARN),
        "GetRun": lambda p, r: service.get_run(p["id"]),
        "ListRuns": lambda p, r: service.list_runs(p),
        "ListRunTasks": lambda p, r: service.list_run_tasks(p),
        "GetRunTask": lambda p, r: service.get_run_task(p["id"], p["taskId"]),
        "CancelRun": lambda p, r: _no_body(service.cancel_run, p["id"]),
        "DeleteRun": lambda p, r: _no_body(service.delete_run, p["id"]),
        "GetWorkflow": workflow,
        "GetWorkflowVersion": workflow_version,
        "CreateWorkflow": lambda p, r: service.create_workflow(p, r),
        "ListWorkflows": lambda p, r: service.list_workflows(p, r),
        "TagResource": lambda p, r: _no_body(service.tag, p["resourceArn"], p["tags"]),
        "UntagResource": lambda p, r: _no_body(service.untag, p["resourceArn"], p.get("tagKeys", [])),
        "ListTagsForResource": lambda p, r: service.list_tags(p["resourceArn"]),
        "GetReadSetMetadata": lambda p, r: service.read_set(p["sequenceStoreId"], p["id"], r),
        "GetReferenceMetadata": lambda p, r: service.reference(p["referenceStoreId"], p["id"], r),
        "GetRunGroup": lambda p, r: service.run_group(p["id"], r),
        "GetRunCache": lambda p, r: service.run_cache(p["id"], r),
        "StartRunBatch": lambda p, r: service.batchbook.start(p, r, sts.CALLER_ARN, service.read_object),
        "GetBatch": lambda p, r: service.batchbook.describe(p["batchId"]),
        "ListBatch": lambda p, r: service.batchbook.list(p),
        "ListRunsInBatch": lambda p, r: service.batchbook.runs_in_batch(p),
        "CancelRunBatch": lambda p, r: service.batchbook.cancel(p["batchId"]),
        "DeleteRunBatch": lambda p, r: service.batchbook.delete_runs(p["batchId"]),
        "DeleteBatch": lambda p, r: service.batchbook.delete(p["batchId"]),
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format, *args):  # quiet: tests read emulator.requests instead
        pass

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes; without TCP_NODELAY, Nagle's algorithm
        # and the client's delayed ACK hold every answer after the first on a kept-alive
        # connection back by ~40 ms, which a real endpoint does not do.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def do_GET(self):
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_GET

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        headers = {"Content-Type": "application/json", **headers}
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _dispatch(self) -> None:
        emulator = self.server.emulator
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        url = urlsplit(self.path)
        if url.path.startswith("/_emulator/"):
            return self._send(*emulator.admin(self.command, url.path, body))
        call = emulator.understand(self.command, url.path, url.query, self.headers, body)
        entry = {"operation": call.operation, "params": call.params, "status": None}
        emulator.log(entry)
        faults = emulator.faults.take(call.operation)
        reply = _apply_faults(faults, "before", call)
        if reply is None:
            reply = call.answer()
            reply = _apply_faults(faults, "after", call) or reply
        if reply is _DROPPED:
            entry["status"] = "dropped"
            self.close_connection = True
            return
        entry["status"] = reply[0]
        self._send(*reply)


def _apply_faults(faults: list[dict], phase: str, call: Call):
    """Apply one phase's faults: sleep for latency; then _DROPPED for a dropped connection,
    an error reply instead of the real one, or None to carry on."""
    for fault in faults:
        if fault["phase"] != phase:
            continue
        if fault["kind"] == "latency":
            time.sleep(fault["seconds"])
        elif fault["kind"] == "drop":
            return _DROPPED
        else:
            return call.error(fault["code"] or DEFAULT_CODES[fault["kind"]], "injected fault: " + fault["kind"])
    return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: Emulator

    def handle_error(self, request, client_address):
        """A client that hung up before its answer (a timeout, a killed process) is part of
        what the emulator is for, not an error worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Emulator:
    """The local HealthOmics emulator. `clock="manual"` freezes time until advance() is
    called (tests); a number runs the clock at that multiple of real time. With an
    `s3_endpoint_url` (or RUNLOG_EMULATOR_S3_ENDPOINT_URL), GetRun's resourceDigests carry
    the real ETags of the S3 objects there. Batch ids start at `first_batch_id`, or at a
    random 7-digit number (each emulator its own: see batches.first_batch_id)."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", clock: str | float = "manual",
                 s3_endpoint_url: str | None = None, batch_rate: int | None = None, account: str | None = None,
                 first_batch_id: int | None = None):
        self.host, self.port = host, port
        self.account = account or seed.ACCOUNT  # the account STS GetCallerIdentity answers with
        self.clock = Clock(0.0 if clock == "manual" else float(clock))
        self.s3_endpoint_url = s3_endpoint_url or os.environ.get(S3_ENDPOINT_ENV) or None
        self.service = Service(self.clock, self._s3_etag if self.s3_endpoint_url else None,
                               self._s3_object if self.s3_endpoint_url else None, first_batch_id)
        self.batch_rate = int(batch_rate or os.environ.get(BATCH_RATE_ENV) or self.service.batch_rate)
        self.protocol = Protocol("omics")
        self.handlers = _handlers(self.service)
        self.faults = Faults()
        self.requests: list[dict] = []
        self._log_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def bind(self) -> Emulator:
        """Open the listening socket (the port is known from here on)."""
        self._server = _Server((self.host, self.port), _Handler)
        self._server.emulator = self
        self.port = self._server.server_address[1]
        return self

    def start(self) -> Emulator:
        """Bind and serve in a daemon thread."""
        server = self.bind()._server
        assert server is not None
        self._thread = threading.Thread(target=server.serve_forever, args=(POLL_SECONDS,),
                                        name="omics-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until stop() or an interrupt (binds first if needed)."""
        server = self._server or self.bind()._server
        assert server is not None
        server.serve_forever(POLL_SECONDS)

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- control -------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move the emulator's clock forward: runs progress through their phases."""
        self.clock.advance(seconds)

    def inject(self, kind: str, operation: str | None = None, count: int = 1, seconds: float = 0.0,
               phase: str = "before", code: str | None = None, skip: int = 0) -> None:
        """Make the next `count` requests for `operation` (any if None) misbehave: "throttle"
        (429), "error" (500, or the error `code`), "latency" (sleep `seconds`) or "drop"
        (close the connection unanswered); `phase` "before" or "after" handling the request;
        `skip`: the first `skip` matching requests are let by (skip=1: only a retry misbehaves)."""
        self.faults.add(kind, operation, count, seconds, phase, code, skip)

    def fail_run(self, run_id: str, reason: str = "WORKFLOW_RUN_FAILED") -> None:
        """The run ends FAILED with this failureReason instead of COMPLETED."""
        self.service.catch_up()
        self.service.fail_run(run_id, reason)

    def answer_run(self, run_id: str, **members: Any) -> None:
        """GetRun of this run answers these members as given, whatever their type (`uuid=1`):
        for tests of what runlog makes of an odd answer. ListRuns and the run's state are
        unchanged."""
        self.service.catch_up()
        self.service.answer_run(run_id, members)

    @property
    def batch_rate(self) -> int:
        """How many runs of a batch are submitted per second of the emulator's clock (for
        batches started from now on)."""
        return self.service.batch_rate

    @batch_rate.setter
    def batch_rate(self, rate: int) -> None:
        if int(rate) < 1:
            raise ValueError("the batch rate is at least 1 run per second")
        self.service.batch_rate = int(rate)

    def batch_fault(self, phase: str, reason: str | None = None, message: str | None = None,
                    batch_id: str | None = None, run_setting_ids: list[str] | None = None,
                    every: int | None = None) -> None:
        """Make part of a batch fail: `phase` "batch" (the batch FAILS before any run is
        submitted), "start" (the member's submission FAILED, with `reason` as its
        submissionFailureReason), "run" (its run ends FAILED with `reason`), "cancel" or
        "delete" (CANCEL_FAILED / DELETE_FAILED). For batch `batch_id`, or the next batch
        started when None; for the members with these runSettingIds, or every `every`-th
        member, or all of them."""
        with self.service.lock:
            self.service.catch_up()
            self.service.batchbook.add_fault(phase, reason, message, batch_id, run_setting_ids, every)

    def reset(self) -> None:
        """Back to the seed data, with no pending faults and an empty request log."""
        self.service.reset()
        self.faults.clear()
        with self._log_lock:
            self.requests.clear()

    def log(self, entry: dict) -> None:
        with self._log_lock:
            self.requests.append(entry)

    @property
    def runs(self) -> dict[str, dict]:
        """Every run the emulator holds (deleted ones included), by uuid, with its status now."""
        with self.service.lock:
            self.service.catch_up()
            return {u: {**r, "status": self.service.status(r)} for u, r in self.service.runs.items()}

    def get_run(self, run_id: str) -> dict:
        """A live run as GetRun describes it."""
        self.service.catch_up()
        return self.service.get_run(run_id)

    def get_batch(self, batch_id: str) -> dict:
        """A batch as GetBatch describes it."""
        with self.service.lock:
            self.service.catch_up()
            return self.service.batchbook.describe(batch_id)

    @functools.wraps(Service.add_workflow)
    def add_workflow(self, *args, **kwargs) -> dict:
        return self.service.add_workflow(*args, **kwargs)

    @functools.wraps(Service.add_read_set)
    def add_read_set(self, *args, **kwargs) -> dict:
        return self.service.add_read_set(*args, **kwargs)

    @functools.wraps(Service.add_reference)
    def add_reference(self, *args, **kwargs) -> dict:
        return self.service.add_reference(*args, **kwargs)

    # -- requests ------------------------------------------------------------------------------

    def understand(self, method: str, path: str, query: str, headers, body: bytes) -> Call:
        """Which operation a request calls, with what input, and how to answer it."""
        if sts.is_sts(method, path, headers):
            form = sts.parse(body)
            return Call(form.get("Action"), form, lambda: sts.answer(form, self.account), sts.error)
        error = self.protocol.error
        found = self.protocol.match(method, path)
        if found is None and method == "HEAD" and path.count("/") >= 2:
            bucket, _, key = path[1:].partition("/")
            return Call("HeadObject", {"Bucket": bucket, "Key": key}, lambda: self.s3_head(path), error)
        if found is None and "list-type=" in query:  # an S3 listing: the emulator serves S3 HEAD only
            return Call("ListObjectsV2", {"Bucket": path[1:].partition("/")[0]}, self.s3_not_implemented, error)
        if found is None:
            message = f"No operation for {method} {path}"
            return Call(None, {}, lambda: error("UnknownOperationException", message, 404), error)
        operation, labels = found
        region_match = CREDENTIAL_RE.search(headers.get("Authorization") or "")
        region = region_match["region"] if region_match else DEFAULT_REGION
        try:
            params = self.protocol.parse(operation, labels, parse_qs(query), headers, body)
        except ApiError as exc:
            code, message = exc.code, exc.message
            return Call(operation.name, {}, lambda: error(code, message), error)
        return Call(operation.name, params, lambda: self._answer(operation, params, region), error)

    def _answer(self, operation, params: dict, region: str) -> Reply:
        """Validate, handle and serialize one HealthOmics request, under the state lock."""
        try:
            self.protocol.validate(operation, params)
            handler = self.handlers.get(operation.name)
            if handler is None:
                raise ApiError("ValidationException", f"The emulator does not implement {operation.name}")
            with self.service.lock:
                self.service.catch_up()
                return self.protocol.serialize(operation, handler(params, region))
        except ApiError as exc:
            return self.protocol.error(exc.code, exc.message)
        except Exception as exc:  # an emulator bug: answer as the service would, not by hanging up
            return self.protocol.error("InternalServerException", f"emulator error: {exc!r}")

    def s3_head(self, path: str) -> Reply:
        """A stand-in for S3 HeadObject (so demos pointed at one endpoint can pin inputs):
        any object exists, with an ETag and version id derived from its name."""
        digest = stand_in_etag("s3:/" + path)
        return 200, {"ETag": f'"{digest}"', "x-amz-version-id": digest[:32],
                     "Last-Modified": "Thu, 15 Jan 2026 09:00:00 GMT"}, b""

    @staticmethod
    def s3_not_implemented() -> Reply:
        """What a server that is not S3 answers an S3 listing with, in S3's own error form."""
        body = (b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>NotImplemented</Code><Message>The HealthOmics '
                b"emulator serves S3 HeadObject only; point AWS_ENDPOINT_URL_S3 at an S3 endpoint</Message></Error>")
        return 501, {"Content-Type": "application/xml"}, body

    @functools.cached_property
    def _s3(self):
        import boto3
        from botocore.config import Config

        session = boto3.Session()
        # The usual credentials where there are some; else dummy ones, as for the emulator
        # itself (a local S3 such as moto takes any): `runlog emulator` is often started
        # before the variables it prints are exported, and S3 would then go unread.
        dummy = {} if session.get_credentials() is not None else {
            "aws_access_key_id": "emulator", "aws_secret_access_key": "emulator"}
        return session.client("s3", endpoint_url=self.s3_endpoint_url, region_name=DEFAULT_REGION, **dummy,
                              config=Config(retries={"total_max_attempts": 1}, connect_timeout=2, read_timeout=5))

    def _s3_object(self, uri: str) -> bytes:
        """The content of an object at the S3 endpoint (StartRunBatch's s3UriSettings)."""
        bucket, _, key = uri[len("s3://"):].partition("/")
        return self._s3.get_object(Bucket=bucket, Key=key)["Body"].read()

    def _s3_etag(self, uri: str) -> str | None:
        """The ETag of an object at the S3 endpoint, or None (the stand-in is used then)."""
        bucket, _, key = uri[len("s3://"):].partition("/")
        try:
            return self._s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
        except Exception:  # missing object, no such endpoint: nothing to report
            return None

    # -- admin API -----------------------------------------------------------------------------

    def admin(self, method: str, path: str, body: bytes) -> Reply:
        """The `/_emulator/...` API: the control methods above, over HTTP with JSON."""
        try:
            payload = json.loads(body) if body else {}
            action = path[len("/_emulator/"):]
            failing = re.fullmatch(r"runs/(\d+)/fail", action)
            if action == "advance" and method == "POST":
                self.advance(float(payload.get("seconds", 0)))
            elif action == "faults" and method == "POST":
                self.inject(**payload)
            elif action == "requests" and method == "GET":
                with self._log_lock:
                    return 200, {}, json.dumps(self.requests, default=str).encode()
            elif action == "reset" and method == "POST":
                self.reset()
            elif failing and method == "POST":
                self.fail_run(failing[1], payload.get("reason", "WORKFLOW_RUN_FAILED"))
            elif action == "batch-rate" and method == "POST":
                self.batch_rate = payload["rate"]
            elif action == "batch-faults" and method == "POST":
                self.batch_fault(payload["phase"], payload.get("reason"), payload.get("message"),
                                 payload.get("batchId"), payload.get("runSettingIds"), payload.get("every"))
            else:
                return 404, {}, json.dumps({"message": f"no admin action {method} {path}"}).encode()
        except (ValueError, TypeError, KeyError) as exc:
            return 400, {}, json.dumps({"message": str(exc)}).encode()
        except ApiError as exc:
            return 404 if exc.code == "ResourceNotFoundException" else 400, {}, json.dumps(
                {"message": exc.message}).encode()
        return 200, {}, b"{}"
