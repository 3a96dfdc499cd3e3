"""A pull's inserts: the records and observations it received and checked, appended to the
ledger in one transaction (docs/team-ledger.md#pull).

What pull promises of the order: records are appended oldest first (by `created`, then
address), after every record the ledger holds, one record per requestId (of several with
the same requestId the oldest is kept, in every ledger alike), a member record only once
the batch record it names is checked against it; then the observations of the records the
ledger then holds, oldest first (by `observed_at`, then address).

Two ways to keep it:

- `insert_all`: once every pack is fetched and checked, sort what was received and append
  it. Always right; the inserts wait for the whole transfer.
- `Streamer`: while the packs are still fetched. Each pack's index object carries, as S3
  metadata, the oldest record and the oldest observation it holds (syncpack.Pack.hint_metadata,
  written by push). That is only a claim, and a pull uses it only to choose the order it
  fetches packs in and to know when a record can be appended: once every pack whose claim
  is older than it has arrived (and once the rest of the transfer should take at most
  APPEND_AHEAD_SECONDS: the ledger is held from the first append). Anything that breaks the order (a claim that lied, a record
  older than one appended already, a refused pack whose items other packs may supply, a
  member whose batch record is not yet known) rolls the streamed inserts back to their
  savepoint and leaves the pull to `insert_all`: a claim can make a pull slower, never make
  it append out of order or take what it would not take otherwise."""

from __future__ import annotations

import heapq
import re
import sys
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future
from typing import TYPE_CHECKING

from runlog import fastjson, startrules
from runlog.ledger import Ledger
from runlog.spool import Spool
from runlog.textsafe import terminal_safe

if TYPE_CHECKING:
    from runlog.syncpack import Hint
    from runlog.syncworker import Checkers

# Pulled records and observations are inserted this many at a time, read back from the spool
# they waited in (runlog/syncreceive.py); a page is cut earlier once it holds INSERT_PAGE_BYTES,
# so that large records are not all held at once. 10 000 (a page of a cohort's member records
# is then about 16 MiB), where it was 2 000: fewer, larger statements write each page of the
# indexes that many rows share. Pages of records are cut at half INSERT_PAGE_BYTES: two are
# held at once, one inserted while the next one's members are checked (Appender).
INSERT_PAGE = 10_000
INSERT_PAGE_BYTES = 16 * 1024 * 1024
# SQLite's page cache while the pulled rows are inserted (its default is 2 MB). The records'
# indexes on random keys (address, run uuid, run id, fingerprint) and the observations' (their
# record, their address) take a few hundred bytes an item: at 2 MB each page of 10 000 rows read
# their leaves back from the file and wrote most of them again. With 64 MiB a 30 000-member pull
# inserted its rows in 4.3-4.6 s of CPU instead of 4.9-6.0 s. Taken as pages are used.
INSERT_CACHE_KIB = 64 * 1024
# ... at most: a pull of fewer rows gets 1 KiB of cache per row it inserts (their index entries
# are a few hundred bytes), so that a small pull does not take memory it cannot use.
INSERT_CACHE_KIB_PER_ROW = 1

# What pull keeps in memory of a checked record: (created, address, key, request id, where its
# row is in the spool, its kind, for a member the address of the batch record it names, and
# the run or batch it says it started: startrules); of an observation: (observed_at, address,
# record, where).
Received = tuple[str, str, str, str | None, tuple[int, int], str, str | None, "startrules.Started | None"]
ReceivedObservation = tuple[str, str, str, tuple[int, int]]

# Where a member record names its batch record: its canonical JSON's "batch" object (scalars
# only, keys sorted) holds "record" before "run_setting_id".
_BATCH_OF_MEMBER = re.compile(rb'"batch":\{[^{}]*?"record":"([0-9a-f]{64})"')


def received(created: str, address: str, key: str, request_id: str | None, row: tuple, spool: Spool) -> Received:
    """What pull keeps of a checked record, its row put in the spool."""
    kind = row[2][0]
    batch = None
    if kind == "member":
        found = _BATCH_OF_MEMBER.search(row[1])
        batch = sys.intern(found.group(1).decode() if found else fastjson.loads_inexact(row[1])["batch"]["record"])
        started = None
    else:
        started = startrules.started_by_row(row[2], row[1])
    return created, address, key, request_id, spool.put(row), sys.intern(kind), batch, started


def cache_kib(rows: int) -> int:
    """The page cache a pull inserting this many rows gets (INSERT_CACHE_KIB at most)."""
    return min(INSERT_CACHE_KIB, INSERT_CACHE_KIB_PER_ROW * rows)


# A pull appends while packs are still coming once the rest of the transfer is expected to take
# at most this long (at the rate so far): its write transaction, which another writer of the
# ledger waits for (up to the busy timeout, 60 s), then lasts about that long plus the inserts
# left after the last pack, however slow the link, instead of the whole transfer.
APPEND_AHEAD_SECONDS = 20.0


class OutOfOrder(Exception):
    """Streamed inserts cannot keep pull's order (or take what insert_all would): the
    Streamer rolls back to its savepoint, and insert_all does the inserts."""


# How many batch records (each with its cohort's blobs) a streamed pull's member checks hold at
# once: the members of a batch share its time, so they come together in pull's order.
BODIES_HELD = 4


class MemberCheck:
    """Received member records checked against their batch records (batch.member_check), a
    page at a time as they are read back to be inserted: a member is what its batch record
    makes of its run, so one that is not (another input for a run setting, settings for a run
    setting the batch does not have) was written by someone else, and is refused. The batch
    record is the one received in this pull, else the local ledger's; a member whose batch
    record is in neither is refused too: taken unchecked, it would join its batch when a later
    pull brought the batch record (the ledger adopts it), never checked. With `records` (all
    that will be inserted), each batch record's bytes are held from its first member to its
    last; without (streamed inserts: not yet known), the last BODIES_HELD used are, and a
    member whose batch record is not known yet raises OutOfOrder instead of being refused."""

    def __init__(self, ledger: Ledger, spool: Spool, records: list[Received] | None, checkers: Checkers,
                 refused: list[tuple[str, str]]) -> None:
        self.ledger, self.spool, self.checkers, self.refused = ledger, spool, checkers, refused
        self.final = records is not None
        self.received: dict[str, tuple[int, int]] = {}
        self.left: dict[str, int] = {}
        for item in records or ():
            self.note(item)
            if item[6] is not None:  # a member
                self.left[item[6]] = self.left.get(item[6], 0) + 1
        self.bodies: dict[str, tuple[bytes, dict[str, bytes] | None] | None] = {}

    def note(self, item: Received) -> None:
        """A record received in this pull (only a batch record matters here)."""
        if item[5] == "batch":
            self.received[item[1]] = item[4]

    def knows(self, batch_address: str) -> bool:
        """Whether the batch record at that address is there to check its members against."""
        return self._body(batch_address) is not None

    def check(self, page: list[Received], rows: list[tuple]) -> list[Future]:
        """Start checking the members of a page (its items and their rows): futures of the
        (address, why) of those refused."""
        groups: dict[str, list[tuple[str, bytes]]] = {}
        for item, row in zip(page, rows, strict=True):
            if item[6] is not None:
                groups.setdefault(item[6], []).append((item[1], row[1]))
        futures: list[Future] = []
        for batch_address, members in groups.items():
            found = self._body(batch_address)
            if found is None:  # nothing to check them against
                if not self.final:
                    raise OutOfOrder(f"member of batch record {batch_address}, which is not known")
                done: Future = Future()
                done.set_result([(member, f"member record {member} names batch record {batch_address}, which this "
                                  "pull does not take and this ledger does not hold: a member is taken with or after "
                                  "its batch record (push the ledger that holds the batch record, then pull again)")
                                 for member, _ in members])
                futures.append(done)
            else:
                futures.append(self.checkers.members(batch_address, found[0], batch_address in self.received, members,
                                                     found[1]))
            if batch_address in self.left:
                self.left[batch_address] -= len(members)
                if not self.left[batch_address]:
                    self.bodies.pop(batch_address, None)  # its last member: the batch record is let go
        return futures

    def kept(self, page: list[Received], rows: list[tuple], futures: list[Future]) -> list[tuple]:
        """The rows of a page less its members refused, once their check is done (each named in
        `refused`, with the key it was pulled from)."""
        bad = {address: why for future in futures for address, why in future.result()}
        if not bad:
            return rows
        self.refused.extend((item[2], bad[item[1]]) for item in page if item[1] in bad)
        return [row for row in rows if row[0] not in bad]

    def _body(self, batch_address: str) -> tuple[bytes, dict[str, bytes] | None] | None:
        """The canonical JSON of the batch record a member names (received in this pull, else the
        local ledger's) and, when it holds its cohort by reference, the blobs it names {sha256:
        canonical JSON} (the ledger's: a pull stores those it received before its records); None
        when neither holds the record."""
        if batch_address not in self.bodies:
            if batch_address in self.received:
                body = self.spool.get(self.received[batch_address])[1]
            else:
                entry = self.ledger.get(batch_address)
                body = entry.body.encode("utf-8") if entry is not None and entry.kind == "batch" else None
            if body is None:
                return None  # not remembered: a streamed pull may receive it later
            if not self.final and len(self.bodies) >= BODIES_HELD:
                del self.bodies[next(iter(self.bodies))]  # the one first used: read again if needed
            self.bodies[batch_address] = (body, self._cohort(body))
        return self.bodies[batch_address]

    def _cohort(self, body: bytes) -> dict[str, bytes] | None:
        from runlog.syncblobs import references

        refs, _ = references(body)
        return {ref["sha256"]: self.ledger.blob(ref["sha256"]) for _, ref in refs} if refs else None


class RequestOwners:
    """A requestId belongs to one run, so to one record; and a run or batch is started by one
    record (runlog/startrules.py). Offered the pulled records oldest first, keeps the first
    with each requestId and the first that says it started each run or batch (the oldest, then
    the lowest address: in every ledger alike) and refuses the others, and refuses a record
    whose requestId, or whose run or batch, the local ledger already holds. Each refusal names
    the record that has it."""

    def __init__(self, ledger: Ledger, where: str, refused: list[tuple[str, str]], indexed: bool = True) -> None:
        """`indexed`: the ledger's run uuids are indexed (not dropped while inserting:
        Ledger.drop_indexes), so each received run's starter is looked up on its own; else the
        local ledger's starts are read once (it holds no more rows than the pull brings)."""
        self.ledger, self.where, self.refused = ledger, where, refused
        self.indexed = indexed
        self.local = ledger.request_ids()
        self.owner: dict[str, tuple[str, str]] = {}  # request id -> (address, where)
        self.local_starts: set[startrules.Started] | None = None  # read once, at the first start offered
        self.starter: dict[startrules.Started, tuple[str, str]] = {}  # run or batch -> (address, where)

    def keep(self, item: Received) -> bool:
        _, address, key, request_id, _, _, _, what = item
        if request_id is not None:
            if request_id in self.local and request_id not in self.owner:
                entry = self.ledger.by_request_id(request_id)
                if entry is not None and entry.address != address:
                    self.owner[request_id] = (entry.address, "in the local ledger")
            if request_id in self.owner:
                other, where = self.owner[request_id]
                self.refused.append((key, f"requestId {terminal_safe(request_id)[:80]!s} is already used by record "
                                          f"{other} ({where}); one request id is one run, so this record ({address}) "
                                          "is left out"))
                return False
        if what is not None and (why := startrules.form_problem(what)) is not None:
            self.refused.append((key, f"record {address}: {why}; it is left out"))
            return False
        if what is not None and what not in self.starter:
            self._note_local_starter(what, address)
        if what is not None and what in self.starter:
            self.refused.append((key, f"record {address}: {startrules.second_start(what, *self.starter[what])}; "
                                      "it is left out"))
            return False
        if request_id is not None:
            self.owner[request_id] = (address, f"{self.where}/{key}")
        if what is not None:
            self.starter[what] = (address, f"{self.where}/{key}")
        return True

    def _note_local_starter(self, what: startrules.Started, address: str) -> None:
        """The local ledger's record that started `what`, if any, noted in `starter`."""
        if self.local_starts is None:
            self.local_starts = self.ledger.started_keys(runs=not self.indexed)
        if what in self.local_starts or (what[0] == "run" and self.indexed):
            held = [other for _, other in self.ledger.starters(what) if other != address]
            if held:
                self.starter[what] = (held[0], "in the local ledger")


class Appender:
    """Records appended in the order offered, a page at a time (INSERT_PAGE, half
    INSERT_PAGE_BYTES): each page's members are checked (MemberCheck) while the page before
    is inserted (Ledger.add_received_records). `owners` (RequestOwners) and `blobs` (a batch
    record's blobs fetched and stored: False when it is refused), when given, decide first
    whether a record is kept."""

    def __init__(self, ledger: Ledger, spool: Spool, members: MemberCheck, owners: RequestOwners | None = None,
                 blobs: Callable[[Received], bool] | None = None) -> None:
        self.ledger, self.spool, self.members, self.owners, self.blobs = ledger, spool, members, owners, blobs
        self.pages = Pages(4, INSERT_PAGE_BYTES // 2)
        self.checking: tuple[list[Received], list[tuple], list[Future]] | None = None
        self.added = 0

    def add(self, item: Received) -> None:
        if self.owners is not None and not self.owners.keep(item):
            return
        if self.blobs is not None and item[5] == "batch" and not self.blobs(item):
            return
        self.members.note(item)
        if (page := self.pages.add(item)) is not None:
            self._next_page(page)

    def _next_page(self, page: list[Received]) -> None:
        rows = [self.spool.get(item[4]) for item in page]
        following = (page, rows, self.members.check(page, rows))
        self._insert_checked()
        self.checking = following

    def _insert_checked(self) -> None:
        if self.checking is not None:
            checking, self.checking = self.checking, None
            self.added += self.ledger.add_received_records(self.members.kept(*checking), plain=True)

    def finish(self) -> int:
        """Insert what is left; returns how many records were added in all."""
        if page := self.pages.rest():
            self._next_page(page)
        self._insert_checked()
        return self.added


class Pages:
    """Items gathered into pages of at most INSERT_PAGE and, but for a page of one, `most` bytes
    of rows (INSERT_PAGE_BYTES unless given; item[at]: where an item's row is in the spool,
    (offset, length))."""

    def __init__(self, at: int, most: int | None = None) -> None:
        self.at, self.most = at, INSERT_PAGE_BYTES if most is None else most
        self.page: list = []
        self.size = 0

    def add(self, item: tuple) -> list | None:
        """Gather an item; the page it closed, when the one being filled was full."""
        length = item[self.at][1]
        closed = None
        if self.page and (len(self.page) >= INSERT_PAGE or self.size + length > self.most):
            closed, self.page, self.size = self.page, [], 0
        self.page.append(item)
        self.size += length
        return closed

    def rest(self) -> list:
        """The page being filled (perhaps empty), which is then started again."""
        rest, self.page, self.size = self.page, [], 0
        return rest


def pages(items: list[tuple], at: int) -> Iterator[list[tuple]]:
    """The items in pages (Pages)."""
    gathered = Pages(at)
    for item in items:
        if (page := gathered.add(item)) is not None:
            yield page
    if rest := gathered.rest():
        yield rest


def insert_all(ledger: Ledger, spool: Spool, records: list[Received], observations: list[ReceivedObservation],
               refused: list[tuple[str, str]], checkers: Checkers, held: Collection[tuple[str, int, bytes]] = ()
               ) -> tuple[int, int]:
    """Inside the pull's transaction (Ledger.one_transaction): store the blobs the records
    name (`held`, checked: sync._pull_blobs), then append the checked records, then the
    observations of the records the ledger then holds, each in the order given, read back from
    the spool a page at a time (Ledger.add_received_records, add_checked_observations). Into
    a ledger that holds no more rows than the pull brings (an empty one), the indexes nothing
    looks rows up by while inserting are built after the rows instead of row by row
    (Ledger.indexes_built_after). The member records of a page are checked against their
    batch records first (MemberCheck), by the worker processes when the pull has them, while
    the page before is inserted; those refused are left out and named in `refused`. Returns
    how many records and observations were added."""
    members = MemberCheck(ledger, spool, records, checkers, refused)
    if held:
        ledger.add_blobs(list(held))
    with ledger.indexes_built_after({"records": len(records), "batch_members": len(records)}):
        appender = Appender(ledger, spool, members)
        for item in records:
            appender.add(item)
        added = appender.finish()
    return added, _insert_observations(ledger, spool, observations, refused)


def _insert_observations(ledger: Ledger, spool: Spool, observations: list[ReceivedObservation],
                         refused: list[tuple[str, str]]) -> int:
    known = ledger.addresses()
    observations = [item for item in observations if item[2] in known]
    del known
    if not observations:
        return 0
    ledger.index_observations()  # once: every observation held is then found by its address
    seen = 0
    with ledger.indexes_built_after({"observations": len(observations)}):
        for part in pages(observations, 3):
            seen += ledger.add_checked_observations([spool.get(item[3]) for item in part], plain=True,
                                                    refused=refused)
    return seen


class _Waiting:
    """The claims ("oldest item it holds") of the packs not yet arrived (those not in
    `arrived`), oldest first: the bound below which every received item can be appended."""

    def __init__(self, arrived: set[str]) -> None:
        self.claims: list[tuple[Hint, str]] = []
        self.arrived = arrived
        self.at = 0

    def add(self, claims: list[tuple[Hint, str]]) -> None:
        self.claims = sorted(self.claims[self.at:] + claims)
        self.at = 0

    def pending(self) -> bool:
        """Whether a pack is still to come."""
        return self.bound() is not None

    def bound(self) -> Hint | None:
        """The oldest claim of a pack not yet arrived (None: every one has)."""
        while self.at < len(self.claims) and self.claims[self.at][1] in self.arrived:
            self.at += 1
        return self.claims[self.at][0] if self.at < len(self.claims) else None


class _StreamedOwners(RequestOwners):
    """RequestOwners of streamed inserts: a batch record refused (for its requestId, or as a
    second start of its batch) may have
    had its members checked against it already (Streamer._arrived_batch), so insert_all
    decides instead."""

    def keep(self, item: Received) -> bool:
        if not super().keep(item):
            if item[5] == "batch":
                raise OutOfOrder(f"batch record {item[1]} refused for its requestId or its batch")
            return False
        return True


class Streamer:
    """The inserts of a pull done while its packs are fetched (module docstring): offered each
    pack's checked items as it arrives, it appends those no pack still to come can precede,
    inside a savepoint of the pull's transaction (opened at the first append). `finish`
    appends the rest and answers (records added, observations added), or None when the order
    could not be kept that way: everything it did was rolled back, and `insert_all` is left
    to do the inserts from what pull kept."""

    SAVEPOINT = "runlog_pull_streamed"

    def __init__(self, ledger: Ledger, spool: Spool, checkers: Checkers, begin: Callable[[], None],
                 rows: dict[str, int], blobs: Callable[[Received, list[tuple[str, str]]], bool], where: str) -> None:
        """`begin()`: opens the pull's one transaction, if it is not open yet (the caller
        closes it). `rows`: how many rows each table is about to get, at most
        (Ledger.drop_indexes). `blobs(item, refused)`: fetch and store a batch record's blobs
        (False: refused, the reason appended to `refused`). `where`: the remote, as refusals
        name it."""
        self.arrived: set[str] = set()  # the packs that arrived
        self.records = _Waiting(self.arrived)
        self.observations = _Waiting(self.arrived)
        self.ledger, self.spool, self.checkers, self.begin, self.rows = ledger, spool, checkers, begin, rows
        self.blobs, self.where = blobs, where
        self.refused: list[tuple[str, str]] = []  # the inserts' own refusals, the pull's once it succeeds
        self.heap: list[Received] = []
        self.heap_observations: list[ReceivedObservation] = []
        self.last: tuple[str, str] | None = None
        self.last_observation: tuple[str, str] | None = None
        self.arrived_batches: list[Received] = []  # batch records received, their blobs not yet taken
        self.sizes: dict[str, int] = {}  # pack digest -> bytes
        self.began: float | None = None  # when the first packs were asked for
        self.expected_bytes = self.arrived_bytes = 0  # of the packs asked for, of those arrived
        self.appending = False
        self.batches: set[str] = set()  # the batch records received whose blobs were taken
        self.appender: Appender | None = None
        self.added = self.seen = 0
        self.known: set[str] | None = None  # once every record is appended: the ledger's addresses
        self.observation_pages = Pages(3)
        self.indexed = False
        self.failed: str | None = None
        self.dropped: list[tuple[str, str]] = []

    def expect(self, packs: dict[str, tuple[Hint | None, Hint | None, bool, bool, int]]) -> None:
        """Packs about to be fetched: for each, (its record claim, its observation claim,
        whether it holds records wanted, whether it holds observations wanted, its size in
        bytes); a missing claim counts as older than anything."""
        least = ("", "")
        self.records.add([(claims[0] or least, digest) for digest, claims in packs.items() if claims[2]])
        self.observations.add([(claims[1] or least, digest) for digest, claims in packs.items() if claims[3]])
        self.sizes.update((digest, claims[4]) for digest, claims in packs.items())
        self.expected_bytes += sum(claims[4] for claims in packs.values())
        if self.began is None:
            self.began = time.monotonic()

    def _ready(self) -> bool:
        """Whether to append now: once the rest of the transfer is expected to take at most
        APPEND_AHEAD_SECONDS at the rate so far (the ledger is then held for about that long
        before the pull ends, not for the whole of a long transfer), and from then on."""
        if not self.appending and self.began is not None:
            done = self.arrived_bytes
            rest = self.expected_bytes - done
            elapsed = time.monotonic() - self.began
            self.appending = done > 0 and rest * elapsed <= APPEND_AHEAD_SECONDS * done
        return self.appending

    def offer(self, digest: str, records: list[Received], observations: list[ReceivedObservation],
              refused: bool) -> None:
        """A pack arrived (`refused`: it, or an item of it, was refused; what it should have
        supplied may come from other packs, in any order): its checked items."""
        if self.failed is not None:
            return
        try:
            if refused:
                raise OutOfOrder(f"pack {digest} refused")
            self.arrived.add(digest)
            self.arrived_bytes += self.sizes.get(digest, 0)
            for item in records:
                if self.last is not None and item[:2] <= self.last:
                    raise OutOfOrder(f"record {item[1]} is older than one appended already")
                if item[5] == "batch":
                    self.arrived_batches.append(item)
                heapq.heappush(self.heap, item)
            for observed in observations:
                if self.last_observation is not None and observed[:2] <= self.last_observation:
                    raise OutOfOrder(f"observation {observed[1]} is older than one appended already")
                heapq.heappush(self.heap_observations, observed)
            if self._ready():
                self._drain()
        except OutOfOrder as exc:
            self._give_up(str(exc))

    def finish(self) -> tuple[int, int] | None:
        """Every pack has arrived (or been refused): append the rest, build the dropped indexes
        again, release the savepoint. None when the order could not be kept (rolled back)."""
        if self.failed is None:
            try:
                self.records.claims = self.observations.claims = []
                self.appending = True
                self._drain()
                self._records_done()
                self._add_observations(self.observation_pages.rest())
                self._end()
            except OutOfOrder as exc:
                self._give_up(str(exc))
        return None if self.failed is not None else (self.added, self.seen)

    def _start(self) -> Appender:
        if self.appender is None:
            self.begin()
            self.ledger.savepoint(self.SAVEPOINT)
            # the records' indexes now; the observations' once every record is in (_add_observations), as
            # insert_all does: a member record's page looks its latest status up by observations_record
            self.dropped = self.ledger.drop_indexes({table: rows for table, rows in self.rows.items()
                                                     if table != "observations"})
            members = MemberCheck(self.ledger, self.spool, None, self.checkers, self.refused)
            self.appender = Appender(self.ledger, self.spool, members, _StreamedOwners(
                self.ledger, self.where, self.refused, indexed=not any(name == "records_run_uuid" for name, _ in self.dropped)),
                                     lambda item: item[1] in self.batches)
        return self.appender

    def _arrived_batch(self, item: Received) -> None:
        """A batch record arrived: its blobs are fetched and stored now, and it is there to check
        its members against from now on (members of a cohort share its `created`, so about half
        of them come before it in pull's order). Refused for its blobs, it is never appended."""
        appender = self._start()
        if self.blobs(item, self.refused):
            self.batches.add(item[1])
            appender.members.note(item)

    def _drain(self) -> None:
        while self.arrived_batches:
            self._arrived_batch(self.arrived_batches.pop(0))
        bound = self.records.bound()
        while self.heap and (bound is None or self.heap[0][:2] < bound):
            item = self.heap[0]
            appender = self._start()
            if item[6] is not None and not appender.members.knows(item[6]) and self.records.pending():
                return  # a member whose batch record is still to come: it waits for it
            heapq.heappop(self.heap)
            appender.add(item)
            self.last = item[:2]
        if bound is not None or self.heap:
            return
        self._records_done()
        bound = self.observations.bound()
        while self.heap_observations and (bound is None or self.heap_observations[0][:2] < bound):
            observed = heapq.heappop(self.heap_observations)
            self.last_observation = observed[:2]
            assert self.known is not None
            if observed[2] in self.known and (page := self.observation_pages.add(observed)) is not None:
                self._add_observations(page)

    def _records_done(self) -> None:
        """Every record is appended: the records' indexes are built again now, while the packs of
        observations may still be coming (not in the pull's last seconds), and the observations
        can follow."""
        if self.known is None:
            if self.appender is not None:
                self.added = self.appender.finish()
                self.ledger.create_indexes(self.dropped)
                self.dropped = []
            self.known = self.ledger.addresses()

    def _add_observations(self, page: list[ReceivedObservation]) -> None:
        if page:
            self._start()
            if not self.indexed:
                self.indexed = True
                self.dropped += self.ledger.drop_indexes({"observations": self.rows.get("observations", 0)})
                self.ledger.index_observations()  # once: every observation held is then found by its address
            self.seen += self.ledger.add_checked_observations([self.spool.get(item[3]) for item in page], plain=True,
                                                              refused=self.refused)

    def _end(self) -> None:
        if self.appender is not None:
            self.ledger.create_indexes(self.dropped)
            self.ledger.release(self.SAVEPOINT)

    def _give_up(self, why: str) -> None:
        """Roll the streamed inserts back (the transaction stays open for insert_all)."""
        self.failed = why
        if self.appender is not None:  # the savepoint was taken
            self.ledger.rollback_to(self.SAVEPOINT)
        self.refused.clear()
        self.batches.clear()
        self.arrived_batches.clear()
        self.heap.clear()
        self.heap_observations.clear()
        self.observation_pages = Pages(3)
        self.appender = None
        self.added = self.seen = 0
