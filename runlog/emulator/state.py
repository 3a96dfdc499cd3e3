"""What the emulated HealthOmics service knows and does: workflows, runs and their
lifecycle on a controllable clock, tags, idempotency, read sets and references."""

from __future__ import annotations

import collections
import copy
import hashlib
import json
import re
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from runlog.emulator import seed
from runlog.emulator.batches import DEFAULT_RATE, BatchBook
from runlog.emulator.protocol import ApiError

# Seconds a run spends in each status before the next, on the emulator's clock.
PHASES = (("PENDING", 10), ("STARTING", 10), ("RUNNING", 30))
TERMINAL = {"COMPLETED", "FAILED", "CANCELLED", "DELETED"}
STOPPING_SECONDS = 10  # STOPPING after CancelRun, then CANCELLED (as batches.py does for CancelRunBatch)
MAX_TAGS = 50
ENGINE_VERSIONS = {"NEXTFLOW": "23.10.1"}
URI_RE = re.compile(r"^(s3|omics)://")
ARN_RE = re.compile(r"^arn:aws[a-z-]*:omics:[a-z0-9-]+:(?P<account>\d{12}):(?P<kind>[A-Za-z]+)/(?P<id>[^/]+)$")


def _digest(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def _uuid(*parts: Any) -> str:
    return str(uuid.UUID(_digest("uuid", *parts)[:32], version=4))


class Clock:
    """Emulator time: frozen ('manual', moved by advance()) or running at `speed` x real time."""

    def __init__(self, speed: float = 0.0):
        self.speed = speed
        self.origin = datetime.now(UTC).replace(microsecond=0)
        self.started = time.monotonic()
        self.offset = 0.0
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            elapsed = (time.monotonic() - self.started) * self.speed + self.offset
        return self.origin + timedelta(seconds=elapsed)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("the emulator's clock only moves forward")
        with self._lock:
            self.offset += seconds


def stand_in_etag(uri: str) -> str:
    """The ETag the emulator reports for an object nobody stored: derived from its S3 path,
    the same in GetRun's resourceDigests and in the S3 HeadObject stand-in."""
    path = "/" + uri.split("://", 1)[1] if "://" in uri else uri
    return hashlib.md5(path.encode(), usedforsecurity=False).hexdigest()


def walk_uris(value: Any):
    if isinstance(value, str):
        if URI_RE.match(value):
            yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from walk_uris(item)
    elif isinstance(value, list):
        for item in value:
            yield from walk_uris(item)


class Service:
    max_tags = MAX_TAGS

    def __init__(self, clock: Clock, etag_lookup=None, read_object=None, first_batch_id: int | None = None):
        self.clock = clock
        self.first_batch_id = first_batch_id  # None: a random start (batches.first_batch_id), anew at each reset
        self.lock = threading.RLock()
        self.etag_lookup = etag_lookup  # uri -> ETag or None (S3 HeadObject through moto in tests)
        self.read_object = read_object  # s3 uri -> bytes (StartRunBatch's s3UriSettings), or None
        self.batch_rate = DEFAULT_RATE  # batch runs submitted per clock second
        self.reset()

    # -- state -------------------------------------------------------------------------------

    def reset(self) -> None:
        """Forget everything but the seed data (the clock keeps its time)."""
        with self.lock:
            self.workflows: dict[tuple[str | None, str], dict] = {}
            self.runs: dict[str, dict] = {}  # uuid -> run
            self._order: tuple[tuple[int, int], list[dict]] = ((0, -1), [])  # ListRuns' order, see _newest_first
            self.ids: dict[str, str] = {}  # live run id -> uuid
            self.free_ids: collections.deque[str] = collections.deque()  # ids of deleted runs, reused first
            self.next_id = 4207391
            self.tokens: dict[str, tuple[str, str]] = {}  # requestId -> (body digest, run uuid)
            self.tags: dict[str, dict[str, str]] = {}
            self.run_groups = {spec["id"]: dict(spec) for spec in seed.RUN_GROUPS}
            self.run_caches = {spec["id"]: dict(spec) for spec in seed.RUN_CACHES}
            self.read_sets: dict[tuple[str, str], dict] = {}
            self.references: dict[tuple[str, str], dict] = {}
            for spec in seed.WORKFLOWS:
                self.add_workflow(**spec)
            for spec in seed.READ_SETS:
                self.add_read_set(**spec)
            for spec in seed.REFERENCES:
                self.add_reference(**spec)
            self._seed_run()
            self.batchbook = BatchBook(self, self.first_batch_id)

    def catch_up(self) -> None:
        """Start the batch runs whose submission time has come (before anything reads the state)."""
        with self.lock:
            self.batchbook.catch_up()

    def _seed_run(self) -> None:
        spec = dict(seed.SEED_RUN)
        run = self._new_run(spec, self.workflows[(None, spec["workflowId"])], run_id=spec.pop("id"),
                            run_uuid=spec.pop("uuid"), region=seed.REGION)
        run["created"] = self.clock.now() - timedelta(days=30)

    def arn(self, region: str, kind: str, ident: str, account: str = seed.ACCOUNT) -> str:
        return f"arn:aws:omics:{region}:{account}:{kind}/{ident}"

    def add_workflow(self, id: str, name: str, engine: str = "WDL", template: dict | None = None,
                     type: str = "PRIVATE", owner: str | None = None, versions: list[str] | None = None) -> dict:
        """Add (or replace) a workflow. `template` is its parameterTemplate, {name: {"description":
        ..., "optional": bool}}, a parameter without `"optional": true` being required; `type` is
        PRIVATE or READY2RUN; `owner` an account id for a workflow another account shares with
        this one; `versions` names the versions GetWorkflowVersion knows."""
        with self.lock:
            workflow = {
                "id": id, "name": name, "engine": engine, "type": type, "owner": owner,
                "parameterTemplate": copy.deepcopy(template or {}), "uuid": _uuid("workflow", owner, id),
                "digest": "sha256:" + _digest("workflow", owner, id, name, template),
                "versions": {v: "sha256:" + _digest("version", owner, id, v) for v in (versions or [])},
                "created": datetime.fromisoformat(seed.EPOCH),
            }
            self.workflows[(owner, id)] = workflow
            return workflow

    def add_read_set(self, sequenceStoreId: str, id: str, name: str = "reads", fileType: str = "FASTQ",
                     **extra) -> dict:
        """Add a read set (ACTIVE, with a deterministic etag) to a sequence store; `extra` are
        more GetReadSetMetadata members, such as sampleId or subjectId."""
        with self.lock:
            entry = {"sequenceStoreId": sequenceStoreId, "id": id, "name": name, "fileType": fileType,
                     "status": "ACTIVE", "etag": {"algorithm": f"{fileType}_MD5up", "source1": _digest("rs", id)[:32]},
                     "creationTime": datetime.fromisoformat(seed.EPOCH), **extra}
            self.read_sets[(sequenceStoreId, id)] = entry
            return entry

    def add_reference(self, referenceStoreId: str, id: str, name: str = "reference") -> dict:
        """Add a reference (ACTIVE, with a deterministic md5) to a reference store."""
        with self.lock:
            entry = {"referenceStoreId": referenceStoreId, "id": id, "name": name, "status": "ACTIVE",
                     "md5": _digest("ref", id)[:32], "creationTime": datetime.fromisoformat(seed.EPOCH)}
            self.references[(referenceStoreId, id)] = entry
            return entry

    # -- runs ----------------------------------------------------------------------------------

    def status(self, run: dict, now: datetime | None = None) -> str:
        if run.get("final"):
            return run["final"]
        if run.get("stopping") is not None:  # CancelRun: STOPPING, then CANCELLED
            return "STOPPING" if (now or self.clock.now()) < self._stopped(run) else "CANCELLED"
        elapsed = ((now or self.clock.now()) - run["created"]).total_seconds()
        for name, seconds in PHASES:
            if elapsed < seconds:
                return name
            elapsed -= seconds
        return "FAILED" if run.get("fail_reason") else "COMPLETED"

    def _times(self, run: dict, status: str | None = None) -> dict:
        start = run["created"] + timedelta(seconds=PHASES[0][1] + PHASES[1][1])
        stop = start + timedelta(seconds=PHASES[2][1])
        status = status or self.status(run)
        out = {"creationTime": run["created"]}
        if status in ("RUNNING", "COMPLETED", "FAILED") or (status in ("CANCELLED", "STOPPING") and run.get("stopped", start) >= start):
            out["startTime"] = start
        if status in ("COMPLETED", "FAILED"):
            out["stopTime"] = stop
        elif status == "CANCELLED":
            out["stopTime"] = run["stopped"] if run.get("stopping") is None else self._stopped(run)
        return out

    @staticmethod
    def _stopped(run: dict) -> datetime:
        """When a run CancelRun stopped is CANCELLED: STOPPING_SECONDS after the call."""
        return run["stopping"] + timedelta(seconds=STOPPING_SECONDS)

    def _new_run(self, settings: dict, workflow: dict, *, run_id: str | None, run_uuid: str | None,
                 region: str, source_run: str | None = None, created: datetime | None = None) -> dict:
        if run_id is None:
            if self.free_ids:
                run_id = self.free_ids.popleft()
            else:
                run_id, self.next_id = str(self.next_id), self.next_id + 1
        run = {
            **settings, "id": run_id, "uuid": run_uuid or str(uuid.uuid4()), "workflowId": workflow["id"],
            "workflowType": workflow["type"], "workflowUuid": workflow["uuid"], "engine": workflow["engine"],
            "digest": workflow["versions"].get(settings.get("workflowVersionName"), workflow["digest"]),
            "arn": self.arn(region, "run", run_id), "created": created or self.clock.now(), "region": region,
        }
        if workflow["owner"]:
            run["workflowOwnerId"] = workflow["owner"]
        if source_run:
            run["runId"] = source_run
        run["runOutputUri"] = settings["outputUri"].rstrip("/") + "/" + run_id
        self.runs[run["uuid"]] = run
        self.ids[run_id] = run["uuid"]
        self.tags[run["arn"]] = dict(settings.get("tags") or {})
        return run

    def live_run(self, run_id: str) -> dict:
        found = self.ids.get(run_id)
        if found is None:
            raise ApiError("ResourceNotFoundException", f"The requested run {run_id} was not found")
        return self.runs[found]

    def workflow(self, workflow_id: str, owner: str | None = None, type_: str | None = None,
                 version: str | None = None) -> dict:
        """A workflow as the service finds it: in the caller's own account unless another
        owner is named, and of type PRIVATE unless READY2RUN is asked for."""
        key = (owner if owner and owner != seed.ACCOUNT else None, workflow_id)
        workflow = self.workflows.get(key)
        if workflow is None or workflow["type"] != (type_ or "PRIVATE"):
            raise ApiError("ResourceNotFoundException", f"The requested workflow {workflow_id} was not found")
        if version and version not in workflow["versions"]:
            raise ApiError("ResourceNotFoundException",
                           f"The requested workflow version {version} of workflow {workflow_id} was not found")
        return workflow

    def start_run(self, params: dict, region: str, caller: str) -> dict:
        """StartRun. Idempotent on requestId: the same request again gets the same run, another
        request with that requestId a ConflictException. `runId` duplicates a live run: its
        workflow, parameters and settings, except what the request gives."""
        token = params.get("requestId")
        body_digest = _digest(params)
        with self.lock:
            if token in self.tokens:
                digest, run_uuid = self.tokens[token]
                if digest != body_digest:
                    raise ApiError("ConflictException",
                                   f"requestId {token} was already used with a different request")
                return self._start_response(self.runs[run_uuid])
            settings = {k: v for k, v in params.items() if k not in ("requestId", "runId")}
            source = None
            if params.get("runId"):
                source_run = self.live_run(params["runId"])
                inherited = {k: source_run[k] for k in (
                    "workflowVersionName", "name", "parameters", "priority", "storageCapacity", "logLevel",
                    "runGroupId", "cacheId", "cacheBehavior", "retentionMode", "storageType", "workflowOwnerId")
                    if k in source_run}
                settings = {**inherited, **settings}
                workflow = self.workflow(source_run["workflowId"], source_run.get("workflowOwnerId"),
                                         source_run["workflowType"], settings.get("workflowVersionName"))
                source = source_run["id"]
            elif params.get("workflowId"):
                workflow = self.workflow(params["workflowId"], params.get("workflowOwnerId"),
                                         params.get("workflowType"), params.get("workflowVersionName"))
            else:
                raise ApiError("ValidationException", "Either workflowId or runId must be given")
            if "parameters" in params and "parametersUri" in params:
                raise ApiError("ValidationException", "Specify either parameters or parametersUri, not both")
            if not settings.get("parametersUri"):  # a parameters file is checked after StartRun returns
                self._check_parameters(workflow, settings.get("parameters") or {})
            if settings.get("runGroupId"):
                self.run_group(settings["runGroupId"])
            if settings.get("cacheId"):
                self.run_cache(settings["cacheId"])
            if settings.get("cacheBehavior") and not settings.get("cacheId"):
                raise ApiError("ValidationException", "cacheBehavior requires cacheId")
            if len(settings.get("tags") or {}) > MAX_TAGS:
                raise ApiError("ValidationException", f"A resource can have at most {MAX_TAGS} tags")
            run = self._new_run(settings, workflow, run_id=None, run_uuid=None, region=region, source_run=source)
            run["startedBy"] = caller
            if token:
                self.tokens[token] = (body_digest, run["uuid"])
            return self._start_response(run)

    def _start_response(self, run: dict) -> dict:
        return {"arn": run["arn"], "id": run["id"], "status": self.status(run), "tags": self.tags.get(run["arn"], {}),
                "uuid": run["uuid"], "runOutputUri": run["runOutputUri"]}

    @staticmethod
    def _check_parameters(workflow: dict, parameters: dict) -> None:
        template = workflow["parameterTemplate"]
        if not template:
            return
        missing = sorted(n for n, spec in template.items() if not spec.get("optional") and n not in parameters)
        if missing:
            raise ApiError("ValidationException", f"Missing required parameter(s) for workflow {workflow['id']}: "
                                                  f"{', '.join(missing)}")
        unknown = sorted(set(parameters) - set(template))
        if unknown:
            raise ApiError("ValidationException", f"Unknown parameter(s) for workflow {workflow['id']}: "
                                                  f"{', '.join(unknown)}")

    def resource_digests(self, run: dict, status: str) -> dict[str, str]:
        """GetRun's resourceDigests: each input's S3 ETag (a stand-in for an object nobody
        stored). Once the run is past STARTING its inputs have been read, so the digests are
        kept from the first GetRun then: an object changed in S3 afterwards does not change
        what the run read (before, each GetRun reported S3 as it was at that moment)."""
        held = run.get("read_digests")
        if held is not None:
            return dict(held)
        digests = {}
        for uri in sorted(set(walk_uris(run.get("parameters") or {}))):
            etag = self.etag_lookup(uri) if (self.etag_lookup and uri.startswith("s3://")) else None
            digests[uri] = "etag:" + (etag or stand_in_etag(uri))
        if status not in ("PENDING", "STARTING"):
            run["read_digests"] = dict(digests)
        return digests

    def get_run(self, run_id: str) -> dict:
        with self.lock:
            run = self.live_run(run_id)
            status = self.status(run)
            out = {k: v for k, v in run.items() if k not in ("created", "engine", "region", "fail_reason", "final",
                                                               "stopped", "read_digests")}
            out.update(self._times(run))
            out["status"] = status
            out["tags"] = self.tags.get(run["arn"], {})
            out["resourceDigests"] = self.resource_digests(run, status)
            out["logLocation"] = {"runLogStream": f"arn:aws:logs:{run['region']}:{seed.ACCOUNT}:log-group:/aws/omics/WorkflowLog:log-stream:run/{run['id']}"}
            if run["engine"] in ENGINE_VERSIONS:
                out["engineVersion"] = ENGINE_VERSIONS[run["engine"]]
            if status == "FAILED":
                out["failureReason"] = run.get("fail_reason") or "WORKFLOW_RUN_FAILED"
                out["statusMessage"] = out["failureReason"]
            out.update(out.pop("answer", {}))  # answer_run's members, as given
            return out

    def _list_item(self, run: dict, now: datetime | None = None) -> dict:
        item = {k: run.get(k) for k in ("arn", "id", "workflowId", "name", "priority", "storageCapacity",
                                         "storageType", "workflowVersionName", "batchId")}
        item["status"] = self.status(run, now)
        item.update(self._times(run, item["status"]))
        return item

    def _newest_first(self) -> list[dict]:
        """Every run, newest first (runs created at the same instant, latest first), sorted
        again only when runs were added."""
        key = (id(self.runs), len(self.runs))
        if self._order[0] != key:
            self._order = (key, sorted(reversed(self.runs.values()), key=lambda r: r["created"], reverse=True))
        return self._order[1]

    def list_runs(self, params: dict) -> dict:
        """ListRuns: live runs newest first; `nextToken` is the position the next page goes on from."""
        with self.lock:
            if params.get("batchId"):
                return self.batchbook.list_runs(params, self._list_item)
            token = params.get("startingToken") or "0"
            if not token.isdigit():
                raise ApiError("ValidationException", f"startingToken: {token!r} is not a token this service issued")
            order, position, size, now = self._newest_first(), int(token), params.get("maxResults") or 100, self.clock.now()

            def listed(run: dict) -> dict | None:
                if self.ids.get(run["id"]) != run["uuid"]:
                    return None
                if params.get("name") and not run.get("name", "").startswith(params["name"]):
                    return None
                if params.get("runGroupId") and run.get("runGroupId") != params["runGroupId"]:
                    return None
                item = self._list_item(run, now)
                return None if params.get("status") and item["status"] != params["status"] else item

            items: list[dict] = []
            while position < len(order) and len(items) < size:
                item = listed(order[position])
                position += 1
                if item is not None:
                    items.append(item)
            page: dict[str, Any] = {"items": items}
            if any(listed(order[i]) is not None for i in range(position, len(order))):  # stops at the first one
                page["nextToken"] = str(position)
            return page

    def cancel_run(self, run_id: str) -> None:
        with self.lock:
            run = self.live_run(run_id)
            status = self.status(run)
            if status in TERMINAL:
                raise ApiError("ConflictException", f"Run {run_id} has already finished")
            if status != "STOPPING":  # a second CancelRun while it stops changes nothing
                run["stopping"] = run["stopped"] = self.clock.now()

    def delete_run(self, run_id: str) -> None:
        with self.lock:
            run = self.live_run(run_id)
            if self.status(run) not in TERMINAL:
                raise ApiError("ConflictException", f"Run {run_id} is still active; cancel it first")
            run["final"] = "DELETED"
            del self.ids[run_id]
            self.free_ids.append(run_id)

    def fail_run(self, run_id: str, reason: str = "WORKFLOW_RUN_FAILED") -> None:
        with self.lock:
            self.live_run(run_id)["fail_reason"] = reason

    def answer_run(self, run_id: str, members: dict[str, Any]) -> None:
        with self.lock:
            self.live_run(run_id)["answer"] = dict(members)

    # -- tasks --------------------------------------------------------------------------------

    def tasks(self, run: dict) -> list[dict]:
        """The run's tasks as GetRunTask shows them, following the run's lifecycle: none while
        it is PENDING or STARTING; then one after the other. A FAILED run's last task fails
        (its failureReason the run's); with a run cache, the first task of a run whose cache
        behaviour is CACHE_ALWAYS is a cache hit."""
        status = self.status(run)
        times = self._times(run)
        if "startTime" not in times:
            return []
        workflow_name = next((w["name"] for w in self.workflows.values() if w["id"] == run["workflowId"]
                              and w["uuid"] == run["workflowUuid"]), "")
        specs = seed.TASKS.get(workflow_name, seed.DEFAULT_TASKS)
        start, now = times["startTime"], self.clock.now()
        stop = times.get("stopTime") or now
        span = timedelta(seconds=PHASES[2][1]) / len(specs)
        out = []
        for index, (name, image, source, cpus, memory, gpus) in enumerate(specs):
            begins, ends = start + span * index, start + span * (index + 1)
            if begins > stop:
                break
            task_id = str(int(_digest("task", run["uuid"], index)[:12], 16) % 10**7).zfill(7)
            task = {"taskId": task_id, "name": name, "cpus": cpus, "memory": memory, "gpus": gpus,
                    "instanceType": "omics.c.large" if cpus <= 4 else "omics.r.4xlarge",
                    "creationTime": begins, "startTime": begins,
                    "uuid": _uuid("task", run["uuid"], index),
                    "logStream": f"arn:aws:logs:{run['region']}:{seed.ACCOUNT}:log-group:/aws/omics/TaskLog:"
                                 f"log-stream:run/{run['id']}/task/{task_id}",
                    "imageDetails": {"image": f"{seed.ECR}/{image}",
                                     "imageDigest": "sha256:" + _digest("image", image),
                                     "sourceImage": source}}
            cached = bool(run.get("cacheId")) and run.get("cacheBehavior") == "CACHE_ALWAYS" and index == 0
            task["cacheHit"] = cached
            if cached:
                cache = next((c for c in seed.RUN_CACHES if c["id"] == run["cacheId"]), None)
                task["cacheS3Uri"] = (cache["cacheS3Uri"] if cache else f"s3://run-cache/{run['cacheId']}/") + \
                    f"{task['uuid']}/"
            last = index == len(specs) - 1
            if ends <= stop and not (last and status == "FAILED"):
                task.update(status="COMPLETED", stopTime=ends)
            elif status == "FAILED" and (last or ends > stop):
                task.update(status="FAILED", stopTime=stop, failureReason=run.get("fail_reason") or
                            "WORKFLOW_RUN_FAILED", statusMessage=f"task {name} exited with status 137")
                out.append(task)
                break
            elif status == "CANCELLED":
                task.update(status="CANCELLED", stopTime=stop)
            else:
                task["status"] = "RUNNING"
            out.append(task)
        return out

    def list_run_tasks(self, params: dict) -> dict:
        with self.lock:
            run = self.live_run(params["id"])
            items = [{k: v for k, v in t.items() if k not in ("imageDetails", "logStream", "failureReason",
                                                               "statusMessage", "cacheS3Uri")}
                     | ({"cacheS3Uri": t["cacheS3Uri"]} if "cacheS3Uri" in t else {})
                     for t in self.tasks(run) if not params.get("status") or t["status"] == params["status"]]
            return paginate(items, params)

    def get_run_task(self, run_id: str, task_id: str) -> dict:
        with self.lock:
            for task in self.tasks(self.live_run(run_id)):
                if task["taskId"] == task_id:
                    return task
            raise ApiError("ResourceNotFoundException", f"The requested task {task_id} was not found")

    # -- workflows, tags, stores ---------------------------------------------------------------

    def workflow_view(self, workflow: dict, region: str, version: str | None = None) -> dict:
        account = workflow["owner"] or seed.ACCOUNT
        view = {"arn": self.arn(region, "workflow", workflow["id"], account), "id": workflow["id"],
                "status": "ACTIVE", "type": workflow["type"], "name": workflow["name"], "engine": workflow["engine"],
                "digest": workflow["digest"], "parameterTemplate": workflow["parameterTemplate"],
                "creationTime": workflow["created"], "uuid": workflow["uuid"], "storageType": "DYNAMIC",
                "tags": self.tags.get(self.arn(region, "workflow", workflow["id"], account), {})}
        if version:
            view.update({"arn": f"{view['arn']}/version/{version}", "workflowId": workflow["id"],
                         "versionName": version, "digest": workflow["versions"][version],
                         "uuid": _uuid("version", workflow["id"], version)})
        return view

    def create_workflow(self, params: dict, region: str) -> dict:
        with self.lock:
            workflow_id = str(self.next_id)
            self.next_id += 1
            workflow = self.add_workflow(workflow_id, params.get("name", workflow_id), params.get("engine", "WDL"),
                                         params.get("parameterTemplate"))
            arn = self.arn(region, "workflow", workflow_id)
            self.tags[arn] = dict(params.get("tags") or {})
            return {"arn": arn, "id": workflow_id, "status": "ACTIVE", "tags": self.tags[arn], "uuid": workflow["uuid"]}

    def run_group(self, group_id: str, region: str = seed.REGION) -> dict:
        group = self.run_groups.get(group_id)
        if group is None:
            raise ApiError("ResourceNotFoundException", f"The requested run group {group_id} was not found")
        arn = self.arn(region, "runGroup", group_id)
        return {**group, "arn": arn, "creationTime": datetime.fromisoformat(seed.EPOCH),
                "tags": self.tags.get(arn, {})}

    def run_cache(self, cache_id: str, region: str = seed.REGION) -> dict:
        cache = self.run_caches.get(cache_id)
        if cache is None:
            raise ApiError("ResourceNotFoundException", f"The requested run cache {cache_id} was not found")
        arn = self.arn(region, "runCache", cache_id)
        return {**cache, "arn": arn, "status": "ACTIVE", "cacheBucketOwnerId": seed.ACCOUNT,
                "creationTime": datetime.fromisoformat(seed.EPOCH), "tags": self.tags.get(arn, {})}

    def list_workflows(self, params: dict, region: str) -> dict:
        with self.lock:
            items = []
            for (owner, _), workflow in sorted(self.workflows.items(), key=lambda kv: kv[0][1]):
                if owner is not None:
                    continue
                if params.get("type") and workflow["type"] != params["type"]:
                    continue
                if params.get("name") and not workflow["name"].startswith(params["name"]):
                    continue
                view = self.workflow_view(workflow, region)
                items.append({k: view[k] for k in ("arn", "id", "name", "status", "type", "digest", "creationTime")})
            return paginate(items, params)

    def _exists(self, arn: str) -> bool:
        """Whether an ARN names a live run, a workflow, a run group or a run cache."""
        found = ARN_RE.match(arn)
        if not found:
            return False
        kind, ident = found["kind"], found["id"]
        if kind == "run":
            return ident in self.ids and self.runs[self.ids[ident]]["arn"] == arn
        if kind == "runBatch":
            return self.batchbook.exists(ident)
        if kind == "workflow":
            return (None if found["account"] == seed.ACCOUNT else found["account"], ident) in self.workflows
        return ident in {"runGroup": self.run_groups, "runCache": self.run_caches}.get(kind, ())

    def _taggable(self, arn: str) -> dict[str, str]:
        """The (mutable) tags of the resource an ARN names; 404 if there is no such resource."""
        if not self._exists(arn):
            raise ApiError("ResourceNotFoundException", f"The requested resource {arn} was not found")
        return self.tags.setdefault(arn, {})

    def tag(self, arn: str, tags: dict) -> None:
        with self.lock:
            current = self._taggable(arn)
            if len({**current, **tags}) > MAX_TAGS:
                raise ApiError("ValidationException", f"A resource can have at most {MAX_TAGS} tags")
            current.update(tags)

    def untag(self, arn: str, keys: list[str]) -> None:
        with self.lock:
            current = self._taggable(arn)
            for key in keys:
                current.pop(key, None)

    def list_tags(self, arn: str) -> dict:
        with self.lock:
            return {"tags": dict(self._taggable(arn))}

    def read_set(self, store: str, read_set_id: str, region: str) -> dict:
        with self.lock:
            entry = self.read_sets.get((store, read_set_id))
            if entry is None:
                raise ApiError("ResourceNotFoundException", f"Read set {read_set_id} not found in store {store}")
            return {**entry, "arn": self.arn(region, "sequenceStore", f"{store}/readSet/{read_set_id}"),
                    "files": {"source1": {"totalParts": 1, "partSize": 104857600, "contentLength": 123456789}}}

    def reference(self, store: str, reference_id: str, region: str) -> dict:
        with self.lock:
            entry = self.references.get((store, reference_id))
            if entry is None:
                raise ApiError("ResourceNotFoundException", f"Reference {reference_id} not found in store {store}")
            return {**entry, "arn": self.arn(region, "referenceStore", f"{store}/reference/{reference_id}"),
                    "updateTime": entry["creationTime"]}


def paginate(items: list, params: dict) -> dict:
    """One page of a List operation: `startingToken` is the offset a previous page's
    `nextToken` gave."""
    token = params.get("startingToken") or "0"
    if not token.isdigit():
        raise ApiError("ValidationException", f"startingToken: {token!r} is not a token this service issued")
    start = int(token)
    size = params.get("maxResults") or 100
    page: dict[str, Any] = {"items": items[start:start + size]}
    if start + size < len(items):
        page["nextToken"] = str(start + size)
    return page
