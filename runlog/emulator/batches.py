"""Run batches (StartRunBatch and friends) in the emulated HealthOmics service.

A batch's life is a function of the emulator's clock, computed when asked, never by a
background thread: CREATING for its first 5 s, PENDING (validation) for the next 5 s, then
SUBMITTING while its runs are started `rate` a clock second (member i is submitted at
10 + i // rate + 1 s), INPROGRESS once every submission was attempted and PROCESSED when
every run it started has ended. CancelRunBatch makes it STOPPING for 10 s, then CANCELLED;
DeleteRunBatch RUNS_DELETING for 10 s, then RUNS_DELETED (or RUNS_DELETE_FAILED).

Member runs are ordinary emulator runs, created lazily: `catch_up()` (called before every
request) creates the runs whose submission time has come, with that time as their
creation time, so GetRun, ListRuns, CancelRun and the rest see them as any other run.
Everything a page of ListRunsInBatch or ListRuns(batchId) needs is found by position, so
paging through 100 000 members costs the same per page as through ten."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from runlog.emulator.protocol import ApiError
from runlog.servicemodel import constraint_errors, pattern_matches, service_model

if TYPE_CHECKING:
    from runlog.emulator.state import Service

CREATING_SECONDS = 5  # CREATING, then PENDING (the settings are validated) for as long again
SUBMIT_AFTER = 10  # seconds after StartRunBatch the first runs are submitted
STOPPING_SECONDS = 10  # STOPPING after CancelRunBatch, then CANCELLED
DELETING_SECONDS = 10  # RUNS_DELETING after DeleteRunBatch, then RUNS_DELETED or RUNS_DELETE_FAILED
DEFAULT_RATE = 10  # runs submitted per clock second
MAX_INLINE = 100
# Batch ids are 7-digit numbers in this range, above the run ids (from 4207391: a REF of
# digits is looked up as a run id first). Each emulator (and each reset) starts at a random
# one unless given where to start: a ledger that outlives an emulator does not meet a second,
# different batch with an id it already holds.
BATCH_IDS = (8_100_001, 9_900_000)
MAX_FILE_SETTINGS = 100_000
MAX_FILE_BYTES = 256 * 1024 * 1024
SCAN_LIMIT = 10_000  # members a filtered page looks at before it answers (maybe short, with a nextToken)
ACTIVE = ("CREATING", "PENDING", "SUBMITTING", "INPROGRESS")
FINISHED = ("PROCESSED", "CANCELLED", "FAILED", "RUNS_DELETED", "RUNS_DELETE_FAILED")
DELETABLE = ("PROCESSED", "FAILED", "CANCELLED", "RUNS_DELETED")  # DeleteBatch's terminal states (API reference)
FAULT_PHASES = ("batch", "start", "run", "cancel", "delete")
FAULT_REASONS = {"batch": "ValidationException", "start": "InternalServerException", "run": "WORKFLOW_RUN_FAILED",
                 "cancel": "InternalServerException", "delete": "InternalServerException"}
RUN_STATUS_COUNTS = {"PENDING": "pendingRunCount", "STARTING": "startingRunCount", "RUNNING": "runningRunCount",
                     "STOPPING": "stoppingRunCount", "COMPLETED": "completedRunCount", "DELETED": "deletedRunCount",
                     "FAILED": "failedRunCount", "CANCELLED": "cancelledRunCount"}
SUBMISSION_COUNTS = ("successfulStartSubmissionCount", "failedStartSubmissionCount",
                     "successfulCancelSubmissionCount", "failedCancelSubmissionCount",
                     "successfulDeleteSubmissionCount", "failedDeleteSubmissionCount")


@dataclass(slots=True)
class Member:
    """One attempted submission: the run it started (None if it failed to start) and its
    submissionStatus, with the reason and message of a failure."""

    run_uuid: str | None
    status: str
    reason: str | None = None
    message: str | None = None


@dataclass
class Fault:
    """A batch fault: `phase` says what fails (the whole batch, a member's start, its run,
    its cancellation or deletion); it applies to batch `batch_id`, or to the next batch
    started when that is None, and to the members named by runSettingId or every `every`-th."""

    phase: str
    reason: str
    message: str
    batch_id: str | None = None
    run_setting_ids: frozenset[str] = frozenset()
    every: int | None = None

    def hits(self, position: int, setting: dict) -> bool:
        if self.run_setting_ids and setting.get("runSettingId") in self.run_setting_ids:
            return True
        if self.every and (position + 1) % self.every == 0:
            return True
        return not self.run_setting_ids and not self.every


@dataclass
class Batch:
    id: str
    uuid: str
    arn: str
    region: str
    name: str | None
    default: dict
    settings: list[dict]
    created: datetime
    rate: int
    caller: str
    cutoff: int  # members that will be submitted (all of them unless the batch was cancelled)
    members: list[Member] = field(default_factory=list)
    positions: dict[str, int] = field(default_factory=dict)  # runSettingId -> position
    run_positions: dict[str, int] = field(default_factory=dict)  # run id -> position
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SUBMISSION_COUNTS, 0))
    faults: list[Fault] = field(default_factory=list)
    failed: tuple[datetime, str] | None = None  # (failedTime, failureReason) of a batch that failed
    cancelled_at: datetime | None = None
    deleting_at: datetime | None = None
    delete_failed: bool = False
    deleted: bool = False  # DeleteBatch: the metadata is gone, the runs are not
    last_success: int | None = None  # position of the last member that started a run
    workflow: dict = field(default_factory=dict)  # the default's workflow, found when the batch started


def first_batch_id() -> int:
    """A random start for an emulator's batch ids, from the operating system's randomness (the
    `random` module's state is seeded by test runners, the same for every emulator of a test)."""
    import secrets

    low, high = BATCH_IDS
    return low + secrets.randbelow(high - low)


def _random_uuid() -> str:
    """A random (version 4) UUID, as uuid4() makes one but without a system call each."""
    text = f"{(random.getrandbits(128) & ~(0xF000 << 64) & ~(0xC000 << 48)) | (0x4000 << 64) | (0x8000 << 48):032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()


def merged_settings(default: dict, setting: dict) -> dict:
    """The StartRun-like settings of one member: the default run setting, the member's own
    settings over it, parameters merged (the member's win), runTags merged into the run's tags."""
    out = {k: v for k, v in default.items() if k != "runTags"}
    for key, value in setting.items():
        if key in ("runSettingId", "runTags", "parameters"):
            continue
        out[key] = value
    base, own = default.get("parameters"), setting.get("parameters")
    if isinstance(base, dict) and isinstance(own, dict):
        out["parameters"] = {**base, **own}
    elif own is not None:
        out["parameters"] = own
    tags = {**(default.get("runTags") or {}), **(setting.get("runTags") or {})}
    if tags:
        out["tags"] = tags
    return out


def _type_errors(shape, item: dict, where: str) -> list[str]:
    """What botocore would have refused in a setting that came from a file: unknown members,
    missing required ones, values of the wrong JSON type."""
    errors = [f"{where}: unknown member {name!r}" for name in item if name not in shape.members]
    errors += [f"{where}: missing required member {name}" for name in shape.required_members if name not in item]
    for name, member in shape.members.items():
        if name not in item:
            continue
        value, kind = item[name], member.type_name
        if kind == "string" and not isinstance(value, str):
            errors.append(f"{where}.{name}: must be a string")
        elif kind == "integer" and (not isinstance(value, int) or isinstance(value, bool)):
            errors.append(f"{where}.{name}: must be an integer")
        elif kind == "map" and not (isinstance(value, dict) and all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
            errors.append(f"{where}.{name}: must be an object of strings")
    return errors


def _string_ok(shape) -> Callable[[Any], bool]:
    meta = shape.metadata
    low, high = meta.get("min", 0), meta.get("max", 1 << 62)
    enum = meta.get("enum") or getattr(shape, "enum", None)
    pattern = meta["pattern"] if meta.get("pattern") and not enum else None

    def ok(value: Any) -> bool:
        return (isinstance(value, str) and low <= len(value) <= high and (not enum or value in enum)
                and (pattern is None or pattern_matches(pattern, value)))
    return ok


def _integer_ok(shape) -> Callable[[Any], bool]:
    low, high = shape.metadata.get("min", -(1 << 62)), shape.metadata.get("max", 1 << 62)

    def ok(value: Any) -> bool:
        return type(value) is int and low <= value <= high
    return ok


def _map_ok(shape) -> Callable[[Any], bool]:
    key_ok, value_ok, most = _string_ok(shape.key), _string_ok(shape.value), shape.metadata.get("max", 1 << 62)

    def ok(value: Any) -> bool:
        return isinstance(value, dict) and len(value) <= most and all(
            key_ok(k) and value_ok(v) for k, v in value.items())
    return ok


def _any_ok(value: Any) -> bool:
    return True


@functools.lru_cache(maxsize=4)
def _fast_check(shape_name: str) -> Callable[[dict], bool]:
    """Whether a setting passes every check of its shape (types, required members, the model's
    constraints), with no messages: the quick test 100 000 settings from a file go through,
    the slow one that explains a failure only runs for a setting that fails this."""
    shape = service_model("omics").shape_for(shape_name)
    checks: dict[str, Callable[[Any], bool]] = {}
    for name, member in shape.members.items():
        kind = member.type_name
        # documents (parameters, engineSettings) are any JSON
        checks[name] = {"string": _string_ok, "integer": _integer_ok, "map": _map_ok}.get(
            kind, lambda _shape: _any_ok)(member)
    required = frozenset(shape.required_members)

    def check(item: dict) -> bool:
        if not required <= item.keys():
            return False
        for name, value in item.items():
            test = checks.get(name)
            if test is None or not test(value):
                return False
        return True
    return check


class BatchBook:
    """The batches of one emulated service (reset with it)."""

    def __init__(self, service: Service, first_id: int | None = None):
        self.service = service
        self.batches: dict[str, Batch] = {}
        self.tokens: dict[str, tuple[str, str]] = {}  # requestId -> (request digest, batch id)
        self.next_id = first_batch_id() if first_id is None else int(first_id)
        self.waiting: list[Batch] = []  # batches with submissions still to come
        self.faults: list[Fault] = []  # faults for the next batch started

    # -- faults --------------------------------------------------------------------------------

    def add_fault(self, phase: str, reason: str | None = None, message: str | None = None,
                  batch_id: str | None = None, run_setting_ids: list[str] | None = None,
                  every: int | None = None) -> None:
        if phase not in FAULT_PHASES:
            raise ValueError(f"unknown batch fault phase {phase!r}; one of {', '.join(FAULT_PHASES)}")
        if every is not None and int(every) < 1:
            raise ValueError("a batch fault needs every >= 1")
        reason = reason or FAULT_REASONS[phase]
        fault = Fault(phase, reason, message or f"injected fault: {reason}", batch_id,
                      frozenset(run_setting_ids or ()), int(every) if every else None)
        if batch_id is None:
            self.faults.append(fault)
        else:
            self.get(batch_id).faults.append(fault)

    def _fault(self, batch: Batch, phase: str, position: int) -> Fault | None:
        if not batch.faults:
            return None
        setting = batch.settings[position] if position >= 0 else {}
        return next((f for f in batch.faults if f.phase == phase and (position < 0 or f.hits(position, setting))),
                    None)

    # -- the clock -----------------------------------------------------------------------------

    def _elapsed(self, batch: Batch, now: datetime) -> float:
        return (now - batch.created).total_seconds()

    def _due(self, batch: Batch, now: datetime) -> int:
        """How many members have had their submission time by `now`."""
        if batch.failed or batch.cancelled_at:
            return len(batch.members)
        ticks = int(self._elapsed(batch, now) - SUBMIT_AFTER)
        return min(batch.cutoff, max(0, ticks) * batch.rate)

    def submit_time(self, batch: Batch, position: int) -> datetime:
        return batch.created + timedelta(seconds=SUBMIT_AFTER + position // batch.rate + 1)

    def catch_up(self) -> None:
        """Submit every member whose time has come (the caller holds the service lock)."""
        if not self.waiting:
            return
        now = self.service.clock.now()
        still = []
        for batch in self.waiting:
            if batch.failed is None and self._elapsed(batch, now) >= SUBMIT_AFTER:
                fault = self._fault(batch, "batch", -1)
                if fault and not batch.members:
                    moment = batch.created + timedelta(seconds=SUBMIT_AFTER)
                    batch.failed, batch.cutoff = (moment, f"{fault.reason}: {fault.message}"), 0
            due = self._due(batch, now)
            for position in range(len(batch.members), due):
                self._submit(batch, position)
            if len(batch.members) < batch.cutoff:
                still.append(batch)
        self.waiting = still

    def _submit(self, batch: Batch, position: int) -> None:
        service = self.service
        setting = batch.settings[position]
        settings = merged_settings(batch.default, setting)
        workflow = batch.workflow
        try:
            fault = self._fault(batch, "start", position)
            if fault:
                raise ApiError(fault.reason, fault.message)
            if not settings.get("outputUri"):
                raise ApiError("ValidationException", "outputUri is required: in defaultRunSetting or the run's setting")
            parameters = settings.get("parameters") or {}
            template = workflow["parameterTemplate"]
            if template and (not isinstance(parameters, dict) or not workflow["_required"] <= parameters.keys()
                             or not parameters.keys() <= template.keys()):
                service._check_parameters(workflow, parameters if isinstance(parameters, dict) else {})
            if len(settings.get("tags") or ()) > service.max_tags:
                raise ApiError("ValidationException", f"A run can have at most {service.max_tags} tags")
        except ApiError as exc:
            batch.members.append(Member(None, "FAILED", exc.code[:64], exc.message))
            batch.counts["failedStartSubmissionCount"] += 1
            return
        run = service._new_run(settings, workflow, run_id=None, run_uuid=_random_uuid(), region=batch.region,
                               created=self.submit_time(batch, position))
        run["startedBy"] = batch.caller
        run["batchId"] = batch.id
        fault = self._fault(batch, "run", position)
        if fault:
            run["fail_reason"] = fault.reason
        batch.members.append(Member(run["uuid"], "SUCCESS"))
        batch.run_positions[run["id"]] = position
        batch.counts["successfulStartSubmissionCount"] += 1
        batch.last_success = position

    def status(self, batch: Batch, now: datetime | None = None) -> str:
        now = now or self.service.clock.now()
        if batch.deleting_at:
            if now < batch.deleting_at + timedelta(seconds=DELETING_SECONDS):
                return "RUNS_DELETING"
            return "RUNS_DELETE_FAILED" if batch.delete_failed else "RUNS_DELETED"
        if batch.cancelled_at:
            return "STOPPING" if now < batch.cancelled_at + timedelta(seconds=STOPPING_SECONDS) else "CANCELLED"
        if batch.failed:
            return "FAILED"
        elapsed = self._elapsed(batch, now)
        if elapsed < CREATING_SECONDS:
            return "CREATING"
        if elapsed < SUBMIT_AFTER:
            return "PENDING"
        if len(batch.members) < batch.cutoff:
            return "SUBMITTING"
        # Every member run lasts as long and they start in order: the last one to start ends last.
        last = self._run_of(batch, batch.last_success) if batch.last_success is not None else None
        if last is not None:
            if self.service.status(last) not in ("COMPLETED", "FAILED", "CANCELLED", "DELETED"):
                return "INPROGRESS"
        return "PROCESSED"

    def _run_of(self, batch: Batch, position: int) -> dict | None:
        member = batch.members[position]
        return self.service.runs[member.run_uuid] if member.run_uuid else None

    # -- StartRunBatch -------------------------------------------------------------------------

    def start(self, params: dict, region: str, caller: str, read_object: Callable[[str], bytes] | None) -> dict:
        token = params["requestId"]
        request_digest = _digest(params)
        if token in self.tokens:
            known, batch_id = self.tokens[token]
            if known != request_digest:
                raise ApiError("ConflictException", f"requestId {token} was already used with a different request")
            return self._start_response(self.batches[batch_id])
        default = params["defaultRunSetting"]
        workflow = self._check_default(default)
        settings = self._settings(params["batchRunSettings"], read_object)
        tags = params.get("tags") or {}
        if len(tags) > self.service.max_tags:
            raise ApiError("ValidationException", f"A resource can have at most {self.service.max_tags} tags")
        batch_id, self.next_id = str(self.next_id), self.next_id + 1
        batch = Batch(id=batch_id, uuid=str(uuid.uuid4()), arn=self.service.arn(region, "runBatch", batch_id),
                      region=region, name=params.get("batchName"), default=copy.deepcopy(default),
                      settings=settings, created=self.service.clock.now(), rate=max(1, int(self.service.batch_rate)),
                      caller=caller, cutoff=len(settings))
        template = workflow["parameterTemplate"]
        batch.workflow = {**workflow, "_required": {n for n, spec in template.items() if not spec.get("optional")}}
        batch.positions = {s["runSettingId"]: i for i, s in enumerate(settings)}
        batch.faults, self.faults = self.faults, []
        self.batches[batch_id] = batch
        self.waiting.append(batch)
        self.service.tags[batch.arn] = dict(tags)
        self.tokens[token] = (request_digest, batch_id)
        return self._start_response(batch)

    def _start_response(self, batch: Batch) -> dict:
        return {"id": batch.id, "arn": batch.arn, "status": self.status(batch), "uuid": batch.uuid,
                "tags": self.service.tags.get(batch.arn, {})}

    def _check_default(self, default: dict) -> dict:
        """What StartRunBatch checks at once (the rest is checked run by run as they are submitted)."""
        missing = [m for m in ("workflowId", "roleArn") if m not in default]
        if missing:
            raise ApiError("ValidationException", f"defaultRunSetting: missing required member(s) {', '.join(missing)}")
        if default.get("workflowType") == "READY2RUN":
            raise ApiError("ValidationException", "Run batches do not support READY2RUN workflows")
        workflow = self.service.workflow(default["workflowId"], default.get("workflowOwnerId"),
                                         default.get("workflowType"), default.get("workflowVersionName"))
        if default.get("runGroupId"):
            self.service.run_group(default["runGroupId"])
        if default.get("cacheId"):
            self.service.run_cache(default["cacheId"])
        if default.get("cacheBehavior") and not default.get("cacheId"):
            raise ApiError("ValidationException", "defaultRunSetting: cacheBehavior requires cacheId")
        if len(default.get("runTags") or {}) > self.service.max_tags:
            raise ApiError("ValidationException",
                           f"defaultRunSetting.runTags: a run can have at most {self.service.max_tags} tags")
        return workflow

    def _settings(self, run_settings: dict, read_object: Callable[[str], bytes] | None) -> list[dict]:
        given = [k for k in ("inlineSettings", "s3UriSettings") if run_settings.get(k) is not None]
        if len(given) != 1:
            raise ApiError("ValidationException",
                           "batchRunSettings: specify exactly one of inlineSettings or s3UriSettings")
        shape = service_model("omics").shape_for("InlineSetting")
        if given == ["inlineSettings"]:
            settings = run_settings["inlineSettings"]
            if not isinstance(settings, list) or not settings or len(settings) > MAX_INLINE:
                raise ApiError("ValidationException",
                               f"batchRunSettings.inlineSettings: between 1 and {MAX_INLINE} settings allowed")
            where = "batchRunSettings.inlineSettings"
        else:
            uri = run_settings["s3UriSettings"]
            settings = self._read_settings(uri, read_object)
            where = uri
        problems: list[str] = []
        seen: set[str] = set()
        fast = _fast_check("InlineSetting")
        for index, item in enumerate(settings):
            place = f"{where}[{index}]"
            if not isinstance(item, dict):
                problems.append(f"{place}: a run setting is a JSON object")
                continue
            if not fast(item):
                problems += _type_errors(shape, item, place) or constraint_errors(shape, item, place)
            run_setting_id = item.get("runSettingId")
            if isinstance(run_setting_id, str):
                if run_setting_id in seen:
                    problems.append(f"{place}: runSettingId {run_setting_id!r} is used more than once")
                seen.add(run_setting_id)
            if len(problems) >= 5:
                break
        if problems:
            raise ApiError("ValidationException", "; ".join(problems[:5]))
        return settings

    def _read_settings(self, uri: str, read_object: Callable[[str], bytes] | None) -> list:
        bucket, _, key = uri[len("s3://"):].partition("/") if uri.startswith("s3://") else ("", "", "")
        if not bucket or not key:
            raise ApiError("ValidationException", f"s3UriSettings: {uri!r} is not an s3://bucket/key URI")
        if read_object is None:
            raise ApiError("ValidationException", f"s3UriSettings: cannot read {uri}: the emulator has no S3 endpoint "
                                                  "(set RUNLOG_EMULATOR_S3_ENDPOINT_URL or --s3-endpoint-url)")
        try:
            data = read_object(uri)
        except ApiError:
            raise
        except Exception as exc:
            raise ApiError("ValidationException", f"s3UriSettings: cannot read {uri}: {exc}") from None
        settings = _parse_settings_file(uri, data)
        if not isinstance(settings, list):
            raise ApiError("ValidationException", f"s3UriSettings: {uri} is not a JSON list of run settings")
        if not settings or len(settings) > MAX_FILE_SETTINGS:
            raise ApiError("ValidationException", f"s3UriSettings: {uri} holds {len(settings)} run settings; "
                                                  f"between 1 and {MAX_FILE_SETTINGS} allowed")
        return settings

    # -- reading batches -----------------------------------------------------------------------

    def get(self, batch_id: str) -> Batch:
        batch = self.batches.get(batch_id)
        if batch is None or batch.deleted:
            raise ApiError("ResourceNotFoundException", f"The requested batch {batch_id} was not found")
        return batch

    def exists(self, batch_id: str) -> bool:
        return batch_id in self.batches and not self.batches[batch_id].deleted

    def describe(self, batch_id: str) -> dict:
        """GetBatch."""
        batch = self.get(batch_id)
        now = self.service.clock.now()
        status = self.status(batch, now)
        run_counts = dict.fromkeys(RUN_STATUS_COUNTS.values(), 0)
        for member in batch.members:
            if member.run_uuid:
                run_counts[RUN_STATUS_COUNTS[self.service.status(self.service.runs[member.run_uuid], now)]] += 1
        summary = dict(batch.counts)
        summary["pendingStartSubmissionCount"] = batch.cutoff - len(batch.members)
        out = {"id": batch.id, "arn": batch.arn, "uuid": batch.uuid, "name": batch.name, "status": status,
               "tags": self.service.tags.get(batch.arn, {}), "totalRuns": len(batch.settings),
               "defaultRunSetting": batch.default, "submissionSummary": summary, "runSummary": run_counts,
               "creationTime": batch.created}
        if status not in ("CREATING", "PENDING", "SUBMITTING") and not batch.failed:
            out["submittedTime"] = (self.submit_time(batch, batch.cutoff - 1) if batch.cutoff
                                    else batch.cancelled_at or batch.created)
        if status in ("PROCESSED", "RUNS_DELETING", "RUNS_DELETED", "RUNS_DELETE_FAILED") and not batch.cancelled_at:
            last = self._run_of(batch, batch.last_success) if batch.last_success is not None else None
            out["processedTime"] = (self.service._times(last).get("stopTime") if last else None) \
                or out.get("submittedTime")
        if batch.failed:
            out["failedTime"], out["failureReason"] = batch.failed
        return out

    def list(self, params: dict) -> dict:
        """ListBatch: newest first; filters status, name (prefix) and runGroupId."""
        now = self.service.clock.now()
        items = []
        for batch in reversed(self.batches.values()):
            if batch.deleted:
                continue
            status = self.status(batch, now)
            if params.get("status") and status != params["status"]:
                continue
            if params.get("name") and not (batch.name or "").startswith(params["name"]):
                continue
            if params.get("runGroupId") and batch.default.get("runGroupId") != params["runGroupId"]:
                continue
            items.append({"id": batch.id, "name": batch.name, "status": status, "createdAt": batch.created,
                          "totalRuns": len(batch.settings), "workflowId": batch.default["workflowId"]})
        start = _offset(params.get("startingToken"))
        size = params.get("maxItems") or 100
        page: dict[str, Any] = {"items": items[start:start + size]}
        if start + size < len(items):
            page["nextToken"] = str(start + size)
        return page

    def runs_in_batch(self, params: dict) -> dict:
        """ListRunsInBatch: the attempted submissions in the order of the settings, one filter at most."""
        batch = self.get(params["batchId"])
        filters = [k for k in ("submissionStatus", "runSettingId", "runId") if params.get(k)]
        if len(filters) > 1:
            raise ApiError("ValidationException", f"Only one filter per call is supported, got {', '.join(filters)}")
        if params.get("runSettingId") or params.get("runId"):
            if params.get("runSettingId"):
                position = batch.positions.get(params["runSettingId"])
            else:
                position = batch.run_positions.get(params["runId"])
            if position is None or position >= len(batch.members):
                return {"runs": []}
            return {"runs": [self._member_item(batch, position)]}
        wanted = params.get("submissionStatus")
        start = _offset(params.get("startingToken"))
        size = params.get("maxItems") or 100
        runs: list[dict] = []
        position, end = start, len(batch.members)
        limit = start + SCAN_LIMIT
        while position < end and len(runs) < size and position < limit:
            if not wanted or batch.members[position].status == wanted:
                runs.append(self._member_item(batch, position))
            position += 1
        page: dict[str, Any] = {"runs": runs}
        if position < end:
            page["nextToken"] = str(position)
        return page

    def _member_item(self, batch: Batch, position: int) -> dict:
        member = batch.members[position]
        item = {"runSettingId": batch.settings[position]["runSettingId"], "submissionStatus": member.status}
        if member.run_uuid:
            run = self.service.runs[member.run_uuid]
            item.update(runId=run["id"], runInternalUuid=run["uuid"], runArn=run["arn"])
        if member.reason:
            item.update(submissionFailureReason=member.reason, submissionFailureMessage=member.message)
        return item

    def list_runs(self, params: dict, item_of: Callable[[dict, datetime], dict]) -> dict:
        """ListRuns with batchId: the batch's live runs, newest first, found by position (cheap
        pages); a page looks at SCAN_LIMIT members at most."""
        batch = self.batches.get(params["batchId"])
        if batch is None:
            return {"items": []}
        now = self.service.clock.now()
        members, total = batch.members, len(batch.members)

        def listed(index: int) -> dict | None:
            member = members[total - 1 - index]
            if member.run_uuid is None:
                return None
            run = self.service.runs[member.run_uuid]
            if self.service.ids.get(run["id"]) != run["uuid"]:
                return None  # deleted
            if params.get("name") and not (run.get("name") or "").startswith(params["name"]):
                return None
            if params.get("runGroupId") and run.get("runGroupId") != params["runGroupId"]:
                return None
            item = item_of(run, now)
            return None if params.get("status") and item["status"] != params["status"] else item

        start = _offset(params.get("startingToken"))
        size = params.get("maxResults") or 100
        items: list[dict] = []
        scanned, limit = start, min(total, start + SCAN_LIMIT)
        while scanned < limit and len(items) < size:
            item = listed(scanned)
            scanned += 1
            if item is not None:
                items.append(item)
        page: dict[str, Any] = {"items": items}
        ahead = min(total, scanned + SCAN_LIMIT)
        if (scanned == limit and limit < total) or any(listed(i) is not None for i in range(scanned, ahead)):
            page["nextToken"] = str(scanned)
        return page

    # -- cancelling and deleting ---------------------------------------------------------------

    def cancel(self, batch_id: str) -> dict:
        """CancelRunBatch: no more submissions; every run still going is cancelled."""
        batch = self.get(batch_id)
        now = self.service.clock.now()
        status = self.status(batch, now)
        if status not in ACTIVE:
            raise ApiError("ConflictException", f"Batch {batch_id} is {status}; only an active batch can be cancelled")
        batch.cancelled_at, batch.cutoff = now, len(batch.members)
        for position, member in enumerate(batch.members):
            if member.run_uuid is None:
                continue
            run = self.service.runs[member.run_uuid]
            if self.service.status(run) in ("COMPLETED", "FAILED", "CANCELLED", "DELETED"):
                continue
            fault = self._fault(batch, "cancel", position)
            if fault:
                member.status, member.reason, member.message = "CANCEL_FAILED", fault.reason[:64], fault.message
                batch.counts["failedCancelSubmissionCount"] += 1
                continue
            run["final"], run["stopped"] = "CANCELLED", now
            member.status = "CANCEL_SUCCESS"
            batch.counts["successfulCancelSubmissionCount"] += 1
        return {}

    def delete_runs(self, batch_id: str) -> dict:
        """DeleteRunBatch: delete every run of a finished batch (a run still going cannot be)."""
        batch = self.get(batch_id)
        now = self.service.clock.now()
        status = self.status(batch, now)
        if status not in ("PROCESSED", "CANCELLED", "FAILED", "RUNS_DELETE_FAILED"):
            raise ApiError("ConflictException",
                           f"Batch {batch_id} is {status}; its runs can be deleted once it is PROCESSED or CANCELLED")
        batch.deleting_at, batch.delete_failed = now, False
        for position, member in enumerate(batch.members):
            if member.run_uuid is None or member.status == "DELETE_SUCCESS":
                continue
            run = self.service.runs[member.run_uuid]
            fault = self._fault(batch, "delete", position)
            if fault or self.service.status(run) not in ("COMPLETED", "FAILED", "CANCELLED"):
                reason, message = ((fault.reason, fault.message) if fault else
                                   ("ConflictException", f"Run {run['id']} is still active"))
                if member.status != "DELETE_FAILED":
                    batch.counts["failedDeleteSubmissionCount"] += 1
                member.status, member.reason, member.message = "DELETE_FAILED", reason[:64], message
                batch.delete_failed = True
                continue
            if member.status == "DELETE_FAILED":
                batch.counts["failedDeleteSubmissionCount"] -= 1
            self.service.delete_run(run["id"])
            member.status, member.reason, member.message = "DELETE_SUCCESS", None, None
            batch.counts["successfulDeleteSubmissionCount"] += 1
        return {}

    def delete(self, batch_id: str) -> dict:
        """DeleteBatch: forget a finished batch's metadata (its runs stay)."""
        batch = self.get(batch_id)
        status = self.status(batch)
        if status not in DELETABLE:
            raise ApiError("ConflictException", f"Batch {batch_id} is {status}; only a batch in a terminal state "
                           f"({', '.join(DELETABLE)}) can be deleted")
        batch.deleted = True
        self.service.tags.pop(batch.arn, None)
        return {}


def _offset(token: str | None) -> int:
    token = token or "0"
    if not token.isdigit():
        raise ApiError("ValidationException", f"startingToken: {token!r} is not a token this service issued")
    return int(token)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")


def _parse_settings_file(uri: str, data: bytes) -> object:
    """The settings file as the service reads it: UTF-8 JSON of bounded size, no NaN or
    infinities. (The emulator's own reader: it shares no code with runlog's.)"""
    if len(data) > MAX_FILE_BYTES:
        raise ApiError("ValidationException", f"s3UriSettings: {uri} is larger than {MAX_FILE_BYTES} bytes")
    try:
        return json.loads(data.decode("utf-8"), parse_constant=_refuse_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ApiError("ValidationException", f"s3UriSettings: {uri} is not a JSON list of run settings: "
                                              f"not JSON ({exc})") from None
