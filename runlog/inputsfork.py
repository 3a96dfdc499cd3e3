"""A cohort's inputs resolved by a forked copy of submit-batch while it checks the cohort.

Before StartRunBatch is sent, submit-batch has two pieces of work of about the same size that
need nothing from each other but the settings file's bytes:

  * the settings file read and checked: parsed by the strict reader, each run setting
    checked, the runs' merged parameters checked against the workflow's template, the
    file's content encoded and compressed into its blob, the ledger opened, the intent
    checked against the schema;
  * the inputs' identities: the input URIs the runs name found, their identities listed
    from S3 a thousand a call (batch.input_identities), encoded and compressed into their
    own blob, and checked as the intent's inputs are.

Both are bound by CPU, in Python, so two threads would take turns. The second is done by a
child forked from this process (runlog/background.py) as soon as the file's bytes are read:
it has them, the request's default setting, the S3 client and its credentials in memory
already, and reads the bytes into the same runs (orjson: see _resolve_in_child).
It answers with the blob (its reference and its compressed bytes), the warning naming what
was not resolved, and what the check found; this process puts the reference where take_out
would have put the inputs' (blobs.PLACES) and the warning where resolve_batch would have.
The record is the same, byte for byte, either way (tests/test_inputs_fork.py).

The child uses the S3 client the file was read with (this process makes no S3 call after
the fork; if it must resolve the inputs itself, it makes a new client, so that no connection
is used by both). A cohort naming omics:// inputs (read sets, references) has them resolved
here, with the caller's HealthOmics client: the child answers that it did nothing. It is forked only
on Linux (elsewhere the system libraries that find proxies are not safe to use after a
fork), where background.start forks (no other thread running once the submission's own have
ended, RUNLOG_NO_FORK unset), and for a settings file of at least FORK_FROM bytes (below
that, the fork costs more than it saves). A child that fails in any way is not trusted to have done anything: the inputs are
then resolved here, as without it. `--strict` (an unresolved input refuses the submission
before the ledger is opened) and `--dry-run` resolve them here. A submission refused while
the child works (a settings file or a template refused, Ctrl-C) kills it; one that fails
after its warnings were gathered (a ledger that cannot be opened) still takes the child's
answer, so that it shows the warnings one process would have shown."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

FORK_FROM = 512 * 1024  # bytes of settings file: about 3 000 runs
UNRESOLVED_ENDING = "; recorded as such"  # after the warning when the submission goes on (not --strict)
_held: list = []  # in the child: what it made, until it ends


def unresolved_warning(inputs: dict[str, dict], failed: list[str]) -> str:
    """The warning (without its ending) naming the inputs not resolved: the first five, and
    how many more."""
    from runlog.resolve import unresolved_hint

    shown = ", ".join(f"{u} ({inputs[u]['error']['code']})" for u in failed[:5])
    more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
    return f"{len(failed)} input(s) not resolved: {shown}{more}{unresolved_hint(inputs, failed)}"


def recorded_warning(inputs: dict[str, dict]) -> str | None:
    """The warning a record keeps when some of `inputs` were not resolved (None: all were)."""
    from runlog.resolve import unresolved

    failed = unresolved(inputs)
    return unresolved_warning(inputs, failed) + UNRESOLVED_ENDING if failed else None


def _resolve_in_child(body: bytes, default: dict, s3: Any, deadline: float) -> dict | None:
    """In the child: the runs read from `body`, their inputs found and resolved, encoded and
    compressed as take_out and _held_cohort would.

    The runs are read by orjson alone, without the strict reader's checks
    (safejson.loads_untrusted): this process reads the same bytes with them, and refuses the
    file (and kills this child) where they fail. Where they pass, both readers give the same
    strings in the same places (the strict reader may give an integer of 20 digits or more as
    an int where orjson gives a float), and input URIs are strings: the same URIs."""
    from concurrent.futures import ThreadPoolExecutor

    import orjson

    from runlog import background, fastjson
    from runlog import record as rec
    from runlog.batch import input_identities, settings_input_uris
    from runlog.blobs import Blob

    runs = orjson.loads(body)
    uris = settings_input_uris(default, runs)
    if any(uri.startswith("omics://") for uri in uris):
        return None  # read sets and references: resolved by the parent, with the caller's HealthOmics client
    inputs = input_identities(uris, {"s3": s3}, deadline=deadline)
    identities = list(inputs.values())
    blob = Blob(fastjson.dumps_floatless(inputs) if fastjson.floatless_rows(identities) else fastjson.dumps(inputs),
                items=len(inputs))
    if background.in_child():  # not freed object by object on the way out: the child's end frees them at once
        _held.append((runs, uris, inputs, identities))
    with ThreadPoolExecutor(max_workers=1) as pool:  # compressed (zlib: without the GIL) while they are checked
        packed = pool.submit(blob.packed)
        problems = rec.inputs_errors(inputs)
        return {"ref": blob.ref, "packed": packed.result(),
                "warning": recorded_warning(inputs),
                "problems": problems}


class InputsApart:
    """The inputs of one submission, resolved by a forked child when start() could fork.
    `new_s3()`: a new S3 client (for resolving them here after a child failed); `waits`: what
    start() calls first, each waiting for one of the submission's own threads to end."""

    def __init__(self, new_s3: Callable[[], Any]):
        self.new_s3 = new_s3
        self.waits: list[Callable[[], Any]] = []
        self.pending: Any = None
        self.warning_at = 0  # where in the submission's warnings the unresolved inputs' one goes
        self.default: dict = {}
        self.deadline = 0.0
        self.settings: list = []  # the runs as this process read them, set by resolve_batch

    def start(self, body: bytes, default: dict, s3: Any, deadline: float) -> None:
        """Fork the child for a settings file's bytes (`started` then says whether it was)."""
        from runlog import background

        if len(body) < FORK_FROM or not sys.platform.startswith("linux") or not background.may_fork():
            return
        waited = time.monotonic()
        for wait in self.waits:
            wait()
        # the wait for the caller lookup (STS) is not taken from the inputs' budget: in one process
        # the listing runs beside it
        deadline += time.monotonic() - waited
        if not background.forkable():  # another thread runs (a program embedding runlog): resolved here
            return
        # (where the fork itself fails, background.start runs the function here: the same answer)
        self.pending = background.start(_resolve_in_child, body, default, s3, deadline, binary=True, stop=True)
        self.default, self.deadline = default, deadline

    @property
    def started(self) -> bool:
        return self.pending is not None

    def discard(self) -> None:
        """The child stopped and reaped, its answer not wanted."""
        if self.pending is not None:
            self.pending.discard()
            self.pending = None

    def answer(self) -> dict | None:
        """The child's answer, or None when it failed (the caller resolves the inputs itself)."""
        pending, self.pending = self.pending, None
        try:
            found = pending.result()
        except Exception:  # the child died or failed (RuntimeError), or failed here after a failed fork
            return None
        if not isinstance(found, dict) or not isinstance(found.get("packed"), bytes) \
                or not isinstance(found.get("ref"), dict):
            return None
        return found

    def resolve_here(self, clients: dict) -> dict[str, dict]:
        """The inputs resolved by this process (the child failed): with a new S3 client, the
        child may have left the first one's connection in any state."""
        from runlog.batch import input_identities, settings_input_uris

        uris = settings_input_uris(self.default, self.settings)
        return input_identities(uris, {**clients, "s3": self.new_s3()}, deadline=self.deadline)
