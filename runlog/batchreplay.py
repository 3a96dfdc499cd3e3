"""Replaying a batch: `runlog replay B` and `Runlog.replay(B)` start a recorded batch (or
`only` some of its runs) again as a new batch, its drift checked first.

`prepare` reads the batch record once, builds the new StartRunBatch request and its lineage
(batch.replay_request) and checks what is no longer as recorded: the analysis repository's
code, the default workflow's digest, the settings file's bytes (batch.batch_drift), and the
identities of the inputs the replayed runs name (`input_drift`: the same listings
submit-batch resolves them with, compared by the rule single runs use, replay.input_drift).
`send` refuses drift unless allowed, writes a selection's new settings file, and submits the
new batch through batch.submit_batch with its lineage (docs/batch.md#replay)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from runlog.errors import DriftError, UsageError
from runlog.ledger import Entry, Ledger


@dataclass
class BatchPlan:
    """A batch replay ready to send: the new request, its lineage (replay_of, overrides,
    drift), notes on what was not checked, and where it goes."""

    batch: Entry  # the batch replayed
    request: dict[str, Any]
    lineage: dict[str, Any]
    settings: Any  # aws.AwsSettings
    session: Any
    s3: Any
    notes: list[str] = field(default_factory=list)
    # why submit-batch's template check would refuse the replay's runs (None: they fit, or unchecked)
    template_problem: str | None = None
    # a dry run's answer (settings_uri_refusal): why the new settings file's URI would be refused
    settings_uri_problem: str | None = None
    # the original settings file as prepare read it (its drift is checked against this): the
    # send refuses to go out with other bytes (batch.resolve_batch's `expected`)
    settings_seen: dict[str, Any] | None = None

    @property
    def drift(self) -> list[dict[str, Any]]:
        return self.lineage["drift"]

    @property
    def settings_uri(self) -> str | None:
        """The new settings file runlog writes for a selection before sending (None: none)."""
        return self.lineage["overrides"].get("settings_uri")

    @property
    def selected(self) -> list[str]:
        """The runSettingIds `only` selected ([] for the whole batch)."""
        return self.lineage["overrides"].get("runs", [])


def names_batch(ledger: Ledger | None, ref: str) -> bool:
    """Whether `ref` names a batch record in `ledger` (no ledger, or a REF it cannot resolve: no)."""
    if ledger is None:
        return False
    try:
        return ledger.resolve(ref).kind == "batch"
    except UsageError:
        return False


def prepare(ledger: Ledger, ref: str, *, only: Sequence[str] = (), sets: Sequence[str] = (),
            settings_uri: str | None = None, settings_for: Callable[[dict], Any], session_for: Callable[[Any], Any],
            git_path: Any, resolve: bool = True, timeout: float = 5.0) -> BatchPlan:
    """The replay of the batch `ref` names, its drift checked. `settings_for(recorded)` gives
    the AWS settings for the record's `aws` section, `session_for(settings)` the session.
    With resolve=False (--no-resolve) neither the workflow nor the inputs are checked.
    Raises UsageError for what cannot be replayed (nothing sent or written)."""
    from runlog import aws, gitcapture
    from runlog.batch import batch_drift, check_templates, read_settings_file, replay_request
    from runlog.errors import TemplateMismatch
    from runlog.resolve import workflow_identity

    entry = ledger.resolve(ref)
    request, lineage = replay_request(ledger, entry, only=only, sets=sets, settings_uri=settings_uri)
    record = entry.record
    settings = settings_for(record["aws"])
    sess = session_for(settings)
    omics = aws.client(settings, "omics", sess=sess)
    s3 = aws.client(settings, "s3", sess=sess)
    plan = BatchPlan(entry, request, lineage, settings, sess, s3)
    if "failed" in only:
        plan.notes.extend(_never_submitted_note(ledger, entry))
    runs = replayed_settings(plan) if sets or resolve else []
    plan.notes.extend(overridden_sets(sets, runs))
    workflow_now = workflow_identity(omics, request["defaultRunSetting"]) if resolve else {}
    original = None if plan.settings_uri else request["batchRunSettings"].get("s3UriSettings")
    settings_now = read_settings_file(s3, original) if original else None
    plan.settings_seen = settings_now
    lineage["drift"] = batch_drift(record, gitcapture.capture(git_path), workflow_now, settings_now)
    if resolve:  # off (--no-resolve): neither the workflow nor the inputs, as the user asked
        found, notes = input_drift(record, request, runs, {"s3": s3, "omics": omics}, timeout=timeout)
        lineage["drift"].extend(found)
        plan.notes.extend(notes)
        if "error" not in workflow_now and runs:  # what the send's check (batch.check_templates) would say
            try:
                check_templates(workflow_now, request["defaultRunSetting"], runs)
            except TemplateMismatch as exc:
                plan.template_problem = exc.message
    return plan


def _never_submitted_note(ledger: Ledger, entry: Entry) -> list[str]:
    """`only=["failed"]` selects the runs that failed to start or failed: a batch that ended
    before submitting some of its run settings (CANCELLED midway, say) has neither for them,
    and the note says they are left out and how to name them."""
    from runlog.batchread import last_batch_status, last_started_count, never_submitted

    observed = ledger.observations(entry.address)
    record = entry.record
    count = never_submitted(last_batch_status(observed, record["outcome"].get("response") or {}),
                            int((record.get("batch") or {}).get("runs") or 0),
                            last_started_count(observed),
                            sum(count for _, _, count in ledger.member_counts(entry.address)))
    if not count:
        return []
    return [f"runs: {count} run setting(s) were never submitted (the batch ended before it submitted them): "
            "`only=failed` leaves them out; name them with `only` (their runSettingIds) to start them"]


def settings_uri_refusal(plan: BatchPlan) -> str | None:
    """What `send` would refuse the new settings file's URI with, asked now (one HeadObject;
    a dry run's answer, kept as `plan.settings_uri_problem`): an object already there, or S3's
    refusal of the HeadObject. None: it is free (send asks again, and PutObject refuses a write
    over an object that appeared)."""
    from runlog.batch import settings_uri_taken
    from runlog.errors import RunlogError

    if plan.settings_uri is None:
        return None
    try:
        taken = settings_uri_taken(plan.s3, plan.settings_uri)
    except RunlogError as exc:
        plan.settings_uri_problem = exc.message
    else:
        plan.settings_uri_problem = taken.message if taken else None
    return plan.settings_uri_problem


def overridden_sets(sets: Sequence[str], runs: list[dict]) -> list[str]:
    """Notes on the `set`s (changes of the default setting's parameters) that some of the
    replayed runs override with a parameter of their own, which wins over the default's.
    Raises UsageError for one that every replayed run overrides: it would change nothing."""
    from runlog.replay import parse_set

    notes = []
    for text in sets:
        path, parts, _ = parse_set(text)
        name = parts[0]
        own = [s["runSettingId"] for s in runs if isinstance(s.get("parameters"), dict) and name in s["parameters"]]
        if not own:
            continue
        told = (f"`set` {path}: {len(own)} of {len(runs)} replayed run(s) set their own {name} (the first: "
                f"{own[0][:128]!r}), which wins over the default setting's")
        if len(own) < len(runs):
            notes.append(f"{told}: those keep their own")
            continue
        raise UsageError(f"{told}, so the change would reach none of them; `replay('RUN_ID')` with the same `set` "
                         "replays one run alone with it, or submit-batch run settings that change it", option="set")
    return notes


def replayed_settings(plan: BatchPlan) -> list[dict]:
    """The recorded run settings the replay starts: those `only` selected, else all."""
    from runlog.batch import run_settings, selected_settings

    return selected_settings(plan.batch.record, plan.lineage) if plan.selected else run_settings(plan.batch.record)


def input_drift(record: dict, request: dict, settings: list[dict], clients: dict, *,
                timeout: float) -> tuple[list[dict], list[str]]:
    """(drift, notes): the recorded identities of the inputs the replay names (its default
    setting and the run settings it starts), resolved again now as submit-batch resolves
    them (S3 by listing the prefixes they share, read sets and references one call each,
    within `timeout` seconds) and compared by replay.input_drift's rule."""
    from runlog.batch import input_identities, settings_input_uris
    from runlog.replay import input_drift as compare
    from runlog.replay import not_pinned

    recorded = (record.get("resolution") or {}).get("inputs") or {}
    named = settings_input_uris(request["defaultRunSetting"], settings)
    if not recorded:
        return [], (["inputs: not checked, the batch record pinned no input identities (submitted with "
                     "resolution off)"] if named else [])
    wanted = {uri: recorded[uri] for uri in named if uri in recorded}
    drift, notes = compare(wanted, input_identities(list(wanted), clients, deadline=time.monotonic() + timeout))
    return drift, notes + not_pinned(named, recorded)


def refusal(plan: BatchPlan) -> DriftError | None:
    """The DriftError a batch replay with drift is refused with (None without drift)."""
    from runlog.replay import drift_refusal

    return drift_refusal(plan.drift, "batch")


def send(plan: BatchPlan, open_ledger: Callable[[], Ledger], *, git_path: Any, allow_drift: bool = False,
         allow_duplicate: bool = False, lookup_caller: bool = True, resolve_options: Any = None,
         warn: Callable[[str], None] = lambda message: None, wrote: Callable[[str], None] = lambda message: None):
    """Send a prepared batch replay and record it (a batch record with `lineage`). Raises
    DriftError when something drifted and not allow_drift; otherwise as batch.submit_batch.
    A selection's settings file is written first (never over an existing object); `wrote`
    is told where."""
    from runlog.batch import selected_settings, submit_batch, write_settings_file

    refused = None if allow_drift else refusal(plan)
    if refused is not None:
        raise refused
    written = None
    if plan.settings_uri:
        selection = selected_settings(plan.batch.record, plan.lineage)
        written = dict(write_settings_file(plan.s3, plan.settings_uri, selection), content=selection)
        wrote(f"wrote the {len(plan.selected)} selected run settings to {plan.settings_uri}")
    return submit_batch(open_ledger, plan.request, settings=plan.settings, git_path=git_path,
                        lookup_caller=lookup_caller, resolve_options=resolve_options,
                        allow_duplicate=allow_duplicate, warn=warn, extra={"lineage": plan.lineage},
                        session=plan.session,  # the session the plan was checked with (a library caller's)
                        written=written,  # pinned as written if it cannot be read back
                        expected=plan.settings_seen)  # the bytes prepare checked, or nothing is sent
