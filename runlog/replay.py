"""Replaying a recorded submission: the same request member for member, a new requestId,
overrides the user asks for, and checks for what is no longer the same (drift)."""

from __future__ import annotations

import copy
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from runlog.errors import DriftError, UsageError
from runlog.ledger import Entry, Ledger

REPLAY_TAG = "runlog:replay-of"
NOT_OVERRIDABLE = ("parameters", "requestId", "runId", "workflowId")
_PART_RE = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


@dataclass
class Plan:
    original: Entry
    request: dict[str, Any]
    lineage: dict[str, Any]
    notes: list[str] = field(default_factory=list)
    workflow: dict[str, Any] | None = None  # the workflow's identity now (runlog.resolve.workflow_identity)

    @property
    def drift(self) -> list[dict]:
        return self.lineage["drift"]


def parse_path(text: str, spell: Callable[[str], str] = str) -> list[str | int]:
    """`a.b[0].c` -> ["a", "b", 0, "c"]. `spell` names the option in messages (the CLI: --set)."""
    parts: list[str | int] = []
    position = 0
    for match in _PART_RE.finditer(text):
        between = text[position:match.start()]
        if match.group(1) is not None:  # a key: first, or after a '.'
            ok = between == ("." if parts else "")
        else:  # an index: right after a key or another index
            ok = bool(parts) and between == ""
        if not ok:
            raise UsageError(f"{spell('set')}: cannot read the path {text!r} (use a.b[0].c)")
        parts.append(match.group(1) if match.group(1) is not None else int(match.group(2)))
        position = match.end()
    if not parts or position != len(text):
        raise UsageError(f"{spell('set')}: cannot read the path {text!r} (use a.b[0].c)")
    return parts


def parse_set(text: str, spell: Callable[[str], str] = str) -> tuple[str, list[str | int], Any]:
    """PATH=VALUE; VALUE is JSON when it parses as JSON, else a string."""
    if "=" not in text:
        raise UsageError(f"{spell('set')} {text!r}: expected PATH=VALUE, e.g. options.min_qual=30")
    path, raw = text.split("=", 1)
    if not path.strip():
        raise UsageError(f"{spell('set')} {text!r}: the path before '=' is empty")
    from runlog.params import parse_json_or_text

    value = parse_json_or_text(raw, f"{spell('set')} {path.strip()}")
    return path.strip(), parse_path(path.strip(), spell), value


def apply_set(parameters: dict, path: str, parts: list[str | int], value: Any, spell: Callable[[str], str] = str) -> None:
    """Set a nested value, making objects for missing keys on the way."""
    target: Any = parameters
    for depth, part in enumerate(parts[:-1]):
        following = parts[depth + 1]
        if isinstance(part, int):
            if not isinstance(target, list) or part >= len(target):
                raise UsageError(f"{spell('set')} {path}: no item [{part}] at {_json_path(parts[:depth]) or 'the top'}")
            target = target[part]
        else:
            if not isinstance(target, dict):
                raise UsageError(f"{spell('set')} {path}: {_json_path(parts[:depth])} is not an object")
            target = target.setdefault(part, [] if isinstance(following, int) else {})
    last = parts[-1]
    if isinstance(last, int):
        if not isinstance(target, list) or last >= len(target):
            raise UsageError(f"{spell('set')} {path}: no item [{last}] at {_json_path(parts[:-1]) or 'the top'}")
    elif not isinstance(target, dict):
        raise UsageError(f"{spell('set')} {path}: {_json_path(parts[:-1])} is not an object")
    target[last] = value


def _json_path(parts: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p) for i, p in enumerate(parts))


def make_plan(entry: Entry, *, members: dict[str, Any] | None = None, sets: Sequence[str] = (),
         native: bool = False, spell: Callable[[str], str] = str, observations: Sequence[dict] = (),
         default_only: bool = False) -> Plan:
    """The request a replay sends, and its lineage (without drift, which needs AWS). `spell`
    names replay's options and StartRun's members in messages (the CLI: startrun.flag_for).
    `observations` are the record's (a member of a batch whose record lacks its runs' own
    settings replays from its member-settings observation); `default_only` replays such a
    member's record, the batch's default setting alone (see member_request)."""
    record = entry.record
    if default_only and native:
        raise UsageError("`default_only=True` and `native=True` are two different replays of a member: choose one")
    if default_only and record["kind"] != "member":
        raise UsageError(f"`default_only=True` is for a member of a batch whose record lacks its own settings; "
                         f"record {entry.address[:12]} is a {record['kind']} record")
    members = {k: v for k, v in (members or {}).items() if v is not None}
    for name in members:
        if name in NOT_OVERRIDABLE:
            raise UsageError(f"a replay cannot override {name}")
    response = record["outcome"].get("response") or {}
    notes = []
    if record["outcome"]["status"] in ("rejected", "abandoned"):
        what = "a failed" if record["outcome"]["status"] == "rejected" else "an abandoned"
        notes.append(f"record {entry.address[:12]} is {what} attempt that never ran: replaying its request")
    overrides: dict[str, Any] = {}
    settings_source: dict[str, Any] | None = None
    if native:
        if not response.get("id"):
            raise UsageError(f"{spell('native')} needs a run to duplicate; this record never ran")
        if sets:
            raise UsageError(f"{spell('native')} cannot change parameters ({spell('set')}): the service copies them "
                             "from the run")
        request = {"runId": response["id"], "roleArn": record["request"]["roleArn"],
                   "outputUri": record["request"]["outputUri"]}
        notes.append(f"{spell('native')}: HealthOmics copies the workflow, version and parameters from its own copy of run "
                     f"{response['id']}, not from the record; parameter overrides and the recorded tags "
                     "are not carried over, and the run must still exist")
    elif record["kind"] == "member":  # one run of a batch, started again as a single run
        request, settings_source = member_request(entry, observations, default_only, notes)
    else:
        request = copy.deepcopy(record["request"])
        request.pop("requestId", None)
    for name, value in members.items():
        if name == "tags":  # as with submit, given tags are added to (or change) the recorded ones
            value = {**(request.get("tags") or {}), **value}
        if request.get(name) != value:
            overrides.setdefault("members", {})[name] = members[name]
        request[name] = value
    if sets and request.get("parametersUri") and "parameters" not in request:
        raise UsageError(f"{spell('set')} cannot change the parameters of record {entry.address[:12]}: they are in its "
                         f"parameters file {request['parametersUri']}, which HealthOmics reads; put the changed "
                         f"parameters in another file and submit it with {spell('parametersUri')}")
    for text in sets:
        path, parts, value = parse_set(text, spell)
        parameters = request.setdefault("parameters", {})
        apply_set(parameters, path, parts, value, spell)
        overrides.setdefault("parameters", {})[path] = value
    tags = dict(request.get("tags") or {})
    tags[REPLAY_TAG] = response.get("uuid") or entry.address
    request["tags"] = tags
    request["requestId"] = str(uuid.uuid4())
    lineage: dict[str, Any] = {
        "replay_of": {"record": entry.address, "run_uuid": response.get("uuid"), "run_id": response.get("id"),
                      "run_arn": response.get("arn")},
        "mode": "native" if native else "request",
        "overrides": overrides,
        "drift": [],
    }
    if settings_source is not None:
        lineage["settings"] = settings_source
    return Plan(entry, request, lineage, notes)


def member_request(entry: Entry, observations: Sequence[dict], default_only: bool,
                   notes: list[str]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(StartRun request, lineage.settings) that replays one member of a batch as a single run.

    A member whose record holds its own settings (a batch submitted through runlog): its
    effective setting, lineage.settings None. A member whose record holds the batch's default
    alone (a batch found by import, or whose settings file could not be read): the settings
    GetRun reported, from its newest member-settings observation (runlog.membersettings), and
    lineage.settings {"from": "GetRun", "observed_at"}; when they are unknown, UsageError
    naming the run, why and what to do, unless `default_only`: then the record's default
    setting, and lineage.settings {"from": "default", "reason"}."""
    from runlog.batch import member_as_run
    from runlog.membersettings import FINAL_UNKNOWN, NOT_ASKED, known_settings, needs_settings
    from runlog.startrun import members as startrun_members
    from runlog.textsafe import terminal_safe

    record = entry.record
    run_id = (record["outcome"].get("response") or {}).get("id")
    if run_id is not None:
        run_id = terminal_safe(run_id)  # the service's text, as the batch's id, its run setting and GetRun's reason
    where = {k: terminal_safe(v) for k, v in (record.get("batch") or {}).items() if isinstance(v, str)}
    if not needs_settings(record):
        if default_only:
            raise UsageError(f"`default_only=True`: the record of run {run_id} holds its own settings (its batch "
                             "was submitted through runlog with them); replay it without `default_only=True`")
        return member_as_run(record["request"]), None
    known = known_settings(record, list(observations))
    member = f"run {run_id or '(none)'} (run setting '{where.get('run_setting_id')}' of batch {where.get('batch_id')})"
    if default_only:
        why = (f"its own settings were observed from GetRun at {known.observed_at}" if known.state == "observed"
               else f"its own settings are unknown: {known.reason}")  # recorded as it is, printed made safe
        notes.append(f"{member}: replaying its batch's default setting alone, as asked ({terminal_safe(why)}), not "
                     "what the run ran with")
        return member_as_run(record["request"]), {"from": "default", "reason": why}
    if known.state != "observed" or known.settings is None:
        reason = terminal_safe(known.reason or "unknown")
        fixes = []
        code = known.code  # GetRun's error code, when GetRun was asked and could not tell
        if run_id and (known.reason == NOT_ASKED or (code is not None and code not in FINAL_UNKNOWN)):
            fixes.append(f"`refresh(['{where.get('batch_id')}'])` asks GetRun again")
        if run_id and code not in ("ResourceNotFoundException", "RunReplaced"):
            fixes.append(f"`replay('{run_id}', native=True)` has HealthOmics copy the run")
        ref = run_id or entry.address[:12]
        fixes.append(f"`replay('{ref}', default_only=True)` starts the batch's default setting alone")
        raise UsageError(f"{member}: its own settings are unknown ({reason}) and its record holds only the "
                         f"batch's default setting; " + "; ".join(fixes))
    known_members = startrun_members()
    left_out = sorted(k for k in known.settings if k not in known_members and k != "runTags")
    notes.append(f"{member}: replaying the settings observed from GetRun at {known.observed_at} (its record holds "
                 "the batch's default setting alone)")
    if left_out:
        notes.append(f"GetRun reported {', '.join(left_out)} for run {run_id}, which StartRun (this botocore) does "
                     "not take: not sent")
    source = {"from": "GetRun", "observed_at": known.observed_at}
    if known.digest:
        source["digest"] = known.digest
    return member_as_run(known.settings), source


def check_drift(plan: Plan, *, git_now: dict | None, omics, clients: dict, recorded_digest: str | None,
                timeout: float = 5.0, pinned: dict[str, dict] | None = None) -> None:
    """Fill plan.drift with what is no longer as recorded: the analysis repository's code,
    the workflow's digest, the inputs' identities (`pinned`: batchread.pinned_inputs, a
    member's from its batch record; default the record's own). Adds notes for what cannot be
    checked."""
    from runlog.resolve import (
        effective_parameters,
        input_uris,
        parameters_file,
        resolve_inputs,
        workflow_identity,
    )

    record = plan.original.record
    drift = plan.lineage["drift"]
    recorded_git = record.get("git") or {}
    if recorded_git.get("state") in ("clean", "dirty") and git_now is not None:
        if git_now.get("state") == "none":
            drift.append({"kind": "git", "what": "repository", "recorded": recorded_git.get("commit"),
                          "current": None})
        else:
            for what, key in (("commit", "commit"), ("uncommitted changes", "diff_sha256"),
                              ("untracked files", "untracked_sha256")):
                if recorded_git.get(key) != git_now.get(key):
                    drift.append({"kind": "git", "what": what, "recorded": recorded_git.get(key),
                                  "current": git_now.get(key)})
    elif record["kind"] == "import":
        plan.notes.append("git: not applicable, the run was started without runlog (imported from GetRun), "
                          "so its code is unknown and not checked")
    elif record["kind"] == "member" and recorded_git.get("state") == "unknown":
        plan.notes.append("git: not applicable, the run's batch was started without runlog (imported from "
                          "GetBatch), so its code is unknown and not checked")
    else:
        plan.notes.append(f"git: not checked, the record's git state is {recorded_git.get('state')} "
                          f"({recorded_git.get('reason', 'no commit recorded')})")

    workflow_now = workflow_identity(omics, plan.request)  # with --native: the workflow the source run names
    plan.workflow = workflow_now
    if "error" in workflow_now:
        drift.append({"kind": "workflow", "what": "definition", "recorded": recorded_digest,
                      "current": f"{workflow_now['error']['code']}: {workflow_now['error']['message']}"})
    elif recorded_digest is None:
        plan.notes.append("workflow: not checked, no digest was recorded (neither at submission nor by GetRun)")
    elif workflow_now.get("digest") != recorded_digest:
        drift.append({"kind": "workflow", "what": "digest", "recorded": recorded_digest,
                      "current": workflow_now.get("digest")})

    recorded_file = (record.get("resolution") or {}).get("parameters_file")
    if plan.request.get("parametersUri") and recorded_file and "error" not in recorded_file:
        now = parameters_file(clients["s3"], plan.request["parametersUri"])
        if "error" in now:
            drift.append({"kind": "input", "what": f"parameters file {recorded_file['uri']}", "recorded": "present",
                          "current": now["error"]["code"]})
        else:
            for field in ("sha256", "etag", "version_id"):
                if recorded_file.get(field) != now.get(field):
                    drift.append({"kind": "input", "what": f"parameters file {recorded_file['uri']} {field}",
                                  "recorded": recorded_file.get(field), "current": now.get(field)})
    elif plan.request.get("parametersUri"):
        plan.notes.append("parameters file: not checked, its content was not recorded at submission")
    named = input_uris(effective_parameters(plan.request, record.get("resolution")))
    recorded_inputs = pinned if pinned is not None else (record.get("resolution") or {}).get("inputs") or {}
    if recorded_inputs:
        wanted = {uri: recorded_inputs[uri] for uri in named if uri in recorded_inputs}
        found, notes = input_drift(wanted, resolve_inputs(list(wanted), clients, timeout=timeout))
        drift.extend(found)
        plan.notes.extend(notes + not_pinned(named, recorded_inputs))
    elif named and record["kind"] == "member":
        plan.notes.append("inputs: not checked, neither this member's record nor its batch's pins input "
                          "identities (an imported batch's runs were started without runlog; a batch "
                          "submitted with resolution off pinned none)")
    elif named and record["kind"] == "import":
        plan.notes.append("inputs: not checked, no identities were pinned when this run was started "
                          "(it was imported from GetRun)")
    elif named:
        plan.notes.append("inputs: not checked, the record pinned no input identities (submitted with "
                          "`resolve=False`?)")


# What a resolver says of an input that is not there (S3's codes are normalised to NotFound;
# a listing of a bucket that does not exist says NoSuchBucket: no object of it was there either).
ABSENT = ("NotFound", "NoSuchBucket", "ResourceNotFoundException")


def input_drift(recorded: dict[str, dict], current: dict[str, dict]) -> tuple[list[dict], list[str]]:
    """The one rule for input drift, a run's or a batch's: (drift, notes).

    Drift: an identity field (ETag, version id, size, checksums) that differs between what
    was recorded and what is found now; an input that was found then and is not now, or
    cannot be read now (its error code as what it is now: a replay never starts inputs it
    could not check unless drift is allowed; those the time budget left are one finding that
    says how many); an input that was not there at submission and is now (the original run
    cannot have read these bytes; so is one whose bucket did not exist). Notes: inputs that
    could not be identified at submission (its time budget, access, an endpoint that is not
    S3) are not compared, and a note says how many."""
    from runlog.resolve import identity_changes

    drift = [{"kind": "input", "what": f"{change['uri']} {change['field']}", "recorded": change["old"],
              "current": change["new"]} for change in identity_changes(recorded, current)]
    late = []  # not resolved within the time budget now: one finding for all of them
    for uri, identity in current.items():
        if "error" in identity and "error" not in recorded.get(uri, {}):
            if identity["error"]["code"] == "Timeout":
                late.append(uri)
            else:
                drift.append({"kind": "input", "what": uri, "recorded": "present",
                              "current": identity["error"]["code"]})
    if late:
        drift.append({"kind": "input", "what": f"{len(late)} input(s) not checked within the time budget "
                      f"(the first: {late[0]}; a longer resolve timeout checks them)", "recorded": "present",
                      "current": "Timeout"})
    unidentified: dict[str, list[str]] = {}  # code at submission -> inputs readable now
    for uri, before in recorded.items():
        after = current.get(uri)
        if after is None or "error" not in before or "error" in after:
            continue
        code = before["error"].get("code") or "unknown"
        if code in ABSENT:
            drift.append({"kind": "input", "what": uri, "recorded": code, "current": "present"})
        else:
            unidentified.setdefault(code, []).append(uri)
    notes = [f"inputs: {len(uris)} not compared: not identified at submission ({code}), so what they held "
             f"then is unknown (the first: {uris[0]})" for code, uris in sorted(unidentified.items())]
    return drift, notes


def not_pinned(named: Sequence[str], pinned: dict[str, dict]) -> list[str]:
    """The note on the inputs a replay sends that the original never pinned (its batch's
    settings file not read at submission, an input added with `set`): nothing to compare
    them with, so they are not checked, and a replay says so rather than pass them as checked."""
    missing = [uri for uri in named if uri not in pinned]
    if not missing:
        return []
    return [f"inputs: {len(missing)} input(s) not pinned at submission: not checked (the first: {missing[0]})"]


def describe(drift: dict) -> str:
    def short(value):
        if value is None:
            return "(none)"
        text = str(value)
        return text[:12] if re.fullmatch(r"[0-9a-f]{40,64}", text) else text

    return f"{drift['kind']} {drift['what']} changed: {short(drift['recorded'])} -> {short(drift['current'])}"


# -- the use case: prepare once (one ledger, one GetWorkflow, one git capture, one set of
# clients), then send with what was prepared -------------------------------------------------


@dataclass
class Prepared:
    """A replay ready to send: its plan (with drift), where it goes and what was made on the
    way, reused by the send so that nothing is asked twice."""

    plan: Plan
    settings: Any  # aws.AwsSettings: where the replay goes (flag > recorded > config > environment)
    session: Any
    omics: Any
    clients: dict[str, Any]
    git: dict  # gitcapture.capture_with_notes' answer, made once
    imported: Entry | None = None  # the record made from GetRun when the run was not in the ledger


def is_fetchable(ref: str) -> bool:
    """A run id or run ARN: a reference GetRun can answer when the ledger cannot."""
    from runlog.arn import is_run_arn

    return ref.isdigit() or is_run_arn(ref)


def prepare(ref: str, *, existing: Ledger | None, create_ledger, settings_for, session_for, git_path,
            members: dict[str, Any] | None = None, sets: Sequence[str] = (), native: bool = False,
            timeout: float = 5.0, spell=None, default_only: bool = False) -> tuple[Prepared, Ledger]:
    """The replay of `ref`, its drift checked. Returns (prepared, ledger): the ledger it was
    read from (or created for a run fetched with GetRun), to send with.

    `existing` is the open ledger (None when there is none yet); `create_ledger()` makes one,
    called only after GetRun found a run the ledger lacks (a run it cannot find leaves
    nothing behind). `settings_for(recorded)` gives the AWS settings for a record's `aws`
    section (None: a run not yet recorded); `session_for(settings)` the session."""
    from runlog import aws, gitcapture
    from runlog.batchread import pinned_inputs, pinned_workflow_digest
    from runlog.errors import LedgerError
    from runlog.importer import import_run
    from runlog.observe import latest_run_facts
    from runlog.startrun import check_request, member_name
    from runlog.submit import resolution_clients

    spell = spell or member_name
    ledger = existing
    imported = None
    if is_fetchable(ref) and (ledger is None or not ledger.candidates(ref)):
        fetched_with = settings_for(None)
        fetch_session = session_for(fetched_with)
        run = get_unrecorded_run(aws.client(fetched_with, "omics", sess=fetch_session), ref)
        if ledger is None:
            ledger = create_ledger()
        imported, _ = import_run(ledger, run, aws.recorded_endpoint(fetched_with, fetch_session))
        entry = imported
    elif ledger is None:
        raise LedgerError("no ledger yet (nothing submitted with it)")
    else:
        entry = ledger.resolve(ref)
    settings = settings_for(entry.record["aws"])
    observations = ledger.observations(entry.address) if entry.kind == "member" else []
    plan = make_plan(entry, members=members, sets=sets, native=native, spell=spell, observations=observations,
                     default_only=default_only)
    check_request(plan.request, spell)
    sess = session_for(settings)
    omics = aws.client(settings, "omics", sess=sess)
    clients = resolution_clients(plan.request, settings, sess, omics, timeout)
    recorded_digest = pinned_workflow_digest(ledger, entry) \
        or latest_run_facts(ledger, entry.address).get("digest") \
        or (plan.lineage.get("settings") or {}).get("digest")  # a member's, from its member-settings observation
    captured = gitcapture.capture_with_notes(str(git_path))
    check_drift(plan, git_now=captured["git"], omics=omics, clients=clients, recorded_digest=recorded_digest,
                timeout=timeout, pinned=pinned_inputs(ledger, entry))
    return Prepared(plan, settings, sess, omics, clients, captured, imported), ledger


def get_unrecorded_run(omics, ref: str) -> dict:
    """GetRun for a run id or ARN that is not in the ledger; UsageError when the service
    cannot find it."""
    from runlog.arn import parse_run_arn
    from runlog.errors import ServiceError
    from runlog.observe import get_run

    found = parse_run_arn(ref)
    run_id = ref if ref.isdigit() or found is None else found.run_id
    try:
        return get_run(omics, run_id)
    except ServiceError as exc:
        if exc.code in ("ResourceNotFoundException", "AccessDeniedException", "ValidationException"):
            raise UsageError(f"run {run_id} is not in the ledger and GetRun cannot find it "
                             f"({exc.code}: {exc.service_message}); it may be deleted, expired, or in "
                             "another account or region") from None
        raise


def refusal(prepared: Prepared) -> DriftError | None:
    """The DriftError a replay with drift is refused with (None without drift)."""
    return drift_refusal(prepared.plan.drift, "run")


def drift_refusal(drift: list[dict], original: str) -> DriftError | None:
    """The DriftError a replay of a `original` ("run", "batch") with `drift` is refused with
    (None without drift): the first three findings named."""
    if not drift:
        return None
    return DriftError(f"replay refused: {len(drift)} drift finding(s) since the original {original}: "
                      + "; ".join(describe(d) for d in drift[:3]) + ("; …" if len(drift) > 3 else "")
                      + " (allowing drift replays anyway and records it)", drift)


def send(prepared: Prepared, ledger: Ledger, *, allow_drift: bool = False, lookup_caller: bool = True,
         resolve_options=None, allow_duplicate: bool = False, warn=lambda message: None, spell=None):
    """Send a prepared replay and record it (kind "replay", with its lineage), with the
    session, clients, git capture and workflow identity the preparation made. Raises
    DriftError when something drifted and not allow_drift; otherwise as submit.submit."""
    from runlog.startrun import StartRunRequest, member_name
    from runlog.submit import submit

    refused = None if allow_drift else refusal(prepared)
    if refused is not None:
        raise refused
    plan = prepared.plan
    start_request = StartRunRequest(request=plan.request, parameters={"source": "recorded", "argument": None},
                  spell=spell or member_name)
    workflow = plan.workflow if plan.workflow and "error" not in plan.workflow else None
    return submit(lambda: ledger, start_request, settings=prepared.settings, git_path=None, kind="replay",
                  extra={"lineage": plan.lineage}, lookup_caller=lookup_caller, resolve_options=resolve_options,
                  allow_duplicate=allow_duplicate, warn=warn, session=prepared.session, omics=prepared.omics,
                  clients=prepared.clients, git=prepared.git, workflow=workflow)
