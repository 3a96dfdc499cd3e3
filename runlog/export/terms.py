"""One mapping from a record (and its observations) to the terms every export uses."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from runlog.arn import parse_run_arn
from runlog.ledger import Entry, Ledger
from runlog.observe import latest_run_facts
from runlog.record import NOT_SENT, effective_parameters

ENGINE_NAMES = {"WDL": "WDL", "WDL_LENIENT": "WDL", "NEXTFLOW": "Nextflow", "CWL": "CWL"}
STATUS_OF_REJECTED = "NOT_RUN"
STATUS_OF_ABANDONED = "ABANDONED"
# StartRun members that change what a run computes or keeps: exported in every format.
RESULT_SETTINGS = ("workflowVersionName", "cacheId", "cacheBehavior", "storageType", "storageCapacity",
                   "runGroupId", "retentionMode", "networkingMode", "configurationName", "engineSettings")


# the S3 object a --parameters-uri run took its parameters from: an input of the run, under
# this name (its StartRun member), with the identity and SHA-256 pinned at submission
PARAMETERS_FILE = "parametersUri"


@dataclass
class Input:
    path: str  # JSON path of the parameter (name for top-level ones)
    uri: str
    # what was pinned at submission ({} when not resolved); for an S3 object the run read with
    # another ETag (GetRun resourceDigests), that ETag, and the pinned one as `pinned_etag`
    identity: dict
    seen_etag: str | None  # the ETag the service reported reading (GetRun resourceDigests)
    # why it was not resolved at submission (the error code recorded: NotFound, AccessDenied,
    # Timeout...), None when it was, or when resolution was off
    unresolved: str | None = None

    @property
    def is_prefix(self) -> bool:
        return self.uri.endswith("/")

    @property
    def etag(self) -> str | None:
        """The S3 ETag pinned at submission, else the one the service reported: an opaque
        version tag, not a digest (a multipart upload's ETag is no MD5)."""
        if self.identity.get("kind") in ("read-set", "reference"):
            return None
        return self.identity.get("etag") or self.seen_etag

    @property
    def checksums(self) -> list[tuple[str, str]]:
        """(algorithm, value) for real digests of the bytes only: a reference's md5, a read
        set's checksum under its own algorithm (e.g. CRAM_MD5up, HealthOmics' MD5 of the
        uploaded parts). S3 ETags are not digests and are never listed here."""
        kind = self.identity.get("kind")
        if kind == "reference" and self.identity.get("md5"):
            # the reference's md5 is the FASTA's: its index (.../reference/ID/index) is other bytes
            if self.uri.rstrip("/").rsplit("/", 2)[-2] == "reference" or self.uri.endswith("/source"):
                return [("md5", self.identity["md5"])]
            return []
        if kind == PARAMETERS_FILE and self.identity.get("sha256"):
            return [("sha256", self.identity["sha256"])]  # of the bytes read at submission
        if kind == "read-set" and self.identity.get("etag"):
            return [(self.identity.get("etag_algorithm") or "HealthOmics ETag", self.identity["etag"])]
        return []

    @property
    def identity_text(self) -> str:
        """The pinned identity in words, for methods and tables."""
        parts = [f"{algorithm} {value}" for algorithm, value in self.checksums]
        if self.etag:
            parts.append(f"S3 ETag {self.etag}")
        if self.identity.get("version_id"):
            parts.append(f"S3 version {self.identity['version_id']}")
        if self.identity.get("digest"):
            parts.append(f"listing digest {self.identity['digest']} over {self.identity.get('objects')} object(s)")
        if self.identity.get("pinned_etag"):
            parts.append(f"as the run read it: changed after submission (pinned ETag {self.identity['pinned_etag']})")
        if not parts and self.unresolved:
            return f"not resolved at submission ({self.unresolved})"
        return ", ".join(parts) or "identity not recorded"

    @property
    def identity_key(self) -> tuple:
        """What tells one content behind the URI from another: its ETag (as pinned, else as
        the service read it), digests and listing digest. Two S3 versions with the same ETag
        hold the same bytes, so they are one identity."""
        return (self.etag, tuple(self.checksums), self.identity.get("digest"))


@dataclass
class RunFacts:
    address: str
    record: dict
    kind: str
    created: str
    ran: bool
    status: str
    run_id: str | None
    run_uuid: str | None
    run_arn: str | None
    start: str | None
    end: str | None
    failure_reason: str | None
    output_uri: str | None
    workflow: dict[str, Any]
    parameters: dict[str, Any]
    leaves: list[tuple[str, Any]]  # every parameter value at any depth, by JSON path
    inputs: list[Input]
    containers: dict[str, str]  # image -> digest, from GetRun resourceDigests
    git: dict[str, Any]
    caller_arn: str | None
    replay_of: str | None  # the original's record address
    replay_of_uuid: str | None
    runlog_version: str
    observations: list[dict] = field(default_factory=list)
    outcome: str = "submitted"  # submitted, rejected or abandoned
    error: str | None = None  # the service's refusal, or why the attempt was abandoned
    # an attempt abandoned by the user (`recover --abandon`): it was pending, so whether the
    # service received it is unknown; False for one botocore refused to send ("not sent: ...")
    sent_unknown: bool = False
    settings: dict[str, Any] = field(default_factory=dict)  # RESULT_SETTINGS given or reported
    overrides: dict[str, Any] = field(default_factory=dict)  # a replay's deliberate changes
    drift: list[dict] = field(default_factory=list)  # a replay's accepted drift
    tasks: list[dict] = field(default_factory=list)  # ListRunTasks/GetRunTask, when observed
    finished: bool = True  # the status was final when exported
    # where `parameters` come from: "submitted" (the request), "file" (its parametersUri object,
    # as read at submission), "reported" (GetRun: a run duplicating another), or "unknown"
    # (such a run before any GetRun, or a parameters file that could not be read)
    parameters_source: str = "submitted"
    # GetRun no longer finds the run (DeleteRun): `status` is then the end last observed, or
    # DELETED_UNSEEN when no observation saw it end
    deleted: bool = False
    batch_id: str | None = None  # a batch member's HealthOmics batch id
    batch_record: str | None = None  # ... and its batch record's address
    run_setting_id: str | None = None  # ... and its runSettingId
    # where the run's settings come from: "submitted" (the record's request), "observed" (a
    # member of a batch started without runlog: GetRun's answer, runlog.membersettings) or
    # "unknown" (such a member GetRun did not tell about: its record's default setting alone)
    settings_source: str = "submitted"
    settings_note: str | None = None  # that in words, for every format (None: submitted)
    # the run settings ListRunsInBatch gave this member's run to, when more than one, and
    # whether which one's settings (and inputs) the run ran with is then not known: GetRun did
    # not report them (cohort.note_shared_runs)
    listed_for: list[str] = field(default_factory=list)
    settings_unknown: bool = False

    @property
    def action_id(self) -> str:
        """The run's identifier: by its uuid; by its id when no record of it gave a uuid (a
        ListRunsInBatch item may come without one: cohort.same_run_uuids); a refused submission
        (no run) by its record."""
        if self.run_uuid:
            return f"urn:uuid:{self.run_uuid}"
        return f"#run-{quote(self.run_id, safe='')}" if self.run_id else f"#attempt-{self.address[:16]}"

    @property
    def stated_inputs(self) -> list[Input]:
        """The inputs every format says the run read: none when which run setting's it read is
        not known (settings_unknown)."""
        return [] if self.settings_unknown else self.inputs

    @property
    def stated_leaves(self) -> list[tuple[str, Any]]:
        """The parameter values every format says the run ran with (stated_inputs' rule)."""
        return [] if self.settings_unknown else self.leaves

    @property
    def label(self) -> str:
        return self.record["request"].get("name") or (f"run {self.run_id}" if self.run_id else "attempt")

    @property
    def ending_unknown(self) -> bool:
        """HealthOmics deleted the run before any observation saw it end."""
        return self.deleted and self.status == DELETED_UNSEEN

    @property
    def status_words(self) -> str:
        """The run's status as every format words it, with its deletion if GetRun no longer finds it."""
        if self.ending_unknown:
            return "outcome unknown: HealthOmics deleted the run before runlog saw it end"
        return f"status {self.status}" + (", deleted from HealthOmics afterwards" if self.deleted else "")

    def images(self) -> list[tuple[str, str | None]]:
        """(image, digest or None) of each container the run used, as every export names them:
        GetRun's resourceDigests first, then each observed task's imageDetails."""
        found: list[tuple[str, str | None]] = list(self.containers.items())
        for task in self.tasks:
            details = task.get("imageDetails") or {}
            if details.get("image"):
                found.append((details["image"], details.get("imageDigest")))
        return found


def _leaves(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        out = []
        for key in sorted(value):
            out.extend(_leaves(value[key], f"{path}.{key}" if path else str(key)))
        return out
    if isinstance(value, list):
        out = []
        for index, item in enumerate(value):
            out.extend(_leaves(item, f"{path}[{index}]"))
        return out
    return [(path, value)]


def _workflow(record: dict, facts: dict, region: str | None, account: str | None,
              resolution: dict) -> dict[str, Any]:
    request = record["request"]
    resolved = dict(resolution.get("workflow") or {})
    resolved.pop("error", None)
    source = record.get("source_run") or {}
    workflow_id = request.get("workflowId") or resolved.get("id") or facts.get("workflowId") or source.get("workflowId")
    version = request.get("workflowVersionName") or resolved.get("version_name") or facts.get("workflowVersionName")
    owner = request.get("workflowOwnerId") or account
    arn = resolved.get("arn")
    if not arn and workflow_id:
        arn = f"arn:aws:omics:{region or 'unknown'}:{owner or 'unknown'}:workflow/{workflow_id}"
        if version:
            arn += f"/version/{version}"
    engine = resolved.get("engine")
    return {
        "id": workflow_id, "arn": arn, "name": resolved.get("name") or (f"workflow {workflow_id}" if workflow_id
                                                                          else "workflow"),
        "named": bool(resolved.get("name")),  # False: `name` is the stand-in above, not the workflow's name
        "type": request.get("workflowType") or resolved.get("type") or facts.get("workflowType") or "PRIVATE",
        "version": version, "engine": engine, "language": ENGINE_NAMES.get(engine or "", engine),
        "engine_version": facts.get("engineVersion"), "digest": resolved.get("digest") or facts.get("digest"),
        "uuid": resolved.get("uuid") or facts.get("workflowUuid"), "owner": request.get("workflowOwnerId"),
        "source_run": request.get("runId"),
    }


def run_facts(entry: Entry, observations: list[dict], batch: dict | None = None) -> RunFacts:
    """The terms of one record. A batch member's record holds its effective settings, not
    what was resolved for it: that (the workflow's identity, every input's identity, pinned
    once for the cohort) is in its batch's record, given as `batch`."""
    record = entry.record
    known = reported = None
    if record["kind"] == "member":  # its own settings may be known only from GetRun (an imported batch)
        from runlog.membersettings import as_observed, known_settings, reported_note, reported_parameters

        known = known_settings(record, observations)
        record = as_observed(record, known)
        reported = reported_parameters(record, observations)  # GetRun says it ran with others than recorded
    facts = _export_facts(observations)
    resolution = record.get("resolution") or (batch or {}).get("resolution") or {}
    response = record["outcome"].get("response") or {}
    arn = response.get("arn")
    parts = parse_run_arn(arn)
    region, account = (parts.region, parts.account) if parts else (None, None)
    region = region or (record.get("aws") or {}).get("region")
    outcome = record["outcome"]["status"]
    ran = outcome == "submitted"
    resolution_inputs = resolution.get("inputs") or {}
    seen = facts.get("resourceDigests") or {}
    # a --parameters-uri run's parameters are the file's content, pinned at submission; a run
    # that duplicates another (runId) has those HealthOmics copied, known from GetRun only
    parameters = effective_parameters(record["request"], resolution)
    if reported is not None:
        parameters, parameters_source = reported[1], "reported"
    elif parameters:
        parameters_source = "file" if "parameters" not in record["request"] else "submitted"
    elif facts.get("parameters"):
        parameters, parameters_source = facts["parameters"], "reported"
    else:
        parameters = {}
        parameters_source = ("unknown" if ran and (record["request"].get("runId") or record["request"].get(
            "parametersUri")) else "submitted")
    leaves = _leaves(parameters)
    inputs = []
    parameters_file = resolution.get("parameters_file") or {}
    if record["request"].get("parametersUri") and "error" not in parameters_file:
        inputs.append(Input(PARAMETERS_FILE, record["request"]["parametersUri"], {
            "kind": PARAMETERS_FILE, **{k: parameters_file[k] for k in ("etag", "version_id", "size", "sha256")
                                        if parameters_file.get(k) is not None}}, None))
    for path, value in leaves:
        if isinstance(value, str) and value.startswith(("s3://", "omics://")):
            pinned = resolution_inputs.get(value) or {}
            identity = {k: v for k, v in pinned.items() if k != "error"}
            failed = pinned.get("error")
            unresolved = str(failed.get("code") or "an error") if isinstance(failed, dict) else None
            digest = seen.get(value)
            read = digest.split(":", 1)[1] if digest and ":" in digest else None
            if read and identity.get("kind") == "s3-object" and identity.get("etag") not in (None, read):
                # overwritten between submission and execution (`watch` names it): the run read
                # other bytes than those pinned, and only their ETag is known
                identity = {"kind": "s3-object", "etag": read, "pinned_etag": identity["etag"]}
            inputs.append(Input(path, value, identity, read, unresolved))
    containers = {k: v for k, v in sorted(seen.items()) if not k.startswith(("s3://", "omics://"))}
    status = entry.status or response.get("status") or "UNKNOWN"
    deleted = status == "DELETED"
    if deleted:  # GetRun no longer finds it: how it ended is the last end observed, else unknown
        status = facts["status"] if facts.get("status") in ENDED_STATUSES else DELETED_UNSEEN
    if outcome == "rejected":
        error = record["outcome"]["error"]
        error_text = f"{error.get('code')}: {error.get('message')}"
    elif outcome == "abandoned" and _sent_unknown(record):
        error_text = ("abandoned by the user, its outcome unknown (runlog never learned whether HealthOmics "
                      f"received it): {record['outcome'].get('reason')}")
    elif outcome == "abandoned":  # botocore refused to send it: runlog knows it was never sent
        error_text = f"abandoned before HealthOmics received it: {record['outcome'].get('reason')}"
    else:
        error_text = None
    source = record.get("source_run") or {}
    settings = {}
    for member in RESULT_SETTINGS:
        for origin in (record["request"], source, facts):
            if origin.get(member) not in (None, "", {}):
                settings[member] = origin[member]
                break
    lineage = record.get("lineage") or {}
    return RunFacts(
        address=entry.address, record=record, kind=record["kind"], created=record["created"], ran=ran,
        status=status if ran else (STATUS_OF_REJECTED if outcome == "rejected" else STATUS_OF_ABANDONED), run_id=response.get("id"), run_uuid=response.get("uuid"),
        run_arn=arn, start=facts.get("startTime") or facts.get("creationTime"), end=facts.get("stopTime"),
        failure_reason=facts.get("failureReason"),
        # a member's own output prefix comes only from GetRun (ListRuns does not give it): the
        # batch's outputUri is every member's parent, not this run's output
        output_uri=response.get("runOutputUri") or facts.get("runOutputUri")
        or (known.run_output_uri if known is not None else None)
        or (record["request"].get("outputUri") if record["kind"] != "member" else None),
        workflow=_workflow(record, facts, region, account, resolution), parameters=parameters, leaves=leaves, inputs=inputs,
        containers=containers, git=record.get("git") or {}, caller_arn=(record.get("caller") or {}).get("arn"),
        replay_of=(lineage.get("replay_of") or {}).get("record"),
        replay_of_uuid=(lineage.get("replay_of") or {}).get("run_uuid"),
        runlog_version=record.get("runlog_version", ""), observations=observations,
        outcome=outcome, error=error_text, sent_unknown=outcome == "abandoned" and _sent_unknown(record),
        settings=settings, overrides=lineage.get("overrides") or {},
        drift=lineage.get("drift") or [], tasks=latest_tasks_from(observations),
        finished=not ran or status in FINAL_STATUSES, deleted=deleted, parameters_source=parameters_source,
        batch_id=(record.get("batch") or {}).get("batch_id") if record["kind"] == "member" else None,
        batch_record=(record.get("batch") or {}).get("record") if record["kind"] == "member" else None,
        run_setting_id=(record.get("batch") or {}).get("run_setting_id") if record["kind"] == "member" else None,
        settings_source="reported" if reported is not None
        else "submitted" if known is None or known.state == "recorded" else known.state,
        settings_note=reported_note(reported[0]) if reported is not None
        else None if known is None or known.state == "recorded" else known.note,
    )


ENDED_STATUSES = {"COMPLETED", "FAILED", "CANCELLED"}
# a run deleted from HealthOmics before any observation saw it end: its outcome is unknown
DELETED_UNSEEN = "DELETED"
FINAL_STATUSES = ENDED_STATUSES | {DELETED_UNSEEN}
TASKS_SOURCE = "ListRunTasks"


def latest_tasks_from(observations: list[dict]) -> list[dict]:
    """The run's tasks from the newest ListRunTasks observation ([] when none)."""
    for observation in reversed(observations):
        if observation["source"] == TASKS_SOURCE:
            return list(observation["body"].get("tasks") or [])
    return []


# What a version id, ETag or checksum keeps as it is where it qualifies an identifier (a
# base64 checksum's `/`, `+`, `=` are allowed in a query or fragment); the rest is percent-encoded.
QUALIFIER_SAFE = "/+="


# What an S3 URI's bucket and key keep as they are in an identifier (RFC 3986's unreserved
# characters, sub-delimiters, ":", "@" and "/"); every other character is percent-encoded.
_URI_SAFE = "/:@!$&'()*+,;=-._~"
_URI_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789" + _URI_SAFE)


def uri_id(uri: str) -> str:
    """A URI as an identifier: what follows its scheme percent-encoded where a URI needs it (an
    S3 key may hold `%`, `?`, `#`, spaces, `|` or any character; in a URI `%`, `?` and `#`
    would begin an escape, a query or a fragment), so that the identifier is a URI and no
    object's key reads as another object's URI qualified by a version (`?versionId=`) or an
    ETag (`#etag=`). A URI with none of those characters is itself."""
    scheme, sep, rest = uri.partition("://")
    if not sep or _URI_PLAIN.issuperset(rest):
        return uri
    return f"{scheme}://" + quote(rest, safe=_URI_SAFE)


def each_run_once(runs: list[RunFacts]) -> list[RunFacts]:
    """`runs` with each run once, the first record of it (a run ListRunsInBatch gave to more
    than one run setting has a member record each: export.cohort.note_shared_runs), by its
    action_id: one per run once cohort.same_run_uuids has given each record its run's uuid."""
    first: dict[str, RunFacts] = {}
    for run in runs:
        first.setdefault(run.action_id, run)
    return list(first.values())


def input_ids(runs: list[RunFacts]) -> dict[tuple[str, str], str]:
    """(run address, parameter path) -> the identifier of the input as that run read it.

    One URI can name different bytes in different runs (the object was overwritten between
    them). When every run of the export saw the same identity, the URI identifies it
    (uri_id); when they differ, each distinct identity gets its own identifier: that
    qualified by its S3 version id (`?versionId=`), else by its ETag or checksum (`#etag=`),
    and the exports link it to the plain URI."""
    identities: dict[str, set] = {}
    for run in runs:
        for inp in run.inputs:
            identities.setdefault(inp.uri, set()).add(inp.identity_key)
    out = {}
    for run in runs:
        for inp in run.inputs:
            base = uri_id(inp.uri)
            if len(identities[inp.uri]) == 1:
                out[(run.address, inp.path)] = base
            elif inp.identity.get("version_id") and inp.identity["version_id"] != "null":
                out[(run.address, inp.path)] = f"{base}?versionId={quote(inp.identity['version_id'], safe=QUALIFIER_SAFE)}"
            else:
                tag = inp.etag or next((v for _, v in inp.checksums), None)
                out[(run.address, inp.path)] = (f"{base}#etag={quote(tag, safe=QUALIFIER_SAFE)}" if tag
                                                else f"{base}#record={run.address[:16]}")
    return out


def latest_run_facts_from(observations: list[dict]) -> dict:
    for observation in reversed(observations):
        if observation["source"] == "GetRun" and "uuid" in observation["body"]:
            return observation["body"]
    return {}


def _export_facts(observations: list[dict]) -> dict:
    """The newest GetRun; for a batch member whose status came by the page (ListRuns, no
    GetRun), the newest ListRuns item: its status and times, nothing it does not say."""
    found = latest_run_facts_from(observations)
    if found:
        return found
    for observation in reversed(observations):
        if observation["source"] == "ListRuns":
            return observation["body"]
    return {}


def collect(ledger: Ledger, refs: list[str], *, runs_only: bool = False) -> list[RunFacts]:
    """RunFacts for each REF (duplicates once, in the order given); a member's facts use its
    batch's record (runlog.export.cohort reads the batches themselves)."""
    from runlog.errors import UsageError

    seen, out = set(), []
    batches: dict[str, dict | None] = {}
    for ref in refs:
        entry = ledger.resolve(ref)
        if entry.address in seen:
            continue
        seen.add(entry.address)
        if runs_only and entry.outcome != "submitted":
            raise UsageError(f"{ref!r} is a failed attempt that never ran (record {entry.address[:12]}); "
                             "leave out `runs_only=True` to export it with status NOT_RUN", option="runs_only")
        batch = None
        if entry.kind == "member":
            address = entry.record["batch"]["record"]
            if address not in batches:
                found = ledger.get(address)
                batches[address] = found.record if found is not None else None
            batch = batches[address]
        out.append(run_facts(entry, ledger.observations(entry.address), batch))
    return out


def value_text(value: Any) -> str:
    """A parameter value as text (JSON for anything that is not a string)."""
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, ensure_ascii=False)


def published(runs: list[RunFacts]) -> str:
    """The export's date: the newest record's (never the wall clock, so exports are reproducible)."""
    return max(r.created for r in runs)[:10]


__all__ = ["Input", "RunFacts", "collect", "input_ids", "latest_run_facts", "parse_person", "published", "run_facts",
           "value_text"]


def parse_person(text: str) -> dict:
    """'Name <https://orcid.org/0000-...>' (or 'Name <mailto:...>', or just 'Name') as
    {"name": ..., "id": URL or None}; a bad form is a one-line usage error."""
    import re

    from runlog.errors import UsageError

    match = re.fullmatch(r"\s*([^<>]+?)\s*(?:<\s*([^<>\s]+)\s*>)?\s*", text or "")
    if not match:
        raise UsageError(f"author {text!r} is not 'Name' or 'Name <https://orcid.org/0000-0000-0000-0000>'")
    name, ident = match.group(1), match.group(2)
    if ident and not (ident.startswith("mailto:") and ident.isprintable() and ident.isascii()) \
            and not web_url(ident):
        raise UsageError(f"author {text!r}: {ident!r} is not a URL (give an ORCID such as "
                         "https://orcid.org/0000-0002-1825-0097)")
    return {"name": name, "id": ident}


def web_url(text: str) -> bool:
    """Whether `text` is an absolute http(s) URL that every export can carry as an identifier:
    printable ASCII with no spaces, a host, and parts that Python's URL parser accepts."""
    from urllib.parse import urlsplit

    if not (text.isascii() and text.isprintable()) or any(c in text for c in ' "<>\\^`{|}'):
        return False
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:  # e.g. "Invalid IPv6 URL" for an unmatched [
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


SPDX_ID = r"[A-Za-z0-9][A-Za-z0-9.+-]*"  # an SPDX licence id (or LicenseRef-...), as in spdx.org/licenses


def licence_is_url(text: str) -> bool:
    """Whether a licence as given (checked by `check_licence`) is a URL rather than an SPDX id:
    the one place that tells them apart, for the crate, CITATION.cff and the check itself."""
    return "://" in text


def check_licence(text: str | None) -> str | None:
    """The licence as given when it is an SPDX id or an http(s) URL; a one-line usage error otherwise."""
    import re

    from runlog.errors import UsageError

    if not text:
        return None
    if licence_is_url(text) and web_url(text):
        return text
    if not licence_is_url(text) and re.fullmatch(SPDX_ID, text):
        return text
    raise UsageError(f"`license` {text!r} is neither an SPDX licence id (such as CC-BY-4.0) nor an http(s) URL "
                     "(such as https://creativecommons.org/licenses/by/4.0/)", option="license")


def _sent_unknown(record: dict) -> bool:
    """Whether an abandoned attempt may have reached the service: any but one botocore refused
    to send (its reason begins with NOT_SENT; submit.settle_failure)."""
    return not str((record.get("outcome") or {}).get("reason") or "").startswith(NOT_SENT)
