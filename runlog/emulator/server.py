"""The emulator's HTTP server, its fault injection and its admin API (`/_emulator/...`)."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from runlog.emulator import seed
from runlog.emulator.protocol import ApiError, Protocol
from runlog.emulator.state import Clock, Service, stand_in_etag

CREDENTIAL_RE = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[a-z0-9-]+)/")
STS_RESPONSE = """<GetCallerIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <GetCallerIdentityResult>
    <Arn>arn:aws:iam::{account}:user/runlog-emulator</Arn>
    <UserId>AIDAEMULATOREXAMPLE</UserId>
    <Account>{account}</Account>
  </GetCallerIdentityResult>
  <ResponseMetadata><RequestId>00000000-0000-4000-8000-000000000000</RequestId></ResponseMetadata>
</GetCallerIdentityResponse>"""
CALLER_ARN = f"arn:aws:iam::{seed.ACCOUNT}:user/runlog-emulator"
_DROPPED = object()  # a fault closed the connection: nothing more is sent


class Faults:
    """Faults to inject into the next matching requests."""

    KINDS = ("throttle", "error", "latency", "drop")

    def __init__(self):
        self.lock = threading.Lock()
        self.pending: list[dict] = []

    def add(self, kind: str, operation: str | None = None, count: int = 1, seconds: float = 0.0,
            phase: str = "before", code: str | None = None) -> None:
        if kind not in self.KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; one of {', '.join(self.KINDS)}")
        if phase not in ("before", "after"):
            raise ValueError("phase is 'before' or 'after'")
        with self.lock:
            self.pending.append({"kind": kind, "operation": operation, "count": count, "seconds": seconds,
                                 "phase": phase, "code": code})

    def take(self, operation: str) -> list[dict]:
        with self.lock:
            taken = []
            for fault in self.pending:
                if fault["count"] > 0 and fault["operation"] in (None, operation):
                    fault["count"] -= 1
                    taken.append(dict(fault))
            self.pending = [f for f in self.pending if f["count"] > 0]
            return taken


def _handlers(service: Service):
    """Operation name -> function(params, region) returning the output members."""
    def workflow(params, region):
        found = service.workflow(params["id"], params.get("workflowOwnerId"), params.get("type"))
        return service.workflow_view(found, region)

    def workflow_version(params, region):
        found = service.workflow(params["workflowId"], params.get("workflowOwnerId"), params.get("type"),
                                 params["versionName"])
        return service.workflow_view(found, region, params["versionName"])

    def simple(kind, known, extra):
        def handler(params, region):
            if params["id"] not in known:
                raise ApiError("ResourceNotFoundException", f"The requested {kind} {params['id']} was not found")
            return {"arn": service.arn(region, kind, params["id"]), "id": params["id"], "name": f"{kind}-{params['id']}",
                    "creationTime": time.time(), "tags": {}, **extra}
        return handler

    return {
        "StartRun": lambda p, r: service.start_run(p, r, CALLER_ARN),
        "GetRun": lambda p, r: service.get_run(p["id"]),
        "ListRuns": lambda p, r: service.list_runs(p),
        "CancelRun": lambda p, r: service.cancel_run(p["id"]) or {},
        "DeleteRun": lambda p, r: service.delete_run(p["id"]) or {},
        "GetWorkflow": workflow,
        "GetWorkflowVersion": workflow_version,
        "CreateWorkflow": lambda p, r: service.create_workflow(p, r),
        "ListWorkflows": lambda p, r: service.list_workflows(p, r),
        "TagResource": lambda p, r: service.tag(p["resourceArn"], p["tags"]) or {},
        "UntagResource": lambda p, r: service.untag(p["resourceArn"], p.get("tagKeys", [])) or {},
        "ListTagsForResource": lambda p, r: service.list_tags(p["resourceArn"]),
        "GetReadSetMetadata": lambda p, r: service.read_set(p["sequenceStoreId"], p["id"], r),
        "GetReferenceMetadata": lambda p, r: service.reference(p["referenceStoreId"], p["id"], r),
        "GetRunGroup": simple("runGroup", service.run_groups, {"maxRuns": 10}),
        "GetRunCache": simple("runCache", service.run_caches, {"cacheBehavior": "CACHE_ON_FAILURE",
                                                               "status": "ACTIVE", "cacheS3Uri": "s3://cache/"}),
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

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

    def _send(self, status: int, headers: dict, body: bytes, content_type="application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("x-amzn-RequestId", "emulator")
        for name, value in headers.items():
            self.send_header(name, value)
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
        if self.command == "POST" and url.path == "/" and b"Action=GetCallerIdentity" in body:
            xml = STS_RESPONSE.format(account=seed.ACCOUNT).encode()
            return self._send(200, {}, xml, content_type="text/xml")
        found = emulator.protocol.match(self.command, url.path)
        if found is None and self.command == "HEAD" and url.path.count("/") >= 2:
            return self._send(*emulator.s3_head(url.path))
        if found is None:
            return self._send(*emulator.protocol.error("ResourceNotFoundException",
                                                        f"No operation for {self.command} {url.path}"))
        operation, labels = found
        region_match = CREDENTIAL_RE.search(self.headers.get("Authorization", ""))
        region = region_match.group("region") if region_match else "us-east-1"
        entry = {"operation": operation.name, "params": None, "status": None}
        try:
            entry["params"] = emulator.protocol.parse(operation, labels, parse_qs(url.query), self.headers, body)
        except ApiError as exc:
            entry["error"] = exc
        emulator.log(entry)
        faults = emulator.faults.take(operation.name)
        injected = self._inject(faults, "before", entry)
        if injected is not None:
            return None if injected is _DROPPED else self._send(*injected)
        try:
            if "error" in entry:
                raise entry.pop("error")
            params = entry["params"]
            emulator.protocol.validate(operation, params)
            handler = emulator.handlers.get(operation.name)
            if handler is None:
                raise ApiError("ValidationException", f"The emulator does not implement {operation.name}")
            reply = emulator.protocol.serialize(operation, handler(params, region))
        except ApiError as exc:
            reply = emulator.protocol.error(exc.code, exc.message)
        entry["status"] = reply[0]
        injected = self._inject(faults, "after", entry)
        if injected is _DROPPED:
            return None
        self._send(*(injected or reply))

    def _inject(self, faults: list[dict], phase: str, entry: dict):
        """Apply the faults of one phase: sleep for latency; return _DROPPED after closing the
        connection, or an error reply to send instead of the real one; None otherwise."""
        for fault in faults:
            if fault["phase"] != phase:
                continue
            if fault["kind"] == "latency":
                time.sleep(fault["seconds"])
            elif fault["kind"] == "drop":
                self.close_connection = True
                entry["status"] = "dropped"
                return _DROPPED
            else:  # throttle or error
                code = fault["code"] or ("ThrottlingException" if fault["kind"] == "throttle"
                                         else "InternalServerException")
                reply = self.server.emulator.protocol.error(code, "injected fault: " + fault["kind"])
                entry["status"] = reply[0]
                return reply
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    emulator: "Emulator"


class Emulator:
    """The local HealthOmics emulator. `clock="manual"` freezes time until advance() is
    called (tests); a number runs the clock at that multiple of real time."""

    def __init__(self, port: int = 0, host: str = "127.0.0.1", clock: str | float = "manual",
                 s3_endpoint_url: str | None = None):
        self.host, self.port = host, port
        self.clock = Clock(0.0 if clock == "manual" else float(clock))
        self.service = Service(self.clock, self._s3_etag if s3_endpoint_url else None)
        self.s3_endpoint_url = s3_endpoint_url
        self.protocol = Protocol("omics")
        self.handlers = _handlers(self.service)
        self.faults = Faults()
        self.requests: list[dict] = []
        self._log_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle -----------------------------------------------------------------------------

    def bind(self) -> "Emulator":
        """Open the listening socket (the port is known from here on)."""
        self._server = _Server((self.host, self.port), _Handler)
        self._server.emulator = self
        self.port = self._server.server_address[1]
        return self

    def start(self) -> "Emulator":
        """Bind and serve in a daemon thread."""
        self.bind()
        self._thread = threading.Thread(target=self._server.serve_forever, name="omics-emulator", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve in this thread until stop() or an interrupt (after bind())."""
        if self._server is None:
            self.bind()
        self._server.serve_forever()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "Emulator":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # -- control -------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    def inject(self, kind: str, operation: str | None = None, count: int = 1, seconds: float = 0.0,
               phase: str = "before", code: str | None = None) -> None:
        self.faults.add(kind, operation, count, seconds, phase, code)

    def fail_run(self, run_id: str, reason: str = "WORKFLOW_RUN_FAILED") -> None:
        self.service.fail_run(run_id, reason)

    def reset(self) -> None:
        self.service.reset()
        with self._log_lock:
            self.requests.clear()
        self.faults = Faults()

    def log(self, entry: dict) -> None:
        with self._log_lock:
            self.requests.append(entry)

    @property
    def runs(self) -> dict[str, dict]:
        """Every run the emulator holds (deleted ones included), by uuid."""
        with self.service.lock:
            return {u: {**r, "status": self.service.status(r)} for u, r in self.service.runs.items()}

    def get_run(self, run_id: str) -> dict:
        return self.service.get_run(run_id)

    def add_workflow(self, *args, **kwargs) -> dict:
        return self.service.add_workflow(*args, **kwargs)

    def add_read_set(self, *args, **kwargs) -> dict:
        return self.service.add_read_set(*args, **kwargs)

    def add_reference(self, *args, **kwargs) -> dict:
        return self.service.add_reference(*args, **kwargs)

    def s3_head(self, path: str) -> tuple[int, dict, bytes]:
        """A stand-in for S3 HeadObject (so demos pointed at one endpoint can pin inputs):
        any object exists, with an ETag and version id derived from its name."""
        digest = stand_in_etag("s3:/" + path)
        return 200, {"ETag": f'"{digest}"', "x-amz-version-id": digest[:32],
                     "Last-Modified": "Thu, 15 Jan 2026 09:00:00 GMT"}, b""

    def _s3_etag(self, uri: str) -> str | None:
        import boto3
        from botocore.config import Config

        bucket, _, key = uri[len("s3://"):].partition("/")
        s3 = boto3.client("s3", endpoint_url=self.s3_endpoint_url, region_name="us-east-1",
                          config=Config(retries={"total_max_attempts": 1}))
        try:
            return s3.head_object(Bucket=bucket, Key=key)["ETag"].strip('"')
        except Exception:  # missing object: the deterministic stand-in is used
            return None

    # -- admin API -----------------------------------------------------------------------------

    def admin(self, method: str, path: str, body: bytes) -> tuple[int, dict, bytes]:
        try:
            payload = json.loads(body) if body else {}
            action = path[len("/_emulator/"):]
            if action == "advance" and method == "POST":
                self.advance(float(payload.get("seconds", 0)))
            elif action == "faults" and method == "POST":
                self.inject(**payload)
            elif action == "requests" and method == "GET":
                with self._log_lock:
                    return 200, {}, json.dumps(self.requests, default=str).encode()
            elif action == "reset" and method == "POST":
                self.reset()
            elif re.fullmatch(r"runs/\d+/fail", action) and method == "POST":
                self.fail_run(action.split("/")[1], payload.get("reason", "WORKFLOW_RUN_FAILED"))
            else:
                return 404, {}, json.dumps({"message": f"no admin action {method} {path}"}).encode()
        except (ValueError, TypeError, ApiError) as exc:
            return 400, {}, json.dumps({"message": str(exc)}).encode()
        return 200, {}, b"{}"
