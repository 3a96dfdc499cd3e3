"""Which records a report covers (REFs, --since, --batch), and what it shows of each.

A report covers a *selection*: the records named by REFs and the records of a batch, or every
record when neither is given, then only those created at or after --since. Every selected run
is a row of the runs table. The newest GRAPH_LIMIT of them are nodes of the lineage graph and
the newest DETAIL_LIMIT have a section of their own (request, inputs, git, observations, tasks,
diff): a report of 10 000 runs stays a page a browser opens at once; narrow the selection to
see the others in full. The limits are stated in the page."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from runlog.errors import UsageError
from runlog.ledger import Entry, Ledger
from runlog.verify import Report

GRAPH_LIMIT = 2000
DETAIL_LIMIT = 300


def batch_of(record: dict) -> str | None:
    """The address of the batch record a member record belongs to, if any. Batch records
    (kind "batch") and members (a "batch" object naming the batch's "record") are written by
    `runlog submit-batch`; on a ledger without them the report simply has no batch edges."""
    link = record.get("batch")
    if isinstance(link, dict) and isinstance(link.get("record"), str):
        return link["record"]
    return None


def is_batch(record: dict) -> bool:
    return record.get("kind") == "batch"


def each_run_once(runs: list[Run]) -> list[Run]:
    """`runs` less batch records (a batch is not a run: its members are) and less every record
    of a run an earlier one names too (batchread.same_runs), in their order."""
    from runlog.batchread import same_runs

    records = [run for run in runs if run.entry.kind != "batch"]
    first = same_runs([(run.entry.run_id, run.entry.run_uuid) for run in records])
    return [run for index, run in enumerate(records) if first[index] == index]


@dataclass
class Run:
    """A selected record, with its observations when it has a section."""

    entry: Entry
    observations: list[dict] = field(default_factory=list)

    @property
    def address(self) -> str:
        return self.entry.address

    @property
    def record(self) -> dict:
        return self.entry.record

    @property
    def anchor(self) -> str:
        return "run-" + self.entry.address[:16]

    @property
    def status(self) -> str:
        return self.entry.status or "UNKNOWN"


@dataclass
class Comparison:
    """What a run's section compares it with: the run it replays, else the previous run of
    the same workflow (in the whole ledger, not only the selection)."""

    other: Entry
    reason: str
    other_observations: list[dict]


@dataclass
class Selection:
    runs: list[Run]  # the selected records, newest first (a row each; `distinct_runs`: each run once)
    ledger_id: str
    ledger_records: int
    verify: Report
    asked: list[str]  # the selection as the user gave it, in words
    since: str | None = None
    detailed: list[Run] = field(default_factory=list)
    graphed: list[Run] = field(default_factory=list)
    comparisons: dict[str, Comparison] = field(default_factory=dict)

    @property
    def distinct_runs(self) -> list[Run]:
        """The selected records as runs: each HealthOmics run once, batch records left out
        (each_run_once). What the report counts as runs; `runs` are its records."""
        return each_run_once(self.runs)

    @property
    def period(self) -> tuple[str, str] | None:
        if not self.runs:
            return None
        created = [run.entry.created for run in self.runs]
        return min(created), max(created)


def parse_since(text: str) -> str:
    """--since as the records' own time form (UTC, ISO 8601 with milliseconds), so that it
    compares with `created` as text. A date is its midnight UTC; a time without a zone is UTC."""
    try:
        moment = datetime.fromisoformat(text.strip())
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise UsageError(f"`since` {text!r}: give a date as YYYY-MM-DD or a time as ISO 8601 "
                         "(e.g. 2026-11-24 or 2026-11-24T13:00:00Z) between the years 1 and 9999",
                         option="since") from None
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def select(ledger: Ledger, refs: list[str], *, since: str | None = None, batch: str | None = None,
           report: Report | None = None, detail_limit: int = DETAIL_LIMIT, graph_limit: int = GRAPH_LIMIT) -> Selection:
    """The selection for a report, with the verify report of the whole ledger (computed here
    unless given), the runs that get a section and a graph node, and what each section's diff
    compares with."""
    from runlog.verify import verify

    since_text = parse_since(since) if since is not None else None
    asked: list[str] = []
    if refs or batch:
        chosen: dict[str, Entry] = {}
        for ref in refs:
            entry = ledger.resolve(ref)
            chosen.setdefault(entry.address, entry)
        if refs:
            asked.append("records " + ", ".join(refs))
        if batch:
            head = ledger.resolve(batch)
            if not is_batch(head.record):
                raise UsageError(f"`batch` {batch!r} names record {head.address[:12]} (kind "
                                 f"{head.record.get('kind')}), not a batch record; give a batch's REF "
                                 "(`log()` lists records)", option="batch")
            chosen.setdefault(head.address, head)
            for entry in ledger.entries():
                if batch_of(entry.record) == head.address:
                    chosen.setdefault(entry.address, entry)
            asked.append(f"batch {batch}")
        entries = sorted(ledger.by_addresses(list(chosen)), key=lambda e: (e.created, e.seq), reverse=True)
    else:
        everything = ledger.entries()
        entries = ledger.without_imported_twins(everything)  # each run once (imported, then pulled)
        asked.append("every record")
        if len(entries) < len(everything):
            asked.append(f"less {len(everything) - len(entries)} imported record(s) of runs or batches also "
                         "recorded as runlog started them")
    if since_text is not None:
        entries = [e for e in entries if e.created >= since_text]
        asked.append(f"created at or after {since_text}")
    runs = [Run(entry) for entry in entries]
    selection = Selection(
        runs=runs, ledger_id=ledger.meta().get("ledger_id", "-"), ledger_records=ledger.count(),
        verify=report if report is not None else verify(ledger), asked=asked, since=since_text,
        detailed=runs[:detail_limit], graphed=runs[:graph_limit],
    )
    for run in selection.detailed:
        run.observations = ledger.observations(run.address)
    selection.comparisons = _comparisons(ledger, selection.detailed)
    return selection


def _comparisons(ledger: Ledger, runs: list[Run]) -> dict[str, Comparison]:
    if not runs:
        return {}
    previous: dict[str, str] = {}  # address -> the next older record of the same workflow
    older: dict[str, str] = {}
    for address, workflow in reversed(ledger.workflow_order()):  # oldest first
        if workflow is not None:
            if workflow in older:
                previous[address] = older[workflow]
            older[workflow] = address
    originals = {run.address: ((run.record.get("lineage") or {}).get("replay_of") or {}).get("record")
                 for run in runs}
    candidates = {a for a in originals.values() if a} | {previous[r.address] for r in runs if r.address in previous}
    others = {e.address: e for e in ledger.by_addresses(sorted(candidates))}
    observations: dict[str, list[dict]] = {}
    out = {}
    for run in runs:
        original = originals[run.address]
        if original in others:
            other, reason = original, "the run it replays"
        elif run.address in previous:
            other, reason = previous[run.address], f"the previous run of workflow {run.entry.workflow_id}"
        else:
            continue
        if other not in observations:
            observations[other] = ledger.observations(other)
        out[run.address] = Comparison(others[other], reason, observations[other])
    return out
