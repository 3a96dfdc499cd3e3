"""A batch (StartRunBatch) as every export describes it: the cohort's definition, its shared
default setting, what the service said of it, and true counts of its members.

Counts are the ledger's, never inferred: a run setting whose submission failed has no run (no
run id, no inputs read, no outputs), a run setting without a member record yet is counted as
not recorded, and the exports say both."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any
from urllib.parse import quote

from runlog.batchread import (  # the read side of batches (no boto3)
    FINISHED,
    last_answer,
    last_started_count,
    never_submitted,
    same_runs,
    settings_changes,
)
from runlog.export.terms import QUALIFIER_SAFE, RunFacts, each_run_once, uri_id, value_text
from runlog.ledger import Entry, Ledger


@dataclass
class BatchFacts:
    address: str
    record: dict
    batch_id: str
    arn: str | None
    uuid: str | None
    name: str | None
    status: str  # the latest GetBatch's, else StartRunBatch's answer
    created: str
    start: str | None  # GetBatch creationTime
    submitted: str | None  # ... submittedTime
    end: str | None  # ... processedTime / failedTime
    failure_reason: str | None
    default: dict[str, Any]  # defaultRunSetting as sent
    settings_source: str  # "s3UriSettings" or "inlineSettings"
    settings_file: dict[str, Any] | None  # the pinned s3UriSettings object (uri, etag, version_id, size, sha256)
    run_settings: list[dict] = field(default_factory=list)  # the cohort definition as recorded
    declared: int = 0  # run settings in the request
    members: list[RunFacts] = field(default_factory=list)  # its members in this export, in ledger order
    replay_of: dict[str, Any] = field(default_factory=dict)  # lineage.replay_of of a batch started by replay
    overrides: dict[str, Any] = field(default_factory=dict)  # ... and what the replay changed
    # the settings file as refresh found it since, when no longer the one pinned (batch.check_settings_file)
    settings_changed: list[dict] = field(default_factory=list)
    # the runs GetBatch last counted submitted (started, or failed to start): None if it gave no counts
    service_started: int | None = None

    @property
    def replay_text(self) -> str:
        """What a replayed batch repeated and changed, in words ("" for a first batch)."""
        if not self.replay_of:
            return ""
        changes = [f"only run settings {', '.join(map(str, self.overrides['runs']))}"] if self.overrides.get("runs") \
            else []
        changes += [f"{k} set to {value_text(v)}" for group in ("members", "parameters")
                    for k, v in sorted((self.overrides.get(group) or {}).items())]
        return (f"repeats batch {self.replay_of.get('run_id') or str(self.replay_of.get('record'))[:12]}"
                + (f" with {'; '.join(changes)}" if changes else " unchanged"))

    @property
    def action_id(self) -> str:
        return f"urn:uuid:{self.uuid}" if self.uuid else f"#batch-{self.address[:16]}"

    @property
    def settings_file_id(self) -> str:
        """The settings file's identifier: its URI, qualified by its S3 version when it has one."""
        pinned = self.settings_file or {}
        version = pinned.get("version_id")
        base = uri_id(pinned["uri"])
        return f"{base}?versionId={quote(version, safe=QUALIFIER_SAFE)}" if version and version != "null" else base

    @property
    def label(self) -> str:
        return f"batch {self.name} ({self.batch_id})" if self.name else f"batch {self.batch_id}"

    @cached_property
    def started(self) -> list[RunFacts]:
        """Members that HealthOmics started as runs."""
        return [m for m in self.members if m.ran]

    @cached_property
    def runs(self) -> list[RunFacts]:
        """The runs started: `started` with each run once (ListRunsInBatch may give one run to
        more than one run setting, a member record each: note_shared_runs), its first member."""
        return each_run_once(self.started)

    @cached_property
    def shared_runs(self) -> dict[str, list[str]]:
        """{run id: its run setting ids} of each run more than one member names."""
        settings: dict[str, list[str]] = {}
        for member in self.started:
            settings.setdefault(member.action_id, []).append(str(member.run_setting_id))
        return {member.run_id or member.action_id: settings[member.action_id] for member in self.runs
                if len(settings[member.action_id]) > 1}

    @cached_property
    def not_started(self) -> list[RunFacts]:
        """Members whose submission failed: no run exists for them."""
        return [m for m in self.members if not m.ran]

    @property
    def never_submitted(self) -> int:
        """Run settings the batch never submitted: it ended (CANCELLED, FAILED, …) with every
        submission GetBatch last counted recorded, and the rest never became runs. 0 while the
        batch goes on, or when the ledger holds fewer members than GetBatch counted."""
        return never_submitted(self.status, self.declared, self.service_started, len(self.members))

    @property
    def unrecorded(self) -> int:
        """Run settings of the request without a member record in the ledger that may still get
        one (not listed yet): never those never_submitted."""
        return max(0, self.declared - len(self.members) - self.never_submitted)

    @property
    def finished(self) -> bool:
        return self.status in FINISHED and self.unrecorded == 0 and all(m.finished for m in self.members)

    def status_counts(self) -> dict[str, int]:
        """Runs by status, each run once."""
        counts: dict[str, int] = {}
        for member in self.runs:
            counts[member.status] = counts.get(member.status, 0) + 1
        return dict(sorted(counts.items()))

    def submission_failures(self) -> dict[str, int]:
        """Why submissions failed: reason -> how many."""
        counts: dict[str, int] = {}
        for member in self.not_started:
            reason = (member.error or "no reason given").split(":", 1)[0]
            counts[reason] = counts.get(reason, 0) + 1
        return dict(sorted(counts.items()))

    def run_failures(self) -> dict[str, int]:
        """Why runs failed: reason -> how many runs."""
        counts: dict[str, int] = {}
        for member in self.runs:
            if member.status == "FAILED":
                reason = member.failure_reason or "no reason given"
                counts[reason] = counts.get(reason, 0) + 1
        return dict(sorted(counts.items()))

    def counts_text(self) -> str:
        """The members in one sentence, every number from the ledger."""
        parts = [f"{self.declared} run setting(s)"]
        if self.unrecorded:
            parts.append(f"{self.unrecorded} not yet recorded by runlog (`runlog refresh {self.batch_id}`)")
        if self.never_submitted:
            parts.append(self.never_submitted_text)
        parts.append(f"{len(self.runs)} started as runs"
                     + (f" ({', '.join(f'{n} {s}' for s, n in self.status_counts().items())})" if self.runs
                        else ""))
        if self.shared_runs:
            parts.append(self.shared_text)
        failed = self.submission_failures()
        parts.append(f"{len(self.not_started)} failed to start and never ran"
                     + (f" ({', '.join(f'{r}: {n}' for r, n in failed.items())})" if failed else ""))
        return ", ".join(parts)

    @property
    def shared_text(self) -> str:
        """What is said of runs ListRunsInBatch gave to more than one run setting."""
        listed = "; ".join(f"run {run}: {', '.join(ids)}" for run, ids in list(self.shared_runs.items())[:5])
        more = len(self.shared_runs) - 5
        unknown = any(member.settings_unknown for member in self.started)
        return (f"{len(self.shared_runs)} run(s) listed by ListRunsInBatch for more than one run setting, each "
                f"counted once ({listed}{f'; and {more} more' if more > 0 else ''})"
                + ("; which of those settings such a run ran with is not known, unless GetRun reported it"
                   if unknown else "; what each ran with is what GetRun reported for it"))

    @property
    def never_submitted_text(self) -> str:
        return f"{self.never_submitted} never submitted (the batch ended {self.status} before submitting them)"

    @cached_property
    def replaced_everywhere(self) -> frozenset[str]:
        """The default setting's members (`outputUri`, ..., or `parameters.NAME` by top-level
        name: parameters merge name by name) that every recorded run setting gives itself, so
        that the default's value reached none of the runs (none when the run settings are not known)."""
        common: set[str] | None = None
        for setting in self.run_settings:
            own = {f"parameters.{name}" for name in (setting.get("parameters") or {})}
            own.update(name for name in setting if name not in ("runSettingId", "parameters", "runTags"))
            common = own if common is None else common & own
            if not common:
                break
        return frozenset(common or ())

    def reaches_runs(self, name: str) -> bool:
        """Whether the default setting's item `name` (as default_items names it) is the value
        of some run: not one every run setting replaces."""
        if name.startswith("parameters."):
            name = "parameters." + re.split(r"[.\[]", name[len("parameters."):], maxsplit=1)[0]
        return name not in self.replaced_everywhere

    def default_items(self) -> list[tuple[str, str]]:
        """The shared default setting as (name, text) pairs: parameters by JSON path, other
        members by name (roleArn and tags are not settings of the analysis and are left out)."""
        from runlog.export.terms import _leaves

        items = [(f"parameters.{path}", value) for path, value in _leaves(self.default.get("parameters") or {})]
        items += [(k, v) for k, v in sorted(self.default.items()) if k not in ("parameters", "roleArn", "runTags")]
        return [(name, value_text(value)) for name, value in items]


def batch_facts(entry: Entry, observations: list[dict], members: list[RunFacts]) -> BatchFacts:
    record = entry.record
    response = record["outcome"].get("response") or {}
    answered = last_answer(observations)  # its status and counts (not a ResourceNotFound recorded since)
    latest = answered["body"] if answered is not None and isinstance(answered["body"], dict) else {}
    request = record["request"]
    settings = request.get("batchRunSettings") or {}
    pinned = dict((record.get("batch") or {}).get("settings_file") or {})
    content = pinned.pop("content", None)
    if "s3UriSettings" in settings:
        source, run_settings = "s3UriSettings", content if isinstance(content, list) else []
        settings_file: dict | None = {**pinned, "uri": pinned.get("uri") or settings["s3UriSettings"]}
    else:
        source, run_settings, settings_file = "inlineSettings", list(settings.get("inlineSettings") or []), None
    declared = (record.get("batch") or {}).get("runs")
    return BatchFacts(
        address=entry.address, record=record, batch_id=response.get("id") or entry.batch_id or "",
        arn=response.get("arn"), uuid=response.get("uuid") or latest.get("uuid"),
        name=request.get("batchName") or latest.get("name"),
        status=latest.get("status") or response.get("status") or "UNKNOWN", created=record["created"],
        start=latest.get("creationTime"), submitted=latest.get("submittedTime"),
        end=latest.get("processedTime") or latest.get("failedTime") or latest.get("cancelledTime"),
        failure_reason=latest.get("failureReason"), default=dict(request.get("defaultRunSetting") or {}),
        settings_source=source, settings_file=settings_file, run_settings=run_settings,
        declared=int(declared) if isinstance(declared, int) else len(run_settings), members=members,
        replay_of=dict((record.get("lineage") or {}).get("replay_of") or {}),
        overrides=dict((record.get("lineage") or {}).get("overrides") or {}),
        settings_changed=settings_changes(observations), service_started=last_started_count(observations))


def same_run_uuids(runs: list[RunFacts]) -> None:
    """Give each record the uuid of its run where another record of that run (by the report's
    and the exports' one rule, batchread.same_runs) gives it and it has none: a ListRunsInBatch
    item may come without the uuid its run's other member record has. Then every record of one
    run has its action_id, and each run is counted and described once in every format."""
    first = same_runs([(run.run_id, run.run_uuid) for run in runs])
    uuid_of: dict[int, str] = {}
    for run, at in zip(runs, first, strict=True):
        if run.run_uuid:
            uuid_of.setdefault(at, run.run_uuid)
    for run, at in zip(runs, first, strict=True):
        if not run.run_uuid and at in uuid_of:
            run.run_uuid = uuid_of[at]


def note_shared_runs(runs: list[RunFacts]) -> None:
    """Mark the members that name one run with another member of their batch (ListRunsInBatch
    gave the run to more than one run setting: a service fault, or a hostile answer, that
    refresh warns about): each one's settings note says so, in every format. Which setting the
    run ran with is known only from GetRun: when a member holds what GetRun reported of the
    run, every member states that; else none states inputs or parameters for the run."""
    groups: dict[tuple[str | None, str], list[RunFacts]] = {}
    for run in runs:
        if run.batch_record is not None and run.ran:
            groups.setdefault((run.batch_record, run.action_id), []).append(run)
    for group in groups.values():
        if len(group) > 1:
            listed = [str(member.run_setting_id) for member in group]
            # parameters GetRun reported for the run (runlog.membersettings) are its own, whichever setting it was
            reported = next((member for member in group if member.settings_source == "reported"), None)
            note = (f"ListRunsInBatch gave this run to run settings {', '.join(listed)}"
                    + (": which of their settings it ran with is not known" if reported is None else
                       "; what it ran with is what GetRun reported for it"))
            for member in group:
                member.settings_note = f"{member.settings_note}; {note}" if member.settings_note else note
                member.listed_for, member.settings_unknown = listed, reported is None
                if reported is not None:
                    member.parameters, member.leaves, member.inputs = reported.parameters, reported.leaves, reported.inputs


def collect_batches(ledger: Ledger, refs: list[str], runs: list[RunFacts]) -> list[BatchFacts]:
    """BatchFacts for each REF that names a batch (once each, in the order given), with its
    members among `runs` (the export's runs)."""
    out, seen = [], set()
    for ref in refs:
        entry = ledger.resolve(ref)
        if entry.kind != "batch" or entry.address in seen:
            continue
        seen.add(entry.address)
        members = [r for r in runs if r.batch_record == entry.address]
        out.append(batch_facts(entry, ledger.observations(entry.address), members))
    return out


def member_ids(batches: list[BatchFacts]) -> set[str]:
    """Record addresses of the members the batches describe."""
    return {m.address for b in batches for m in b.members}


def collect_export(ledger: Ledger, refs: list[str], *, runs_only: bool = False) -> tuple[list[RunFacts],
                                                                                      list[BatchFacts]]:
    """What an export of REFs describes, for the CLI and the library alike: the runs (a
    batch's REF stands for its member runs) and the batches named."""
    from runlog.batch import expand_refs
    from runlog.export.terms import collect

    runs = collect(ledger, expand_refs(ledger, refs), runs_only=runs_only)
    same_run_uuids(runs)
    note_shared_runs(runs)
    return runs, collect_batches(ledger, refs, runs)
