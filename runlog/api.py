"""runlog as a Python library: the commands' use cases as methods that return data.

    import runlog

    with runlog.Runlog() as rl:                      # the ledger `runlog` itself would use
        response = rl.start_run(workflowId="1234567", roleArn=ROLE, outputUri="s3://b/out/",
                                parameters={"sample": "NA12878"})
        entry = rl.show(response["id"])

    omics = runlog.wrap(boto3.client("omics"))       # a boto3 client whose start_run records itself

Errors are the exceptions of runlog.errors (re-exported by `runlog`), with fields; nothing
here prints, exits or imports click. Warnings go to the "runlog" logger. See docs/python-api.md."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from runlog import config as configuration
from runlog.errors import LedgerError, RunlogError, UsageError

log_warnings = logging.getLogger("runlog")

# Hosts of AWS's own endpoints: a wrapped client talking to one of these is recorded as
# talking to AWS (endpoint_url null), any other endpoint is recorded as it is.
_AWS_HOSTS = (".amazonaws.com", ".amazonaws.com.cn", ".api.aws")


@dataclass
class Replay:
    """A replay: its plan (the request, lineage, drift and notes), the record made from
    GetRun when the run was not in the ledger, and what was sent (None for a dry run)."""

    plan: Any  # runlog.replay.Plan
    imported: Any = None  # runlog.ledger.Entry | None
    submission: Any = None  # runlog.submit.Submission | None

    @property
    def request(self) -> dict[str, Any]:
        return self.plan.request

    @property
    def lineage(self) -> dict[str, Any]:
        return self.plan.lineage

    @property
    def drift(self) -> list[dict[str, Any]]:
        return self.plan.drift

    @property
    def notes(self) -> list[str]:
        return self.plan.notes

    @property
    def entry(self):
        """The replay's record (None for a dry run)."""
        return self.submission.entry if self.submission else None

    @property
    def response(self) -> dict[str, Any] | None:
        """StartRun's response (None for a dry run)."""
        return self.submission.response if self.submission else None


@dataclass
class Recovered:
    """What `recover` did with one pending attempt: recorded it (`entry`, `response`), found
    it recorded by another process (`entry`, `completed_elsewhere`), left it alone because a
    live process is sending it (`in_flight`: pid, host, since), or failed (`error`: it stays
    pending, or was refused and is recorded)."""

    request_id: str
    entry: Any = None
    response: dict[str, Any] | None = None
    in_flight: dict[str, Any] | None = None
    completed_elsewhere: bool = False
    error: RunlogError | None = None


@dataclass
class Recovery:
    """`recover`'s account: one Recovered per pending attempt, and how many are still pending."""

    results: list[Recovered] = field(default_factory=list)
    still_pending: int = 0


@dataclass
class Export:
    """The files an export wrote and, with validate=True, each check's verdict: (file,
    problems), problems None when the checker is not installed, [] when the file is valid."""

    written: list[Path]
    validation: list[tuple[str, list[str] | None]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def valid(self) -> bool:
        """False when a check found a problem (files not checked do not count)."""
        return not any(problems for _, problems in self.validation)


class Runlog:
    """A runlog ledger and the AWS settings to act on it, as `runlog` on the command line.

    `ledger` is the ledger file (default: as the command line finds it: `ledger` in the
    configuration, RUNLOG_LEDGER, else .runlog/ledger.db at the analysis repository's root).
    `config` is a runlog.config.Config, or a dict of configuration keys that win over the
    files and the environment (e.g. {"region": "us-east-1", "git_repo": "/path/to/analysis"}).
    `session` is a boto3.Session or botocore session whose credentials every AWS call uses
    (default: a session made the way the aws CLI makes one).

    The ledger is opened on first use, once, and closed by `close()` or at the end of a
    `with` block. A Runlog belongs to one thread (SQLite's rule for its connections)."""

    def __init__(self, ledger: str | Path | None = None, *, config: configuration.Config | Mapping[str, Any] | None
                 = None, session: Any = None):
        if isinstance(config, configuration.Config):
            self.config = config
            if ledger is not None:
                self.config.set("ledger", str(ledger), "Runlog(ledger=...)")
        else:
            overrides = dict(config or {})
            if ledger is not None:
                overrides["ledger"] = str(ledger)
            self.config = configuration.load(overrides=overrides)
        self._given_session = session
        self._ledger: Any = None
        self._writable = False  # whether self._ledger was opened for writing
        self._closed = False

    # -- the ledger ----------------------------------------------------------------------------

    @property
    def ledger_path(self) -> Path:
        """The ledger file this Runlog reads and writes."""
        return self.config.ledger_path()

    @property
    def ledger(self):
        """The open runlog.ledger.Ledger, writable (opened now if it was not; LedgerError if it
        does not exist yet)."""
        return self._open(create=False)

    def _read(self, *, missing_ok: bool = False):
        """The ledger for a method that only reads it (log, show, diff, verify, export): opened
        read-only (SQLite's mode=ro) unless it is already open for writing, so that a read never
        creates, migrates or writes the file, and works on a file the user may not write."""
        return self._open(create=False, missing_ok=missing_ok, write=False)

    def _open(self, *, create: bool, missing_ok: bool = False, write: bool = True):
        if self._closed:
            raise UsageError("this Runlog is closed: make a new one")
        if self._ledger is not None and (self._writable or not write):
            return self._ledger
        from runlog.ledger import Ledger

        path = self.ledger_path
        if not create and "\0" not in str(path) and not path.exists():
            if missing_ok:
                return None
            raise LedgerError(f"no ledger at {path} yet (nothing submitted with it)")
        if self._ledger is not None:  # opened read-only by a read; this method writes
            self._ledger.close()
            self._ledger = None
        self._ledger = Ledger.open(path, create=create and write, readonly=not write)
        self._writable = write
        return self._ledger

    def close(self) -> None:
        """Close the ledger. The Runlog cannot be used afterwards."""
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None
        self._closed = True

    def __enter__(self) -> Runlog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- AWS -----------------------------------------------------------------------------------

    def _settings(self, recorded: dict | None = None):
        from runlog import aws

        return aws.settings_for(self.config, recorded=recorded)

    def _session_for(self, settings):
        from runlog import aws

        if self._given_session is not None:
            return aws.adopt(self._given_session, settings)
        return aws.session(settings)

    def _resolve_options(self):
        from runlog.resolve import DEFAULT_TIMEOUT, Options

        return Options(timeout=self.config.get("resolve_timeout") or DEFAULT_TIMEOUT)

    @staticmethod
    def _warn(message: str) -> None:
        log_warnings.warning(message)

    # -- submitting ----------------------------------------------------------------------------

    def start_run(self, **members: Any) -> dict[str, Any]:
        """Start a HealthOmics run and record it, as `runlog submit` does: takes exactly
        boto3's `omics.start_run` keyword arguments (parameters and tags as dicts; roleArn,
        outputUri and tags default from the configuration; requestId defaults to a new UUID)
        and returns its response (with botocore's ResponseMetadata).

        The request is checked, its workflow and inputs resolved and the git state captured,
        then the intent is committed to the ledger before StartRun is sent. Raises UsageError
        (nothing sent or written), ServiceError when HealthOmics refused (a rejected record is
        kept: `error.record`), PendingError when the outcome is unknown (the attempt is kept:
        `recover()` completes it without starting a second run)."""
        return self._start_run(members)

    def _start_run(self, members: dict[str, Any], omics=None) -> dict[str, Any]:
        from runlog.ledger import claim
        from runlog.startrun import build_request, member_name
        from runlog.submit import submit

        start_request = build_request(members, defaults={"roleArn": self.config.get("role_arn"),
                                                 "outputUri": self.config.get("output_uri"),
                                                 "tags": self.config.get("tags")}, spell=member_name)
        settings = self._settings() if omics is None else self._client_settings(omics)
        claim(self.ledger_path)  # git capture (started first) leaves it out of the untracked files
        result = submit(lambda: self._open(create=True), start_request, settings=settings, git_path=self.config.git_repo,
                        lookup_caller=self.config.get("caller_identity", True),
                        resolve_options=self._resolve_options(), warn=self._warn,
                        session=self._session_for(settings), omics=omics)
        return _response(result)

    def start_run_batch(self, **members: Any) -> dict[str, Any]:
        """Start a HealthOmics batch of runs and record it, as `runlog submit-batch` does:
        takes exactly boto3's `omics.start_run_batch` keyword arguments (defaultRunSetting,
        batchRunSettings with inlineSettings or s3UriSettings, batchName, tags; the default
        setting's roleArn and outputUri default from the configuration; requestId defaults to
        a new UUID) and returns its response (with botocore's ResponseMetadata).

        The settings file of an s3UriSettings batch is read and pinned, every run's merged
        parameters checked against the default workflow's template, the runs' inputs
        identified in bulk and the git state captured; the intent is committed before
        StartRunBatch is sent. The member runs are recorded by `refresh([batch_id])`. Raises
        as start_run does (docs/batch.md)."""
        return self._start_run_batch(members)

    def _start_run_batch(self, members: dict[str, Any], omics=None) -> dict[str, Any]:
        from runlog.batch import build_request, submit_batch
        from runlog.batch import members as batch_members
        from runlog.ledger import claim
        from runlog.startrun import member_name

        known = batch_members()
        unknown = sorted(set(members) - set(known))
        if unknown:
            raise UsageError(f"unknown StartRunBatch member {unknown[0]!r} (valid: {', '.join(known)})")
        batch_request = build_request(members, spell=member_name, defaults={"role_arn": self.config.get("role_arn"),
                                                                            "output_uri": self.config.get("output_uri")})
        settings = self._settings() if omics is None else self._client_settings(omics)
        claim(self.ledger_path)
        result = submit_batch(lambda: self._open(create=True), batch_request.request, settings=settings,
                              git_path=self.config.git_repo, lookup_caller=self.config.get("caller_identity", True),
                              resolve_options=self._resolve_options(), warn=self._warn,
                              session=self._session_for(settings), omics=omics)
        return _response(result)

    def _client_settings(self, omics):
        """Where a caller's HealthOmics client sends: its region, and its endpoint unless it
        is AWS's own (then null, as for any run recorded against AWS)."""
        from runlog.aws import AwsSettings

        endpoint = getattr(omics.meta, "endpoint_url", None)
        host = (urlsplit(endpoint).hostname or "") if endpoint else ""
        custom = endpoint if endpoint and not host.endswith(_AWS_HOSTS) else None
        return AwsSettings(profile=self.config.get("profile"), region=omics.meta.region_name, endpoint_url=custom,
                           pinned=True)

    def recover(self) -> Recovery:
        """Complete the attempts left pending (a crash, a 5xx, a lost connection): each is
        sent again with its own requestId, to where it was recorded, so it never starts a
        second run. Attempts a live process is sending are left alone."""
        from runlog.submit import Completed, InFlight, Submission, recover

        ledger = self._open(create=False, missing_ok=True)
        report = Recovery()
        if ledger is None:
            return report

        def record(intent: dict, result: Any) -> None:
            found = Recovered(intent["request"]["requestId"])
            if isinstance(result, Submission):
                found.entry, found.response = result.entry, result.response
            elif isinstance(result, InFlight):
                found.in_flight = result.owner
            elif isinstance(result, Completed):
                found.entry, found.completed_elsewhere = result.entry, True
            else:
                found.error = result
            report.results.append(found)

        report.still_pending = recover(ledger, self._settings, on_result=record, session_for=self._session_for,
                                       timeout=self._resolve_options().timeout)
        return report

    def abandon(self, request_id: str, reason: str = "") -> Any:
        """Record a pending attempt as abandoned (kept, never sent again); returns its Entry."""
        from runlog.submit import abandon

        return abandon(self._open(create=False), request_id, reason)

    def replay(self, ref: str, *, set: Mapping[str, Any] | Iterable[str] | None = None, allow_drift: bool = False,
               native: bool = False, dry_run: bool = False, default_only: bool = False,
               only: Iterable[str] | None = None, settings_uri: str | None = None, **members: Any) -> Replay:
        """Run a recorded submission again: the recorded request with a new requestId, a
        `runlog:replay-of` tag, overrides (`set`: {"a.b[0].c": value} or ["PATH=VALUE"] for
        parameters; StartRun members as keyword arguments) and drift checks. Raises
        DriftError (with `items`) when code, workflow or inputs changed, unless allow_drift.
        `native` uses HealthOmics' own duplication (StartRun runId). A member of an imported
        batch replays the settings GetRun reported for it; `default_only` its batch's default
        setting alone instead. With dry_run nothing is sent: the Replay holds the plan and its drift.

        A batch is replayed as a new batch (StartRunBatch; `response` is its answer): all its
        runs, or `only` some (runSettingIds, or "failed"), `set` changing the default
        setting's parameters; a selection of more than 100 runs (or any, with `settings_uri`)
        is written to a new settings file in S3 first (docs/batch.md#replay)."""
        from runlog import replay as replaying
        from runlog.batchreplay import names_batch
        from runlog.startrun import member_name, parse_flag
        from runlog.startrun import members as known_members

        sets = _set_texts(set)
        for text in sets:
            replaying.parse_set(text)
        known = known_members()
        given = {}
        for name, value in members.items():
            if name not in known:
                raise UsageError(f"unknown StartRun member {name!r} (valid: {', '.join(known)})")
            if value is not None:
                given[name] = parse_flag(known[name], value, spell=member_name)[0]
        selected = [only] if isinstance(only, str) else list(only or [])
        existing = self._open(create=False, missing_ok=True)
        if names_batch(existing, ref.strip()):
            return self._replay_batch(existing, ref.strip(), sets=sets, only=selected, settings_uri=settings_uri,
                                      allow_drift=allow_drift, native=native, dry_run=dry_run,
                                      default_only=default_only, members=given)
        if selected or settings_uri is not None:
            raise UsageError(f"`{'only' if selected else 'settings_uri'}` is for a batch's runs; {ref!r} names a "
                             "single run")
        if existing is None and not replaying.is_fetchable(ref):
            raise LedgerError(f"no ledger at {self.ledger_path} yet (nothing submitted with it)")
        options = self._resolve_options()
        prepared, ledger = replaying.prepare(
            ref.strip(), existing=existing, create_ledger=lambda: self._open(create=True),
            settings_for=self._settings, session_for=self._session_for, git_path=self.config.git_repo,
            members=given, sets=sets, native=native, timeout=options.timeout, spell=member_name,
            default_only=default_only)
        found = Replay(prepared.plan, prepared.imported)
        if dry_run:
            return found
        found.submission = replaying.send(prepared, ledger, allow_drift=allow_drift,
                                          lookup_caller=self.config.get("caller_identity", True),
                                          resolve_options=options, warn=self._warn, spell=member_name)
        return found

    # -- reading -------------------------------------------------------------------------------

    def _replay_batch(self, ledger, ref: str, *, sets: list[str], only: list[str], settings_uri: str | None,
                      allow_drift: bool, native: bool, dry_run: bool, default_only: bool,
                      members: dict[str, Any]) -> Replay:
        from runlog import batchreplay

        if native or default_only:
            raise UsageError(f"`{'native' if native else 'default_only'}` is for one run; {ref!r} names a batch, "
                             "which is replayed from its recorded request")
        if members:
            raise UsageError(f"a batch replay takes `set` (the default setting's parameters) and `only`, not "
                             f"{next(iter(members))!r} (change the request and use start_run_batch)")
        options = self._resolve_options()
        plan = batchreplay.prepare(ledger, ref, only=only, sets=sets, settings_uri=settings_uri,
                                   settings_for=self._settings, session_for=self._session_for,
                                   git_path=self.config.git_repo, resolve=options.enabled, timeout=options.timeout)
        found = Replay(plan)
        if dry_run:
            batchreplay.settings_uri_refusal(plan)  # the HeadObject the CLI's dry run makes too
            return found
        found.submission = batchreplay.send(
            plan, lambda: self._open(create=True), git_path=self.config.git_repo, allow_drift=allow_drift,
            lookup_caller=self.config.get("caller_identity", True), resolve_options=options,
            warn=self._warn, wrote=self._warn)
        return found

    def log(self, limit: int | None = None, *, same_as: str | None = None) -> Iterator[Any]:
        """The records (runlog.ledger.Entry), newest first: at most `limit`, only those of
        the same configuration (fingerprint) as `same_as`. Nothing when there is no ledger."""
        ledger = self._read(missing_ok=True)
        if ledger is None:
            return iter(())
        if same_as is None:
            return iter(ledger.entries(limit or None))
        from runlog.batchread import configuration_fingerprint

        return iter(ledger.same_configuration(configuration_fingerprint(ledger, same_as), limit or None))

    def show(self, ref: str) -> Any:
        """The record REF names (a run id, uuid or ARN, @N, or an address prefix), as a
        runlog.ledger.Entry: `.record` is the record, `.status` the latest known status."""
        return self._read().resolve(ref)

    def observations(self, ref: str) -> list[dict[str, Any]]:
        """What was learned about REF's run after it was recorded (GetRun answers, tasks), oldest first."""
        ledger = self._read()
        return ledger.observations(ledger.resolve(ref).address)

    def diff(self, a: str, b: str | None = None, *, identity: bool = False) -> Any:
        """What changed between runs `a` and `b`, or, without `b`, between `a` and what would
        be submitted now; a runlog.diff.Diff (`.same`, `.changes`, `.as_dict()`)."""
        from runlog.diff import between

        return between(self._read(), a, b, git_repo=self.config.git_repo, cwd=Path.cwd(),
                       identity=identity)

    def verify(self, refs: Iterable[str] | None = None, *, expect: str | None = None,
               remote: str | bool | None = None) -> Any:
        """Check every record (or those REFs) against its content address, seal, schema,
        fingerprint, intent and chain; a runlog.verify.Report (`.ok`, `.problems`, `.head_text`).
        `expect` is a head printed by an earlier verify ("N:CHAIN") that must still hold.
        `remote` (s3://BUCKET/PREFIX, or True for `remote` in the configuration) also checks
        the head `push` left there."""
        from runlog import verify

        ledger = self._read()
        if refs:
            return verify.verify_entries(ledger, [ledger.resolve(ref, whole=False) for ref in refs])
        if expect:
            verify.parse_head(expect)
        report = verify.verify(ledger, expect=expect)
        if remote:
            from runlog import sync

            sync.check_remote_head(ledger, report, self._s3(4), self._remote(None if remote is True else remote))
        return report

    def export(self, refs: Iterable[str] | str, *, format: str, path: str | Path, license: str | None = None,
               authors: Iterable[str] | None = None, publisher: str | None = None, usability: str | None = None,
               title: str | None = None, runs_only: bool = False, force: bool = False,
               validate: bool = False) -> Export:
        """Write provenance for the runs REFs name: format "ro-crate", "bco", "prov-json",
        "prov-n", "methods" or "all", to `path`. Licence, authors ("Name <ORCID URL>"),
        publisher and usability default from the configuration. With validate, each file that
        has a standard is checked (Export.validation)."""
        from runlog.export import FORMATS
        from runlog.export.cohort import collect_export
        from runlog.export.terms import parse_person
        from runlog.export.validate import check_export
        from runlog.export.write import export, warnings

        if format not in (*FORMATS, "all"):
            raise UsageError(f"unknown export format {format!r} (one of: {', '.join((*FORMATS, 'all'))})")
        given = list(authors) if authors is not None else list(self.config.get("authors") or [])
        people = [parse_person(a) for a in given]
        publisher = publisher or self.config.get("publisher")
        licence = license or self.config.get("license")
        runs, batches = collect_export(self._read(), [refs] if isinstance(refs, str) else list(refs),
                                       runs_only=runs_only)  # a batch: itself and its member runs
        target = Path(path)
        written = export(runs, format, target, force=force, license=licence,
                         usability=usability or self.config.get("usability"), title=title, authors=people,
                         publisher=parse_person(publisher) if publisher else None, batches=batches)
        return Export(written, check_export(target, format) if validate else [],
                      warnings(runs, format, licence, batches))

    def report(self, path: str | Path, refs: Iterable[str] | str = (), *, since: str | None = None,
               batch: str | None = None, force: bool = False) -> Any:
        """Write the self-contained HTML report of `refs` (and/or records created `since` a
        date, and/or `batch` with its members; none of them: every record) to `path`, as
        `runlog report` does (docs/report.md). Returns a runlog.report.Selection: `runs`, and
        `verify`, the whole ledger's verify report (the report is written even when it found a
        problem: check `verify.ok`). `force` replaces an existing file, never a link."""
        from runlog.report import report

        return report(self._read(), path, [refs] if isinstance(refs, str) else list(refs), since=since,
                      batch=batch, force=force)

    # -- the service and the team ledger -------------------------------------------------------

    def cancel(self, ref: str, *, delete_runs: bool = False) -> dict[str, Any]:
        """CancelRunBatch for the batch `ref` names (or with delete_runs, DeleteRunBatch: the
        runs of a finished batch deleted), as `runlog cancel` does: what was asked and the
        service's answer (or refusal) are appended as observations of the batch record, then
        GetBatch; nothing is removed from the ledger. Returns {record, batch_id, action,
        status}. Raises UsageError when `ref` is no batch, ServiceError when refused,
        OperationError when the outcome is unknown (recorded so, with GetBatch's status after)."""
        from runlog import aws
        from runlog.batch import act_on_batch

        ledger = self._open(create=False)
        entry = ledger.resolve(ref)
        settings = self._settings(entry.record.get("aws"))
        omics = aws.client(settings, "omics", sess=self._session_for(settings))
        return act_on_batch(ledger, entry, omics, "delete-runs" if delete_runs else "cancel")

    def _s3(self, jobs: int):
        from runlog import aws

        settings = self._settings()
        return aws.client(settings, "s3", sess=self._session_for(settings), max_pool_connections=max(10, jobs))

    def _remote(self, remote: str | None):
        from runlog.sync import Remote

        return Remote.parse(remote or self.config.get("remote"))

    def push(self, remote: str | None = None, *, jobs: int = 16) -> Any:
        """Send the records, observations and pending attempts the team ledger (s3://BUCKET/PREFIX,
        default `remote` in the configuration) lacks; a runlog.sync.PushResult."""
        from runlog import sync

        target = self._remote(remote)
        return sync.push(self._open(create=False), self._s3(jobs), target, jobs=jobs)

    def pull(self, remote: str | None = None, *, jobs: int = 16, max_bytes: int | None = None) -> Any:
        """Fetch and verify what the team ledger holds and this ledger lacks; a
        runlog.sync.PullResult (`.refused` lists the objects left out, with the reason)."""
        from runlog import sync

        target = self._remote(remote)
        limit = max_bytes or sync.PULL_MAX_BYTES
        s3 = self._s3(jobs)
        listing = sync.survey(s3, target, jobs=jobs, doing="pull from", expect_ledger=True, max_bytes=limit)
        return sync.pull(self._open(create=True), s3, target, jobs=jobs, listing=listing, max_bytes=limit)

    def import_runs(self, *, since: Any = None, status: str | None = None, run_group_id: str | None = None,
                    jobs: int = 16) -> Any:
        """Record the runs started without runlog (ListRuns, then GetRun for each run the
        ledger lacks); a runlog.importer.ImportResult. `since` is a datetime or ISO 8601 text.
        Batches started without runlog are recorded first, with their runs as members
        (ListBatch; `.batches` says what was found, docs/batch.md) and what each member ran
        with (GetRun, `jobs` at a time) as an observation.
        A failure part way raises, after recording what was fetched (a rerun fetches the rest)."""
        from runlog import aws
        from runlog.importer import as_time, import_batches, import_runs, list_batches, list_runs

        moment = as_time(since) if since is not None else None
        if since is not None and moment is None:
            raise UsageError(f"since {since!r}: expected a datetime or a date like 2026-11-01")
        settings = self._settings()
        sess = self._session_for(settings)
        omics = aws.client(settings, "omics", sess=sess, max_pool_connections=max(10, jobs))
        batch_items = list_batches(omics, run_group_id=run_group_id, since=moment)
        items = list_runs(omics, status=status, run_group_id=run_group_id, since=moment)
        ledger = self._open(create=True)
        batches = import_batches(ledger, omics, batch_items, endpoint_url=aws.recorded_endpoint(settings, sess), jobs=jobs)
        if batches.failure is not None:
            raise batches.failure
        result = import_runs(ledger, omics, items, endpoint_url=aws.recorded_endpoint(settings, sess), jobs=jobs,
                             skip_batches=set(batches.pending))
        result.batches = batches
        if result.failure is not None:
            raise result.failure
        return result

    def refresh(self, refs: Iterable[str] = (), *, all: bool = False, outputs: bool = False,
                jobs: int = 16) -> list[dict[str, Any]]:
        """Ask HealthOmics about runs and batches (REFs; else every unfinished one, or every one
        with all=True) and record what changed, as `runlog refresh` does. One dict per run:
        record, run_id, old, new (or error); then one per batch, its members recorded: record,
        batch_id, status, members_listed, members_added, statuses_changed (or error), and when
        there is something to say settings_file_changed, settings_file_unchecked,
        repeated_run_settings, shared_runs, submissions_unsettled, listed_not_text, not_found
        (status None: GetBatch did not find a batch that was not finished; docs/batch.md).
        `outputs`: also GetRun each ended member whose output location is not recorded yet,
        `jobs` calls at a time."""
        from runlog import aws
        from runlog.batch import SETTINGS_CHECK_CLIENT, refresh_batches
        from runlog.observe import refresh_runs, refresh_targets

        ledger = self._open(create=False)
        targets = refresh_targets(ledger, list(refs), all)

        def client_for(entry, service: str = "omics"):
            settings = self._settings(ledger.batch_outline(entry.address).get("aws"))  # not the whole cohort
            options: dict[str, Any] = ({"max_pool_connections": max(10, jobs)} if service == "omics" else
                                       SETTINGS_CHECK_CLIENT)
            return aws.client(settings, service, sess=self._session_for(settings), **options)

        return (refresh_runs(ledger, [e for e in targets if e.kind != "batch"], self._settings, self._session_for)
                + refresh_batches(ledger, [e for e in targets if e.kind == "batch"], client_for,
                                  outputs_jobs=jobs if outputs else None, jobs=jobs,
                                  s3_for=lambda entry: client_for(entry, "s3")))

    def watch(self, ref: str, *, interval: float = 30.0, timeout: float | None = None, on_poll=None,
              on_failure=None) -> Any:
        """Follow REF's run until it ends, recording each status change; a runlog.watch.Outcome
        (`.status`, `.run`, `.input_changes`, `.ok`). `on_poll(run)` sees every GetRun answer;
        `on_failure(error)` each failure that says nothing about the run (a throttle, a 5xx, a
        lost answer, after botocore's retries), before the run is asked about again at the
        next interval (as `runlog watch` warns); any other failure is raised.
        For a batch, refresh it (its members and their statuses) until it is finished; a
        runlog.watch.BatchOutcome (`.status`, `.facts`: counts and failures, `.ok`), and
        `on_poll(change)` sees each refresh (with refresh's settings_file_changed when the
        batch's settings file is no longer the one pinned), and `on_failure(error)` each failure
        that says nothing about the batch, before it is refreshed again at the next interval.
        Raises OperationError when `timeout` seconds pass first."""
        from runlog import aws
        from runlog.watch import watch, watch_batch

        ledger = self._open(create=False)
        entry = ledger.resolve(ref)
        recorded = ledger.batch_outline(entry.address).get("aws") if entry.kind == "batch" else entry.record["aws"]
        settings = self._settings(recorded)
        omics = aws.client(settings, "omics", sess=self._session_for(settings))
        if entry.kind == "batch":  # its settings file checked as refresh checks it (S3 as configured)
            from runlog.batch import SETTINGS_CHECK_CLIENT

            return watch_batch(ledger, entry, omics, interval=interval, timeout=timeout,
                               on_poll=on_poll or (lambda seen: None), on_failure=on_failure or (lambda error: None),
                               s3=aws.client(settings, "s3", sess=self._session_for(settings), **SETTINGS_CHECK_CLIENT))
        return watch(ledger, entry, omics, interval=interval, timeout=timeout, on_poll=on_poll or (lambda seen: None),
                     on_failure=on_failure or (lambda error: None))

    def wrap(self, omics_client: Any) -> RecordingClient:
        """`omics_client` (a boto3 HealthOmics client) with a start_run that records itself
        in this Runlog's ledger; every other call passes through unchanged."""
        return RecordingClient(omics_client, self)


def _response(result: Any) -> dict[str, Any]:
    """A submission's response as boto3 returns it: with botocore's ResponseMetadata."""
    from runlog.submit import Submission

    assert isinstance(result, Submission)  # not a dry run
    response = dict(result.response)
    if result.metadata is not None:
        response["ResponseMetadata"] = result.metadata
    return response


def _set_texts(given: Mapping[str, Any] | Iterable[str] | None) -> list[str]:
    """replay's parameter overrides as PATH=VALUE texts (a mapping's values as JSON)."""
    if given is None:
        return []
    if isinstance(given, str):
        return [given]
    if isinstance(given, Mapping):
        return [f"{path}={json.dumps(value, ensure_ascii=False)}" for path, value in given.items()]
    return list(given)


class RecordingClient:
    """A HealthOmics client whose start_run records itself in a runlog ledger (through the
    same code path as `runlog submit`) and whose other methods and attributes are the
    client's own. Made by runlog.wrap() or Runlog.wrap()."""

    def __init__(self, client: Any, runlog: Runlog, *, owns: bool = False):
        self._client = client
        self.runlog = runlog
        self._owns = owns

    def start_run(self, **members: Any) -> dict[str, Any]:
        """boto3's start_run, sent with the wrapped client and recorded (see Runlog.start_run)."""
        return self.runlog._start_run(members, omics=self._client)

    def start_run_batch(self, **members: Any) -> dict[str, Any]:
        """boto3's start_run_batch, sent with the wrapped client and recorded (see Runlog.start_run_batch)."""
        return self.runlog._start_run_batch(members, omics=self._client)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    def __dir__(self) -> list[str]:
        return sorted(set(dir(self._client)) | {"start_run", "start_run_batch", "runlog", "close"})

    def close(self) -> None:
        """Close the ledger of a Runlog that wrap() made for this client (one given is left open)."""
        if self._owns:
            self.runlog.close()

    def __enter__(self) -> RecordingClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def wrap(omics_client: Any, runlog: Runlog | None = None, **options: Any) -> RecordingClient:
    """A HealthOmics client whose start_run records itself: a pipeline changes one line,
    `omics = runlog.wrap(boto3.client("omics"))`, to keep a ledger. Other calls pass through.

    The runs are recorded in `runlog`'s ledger, or in that of a Runlog made from `options`
    (ledger=, config=, session=: see Runlog), which the client's close() closes."""
    if runlog is not None and options:
        raise UsageError("give runlog= or Runlog's options (ledger=, config=, session=), not both")
    if runlog is None:
        return RecordingClient(omics_client, Runlog(**options), owns=True)
    return RecordingClient(omics_client, runlog)
